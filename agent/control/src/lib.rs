//! The agent's local control protocol: what the CLI and the page ask the running
//! agent over its Unix control socket, and the views it answers with.
//!
//! One request per connection: the client writes a frame, the agent answers with
//! one frame (or, for `Monitor`, a stream of frames until the client hangs up).
//! A frame is a 4-byte big-endian length followed by that many bytes of CBOR
//! (minicbor's encoding of indexed fields, written out by hand in `wire.rs`:
//! fields are only ever added, unknown ones are skipped). Both ends live in the
//! same binary, but the agent still treats every request as untrusted: frames
//! over [`MAX_REQUEST`] are refused before any allocation, a length inside a
//! frame is never trusted for an allocation, and a request that does not decode
//! gets an [`Response::Error`].
//!
//! The same views are printed by the CLI (`--json`) and by the page
//! (`?format=json`) through [`json`], so both always show the same data.
//!
//! ```
//! use nuvol_control::{frame, Request};
//! let bytes = frame::encode(&Request::Members).unwrap();
//! let back: Request = frame::decode(&bytes[4..]).unwrap();
//! assert!(matches!(back, Request::Members));
//! ```

pub mod frame;
pub mod json;
pub mod proto;
mod wire;

pub use proto::*;
