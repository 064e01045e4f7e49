//! The membership cap (`Config::max_members`): a flood of fake names, by
//! push-pull or by Alive datagrams, stops at the cap; members already known
//! keep being updated and are never pushed out; room comes back only as
//! tombstones are reaped, and a real node joins then. Refusals are counted
//! in `Stats::members_refused`. The last test runs a real cluster on the
//! simulator: a node arriving at full tables gets in once a departed
//! member's tombstone is reaped everywhere.

use core::net::SocketAddr;
use core::time::Duration;
use nuvol_gossip::sim::{Sim, SimConfig};
use nuvol_gossip::wire::{self, CatalogEntry, CatalogState, MemberRecord, Message, PushPull};
use nuvol_gossip::{
    Config, Health, Identity, Instant, Keyring, MemberState, Node, SearchFilter, ServiceRecord,
};

fn addr(i: u32) -> SocketAddr {
    let [_, b, c, d] = i.to_be_bytes();
    SocketAddr::from(([10, b, c, d], 7946))
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn node(cap: usize) -> Node {
    let mut config = Config::lan();
    config.max_members = cap;
    Node::new(
        Identity::new("me", addr(1)),
        config,
        Keyring::plaintext(),
        7,
    )
}

/// Plaintext framing, as a keyless agent receives it.
fn framed(plain: &[u8]) -> Vec<u8> {
    Keyring::plaintext().seal([0; 12], plain)
}

fn record(node: &str) -> ServiceRecord {
    ServiceRecord {
        service_type: "web".into(),
        description: "site".into(),
        host: node.into(),
        ip: "10.0.0.2".into(),
        port: 80,
        microcloud: "mc".into(),
        txt: vec![],
        health: Health::Healthy,
    }
}

fn entry(node: &str) -> CatalogEntry {
    CatalogEntry {
        version: 1,
        service_type: "web".into(),
        port: 80,
        record: Some(record(node)),
    }
}

/// A valid push-pull request from a fake node carrying `names` alive, each
/// with a tag and a published service: what an attacker on the LAN sends.
fn fake_push_pull(n: &mut Node, now: Instant, names: &[String]) {
    let members = names
        .iter()
        .enumerate()
        .map(|(i, name)| MemberRecord {
            name: name.clone(),
            addr: addr(1000 + i as u32),
            incarnation: 1,
            state: wire::WireState::Alive,
            tags_lamport: 1,
            tags: vec![("microcloud".into(), "mc".into())],
            coord: None,
        })
        .collect();
    let catalogs = names
        .iter()
        .map(|name| CatalogState {
            node: name.clone(),
            version: 1,
            entries: vec![entry(name)],
        })
        .collect();
    let request = PushPull {
        version: wire::VERSION,
        join: false,
        reply: false,
        from: names[0].clone(),
        members,
        catalogs,
        event_clock: 0,
        query_clock: 0,
        ping: None,
    };
    let reply = n
        .handle_stream(now, addr(999), &framed(&wire::encode_push_pull(&request)))
        .expect("a valid push-pull");
    assert!(reply.is_some(), "a request is answered");
    drain(n);
}

fn deliver(n: &mut Node, now: Instant, msgs: &[Message]) {
    let bytes = framed(&wire::encode_packet(msgs));
    n.handle_packet(now, addr(999), &bytes)
        .expect("a valid datagram");
}

fn alive(name: &str, i: u32, inc: u64) -> Message {
    Message::Alive {
        name: name.into(),
        addr: addr(i),
        incarnation: inc,
    }
}

fn drain(n: &mut Node) {
    while n.poll_transmit().is_some() {}
    while n.poll_event().is_some() {}
}

fn fakes(batch: usize, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("fake-{batch}-{i:05}")).collect()
}

fn state(n: &Node, name: &str) -> Option<MemberState> {
    n.member(name).map(|m| m.state)
}

