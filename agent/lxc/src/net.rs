//! Container networking: the LXC network config of each mode, static
//! addresses from a pool, and nftables port forwards for a private bridge.
//!
//! Three modes, chosen per node:
//! - `bridge`: a veth on a bridge (`br-lan` on OpenWRT). With a `subnet` the
//!   container gets a static address from its pool; without, the image's
//!   own init must ask DHCP, and the address is read back from `lxc-info`.
//! - `bridge` + `forward`: the bridge is private (only this node reaches it),
//!   so each published port is DNATed from the node's own addresses to the
//!   container, and the containers' traffic out is masqueraded.
//! - `host`: no network namespace (`lxc.net.0.type = none`) for tiny boards;
//!   the app listens on the node's own ports.
//!
//! The nftables table is regenerated whole from the installed apps and
//! replaced in one `nft -f` transaction, so a crash never leaves half a rule
//! set and an uninstalled app never leaves a stale forward.
//!
//! ```
//! use nuvol_lxc::net::{Forward, Subnet, ruleset};
//! use nuvol_lxc::manifest::Proto;
//! let s: Subnet = "10.213.0.0/24".parse().unwrap();
//! let f = Forward { proto: Proto::Tcp, published: 8080, to: s.host(2).unwrap(), port: 80 };
//! assert!(ruleset("nuvol", &[f], Some(s)).contains("tcp dport 8080 dnat to 10.213.0.2:80"));
//! ```

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::manifest::Proto;
use crate::run::run;

/// An IPv4 subnet `A.B.C.D/N`, stored with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl FromStr for Subnet {
    type Err = String;
    fn from_str(s: &str) -> Result<Subnet, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not A.B.C.D/N"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| format!("{p:?} is not a prefix length"))?;
        if !(8..=30).contains(&prefix) {
            return Err(format!("/{prefix} is outside /8../30"));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Subnet {
            base: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl Subnet {
    /// Number of host offsets, network and broadcast excluded.
    fn hosts(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 2
    }

    /// The `n`th host address (1-based), if inside the subnet.
    pub fn host(&self, n: u32) -> Option<Ipv4Addr> {
        (n >= 1 && n <= self.hosts()).then(|| Ipv4Addr::from(u32::from(self.base) + n))
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.prefix);
        u32::from(a) & mask == u32::from(self.base)
    }
}

/// The lowest free address of the pool (host offsets `first..=last`),
/// skipping the gateway and addresses other apps hold. Offsets past the
/// subnet are never tried: a `pool` of `2-4294967295` costs a /24's 254
/// steps, not four billion.
pub fn allocate(
    subnet: Subnet,
    first: u32,
    last: u32,
    gateway: Ipv4Addr,
    used: &[Ipv4Addr],
) -> Option<Ipv4Addr> {
    (first..=last.min(subnet.hosts()))
        .filter_map(|n| subnet.host(n))
        .find(|a| *a != gateway && !used.contains(a))
}

/// How containers reach the network, from the node's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Share the node's network namespace.
    Host,
    /// A veth on this bridge.
    Bridge(String),
    /// Loopback only.
    Isolated,
}

/// The `lxc.net.0.*` lines for a container in `mode`, with its static
/// address (and the subnet's gateway) when there is one.
pub fn lxc_config(mode: &Mode, addr: Option<(Ipv4Addr, Subnet, Ipv4Addr)>) -> String {
    match mode {
        Mode::Host => "lxc.net.0.type = none\n".into(),
        Mode::Isolated => "lxc.net.0.type = empty\n".into(),
        Mode::Bridge(bridge) => {
            let mut s = format!(
                "lxc.net.0.type = veth\nlxc.net.0.link = {bridge}\nlxc.net.0.flags = up\nlxc.net.0.name = eth0\nlxc.net.0.hwaddr = 00:16:3e:xx:xx:xx\n"
            );
            if let Some((a, subnet, gw)) = addr {
                s.push_str(&format!(
                    "lxc.net.0.ipv4.address = {a}/{}\nlxc.net.0.ipv4.gateway = {gw}\n",
                    subnet.prefix
                ));
            }
            s
        }
    }
}

