//! What a push-pull costs at 50 members, and what it must still carry.
//!
//! The measurement builds a 50-node cluster on the simulator with the tags
//! the agent gossips (agent/src/agent.rs `tags`: microcloud, version and
//! the /proc metadata), lets it settle until every node has probed every
//! other (coordinates everywhere), and then prints the encoded size of one
//! periodic push-pull request and of the reply to it, with the share of
//! each part. `cargo test -p nuvol-gossip --test push_pull -- --nocapture`
//! prints the numbers; they are deterministic from the seed.

use core::net::SocketAddr;
use core::time::Duration;
use nuvol_gossip::sim::{Sim, SimConfig};
use nuvol_gossip::wire::{self, MemberRecord, PushPull};
use nuvol_gossip::{Config, Health, Identity, Instant, Keyring, Node, ServiceRecord, Transmit};

/// The decoding budget of a LAN node.
fn budget() -> usize {
    Config::lan().decode_budget()
}

/// Tags as the agent sets them on the bench machine (agent.rs `tags` and
/// metadata.rs `Metadata::tags`): values of a typical width.
fn agent_tags(i: usize) -> Vec<(String, String)> {
    [
        ("microcloud", "bench".to_string()),
        ("version", "0.1.0".to_string()),
        ("arch", "x86_64".to_string()),
        ("board", "unknown".to_string()),
        ("mem", "24684084".to_string()),
        ("memfree", format!("{}", 19_000_000 + i * 7_919)),
        ("load", format!("{}", 20 + i % 40)),
        ("disk", format!("{}", 81_000_000 + i * 1_013)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A service as a router would publish it (the web page, ssh).
fn record(i: usize, service_type: &str, port: u16) -> ServiceRecord {
    ServiceRecord {
        service_type: service_type.into(),
        description: format!("{service_type} on n{i}"),
        host: format!("n{i}"),
        ip: format!("10.0.0.{}", i + 1),
        port,
        microcloud: "bench".into(),
        txt: vec![("path".into(), "/".into())],
        health: Health::Healthy,
    }
}

/// `n` nodes with the agent's tags (and `services` records each), joined
/// through node 0 and run for `settle`, plaintext as in the bench.
fn settled_cluster(n: usize, services: usize, settle: Duration) -> Sim {
    let mut sim = Sim::new(SimConfig {
        record_events: false,
        ..SimConfig::default()
    });
    for i in 0..n {
        sim.spawn(Config::lan(), Keyring::plaintext());
        sim.with_node(i, |node, _| node.set_tags(agent_tags(i)))
            .expect("the agent's tags fit a datagram");
        for (s, (ty, port)) in [("http", 80u16), ("ssh", 22)].into_iter().enumerate() {
            if s < services {
                sim.with_node(i, |node, _| node.publish(record(i, ty, port)))
                    .expect("a router's record fits a datagram");
            }
        }
    }
    for i in 1..n {
        sim.with_node(i, |node, now| node.join(now, &[Sim::addr_of(0)]));
        sim.run_for(Duration::from_millis(10));
    }
    sim.run_for(settle);
    assert!(
        (0..n).all(|i| sim.node(i).num_live() == n),
        "the cluster did not converge"
    );
    sim
}

/// The stream node `from` sends node `to` in a periodic exchange, and `to`'s
/// reply: as the simulator would carry them, minus the 1-byte plaintext
/// frame. Obtained through the public API: `from`'s state is its answer to
/// an empty request (it merges nothing), turned back into a request.
fn exchange(sim: &mut Sim, from: usize, to: usize) -> (Vec<u8>, Vec<u8>) {
    let empty = PushPull {
        version: wire::VERSION,
        join: false,
        reply: false,
        from: sim.name(to).to_string(),
        members: Vec::new(),
        catalogs: Vec::new(),
        event_clock: 0,
        query_clock: 0,
        ping: None,
    };
    let state = sim
        .with_node(from, |node, now| {
            node.handle_stream(
                now,
                Sim::addr_of(to),
                &framed(&wire::encode_push_pull(&empty)),
            )
        })
        .expect("an empty request is valid")
        .expect("a request is answered");
    let mut request =
        wire::decode_push_pull(&state[1..], budget()).expect("a node's own state decodes");
    request.reply = false;
    let request = wire::encode_push_pull(&request);
    let reply = sim
        .with_node(to, |node, now| {
            node.handle_stream(now, Sim::addr_of(from), &framed(&request))
        })
        .expect("a node's state is a valid request")
        .expect("a request is answered");
    (request, reply[1..].to_vec())
}

/// A stream as a plaintext keyring frames it.
fn framed(plain: &[u8]) -> Vec<u8> {
    Keyring::plaintext().seal([0; 12], plain)
}

/// Encoded size of one member record.
fn member_len(m: &MemberRecord) -> usize {
    let pp = PushPull {
        version: wire::VERSION,
        join: false,
        reply: false,
        from: String::new(),
        members: vec![m.clone()],
        catalogs: Vec::new(),
        event_clock: 0,
        query_clock: 0,
        ping: None,
    };
    let mut none = pp.clone();
    none.members.clear();
    wire::encode_push_pull(&pp).len() - wire::encode_push_pull(&none).len()
}

/// Bytes of `pp` by part: (member headers, tags, coordinates, catalogs, rest).
fn composition(pp: &PushPull) -> [usize; 5] {
    let total = wire::encode_push_pull(pp).len();
    let (mut head, mut tags, mut coord) = (0, 0, 0);
    for m in &pp.members {
        let full = member_len(m);
        let bare = MemberRecord {
            tags: Vec::new(),
            coord: None,
            ..m.clone()
        };
        let with_tags = MemberRecord {
            coord: None,
            ..m.clone()
        };
        head += member_len(&bare);
        tags += member_len(&with_tags) - member_len(&bare);
        coord += full - member_len(&with_tags);
    }
    let mut no_catalogs = pp.clone();
    no_catalogs.catalogs.clear();
    let catalogs = total - wire::encode_push_pull(&no_catalogs).len();
    [
        head,
        tags,
        coord,
        catalogs,
        total - head - tags - coord - catalogs,
    ]
}

fn report(what: &str, bytes: &[u8]) -> PushPull {
    let pp = wire::decode_push_pull(bytes, budget()).expect("a node's push-pull decodes");
    let [head, tags, coord, catalogs, rest] = composition(&pp);
    let with_tags = pp.members.iter().filter(|m| !m.tags.is_empty()).count();
    let with_coord = pp.members.iter().filter(|m| m.coord.is_some()).count();
    let entries: usize = pp.catalogs.iter().map(|c| c.entries.len()).sum();
    println!(
        "{what}: {} B = {} members ({head} B headers, {with_tags} tag sets {tags} B, \
         {with_coord} coordinates {coord} B) + {entries} catalog entries {catalogs} B + {rest} B framing",
        bytes.len(),
        pp.members.len(),
    );
    pp
}

#[test]
fn push_pull_at_fifty_members_by_part() {
    for services in [0, 2] {
        let mut sim = settled_cluster(50, services, Duration::from_secs(120));
        let (request, reply) = exchange(&mut sim, 7, 31);
        println!("n=50, {services} services per node:");
        let req = report("  periodic request", &request);
        let rep = report("  its reply", &reply);
        assert_eq!(req.members.len(), 50);
        // In a settled cluster the answerer has nothing the requester lacks
        // but its own record (with its coordinate).
        assert_eq!(rep.members.len(), 1);
        assert!(rep.catalogs.is_empty());
        let before = sim.traffic();
        sim.run_for(Duration::from_secs(600));
        let after = sim.traffic();
        let streams = after.streams - before.streams;
        let bytes = after.stream_bytes - before.stream_bytes;
        println!(
            "  steady 600 s: {streams} streams, {} B each on average, {:.0} B/node/s of push-pull",
            bytes / streams.max(1),
            bytes as f64 / 50.0 / 600.0
        );
    }
}

/// Three nodes wired by hand: datagrams take one 5 ms step, streams are
/// answered at once, and only the links in `up` carry anything.
struct Net {
    nodes: Vec<Node>,
    now: Instant,
    in_flight: Vec<(usize, SocketAddr, Vec<u8>)>,
    up: Vec<(usize, usize)>,
    /// Datagrams are lost (gossip, probes); streams still get through.
    no_datagrams: bool,
}

impl Net {
    fn new(names: &[&str]) -> Net {
        let nodes = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let addr = SocketAddr::from(([10, 0, 0, i as u8 + 1], 7946));
                Node::new(
                    Identity::new(name, addr),
                    Config::lan(),
                    Keyring::plaintext(),
                    i as u64 + 1,
                )
            })
            .collect();
        Net {
            nodes,
            now: Instant::from_millis(0),
            in_flight: Vec::new(),
            up: Vec::new(),
            no_datagrams: false,
        }
    }

    fn index(&self, addr: SocketAddr) -> Option<usize> {
        self.nodes.iter().position(|n| n.addr() == addr)
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        self.up.contains(&(a, b)) || self.up.contains(&(b, a))
    }

    /// Sends what node `i` has queued: datagrams into flight, streams
    /// straight to their peer and the reply straight back.
    fn flush(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].poll_transmit() {
            let from = self.nodes[i].addr();
            match t {
                Transmit::Packet { .. } if self.no_datagrams => {}
                Transmit::Packet { to, bytes } => {
                    if let Some(j) = self.index(to).filter(|&j| self.linked(i, j)) {
                        self.in_flight.push((j, from, bytes));
                    }
                }
                Transmit::Stream { to, bytes } => {
                    let Some(j) = self.index(to).filter(|&j| self.linked(i, j)) else {
                        continue;
                    };
                    let now = self.now;
                    let reply = self.nodes[j].handle_stream(now, from, &bytes);
                    if let Ok(Some(reply)) = reply {
                        let _ = self.nodes[i].handle_stream(now, to, &reply);
                    }
                    self.flush(j);
                }
            }
        }
    }

    /// One 5 ms step: deliver what is in flight, run timers, send.
    fn step(&mut self) {
        self.now = self.now + Duration::from_millis(5);
        let now = self.now;
        for (j, from, bytes) in core::mem::take(&mut self.in_flight) {
            let _ = self.nodes[j].handle_packet(now, from, &bytes);
        }
        for i in 0..self.nodes.len() {
            self.nodes[i].handle_timeout(now);
            self.flush(i);
        }
    }
}

