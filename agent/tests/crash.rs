//! Crash safety: `kill -9` the agent over and over while it writes state
//! (a publish is saved before it is acknowledged); every restart must read
//! a valid state — no corruption warning, every acknowledged record back,
//! and an incarnation that only grows.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Agent, TempDir};

const ROUNDS: u32 = 25;

#[test]
fn kill9_while_writing_state_always_restarts_from_valid_state() {
    let dir = TempDir::new("crash");
    let mut peer = Agent::new(dir.path(), "peer", "crash");
    peer.start(&[]);
    let mut a = Agent::new(dir.path(), "victim", "crash");
    let join = vec!["--join".to_string(), peer.addr()];
    let mut incarnation = 0.0;
    // Highest port whose publish the agent acknowledged.
    let acked = Arc::new(AtomicU32::new(0));
    for round in 0..ROUNDS {
        a.start(&join);
        let log = a.log_text();
        assert!(!log.contains("corrupt"), "round {round}: {log}");
        let info = a.json(&["info"]);
        let inc = info.get("incarnation").and_then(|v| v.as_f64()).unwrap();
        assert!(
            inc > incarnation,
            "round {round}: incarnation {inc} after {incarnation}"
        );
        incarnation = inc;
        // Every acknowledged publish survived the previous kill.
        let have = a.json(&["services"]);
        let ports: Vec<u32> = have
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s.get("port")?.as_f64().map(|p| p as u32))
            .collect();
        let last = acked.load(Ordering::SeqCst);
        if last > 0 {
            assert!(
                ports.contains(&last),
                "round {round}: port {last} lost, have {ports:?}"
            );
        }

        // Publish in a tight loop from another thread, and kill mid-stream.
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let acked = acked.clone();
            let control = a.control.clone();
            std::thread::spawn(move || {
                let mut port = 10_000 + round * 100;
                for _ in 0..100 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    port += 1;
                    let out = std::process::Command::new(common::BIN)
                        .arg("--control")
                        .arg(&control)
                        .args([
                            "publish",
                            "--type",
                            "t",
                            "--port",
                            &port.to_string(),
                            "--description",
                            "crash test",
                        ])
                        .output()
                        .unwrap();
                    if out.status.success() {
                        acked.store(port, Ordering::SeqCst);
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(100 + u64::from(round % 5) * 70));
        a.kill9();
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap();
    }
    assert!(
        acked.load(Ordering::SeqCst) > 0,
        "no publish was ever acknowledged"
    );
    a.start(&join);
    assert!(!a.log_text().contains("corrupt"));
    assert!(!dir.path().join("victim.state/node.corrupt").exists());
    // No temp files left behind by the atomic writer matter, but the real
    // file must be there and valid: the restart above read it.
    assert!(dir.path().join("victim.state/node").exists());
}
