//! One node driven by hand: precise protocol rules, message by message.

use core::net::SocketAddr;
use core::time::Duration;
use nuvol_gossip::wire::{decode_packet, encode_packet, CatalogEntry, Message};
use nuvol_gossip::{
    Config, Event, Health, Identity, Instant, Keyring, MemberState, Node, OpError, SearchFilter,
    ServiceRecord, Transmit,
};

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 7946))
}

fn node(name: &str, i: u8) -> Node {
    Node::new(
        Identity::new(name, addr(i)),
        Config::lan(),
        Keyring::plaintext(),
        7,
    )
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Deliver messages to `n` as one plaintext datagram from `from`.
fn deliver(n: &mut Node, now: Instant, from: SocketAddr, msgs: &[Message]) {
    let mut bytes = vec![0u8];
    bytes.extend(encode_packet(msgs));
    n.handle_packet(now, from, &bytes).unwrap();
}

fn alive(name: &str, i: u8, inc: u64) -> Message {
    Message::Alive {
        name: name.into(),
        addr: addr(i),
        incarnation: inc,
    }
}

/// Every message `n` sent since the last call, with its destination.
fn sent(n: &mut Node) -> Vec<(SocketAddr, Message)> {
    let mut out = Vec::new();
    while let Some(t) = n.poll_transmit() {
        if let Transmit::Packet { to, bytes } = t {
            for m in decode_packet(&bytes[1..]).unwrap() {
                out.push((to, m));
            }
        }
    }
    out
}

fn events(n: &mut Node) -> Vec<Event> {
    std::iter::from_fn(|| n.poll_event()).collect()
}

fn web(port: u16) -> ServiceRecord {
    ServiceRecord {
        service_type: "web".into(),
        description: "site".into(),
        host: "b".into(),
        ip: "10.0.0.2".into(),
        port,
        microcloud: "mc".into(),
        txt: vec![],
        health: Health::Healthy,
    }
}

#[test]
fn suspect_refutes_with_higher_incarnation() {
    let mut a = node("a", 1);
    deliver(&mut a, at(0), addr(2), &[alive("b", 2, 1)]);
    let suspect = Message::Suspect {
        name: "a".into(),
        incarnation: 1,
        from: "b".into(),
    };
    deliver(&mut a, at(10), addr(2), &[suspect]);
    assert_eq!(a.incarnation(), 2);
    assert!(events(&mut a).contains(&Event::Refuted { incarnation: 2 }));
    // Lifeguard: having to refute means our own view may be the problem.
    assert_eq!(a.health_score(), 1);
    // The refutation rides the next datagram.
    a.handle_timeout(at(10_000));
    let refuted = sent(&mut a)
        .into_iter()
        .any(|(_, m)| matches!(m, Message::Alive { ref name, incarnation: 2, .. } if name == "a"));
    assert!(refuted);
    assert_eq!(a.stats().refutations, 1);
}

#[test]
fn stale_suspicions_and_alives_are_ignored() {
    let mut a = node("a", 1);
    deliver(&mut a, at(0), addr(2), &[alive("b", 2, 5)]);
    deliver(
        &mut a,
        at(1),
        addr(3),
        &[Message::Suspect {
            name: "b".into(),
            incarnation: 4,
            from: "c".into(),
        }],
    );
    assert_eq!(a.member("b").unwrap().state, MemberState::Alive);
    deliver(
        &mut a,
        at(2),
        addr(3),
        &[Message::Suspect {
            name: "b".into(),
            incarnation: 5,
            from: "c".into(),
        }],
    );
    assert_eq!(a.member("b").unwrap().state, MemberState::Suspect);
    deliver(&mut a, at(3), addr(2), &[alive("b", 2, 5)]);
    assert_eq!(
        a.member("b").unwrap().state,
        MemberState::Suspect,
        "same incarnation"
    );
    deliver(&mut a, at(4), addr(2), &[alive("b", 2, 6)]);
    assert_eq!(a.member("b").unwrap().state, MemberState::Alive);
}

#[test]
fn buddy_ping_tells_the_suspect_first() {
    let mut a = node("a", 1);
    deliver(&mut a, at(0), addr(2), &[alive("b", 2, 1)]);
    deliver(
        &mut a,
        at(1),
        addr(3),
        &[Message::Suspect {
            name: "b".into(),
            incarnation: 1,
            from: "c".into(),
        }],
    );
    sent(&mut a);
    // The only other member is b: the next probe goes to it, and the
    // datagram carrying the ping starts with the suspicion.
    let mut probe = None;
    for t in (1..5_000).step_by(50) {
        a.handle_timeout(at(t));
        while let Some(Transmit::Packet { to, bytes }) = a.poll_transmit() {
            let msgs = decode_packet(&bytes[1..]).unwrap();
            if to == addr(2) && msgs.iter().any(|m| matches!(m, Message::Ping { .. })) {
                probe.get_or_insert(msgs);
            }
        }
    }
    let msgs = probe.expect("b was probed");
    assert!(
        matches!(&msgs[0], Message::Suspect { name, from, .. } if name == "b" && from == "a"),
        "{msgs:?}"
    );
}

#[test]
fn plain_swim_sends_no_buddy_suspicion_and_asks_no_nacks() {
    let mut cfg = Config::lan();
    cfg.lifeguard = false;
    let mut a = Node::new(Identity::new("a", addr(1)), cfg, Keyring::plaintext(), 7);
    for i in 2..6 {
        deliver(&mut a, at(0), addr(i), &[alive(&format!("m{i}"), i, 1)]);
    }
    deliver(
        &mut a,
        at(1),
        addr(3),
        &[Message::Suspect {
            name: "m2".into(),
            incarnation: 1,
            from: "m3".into(),
        }],
    );
    sent(&mut a);
    let mut all = Vec::new();
    for t in (0..20_000).step_by(100) {
        a.handle_timeout(at(t));
        all.extend(sent(&mut a));
    }
    for (to, m) in &all {
        if let Message::IndirectPing { nack, .. } = m {
            assert!(!nack);
        }
        if *to == addr(2) {
            assert!(
                !matches!(m, Message::Suspect { name, from, .. } if name == "m2" && from == "a")
            );
        }
    }
    assert_eq!(a.health_score(), 0);
}

#[test]
fn unanswered_probe_goes_indirect_then_suspects() {
    let mut a = node("a", 1);
    for i in 2..6 {
        deliver(&mut a, at(0), addr(i), &[alive(&format!("m{i}"), i, 1)]);
    }
    sent(&mut a);
    let mut target = None;
    let mut indirect = 0;
    for t in (0..3_000).step_by(10) {
        a.handle_timeout(at(t));
        for (to, m) in sent(&mut a) {
            match m {
                Message::Ping {
                    target: ref name, ..
                } if target.is_none() => target = Some((name.clone(), to)),
                Message::IndirectPing { nack, .. } => {
                    assert!(nack);
                    indirect += 1;
                }
                _ => {}
            }
        }
    }
    let (name, _) = target.expect("a probe was sent");
    assert_eq!(indirect, 3, "k = 3 helpers");
    assert_eq!(a.member(&name).unwrap().state, MemberState::Suspect);
    // Nobody nacked either: Lifeguard blames our own links.
    assert!(a.health_score() >= 3);
}

#[test]
fn indirect_ping_is_relayed_and_nacked_when_the_target_is_silent() {
    let mut a = node("a", 1);
    let req = Message::IndirectPing {
        seq: 42,
        target: "c".into(),
        target_addr: addr(3),
        nack: true,
    };
    deliver(&mut a, at(0), addr(2), &[req]);
    let out = sent(&mut a);
    assert!(out.iter().any(
        |(to, m)| *to == addr(3) && matches!(m, Message::Ping { target, .. } if target == "c")
    ));
    let mut nacked = false;
    for t in (0..1000).step_by(50) {
        a.handle_timeout(at(t));
        nacked |= sent(&mut a)
            .iter()
            .any(|(to, m)| *to == addr(2) && *m == Message::Nack { seq: 42 });
    }
    assert!(nacked);
}

#[test]
fn ping_for_another_name_is_not_answered() {
    let mut a = node("a", 1);
    deliver(
        &mut a,
        at(0),
        addr(2),
        &[Message::Ping {
            seq: 1,
            target: "z".into(),
        }],
    );
    assert!(!sent(&mut a)
        .iter()
        .any(|(_, m)| matches!(m, Message::Ack { .. })));
    deliver(
        &mut a,
        at(1),
        addr(2),
        &[Message::Ping {
            seq: 2,
            target: "a".into(),
        }],
    );
    let acks: Vec<_> = sent(&mut a)
        .into_iter()
        .filter(|(_, m)| {
            matches!(
                m,
                Message::Ack {
                    seq: 2,
                    coord: Some(_)
                }
            )
        })
        .collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].0, addr(2));
}