/// Node `i`'s reply to an empty request from `from` (`join` or periodic).
fn state_of(net: &mut Net, i: usize, from: &str, join: bool) -> PushPull {
    let request = PushPull {
        version: wire::VERSION,
        join,
        reply: false,
        from: from.to_string(),
        members: Vec::new(),
        catalogs: Vec::new(),
        event_clock: 0,
        query_clock: 0,
        ping: None,
    };
    let now = net.now;
    let from = SocketAddr::from(([10, 9, 9, 9], 7946));
    let reply = net.nodes[i]
        .handle_stream(now, from, &framed(&wire::encode_push_pull(&request)))
        .expect("an empty request is valid")
        .expect("a request is answered");
    wire::decode_push_pull(&reply[1..], budget()).expect("a node's state decodes")
}

#[test]
fn joiner_learns_the_coordinate_of_a_member_it_never_probed() {
    let mut net = Net::new(&["a", "b", "c"]);
    let (a, b, c) = (0, 1, 2);
    // b and c form a cluster and probe each other; a can only reach b.
    net.up = vec![(b, c), (a, b)];
    let c_addr = net.nodes[c].addr();
    net.nodes[b].join(net.now, &[c_addr]);
    net.flush(b);
    let mut steps = 0;
    while net.nodes[b]
        .member("c")
        .and_then(|m| m.coordinate.as_ref())
        .is_none()
    {
        assert!(steps < 2_000, "b never probed c");
        net.step();
        steps += 1;
    }
    let c_seen_by_b = net.nodes[b].member("c").and_then(|m| m.coordinate.clone());

    // Periodic exchanges carry only the sender's own coordinate...
    let periodic = state_of(&mut net, b, "x", false);
    let with_coord: Vec<&str> = periodic
        .members
        .iter()
        .filter(|m| m.coord.is_some())
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(with_coord, ["b"]);
    // ...a join reply every coordinate its sender knows.
    let join = state_of(&mut net, b, "x", true);
    assert!(join.members.iter().all(|m| m.coord.is_some()));

    let b_addr = net.nodes[b].addr();
    net.nodes[a].join(net.now, &[b_addr]);
    net.flush(a);
    let learnt = net.nodes[a].member("c").expect("a learnt c from b's reply");
    assert_eq!(learnt.coordinate, c_seen_by_b);
    assert!(net.nodes[a].rtt_to("c").is_some());
}

