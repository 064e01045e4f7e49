//! Protocol properties proven on the deterministic simulator.
//!
//! Every test runs from a fixed seed, so a failure replays exactly. Measured
//! numbers are printed (`cargo test -p nuvol-gossip --test sim -- --nocapture`).

use core::time::Duration;
use nuvol_gossip::sim::{Sim, SimConfig};
use nuvol_gossip::{
    Config, Event, Health, Instant, Key, Keyring, MemberState, QueryParams, SearchFilter,
    ServiceRecord,
};

fn key(b: u8) -> Key {
    Key::from_bytes([b; 32])
}

fn record(node: usize, service_type: &str, port: u16) -> ServiceRecord {
    ServiceRecord {
        service_type: service_type.into(),
        description: format!("{service_type} on n{node}"),
        host: String::new(),
        ip: format!("10.0.0.{}", node % 250),
        port,
        microcloud: "mc1".into(),
        txt: vec![("path".into(), "/".into())],
        health: Health::Healthy,
    }
}

/// `n` nodes joining one after another through node 0, converged.
fn cluster(n: usize, config: Config, sim_cfg: SimConfig) -> Sim {
    let mut sim = Sim::new(sim_cfg);
    for _ in 0..n {
        sim.spawn(config.clone(), Keyring::new(key(1)));
    }
    let seed = Sim::addr_of(0);
    for i in 1..n {
        sim.with_node(i, |node, now| node.join(now, &[seed]));
        sim.run_for(Duration::from_millis(10));
    }
    let converged = sim.run_until_true(Duration::from_millis(500), Duration::from_secs(120), |s| {
        (0..s.len()).all(|i| s.node(i).num_live() == s.len())
    });
    assert!(converged.is_some(), "{n} nodes did not converge");
    sim
}

fn everyone_sees(sim: &Sim, name: &str, state: MemberState) -> bool {
    (0..sim.len())
        .filter(|&i| sim.is_up(i) && sim.name(i) != name)
        .all(|i| sim.node(i).member(name).is_some_and(|m| m.state == state))
}

/// Bytes sent per node per second in steady state (no changes happening),
/// as (datagrams, push-pull streams).
fn steady_bandwidth(sim: &mut Sim, over: Duration) -> (f64, f64) {
    let before = sim.traffic();
    sim.run_for(over);
    let after = sim.traffic();
    let per = |b: u64| b as f64 / sim.len() as f64 / over.as_secs_f64();
    (
        per(after.datagram_bytes - before.datagram_bytes),
        per(after.stream_bytes - before.stream_bytes),
    )
}

#[test]
fn thousand_nodes_publish_reaches_everyone_within_the_dissemination_bound() {
    let n = 1000;
    let cfg = Config::lan();
    let sim_cfg = SimConfig {
        record_events: false,
        ..SimConfig::default()
    };
    let mut sim = cluster(n, cfg.clone(), sim_cfg.clone());
    // All nodes agree on membership.
    for i in 0..n {
        let node = sim.node(i);
        assert_eq!(node.num_live(), n);
        assert!(node.members().all(|m| m.state == MemberState::Alive));
    }
    // One whole push-pull period, so anti-entropy is counted once per node.
    let period = cfg.push_pull_interval_for(n);
    let (udp, tcp) = steady_bandwidth(&mut sim, period);
    println!("bandwidth n=1000: {udp:.0} B/node/s datagrams + {tcp:.0} B/node/s push-pull");
    assert!(udp + tcp < 5000.0);

    // Bound: an epidemic with fan-out f reaches N nodes in about
    // log_{f+1}(N) + ln(N)/f rounds; allow two more rounds and charge each
    // round one gossip interval plus the largest one-way link delay.
    let f = cfg.gossip_nodes as f64;
    let rounds = ((n as f64).ln() / (f + 1.0).ln()).ceil() + ((n as f64).ln() / f).ceil() + 2.0;
    let max_delay = sim_cfg.base_delay + sim_cfg.spread * 2 + sim_cfg.jitter;
    let bound = (cfg.gossip_interval + max_delay).mul_f64(rounds);

    let t0 = sim.now();
    sim.with_node(0, |node, _| node.publish(record(0, "web", 80)).unwrap());
    let filter = SearchFilter {
        service_type: Some("web".into()),
        microcloud: None,
    };
    let reached = sim
        .run_until_true(Duration::from_millis(20), bound * 3, |s| {
            (0..s.len()).all(|i| !s.node(i).search(&filter).is_empty())
        })
        .expect("the record reached every node");
    let took = reached.saturating_since(t0);
    println!("publish n=1000 reached all in {took:?} (bound {bound:?}, {rounds} rounds)");
    assert!(took <= bound, "took {took:?}, bound {bound:?}");

    let t1 = sim.now();
    assert!(sim.with_node(0, |node, now| node.unpublish(now, "web", 80)));
    let gone = sim
        .run_until_true(Duration::from_millis(20), bound * 3, |s| {
            (0..s.len()).all(|i| s.node(i).search(&filter).is_empty())
        })
        .expect("the unpublish reached every node");
    let took = gone.saturating_since(t1);
    println!("unpublish n=1000 reached all in {took:?}");
    assert!(took <= bound);
    assert!(
        sim.traffic().max_datagram <= cfg.mtu,
        "datagrams fit the MTU"
    );
}