#[test]
fn older_tags_lose_to_newer_lamport_time() {
    let mut a = node("a", 1);
    deliver(&mut a, at(0), addr(2), &[alive("b", 2, 1)]);
    let tags = |lamport, role: &str| Message::Tags {
        name: "b".into(),
        lamport,
        tags: vec![("role".into(), role.into())],
    };
    deliver(&mut a, at(1), addr(2), &[tags(5, "web")]);
    deliver(&mut a, at(2), addr(3), &[tags(4, "old")]);
    assert_eq!(a.member("b").unwrap().tag("role"), Some("web"));
    deliver(&mut a, at(3), addr(3), &[tags(6, "db")]);
    assert_eq!(a.member("b").unwrap().tag("role"), Some("db"));
}

#[test]
fn tombstone_beats_a_late_copy_of_the_record() {
    let mut a = node("a", 1);
    deliver(&mut a, at(0), addr(2), &[alive("b", 2, 1)]);
    let put = |version| Message::Service {
        node: "b".into(),
        entry: CatalogEntry {
            version,
            service_type: "web".into(),
            port: 80,
            record: Some(web(80)),
        },
    };
    let tomb = Message::Service {
        node: "b".into(),
        entry: CatalogEntry {
            version: 3,
            service_type: "web".into(),
            port: 80,
            record: None,
        },
    };
    deliver(&mut a, at(1), addr(2), &[put(2)]);
    assert_eq!(a.search(&SearchFilter::default()).len(), 1);
    deliver(&mut a, at(2), addr(2), &[tomb]);
    assert!(a.search(&SearchFilter::default()).is_empty());
    deliver(&mut a, at(3), addr(4), &[put(2)]);
    assert!(a.search(&SearchFilter::default()).is_empty(), "resurrected");
    let evs = events(&mut a);
    assert!(evs.iter().any(|e| matches!(e, Event::ServiceUp { .. })));
    assert!(evs.iter().any(|e| matches!(e, Event::ServiceDown { .. })));
}

