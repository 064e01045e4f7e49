//! Well-formed messages with hostile values (issue 15): a forger on the
//! network who knows the wire format but not any node's mind. Each test
//! injects the forged datagram into a settled cluster on the simulator,
//! or into one node, and asserts nothing real was lost.
//!
//! The rules they prove (docs/protocol.md §13): every field is bounded at
//! decode; a counter may move at most `MAX_JUMP` above what is held and
//! never past `MAX_COUNTER`; only a node speaks for its own records, and
//! it outbids any claim about them it did not make.

use core::net::SocketAddr;
use core::time::Duration;
use nuvol_gossip::sim::{Sim, SimConfig};
use nuvol_gossip::wire::{
    self, encode_packet, encode_push_pull, CatalogEntry, Message, PushPull, WireError, MAX_JUMP,
};
use nuvol_gossip::{
    Config, Event, Health, Identity, InputError, Instant, Keyring, MemberState, Node, OpError,
    SearchFilter, ServiceRecord,
};

/// Where forged datagrams come from: no node of the cluster.
fn forger() -> SocketAddr {
    SocketAddr::from(([10, 9, 9, 9], 7946))
}

/// A plaintext datagram, as a keyless agent (the default) receives it.
fn datagram(msgs: &[Message]) -> Vec<u8> {
    Keyring::plaintext().seal([0; 12], &encode_packet(msgs))
}

fn web(ip: &str, path: &str) -> ServiceRecord {
    ServiceRecord {
        service_type: "web".into(),
        description: "the site".into(),
        host: "n1".into(),
        ip: ip.into(),
        port: 80,
        microcloud: "mc1".into(),
        txt: vec![("path".into(), path.into())],
        health: Health::Healthy,
    }
}

/// `n` keyless nodes joined through node 0, converged.
fn cluster(n: usize) -> Sim {
    let mut sim = Sim::new(SimConfig::default());
    for _ in 0..n {
        sim.spawn(Config::lan(), Keyring::plaintext());
    }
    sim.join_all(0);
    let ok = sim.run_until_true(Duration::from_millis(200), Duration::from_secs(60), |s| {
        (0..s.len()).all(|i| s.node(i).num_live() == s.len())
    });
    assert!(ok.is_some(), "{n} nodes did not converge");
    sim
}

/// Hand `msgs` to every node but `skip` (the victim hears it only through
/// gossip, as when the forger cannot reach it).
fn inject(sim: &mut Sim, skip: Option<usize>, msgs: &[Message]) -> Vec<Result<(), InputError>> {
    let bytes = datagram(msgs);
    (0..sim.len())
        .filter(|&i| Some(i) != skip)
        .map(|i| sim.with_node(i, |n, now| n.handle_packet(now, forger(), &bytes)))
        .collect()
}

fn web_records_of(sim: &Sim, i: usize, node: &str) -> Vec<ServiceRecord> {
    sim.node(i)
        .search(&SearchFilter::default())
        .into_iter()
        .filter(|r| r.node == node)
        .map(|r| r.record)
        .collect()
}

#[test]
fn the_22_byte_suspicion_at_u64_max_is_refused_at_decode() {
    // [5, "n1", 2^64-1, "n0"], in a datagram: the reproduction of item 2.
    let forged = Message::Suspect {
        name: "n1".into(),
        incarnation: u64::MAX,
        from: "n0".into(),
    };
    assert_eq!(
        wire::decode_packet(&encode_packet(std::slice::from_ref(&forged))),
        Err(WireError::OutOfBounds("incarnation"))
    );
    let mut sim = cluster(5);
    let before = sim.node(1).incarnation();
    for r in inject(&mut sim, None, &[forged]) {
        assert_eq!(
            r,
            Err(InputError::Wire(WireError::OutOfBounds("incarnation")))
        );
    }
    sim.run_for(Duration::from_secs(30));
    assert_eq!(sim.node(1).incarnation(), before, "nothing to refute");
    for i in 0..5 {
        assert_eq!(sim.node(i).num_live(), 5, "node {i} lost a member");
    }
}

#[test]
fn a_suspicion_beyond_the_jump_is_refused_by_every_node() {
    let mut sim = cluster(5);
    let held = sim.node(0).member("n1").unwrap().incarnation;
    let forged = Message::Suspect {
        name: "n1".into(),
        incarnation: held + MAX_JUMP + 1,
        from: "n0".into(),
    };
    inject(&mut sim, None, &[forged]);
    sim.run_for(Duration::from_secs(30));
    assert_eq!(
        sim.node(1).incarnation(),
        held,
        "a forged incarnation moved ours"
    );
    for i in 0..5 {
        assert_eq!(sim.node(i).num_live(), 5, "node {i} lost a member");
        assert!(
            sim.node(i).stats().jumps_refused >= 1,
            "node {i} took it in"
        );
    }
    assert!(sim
        .take_events()
        .iter()
        .all(|(_, _, e)| !matches!(e, Event::MemberFailed { .. } | Event::MemberSuspect { .. })));
}

