//! An app under the real supervisor shell (`nuvol-supervise`, feature `os`),
//! wired as the agent wires it: [`Apps::service_def`] in, publish notices out.
//!
//! Proves: the app is started and published once healthy; killing the
//! container's init makes the supervisor restart it; a supervisor that goes
//! away without stopping anything (an agent crash or restart) leaves the
//! container running, and the next supervisor adopts it without restarting
//! it; a supervised stop stops the container and withdraws the record.
//!
//! A binary of its own: the supervisor installs a process-wide SIGCHLD handler.

mod common;

use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{enter_private_network, page, shipped_templates, unique, wait_for, Env, PUBLISHED};
use nuvol_lxc::driver::{Lxc, State};
use nuvol_supervise::os::{Notice, Options, Supervisor};
use nuvol_supervise::policy::{HealthTiming, Respawn};
use nuvol_supervise::service::ServiceDef;

fn init_pid(lxc: &Lxc, name: &str) -> Option<u32> {
    lxc.info(name)
        .ok()
        .filter(|i| i.state == State::Running)
        .and_then(|i| i.pid)
}

/// The next notice, or a failure naming what was awaited.
fn next_notice(rx: &Receiver<Notice>, what: &str) -> Notice {
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no notice while waiting for {what}"))
}

fn wait_published(rx: &Receiver<Notice>) -> nuvol_control::PublishSpec {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "never published");
        if let Notice::Publish { record, .. } = next_notice(rx, "publish") {
            return record;
        }
    }
}

fn supervise(dir: &std::path::Path, def: &ServiceDef) -> (Supervisor, Receiver<Notice>) {
    let (tx, rx) = mpsc::channel();
    let sup = Supervisor::spawn(
        Options::new(dir.join("supervise")),
        vec![def.clone()],
        move |n| {
            let _ = tx.send(n);
        },
    )
    .expect("supervisor starts");
    (sup, rx)
}

#[test]
fn app_under_the_supervisor_restarts_on_crash_and_survives_an_agent_restart() {
    require_lxc!();
    enter_private_network();
    let env = Env::new("sv", Some(&shipped_templates()));
    let name = unique("sv");
    env.apps.install("website", &name).expect("install");
    let lxc = env.apps.lxc.clone();

    let mut def = env.apps.service_def(&name).unwrap();
    // procd's defaults wait 5 s to respawn and probe every 10 s; the test
    // keeps the rules and shortens the clock.
    def.policy.respawn = Some(Respawn {
        threshold: Duration::from_secs(3600),
        timeout: Duration::from_millis(500),
        retry: 5,
    });
    def.policy.health = Some(HealthTiming {
        interval: Duration::from_millis(500),
        timeout: Duration::from_secs(2),
        failures: 1,
        successes: 1,
    });

    let (sup, rx) = supervise(&env.dir, &def);
    let record = wait_published(&rx);
    assert_eq!((record.service_type.as_str(), record.port), ("http", 8080));
    assert!(record.txt.contains(&("app".into(), name.clone())));
    let first = init_pid(&lxc, &name).expect("the supervisor started the container");
    assert!(page(PUBLISHED).is_some());

    // Kill the container's init: the record goes, the supervisor respawns
    // the watcher, the container comes back and is published again.
    let killed = Instant::now();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    wait_for("a new init", Duration::from_secs(30), || {
        init_pid(&lxc, &name).is_some_and(|p| p != first)
    });
    let recovered = killed.elapsed();
    let record = wait_published(&rx);
    assert_eq!(record.port, 8080);
    assert!(page(PUBLISHED).is_some());
    let view = sup.status(&def.name).unwrap();
    assert_eq!(view.restarts, 1, "{view:?}");
    let second = init_pid(&lxc, &name).unwrap();

    // The agent restarts: its supervisor detaches (as a crash would), the
    // container keeps running, and the next supervisor adopts the watcher.
    sup.detach();
    assert_eq!(init_pid(&lxc, &name), Some(second));
    let (sup, rx) = supervise(&env.dir, &def);
    wait_published(&rx);
    assert_eq!(
        init_pid(&lxc, &name),
        Some(second),
        "adopted, not restarted"
    );
    let view = sup.status(&def.name).unwrap();
    assert_eq!(view.state, "running", "{view:?}");

    // A supervised stop stops the container and withdraws the record.
    let stopping = Instant::now();
    sup.stop(&def.name).unwrap();
    loop {
        if let Notice::Unpublish { record, .. } = next_notice(&rx, "unpublish") {
            assert_eq!(record.port, 8080);
            break;
        }
    }
    wait_for("the container to stop", Duration::from_secs(30), || {
        lxc.state(&name).ok() == Some(State::Stopped)
    });
    let stop_time = stopping.elapsed();
    sup.shutdown();
    eprintln!("measured: init killed → new init {recovered:?}; supervised stop {stop_time:?}");

    env.apps.uninstall(&name).unwrap();
    assert!(env.lxcpath_entries().is_empty());
}
