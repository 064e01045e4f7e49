//! Federation with real agents on loopback.
//!
//! With `--features heavy`: two microclouds, each a super node and a plain
//! node (four processes, two gossip pools of two plus the federation pool of
//! the two super nodes). A service published on B's plain node is found from
//! A's plain node with `search --scope global` (microcloud, host, port,
//! ranked) and not with the microcloud scope; it goes away when B
//! unpublishes it, when B's provider dies, and when B's super node is
//! killed with SIGKILL. In a base build: an agent given a `federation`
//! section warns once and runs.

mod common;

use std::path::PathBuf;

use common::{Agent, TempDir};

/// Writes a config file holding only `text`.
fn config(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(format!("{name}.conf"));
    std::fs::write(&p, text).expect("write config");
    p
}

#[cfg(not(feature = "heavy"))]
#[test]
fn a_base_build_ignores_a_federation_section_with_one_warning() {
    let dir = TempDir::new("fed-base");
    let conf = config(
        dir.path(),
        "base",
        "config federation\n\toption enabled '1'\n\toption bind '127.0.0.1:1'\n\tlist seed 'x:1'\n",
    );
    let mut a = Agent::new(dir.path(), "base", "fedbase");
    a.start(&["--config".into(), conf.display().to_string()]);
    // It runs, answers, and a global search is just its own catalog.
    a.ok(&[
        "publish",
        "--type",
        "http",
        "--port",
        "80",
        "--description",
        "d",
    ]);
    let found = a.json(&["search", "--scope", "global"]);
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    let log = a.log_text();
    let warnings = log
        .lines()
        .filter(|l| l.contains("this build has no federation support"))
        .count();
    assert_eq!(warnings, 1, "{log}");
    assert!(
        log.contains("base.conf:1:"),
        "the warning names file and line: {log}"
    );
}

#[cfg(feature = "heavy")]
mod heavy {
    use super::*;
    use common::{free_port, json::Value, wait_for};
    use std::time::Duration;

    /// WAN timings shrunk so failure detection in the pool takes seconds.
    const POOL_TIMINGS: &str = "\tlist gossip 'probe_interval_ms=300'\n\
        \tlist gossip 'probe_timeout_ms=150'\n\
        \tlist gossip 'gossip_interval_ms=100'\n\
        \tlist gossip 'suspicion_mult=2'\n\
        \tlist gossip 'suspicion_max_timeout_mult=3'\n";

    /// LAN timings for the same reason (a provider's death in B).
    fn lan_fast() -> Vec<String> {
        [
            "probe_interval_ms=300",
            "probe_timeout_ms=150",
            "suspicion_mult=2",
            "suspicion_max_timeout_mult=3",
        ]
        .iter()
        .flat_map(|kv| ["--gossip".to_string(), kv.to_string()])
        .collect()
    }

    fn super_config(dir: &std::path::Path, name: &str, port: u16, seed: Option<u16>) -> String {
        let key = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
        let seed = seed
            .map(|p| format!("\tlist seed '127.0.0.1:{p}'\n"))
            .unwrap_or_default();
        let text = format!(
            "config federation\n\toption enabled '1'\n\toption bind '127.0.0.1:{port}'\n{seed}\
             \toption key '{key}'\n{POOL_TIMINGS}"
        );
        config(dir, name, &text).display().to_string()
    }

    fn global(a: &Agent, ty: &str) -> Vec<Value> {
        a.json(&["search", "--scope", "global", "--type", ty])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn field<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
        v.get(k).and_then(|x| x.as_str())
    }

    /// The hit of `host`'s service in A's global view, if any.
    fn hit_of(a: &Agent, ty: &str, host: &str) -> Option<Value> {
        global(a, ty)
            .into_iter()
            .find(|v| field(v, "host") == Some(host))
    }