#[test]
fn push_pull_floods_of_fake_members_stop_at_the_cap() {
    let cap = Config::lan().max_members;
    let mut n = node(cap);
    deliver(&mut n, at(10), &[alive("real", 2, 1)]);
    // Each request as large as the stream limit allows for these records.
    for batch in 0..8 {
        fake_push_pull(&mut n, at(100 + batch as u64), &fakes(batch, 2500));
        assert!(n.members().count() <= cap, "batch {batch}");
    }
    assert_eq!(n.members().count(), cap);
    // Everything past the cap was refused: 20,000 names and their
    // catalogs, less the cap's room.
    let refused = n.stats().members_refused;
    assert!(refused >= 2 * (20_000 - cap as u64), "{refused}");
    // Services of refused names are not kept either: the catalogs are
    // bounded by the cap too.
    let web = n.search(&SearchFilter {
        service_type: Some("web".into()),
        microcloud: None,
    });
    assert!(web.len() <= cap, "{} web records", web.len());
    // Nothing refused is re-gossiped: the queue holds what was admitted.
    assert!(n.queued_updates() <= 3 * cap, "{}", n.queued_updates());
    assert_eq!(state(&n, "me"), Some(MemberState::Alive));
    assert_eq!(state(&n, "real"), Some(MemberState::Alive));
}

#[test]
fn alive_datagram_floods_stop_at_the_cap_and_orphan_catalogs_too() {
    let cap = 16;
    let mut n = node(cap);
    for i in 0..500u32 {
        let name = format!("fake-{i}");
        deliver(&mut n, at(100 + u64::from(i)), &[alive(&name, 100 + i, 1)]);
        assert!(n.members().count() <= cap);
    }
    assert_eq!(n.members().count(), cap);
    assert_eq!(n.stats().members_refused, 500 - (cap as u64 - 1));
    // Services of unknown nodes (no Alive seen) are kept only while the
    // catalogs have room.
    let before = n.stats().members_refused;
    for i in 0..200u32 {
        let name = format!("orphan-{i}");
        let msg = Message::Service {
            node: name.clone(),
            entry: entry(&name),
        };
        deliver(&mut n, at(1000 + u64::from(i)), &[msg]);
    }
    let orphans_refused = n.stats().members_refused - before;
    // The cap's catalogs: this node's and the fakes' (none published) leave
    // room for cap - 1 orphans.
    assert_eq!(orphans_refused, 200 - (cap as u64 - 1));
}

#[test]
fn known_members_keep_updating_when_the_table_is_full() {
    let cap = 8;
    let mut n = node(cap);
    deliver(&mut n, at(10), &[alive("real", 2, 1)]);
    fake_push_pull(&mut n, at(20), &fakes(0, 100));
    assert_eq!(n.members().count(), cap);
    // A newer incarnation, new tags, a service: all applied.
    deliver(&mut n, at(30), &[alive("real", 2, 5)]);
    assert_eq!(n.member("real").map(|m| m.incarnation), Some(5));
    deliver(
        &mut n,
        at(40),
        &[Message::Tags {
            name: "real".into(),
            lamport: 3,
            tags: vec![("role".into(), "gateway".into())],
        }],
    );
    assert_eq!(
        n.member("real").and_then(|m| m.tag("role")),
        Some("gateway")
    );
    deliver(
        &mut n,
        at(50),
        &[Message::Service {
            node: "real".into(),
            entry: entry("real"),
        }],
    );
    let web = n.search(&SearchFilter {
        service_type: Some("web".into()),
        microcloud: None,
    });
    assert!(web.iter().any(|r| r.node == "real"));
    // Suspicion and refutation of a known member still work at the cap.
    deliver(
        &mut n,
        at(60),
        &[Message::Suspect {
            name: "real".into(),
            incarnation: 5,
            from: "fake-0-00001".into(),
        }],
    );
    assert_eq!(state(&n, "real"), Some(MemberState::Suspect));
    deliver(&mut n, at(70), &[alive("real", 2, 6)]);
    assert_eq!(state(&n, "real"), Some(MemberState::Alive));
    // More fakes still push no one out.
    let refused = n.stats().members_refused;
    fake_push_pull(&mut n, at(80), &fakes(1, 100));
    assert!(n.stats().members_refused > refused);
    assert_eq!(state(&n, "real"), Some(MemberState::Alive));
    assert_eq!(state(&n, "me"), Some(MemberState::Alive));
    assert_eq!(n.members().count(), cap);
}