#[test]
fn bandwidth_per_node_stays_small_for_10_and_100_nodes() {
    for n in [10usize, 100] {
        let mut sim = cluster(n, Config::lan(), SimConfig::default());
        sim.run_for(Duration::from_secs(60));
        let (udp, tcp) = steady_bandwidth(&mut sim, Duration::from_secs(120));
        println!("bandwidth n={n}: {udp:.0} B/node/s datagrams + {tcp:.0} B/node/s push-pull");
        // One probe and its ack per second plus anti-entropy: well under 2 kB/s.
        assert!(udp + tcp < 2000.0, "n={n}: {udp} + {tcp} B/node/s");
    }
}

/// False "dead" declarations over ten minutes of 30 % loss on every link.
fn false_deaths_at_30_percent_loss(lifeguard: bool) -> (u64, u64) {
    let mut cfg = Config::lan();
    cfg.lifeguard = lifeguard;
    let mut sim = cluster(100, cfg, SimConfig::default());
    sim.take_events();
    sim.set_loss(0.30);
    sim.run_for(Duration::from_secs(600));
    // Nobody actually failed: every suspicion that timed out was false.
    let declared: u64 = (0..sim.len())
        .map(|i| sim.node(i).stats().declared_dead)
        .sum();
    let failed_events = sim
        .take_events()
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::MemberFailed { .. }))
        .count() as u64;
    (declared, failed_events)
}

#[test]
fn lifeguard_cuts_false_deaths_at_30_percent_loss_at_least_tenfold() {
    let (on, on_events) = false_deaths_at_30_percent_loss(true);
    let (off, off_events) = false_deaths_at_30_percent_loss(false);
    println!(
        "false dead declarations, 100 nodes, 30% loss, 10 min: lifeguard on {on} \
         ({on_events} failed events), off {off} ({off_events} failed events)"
    );
    assert!(
        off >= 10,
        "plain SWIM should show false positives, got {off}"
    );
    assert!(on * 10 <= off, "on {on}, off {off}");
}

#[test]
fn crashed_node_is_declared_dead_by_everyone_within_the_suspicion_bound() {
    let cfg = Config::lan();
    let n = 50;
    let mut sim = cluster(n, cfg.clone(), SimConfig::default());
    let victim = 7;
    let name = sim.name(victim).to_string();
    let t0 = sim.now();
    sim.crash(victim);
    // Someone probes it within a round (N probes a second spread over N
    // members), the probe fails by the end of its interval, then the
    // suspicion runs at most its maximum, then the verdict spreads.
    let min = cfg.suspicion_min_timeout(n);
    let max = min * cfg.suspicion_max_timeout_mult;
    let bound = cfg.probe_interval * 3 + max + Duration::from_secs(2);
    let t = sim
        .run_until_true(Duration::from_millis(100), bound * 2, |s| {
            everyone_sees(s, &name, MemberState::Failed)
        })
        .expect("everyone declared the crashed node dead");
    let took = t.saturating_since(t0);
    println!(
        "crash of 1 in {n} detected by all in {took:?} (suspicion min {min:?}, bound {bound:?})"
    );
    assert!(took <= bound);
}

#[test]
fn leaving_node_is_marked_left_not_failed() {
    let mut sim = cluster(30, Config::lan(), SimConfig::default());
    sim.take_events();
    let name = sim.name(4).to_string();
    sim.with_node(4, |node, now| node.leave(now));
    let t = sim.run_until_true(Duration::from_millis(100), Duration::from_secs(10), |s| {
        everyone_sees(s, &name, MemberState::Left)
    });
    assert!(t.is_some(), "everyone marked the node left");
    sim.run_for(Duration::from_secs(60));
    assert!(everyone_sees(&sim, &name, MemberState::Left));
    let failed = sim
        .take_events()
        .into_iter()
        .filter(|(_, _, e)| matches!(e, Event::MemberFailed { name: n } if *n == name))
        .count();
    assert_eq!(failed, 0);
}

