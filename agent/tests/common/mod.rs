//! Test harness: real `nuvol` processes on loopback, each with its own port,
//! state directory and control socket under a per-test temp directory, so
//! tests run in parallel. Every wait is bounded; every process is killed
//! when its handle drops.

#![allow(dead_code)]

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub mod json;

pub const BIN: &str = env!("CARGO_BIN_EXE_nuvol");

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("nuvol-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port free for both UDP and TCP right now, chosen below the
/// kernel's ephemeral range: an agent binds its port only when it starts,
/// and a port from that range could meanwhile become the local end of
/// another agent's outgoing connection (CI saw `Address already in use`).
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOWEST: u32 = 20000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768)
        .min(65536);
    // Test binaries run one after another but their agents may linger a
    // moment: start each process at its own place in the range.
    let span = ephemeral_low.saturating_sub(LOWEST);
    let offset = std::process::id().wrapping_mul(7919);
    for _ in 0..2000 {
        let port = if span > 100 {
            LOWEST + offset.wrapping_add(NEXT.fetch_add(1, Ordering::SeqCst)) % span
        } else {
            let udp = UdpSocket::bind("127.0.0.1:0").expect("udp bind");
            u32::from(udp.local_addr().expect("addr").port())
        };
        let port = port as u16;
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free loopback port")
}

/// Polls `f` every 200 ms until it returns `Some`, or panics after `limit`
/// naming `what`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One agent process and where its files are.
pub struct Agent {
    pub name: String,
    pub port: u16,
    pub state: PathBuf,
    pub control: PathBuf,
    pub log: PathBuf,
    pub microcloud: String,
    pub extra: Vec<String>,
    pub child: Option<Child>,
    starts: u32,
}

impl Agent {
    /// Prepares (does not start) an agent under `dir`.
    pub fn new(dir: &Path, name: &str, microcloud: &str) -> Agent {
        Agent {
            name: name.into(),
            port: free_port(),
            state: dir.join(format!("{name}.state")),
            control: dir.join(format!("{name}.sock")),
            log: dir.join(format!("{name}.log")),
            microcloud: microcloud.into(),
            extra: vec!["--beacon-port".into(), "0".into()],
            child: None,
            starts: 0,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the agent with `args` added; waits until its control socket answers.
    pub fn start(&mut self, args: &[String]) {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = Command::new(BIN);
        cmd.arg("agent")
            .arg("--name")
            .arg(&self.name)
            .arg("--microcloud")
            .arg(&self.microcloud)
            .arg("--bind")
            .arg(self.addr())
            .arg("--state")
            .arg(&self.state)
            .arg("--control")
            .arg(&self.control)
            .args(&self.extra)
            .args(args)
            .env_remove("NUVOL_CONTROL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn nuvol agent"));
        let name = self.name.clone();
        wait_for(
            &format!("{name}'s control socket"),
            Duration::from_secs(20),
            || {
                if let Some(c) = self.child.as_mut() {
                    if let Ok(Some(st)) = c.try_wait() {
                        panic!(
                            "agent {name} exited at start with {st}: {}",
                            self.log_text()
                        );
                    }
                }
                self.cli(&["info"]).status.success().then_some(())
            },
        );
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--control")
            .arg(&self.control)
            .args(args)
            .env_remove("NUVOL_CONTROL")
            .output()
            .expect("run nuvol")
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "nuvol {args:?} on {} failed ({}): {}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `--json` output of a command, parsed.
    pub fn json(&self, args: &[&str]) -> json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let text = self.ok(&a);
        json::parse(text.trim()).unwrap_or_else(|e| panic!("bad JSON from {args:?}: {e}: {text}"))
    }

    /// This agent's view of `who`'s state (`alive`, `failed`, `left`, …).
    pub fn state_of(&self, who: &str) -> Option<String> {
        let out = self.cli(&["--json", "members"]);
        if !out.status.success() {
            return None;
        }
        let v = json::parse(String::from_utf8_lossy(&out.stdout).trim()).ok()?;
        v.as_array()?
            .iter()
            .find(|m| m.get("name").and_then(|n| n.as_str()) == Some(who))
            .and_then(|m| m.get("state")?.as_str().map(String::from))
    }

    /// Names this agent sees as alive.
    pub fn alive(&self) -> Vec<String> {
        let out = self.cli(&["--json", "members"]);
        if !out.status.success() {
            return Vec::new();
        }
        let Ok(v) = json::parse(String::from_utf8_lossy(&out.stdout).trim()) else {
            return Vec::new();
        };
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter(|m| m.get("state").and_then(|s| s.as_str()) == Some("alive"))
                    .filter_map(|m| m.get("name")?.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn term(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("agent running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        wait_for("agent exit after SIGTERM", Duration::from_secs(15), || {
            c.try_wait().ok().flatten()
        })
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}