/// A push-pull request from `name` (at `addr`) telling its receiver about
/// `name` itself: incarnation, tags, catalog entries.
fn tell(
    net: &mut Net,
    to: usize,
    (name, addr): (&str, SocketAddr),
    incarnation: u64,
    tags: (u64, &str),
    entries: &[(u64, &str, u16)],
) {
    let request = PushPull {
        version: wire::VERSION,
        join: false,
        reply: false,
        from: name.to_string(),
        members: vec![MemberRecord {
            name: name.to_string(),
            addr,
            incarnation,
            state: wire::WireState::Alive,
            tags_lamport: tags.0,
            tags: vec![("role".to_string(), tags.1.to_string())],
            coord: None,
        }],
        catalogs: vec![wire::CatalogState {
            node: name.to_string(),
            version: entries.iter().map(|e| e.0).max().unwrap_or(0),
            entries: entries
                .iter()
                .map(|&(version, ty, port)| wire::CatalogEntry {
                    version,
                    service_type: ty.to_string(),
                    port,
                    record: Some(ServiceRecord {
                        description: format!("{ty} v{version}"),
                        ..record(9, ty, port)
                    }),
                })
                .collect(),
        }],
        event_clock: 0,
        query_clock: 0,
        ping: None,
    };
    let now = net.now;
    net.nodes[to]
        .handle_stream(now, addr, &framed(&wire::encode_push_pull(&request)))
        .expect("a valid request");
    // Whatever it queued (re-gossip, its reply) is lost.
    while net.nodes[to].poll_transmit().is_some() {}
}