#[test]
fn own_catalog_from_an_earlier_life_is_outbid() {
    let mut a = node("a", 1);
    a.publish(web(80)).unwrap();
    // A peer still holds version 9 of a record we no longer have.
    let ghost = Message::Service {
        node: "a".into(),
        entry: CatalogEntry {
            version: 9,
            service_type: "ssh".into(),
            port: 22,
            record: Some(web(22)),
        },
    };
    deliver(&mut a, at(0), addr(2), &[ghost]);
    a.handle_timeout(at(5_000));
    let mut restated = None;
    deliver(&mut a, at(5_001), addr(2), &[alive("b", 2, 1)]);
    for t in (5_001..8_000).step_by(100) {
        a.handle_timeout(at(t));
        for (_, m) in sent(&mut a) {
            if let Message::Service { node, entry } = m {
                if node == "a" && entry.port == 22 {
                    restated = Some(entry);
                }
            }
        }
    }
    let entry = restated.expect("the ghost slot was restated");
    assert!(entry.version > 9);
    assert!(entry.record.is_none(), "restated as a tombstone");
    assert_eq!(
        a.own_records(),
        vec![ServiceRecord {
            host: "b".into(),
            ..web(80)
        }]
    );
}

#[test]
fn duplicate_and_ancient_user_events_are_dropped() {
    let mut a = node("a", 1);
    let ev = |lamport| Message::UserEvent {
        lamport,
        origin: "b".into(),
        name: "deploy".into(),
        payload: vec![1],
    };
    deliver(&mut a, at(0), addr(2), &[ev(1000), ev(1000)]);
    deliver(&mut a, at(1), addr(3), &[ev(1000)]);
    deliver(&mut a, at(2), addr(3), &[ev(10)]);
    let got = events(&mut a)
        .into_iter()
        .filter(|e| matches!(e, Event::UserEvent { .. }))
        .count();
    assert_eq!(got, 1);
}

