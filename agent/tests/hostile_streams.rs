//! A real agent under hostile push-pull streams: more concurrent TCP
//! connections than it serves at once, each a frame of the largest size it
//! accepts whose body is the decoder's worst case (thousands of minimal
//! members, catalog entries, tag pairs), garbage, a sealed frame to a keyless
//! node, and frames announcing more than the limit. Its peak memory
//! (VmHWM from /proc) must stay small enough for a 64 MB router, it must keep
//! answering, an honest push-pull of a large realistic cluster must still be
//! answered, and a real peer must still join it afterwards.
//!
//! And valid push-pulls naming ~100,000 fake members (anyone can send them
//! to a keyless node): the agent holds at most `max_members`, its peak
//! memory stays small, and its log says why new members are refused.
//!
//! Only 127.0.0.1 is contacted; every read and write has a timeout.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use common::{wait_for, Agent, TempDir};
use nuvol_gossip::sim::realistic_member;
use nuvol_gossip::wire::{self, MemberRecord, PushPull, WireState};
use nuvol_gossip::Config;

/// More than the agent's concurrent stream slots (8), so some wait.
const CONNECTIONS: usize = 16;
/// The agent's own stream limit (LAN profile).
fn limit() -> usize {
    Config::lan().max_stream_len
}

/// (VmHWM, VmRSS) of `pid` in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /proc/{pid}/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// A push-pull body (PLAIN byte, then CBOR) of at most `len` bytes: the
/// fields up to `from`, then `prefix`, as many copies of `item` as fit in
/// an indefinite list, and no further field, so the decoder
/// builds every item and only then finds a required field missing.
fn flood(len: usize, prefix: &[u8], item: &[u8]) -> Vec<u8> {
    // PLAIN, indefinite push-pull array, version 1, false, false, "x".
    let mut out = vec![0x00, 0x9f, 0x01, 0xf4, 0xf4, 0x61, b'x'];
    out.extend_from_slice(prefix);
    out.push(0x9f);
    let tail = 2;
    while out.len() + item.len() + tail <= len {
        out.extend_from_slice(item);
    }
    out.push(0xff);
    out.push(0xff);
    out
}

/// The hostile bodies, each of the largest accepted size.
fn hostile_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let n = limit();
    // A member: ["", [127.0.0.1, 1], 0, alive, 0, []].
    let member = [
        0x86, 0x60, 0x82, 0x44, 127, 0, 0, 1, 0x01, 0x00, 0x00, 0x00, 0x80,
    ];
    // A catalog entry tombstone: [0, "", 0, null].
    let entry = [0x84, 0x00, 0x60, 0x00, 0xf6];
    // A catalog entry with an empty record: [0, "", 0, ["", "", "", "", 0, "", [], 0]].
    let record = [
        0x84, 0x00, 0x60, 0x00, 0x88, 0x60, 0x60, 0x60, 0x60, 0x00, 0x60, 0x80, 0x00,
    ];
    // A tag pair: ["", ""].
    let pair = [0x82, 0x60, 0x60];
    // One catalog ["n", 0, [entries…]] in the catalogs list, members empty.
    let catalog_prefix = [0x80, 0x81, 0x83, 0x61, b'n', 0x00];
    // One member whose tag list is the flood.
    let tags_prefix = [
        0x81, 0x86, 0x60, 0x82, 0x44, 127, 0, 0, 1, 0x01, 0x00, 0x00, 0x00,
    ];
    let mut garbage = Vec::with_capacity(n);
    let mut x: u32 = 0x1234_5678;
    while garbage.len() < n {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        garbage.push((x >> 24) as u8);
    }
    let mut sealed = garbage.clone();
    sealed[0] = 0x01;
    garbage[0] = 0x00;
    vec![
        ("members", flood(n, &[], &member)),
        ("entries", flood(n, &catalog_prefix, &entry)),
        ("records", flood(n, &catalog_prefix, &record)),
        ("tags", flood(n, &tags_prefix, &pair)),
        ("garbage", garbage),
        ("sealed", sealed),
    ]
}