/// (incarnation, tags Lamport time, role tag, catalog slots as
/// "type/port vN description") of `name` as node `i` would send it: read
/// from its answer to an empty request (records of members it thinks dead
/// are kept, search would hide them).
type View = (u64, u64, String, Vec<String>);

fn view(net: &mut Net, i: usize, name: &str) -> Option<View> {
    let state = state_of(net, i, "x", false);
    let m = state.members.iter().find(|m| m.name == name)?;
    let role = m.tags.iter().find(|(k, _)| k == "role").map(|(_, v)| v);
    let mut slots: Vec<String> = state
        .catalogs
        .iter()
        .filter(|c| c.node == name)
        .flat_map(|c| c.entries.iter())
        .map(|e| {
            let desc = e.record.as_ref().map_or("-", |r| r.description.as_str());
            format!("{}/{} v{} {desc}", e.service_type, e.port, e.version)
        })
        .collect();
    slots.sort();
    Some((
        m.incarnation,
        m.tags_lamport,
        role.cloned().unwrap_or_default(),
        slots,
    ))
}

/// a and b, joined, then told different things about two unreachable
/// members c and d (datagrams lost from then on): `(net, what both should
/// end up with about (c, d))`. Only a starts exchanges, so what b knows can
/// only reach a through b's replies.
fn diverged() -> (Net, (Option<View>, Option<View>)) {
    let mut net = Net::new(&["a", "b"]);
    let (a, b) = (0, 1);
    net.up = vec![(a, b)];
    let mut config = Config::lan();
    config.push_pull_interval = Duration::from_secs(3_600);
    config.reconnect_interval = Duration::from_secs(3_600);
    net.nodes[b] = Node::new(
        Identity::new("b", net.nodes[b].addr()),
        config,
        Keyring::plaintext(),
        2,
    );
    let b_addr = net.nodes[b].addr();
    net.nodes[a].join(net.now, &[b_addr]);
    net.flush(a);
    assert_eq!(net.nodes[b].num_live(), 2);
    net.no_datagrams = true;

    let c = ("c", SocketAddr::from(([10, 0, 0, 3], 7946)));
    let d = ("d", SocketAddr::from(([10, 0, 0, 4], 7946)));
    // c: a has newer web and ssh, b newer tags and dns.
    let c_a = [(4, "web", 80), (2, "ssh", 22), (1, "dns", 53)];
    tell(&mut net, a, c, 1, (5, "web"), &c_a);
    tell(
        &mut net,
        b,
        c,
        1,
        (7, "proxy"),
        &[(2, "web", 80), (3, "dns", 53)],
    );
    // d: a has newer tags, b a newer incarnation and the only record.
    tell(&mut net, a, d, 2, (2, "old"), &[]);
    tell(&mut net, b, d, 3, (1, "older"), &[(1, "db", 5432)]);

    let slots = ["dns/53 v3 dns v3", "ssh/22 v2 ssh v2", "web/80 v4 web v4"];
    let want_c: View = (1, 7, "proxy".into(), slots.map(String::from).to_vec());
    let want_d: View = (3, 2, "old".into(), vec!["db/5432 v1 db v1".into()]);
    (net, (Some(want_c), Some(want_d)))
}

