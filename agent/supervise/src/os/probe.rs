//! Health probes run off the supervisor loop: each probe is one short-lived
//! thread with a small stack, bounded by the probe timeout, that reports its
//! verdict on the loop's command channel and wakes the loop. A probe that
//! outlives its timeout has already been counted as failed by the policy; its
//! late answer carries a stale token and is ignored.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::spawn::Account;
use crate::policy::Token;
use crate::service::Probe;

/// A finished probe: which instance, which probe, and the verdict.
pub struct Verdict {
    pub instance: String,
    pub token: Token,
    pub healthy: bool,
}

/// Starts `probe` in its own thread; `report` gets the verdict when it ends.
pub fn start(
    instance: String,
    token: Token,
    probe: Probe,
    timeout: Duration,
    account: Option<Account>,
    report: impl FnOnce(Verdict) + Send + 'static,
) -> std::io::Result<()> {
    thread::Builder::new()
        .name("nuvol-probe".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let healthy = run_as(&probe, timeout, account.as_ref());
            report(Verdict {
                instance,
                token,
                healthy,
            });
        })
        .map(|_| ())
}

/// One probe, blocking, never longer than about `timeout`; an exec probe
/// runs as the agent.
pub fn run(probe: &Probe, timeout: Duration) -> bool {
    run_as(probe, timeout, None)
}

/// As [`run`], with an exec probe run under the service's own account, so a
/// check never has more rights than the service it checks.
pub fn run_as(probe: &Probe, timeout: Duration, account: Option<&Account>) -> bool {
    let deadline = Instant::now() + timeout;
    match probe {
        Probe::Tcp { host, port } => connect(host, *port, timeout).is_some(),
        Probe::Http {
            host,
            port,
            path,
            status,
        } => http_status(host, *port, path, deadline) == Some(*status),
        Probe::Exec { command } => exec(command, deadline, account),
    }
}

fn connect(host: &str, port: u16, timeout: Duration) -> Option<TcpStream> {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs().ok()?.collect();
    addrs
        .iter()
        .find_map(|a| TcpStream::connect_timeout(a, timeout.max(Duration::from_millis(1))).ok())
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// The status code of `GET path`, read from the status line only.
fn http_status(host: &str, port: u16, path: &str, deadline: Instant) -> Option<u16> {
    let mut s = connect(host, port, remaining(deadline)?)?;
    s.set_write_timeout(remaining(deadline)).ok()?;
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: nuvol-health\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < buf.len() {
        s.set_read_timeout(remaining(deadline)).ok()?;
        match s.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => return None,
        }
        if buf[..got].windows(2).any(|w| w == b"\r\n") {
            break;
        }
    }
    let status = parse_status_line(&buf[..got]);
    // Read the rest (bounded) before closing: closing with unread data makes
    // the kernel reset the connection, and the service logs a broken pipe
    // for every probe. A server that keeps the connection open costs at
    // most 100 ms, never the verdict.
    let drain_until = deadline.min(Instant::now() + Duration::from_millis(100));
    let mut sink = [0u8; 1024];
    for _ in 0..64 {
        let Some(left) = remaining(drain_until) else {
            break;
        };
        if s.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match s.read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    status
}

/// `HTTP/1.1 200 OK` → 200.
fn parse_status_line(bytes: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(bytes).ok()?.lines().next()?;
    let mut parts = line.split(' ');
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    (code.len() == 3).then_some(())?;
    code.parse().ok()
}

fn exec(command: &[String], deadline: Instant, account: Option<&Account>) -> bool {
    let Some((program, args)) = command.split_first() else {
        return false;
    };
    let mut cmd = Command::new(program);
    if let Some(acc) = account {
        // std drops the supplementary groups when root sets a uid.
        cmd.uid(acc.uid).gid(acc.gid);
    }
    let Ok(mut child) = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    // Bounded by the deadline; 20 ms steps keep the thread cheap.
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_parses_and_junk_does_not() {
        assert_eq!(parse_status_line(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(parse_status_line(b"HTTP/1.0 200\r\n"), Some(200));
        assert_eq!(parse_status_line(b"SSH-2.0-dropbear\r\n"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 99999 x"), None);
        assert_eq!(parse_status_line(&[0xff, 0xfe]), None);
    }

    #[test]
    fn exec_probe_follows_the_exit_code() {
        let far = Instant::now() + Duration::from_secs(5);
        assert!(exec(&["true".into()], far, None));
        assert!(!exec(&["false".into()], far, None));
        assert!(!exec(&["/nonexistent/probe".into()], far, None));
    }

    #[test]
    fn exec_probe_past_its_deadline_fails() {
        let start = Instant::now();
        let soon = start + Duration::from_millis(200);
        assert!(!exec(&["sleep".into(), "5".into()], soon, None));
        assert!(start.elapsed() < Duration::from_secs(3));
    }
}
