//! The CBOR wire format (minicbor, explicit `#[n(i)]` indexes), versioned.
//!
//! A datagram, once opened by the keyring, is `[version, [message, …]]`; each
//! message is a flat array `[type, field0, field1, …]`. A push-pull stream is
//! one [`PushPull`]. Field indexes are never renumbered: new fields are only
//! appended and old decoders ignore them; an unknown message type inside a
//! datagram is skipped, not fatal. docs/protocol.md specifies every message
//! with golden byte vectors (checked both ways by the tests).
//!
//! Decoding untrusted bytes never panics; every allocation is bounded by the
//! input length (the caller bounds that: one datagram, or
//! [`crate::Config::max_stream_len`]).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use minicbor::{Decode, Decoder, Encode, Encoder};

use crate::catalog::ServiceRecord;
use crate::vivaldi::WireCoordinate;

/// Wire format version carried by every datagram and stream.
pub const VERSION: u8 = 1;

/// Why bytes were refused. Nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Not valid CBOR for the expected shape.
    Malformed,
    /// A version this node does not speak.
    Version(u8),
    /// Larger than the configured bound.
    TooLarge,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Malformed => f.write_str("malformed gossip message"),
            WireError::Version(v) => write!(f, "unsupported gossip wire version {v}"),
            WireError::TooLarge => f.write_str("gossip message too large"),
        }
    }
}

impl From<minicbor::decode::Error> for WireError {
    fn from(_: minicbor::decode::Error) -> WireError {
        WireError::Malformed
    }
}

/// Membership state as gossiped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cbor(index_only)]
pub enum WireState {
    #[n(0)]
    Alive,
    #[n(1)]
    Suspect,
    #[n(2)]
    Dead,
    #[n(3)]
    Left,
}

/// One catalog slot: a record, or a tombstone when `record` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct CatalogEntry {
    #[n(0)]
    pub version: u64,
    #[n(1)]
    pub service_type: String,
    #[n(2)]
    pub port: u16,
    #[n(3)]
    pub record: Option<ServiceRecord>,
}

/// A datagram message.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
#[cbor(flat)]
pub enum Message {
    /// Are you alive? `target` is the name the prober expects at this address.
    #[n(0)]
    Ping {
        #[n(0)]
        seq: u32,
        #[n(1)]
        target: String,
    },
    /// Please probe `target` for me; answer with an ack (and a nack if asked
    /// and the target stays silent).
    #[n(1)]
    IndirectPing {
        #[n(0)]
        seq: u32,
        #[n(1)]
        target: String,
        #[n(2)]
        #[cbor(with = "addr_cbor")]
        target_addr: SocketAddr,
        #[n(3)]
        nack: bool,
    },
    /// Alive; carries the responder's Vivaldi coordinate on direct acks.
    #[n(2)]
    Ack {
        #[n(0)]
        seq: u32,
        #[n(1)]
        coord: Option<WireCoordinate>,
    },
    /// The intermediary got no answer from the target (Lifeguard).
    #[n(3)]
    Nack {
        #[n(0)]
        seq: u32,
    },
    #[n(4)]
    Alive {
        #[n(0)]
        name: String,
        #[n(1)]
        #[cbor(with = "addr_cbor")]
        addr: SocketAddr,
        #[n(2)]
        incarnation: u64,
    },
    #[n(5)]
    Suspect {
        #[n(0)]
        name: String,
        #[n(1)]
        incarnation: u64,
        #[n(2)]
        from: String,
    },
    /// Declared dead by `from`; `from == name` means it left gracefully.
    #[n(6)]
    Dead {
        #[n(0)]
        name: String,
        #[n(1)]
        incarnation: u64,
        #[n(2)]
        from: String,
    },
    /// A node's tags, Lamport-stamped by their owner (newest wins).
    #[n(7)]
    Tags {
        #[n(0)]
        name: String,
        #[n(1)]
        lamport: u64,
        #[n(2)]
        tags: Vec<(String, String)>,
    },
    /// One catalog slot of `node` changed.
    #[n(8)]
    Service {
        #[n(0)]
        node: String,
        #[n(1)]
        entry: CatalogEntry,
    },
    #[n(9)]
    UserEvent {
        #[n(0)]
        lamport: u64,
        #[n(1)]
        origin: String,
        #[n(2)]
        name: String,
        #[n(3)]
        #[cbor(with = "minicbor::bytes")]
        payload: Vec<u8>,
    },
    #[n(10)]
    Query {
        #[n(0)]
        id: u32,
        #[n(1)]
        lamport: u64,
        #[n(2)]
        origin: String,
        #[n(3)]
        #[cbor(with = "addr_cbor")]
        origin_addr: SocketAddr,
        #[n(4)]
        name: String,
        #[n(5)]
        #[cbor(with = "minicbor::bytes")]
        payload: Vec<u8>,
        /// Only these nodes answer (all when empty).
        #[n(6)]
        nodes: Vec<String>,
        /// Only nodes whose tags match every pair answer.
        #[n(7)]
        tags: Vec<(String, String)>,
        #[n(8)]
        timeout_ms: u32,
    },
    /// Sent straight to the asker.
    #[n(11)]
    QueryResponse {
        #[n(0)]
        id: u32,
        #[n(1)]
        from: String,
        #[n(2)]
        #[cbor(with = "minicbor::bytes")]
        payload: Vec<u8>,
    },
}