#[test]
fn a_believable_forged_suspicion_or_death_is_refuted_and_n1_stays_alive() {
    let mut sim = cluster(8);
    let held = sim.node(0).member("n1").unwrap().incarnation;
    let suspect = Message::Suspect {
        name: "n1".into(),
        incarnation: held + 1000,
        from: "n0".into(),
    };
    let dead = Message::Dead {
        name: "n1".into(),
        incarnation: held + 2000,
        from: "n3".into(),
    };
    inject(&mut sim, Some(1), &[suspect, dead]);
    sim.run_for(Duration::from_secs(20));
    assert!(
        sim.node(1).incarnation() > held + 2000,
        "n1 outbid the claim"
    );
    for i in 0..8 {
        let m = sim.node(i).member("n1").unwrap();
        assert_eq!(
            m.state,
            MemberState::Alive,
            "node {i} holds n1 {:?}",
            m.state
        );
    }
}

#[test]
fn a_forged_service_for_another_node_never_wins_for_long() {
    let mut sim = cluster(10);
    sim.with_node(1, |n, _| n.publish(web("10.0.0.2", "/")).unwrap());
    sim.run_for(Duration::from_secs(5));
    for i in 0..10 {
        assert_eq!(web_records_of(&sim, i, "n1"), vec![web("10.0.0.2", "/")]);
    }
    // The phish of item 3: a higher version of n1's own slot, and a slot
    // n1 never had, each at a believable version; and the same at 2^64-1.
    let phish = |version: u64, service_type: &str, port: u16| Message::Service {
        node: "n1".into(),
        entry: CatalogEntry {
            version,
            service_type: service_type.into(),
            port,
            record: Some(ServiceRecord {
                service_type: service_type.into(),
                port,
                ..web("6.6.6.6", "/phish")
            }),
        },
    };
    inject(
        &mut sim,
        Some(1),
        &[phish(500, "web", 80), phish(501, "bank", 443)],
    );
    inject(&mut sim, Some(1), &[phish(u64::MAX, "web", 80)]);
    // Within a few gossip rounds n1 hears the claim and restates its truth.
    sim.run_for(Duration::from_secs(10));
    for i in 0..10 {
        let got = web_records_of(&sim, i, "n1");
        assert_eq!(got, vec![web("10.0.0.2", "/")], "node {i} holds {got:?}");
    }
    // n1 still speaks for itself: it republishes, then withdraws.
    sim.with_node(1, |n, _| n.publish(web("10.0.0.2", "/new")).unwrap());
    sim.run_for(Duration::from_secs(5));
    for i in 0..10 {
        assert_eq!(web_records_of(&sim, i, "n1"), vec![web("10.0.0.2", "/new")]);
    }
    let now = sim.now();
    sim.with_node(1, |n, _| assert!(n.unpublish(now, "web", 80)));
    sim.run_for(Duration::from_secs(5));
    for i in 0..10 {
        assert!(
            web_records_of(&sim, i, "n1").is_empty(),
            "node {i} kept one"
        );
    }
}

#[test]
fn forged_tags_for_another_node_are_outbid_by_their_owner() {
    let mut sim = cluster(10);
    sim.with_node(1, |n, _| {
        n.set_tags(vec![("microcloud".into(), "mc1".into())])
            .unwrap()
    });
    sim.run_for(Duration::from_secs(5));
    let lamport = sim.node(5).member("n1").unwrap().tags_lamport;
    let evil = |lamport| Message::Tags {
        name: "n1".into(),
        lamport,
        tags: vec![("microcloud".into(), "evilcloud".into())],
    };
    inject(&mut sim, Some(1), &[evil(lamport + 100)]);
    inject(&mut sim, Some(1), &[evil(u64::MAX)]);
    sim.run_for(Duration::from_secs(10));
    for i in 0..10 {
        let m = sim.node(i).member("n1").unwrap();
        assert_eq!(m.tag("microcloud"), Some("mc1"), "node {i}");
    }
}