#[test]
fn node_that_left_joins_again_and_is_alive_everywhere() {
    let mut sim = cluster(10, Config::lan(), SimConfig::default());
    let name = sim.name(4).to_string();
    sim.with_node(4, |node, _| node.publish(record(4, "web", 80)).unwrap());
    sim.run_for(Duration::from_secs(5));
    sim.with_node(4, |node, now| node.leave(now));
    let left = sim.run_until_true(Duration::from_millis(100), Duration::from_secs(10), |s| {
        everyone_sees(s, &name, MemberState::Left)
    });
    assert!(left.is_some(), "everyone marked the node left");
    let seed = sim.node(0).addr();
    sim.with_node(4, |node, now| node.join(now, &[seed]));
    let back = sim.run_until_true(Duration::from_millis(100), Duration::from_secs(10), |s| {
        everyone_sees(s, &name, MemberState::Alive)
    });
    assert!(back.is_some(), "everyone sees the node alive again");
    assert!(!sim.node(4).is_left());
    // Its record is found again, and it can publish again.
    sim.with_node(4, |node, _| node.publish(record(4, "ssh", 22)).unwrap());
    sim.run_for(Duration::from_secs(5));
    for i in 0..10 {
        let hits = sim.node(i).search(&SearchFilter::default());
        assert!(
            hits.iter().filter(|h| h.node == name).count() == 2,
            "node {i} sees {hits:?}"
        );
    }
}

#[test]
fn partition_heals_and_catalogs_converge_without_resurrection() {
    let n = 40;
    let cfg = Config::lan();
    let mut sim = cluster(n, cfg.clone(), SimConfig::default());
    for i in 0..n {
        sim.with_node(i, |node, _| node.publish(record(i, "web", 80)).unwrap());
    }
    sim.run_for(Duration::from_secs(10));
    for i in n / 2..n {
        sim.set_group(i, 1);
    }
    // Changes on both sides while split.
    assert!(sim.with_node(3, |node, now| node.unpublish(now, "web", 80)));
    sim.with_node(30, |node, _| node.publish(record(30, "ssh", 22)).unwrap());
    sim.run_for(Duration::from_secs(120));
    let a_sees_b = sim.node(0).member(sim.name(30)).map(|m| m.state);
    assert_eq!(a_sees_b, Some(MemberState::Failed), "the sides split");

    sim.heal();
    let t0 = sim.now();
    let expected = |s: &Sim, i: usize| {
        let all = s.node(i).search(&SearchFilter::default());
        all.len() == n // n-1 web records plus the new ssh record
            && !all.iter().any(|r| r.node == "n3")
            && all.iter().any(|r| r.node == "n30" && r.record.port == 22)
    };
    let bound = cfg.reconnect_interval * 2 + cfg.suspicion_min_timeout(n) + Duration::from_secs(10);
    let t = sim
        .run_until_true(Duration::from_millis(200), Duration::from_secs(300), |s| {
            (0..s.len()).all(|i| s.node(i).num_live() == s.len() && expected(s, i))
        })
        .expect("membership and catalogs converged after the heal");
    let took = t.saturating_since(t0);
    println!("50/50 partition of {n} for 2 min: converged {took:?} after heal (bound {bound:?})");
    assert!(
        sim.traffic().max_datagram <= cfg.mtu,
        "datagrams fit the MTU"
    );
    assert!(took <= bound, "took {took:?}");
    // And the unpublished record never comes back.
    for _ in 0..12 {
        sim.run_for(Duration::from_secs(10));
        for i in 0..n {
            assert!(expected(&sim, i), "node {i} diverged after convergence");
        }
    }
}

#[test]
fn restarted_node_rejoins_with_a_higher_incarnation_and_refutes_its_death() {
    let mut sim = cluster(20, Config::lan(), SimConfig::default());
    let victim = 5;
    let name = sim.name(victim).to_string();
    sim.with_node(victim, |node, _| {
        node.publish(record(5, "web", 8080)).unwrap()
    });
    sim.run_for(Duration::from_secs(5));
    let saved = sim.node(victim).export_state();
    let old_inc = sim.node(0).member(&name).unwrap().incarnation;
    sim.crash(victim);
    let t = sim.run_until_true(Duration::from_millis(500), Duration::from_secs(60), |s| {
        everyone_sees(s, &name, MemberState::Failed)
    });
    assert!(t.is_some());

    sim.restart(victim, Some(&saved), &[0]);
    let t = sim.run_until_true(Duration::from_millis(100), Duration::from_secs(10), |s| {
        everyone_sees(s, &name, MemberState::Alive)
    });
    assert!(t.is_some(), "the restarted node is alive everywhere");
    for i in (0..20).filter(|&i| i != victim) {
        let m = sim.node(i).member(&name).unwrap();
        assert!(
            m.incarnation > old_inc,
            "node {i} sees incarnation {}",
            m.incarnation
        );
        let web = sim.node(i).search(&SearchFilter {
            service_type: Some("web".into()),
            microcloud: None,
        });
        assert!(
            web.iter().any(|r| r.node == name),
            "node {i} lost the record"
        );
    }
}

#[test]
fn restart_without_saved_state_still_outbids_the_old_death() {
    let mut sim = cluster(10, Config::lan(), SimConfig::default());
    let name = sim.name(2).to_string();
    sim.crash(2);
    sim.run_for(Duration::from_secs(40));
    assert!(everyone_sees(&sim, &name, MemberState::Failed));
    sim.restart(2, None, &[0]);
    let t = sim.run_until_true(Duration::from_millis(100), Duration::from_secs(10), |s| {
        everyone_sees(s, &name, MemberState::Alive)
    });
    assert!(t.is_some());
    assert!(sim.node(2).incarnation() > 1);
}

