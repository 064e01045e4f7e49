//! A deterministic multi-node simulator: the main proof of the protocol.
//!
//! Runs N [`Node`]s on a virtual clock. Datagrams cross links with a delay
//! (from the nodes' positions on a plane, so Vivaldi has something to learn),
//! jitter, occasional spikes (a datagram held up for hundreds of
//! milliseconds, as on a busy Wi-Fi link) and loss (cluster-wide or per
//! link); streams (push-pull, stream
//! probes) are delivered reliably but late, as TCP would: every lost segment
//! costs a retransmission timeout (1 s doubling for the handshake, 200 ms
//! doubling for data, Linux's defaults), and a stream the agent would have
//! given up on (10 s) is lost, as is one across a partition or to a crash. Everything random comes from
//! the seed, so a failing seed replays exactly. Time jumps from one event to
//! the next, as quinn's test `Pair` does, so simulated minutes take
//! milliseconds.
//!
//! ```
//! use core::time::Duration;
//! use nuvol_gossip::sim::{Sim, SimConfig};
//! use nuvol_gossip::{Config, Keyring};
//! let mut sim = Sim::new(SimConfig::default());
//! for _ in 0..5 {
//!     sim.spawn(Config::lan(), Keyring::plaintext());
//! }
//! sim.join_all(0);
//! sim.run_for(Duration::from_secs(10));
//! assert!((0..5).all(|i| sim.node(i).num_live() == 5));
//! ```

use alloc::collections::{BTreeMap, BinaryHeap};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::ops::Range;
use core::time::Duration;

use crate::catalog::{Health, ServiceRecord};
use crate::config::Config;
use crate::keyring::Keyring;
use crate::node::{Event, Identity, Node, Transmit};
use crate::rng::{sqrt, Rng};
use crate::time::{duration_ms, Instant};
use crate::vivaldi::WireCoordinate;
use crate::wire::{CatalogEntry, CatalogState, MemberRecord, WireState};

/// Network conditions of a simulation.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// Probability that a datagram is lost, on every link.
    pub loss: f64,
    /// One-way delay of every link, before distance and jitter.
    pub base_delay: Duration,
    /// Extra one-way delay across the whole plane (nodes sit in a unit square).
    pub spread: Duration,
    /// Uniform extra delay per datagram, `0..jitter`.
    pub jitter: Duration,
    /// Fraction of datagrams held up far beyond their link's delay, as a
    /// Wi-Fi retransmission burst or a full queue does (0: none).
    pub spikes: f64,
    /// Extra one-way delay of a held-up datagram, uniform in this range.
    pub spike_delay: Range<Duration>,
    /// Keep every event (turn off for very large runs).
    pub record_events: bool,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            seed: 0xF0CA,
            loss: 0.0,
            base_delay: Duration::from_millis(1),
            spread: Duration::from_millis(20),
            jitter: Duration::from_millis(1),
            spikes: 0.0,
            spike_delay: Duration::from_millis(100)..Duration::from_millis(300),
            record_events: true,
        }
    }
}

/// Linux's first retransmission timeouts: a SYN, a data segment.
const SYN_RTO_MS: u64 = 1000;
const DATA_RTO_MS: u64 = 200;
/// The agent abandons a stream exchange after this long.
const STREAM_GIVE_UP_MS: u64 = 10_000;

enum What {
    Wake(usize),
    Packet {
        to: usize,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    StreamRequest {
        to: usize,
        from: usize,
        bytes: Vec<u8>,
        /// When the connecting side gives up waiting for the reply.
        give_up: u64,
    },
    StreamReply {
        to: usize,
        from: usize,
        bytes: Vec<u8>,
    },
}

struct Item {
    at: u64,
    seq: u64,
    what: What,
}

impl PartialEq for Item {
    fn eq(&self, o: &Item) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Item) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    fn cmp(&self, o: &Item) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, we want the earliest first.
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

struct Slot {
    identity: Identity,
    config: Config,
    keyring: Keyring,
    node: Option<Node>,
    pos: (f64, f64),
    wake: Option<u64>,
    restarts: u64,
    /// Partition group; links between different groups drop everything.
    group: u32,
}

/// Totals over a run, for bandwidth reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub datagrams: u64,
    pub datagram_bytes: u64,
    pub streams: u64,
    pub stream_bytes: u64,
    pub dropped: u64,
    /// Largest datagram seen, sealing included.
    pub max_datagram: usize,
}

