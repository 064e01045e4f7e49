//! Length-prefixed CBOR frames, and a blocking client for the CLI and the page.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Largest request the agent reads. A publish with a long txt list is far below.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Largest response a client reads: 1,000 members and several thousand service
/// records fit comfortably.
pub const MAX_RESPONSE: usize = 8 * 1024 * 1024;

/// Why a frame could not be read or decoded. Nothing was consumed past the frame.
#[derive(Debug)]
pub enum FrameError {
    Io(io::Error),
    /// The peer announced more bytes than the limit; nothing was allocated.
    TooLarge {
        announced: usize,
        limit: usize,
    },
    /// The connection closed in the middle of a frame.
    Truncated,
    /// The bytes are not a message of this protocol.
    Malformed(String),
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "{e}"),
            FrameError::TooLarge { announced, limit } => {
                write!(
                    f,
                    "message of {announced} bytes is over the {limit}-byte limit"
                )
            }
            FrameError::Truncated => f.write_str("connection closed in the middle of a message"),
            FrameError::Malformed(why) => write!(f, "malformed message: {why}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(e)
        }
    }
}

/// Encodes `msg` as one frame: length prefix and CBOR body.
pub fn encode<T: minicbor::Encode<()>>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; 4];
    minicbor::encode(msg, &mut out).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = u32::try_from(out.len() - 4)
        .map_err(|_| FrameError::Malformed("message over 4 GiB".into()))?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// Decodes a frame body (without its length prefix).
pub fn decode<'b, T: minicbor::Decode<'b, ()>>(body: &'b [u8]) -> Result<T, FrameError> {
    minicbor::decode(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Reads one frame body, refusing to allocate more than `limit` bytes.
/// Returns `Ok(None)` on a clean end of stream before the first byte.
pub fn read_body(r: &mut impl Read, limit: usize) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let announced = u32::from_be_bytes(len) as usize;
    if announced > limit {
        return Err(FrameError::TooLarge { announced, limit });
    }
    let mut body = vec![0u8; announced];
    r.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Writes one already-encoded frame.
pub fn write_frame(w: &mut impl Write, frame: &[u8]) -> Result<(), FrameError> {
    w.write_all(frame)?;
    w.flush()?;
    Ok(())
}

/// A blocking connection to the agent's control socket.
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connects to the socket at `path`. `timeout` bounds every read and write,
    /// so a hung agent cannot hang the CLI or a CGI request.
    pub fn connect(path: &Path, timeout: Duration) -> io::Result<Client> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Client { stream })
    }

    /// Sends `req` and waits for its one response.
    pub fn call(&mut self, req: &crate::Request) -> Result<crate::Response, FrameError> {
        self.send(req)?;
        self.recv()?.ok_or(FrameError::Truncated)
    }

    /// Sends a request without waiting (used for `Monitor`, then [`Client::recv`]).
    pub fn send(&mut self, req: &crate::Request) -> Result<(), FrameError> {
        write_frame(&mut self.stream, &encode(req)?)
    }

    /// The next response frame, or `None` when the agent closed the stream.
    pub fn recv(&mut self) -> Result<Option<crate::Response>, FrameError> {
        match read_body(&mut self.stream, MAX_RESPONSE)? {
            None => Ok(None),
            Some(body) => decode(&body).map(Some),
        }
    }

    /// Lets a monitor wait without a read timeout.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Request, Response};

    #[test]
    fn oversized_frame_is_refused_before_allocation() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0];
        let err = read_body(&mut &bytes[..], MAX_REQUEST).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }));
    }

    #[test]
    fn truncated_frame_is_an_error_not_a_hang() {
        let mut bytes = encode(&Request::Info).unwrap();
        bytes.pop();
        let err = read_body(&mut &bytes[..], MAX_REQUEST).unwrap_err();
        assert!(matches!(err, FrameError::Truncated));
    }

    #[test]
    fn garbage_body_is_malformed() {
        let err = decode::<Request>(&[0xff, 0x00, 0x13]).unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)));
    }

    #[test]
    fn response_round_trips() {
        let resp = Response::Error {
            message: "no such node".into(),
        };
        let bytes = encode(&resp).unwrap();
        let body = read_body(&mut &bytes[..], MAX_RESPONSE).unwrap().unwrap();
        match decode::<Response>(&body).unwrap() {
            Response::Error { message } => assert_eq!(message, "no such node"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
