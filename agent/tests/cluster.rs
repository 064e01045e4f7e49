//! Ten real agents on loopback: join, publish, search with `--json` from
//! another node, unpublish, `kill -9` (others mark it failed), restart (it
//! rejoins through its saved peers), SIGTERM (others mark it left).

mod common;

use std::time::Duration;

use common::{wait_for, Agent, TempDir};

const N: usize = 10;

fn all_see(agents: &[Agent], who: &str, state: &str, skip: &[usize], limit: Duration) {
    for (i, a) in agents.iter().enumerate() {
        if skip.contains(&i) {
            continue;
        }
        wait_for(&format!("{} to see {who} {state}", a.name), limit, || {
            (a.state_of(who).as_deref() == Some(state)).then_some(())
        });
    }
}

#[test]
fn ten_agents_join_publish_search_fail_rejoin_and_leave() {
    let dir = TempDir::new("cluster");
    let mc = format!("it{}", std::process::id());
    let mut agents: Vec<Agent> = (0..N)
        .map(|i| Agent::new(dir.path(), &format!("n{i}"), &mc))
        .collect();
    agents[0].start(&[]);
    let seed = agents[0].addr();
    for a in agents.iter_mut().skip(1) {
        a.start(&["--join".into(), seed.clone()]);
    }

    // Everyone sees all ten alive.
    for a in &agents {
        wait_for(
            &format!("{} to see {N} alive", a.name),
            Duration::from_secs(90),
            || (a.alive().len() == N).then_some(()),
        );
    }

    // Publish on n3, find it from n7 with --json.
    agents[3].ok(&[
        "publish",
        "--type",
        "http",
        "--port",
        "8080",
        "--description",
        "wiki",
        "--txt",
        "path=/w",
    ]);
    let hit = wait_for("n7 to find n3's service", Duration::from_secs(30), || {
        let v = agents[7].json(&["search", "--type", "http"]);
        v.as_array()?.first().cloned()
    });
    assert_eq!(hit.get("host").and_then(|v| v.as_str()), Some("n3"));
    assert_eq!(hit.get("port").and_then(|v| v.as_f64()), Some(8080.0));
    assert_eq!(
        hit.get("description").and_then(|v| v.as_str()),
        Some("wiki")
    );
    assert_eq!(
        hit.get("microcloud").and_then(|v| v.as_str()),
        Some(mc.as_str())
    );
    assert_eq!(
        hit.get("txt")
            .and_then(|t| t.get("path"))
            .and_then(|v| v.as_str()),
        Some("/w")
    );
    assert_eq!(hit.get("ip").and_then(|v| v.as_str()), Some("127.0.0.1"));
    // Global scope finds it too (asked of n7, which has the record: another
    // node may not have heard of it yet); another type does not.
    let global = agents[7].json(&["search", "--scope", "global"]);
    assert!(global.as_array().is_some_and(|a| !a.is_empty()));
    let none = agents[7].json(&["search", "--type", "ssh"]);
    assert_eq!(none.as_array().map(Vec::len), Some(0));

    // Unpublish: gone everywhere.
    agents[3].ok(&["unpublish", "--type", "http", "--port", "8080"]);
    for a in &agents {
        wait_for(
            &format!("{} to drop the record", a.name),
            Duration::from_secs(30),
            || {
                let v = a.json(&["search", "--type", "http"]);
                (v.as_array()?.is_empty()).then_some(())
            },
        );
    }

    // kill -9 n5: the others declare it failed.
    let before = agents[5]
        .json(&["info"])
        .get("incarnation")
        .and_then(|v| v.as_f64())
        .unwrap();
    agents[5].kill9();
    all_see(&agents, "n5", "failed", &[5], Duration::from_secs(90));

    // Restart n5 without --join: it rejoins through its saved peers, with a
    // higher incarnation, and everyone sees it alive again.
    agents[5].start(&[]);
    all_see(&agents, "n5", "alive", &[], Duration::from_secs(90));
    let after = agents[5]
        .json(&["info"])
        .get("incarnation")
        .and_then(|v| v.as_f64())
        .unwrap();
    assert!(after > before, "incarnation {after} should exceed {before}");
    wait_for("n5 to see all ten alive", Duration::from_secs(90), || {
        (agents[5].alive().len() == N).then_some(())
    });

    // `nuvol leave` on n7: the others mark it left; `nuvol join` brings it
    // back alive everywhere without a restart.
    agents[7].ok(&["leave"]);
    all_see(&agents, "n7", "left", &[7], Duration::from_secs(30));
    agents[7].ok(&["join", &seed]);
    all_see(&agents, "n7", "alive", &[], Duration::from_secs(30));

    // SIGTERM n8: it exits 0 and the others mark it left, not failed.
    let status = agents[8].term();
    assert!(status.success(), "SIGTERM exit status {status}");
    all_see(&agents, "n8", "left", &[8], Duration::from_secs(30));
    assert!(
        !agents[8].control.exists(),
        "control socket removed on graceful exit"
    );
    assert!(
        agents[8].log_text().contains("leaving"),
        "{}",
        agents[8].log_text()
    );

    // No agent crashed along the way.
    for (i, a) in agents.iter_mut().enumerate() {
        if i == 8 {
            continue;
        }
        let c = a.child.as_mut().expect("running");
        assert!(
            c.try_wait().unwrap().is_none(),
            "{} exited: {}",
            a.name,
            a.log_text()
        );
        assert!(!a.log_text().contains("panicked"), "{}", a.log_text());
    }
}
