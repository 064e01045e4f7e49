//! User events, queries, handler scripts with Serf's environment, the
//! monitor stream, and discovery by beacon without any seed.

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{wait_for, Agent, TempDir, BIN};

#[test]
fn events_and_queries_run_handlers_with_serf_environment() {
    let dir = TempDir::new("events");
    let out = dir.path().join("events.txt");
    let handlers = |a: &Agent| -> Vec<String> {
        vec![
            "--event-handler".into(),
            format!(
                "user:deploy=echo \"$SERF_EVENT $SERF_USER_EVENT $SERF_SELF_NAME $(cat)\" >> {}",
                out.display()
            ),
            "--event-handler".into(),
            format!(
                "member-join=cat >> {}.joins",
                dir.path().join(&a.name).display()
            ),
            "--event-handler".into(),
            "query:whoami=echo \"I am $SERF_SELF_NAME, asked $SERF_QUERY_NAME: $(cat)\"".into(),
        ]
    };
    let mut a = Agent::new(dir.path(), "e0", "ev");
    let mut b = Agent::new(dir.path(), "e1", "ev");
    let ha = handlers(&a);
    a.start(&ha);
    let mut hb = handlers(&b);
    hb.extend(["--join".into(), a.addr()]);
    b.start(&hb);
    wait_for("two members", Duration::from_secs(30), || {
        (a.alive().len() == 2).then_some(())
    });

    // A monitor on e0 sees the event.
    let mut monitor = Command::new(BIN)
        .arg("--control")
        .arg(&a.control)
        .args(["--json", "monitor"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = monitor.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(lines).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));

    b.ok(&["event", "deploy", "v2"]);
    let text = wait_for("both handlers to run", Duration::from_secs(20), || {
        let t = std::fs::read_to_string(&out).ok()?;
        (t.lines().count() >= 2).then_some(t)
    });
    assert!(text.contains("user deploy e0 v2"), "{text}");
    assert!(text.contains("user deploy e1 v2"), "{text}");
    let seen = wait_for("monitor line", Duration::from_secs(10), || {
        rx.try_iter().find(|l| l.contains("\"change\":\"event\""))
    });
    assert!(
        seen.contains("\"name\":\"deploy\"") && seen.contains("\"payload\":\"v2\""),
        "{seen}"
    );
    let _ = monitor.kill();
    let _ = monitor.wait();

    // Member-join handlers got Serf's stdin line: name, address, role, tags.
    let joins = std::fs::read_to_string(dir.path().join("e0.joins")).unwrap_or_default();
    assert!(joins.starts_with("e1\t127.0.0.1\t"), "{joins:?}");

    // A query is answered by every node's handler (this one included).
    let answers = a.json(&["query", "whoami", "hi", "--timeout", "2"]);
    let mut got: Vec<String> = answers
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.get("payload")?.as_str().map(String::from))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec!["I am e0, asked whoami: hi\n", "I am e1, asked whoami: hi\n"]
    );
    // Filtered to one node.
    let one = a.json(&["query", "whoami", "x", "--node", "e1", "--timeout", "2"]);
    assert_eq!(one.as_array().unwrap().len(), 1);
}

#[test]
fn agents_find_each_other_by_beacon_without_a_seed() {
    let dir = TempDir::new("beacon");
    let port = common::free_port().to_string();
    let mc = format!("bc{}", std::process::id());
    let mut agents: Vec<Agent> = (0..3)
        .map(|i| {
            let mut a = Agent::new(dir.path(), &format!("b{i}"), &mc);
            a.extra = vec!["--beacon-port".into(), port.clone()];
            a
        })
        .collect();
    for a in agents.iter_mut() {
        a.start(&[]);
    }
    for a in &agents {
        wait_for(
            &format!("{} to find the others", a.name),
            Duration::from_secs(30),
            || (a.alive().len() == 3).then_some(()),
        );
    }
    // An agent of another microcloud on the same beacon port stays apart.
    let mut other = Agent::new(dir.path(), "stranger", "elsewhere");
    other.extra = vec!["--beacon-port".into(), port];
    other.start(&[]);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(other.alive().len(), 1);
    assert_eq!(agents[0].alive().len(), 3);
}