fn views(net: &mut Net, i: usize) -> (Option<View>, Option<View>) {
    (view(net, i, "c"), view(net, i, "d"))
}

#[test]
fn one_exchange_leaves_both_sides_with_everything_either_had() {
    let (mut net, want) = diverged();
    let (a, b) = (0, 1);
    // a's periodic request is its whole state (its answer to an empty
    // request, marked as a request); b's reply only what a lacks.
    let mut request = state_of(&mut net, a, "b", false);
    request.reply = false;
    let now = net.now;
    let (a_addr, b_addr) = (net.nodes[a].addr(), net.nodes[b].addr());
    let request = wire::encode_push_pull(&request);
    let reply = net.nodes[b]
        .handle_stream(now, a_addr, &framed(&request))
        .expect("a's state is a valid request")
        .expect("a request is answered");
    net.nodes[a]
        .handle_stream(now, b_addr, &reply)
        .expect("b's reply is valid");
    assert_eq!(views(&mut net, b), want);
    assert_eq!(views(&mut net, a), want);
}

#[test]
fn push_pull_alone_converges_both_ways_when_every_datagram_is_lost() {
    let (mut net, want) = diverged();
    let (a, b) = (0, 1);
    for _ in 0..24_000 {
        if views(&mut net, a) == want && views(&mut net, b) == want {
            return;
        }
        net.step();
    }
    panic!(
        "not converged after 120 s: a {:?}, b {:?}",
        views(&mut net, a),
        views(&mut net, b)
    );
}

