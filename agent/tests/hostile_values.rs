//! Real keyless agents on loopback under well-formed datagrams with
//! hostile values (issue 15, items 1-4), as any neighbour could send them:
//! a suspicion at incarnation 2^64-1, a forged service and forged tags for
//! another node at 2^64-1 and at believable versions, a user event at
//! Lamport 2^64-1, and floods of members with 10,000- and 60,000-byte
//! names. After each, nothing real is lost: every member stays alive, the
//! owner's record and tags are what everyone holds, later events arrive,
//! memory stays flat and a newcomer still joins.
//!
//! Only 127.0.0.1 is contacted.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::{json, wait_for, Agent, TempDir};
use nuvol_gossip::wire::{self, CatalogEntry, Message, MAX_JUMP};
use nuvol_gossip::{Health, ServiceRecord};

/// A keyless agent's datagram: the PLAIN byte, then the packet.
fn send(to: &Agent, msgs: &[Message]) {
    let mut bytes = vec![0u8];
    bytes.extend(wire::encode_packet(msgs));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to: SocketAddr = to.addr().parse().unwrap();
    sock.send_to(&bytes, to).unwrap();
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM")
}

/// What `agent` finds for `node`: (ip, txt path) of each record.
fn records_of(agent: &Agent, node: &str) -> Vec<(String, String)> {
    let v = agent.json(&["search"]);
    let s = |r: &json::Value, k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("node").and_then(|v| v.as_str()) == Some(node) || s(r, "host") == node)
        .map(|r| {
            let path = r
                .get("txt")
                .and_then(|t| t.get("path"))
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            (s(r, "ip"), path)
        })
        .collect()
}

fn microcloud_of(agent: &Agent, who: &str) -> Option<String> {
    let v = agent.json(&["members"]);
    v.as_array()?
        .iter()
        .find(|m| m.get("name").and_then(|n| n.as_str()) == Some(who))?
        .get("tags")?
        .get("microcloud")?
        .as_str()
        .map(String::from)
}