#[test]
fn key_rotation_never_splits_the_cluster() {
    let n = 20;
    let mut sim = cluster(n, Config::lan(), SimConfig::default());
    sim.take_events();
    let step = Duration::from_secs(2);
    let check = |sim: &mut Sim| {
        for i in 0..n {
            assert_eq!(sim.node(i).num_live(), n, "node {i} lost members");
        }
    };
    for i in 0..n {
        sim.with_node(i, |node, _| node.keyring_mut().install(key(2)));
        sim.run_for(step);
        check(&mut sim);
    }
    for i in 0..n {
        sim.with_node(i, |node, _| node.keyring_mut().use_key(&key(2)).unwrap());
        sim.run_for(step);
        check(&mut sim);
    }
    for i in 0..n {
        sim.with_node(i, |node, _| node.keyring_mut().remove(&key(1)).unwrap());
        sim.run_for(step);
        check(&mut sim);
    }
    sim.run_for(Duration::from_secs(60));
    check(&mut sim);
    let suspicious = sim
        .take_events()
        .into_iter()
        .filter(|(_, _, e)| matches!(e, Event::MemberFailed { .. } | Event::MemberSuspect { .. }))
        .count();
    assert_eq!(suspicious, 0, "rotation caused suspicions");
    assert!((0..n).all(|i| sim.node(i).keyring().keys() == [key(2)]));
}

#[test]
fn node_with_a_wrong_key_is_never_admitted() {
    let n = 10;
    let mut sim = cluster(n, Config::lan(), SimConfig::default());
    let intruder = sim.spawn(Config::lan(), Keyring::new(key(9)));
    let seeds = [Sim::addr_of(0), Sim::addr_of(1)];
    sim.with_node(intruder, |node, now| node.join(now, &seeds));
    sim.run_for(Duration::from_secs(60));
    let name = sim.name(intruder).to_string();
    for i in 0..n {
        assert!(
            sim.node(i).member(&name).is_none(),
            "node {i} admitted the intruder"
        );
        assert_eq!(sim.node(i).num_live(), n);
    }
    assert_eq!(
        sim.node(intruder).num_live(),
        1,
        "the intruder learnt nothing"
    );
    let rejected: u64 = (0..n).map(|i| sim.node(i).stats().packets_rejected).sum();
    assert!(rejected > 0);
}

#[test]
fn plaintext_node_cannot_talk_to_a_sealed_cluster() {
    let mut sim = cluster(5, Config::lan(), SimConfig::default());
    let open = sim.spawn(Config::lan(), Keyring::plaintext());
    sim.with_node(open, |node, now| node.join(now, &[Sim::addr_of(0)]));
    sim.run_for(Duration::from_secs(30));
    assert_eq!(sim.node(open).num_live(), 1);
    assert!(sim.node(0).member(sim.name(open)).is_none());
}