/// Highest message type this version knows; higher ones are skipped.
const MAX_MESSAGE_TYPE: u32 = 11;

/// A member as exchanged by push-pull.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct MemberRecord {
    #[n(0)]
    pub name: String,
    #[n(1)]
    #[cbor(with = "addr_cbor")]
    pub addr: SocketAddr,
    #[n(2)]
    pub incarnation: u64,
    #[n(3)]
    pub state: WireState,
    #[n(4)]
    pub tags_lamport: u64,
    #[n(5)]
    pub tags: Vec<(String, String)>,
    #[n(6)]
    pub coord: Option<WireCoordinate>,
}

/// The full catalog of one node.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct CatalogState {
    #[n(0)]
    pub node: String,
    #[n(1)]
    pub version: u64,
    #[n(2)]
    pub entries: Vec<CatalogEntry>,
}

/// Push-pull anti-entropy: the whole state, sent over a stream.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct PushPull {
    #[n(0)]
    pub version: u8,
    /// Sent by a joining node; the answer echoes it (with `reply` set).
    #[n(1)]
    pub join: bool,
    /// An answer; never answered again.
    #[n(2)]
    pub reply: bool,
    #[n(3)]
    pub from: String,
    #[n(4)]
    pub members: Vec<MemberRecord>,
    #[n(5)]
    pub catalogs: Vec<CatalogState>,
    #[n(6)]
    pub event_clock: u64,
    #[n(7)]
    pub query_clock: u64,
    /// A stream probe (wire version 1, added later; absent otherwise): the
    /// request carries the prober's sequence number and nothing else, the
    /// reply echoes it as the ack. Never merged as state. A node that does
    /// not know this field answers with its full state instead, which the
    /// prober merges as an ordinary push-pull.
    #[n(8)]
    pub ping: Option<u32>,
}

/// What a node persists to rejoin after a restart.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct SavedState {
    #[n(0)]
    pub version: u8,
    #[n(1)]
    pub name: String,
    #[n(2)]
    pub incarnation: u64,
    #[n(3)]
    pub tags_lamport: u64,
    #[n(4)]
    pub tags: Vec<(String, String)>,
    #[n(5)]
    pub catalog: CatalogState,
    /// Known peers `(name, addr)`, rejoined through on start.
    #[n(6)]
    pub peers: Vec<Peer>,
    #[n(7)]
    pub event_clock: u64,
    #[n(8)]
    pub query_clock: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Peer {
    #[n(0)]
    pub name: String,
    #[n(1)]
    #[cbor(with = "addr_cbor")]
    pub addr: SocketAddr,
}

/// Encode one message (for packing under the MTU).
pub fn encode_message(m: &Message) -> Vec<u8> {
    // Writing into a Vec cannot fail.
    minicbor::to_vec(m).unwrap_or_default()
}