fn user_events(sim: &mut Sim) -> Vec<(usize, String)> {
    sim.take_events()
        .into_iter()
        .filter_map(|(_, i, e)| match e {
            Event::UserEvent { name, .. } => Some((i, name)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_forged_event_clock_cannot_stop_later_events() {
    let mut sim = cluster(6);
    let forged = |lamport| Message::UserEvent {
        lamport,
        origin: "n2".into(),
        name: "deploy".into(),
        payload: vec![],
    };
    inject(&mut sim, None, &[forged(u64::MAX)]);
    inject(&mut sim, None, &[forged(MAX_JUMP * 3)]);
    // And through a push-pull's clocks.
    let pp = PushPull {
        version: wire::VERSION,
        join: false,
        reply: false,
        from: "n2".into(),
        members: vec![],
        catalogs: vec![],
        event_clock: MAX_JUMP * 3,
        query_clock: MAX_JUMP * 3,
        ping: None,
    };
    let stream = Keyring::plaintext().seal([0; 12], &encode_push_pull(&pp));
    sim.with_node(0, |n, now| n.handle_stream(now, forger(), &stream).unwrap());
    sim.run_for(Duration::from_secs(5));
    sim.take_events();
    for k in 0..3 {
        sim.with_node(k, |n, _| n.fire_event(&format!("real{k}"), b"x").unwrap());
    }
    sim.run_for(Duration::from_secs(10));
    let got = user_events(&mut sim);
    for k in 0..3 {
        let name = format!("real{k}");
        let reached = got.iter().filter(|(_, n)| *n == name).count();
        assert_eq!(reached, 6, "{name} reached {reached} of 6 nodes");
    }
    // The clock survives a restart only as believable values.
    let saved = sim.node(0).export_state();
    assert!(wire::decode_saved_state(&saved).unwrap().event_clock < MAX_JUMP);
}

fn lone() -> Node {
    Node::new(
        Identity::new("me", SocketAddr::from(([10, 0, 0, 1], 7946))),
        Config::lan(),
        Keyring::plaintext(),
        7,
    )
}

#[test]
fn every_field_over_its_bound_is_refused_whole_and_named() {
    let long = |n: usize| "x".repeat(n);
    let cases: Vec<(Message, &str)> = vec![
        (
            Message::Alive {
                name: long(wire::MAX_NAME + 1),
                addr: forger(),
                incarnation: 1,
            },
            "name",
        ),
        (
            Message::Tags {
                name: "a".into(),
                lamport: 2,
                tags: vec![(long(wire::MAX_KEY + 1), "v".into())],
            },
            "key",
        ),
        (
            Message::Tags {
                name: "a".into(),
                lamport: 2,
                tags: (0..wire::MAX_PAIRS + 1)
                    .map(|i| (format!("k{i}"), "v".into()))
                    .collect(),
            },
            "pairs",
        ),
        (
            Message::Tags {
                name: "a".into(),
                lamport: 2,
                tags: (0..5).map(|i| (format!("k{i}"), long(250))).collect(),
            },
            "pairs",
        ),
        (
            Message::Service {
                node: "a".into(),
                entry: CatalogEntry {
                    version: 1,
                    service_type: "web".into(),
                    port: 80,
                    record: Some(ServiceRecord {
                        description: long(wire::MAX_VALUE + 1),
                        ..web("10.0.0.2", "/")
                    }),
                },
            },
            "description",
        ),
        (
            Message::UserEvent {
                lamport: 1,
                origin: "a".into(),
                name: long(wire::MAX_EVENT_NAME + 1),
                payload: vec![],
            },
            "event name",
        ),
        (
            Message::UserEvent {
                lamport: 1,
                origin: "a".into(),
                name: "e".into(),
                payload: vec![0; wire::MAX_PAYLOAD + 1],
            },
            "payload",
        ),
    ];
    for (msg, field) in cases {
        let mut n = lone();
        let err = n.handle_packet(Instant::ZERO, forger(), &datagram(&[msg]));
        assert_eq!(err, Err(InputError::Wire(WireError::OutOfBounds(field))));
        assert_eq!(n.members().count(), 1, "{field}: a member was added");
    }
}

#[test]
fn a_flood_of_long_names_costs_nothing_and_a_newcomer_still_joins() {
    // Item 1: 1,100 datagrams each naming a new member with a 60,000-byte
    // name, then 60 of 10,000 bytes; all refused at decode.
    let mut sim = cluster(4);
    for k in 0..1_100 {
        let name = format!("{k}{}", "x".repeat(60_000));
        let msg = Message::Alive {
            name,
            addr: forger(),
            incarnation: 1,
        };
        inject(&mut sim, None, &[msg]);
    }
    for i in 0..4 {
        assert_eq!(sim.node(i).members().count(), 4, "node {i} took a fake in");
    }
    let newcomer = sim.spawn(Config::lan(), Keyring::plaintext());
    let seed = Sim::addr_of(0);
    sim.with_node(newcomer, |n, now| n.join(now, &[seed]));
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.node(newcomer).num_live(), 5);
}

#[test]
fn a_node_refuses_to_send_what_its_peers_would_refuse() {
    let mut n = lone();
    assert_eq!(
        n.fire_event("e", &[0; wire::MAX_PAYLOAD + 1]),
        Err(OpError::OutOfBounds("payload"))
    );
    assert_eq!(
        n.set_tags(vec![("k".repeat(wire::MAX_KEY + 1), "v".into())]),
        Err(OpError::OutOfBounds("key"))
    );
    let mut rec = web("10.0.0.2", "/");
    rec.host = "h".repeat(wire::MAX_VALUE + 1);
    assert_eq!(n.publish(rec), Err(OpError::OutOfBounds("host")));
    assert!(n.own_records().is_empty());
}
