//! Agents in separate network namespaces on one bridge, with 20 % random
//! loss on every link, show no false failure; a node that really dies under
//! the same loss is still detected.
//!
//! This kernel has no netem, so loss comes from nftables on each node's
//! input hook (`numgen random mod 100 < 20 drop`; a drop on output would make
//! `sendto` fail with EPERM, which is not how loss looks). The namespaces,
//! links and rules are created by the test and removed when it ends (also on
//! failure). Needs root, `ip` and `nft`; otherwise the test says why and
//! skips. `NUVOL_LOSS_SECS` sets the observation time (default 60).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{json, wait_for, TempDir, BIN};

const NODES: usize = 5;
const LOSS_PERCENT: u32 = 20;

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn can_run() -> Result<(), String> {
    if !nix_is_root() {
        return Err("needs root for network namespaces".into());
    }
    for tool in ["ip", "nft"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            return Err(format!("needs `{tool}` (Debian: iproute2, nftables)"));
        }
    }
    Ok(())
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// The namespaces of one test run; deleted on drop.
struct Net {
    prefix: String,
}

impl Net {
    fn ns(&self, i: usize) -> String {
        format!("{}n{i}", self.prefix)
    }
    fn bridge(&self) -> String {
        format!("{}br", self.prefix)
    }
    fn ip(&self, i: usize) -> String {
        format!("10.77.0.{}", i + 1)
    }

    fn create(prefix: String) -> Result<Net, String> {
        let net = Net { prefix };
        let br = net.bridge();
        sh(&["ip", "netns", "add", &br])?;
        sh(&["ip", "-n", &br, "link", "add", "br0", "type", "bridge"])?;
        sh(&["ip", "-n", &br, "link", "set", "br0", "up"])?;
        for i in 0..NODES {
            let ns = net.ns(i);
            let peer = format!("p{i}");
            sh(&["ip", "netns", "add", &ns])?;
            sh(&[
                "ip", "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &peer,
                "netns", &br,
            ])?;
            sh(&["ip", "-n", &br, "link", "set", &peer, "master", "br0"])?;
            sh(&["ip", "-n", &br, "link", "set", &peer, "up"])?;
            sh(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", net.ip(i)),
                "dev",
                "eth0",
            ])?;
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// Drops `percent` % of every packet arriving in each node's namespace.
    fn add_loss(&self, percent: u32) -> Result<(), String> {
        for i in 0..NODES {
            let rules = format!(
                "table inet nuvolloss {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  numgen random mod 100 < {percent} drop\n }}\n}}\n"
            );
            let mut child = Command::new("ip")
                .args(["netns", "exec", &self.ns(i), "nft", "-f", "-"])
                .stdin(Stdio::piped())
                .spawn()
                .map_err(|e| e.to_string())?;
            use std::io::Write;
            child
                .stdin
                .take()
                .ok_or("no stdin")?
                .write_all(rules.as_bytes())
                .map_err(|e| e.to_string())?;
            let st = child.wait().map_err(|e| e.to_string())?;
            if !st.success() {
                return Err(format!("nft in {} failed", self.ns(i)));
            }
        }
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..NODES {
            let _ = sh(&["ip", "netns", "del", &self.ns(i)]);
        }
        let _ = sh(&["ip", "netns", "del", &self.bridge()]);
    }
}

struct Node {
    name: String,
    control: std::path::PathBuf,
    child: Option<Child>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(net: &Net, dir: &Path, i: usize, seed: &str) -> Node {
    let name = format!("ns{i}");
    let control = dir.join(format!("{name}.sock"));
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &net.ns(i), BIN, "agent", "--name", &name])
        .args(["--microcloud", "lossy", "--beacon-port", "0"])
        .args(["--bind", &format!("{}:7946", net.ip(i))])
        .args(["--join", seed])
        .arg("--state")
        .arg(dir.join(format!("{name}.state")))
        .arg("--control")
        .arg(&control)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn agent in namespace");
    Node {
        name,
        control,
        child: Some(child),
    }
}

fn members(n: &Node) -> Vec<(String, String)> {
    let Ok(out) = Command::new(BIN)
        .arg("--control")
        .arg(&n.control)
        .args(["--json", "members"])
        .output()
    else {
        return Vec::new();
    };
    let Ok(v) = json::parse(String::from_utf8_lossy(&out.stdout).trim()) else {
        return Vec::new();
    };
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    Some((
                        m.get("name")?.as_str()?.to_string(),
                        m.get("state")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn no_false_failures_at_20_percent_loss() {
    if let Err(why) = can_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let secs: u64 = std::env::var("NUVOL_LOSS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = TempDir::new("netns");
    let net = Net::create(format!("nv{}", std::process::id() % 100_000)).expect("namespaces");
    let seed = format!("{}:7946", net.ip(0));
    let mut nodes: Vec<Node> = (0..NODES)
        .map(|i| start(&net, dir.path(), i, &seed))
        .collect();
    for n in &nodes {
        wait_for(
            &format!("{} to see {NODES} alive", n.name),
            Duration::from_secs(60),
            || {
                let m = members(n);
                (m.iter().filter(|(_, s)| s == "alive").count() == NODES).then_some(())
            },
        );
    }

    net.add_loss(LOSS_PERCENT).expect("loss rules");
    let start_t = Instant::now();
    let mut false_failures = Vec::new();
    let mut suspects = 0;
    while start_t.elapsed() < Duration::from_secs(secs) {
        for n in &nodes {
            for (who, state) in members(n) {
                match state.as_str() {
                    "failed" | "left" => false_failures.push(format!(
                        "{} saw {who} {state} at {:?}",
                        n.name,
                        start_t.elapsed()
                    )),
                    "suspect" => suspects += 1,
                    _ => {}
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!(
        "{secs} s at {LOSS_PERCENT}% loss on {NODES} nodes: {} false failures, {suspects} suspect sightings",
        false_failures.len()
    );
    assert!(false_failures.is_empty(), "{false_failures:#?}");

    // A real death under the same loss is still detected.
    let victim = nodes.pop().expect("nodes");
    let victim_name = victim.name.clone();
    drop(victim);
    for n in &nodes {
        wait_for(
            &format!("{} to see {victim_name} failed", n.name),
            Duration::from_secs(90),
            || {
                members(n)
                    .iter()
                    .any(|(w, s)| *w == victim_name && s == "failed")
                    .then_some(())
            },
        );
    }
}