#[test]
fn user_events_reach_every_node_exactly_once() {
    let n = 25;
    let mut sim = cluster(
        n,
        Config::lan(),
        SimConfig {
            loss: 0.05,
            ..SimConfig::default()
        },
    );
    sim.take_events();
    sim.with_node(3, |node, _| node.fire_event("deploy", b"v2").unwrap());
    sim.with_node(9, |node, _| node.fire_event("deploy", b"v3").unwrap());
    sim.run_for(Duration::from_secs(20));
    let events = sim.take_events();
    for i in 0..n {
        let got: Vec<_> = events
            .iter()
            .filter_map(|(_, at, e)| match e {
                Event::UserEvent { name, payload, .. } if *at == i => {
                    Some((name.clone(), payload.clone()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(got.len(), 2, "node {i} got {got:?}");
        assert!(got.contains(&("deploy".into(), b"v2".to_vec())));
        assert!(got.contains(&("deploy".into(), b"v3".to_vec())));
    }
}

#[test]
fn query_collects_answers_from_matching_nodes_until_the_timeout() {
    let n = 20;
    let mut sim = cluster(n, Config::lan(), SimConfig::default());
    for i in 0..n {
        let role = if i % 2 == 0 { "storage" } else { "compute" };
        sim.with_node(i, |node, _| {
            node.set_tags(vec![("role".into(), role.into())]).unwrap()
        });
    }
    sim.run_for(Duration::from_secs(5));
    // Tags spread with their Lamport times.
    assert_eq!(
        sim.node(1).member("n4").unwrap().tag("role"),
        Some("storage")
    );
    sim.take_events();
    let id = sim.with_node(1, |node, now| {
        node.query(
            now,
            QueryParams {
                name: "disk".into(),
                payload: b"free?".to_vec(),
                nodes: vec![],
                tags: vec![("role".into(), "storage".into())],
                timeout: Duration::from_secs(5),
            },
        )
        .unwrap()
    });
    let mut answered = 0;
    let mut responses = Vec::new();
    let mut done = false;
    for _ in 0..100 {
        sim.run_for(Duration::from_millis(100));
        for (_, at, e) in sim.take_events() {
            match e {
                Event::QueryRequest {
                    id: qid, origin, ..
                } => {
                    assert_eq!(origin, "n1");
                    assert_eq!(at % 2, 0, "non-matching node {at} was asked");
                    let reply = format!("{at}");
                    sim.with_node(at, |node, now| {
                        node.respond(now, qid, reply.as_bytes()).unwrap()
                    });
                    answered += 1;
                }
                Event::QueryResponse { id: qid, from, .. } if at == 1 => {
                    assert_eq!(qid, id);
                    responses.push(from);
                }
                Event::QueryDone { id: qid } if at == 1 => {
                    assert_eq!(qid, id);
                    done = true;
                }
                _ => {}
            }
        }
        if done {
            break;
        }
    }
    assert!(done, "the query finished");
    assert_eq!(answered, n / 2);
    responses.sort();
    responses.dedup();
    assert_eq!(responses.len(), n / 2, "{responses:?}");
}

#[test]
fn vivaldi_estimates_track_real_round_trip_times() {
    let n = 30;
    let mut sim = cluster(
        n,
        Config::lan(),
        SimConfig {
            jitter: Duration::ZERO,
            ..SimConfig::default()
        },
    );
    sim.run_for(Duration::from_secs(180));
    let mut errors = Vec::new();
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let Some(est) = sim.node(i).rtt_to(sim.name(j)) else {
                continue;
            };
            let real = sim.link_delay(i, j) * 2;
            errors.push((est.as_secs_f64() - real.as_secs_f64()).abs() / real.as_secs_f64());
        }
    }
    assert!(
        errors.len() > n * (n - 1) * 9 / 10,
        "most pairs have an estimate"
    );
    errors.sort_by(f64::total_cmp);
    let median = errors[errors.len() / 2];
    println!(
        "vivaldi median relative error over {} pairs: {median:.3}",
        errors.len()
    );
    assert!(median < 0.25, "median relative error {median}");
}

#[test]
fn search_orders_results_by_estimated_rtt_and_health() {
    let n = 12;
    let mut sim = cluster(
        n,
        Config::lan(),
        SimConfig {
            jitter: Duration::ZERO,
            ..SimConfig::default()
        },
    );
    for i in 1..n {
        let mut r = record(i, "web", 80);
        if i == 5 {
            r.health = Health::Unhealthy;
        }
        sim.with_node(i, |node, _| node.publish(r).unwrap());
    }
    sim.run_for(Duration::from_secs(120));
    let hits = sim.node(0).search(&SearchFilter {
        service_type: Some("web".into()),
        microcloud: Some("mc1".into()),
    });
    assert_eq!(hits.len(), n - 1);
    assert_eq!(hits.last().unwrap().node, "n5", "unhealthy sorts last");
    let rtts: Vec<u64> = hits[..n - 2].iter().map(|h| h.rtt_us.unwrap()).collect();
    assert!(rtts.windows(2).all(|w| w[0] <= w[1]), "{rtts:?}");
    assert!(hits[0].quality() >= hits.last().unwrap().quality());
    let none = sim.node(0).search(&SearchFilter {
        service_type: None,
        microcloud: Some("other".into()),
    });
    assert!(none.is_empty());
}

#[test]
fn fifty_services_on_one_node_all_spread() {
    let n = 10;
    let mut sim = cluster(n, Config::lan(), SimConfig::default());
    for p in 0..50u16 {
        sim.with_node(2, |node, _| {
            node.publish(record(2, "app", 9000 + p)).unwrap()
        });
    }
    sim.run_for(Duration::from_secs(10));
    for i in 0..n {
        let hits = sim.node(i).search(&SearchFilter {
            service_type: Some("app".into()),
            microcloud: None,
        });
        assert_eq!(hits.len(), 50, "node {i}");
    }
    // A late joiner gets all of them through push-pull.
    let late = sim.spawn(Config::lan(), Keyring::new(key(1)));
    sim.with_node(late, |node, now| node.join(now, &[Sim::addr_of(0)]));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        sim.node(late)
            .search(&SearchFilter {
                service_type: Some("app".into()),
                microcloud: None
            })
            .len(),
        50
    );
}

#[test]
fn name_conflict_is_reported_and_the_known_member_kept() {
    let mut sim = cluster(5, Config::lan(), SimConfig::default());
    sim.take_events();
    let twin = sim.spawn_named("n1", Config::lan(), Keyring::new(key(1)));
    sim.with_node(twin, |node, now| node.join(now, &[Sim::addr_of(0)]));
    sim.run_for(Duration::from_secs(10));
    let conflicts: Vec<usize> = sim
        .take_events()
        .into_iter()
        .filter(|(_, _, e)| matches!(e, Event::NameConflict { name, .. } if name == "n1"))
        .map(|(_, at, _)| at)
        .collect();
    assert!(
        conflicts.contains(&twin),
        "the newcomer is told: {conflicts:?}"
    );
    assert!(
        conflicts.contains(&0),
        "the seed saw the claim: {conflicts:?}"
    );
    for i in [0, 2, 3, 4] {
        let m = sim.node(i).member("n1").unwrap();
        assert_eq!(m.addr, Sim::addr_of(1), "node {i} switched to the twin");
        assert_eq!(m.state, MemberState::Alive);
    }
}

#[test]
fn reaping_forgets_dead_members_and_their_records_after_retention() {
    let mut cfg = Config::lan();
    cfg.dead_retention = Duration::from_secs(30);
    let mut sim = cluster(8, cfg, SimConfig::default());
    sim.with_node(6, |node, _| node.publish(record(6, "web", 80)).unwrap());
    sim.run_for(Duration::from_secs(3));
    sim.crash(6);
    sim.run_for(Duration::from_secs(90));
    for i in (0..8).filter(|&i| i != 6) {
        assert!(
            sim.node(i).member("n6").is_none(),
            "node {i} still remembers n6"
        );
        assert!(sim.node(i).search(&SearchFilter::default()).is_empty());
    }
}

#[test]
fn same_seed_gives_the_same_run() {
    let run = || {
        let mut sim = cluster(
            15,
            Config::lan(),
            SimConfig {
                loss: 0.1,
                ..SimConfig::default()
            },
        );
        sim.run_for(Duration::from_secs(30));
        (sim.traffic(), sim.node(3).stats().clone(), sim.now())
    };
    assert_eq!(run(), run());
    let _ = Instant::ZERO;
}

#[test]
fn join_succeeds_through_any_of_several_seeds() {
    let mut sim = cluster(6, Config::lan(), SimConfig::default());
    sim.crash(0);
    let newcomer = sim.spawn(Config::lan(), Keyring::new(key(1)));
    // The first seed is down, the second does not exist, the third answers.
    let seeds = [Sim::addr_of(0), Sim::addr_of(999), Sim::addr_of(3)];
    sim.with_node(newcomer, |node, now| node.join(now, &seeds));
    let t = sim.run_until_true(Duration::from_millis(100), Duration::from_secs(60), |s| {
        s.node(newcomer).num_live() >= 6
            && (1..6).all(|i| s.node(i).member(s.name(newcomer)).is_some())
    });
    assert!(t.is_some());
}

#[test]
fn wan_profile_converges_and_detects_a_crash() {
    let cfg = Config::wan();
    let n = 20;
    let mut sim = cluster(
        n,
        cfg.clone(),
        SimConfig {
            base_delay: Duration::from_millis(40),
            spread: Duration::from_millis(120),
            jitter: Duration::from_millis(20),
            loss: 0.05,
            ..SimConfig::default()
        },
    );
    let name = sim.name(3).to_string();
    sim.crash(3);
    let bound = cfg.probe_interval * 3
        + cfg.suspicion_min_timeout(n) * cfg.suspicion_max_timeout_mult
        + Duration::from_secs(5);
    let t = sim.run_until_true(Duration::from_millis(500), bound, |s| {
        everyone_sees(s, &name, MemberState::Failed)
    });
    assert!(t.is_some(), "not detected within {bound:?}");
}

#[test]
fn indirect_probes_keep_members_alive_across_a_broken_link() {
    let n = 30;
    let mut sim = cluster(n, Config::lan(), SimConfig::default());
    sim.take_events();
    // 0 and 1 cannot hear each other at all; everyone else hears both.
    sim.set_link_loss(0, 1, 1.0);
    sim.run_for(Duration::from_secs(180));
    let failed = sim
        .take_events()
        .into_iter()
        .filter(|(_, _, e)| matches!(e, Event::MemberFailed { .. }))
        .count();
    assert_eq!(failed, 0);
    assert!(everyone_sees(&sim, "n0", MemberState::Alive));
    assert!(everyone_sees(&sim, "n1", MemberState::Alive));
}

/// One node whose every link loses 60 % (a sick radio): how many verdicts it
/// hands out itself, and how many "failed" events about healthy members and
/// about itself the cluster sees over five minutes.
fn degraded_node_run(lifeguard: bool) -> (u64, usize, usize) {
    let mut cfg = Config::lan();
    cfg.lifeguard = lifeguard;
    let n = 50;
    let mut sim = cluster(n, cfg, SimConfig::default());
    sim.run_for(Duration::from_secs(30));
    sim.take_events();
    for j in 1..n {
        sim.set_link_loss(0, j, 0.6);
    }
    sim.run_for(Duration::from_secs(300));
    let events = sim.take_events();
    let about = |healthy: bool| {
        events
            .iter()
            .filter(
                |(_, _, e)| matches!(e, Event::MemberFailed { name } if (name != "n0") == healthy),
            )
            .count()
    };
    (sim.node(0).stats().declared_dead, about(true), about(false))
}

#[test]
fn degraded_node_does_not_take_healthy_members_down_with_lifeguard() {
    let (on_declared, on_healthy, on_sick) = degraded_node_run(true);
    let (off_declared, off_healthy, off_sick) = degraded_node_run(false);
    println!(
        "one node at 60% loss, 50 nodes, 5 min: lifeguard on: it declared {on_declared}, \
         healthy-member failures seen {on_healthy}, its own {on_sick}; off: {off_declared}, \
         {off_healthy}, {off_sick}"
    );
    assert!(off_healthy > 0, "plain SWIM lets the sick node hurt others");
    assert!(on_healthy * 10 <= off_healthy);
    assert!(on_declared <= off_declared);
}

/// The bench's hardest case on the simulator: 20 nodes, every datagram
/// dropped with probability 1/2 for three minutes (streams get through late,
/// after TCP-like retransmissions). Returns (dead declarations, member-failed
/// events), the latter being what the bench counts.
fn false_failures_at_50_percent_loss(
    lifeguard: bool,
    stream_probes: bool,
    seed: u64,
) -> (u64, u64) {
    let mut cfg = Config::lan();
    cfg.lifeguard = lifeguard;
    cfg.stream_probes = stream_probes;
    let mut sim = cluster(
        20,
        cfg,
        SimConfig {
            seed,
            ..SimConfig::default()
        },
    );
    sim.take_events();
    let declared = |sim: &Sim| {
        (0..sim.len())
            .map(|i| sim.node(i).stats().declared_dead)
            .sum::<u64>()
    };
    let before = declared(&sim);
    sim.set_loss(0.50);
    sim.run_for(Duration::from_secs(180));
    let failed_events = sim
        .take_events()
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::MemberFailed { .. }))
        .count() as u64;
    (declared(&sim) - before, failed_events)
}

