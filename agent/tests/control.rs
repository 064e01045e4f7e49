//! The control socket and the CLI against a real agent: hostile bytes get
//! an error reply and the agent keeps serving; the socket is 0600; usage and
//! config mistakes exit 100 with a located message; an absent agent is 111.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use common::{Agent, TempDir, BIN};
use nuvol_control::frame::{self, MAX_RESPONSE};
use nuvol_control::Response;

fn connect(a: &Agent) -> UnixStream {
    let s = UnixStream::connect(&a.control).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads the agent's one answer; it must be an error mentioning `needle`.
fn expect_error(s: &mut UnixStream, needle: &str) {
    let body = frame::read_body(s, MAX_RESPONSE)
        .expect("a reply frame")
        .expect("a reply, not a hang-up");
    match frame::decode::<Response>(&body).expect("a valid response") {
        Response::Error { message } => {
            assert!(
                message.contains(needle),
                "error '{message}' lacks '{needle}'"
            )
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn hostile_requests_get_errors_and_agent_keeps_serving() {
    let dir = TempDir::new("control");
    let mut a = Agent::new(dir.path(), "c0", "ctl");
    a.start(&[]);

    // Owner-only socket.
    let mode = std::fs::metadata(&a.control).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket mode {mode:o}");

    // Garbage body under a valid length prefix.
    let mut s = connect(&a);
    s.write_all(&[0, 0, 0, 11]).unwrap();
    s.write_all(b"hello world").unwrap();
    expect_error(&mut s, "not a nuvol request");

    // Oversized: refused from the prefix alone.
    let mut s = connect(&a);
    s.write_all(&[0xff, 0xff, 0xff, 0xff]).unwrap();
    expect_error(&mut s, "over the");

    // An HTTP request is "oversized" too ("GET " as a length).
    let mut s = connect(&a);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    expect_error(&mut s, "over the");

    // Truncated: announces 100 bytes, sends 10, closes its side.
    let mut s = connect(&a);
    s.write_all(&[0, 0, 0, 100]).unwrap();
    s.write_all(&[0xa1; 10]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    expect_error(&mut s, "truncated");

    // Truncated inside the length prefix.
    let mut s = connect(&a);
    s.write_all(&[0, 0]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    expect_error(&mut s, "truncated");

    // A valid frame of a request index no version knows.
    let mut s = connect(&a);
    s.write_all(&[0, 0, 0, 3, 0x82, 0x18, 0xc8]).unwrap();
    expect_error(&mut s, "not a nuvol request");

    // Silence: answered with an error after the request timeout.
    let mut s = connect(&a);
    expect_error(&mut s, "no complete request");

    // Connect and hang up at once, many times and in parallel.
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let path = a.control.clone();
            std::thread::spawn(move || {
                let mut s = UnixStream::connect(&path).unwrap();
                if i % 2 == 0 {
                    let _ = s.write_all(&[0, 0, 0, 5, 1, 2]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }

    // Still alive and answering a proper request.
    let info = a.json(&["info"]);
    assert_eq!(info.get("name").and_then(|v| v.as_str()), Some("c0"));
    // Nothing refused: the counts say 0, and the text leaves the line out.
    let num = |k: &str| info.get(k).and_then(|v| v.as_f64());
    assert_eq!(num("members_refused"), Some(0.0));
    assert_eq!(num("services_refused"), Some(0.0));
    assert_eq!(num("max_members"), Some(1024.0));
    assert!(num("packets_malformed").is_some());
    assert!(!a.ok(&["info"]).contains("refused"));
    assert!(a.child.as_mut().unwrap().try_wait().unwrap().is_none());
    let mut rest = Vec::new();
    let mut s = connect(&a);
    s.write_all(&frame::encode(&nuvol_control::Request::Members).unwrap())
        .unwrap();
    let body = frame::read_body(&mut s, MAX_RESPONSE).unwrap().unwrap();
    assert!(
        matches!(frame::decode::<Response>(&body).unwrap(), Response::Members(m) if m.len() == 1)
    );
    // One request per connection: the agent closes after answering.
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn cli_reports_refusals_and_keys_round_trip() {
    let dir = TempDir::new("cli");
    let mut a = Agent::new(dir.path(), "k0", "keys");
    a.start(&[]);
    // Refusals from the agent exit 1 with its message.
    let out = a.cli(&["unpublish", "--type", "http", "--port", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("publishes no http"));
    let out = a.cli(&["rtt", "nobody"]);
    assert_eq!(out.status.code(), Some(1));

    // Keys: generate, install, use, list, persist across a restart.
    let key = a
        .json(&["keys", "generate"])
        .get("key")
        .and_then(|k| k.as_str())
        .unwrap()
        .to_string();
    a.ok(&["keys", "install", &key]);
    a.ok(&["keys", "use", &key]);
    let keys = a.json(&["keys", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert!(a.json(&["info"]).get("encrypted") == Some(&common::json::Value::Bool(true)));
    a.kill9();
    a.start(&[]);
    assert!(a.json(&["info"]).get("encrypted") == Some(&common::json::Value::Bool(true)));
    // The primary cannot be removed.
    assert_eq!(a.cli(&["keys", "remove", &key]).status.code(), Some(1));
}

#[test]
fn usage_and_config_errors_exit_100_with_location() {
    let dir = TempDir::new("usage");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env_remove("NUVOL_CONTROL")
            .output()
            .unwrap()
    };
    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout).to_string();
    for cmd in [
        "agent", "members", "publish", "search", "keys", "monitor", "service", "app",
    ] {
        assert!(text.contains(&format!("nuvol {cmd}")), "help lacks {cmd}");
    }
    assert!(run(&["agent", "--help"]).status.success());
    assert!(run(&["publish", "--help"]).status.success());
    assert_eq!(run(&["--version"]).status.code(), Some(0));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(100));
    assert_eq!(run(&["publish", "--type", "x"]).status.code(), Some(100));
    assert_eq!(run(&["agent", "--nmae", "x"]).status.code(), Some(100));

    // A bad value names file, line and option.
    let cfg = dir.path().join("nuvol");
    std::fs::write(
        &cfg,
        "config agent 'main'\n\toption name 'x'\n\toption bind 'nowhere'\n",
    )
    .unwrap();
    let out = run(&[
        "agent",
        "--config",
        cfg.to_str().unwrap(),
        "--state",
        dir.path().join("s").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(100));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3: bind:", cfg.display())),
        "{err}"
    );

    // No agent listening: temporary failure.
    let out = run(&[
        "--control",
        dir.path().join("none.sock").to_str().unwrap(),
        "members",
    ]);
    assert_eq!(out.status.code(), Some(111));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the agent"));
}

#[test]
fn second_agent_on_same_socket_is_refused() {
    let dir = TempDir::new("dup");
    let mut a = Agent::new(dir.path(), "d0", "dup");
    a.start(&[]);
    let mut b = Agent::new(dir.path(), "d1", "dup");
    b.control = a.control.clone();
    let out = Command::new(BIN)
        .args([
            "agent",
            "--name",
            "d1",
            "--bind",
            &b.addr(),
            "--beacon-port",
            "0",
            "--state",
        ])
        .arg(&b.state)
        .arg("--control")
        .arg(&b.control)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(111));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already answers"));
    // The first agent is unharmed.
    a.ok(&["info"]);
}