#[test]
fn oversized_records_and_events_are_refused_whole() {
    let mut a = node("a", 1);
    let mut big = web(80);
    big.description = "x".repeat(2000);
    assert_eq!(a.publish(big), Err(OpError::TooLarge));
    assert!(a.own_records().is_empty());
    assert_eq!(a.fire_event("e", &[0; 1500]), Err(OpError::TooLarge));
    assert_eq!(
        a.set_tags(vec![("k".into(), "v".repeat(1500))]),
        Err(OpError::TooLarge)
    );
}

#[test]
fn left_node_announces_nothing_more() {
    let mut a = node("a", 1);
    deliver(&mut a, at(0), addr(2), &[alive("b", 2, 1)]);
    sent(&mut a);
    a.leave(at(10));
    let told = sent(&mut a).into_iter().any(|(to, m)| {
        to == addr(2)
            && matches!(m, Message::Dead { ref name, ref from, .. } if name == "a" && from == "a")
    });
    assert!(told, "b is told straight away");
    assert!(a.is_left());
    assert_eq!(a.publish(web(80)), Err(OpError::Left));
    // No more probes after leaving.
    for t in (10..10_000).step_by(100) {
        a.handle_timeout(at(t));
        assert!(!sent(&mut a)
            .iter()
            .any(|(_, m)| matches!(m, Message::Ping { .. })));
    }
}

#[test]
fn saved_state_restores_incarnation_catalog_and_peers() {
    let mut a = node("a", 1);
    deliver(&mut a, at(0), addr(2), &[alive("b", 2, 1)]);
    a.publish(web(80)).unwrap();
    a.set_tags(vec![("role".into(), "web".into())]).unwrap();
    deliver(
        &mut a,
        at(1),
        addr(2),
        &[Message::Suspect {
            name: "a".into(),
            incarnation: 1,
            from: "b".into(),
        }],
    );
    let saved = a.export_state();

    let mut back = node("a", 1);
    back.import_state(&saved).unwrap();
    assert!(back.incarnation() > a.incarnation());
    assert_eq!(back.own_records().len(), 1);
    assert_eq!(back.member("a").unwrap().tag("role"), Some("web"));
    back.join(at(0), &[]);
    let to: Vec<SocketAddr> = std::iter::from_fn(|| back.poll_transmit())
        .filter_map(|t| match t {
            Transmit::Stream { to, .. } => Some(to),
            Transmit::Packet { .. } => None,
        })
        .collect();
    assert_eq!(to, vec![addr(2)], "rejoins through the saved peer");

    let mut other = node("z", 9);
    assert!(other.import_state(&saved).is_err(), "state of another node");
}

#[test]
fn query_deadline_ends_collection() {
    let mut a = node("a", 1);
    let id = a
        .query(
            at(0),
            nuvol_gossip::QueryParams {
                name: "q".into(),
                timeout: Duration::from_millis(500),
                ..Default::default()
            },
        )
        .unwrap();
    // This node matches its own query.
    let req = events(&mut a)
        .into_iter()
        .find_map(|e| match e {
            Event::QueryRequest { id, .. } => Some(id),
            _ => None,
        })
        .unwrap();
    a.respond(at(10), req, b"me").unwrap();
    assert_eq!(a.respond(at(11), req, b"again"), Err(OpError::UnknownQuery));
    let evs = events(&mut a);
    assert!(evs.contains(&Event::QueryResponse {
        id,
        from: "a".into(),
        payload: b"me".to_vec()
    }));
    a.handle_timeout(at(600));
    assert!(events(&mut a).contains(&Event::QueryDone { id }));
    // Late answers are not reported.
    deliver(
        &mut a,
        at(700),
        addr(2),
        &[Message::QueryResponse {
            id: id.0 as u32,
            from: "b".into(),
            payload: vec![],
        }],
    );
    assert!(events(&mut a).is_empty());
}