/// Whether an interface of that name exists in this thread's network
/// namespace. `/proc/thread-self/net/dev` follows the caller's namespace,
/// where `/sys/class/net` shows the namespace sysfs was mounted in.
pub fn interface_exists(name: &str) -> bool {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev")
        .or_else(|_| std::fs::read_to_string("/proc/self/net/dev"))
        .unwrap_or_default();
    interface_listed(&text, name)
}

fn interface_listed(net_dev: &str, name: &str) -> bool {
    !name.is_empty()
        && net_dev
            .lines()
            .skip(2)
            .filter_map(|l| l.split_once(':'))
            .any(|(iface, _)| iface.trim() == name)
}

/// One published port forwarded to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub proto: Proto,
    pub published: u16,
    pub to: Ipv4Addr,
    pub port: u16,
}

/// The whole nftables script for `table`: it creates the table if missing,
/// deletes it, and (when there is anything to do) recreates it, so applying
/// it is one atomic replace. Traffic to any of the node's own addresses
/// (`fib daddr type local`, loopback excluded: a DNATed packet from
/// 127.0.0.1 could not leave the host) on a published port is forwarded, both
/// arriving (prerouting) and from the node itself (output).
pub fn ruleset(table: &str, forwards: &[Forward], masquerade: Option<Subnet>) -> String {
    let mut s = format!("table ip {table}\ndelete table ip {table}\n");
    if forwards.is_empty() && masquerade.is_none() {
        return s;
    }
    let rules: String = forwards
        .iter()
        .map(|f| {
            format!(
                "\t\tip daddr != 127.0.0.0/8 fib daddr type local {} dport {} dnat to {}:{}\n",
                f.proto.as_str(),
                f.published,
                f.to,
                f.port
            )
        })
        .collect();
    s.push_str(&format!("table ip {table} {{\n"));
    s.push_str(&format!(
        "\tchain prerouting {{\n\t\ttype nat hook prerouting priority -100; policy accept;\n{rules}\t}}\n"
    ));
    s.push_str(&format!(
        "\tchain output {{\n\t\ttype nat hook output priority -100; policy accept;\n{rules}\t}}\n"
    ));
    if let Some(net) = masquerade {
        s.push_str(&format!(
            "\tchain postrouting {{\n\t\ttype nat hook postrouting priority 100; policy accept;\n\t\tip saddr {net} ip daddr != {net} masquerade\n\t}}\n"
        ));
    }
    s.push_str("}\n");
    s
}

/// Replaces the table with `script` (from [`ruleset`]) in one transaction.
pub fn apply(script: &str, scratch_dir: &Path) -> Result<(), String> {
    apply_with("nft", script, scratch_dir)
}

/// Scratch files handed out so far, so no two calls in this process share one.
static SCRATCH: AtomicUsize = AtomicUsize::new(0);