/// Connects, sends `len` as the frame length and `body` but its last byte,
/// waits `hold` (so the streams overlap in the agent), sends the last byte
/// and reads until the agent closes. Every step has a timeout; errors only
/// end the attempt (the agent may refuse or cut a hostile stream).
fn send(port: u16, len: u32, body: &[u8], hold: Duration) {
    let to = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let Ok(mut c) = TcpStream::connect_timeout(&to, Duration::from_secs(5)) else {
        return;
    };
    let _ = c.set_write_timeout(Some(Duration::from_secs(15)));
    let _ = c.set_read_timeout(Some(Duration::from_secs(15)));
    let split = body.len().saturating_sub(1);
    if c.write_all(&len.to_be_bytes()).is_err() || c.write_all(&body[..split]).is_err() {
        return;
    }
    std::thread::sleep(hold);
    if c.write_all(&body[split..]).is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    for _ in 0..100_000 {
        match c.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// A push-pull request carrying `n` realistic members, as a frame body.
fn honest_push_pull(n: usize) -> Vec<u8> {
    // Left: records the agent keeps without probing 300 addresses nobody
    // answers on.
    let (members, catalogs) = (0..n).map(|i| realistic_member(i, WireState::Left)).unzip();
    let p = PushPull {
        version: wire::VERSION,
        join: false,
        reply: false,
        from: "node-0000.mesh".into(),
        members,
        catalogs,
        event_clock: 1,
        query_clock: 1,
        ping: None,
    };
    let mut body = vec![0x00];
    body.extend(wire::encode_push_pull(&p));
    body
}

/// Sends `body` as one complete frame and returns the reply frame's
/// length, if the agent answered (it closes the connection otherwise).
fn exchange(port: u16, body: &[u8]) -> Option<usize> {
    let to = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(5)).ok()?;
    c.set_write_timeout(Some(Duration::from_secs(15))).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    c.write_all(&(body.len() as u32).to_be_bytes()).ok()?;
    c.write_all(body).ok()?;
    let mut len = [0u8; 4];
    c.read_exact(&mut len).ok()?;
    Some(u32::from_be_bytes(len) as usize)
}

#[test]
fn hostile_streams_stay_within_a_routers_memory_and_the_agent_stays_a_member() {
    let dir = TempDir::new("hostile");
    let mc = format!("hs{}", std::process::id());
    let mut victim = Agent::new(dir.path(), "victim", &mc);
    victim.start(&[]);
    let pid = victim.pid().expect("pid");
    let port = victim.port;
    let (hwm0, rss0) = memory(pid);

    let bodies = hostile_bodies();
    let over = (limit() as u32).saturating_mul(4).max(4 << 20) + 1;
    std::thread::scope(|s| {
        for i in 0..CONNECTIONS {
            let bodies = &bodies;
            s.spawn(move || {
                if i % 8 == 7 {
                    // Announces more than the limit, sends a little.
                    send(
                        port,
                        over,
                        &bodies[4].1[..1024],
                        Duration::from_millis(1500),
                    );
                } else {
                    let body = &bodies[i % bodies.len()].1;
                    send(port, body.len() as u32, body, Duration::from_millis(1500));
                }
            });
        }
    });
    // Then each body alone, complete, so that every kind is decoded (the
    // burst's got room only for some): each is refused, unanswered.
    for (kind, body) in &bodies {
        assert_eq!(exchange(port, body), None, "{kind} stream answered");
    }
    let (hwm1, rss1) = memory(pid);
    let sizes: Vec<String> = bodies
        .iter()
        .map(|(k, b)| format!("{k} {} B", b.len()))
        .collect();
    println!(
        "hostile streams: {CONNECTIONS} connections, limit {} B, bodies [{}]\n\
         before: VmHWM {hwm0} KiB VmRSS {rss0} KiB\n\
         after:  VmHWM {hwm1} KiB VmRSS {rss1} KiB (peak +{} KiB)",
        limit(),
        sizes.join(", "),
        hwm1 - hwm0
    );

    // A stream over the limit is refused with a word to the owner (an
    // honest microcloud may have outgrown it).
    let log = victim.log_text();
    assert!(
        log.contains("refused") && log.contains("raise max_stream_len"),
        "no warning about the oversized stream: {log}"
    );

    // Still running and answering.
    let mut child = victim.child.take().expect("child");
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "agent died under hostile streams: {}",
        victim.log_text()
    );
    victim.child = Some(child);
    victim.ok(&["info"]);
    victim.ok(&["members"]);

    // An honest push-pull of a large realistic cluster is still answered.
    let honest = honest_push_pull(300);
    assert!(
        honest.len() <= limit(),
        "a 300-member push-pull ({} B) must fit the limit {}",
        honest.len(),
        limit()
    );
    let reply = exchange(port, &honest);
    assert!(
        reply.is_some(),
        "no reply to an honest 300-member push-pull"
    );
    let (hwm2, _) = memory(pid);
    println!(
        "honest 300-member push-pull: {} B, reply {} B, VmHWM {hwm2} KiB",
        honest.len(),
        reply.unwrap_or(0)
    );

    // The bound: a 64 MB router has ~25-30 MB free. Before the stream
    // room and the decoding budget, this burst took the peak to ~200 MB.
    assert!(
        hwm2 - hwm0 < 10 * 1024 && hwm2 < 16 * 1024,
        "peak grew by {} KiB to {hwm2} KiB under hostile streams",
        hwm2 - hwm0
    );

    // A real peer still joins.
    let mut peer = Agent::new(dir.path(), "peer", &mc);
    peer.start(&["--join".into(), victim.addr()]);
    wait_for(
        "victim and peer to see each other",
        Duration::from_secs(30),
        || {
            (victim.state_of("peer").as_deref() == Some("alive")
                && peer.state_of("victim").as_deref() == Some("alive"))
            .then_some(())
        },
    );
}