    #[test]
    fn a_plain_router_finds_another_microclouds_service_until_it_goes_away() {
        let dir = TempDir::new("fed");
        let pid = std::process::id();
        let (mca, mcb) = (format!("fa{pid}"), format!("fb{pid}"));
        let (fa, fb) = (free_port(), free_port());
        let mut a_super = Agent::new(dir.path(), "a-super", &mca);
        let mut a_plain = Agent::new(dir.path(), "a-plain", &mca);
        let mut b_super = Agent::new(dir.path(), "b-super", &mcb);
        let mut b_plain = Agent::new(dir.path(), "b-plain", &mcb);
        let conf_a = super_config(dir.path(), "a-super", fa, None);
        let conf_b = super_config(dir.path(), "b-super", fb, Some(fa));
        let mut args = vec!["--config".to_string(), conf_a];
        args.extend(lan_fast());
        a_super.start(&args);
        let mut args = vec!["--config".to_string(), conf_b];
        args.extend(lan_fast());
        b_super.start(&args);
        let mut args = vec!["--join".to_string(), a_super.addr()];
        args.extend(lan_fast());
        a_plain.start(&args);
        let mut args = vec!["--join".to_string(), b_super.addr()];
        args.extend(lan_fast());
        b_plain.start(&args);
        for (who, sees) in [(&a_plain, "a-super"), (&b_plain, "b-super")] {
            wait_for(
                &format!("{} to see {sees}", who.name),
                Duration::from_secs(30),
                || (who.state_of(sees).as_deref() == Some("alive")).then_some(()),
            );
        }
        wait_for(
            "the super nodes to meet in the pool",
            Duration::from_secs(30),
            || {
                let log = a_super.log_text();
                log.contains(&format!("super node {mcb}/b-super joined"))
                    .then_some(())
            },
        );

        // Published in B, found from A's plain router with the global scope.
        b_plain.ok(&[
            "publish",
            "--type",
            "wiki",
            "--port",
            "8080",
            "--description",
            "B's wiki",
        ]);
        let hit = wait_for(
            "A's plain node to find B's wiki",
            Duration::from_secs(30),
            || hit_of(&a_plain, "wiki", "b-plain"),
        );
        assert_eq!(field(&hit, "microcloud"), Some(mcb.as_str()));
        assert_eq!(field(&hit, "ip"), Some("127.0.0.1"));
        assert_eq!(field(&hit, "description"), Some("B's wiki"));
        assert_eq!(hit.get("port").and_then(|p| p.as_f64()), Some(8080.0));
        let q = hit.get("quality").and_then(|q| q.as_f64()).unwrap();
        assert!((1.0..=100.0).contains(&q), "quality {q}");
        // Not in A's own microcloud, and only once (A's super node answers
        // once; B's records never come back into B as foreign ones).
        let local = a_plain.json(&["search", "--type", "wiki"]);
        assert_eq!(local.as_array().map(Vec::len), Some(0));
        let local = a_plain.json(&["search", "--scope", "microcloud"]);
        assert_eq!(local.as_array().map(Vec::len), Some(0));
        assert_eq!(global(&a_plain, "wiki").len(), 1);
        assert_eq!(
            global(&b_plain, "wiki").len(),
            1,
            "B sees its own wiki once"
        );
        // The super node finds it too (it asks itself).
        assert!(hit_of(&a_super, "wiki", "b-plain").is_some());

        // Ranked with A's own services: best quality first.
        a_plain.ok(&[
            "publish",
            "--type",
            "wiki",
            "--port",
            "9090",
            "--description",
            "A's wiki",
        ]);
        let both = wait_for(
            "A's global view to hold both wikis",
            Duration::from_secs(30),
            || {
                let g = global(&a_plain, "wiki");
                (g.len() == 2).then_some(g)
            },
        );
        let qs: Vec<f64> = both
            .iter()
            .map(|v| v.get("quality").and_then(|q| q.as_f64()).unwrap())
            .collect();
        assert!(qs[0] >= qs[1], "ranked best first: {qs:?}");
        let clouds: Vec<&str> = both.iter().filter_map(|v| field(v, "microcloud")).collect();
        assert!(clouds.contains(&mca.as_str()) && clouds.contains(&mcb.as_str()));

        // Unpublished in B: gone from A's global view.
        b_plain.ok(&["unpublish", "--type", "wiki", "--port", "8080"]);
        wait_for(
            "B's wiki to leave A's view after unpublish",
            Duration::from_secs(20),
            || hit_of(&a_plain, "wiki", "b-plain").is_none().then_some(()),
        );

        // B's provider dies: gone once B's super node sees it failed.
        b_plain.ok(&[
            "publish",
            "--type",
            "git",
            "--port",
            "3000",
            "--description",
            "B's git",
        ]);
        wait_for("B's git in A's view", Duration::from_secs(30), || {
            hit_of(&a_plain, "git", "b-plain")
        });
        b_plain.kill9();
        wait_for(
            "B's git to leave A's view after its provider died",
            Duration::from_secs(40),
            || hit_of(&a_plain, "git", "b-plain").is_none().then_some(()),
        );

        // B's super node dies: every B service leaves A's view.
        b_super.ok(&[
            "publish",
            "--type",
            "ssh",
            "--port",
            "22",
            "--description",
            "B's ssh",
        ]);
        wait_for("B's ssh in A's view", Duration::from_secs(30), || {
            hit_of(&a_plain, "ssh", "b-super")
        });
        b_super.kill9();
        wait_for(
            "B's ssh to leave A's view after B's super node died",
            Duration::from_secs(40),
            || hit_of(&a_plain, "ssh", "b-super").is_none().then_some(()),
        );
        // A's own service is still found, globally and locally.
        assert!(hit_of(&a_plain, "wiki", "a-plain").is_some());
    }