#[test]
fn twenty_nodes_at_50_percent_loss_for_three_minutes_see_few_false_failures() {
    // Judged over 20 runs, not 5: a false declaration here is a rare event
    // (0.65 per 3-minute run, measured over 40 seeds), so a bound over a
    // handful of runs would pass or fail with the random sequence, which any
    // change of timing moves.
    let (mut declared, mut events) = (0, 0);
    for seed in 1..=20 {
        let (d, e) = false_failures_at_50_percent_loss(true, true, seed);
        println!("20 nodes, 50% loss, 180 s, seed {seed}: declared {d}, failed events {e}");
        declared += d;
        events += e;
    }
    // The mechanisms' share, on the first 5 seeds.
    let mut totals = [(0, 0); 3];
    for seed in 1..=5 {
        let runs = [
            false_failures_at_50_percent_loss(true, true, seed),
            false_failures_at_50_percent_loss(true, false, seed),
            false_failures_at_50_percent_loss(false, true, seed),
        ];
        for (t, r) in totals.iter_mut().zip(runs) {
            t.0 += r.0;
            t.1 += r.1;
        }
    }
    println!(
        "20 runs: {declared} declarations, {events} events; seeds 1..=5 (declared, events): \
         lifeguard + stream probes {:?}, lifeguard without stream probes {:?}, no lifeguard {:?}",
        totals[0], totals[1], totals[2]
    );
    // Stated bound: at most one false dead declaration per 3-minute run on
    // average (one declaration reaches up to 19 observers, hence the events
    // bound); plain SWIM declares hundreds.
    assert!(
        declared <= 20,
        "{declared} false dead declarations in 20 runs"
    );
    assert!(
        events <= 20 * 19,
        "{events} member-failed events in 20 runs"
    );
    let [(five_declared, _), _, (off_declared, _)] = totals;
    assert!(
        off_declared >= 100 * five_declared.max(1),
        "no lifeguard: {off_declared}, lifeguard: {five_declared}"
    );
}