/// A valid push-pull request (PLAIN byte, then CBOR) from `f{batch}-0`
/// naming `count` fake alive members `f{batch}-{i}`, minimal records.
fn fake_members(batch: usize, count: usize) -> Vec<u8> {
    let members = (0..count)
        .map(|i| MemberRecord {
            name: format!("f{batch}-{i}"),
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9),
            incarnation: 1,
            state: WireState::Alive,
            tags_lamport: 0,
            tags: Vec::new(),
            coord: None,
        })
        .collect();
    let p = PushPull {
        version: wire::VERSION,
        join: false,
        reply: false,
        from: format!("f{batch}-0"),
        members,
        catalogs: Vec::new(),
        event_clock: 1,
        query_clock: 1,
        ping: None,
    };
    let mut body = vec![0x00];
    body.extend(wire::encode_push_pull(&p));
    body
}

/// The most fake members one request may name and still be accepted:
/// within the stream limit and the decoding budget of a LAN node.
fn most_fakes_accepted(batch: usize) -> Vec<u8> {
    let fits = |n: usize| {
        let body = fake_members(batch, n);
        let ok = body.len() <= limit()
            && wire::decode_push_pull(&body[1..], Config::lan().decode_budget()).is_ok();
        ok.then_some(body)
    };
    let (mut lo, mut hi) = (1, 100_000);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if fits(mid).is_some() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    fits(lo).expect("one fake member fits")
}

#[test]
fn valid_push_pulls_of_fake_members_stop_at_the_member_cap_and_the_log_says_why() {
    let dir = TempDir::new("fakes");
    let mc = format!("fm{}", std::process::id());
    let mut victim = Agent::new(dir.path(), "victim", &mc);
    victim.start(&[]);
    let pid = victim.pid().expect("pid");
    let port = victim.port;
    let (hwm0, rss0) = memory(pid);
    let cap = Config::lan().max_members;

    // Six valid requests, each naming as many fake members as the agent
    // accepts in one: ~100,000 names in all, ~100 times the cap. Each is
    // merged and answered like any honest push-pull.
    let batches = 6;
    let mut named = 0;
    for batch in 0..batches {
        let body = most_fakes_accepted(batch);
        let count = wire::decode_push_pull(&body[1..], Config::lan().decode_budget())
            .expect("a valid request")
            .members
            .len();
        named += count;
        assert!(
            exchange(port, &body).is_some(),
            "request {batch} of {count} fake members ({} B) not answered",
            body.len()
        );
    }
    let members = victim.json(&["members"]);
    let held = members.as_array().map_or(0, |a| a.len());
    let (hwm1, rss1) = memory(pid);
    println!(
        "fake members: {batches} requests naming {named} in all, cap {cap}: \
         {held} members held\n\
         before: VmHWM {hwm0} KiB VmRSS {rss0} KiB\n\
         after:  VmHWM {hwm1} KiB VmRSS {rss1} KiB (peak +{} KiB)",
        hwm1 - hwm0
    );
    assert!(named > 10 * cap, "only {named} fake members sent");
    assert!(held <= cap, "{held} members held, over the cap {cap}");
    assert!(
        held > cap / 2,
        "only {held} members held: fakes not merged?"
    );
    assert!(victim.state_of("victim").as_deref() == Some("alive"));

    // The owner is told why, once for the burst (then at most once a
    // minute), with the option to raise.
    let log = wait_for("the member cap warning", Duration::from_secs(10), || {
        let log = victim.log_text();
        log.contains("member table full").then_some(log)
    });
    assert!(
        log.contains(&format!("({cap} members)")) && log.contains("raise max_members"),
        "warning lacks the cap or the option: {log}"
    );
    assert_eq!(
        log.matches("member table full").count(),
        1,
        "warned more than once within a minute: {log}"
    );
    // `nuvol info` says so too, in JSON and as one plain line.
    let info = victim.json(&["info"]);
    let refused = info.get("members_refused").and_then(|v| v.as_f64());
    assert!(refused.is_some_and(|n| n > 0.0), "{info:?}");
    assert_eq!(
        info.get("max_members").and_then(|v| v.as_f64()),
        Some(cap as f64)
    );
    let text = victim.ok(&["info"]);
    assert!(
        text.contains(&format!("new members (member table full at {cap})")),
        "{text}"
    );

    // Without the cap (`--gossip max_members=1000000`) these ~118,000
    // names took the peak from 4 MB to 103 MB, ~0.85 KB each: an OOM on a
    // router. With it (7.5 MB here), the peak is the decoding of one
    // request plus the capped table.
    assert!(
        hwm1 - hwm0 < 10 * 1024 && hwm1 < 16 * 1024,
        "peak grew by {} KiB to {hwm1} KiB under fake members",
        hwm1 - hwm0
    );
}
