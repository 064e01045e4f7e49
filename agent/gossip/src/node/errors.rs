//! Why an operation or an input was refused; none of them changed state.

use super::*;

/// Why an operation was refused; the node's state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    /// The record, tags, event or query does not fit one datagram.
    TooLarge,
    /// This node has left; it announces nothing any more.
    Left,
    /// Unknown or expired query.
    UnknownQuery,
    /// This node already publishes [`crate::catalog::MAX_OWN_RECORDS`]
    /// services.
    TooManyServices,
    /// A field is over its protocol bound ([`crate::wire::MAX_NAME`] and
    /// the others): peers would refuse the message.
    OutOfBounds(&'static str),
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpError::TooLarge => "too large to fit one gossip datagram",
            OpError::Left => "this node has left the microcloud",
            OpError::UnknownQuery => "unknown or expired query",
            OpError::TooManyServices => {
                "this node already publishes the most services it may (256)"
            }
            OpError::OutOfBounds(field) => {
                return write!(f, "the {field} is longer than the gossip protocol allows")
            }
        })
    }
}

/// Why inbound bytes were dropped (also counted in [`Stats`]). Nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// Did not open under any installed key.
    Open(OpenError),
    /// Opened, but not a valid message.
    Wire(WireError),
    /// Saved state of a different node.
    OtherNode,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Open(e) => write!(f, "packet rejected ({e:?})"),
            InputError::Wire(e) => write!(f, "{e}"),
            InputError::OtherNode => f.write_str("saved state belongs to another node name"),
        }
    }
}