#[test]
fn reply_leaves_out_only_slots_shown_in_key_order() {
    let mut net = Net::new(&["b"]);
    let c = ("c", SocketAddr::from(([10, 0, 0, 3], 7946)));
    let d = ("d", SocketAddr::from(([10, 0, 0, 4], 7946)));
    tell(
        &mut net,
        0,
        c,
        1,
        (1, "web"),
        &[(2, "web", 80), (3, "dns", 53)],
    );
    tell(&mut net, 0, d, 1, (1, "db"), &[(1, "db", 5432)]);
    let slots = |node: &str, s: &[(u64, &str, u16)]| wire::CatalogState {
        node: node.to_string(),
        version: 0,
        entries: s
            .iter()
            .map(|&(version, ty, port)| wire::CatalogEntry {
                version,
                service_type: ty.to_string(),
                port,
                record: None,
            })
            .collect(),
    };
    let c_slots = slots("c", &[(3, "dns", 53), (2, "web", 80)]);
    let d_slots = slots("d", &[(1, "db", 5432)]);
    // Shown as every sender writes them (nodes and slots in key order):
    // nothing of them comes back.
    let reply_to = |net: &mut Net, catalogs: Vec<wire::CatalogState>| {
        let request = PushPull {
            version: wire::VERSION,
            join: false,
            reply: false,
            from: "x".into(),
            members: Vec::new(),
            catalogs,
            event_clock: 0,
            query_clock: 0,
            ping: None,
        };
        let now = net.now;
        let from = SocketAddr::from(([10, 9, 9, 9], 7946));
        let reply = net.nodes[0]
            .handle_stream(now, from, &framed(&wire::encode_push_pull(&request)))
            .expect("a valid request")
            .expect("a request is answered");
        let reply = wire::decode_push_pull(&reply[1..], budget()).expect("a valid reply");
        let mut sent: Vec<String> = reply
            .catalogs
            .iter()
            .flat_map(|c| c.entries.iter().map(|e| format!("{}:{}", c.node, e.port)))
            .collect();
        sent.sort();
        sent
    };
    assert!(reply_to(&mut net, vec![c_slots.clone(), d_slots.clone()]).is_empty());
    // Out of order: the answerer cannot look them up and sends everything.
    let every = ["c:53", "c:80", "d:5432"];
    assert_eq!(
        reply_to(&mut net, vec![d_slots.clone(), c_slots.clone()]),
        every
    );
    let mut c_reversed = c_slots.clone();
    c_reversed.entries.reverse();
    assert_eq!(reply_to(&mut net, vec![c_reversed, d_slots.clone()]), every);
    // An older version shown: that slot comes back, the rest not.
    let c_old = slots("c", &[(3, "dns", 53), (1, "web", 80)]);
    assert_eq!(reply_to(&mut net, vec![c_old, d_slots]), ["c:80"]);
}

fn lone_node(name: &str, i: u8) -> Node {
    let addr = SocketAddr::from(([10, 0, 0, i], 7946));
    Node::new(
        Identity::new(name, addr),
        Config::lan(),
        Keyring::plaintext(),
        u64::from(i),
    )
}

fn member_record(name: &str, i: u8, state: wire::WireState) -> MemberRecord {
    MemberRecord {
        name: name.to_string(),
        addr: SocketAddr::from(([10, 0, 0, i], 7946)),
        incarnation: 1,
        state,
        tags_lamport: 0,
        tags: Vec::new(),
        coord: None,
    }
}

/// Hands `node` a push-pull request from `from` holding `members`; drops
/// whatever it sends.
fn push(node: &mut Node, now: Instant, from: &str, members: Vec<MemberRecord>) {
    let request = PushPull {
        version: wire::VERSION,
        join: false,
        reply: false,
        from: from.to_string(),
        members,
        catalogs: Vec::new(),
        event_clock: 0,
        query_clock: 0,
        ping: None,
    };
    let addr = SocketAddr::from(([10, 9, 9, 9], 7946));
    node.handle_stream(now, addr, &framed(&wire::encode_push_pull(&request)))
        .expect("a valid request");
    while node.poll_transmit().is_some() {}
}

/// A gossip datagram from `from` telling that c is suspect.
fn rumour(a: &mut Node, now: Instant, from: &str, i: u8) {
    let packet = wire::encode_packet(&[wire::Message::Suspect {
        name: "c".to_string(),
        incarnation: 1,
        from: from.to_string(),
    }]);
    let addr = SocketAddr::from(([10, 0, 0, i], 7946));
    a.handle_packet(now, addr, &framed(&packet))
        .expect("a valid datagram");
    while a.poll_transmit().is_some() {}
}