/// `n` nodes started within the same 100 ms, all joining node 0 (a power
/// cut's reboot): how long until every node sees every other alive, and the
/// bytes sent in the first 10 s (datagrams, push-pull streams).
fn burst_join(n: usize, seed: u64) -> (Option<Duration>, u64, u64) {
    let mut sim = Sim::new(SimConfig {
        seed,
        record_events: false,
        ..SimConfig::default()
    });
    for _ in 0..n {
        sim.spawn(Config::lan(), Keyring::new(key(1)));
    }
    sim.run_for(Duration::from_millis(500));
    let start = sim.now();
    // Joins spread over 100 ms in a fixed, scrambled order.
    let mut order: Vec<usize> = (1..n).collect();
    order.sort_by_key(|&i| (i * 7919) % n);
    for (k, &i) in order.iter().enumerate() {
        let at = start + Duration::from_millis((k * 100 / order.len()) as u64);
        sim.run_until(at);
        sim.with_node(i, |node, now| node.join(now, &[Sim::addr_of(0)]));
    }
    let t = sim.run_until_true(Duration::from_millis(50), Duration::from_secs(60), |s| {
        (0..s.len()).all(|i| s.node(i).num_live() == s.len())
    });
    let took = t.map(|t| Duration::from_millis(t.as_millis() - start.as_millis()));
    let ten = start + Duration::from_secs(10);
    if sim.now() < ten {
        sim.run_until(ten);
    }
    // Past 10 s (no convergence by then) the bytes include a little more.
    let traffic = sim.traffic();
    (took, traffic.datagram_bytes, traffic.stream_bytes)
}