    #[test]
    fn two_super_nodes_of_one_microcloud_give_one_hit_and_cover_for_each_other() {
        let dir = TempDir::new("fed2");
        let pid = std::process::id();
        let (mca, mcb) = (format!("ga{pid}"), format!("gb{pid}"));
        let (fa, fb1, fb2) = (free_port(), free_port(), free_port());
        let mut a_super = Agent::new(dir.path(), "a-super", &mca);
        let mut a_plain = Agent::new(dir.path(), "a-plain", &mca);
        let mut b1 = Agent::new(dir.path(), "b1", &mcb);
        let mut b2 = Agent::new(dir.path(), "b2", &mcb);
        let mut b_plain = Agent::new(dir.path(), "b-plain", &mcb);
        let with = |conf: String, join: Option<String>| {
            let mut v = vec!["--config".to_string(), conf];
            if let Some(j) = join {
                v.extend(["--join".to_string(), j]);
            }
            v.extend(lan_fast());
            v
        };
        a_super.start(&with(super_config(dir.path(), "a-super", fa, None), None));
        b1.start(&with(super_config(dir.path(), "b1", fb1, Some(fa)), None));
        b2.start(&with(
            super_config(dir.path(), "b2", fb2, Some(fa)),
            Some(b1.addr()),
        ));
        let mut args = vec!["--join".to_string(), a_super.addr()];
        args.extend(lan_fast());
        a_plain.start(&args);
        let mut args = vec!["--join".to_string(), b1.addr()];
        args.extend(lan_fast());
        b_plain.start(&args);
        for sees in ["b1", "b2"] {
            wait_for(
                &format!("b-plain to see {sees}"),
                Duration::from_secs(30),
                || (b_plain.state_of(sees).as_deref() == Some("alive")).then_some(()),
            );
        }
        wait_for("a-plain to see a-super", Duration::from_secs(30), || {
            (a_plain.state_of("a-super").as_deref() == Some("alive")).then_some(())
        });

        b_plain.ok(&[
            "publish",
            "--type",
            "wiki",
            "--port",
            "80",
            "--description",
            "w",
        ]);
        wait_for(
            "both B super nodes' summaries in A's pool view",
            Duration::from_secs(30),
            || {
                let log = a_super.log_text();
                (log.contains(&format!("super node {mcb}/b1 joined"))
                    && log.contains(&format!("super node {mcb}/b2 joined")))
                .then_some(())
            },
        );
        wait_for("B's wiki in A's view", Duration::from_secs(30), || {
            hit_of(&a_plain, "wiki", "b-plain")
        });
        // Both publish it; A shows it once.
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(global(&a_plain, "wiki").len(), 1);

        // One B super node dies: the other still carries B's wiki.
        b1.kill9();
        wait_for(
            "A's pool to declare b1 failed",
            Duration::from_secs(40),
            || {
                a_super
                    .log_text()
                    .contains(&format!("super node {mcb}/b1 failed"))
                    .then_some(())
            },
        );
        wait_for(
            "B's wiki still in A's view through b2",
            Duration::from_secs(20),
            || hit_of(&a_plain, "wiki", "b-plain"),
        );
    }
}