/// [`apply`] with another `nft` program (tests use a stand-in). Each call
/// writes its script to a scratch file of its own: with a shared name, two
/// concurrent calls (an app started while another installs) would overwrite
/// or remove each other's script under `nft`.
pub fn apply_with(nft: &str, script: &str, scratch_dir: &Path) -> Result<(), String> {
    let n = SCRATCH.fetch_add(1, Ordering::Relaxed);
    let file = scratch_dir.join(format!(".nuvol-nft-{}-{n}", std::process::id()));
    std::fs::write(&file, script).map_err(|e| format!("writing {}: {e}", file.display()))?;
    let res = run(
        &[
            nft.to_string(),
            "-f".into(),
            file.to_string_lossy().into_owned(),
        ],
        Duration::from_secs(20),
    );
    let _ = std::fs::remove_file(&file);
    let out = res.map_err(|e| e.to_string())?;
    if out.success() {
        Ok(())
    } else {
        Err(format!("nft refused the port forwards: {}", out.reason()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_parses_and_clears_host_bits() {
        let s: Subnet = "10.213.0.77/24".parse().unwrap();
        assert_eq!(s.to_string(), "10.213.0.0/24");
        assert_eq!(s.host(1), Some(Ipv4Addr::new(10, 213, 0, 1)));
        assert_eq!(s.host(255), None);
        assert_eq!(s.host(0), None);
        assert!(s.contains(Ipv4Addr::new(10, 213, 0, 9)));
        assert!(!s.contains(Ipv4Addr::new(10, 213, 1, 9)));
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/4",
            "x/24",
            "10.0.0.0/x",
        ] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn allocation_skips_gateway_and_used_addresses() {
        let s: Subnet = "10.213.0.0/24".parse().unwrap();
        let gw = s.host(1).unwrap();
        let used = [s.host(2).unwrap(), s.host(3).unwrap()];
        assert_eq!(allocate(s, 1, 254, gw, &used), s.host(4));
        assert_eq!(allocate(s, 2, 3, gw, &used), None);
    }

    #[test]
    fn a_pool_wider_than_the_subnet_stops_at_its_end() {
        // Regression: the pool's last offset came straight from the config,
        // so a full /24 with `pool 2-4294967295` walked four billion offsets.
        let s: Subnet = "10.213.0.0/24".parse().unwrap();
        let gw = s.host(1).unwrap();
        let all: Vec<Ipv4Addr> = (2..=254).filter_map(|n| s.host(n)).collect();
        assert_eq!(allocate(s, 2, u32::MAX, gw, &all), None);
        assert_eq!(allocate(s, 2, u32::MAX, gw, &all[1..]), s.host(2));
        assert_eq!(allocate(s, 300, u32::MAX, gw, &[]), None);
    }

    #[test]
    fn bridge_config_carries_the_static_address() {
        let s: Subnet = "10.213.0.0/24".parse().unwrap();
        let c = lxc_config(
            &Mode::Bridge("br-lan".into()),
            Some((s.host(5).unwrap(), s, s.host(1).unwrap())),
        );
        assert!(c.contains("lxc.net.0.link = br-lan\n"));
        assert!(c.contains("lxc.net.0.ipv4.address = 10.213.0.5/24\n"));
        assert!(c.contains("lxc.net.0.ipv4.gateway = 10.213.0.1\n"));
        assert_eq!(lxc_config(&Mode::Host, None), "lxc.net.0.type = none\n");
    }

    #[test]
    fn interfaces_are_read_from_proc_net_dev() {
        let text = "Inter-|   Receive\n face |bytes\n    lo: 1 2 3\nbr-lan: 4 5 6\n";
        assert!(interface_listed(text, "br-lan"));
        assert!(!interface_listed(text, "br"));
        assert!(!interface_listed(text, ""));
    }

    #[test]
    fn concurrent_applies_never_share_a_scratch_file() {
        // Regression: every call in a process used `.nuvol-nft-PID`, so two
        // applies at once (app start during an install) overwrote or removed
        // each other's script while nft was reading it.
        let dir = std::env::temp_dir().join(format!("nuvol-lxc-nft-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("fake-nft");
        std::fs::write(
            &fake,
            "#!/bin/sh\nc=$(cat \"$2\") || exit 1\nsleep 0.3\n[ \"$(cat \"$2\" 2>/dev/null)\" = \"$c\" ] || { echo changed under nft >&2; exit 1; }\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let fake = fake.to_string_lossy().into_owned();
        let start = std::sync::Barrier::new(4);
        std::thread::scope(|s| {
            let calls: Vec<_> = (0..4)
                .map(|i| {
                    let (start, fake, dir) = (&start, &fake, &dir);
                    s.spawn(move || {
                        start.wait();
                        apply_with(fake, &format!("table ip t{i}\n"), dir)
                    })
                })
                .collect();
            for c in calls {
                assert_eq!(c.join().unwrap(), Ok(()));
            }
        });
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".nuvol-nft"))
            .collect();
        assert!(left.is_empty(), "scratch files left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn empty_ruleset_only_removes_the_table() {
        assert_eq!(ruleset("t", &[], None), "table ip t\ndelete table ip t\n");
    }

    #[test]
    fn forwards_appear_in_prerouting_and_output() {
        let f = Forward {
            proto: Proto::Udp,
            published: 1883,
            to: Ipv4Addr::new(10, 0, 0, 2),
            port: 1883,
        };
        let r = ruleset("nuvol", &[f], None);
        assert_eq!(r.matches("udp dport 1883 dnat to 10.0.0.2:1883").count(), 2);
        assert!(!r.contains("masquerade"));
    }
}