#[test]
fn burst_of_nodes_joining_one_seed_converges_within_three_seconds() {
    // Bound: the joins take 0.1 s; a join reply misses the nodes joining at
    // the same moment, so every joiner push-pulls again 5 gossip rounds
    // (1 s) after its join reply, and what that reveals spreads in about
    // log3(n) <= 5 rounds (1 s): 2.1 s plus stream delays, under 3 s.
    // Without the early push-pull the last members were only learnt at the
    // first periodic push-pull, 15-30 s in.
    for n in [50usize, 200] {
        for seed in [0xF0CA, 7] {
            let (took, udp, tcp) = burst_join(n, seed);
            println!(
                "burst join n={n} seed={seed}: converged after {took:?}; first 10 s: {udp} B datagrams + {tcp} B push-pull"
            );
            let took = took.expect("the burst never converged");
            assert!(took <= Duration::from_secs(3), "n={n}: {took:?}");
        }
    }
}

/// A 30-node cluster with providers everywhere, after three minutes on a
/// network where a `spikes` fraction of datagrams is held up 100–300 ms:
/// the median relative error of every node's RTT estimate to every other,
/// and the share of nodes whose first search hit (the "closest provider")
/// is one of the three really closest.
fn vivaldi_accuracy(seed: u64, spikes: f64) -> (f64, f64) {
    let n = 30;
    let sim_cfg = SimConfig {
        seed,
        spikes,
        record_events: false,
        ..SimConfig::default()
    };
    let mut sim = cluster(n, Config::lan(), sim_cfg);
    for i in 0..n {
        sim.with_node(i, |node, _| node.publish(record(i, "web", 80)).unwrap());
    }
    sim.run_for(Duration::from_secs(180));
    let mut errors = Vec::new();
    let mut nearest_right = 0;
    for i in 0..n {
        for j in (0..n).filter(|&j| j != i) {
            if let Some(est) = sim.node(i).rtt_to(sim.name(j)) {
                let real = (sim.link_delay(i, j) * 2).as_secs_f64();
                errors.push((est.as_secs_f64() - real).abs() / real);
            }
        }
        let mut closest: Vec<(Duration, &str)> = (0..n)
            .filter(|&j| j != i)
            .map(|j| (sim.link_delay(i, j), sim.name(j)))
            .collect();
        closest.sort();
        let hits = sim.node(i).search(&SearchFilter {
            service_type: Some("web".into()),
            microcloud: None,
        });
        let first = hits.iter().find(|h| h.node != sim.name(i));
        if first.is_some_and(|h| closest[..3].iter().any(|&(_, name)| name == h.node)) {
            nearest_right += 1;
        }
    }
    assert!(
        errors.len() > n * (n - 1) * 9 / 10,
        "most pairs have an estimate"
    );
    errors.sort_by(f64::total_cmp);
    (errors[errors.len() / 2], nearest_right as f64 / n as f64)
}

/// Wi-Fi holds up a datagram now and then (link-layer retransmissions, a
/// full queue), so a probe's RTT can read 300 ms on a 5 ms link. With 5 %
/// and 10 % of datagrams held up 100–300 ms, the estimates stay about as
/// good as on a calm network and nearly every node's closest provider is
/// one of its three really closest. Fed every raw sample, Vivaldi was off
/// by a median 80–205 % and picked right for 10–30 % of the nodes; fed the
/// median of three, 15–116 % and 10–73 %.
#[test]
fn vivaldi_estimates_survive_delay_spikes() {
    for seed in 1..=5 {
        let (calm_error, calm_nearest) = vivaldi_accuracy(seed, 0.0);
        assert!(calm_error < 0.1, "seed {seed}: calm error {calm_error}");
        assert!(calm_nearest >= 0.9, "seed {seed}: calm {calm_nearest}");
        for spikes in [0.05, 0.10] {
            let (error, nearest) = vivaldi_accuracy(seed, spikes);
            println!(
                "seed {seed}, {:.0} % spikes: median error {error:.3} (calm {calm_error:.3}), \
                 closest provider right for {:.0} % of nodes (calm {:.0} %)",
                spikes * 100.0,
                nearest * 100.0,
                calm_nearest * 100.0
            );
            assert!(
                error < calm_error + 0.06,
                "seed {seed}, {spikes}: error {error} vs calm {calm_error}"
            );
            assert!(nearest >= 0.8, "seed {seed}, {spikes}: nearest {nearest}");
        }
    }
}