/// The simulator. See the module docs.
pub struct Sim {
    cfg: SimConfig,
    now: u64,
    seq: u64,
    rng: Rng,
    queue: BinaryHeap<Item>,
    slots: Vec<Slot>,
    by_addr: BTreeMap<SocketAddr, usize>,
    events: Vec<(Instant, usize, Event)>,
    traffic: Traffic,
    /// Whether any node is in a partition group other than node 0's.
    partitioned: bool,
    /// Loss overriding `SimConfig::loss` on single links (both directions).
    link_loss: BTreeMap<(usize, usize), f64>,
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Sim {
        Sim {
            rng: Rng::new(cfg.seed),
            cfg,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            slots: Vec::new(),
            by_addr: BTreeMap::new(),
            events: Vec::new(),
            traffic: Traffic::default(),
            partitioned: false,
            link_loss: BTreeMap::new(),
        }
    }

    /// The address node `i` gets: 10.a.b.c:7946.
    pub fn addr_of(i: usize) -> SocketAddr {
        let i = i as u32 + 1;
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)),
            7946,
        )
    }

    /// Add a node named `n<i>`; it knows nobody until it joins.
    pub fn spawn(&mut self, config: Config, keyring: Keyring) -> usize {
        let name = format!("n{}", self.slots.len());
        self.spawn_named(&name, config, keyring)
    }

    /// Add a node with a chosen name (names need not be unique: that is
    /// how name conflicts are tested).
    pub fn spawn_named(&mut self, name: &str, config: Config, keyring: Keyring) -> usize {
        let i = self.slots.len();
        let identity = Identity::new(name, Sim::addr_of(i));
        let seed = self.rng.next_u64();
        let node = Node::new(identity.clone(), config.clone(), keyring.clone(), seed);
        let pos = (self.rng.unit(), self.rng.unit());
        self.by_addr.insert(identity.addr, i);
        self.slots.push(Slot {
            identity,
            config,
            keyring,
            node: Some(node),
            pos,
            wake: None,
            restarts: 0,
            group: 0,
        });
        self.settle(i);
        i
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn now(&self) -> Instant {
        Instant::from_millis(self.now)
    }

    /// Node `i`. Panics if it is crashed: that is a bug in the test.
    pub fn node(&self, i: usize) -> &Node {
        self.slots[i]
            .node
            .as_ref()
            .expect("tests only read running nodes (see is_up)")
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.slots[i].node.is_some()
    }

    pub fn name(&self, i: usize) -> &str {
        &self.slots[i].identity.name
    }

    /// Act on node `i` (publish, set tags, …); its output is then routed.
    pub fn with_node<R>(&mut self, i: usize, f: impl FnOnce(&mut Node, Instant) -> R) -> R {
        let now = self.now();
        let node = self.slots[i]
            .node
            .as_mut()
            .expect("tests only act on running nodes (see is_up)");
        let r = f(node, now);
        self.settle(i);
        r
    }

    /// Every node joins through node `seed`.
    pub fn join_all(&mut self, seed: usize) {
        let addr = Sim::addr_of(seed);
        for i in 0..self.slots.len() {
            if i != seed && self.is_up(i) {
                self.with_node(i, |n, now| n.join(now, &[addr]));
            }
        }
    }

    /// Stop node `i` without a word (its state is lost).
    pub fn crash(&mut self, i: usize) {
        self.slots[i].node = None;
        self.slots[i].wake = None;
    }

    /// Start node `i` again, from `saved` state if given, joining via `seeds`.
    pub fn restart(&mut self, i: usize, saved: Option<&[u8]>, seeds: &[usize]) {
        let s = &mut self.slots[i];
        s.restarts += 1;
        let seed = self.rng.next_u64();
        let mut node = Node::new(
            s.identity.clone(),
            s.config.clone(),
            s.keyring.clone(),
            seed,
        );
        if let Some(bytes) = saved {
            node.import_state(bytes)
                .expect("tests pass state this node exported");
        }
        s.node = Some(node);
        let addrs: Vec<SocketAddr> = seeds.iter().map(|&j| Sim::addr_of(j)).collect();
        self.with_node(i, |n, now| n.join(now, &addrs));
    }

    /// Put node `i` in partition group `g`; nodes in different groups cannot talk.
    pub fn set_group(&mut self, i: usize, g: u32) {
        self.slots[i].group = g;
        self.partitioned = self.slots.iter().any(|s| s.group != self.slots[0].group);
    }

    /// Remove every partition.
    pub fn heal(&mut self) {
        for s in &mut self.slots {
            s.group = 0;
        }
        self.partitioned = false;
    }

    /// Loss on every link without its own setting.
    pub fn set_loss(&mut self, loss: f64) {
        self.cfg.loss = loss;
    }

    /// Loss on the link between `a` and `b`, both directions.
    pub fn set_link_loss(&mut self, a: usize, b: usize, loss: f64) {
        self.link_loss.insert((a.min(b), a.max(b)), loss);
    }

    fn loss(&self, a: usize, b: usize) -> f64 {
        if self.link_loss.is_empty() {
            return self.cfg.loss;
        }
        self.link_loss
            .get(&(a.min(b), a.max(b)))
            .copied()
            .unwrap_or(self.cfg.loss)
    }

    /// Events recorded so far (if recording), drained.
    pub fn take_events(&mut self) -> Vec<(Instant, usize, Event)> {
        core::mem::take(&mut self.events)
    }

    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// One-way delay between two nodes, without jitter.
    pub fn link_delay(&self, a: usize, b: usize) -> Duration {
        let (pa, pb) = (self.slots[a].pos, self.slots[b].pos);
        let d = sqrt((pa.0 - pb.0) * (pa.0 - pb.0) + (pa.1 - pb.1) * (pa.1 - pb.1));
        self.cfg.base_delay + Duration::from_micros((d * self.cfg.spread.as_micros() as f64) as u64)
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + duration_ms(d);
        self.run_until(Instant::from_millis(until));
    }

    /// Process everything scheduled up to `t`, then set the clock to `t`.
    pub fn run_until(&mut self, t: Instant) {
        let until = t.as_millis();
        while self.queue.peek().is_some_and(|it| it.at <= until) {
            let Some(item) = self.queue.pop() else { break };
            self.now = self.now.max(item.at);
            self.dispatch(item.what);
        }
        self.now = self.now.max(until);
    }

    /// Run in steps of `step` until `done` holds or `limit` passes; returns
    /// the time it first held.
    pub fn run_until_true(
        &mut self,
        step: Duration,
        limit: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Option<Instant> {
        let end = self.now + duration_ms(limit);
        loop {
            if done(self) {
                return Some(self.now());
            }
            if self.now >= end {
                return None;
            }
            self.run_for(step);
        }
    }

    fn dispatch(&mut self, what: What) {
        let now = Instant::from_millis(self.now);
        match what {
            What::Wake(i) => {
                if self.slots[i].wake != Some(self.now) {
                    return;
                }
                self.slots[i].wake = None;
                if let Some(n) = self.slots[i].node.as_mut() {
                    n.handle_timeout(now);
                    self.settle(i);
                }
            }
            What::Packet { to, from, bytes } => {
                if let Some(n) = self.slots[to].node.as_mut() {
                    let _ = n.handle_packet(now, from, &bytes);
                    self.settle(to);
                }
            }
            What::StreamRequest {
                to,
                from,
                bytes,
                give_up,
            } => {
                let from_addr = self.slots[from].identity.addr;
                let Some(n) = self.slots[to].node.as_mut() else {
                    return;
                };
                let reply = n.handle_stream(now, from_addr, &bytes);
                self.settle(to);
                if let Ok(Some(reply)) = reply {
                    self.traffic.streams += 1;
                    self.traffic.stream_bytes += reply.len() as u64;
                    let retransmits = self.retransmit_delay(to, from, DATA_RTO_MS, 1);
                    let at = self.now + duration_ms(self.link_delay(to, from)) + retransmits;
                    if self.connected(to, from) && at <= give_up {
                        self.push(
                            at,
                            What::StreamReply {
                                to: from,
                                from: to,
                                bytes: reply,
                            },
                        );
                    }
                }
            }
            What::StreamReply { to, from, bytes } => {
                let from_addr = self.slots[from].identity.addr;
                if let Some(n) = self.slots[to].node.as_mut() {
                    let _ = n.handle_stream(now, from_addr, &bytes);
                    self.settle(to);
                }
            }
        }
    }

    /// Time TCP spends retransmitting until an exchange of `legs` datagrams
    /// (2: SYN and SYN-ACK; 1: a data segment) gets through the link between
    /// `a` and `b`, with the retransmission timeout starting at `rto_ms` and
    /// doubling. Bounded: past the agent's give-up time the answer no
    /// longer matters.
    fn retransmit_delay(&mut self, a: usize, b: usize, rto_ms: u64, legs: u32) -> u64 {
        let loss = self.loss(a, b);
        let mut waited = 0;
        let mut rto = rto_ms;
        while waited <= STREAM_GIVE_UP_MS {
            if (0..legs).all(|_| loss <= 0.0 || self.rng.unit() >= loss) {
                return waited;
            }
            waited += rto;
            rto *= 2;
        }
        waited
    }

    /// Extra delay for one datagram: usually none, a spike for a
    /// `spikes` fraction of them. Draws nothing while spikes are off, so
    /// runs without them replay as before.
    fn spike(&mut self) -> u64 {
        if self.cfg.spikes <= 0.0 || self.rng.unit() >= self.cfg.spikes {
            return 0;
        }
        let lo = duration_ms(self.cfg.spike_delay.start);
        let hi = duration_ms(self.cfg.spike_delay.end).max(lo);
        lo + ((hi - lo) as f64 * self.rng.unit()) as u64
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        !self.partitioned || self.slots[a].group == self.slots[b].group
    }

    fn push(&mut self, at: u64, what: What) {
        self.seq += 1;
        self.queue.push(Item {
            at,
            seq: self.seq,
            what,
        });
    }

    /// Route node `i`'s output, record its events, schedule its next wake-up.
    fn settle(&mut self, i: usize) {
        let now = self.now();
        let Some(node) = self.slots[i].node.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        while let Some(t) = node.poll_transmit() {
            out.push(t);
        }
        while let Some(e) = node.poll_event() {
            if self.cfg.record_events {
                self.events.push((now, i, e));
            }
        }
        // Never schedule at the current instant: a node that keeps asking
        // for "now" must not stall the virtual clock.
        let wake = node.poll_timeout().map(|t| t.as_millis().max(self.now + 1));
        let from = self.slots[i].identity.addr;
        for t in out {
            match t {
                Transmit::Packet { to, bytes } => {
                    self.traffic.datagrams += 1;
                    self.traffic.datagram_bytes += bytes.len() as u64;
                    self.traffic.max_datagram = self.traffic.max_datagram.max(bytes.len());
                    let Some(&j) = self.by_addr.get(&to) else {
                        continue;
                    };
                    let loss = self.loss(i, j);
                    if !self.connected(i, j) || (loss > 0.0 && self.rng.unit() < loss) {
                        self.traffic.dropped += 1;
                        continue;
                    }
                    let jitter = duration_ms(self.cfg.jitter) as f64 * self.rng.unit();
                    let at = self.now
                        + duration_ms(self.link_delay(i, j))
                        + jitter as u64
                        + self.spike();
                    self.push(at, What::Packet { to: j, from, bytes });
                }
                Transmit::Stream { to, bytes } => {
                    self.traffic.streams += 1;
                    self.traffic.stream_bytes += bytes.len() as u64;
                    let Some(&j) = self.by_addr.get(&to) else {
                        continue;
                    };
                    if !self.connected(i, j) {
                        continue;
                    }
                    // Connection set-up plus the request: one and a half
                    // round trips, plus the retransmissions loss costs.
                    let give_up = self.now + STREAM_GIVE_UP_MS;
                    let retransmits = self.retransmit_delay(i, j, SYN_RTO_MS, 2)
                        + self.retransmit_delay(i, j, DATA_RTO_MS, 1);
                    let at = self.now + 3 * duration_ms(self.link_delay(i, j)) + retransmits;
                    if at > give_up {
                        continue;
                    }
                    self.push(
                        at,
                        What::StreamRequest {
                            to: j,
                            from: i,
                            bytes,
                            give_up,
                        },
                    );
                }
            }
        }
        if let Some(w) = wake {
            if self.slots[i].wake.is_none_or(|cur| w < cur) {
                self.slots[i].wake = Some(w);
                self.push(w, What::Wake(i));
            }
        }
    }
}

/// Member `i` of a large microcloud as a router's agent sends it in a
/// push-pull, in `state`: the agent's 8 tags, an 8-dimension coordinate and
/// a catalog of 10 services with a description and a txt pair each. Tests
/// and measurements of stream sizes and bounds build their clusters of it.
pub fn realistic_member(i: usize, state: WireState) -> (MemberRecord, CatalogState) {
    let name = format!("node-{i:04}.mesh");
    let tags = [
        ("microcloud", String::from("guifi-sants")),
        ("version", String::from("0.1.0")),
        ("arch", String::from("aarch64")),
        ("board", String::from("glinet,gl-mt3000")),
        ("mem", String::from("60112")),
        ("memfree", format!("{}", 27_000 + i)),
        ("load", format!("{}", i % 300)),
        ("disk", format!("{}", 5_000 + i)),
    ];
    let member = MemberRecord {
        name: name.clone(),
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1)), 7946),
        incarnation: 3,
        state,
        tags_lamport: 7,
        tags: tags
            .into_iter()
            .map(|(k, v)| (String::from(k), v))
            .collect(),
        coord: Some(WireCoordinate {
            vec: alloc::vec![0.001; 8],
            error: 0.2,
            height: 0.0001,
        }),
    };
    let entries = (0..10u16)
        .map(|s| CatalogEntry {
            version: u64::from(s) + 1,
            service_type: format!("svc{s}"),
            port: 8000 + s,
            record: Some(ServiceRecord {
                service_type: format!("svc{s}"),
                description: format!("service number {s} of this node"),
                host: name.clone(),
                ip: format!("10.1.{}.{}", i / 250, i % 250 + 1),
                port: 8000 + s,
                microcloud: String::from("guifi-sants"),
                txt: alloc::vec![(String::from("path"), String::from("/"))],
                health: Health::Healthy,
            }),
        })
        .collect();
    let catalog = CatalogState {
        node: name,
        version: 10,
        entries,
    };
    (member, catalog)
}