/// Start a datagram payload: `[version, [_` (messages follow, each already
/// encoded, then [`finish_packet`]). The message list is an indefinite-length
/// array so messages can be appended as they are chosen.
pub fn begin_packet(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x82, VERSION, 0x9f]);
}

/// Close a payload started with [`begin_packet`].
pub fn finish_packet(out: &mut Vec<u8>) {
    out.push(0xff);
}

/// Bytes [`begin_packet`] and [`finish_packet`] add around the messages.
pub const PACKET_OVERHEAD: usize = 4;

/// Encode a datagram payload.
pub fn encode_packet(messages: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    begin_packet(&mut out);
    for m in messages {
        out.extend_from_slice(&encode_message(m));
    }
    finish_packet(&mut out);
    out
}

/// Decode a datagram payload. Messages of unknown types are skipped.
pub fn decode_packet(bytes: &[u8]) -> Result<Vec<Message>, WireError> {
    let mut d = Decoder::new(bytes);
    let outer = d.array()?;
    if outer.is_some_and(|n| n < 2) {
        return Err(WireError::Malformed);
    }
    let version = d.u8()?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    // Definite or indefinite; each message takes at least two bytes, so a
    // definite count beyond the input length is a lie.
    let count = d.array()?;
    if count.is_some_and(|n| n > bytes.len() as u64) {
        return Err(WireError::Malformed);
    }
    let mut out = Vec::new();
    let mut seen = 0u64;
    loop {
        match count {
            Some(n) if seen == n => break,
            None if d.datatype()? == minicbor::data::Type::Break => {
                d.skip()?;
                break;
            }
            _ => {}
        }
        seen += 1;
        let mut probe = d.probe();
        probe.array()?;
        let kind = probe.u32()?;
        if kind > MAX_MESSAGE_TYPE {
            d.skip()?;
        } else {
            out.push(d.decode::<Message>()?);
        }
    }
    Ok(out)
}

/// Encode a push-pull stream payload.
pub fn encode_push_pull(p: &PushPull) -> Vec<u8> {
    minicbor::to_vec(p).unwrap_or_default()
}

/// Decode a push-pull stream payload.
pub fn decode_push_pull(bytes: &[u8]) -> Result<PushPull, WireError> {
    let p: PushPull = minicbor::decode(bytes)?;
    if p.version != VERSION {
        return Err(WireError::Version(p.version));
    }
    Ok(p)
}

pub fn encode_saved_state(s: &SavedState) -> Vec<u8> {
    minicbor::to_vec(s).unwrap_or_default()
}

pub fn decode_saved_state(bytes: &[u8]) -> Result<SavedState, WireError> {
    let s: SavedState = minicbor::decode(bytes)?;
    if s.version != VERSION {
        return Err(WireError::Version(s.version));
    }
    Ok(s)
}

/// `SocketAddr` as `[ip bytes (4 or 16), port]`.
pub mod addr_cbor {
    use super::*;
    use minicbor::decode::Error as DecodeError;
    use minicbor::encode::{Error as EncodeError, Write};

    pub fn encode<Ctx, W: Write>(
        a: &SocketAddr,
        e: &mut Encoder<W>,
        _: &mut Ctx,
    ) -> Result<(), EncodeError<W::Error>> {
        e.array(2)?;
        match a.ip() {
            IpAddr::V4(ip) => e.bytes(&ip.octets())?,
            IpAddr::V6(ip) => e.bytes(&ip.octets())?,
        };
        e.u16(a.port())?;
        Ok(())
    }

    pub fn decode<Ctx>(d: &mut Decoder<'_>, _: &mut Ctx) -> Result<SocketAddr, DecodeError> {
        if d.array()? != Some(2) {
            return Err(DecodeError::message("address is [ip, port]"));
        }
        let ip = d.bytes()?;
        let ip = if let Ok(v4) = <[u8; 4]>::try_from(ip) {
            IpAddr::V4(Ipv4Addr::from(v4))
        } else if let Ok(v6) = <[u8; 16]>::try_from(ip) {
            IpAddr::V6(Ipv6Addr::from(v6))
        } else {
            return Err(DecodeError::message("ip is 4 or 16 bytes"));
        };
        Ok(SocketAddr::new(ip, d.u16()?))
    }
}