#[test]
fn forged_counters_records_and_names_change_nothing_real() {
    let dir = TempDir::new("hostile-values");
    let events = dir.path().join("events.txt");
    let handler = vec![
        "--event-handler".to_string(),
        format!(
            "user:deploy=echo \"$SERF_SELF_NAME $(cat)\" >> {}",
            events.display()
        ),
    ];
    let mut agents: Vec<Agent> = (0..3)
        .map(|i| Agent::new(dir.path(), &format!("n{i}"), "mc"))
        .collect();
    agents[0].start(&handler);
    let seed = agents[0].addr();
    for a in agents.iter_mut().skip(1) {
        let mut args = handler.clone();
        args.extend(["--join".into(), seed.clone()]);
        a.start(&args);
    }
    for a in &agents {
        wait_for("3 alive", Duration::from_secs(30), || {
            (a.alive().len() == 3).then_some(())
        });
    }
    agents[1].ok(&[
        "publish",
        "--type",
        "web",
        "--port",
        "80",
        "--description",
        "site",
        "--txt",
        "path=/",
    ]);
    for a in &agents {
        wait_for("n1's record", Duration::from_secs(20), || {
            (records_of(a, "n1") == [("127.0.0.1".into(), "/".into())]).then_some(())
        });
    }

    // Item 2: the 22-byte datagram, to the two others.
    let suspect = Message::Suspect {
        name: "n1".into(),
        incarnation: u64::MAX,
        from: "n0".into(),
    };
    // Item 3: n1's slot and a new one at 2^64-1 and at believable versions,
    // and n1's tags likewise (the catalog version and Lamport times n1
    // holds are small: it published once and set its tags at start).
    let phish = |version: u64, port: u16| Message::Service {
        node: "n1".into(),
        entry: CatalogEntry {
            version,
            service_type: "web".into(),
            port,
            record: Some(ServiceRecord {
                service_type: "web".into(),
                description: "site".into(),
                host: "n1".into(),
                ip: "6.6.6.6".into(),
                port,
                microcloud: "mc".into(),
                txt: vec![("path".into(), "/phish".into())],
                health: Health::Healthy,
            }),
        },
    };
    let tags = |lamport: u64| Message::Tags {
        name: "n1".into(),
        lamport,
        tags: vec![("microcloud".into(), "evilcloud".into())],
    };
    // Item 4: a user event at 2^64-1 and one far beyond every clock.
    let event = |lamport: u64| Message::UserEvent {
        lamport,
        origin: "n2".into(),
        name: "deploy".into(),
        payload: b"forged".to_vec(),
    };
    for target in [&agents[0], &agents[2]] {
        send(target, std::slice::from_ref(&suspect));
        send(target, &[phish(u64::MAX, 80)]);
        send(target, &[phish(1_000, 80), phish(1_001, 81)]);
        send(target, &[tags(u64::MAX)]);
        send(target, &[tags(1_000)]);
        send(target, &[event(u64::MAX)]);
        send(target, &[event(3 * MAX_JUMP)]);
    }
    // Long enough for a forged suspicion to have failed n1 (it did within
    // 5 s before), and for n1's answers to the believable claims to spread.
    std::thread::sleep(Duration::from_secs(12));
    for a in &agents {
        assert_eq!(
            a.alive().len(),
            3,
            "{} lost a member: {:?}",
            a.name,
            a.alive()
        );
        assert_eq!(
            records_of(a, "n1"),
            [("127.0.0.1".into(), "/".into())],
            "{} holds a forged record of n1",
            a.name
        );
        assert_eq!(microcloud_of(a, "n1").as_deref(), Some("mc"), "{}", a.name);
    }
    // n1 still speaks for itself.
    agents[1].ok(&["unpublish", "--type", "web", "--port", "80"]);
    for a in &agents {
        wait_for("n1's record gone", Duration::from_secs(20), || {
            records_of(a, "n1").is_empty().then_some(())
        });
    }
    // Later events arrive everywhere; the forged ones ran no handler.
    agents[2].ok(&["event", "deploy", "real"]);
    wait_for(
        "the real event on every node",
        Duration::from_secs(20),
        || {
            let text = std::fs::read_to_string(&events).unwrap_or_default();
            (text.lines().filter(|l| l.ends_with(" real")).count() == 3).then_some(())
        },
    );
    let text = std::fs::read_to_string(&events).unwrap_or_default();
    assert!(
        !text.contains("forged"),
        "a forged event ran a handler: {text}"
    );

    // Item 1: 60 datagrams of 10,000-byte names, 1,100 of 60,000.
    let pid = agents[0].pid().unwrap();
    let before = vm_hwm_kib(pid);
    let malformed = |a: &Agent| {
        let info = a.json(&["info"]);
        info.get("packets_malformed")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0)
    };
    let refused_before = malformed(&agents[0]);
    for k in 0..1_160 {
        let len = if k < 60 { 10_000 } else { 60_000 };
        let alive = Message::Alive {
            name: format!("{k}{}", "x".repeat(len)),
            addr: "127.0.0.1:9".parse().unwrap(),
            incarnation: 1,
        };
        send(&agents[0], &[alive]);
        if k % 20 == 19 {
            // Loopback drops what the socket buffer cannot hold.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let members = agents[0].json(&["members"]);
    assert_eq!(
        members.as_array().unwrap().len(),
        3,
        "fake members were taken in"
    );
    let grown = vm_hwm_kib(pid).saturating_sub(before);
    assert!(grown < 2_048, "peak memory grew by {grown} KiB");
    // Loopback's socket buffer drops some of a blast this fast; what
    // arrived was refused at decode.
    let refused = malformed(&agents[0]) - refused_before;
    assert!(
        refused >= 300.0,
        "only {refused} datagrams refused (received?)"
    );
    // And a newcomer joins through the flooded seed.
    let mut n3 = Agent::new(dir.path(), "n3", "mc");
    n3.start(&["--join".into(), seed]);
    wait_for("n3 to see 4 alive", Duration::from_secs(30), || {
        (n3.alive().len() == 4).then_some(())
    });
}