/// When node a, which heard "c is suspect" from d, declares c failed after
/// `echoes` peers showed c as suspect in their push-pull state and
/// `confirmations` peers said so in datagrams of their own.
fn declared_after(echoes: usize, confirmations: usize) -> Duration {
    use nuvol_gossip::wire::WireState::{Alive, Suspect};
    let start = Instant::ZERO;
    let mut a = lone_node("a", 1);
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let everyone = (1..=8)
        .map(|i| member_record(names[usize::from(i) - 1], i, Alive))
        .collect();
    push(&mut a, start, "h", everyone);
    rumour(&mut a, start, "d", 4);
    assert_eq!(
        a.member("c").map(|m| m.state),
        Some(nuvol_gossip::MemberState::Suspect)
    );
    for peer in ["b", "e", "f", "g"].into_iter().take(echoes) {
        push(&mut a, start, peer, vec![member_record("c", 3, Suspect)]);
    }
    for (peer, i) in [("e", 5), ("f", 6)].into_iter().take(confirmations) {
        rumour(&mut a, start, peer, i);
    }
    let mut now = start;
    for _ in 0..6_000 {
        now = now + Duration::from_millis(100);
        a.handle_timeout(now);
        while a.poll_transmit().is_some() {}
        if a.member("c").map(|m| m.state) == Some(nuvol_gossip::MemberState::Failed) {
            return now.saturating_since(start);
        }
    }
    panic!("c never declared failed");
}

/// A peer's state may only echo what it heard from us, so a suspicion in
/// push-pull state counts as ours (once), never as that peer's independent
/// confirmation: Lifeguard shortens the timeout per confirmation, and four
/// peers echoing one rumour must weigh no more than one peer confirming it
/// (as memberlist's mergeState).
#[test]
fn suspicions_shown_in_push_pull_state_confirm_only_once() {
    let alone = declared_after(0, 0);
    let (one, two) = (declared_after(0, 1), declared_after(0, 2));
    let echoed = declared_after(4, 0);
    println!(
        "c declared after {alone:?} on one rumour, {one:?} / {two:?} with one / two \
         confirmations, {echoed:?} with four echoes"
    );
    assert!(
        two < one && one < alone,
        "confirmations shorten the timeout"
    );
    assert_eq!(echoed, one, "four echoes weigh as one confirmation");
}

/// A joiner that already knows a member (heard of it by gossip) but never
/// probed it still gets its coordinate from the join reply.
#[test]
fn join_reply_carries_coordinates_of_members_the_joiner_shows() {
    use nuvol_gossip::wire::WireState::Alive;
    let now = Instant::ZERO;
    let (mut a, mut b) = (lone_node("a", 1), lone_node("b", 2));
    let mut c = member_record("c", 3, Alive);
    c.coord = Some(nuvol_gossip::Coordinate::origin().to_wire());
    push(&mut b, now, "c", vec![c]);
    assert!(b.member("c").and_then(|m| m.coordinate.as_ref()).is_some());
    push(&mut a, now, "f", vec![member_record("c", 3, Alive)]);
    a.join(now, &[SocketAddr::from(([10, 0, 0, 2], 7946))]);
    for _ in 0..10 {
        let Some(t) = a.poll_transmit() else { break };
        if let Transmit::Stream { bytes, .. } = t {
            let from_a = SocketAddr::from(([10, 0, 0, 1], 7946));
            let reply = b.handle_stream(now, from_a, &bytes).unwrap().unwrap();
            let from_b = SocketAddr::from(([10, 0, 0, 2], 7946));
            a.handle_stream(now, from_b, &reply).unwrap();
        }
    }
    assert!(
        a.member("c").and_then(|m| m.coordinate.as_ref()).is_some(),
        "a has no coordinate for c after its join"
    );
}
