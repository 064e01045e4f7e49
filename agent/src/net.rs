//! Async helpers shared by the gossip streams and the control socket:
//! length-prefixed frames read under a size limit, and timeouts.

use std::future::Future;
use std::io;
use std::time::Duration;

use nuvol_control::frame::FrameError;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Resolves `HOST:PORT` names on a blocking thread (DNS blocks); each with
/// one address, or `None`. One function for every caller keeps one
/// blocking task type in the binary.
///
/// The address is the first of the family of `local` (the gossip socket's
/// own address) when the name has one: a router name often resolves to an
/// IPv6 address first (musl and glibc sort ::1 and global IPv6 ahead), and
/// an IPv4 socket cannot send there.
pub async fn resolve(
    names: Vec<String>,
    local: std::net::SocketAddr,
) -> Vec<(String, Option<std::net::SocketAddr>)> {
    smol::unblock(move || {
        use std::net::ToSocketAddrs;
        names
            .into_iter()
            .map(|a| {
                let r = a
                    .to_socket_addrs()
                    .ok()
                    .and_then(|it| pick_family(it, local));
                (a, r)
            })
            .collect()
    })
    .await
}

/// The first address of `local`'s family, else the first address.
fn pick_family(
    addrs: impl Iterator<Item = std::net::SocketAddr>,
    local: std::net::SocketAddr,
) -> Option<std::net::SocketAddr> {
    let mut first = None;
    for a in addrs {
        if a.is_ipv4() == local.is_ipv4() {
            return Some(a);
        }
        first = first.or(Some(a));
    }
    first
}

/// Runs `f` for at most `d`; `None` if it did not finish.
pub async fn timeout<T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(f.await) }, async {
        smol::Timer::after(d).await;
        None
    })
    .await
}

/// Reads one frame body (4-byte big-endian length, then the body). Refuses
/// to allocate past `limit`; `Ok(None)` on a clean end of stream before the
/// first byte.
pub async fn read_frame(
    r: &mut (impl AsyncRead + Unpin),
    limit: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    match read_len(r, limit).await? {
        Some(n) => read_body(r, n).await.map(Some),
        None => Ok(None),
    }
}

/// Reads a frame's length and refuses it past `limit`; `Ok(None)` on a
/// clean end of stream before the first byte.
pub async fn read_len(
    r: &mut (impl AsyncRead + Unpin),
    limit: usize,
) -> Result<Option<usize>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]).await {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let announced = u32::from_be_bytes(len) as usize;
    if announced > limit {
        return Err(FrameError::TooLarge { announced, limit });
    }
    Ok(Some(announced))
}

/// Reads a frame body of `announced` bytes (after [`read_len`]).
pub async fn read_body(
    r: &mut (impl AsyncRead + Unpin),
    announced: usize,
) -> Result<Vec<u8>, FrameError> {
    // Grow with the bytes that really arrive rather than trusting the
    // prefix: a peer announcing megabytes must also send them.
    let mut body = Vec::with_capacity(announced.min(64 * 1024));
    let got = r
        .take(announced as u64)
        .read_to_end(&mut body)
        .await
        .map_err(FrameError::Io)?;
    if got < announced {
        return Err(FrameError::Truncated);
    }
    Ok(body)
}

/// Writes `body` as one frame.
pub async fn write_frame(w: &mut (impl AsyncWrite + Unpin), body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame over 4 GiB"))?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    w.write_all(&out).await?;
    w.flush().await
}

/// The address peers should use for a socket bound to `bind`: `advertise`,
/// else the bind address, else (bound to 0.0.0.0) the first up,
/// non-loopback IPv4 address. The LAN node and the federation pool each
/// have their own.
pub fn advertise_for(
    advertise: Option<std::net::SocketAddr>,
    bind: std::net::SocketAddr,
) -> std::net::SocketAddr {
    if let Some(a) = advertise {
        return a;
    }
    if !bind.ip().is_unspecified() {
        return bind;
    }
    use nix::net::if_::InterfaceFlags as F;
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for ifa in addrs {
            if !ifa.flags.contains(F::IFF_UP) || ifa.flags.contains(F::IFF_LOOPBACK) {
                continue;
            }
            if let Some(sin) = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()) {
                return std::net::SocketAddr::from((sin.ip(), bind.port()));
            }
        }
    }
    std::net::SocketAddr::from(([127, 0, 0, 1], bind.port()))
}

#[cfg(test)]
mod tests {
    use super::pick_family;
    use std::net::SocketAddr;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_join_name_resolves_to_the_gossip_socket_family() {
        let v6_first = [a("[::1]:7946"), a("127.0.0.1:7946")];
        assert_eq!(
            pick_family(v6_first.into_iter(), a("0.0.0.0:7946")),
            Some(a("127.0.0.1:7946"))
        );
        assert_eq!(
            pick_family(v6_first.into_iter(), a("[::]:7946")),
            Some(a("[::1]:7946"))
        );
        // No address of our family: the first one (the send will say why).
        assert_eq!(
            pick_family([a("[fd00::1]:7946")].into_iter(), a("0.0.0.0:7946")),
            Some(a("[fd00::1]:7946"))
        );
        assert_eq!(pick_family([].into_iter(), a("0.0.0.0:7946")), None);
    }
}
