//! Local-link discovery: a small UDP broadcast beacon, so a microcloud never
//! depends on one bootstrap node being up.
//!
//! Every agent broadcasts `NUVB`, a version byte and a CBOR body
//! `{microcloud, name, addr}` to the beacon port (default 7947) on every
//! broadcast-capable interface that is up (only on loopback's
//! `127.255.255.255` when the agent itself is bound to loopback, which is
//! what tests use). Agents of the same microcloud that do not yet know the
//! sender as alive join it through its gossip address. Beacons go out a few
//! times right after start, then every [`INTERVAL_ALONE`] while the agent
//! knows no one and every [`INTERVAL`] otherwise.
//!
//! A beacon is unauthenticated on purpose: it only makes the receiver try a
//! join, and the join itself is sealed with the cluster key, so a forged
//! beacon costs one failed push-pull.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use minicbor::{Decode, Encode};

const MAGIC: &[u8; 4] = b"NUVB";
const VERSION: u8 = 1;
/// Longest beacon accepted: names are at most 63 bytes each.
pub const MAX_BEACON: usize = 512;
/// Delays of the first beacons after start.
pub const STARTUP: &[Duration] = &[
    Duration::from_millis(100),
    Duration::from_secs(1),
    Duration::from_secs(3),
];
pub const INTERVAL_ALONE: Duration = Duration::from_secs(5);
pub const INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Beacon {
    #[n(0)]
    pub microcloud: String,
    #[n(1)]
    pub name: String,
    /// Gossip address; an unspecified IP means "the address this came from".
    #[n(2)]
    pub addr: String,
}

pub fn encode(b: &Beacon) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    // Encoding into a Vec cannot fail.
    let _ = minicbor::encode(b, &mut out);
    out
}

/// Reads a beacon; `None` for anything that is not a valid one.
pub fn decode(bytes: &[u8]) -> Option<Beacon> {
    if bytes.len() > MAX_BEACON || bytes.len() < 5 || &bytes[..4] != MAGIC || bytes[4] != VERSION {
        return None;
    }
    let b: Beacon = minicbor::decode(&bytes[5..]).ok()?;
    if b.name.is_empty()
        || b.name.len() > crate::config::MAX_NAME
        || b.microcloud.len() > crate::config::MAX_NAME
    {
        return None;
    }
    Some(b)
}

/// The gossip address a beacon points to, given where it came from.
pub fn target(b: &Beacon, from: SocketAddr) -> Option<SocketAddr> {
    let mut addr: SocketAddr = b.addr.parse().ok()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(from.ip());
    }
    if addr.port() == 0 {
        return None;
    }
    Some(addr)
}

/// A socket on the beacon port that several agents on one host can share
/// (broadcasts reach every socket bound with SO_REUSEADDR).
pub fn bind(port: u16) -> std::io::Result<UdpSocket> {
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    socket::setsockopt(&fd, sockopt::Broadcast, &true)?;
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)),
    )?;
    Ok(UdpSocket::from(fd))
}

/// Where to send beacons: loopback's broadcast address for an agent bound
/// to loopback, else the broadcast address of every up interface.
pub fn destinations(own: IpAddr, port: u16) -> Vec<SocketAddr> {
    if own.is_loopback() {
        return vec![SocketAddr::from(([127, 255, 255, 255], port))];
    }
    let mut out = Vec::new();
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return out;
    };
    use nix::net::if_::InterfaceFlags as F;
    for ifa in addrs {
        if !ifa.flags.contains(F::IFF_UP | F::IFF_BROADCAST) || ifa.flags.contains(F::IFF_LOOPBACK)
        {
            continue;
        }
        let Some(b) = ifa
            .broadcast
            .as_ref()
            .and_then(|b| b.as_sockaddr_in().copied())
        else {
            continue;
        };
        let dest = SocketAddr::from((b.ip(), port));
        if !out.contains(&dest) {
            out.push(dest);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beacon_round_trips_and_garbage_is_ignored() {
        let b = Beacon {
            microcloud: "mc".into(),
            name: "n1".into(),
            addr: "0.0.0.0:7946".into(),
        };
        let bytes = encode(&b);
        assert_eq!(decode(&bytes), Some(b.clone()));
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None);
        }
        assert_eq!(decode(b"NUVB\x01\xff\xff"), None);
        let from: SocketAddr = "10.0.0.9:7947".parse().unwrap();
        assert_eq!(target(&b, from), Some("10.0.0.9:7946".parse().unwrap()));
    }

    #[test]
    fn loopback_agents_beacon_only_on_loopback() {
        let d = destinations("127.0.0.1".parse().unwrap(), 7947);
        assert_eq!(d, vec!["127.255.255.255:7947".parse().unwrap()]);
    }

    #[test]
    fn two_sockets_share_the_port_and_both_hear_a_broadcast() {
        let a = bind(0).unwrap();
        let port = a.local_addr().unwrap().port();
        let b = bind(port).unwrap();
        let sender = bind(0).unwrap();
        sender
            .send_to(b"hello", SocketAddr::from(([127, 255, 255, 255], port)))
            .unwrap();
        for s in [&a, &b] {
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 16];
            let (n, _) = s.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"hello");
        }
    }
}