#[test]
fn a_real_node_joins_once_tombstones_of_departed_members_are_reaped() {
    let cap = 6;
    let mut n = node(cap);
    let names: Vec<String> = (0..5).map(|i| format!("old-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        deliver(&mut n, at(10), &[alive(name, 10 + i as u32, 1)]);
    }
    assert_eq!(n.members().count(), cap);
    // They all leave: tombstones still hold their slots.
    let t_left = 1_000;
    for name in &names {
        let bye = Message::Dead {
            name: name.clone(),
            incarnation: 1,
            from: name.clone(),
        };
        deliver(&mut n, at(t_left), &[bye]);
    }
    assert_eq!(state(&n, "old-0"), Some(MemberState::Left));
    n.handle_timeout(at(t_left + 1000));
    deliver(&mut n, at(t_left + 2000), &[alive("new", 50, 1)]);
    assert_eq!(state(&n, "new"), None, "a tombstone was evicted early");
    assert_eq!(n.stats().members_refused, 1);
    // Past dead_retention the tombstones are reaped and "new" gets in.
    let retention = Config::lan().dead_retention;
    let later = at(t_left) + retention + Duration::from_secs(2);
    n.handle_timeout(later);
    assert_eq!(state(&n, "old-0"), None);
    deliver(&mut n, later, &[alive("new", 50, 1)]);
    assert_eq!(state(&n, "new"), Some(MemberState::Alive));
    assert_eq!(n.stats().members_refused, 1);
}

#[test]
fn max_members_is_set_from_text() {
    let mut c = Config::lan();
    assert_eq!(c.max_members, 1024);
    assert_eq!(Config::wan().max_members, 4096);
    c.set("max_members", "200").unwrap();
    assert_eq!(c.max_members, 200);
    assert!(c.set("max_members", "1").is_err());
    assert!(c.set("max_members", "many").is_err());
}

#[test]
fn a_newcomer_to_a_full_cluster_gets_in_once_a_departed_member_is_reaped() {
    let cap = 6;
    let mut config = Config::lan();
    config.max_members = cap;
    config.dead_retention = Duration::from_secs(60);
    let mut sim = Sim::new(SimConfig::default());
    for _ in 0..cap {
        sim.spawn(config.clone(), Keyring::plaintext());
    }
    let seed = Sim::addr_of(0);
    for i in 1..cap {
        sim.with_node(i, |node, now| node.join(now, &[seed]));
        sim.run_for(Duration::from_millis(10));
    }
    let full = sim.run_until_true(Duration::from_millis(500), Duration::from_secs(60), |s| {
        (0..s.len()).all(|i| s.node(i).num_live() == cap)
    });
    assert!(full.is_some(), "{cap} nodes did not converge");

    // A newcomer: every table is full, so no one takes it in, and it
    // holds no more than the cap itself.
    let newcomer = sim.spawn(config.clone(), Keyring::plaintext());
    sim.with_node(newcomer, |node, now| node.join(now, &[seed]));
    sim.run_for(Duration::from_secs(40));
    let name = sim.name(newcomer).to_string();
    for i in 0..cap {
        assert!(sim.node(i).member(&name).is_none(), "n{i} evicted someone");
        assert_eq!(sim.node(i).members().count(), cap);
    }
    assert!(sim.node(newcomer).members().count() <= cap);
    assert!(sim.node(0).stats().members_refused > 0);

    // One member leaves; its tombstone keeps its slot for dead_retention,
    // then is reaped, and the newcomer's next push-pull gets it in.
    let left_at = sim.now();
    sim.with_node(cap - 1, |node, now| node.leave(now));
    sim.run_for(Duration::from_secs(10));
    let gone = sim.name(cap - 1).to_string();
    assert!(
        sim.node(0).member(&gone).is_some(),
        "tombstone reaped early"
    );
    assert!(sim.node(0).member(&name).is_none());
    let everyone: Vec<usize> = (0..cap - 1).chain([newcomer]).collect();
    let joined = sim.run_until_true(Duration::from_secs(1), Duration::from_secs(600), |s| {
        everyone.iter().all(|&i| {
            everyone.iter().all(|&j| {
                i == j
                    || s.node(i)
                        .member(s.name(j))
                        .is_some_and(|m| m.state == MemberState::Alive)
            })
        })
    });
    let joined = joined.expect("the newcomer never got in after the reaping");
    let after = joined.saturating_since(left_at);
    println!("newcomer in, both ways, {after:?} after the leave (retention 60 s)");
    assert!(after >= config.dead_retention);
}

/// A Service datagram for `node`'s slot ("web", `port`) at `version`.
fn service(node: &str, port: u16, version: u64) -> Message {
    Message::Service {
        node: node.into(),
        entry: CatalogEntry {
            version,
            port,
            record: Some(ServiceRecord {
                port,
                ..record(node)
            }),
            ..entry(node)
        },
    }
}

fn web_of(n: &Node, node: &str) -> Vec<u16> {
    let all = SearchFilter {
        service_type: Some("web".into()),
        microcloud: None,
    };
    n.search(&all)
        .into_iter()
        .filter(|r| r.node == node)
        .map(|r| r.record.port)
        .collect()
}

/// Service datagrams naming ever new ports for one known node stop at the
/// catalog's slot cap; its services already held keep updating.
#[test]
fn a_known_nodes_catalog_stops_growing_at_its_slot_cap() {
    use nuvol_gossip::MAX_SLOTS;
    let mut n = node(64);
    deliver(&mut n, at(0), &[alive("peer", 2, 1)]);
    let flood = MAX_SLOTS + 300;
    for port in 0..flood as u16 {
        deliver(
            &mut n,
            at(0),
            &[service("peer", 1000 + port, 1 + u64::from(port))],
        );
        drain(&mut n);
    }
    assert_eq!(web_of(&n, "peer").len(), MAX_SLOTS);
    assert_eq!(n.stats().services_refused, 300);
    // A slot it holds still takes a newer version.
    let last = flood as u64 + 10;
    let mut changed = service("peer", 1000, last);
    if let Message::Service { entry, .. } = &mut changed {
        entry.record.as_mut().unwrap().description = "moved".into();
    }
    deliver(&mut n, at(0), &[changed]);
    let all = SearchFilter {
        service_type: Some("web".into()),
        microcloud: None,
    };
    let hit = n.search(&all).into_iter().find(|r| r.record.port == 1000);
    assert_eq!(hit.map(|r| r.record.description), Some("moved".into()));
    assert_eq!(n.stats().services_refused, 300);
}

/// This node publishes at most half a catalog's slots, so its tombstones
/// leave peers room; an unpublish makes room for another.
#[test]
fn publishing_stops_at_the_own_record_cap() {
    use nuvol_gossip::{OpError, MAX_OWN_RECORDS};
    let mut n = node(64);
    for port in 0..MAX_OWN_RECORDS as u16 {
        let r = ServiceRecord {
            port: 2000 + port,
            ..record("me")
        };
        n.publish(r).expect("under the cap");
    }
    let one_more = ServiceRecord {
        port: 9999,
        ..record("me")
    };
    assert_eq!(n.publish(one_more.clone()), Err(OpError::TooManyServices));
    // Changing one already published is no new service.
    let changed = ServiceRecord {
        port: 2000,
        description: "changed".into(),
        ..record("me")
    };
    n.publish(changed).expect("a change is not a new service");
    assert!(n.unpublish(at(0), "web", 2001));
    n.publish(one_more).expect("room after an unpublish");
    assert_eq!(web_of(&n, "me").len(), MAX_OWN_RECORDS);
}
