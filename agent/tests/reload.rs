//! SIGHUP re-reads the config file: new seeds are joined, a broken file is
//! refused with a located message and the agent keeps its running config.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{wait_for, Agent, TempDir};

fn hup(a: &Agent) {
    let pid = a.pid().expect("running").to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
}

#[test]
fn sighup_reloads_seeds_and_refuses_a_broken_file() {
    let dir = TempDir::new("reload");
    let mut seed = Agent::new(dir.path(), "r0", "reload");
    seed.start(&[]);
    let cfg = dir.path().join("nuvol.conf");
    std::fs::write(&cfg, "config agent 'main'\n\toption profile 'lan'\n").unwrap();
    let mut b = Agent::new(dir.path(), "r1", "reload");
    b.start(&["--config".into(), cfg.display().to_string()]);
    assert_eq!(b.alive().len(), 1);

    // A broken file: refused, named with its line; the agent keeps running.
    std::fs::write(&cfg, "config agent 'main'\n\toption profile 'moon'\n").unwrap();
    hup(&b);
    wait_for("reload refusal in the log", Duration::from_secs(10), || {
        b.log_text().contains("reload refused").then_some(())
    });
    assert!(
        b.log_text()
            .contains(&format!("{}:2: profile:", cfg.display())),
        "{}",
        b.log_text()
    );
    b.ok(&["info"]);

    // A new seed in the file: joined on SIGHUP.
    std::fs::write(
        &cfg,
        format!("config agent 'main'\n\tlist join '{}'\n", seed.addr()),
    )
    .unwrap();
    hup(&b);
    wait_for(
        "r1 to join r0 after SIGHUP",
        Duration::from_secs(30),
        || (seed.alive().len() == 2 && b.alive().len() == 2).then_some(()),
    );
    assert!(b.log_text().contains("configuration reloaded"));
}
