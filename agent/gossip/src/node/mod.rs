//! The gossip node: one member's whole protocol state, driven from outside.
//!
//! Inputs: [`Node::handle_packet`], [`Node::handle_stream`],
//! [`Node::handle_timeout`] and the operations (`join`, `leave`, `publish`,
//! `set_tags`, `fire_event`, `query`, …). Outputs: [`Node::poll_transmit`],
//! [`Node::poll_event`] and [`Node::poll_timeout`]. The node never reads a
//! clock, never touches a socket and draws randomness only from the seed it
//! was given, so the same inputs always give the same outputs.
//!
//! This file holds the node's state, its inputs and outputs and its timer
//! table; each concern's `impl Node` is a file of its own:
//! `members.rs` (the member table), `probe.rs` (failure detection),
//! `membership.rs` (join, leave, Alive/Suspect/Dead/Tags news),
//! `push_pull.rs` (state exchange and saved state), `services.rs` (the
//! catalog), `events.rs` (user events and queries), `transmit.rs` (sealing and
//! piggybacking), `errors.rs` and `stats.rs`.
//!
//! ```
//! use core::net::SocketAddr;
//! use nuvol_gossip::{Config, Identity, Instant, Keyring, Node, Transmit};
//! let me = Identity::new("a", "10.0.0.1:7946".parse().unwrap());
//! let mut node = Node::new(me, Config::lan(), Keyring::plaintext(), 42);
//! node.join(Instant::ZERO, &["10.0.0.2:7946".parse().unwrap()]);
//! assert!(matches!(node.poll_transmit(), Some(Transmit::Stream { .. })));
//! ```

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use crate::broadcast::{Broadcasts, Subject};
use crate::catalog::{
    Applied, NodeCatalog, SearchFilter, SearchResult, ServiceRecord, Slot, MAX_OWN_RECORDS,
    MAX_SLOTS,
};
use crate::config::Config;
use crate::keyring::{Keyring, OpenError, SEAL_OVERHEAD};
use crate::rng::Rng;
use crate::sorted::SortedMap;
use crate::suspicion::Suspicion;
use crate::time::Instant;
use crate::vivaldi::{Coordinate, LatencyFilter};
use crate::wire::{
    self, CatalogEntry, CatalogState, MemberRecord, Message, Peer, PushPull, SavedState, WireError,
    WireState, PACKET_OVERHEAD,
};

mod errors;
mod events;
mod members;
mod membership;
mod probe;
mod push_pull;
mod services;
mod stats;
mod transmit;

pub use errors::{InputError, OpError};
pub use events::QueryParams;
pub use members::{Identity, Member, MemberState};
pub use stats::Stats;

use events::{InQuery, OutQuery};
use members::NameIndex;
use probe::{Probe, ProbePhase, Relay};
use push_pull::{Shown, EARLY_PUSH_PULL_2};

/// Bytes for the shell to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// One UDP datagram.
    Packet { to: SocketAddr, bytes: Vec<u8> },
    /// A push-pull exchange: connect to `to` over TCP, send `bytes` framed
    /// (4-byte big-endian length), read one framed reply and pass it to
    /// [`Node::handle_stream`]. A failed connection needs no report.
    Stream { to: SocketAddr, bytes: Vec<u8> },
}

/// Handle for a query, as issued by [`Node::query`] (for its responses) or
/// carried by [`Event::QueryRequest`] (for [`Node::respond`]). The two kinds
/// never collide: handles of incoming queries are ≥ 2^32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId(pub u64);

/// What happened, for the shell to act on or show.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A new member, or one back from failed/left.
    MemberUp {
        name: String,
        addr: SocketAddr,
    },
    MemberSuspect {
        name: String,
        incarnation: u64,
    },
    /// A suspicion was refuted.
    MemberAlive {
        name: String,
        incarnation: u64,
    },
    MemberFailed {
        name: String,
    },
    MemberLeft {
        name: String,
    },
    /// Tags or address changed.
    MemberUpdated {
        name: String,
    },
    /// Forgotten after the retention period.
    MemberReaped {
        name: String,
    },
    /// Another node claims this node's name from a different address.
    NameConflict {
        name: String,
        addr: SocketAddr,
    },
    /// This node was suspected or declared dead and refuted it.
    Refuted {
        incarnation: u64,
    },
    ServiceUp {
        node: String,
        record: ServiceRecord,
    },
    ServiceDown {
        node: String,
        record: ServiceRecord,
    },
    ServiceChanged {
        node: String,
        record: ServiceRecord,
    },
    UserEvent {
        origin: String,
        name: String,
        payload: Vec<u8>,
        lamport: u64,
    },
    /// A query this node should answer with [`Node::respond`].
    QueryRequest {
        id: QueryId,
        origin: String,
        name: String,
        payload: Vec<u8>,
    },
    /// An answer to a query this node asked.
    QueryResponse {
        id: QueryId,
        from: String,
        payload: Vec<u8>,
    },
    /// A query this node asked timed out; no more responses follow.
    QueryDone {
        id: QueryId,
    },
}

/// Scan period for reaping dead members and old tombstones.
const REAP_PERIOD: Duration = Duration::from_millis(1000);

/// Fan-out bound whatever the config says (a typo must not stall the node).
const MAX_FANOUT: usize = 64;

/// Every timer a node runs: [`Node::poll_timeout`] is the earliest of their
/// deadlines (`Node::deadline`), and a new timer is a new row here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Piggyback queued broadcasts on a datagram to a few members.
    Gossip,
    /// Forget members dead longer than the retention, and old tombstones.
    Reap,
    /// Periodic full-state exchange with one live member.
    PushPull,
    /// Push-pull with a recently failed member, in case it is back.
    Reconnect,
    /// The probe round: next probe, or the running probe's next step.
    Probe,
    /// Retry joining while no other member is known.
    Join,
    /// A suspect's time to refute runs out.
    Suspicions,
    /// An indirect ping we relay: its nack is due, or it expires.
    Relays,
    /// One of our queries stops collecting responses.
    Queries,
}

impl Timer {
    const ALL: [Timer; 9] = [
        Timer::Gossip,
        Timer::Reap,
        Timer::PushPull,
        Timer::Reconnect,
        Timer::Probe,
        Timer::Join,
        Timer::Suspicions,
        Timer::Relays,
        Timer::Queries,
    ];
}

/// One gossip member. See the module docs.
pub struct Node {
    config: Config,
    keyring: Keyring,
    rng: Rng,
    me: String,
    addr: SocketAddr,
    incarnation: u64,
    left: bool,
    started: bool,

    /// Every known member, this node at index 0.
    members: Vec<Member>,
    index: NameIndex,
    /// Members in Alive or Suspect state, this node included while not left.
    live: usize,
    probe_order: Vec<String>,
    probe_pos: usize,
    probe: Option<Probe>,
    next_probe: Instant,
    seq: u32,
    relays: SortedMap<u32, Relay>,
    suspicions: SortedMap<String, Suspicion>,
    awareness: u32,
    coord: Coordinate,

    catalogs: SortedMap<String, NodeCatalog>,
    broadcasts: Broadcasts,

    event_clock: u64,
    seen_events: SortedMap<(u64, String, String), ()>,
    query_clock: u64,
    seen_queries: SortedMap<(u64, String, u32), ()>,
    next_query_id: u32,
    out_queries: SortedMap<u32, OutQuery>,
    in_queries: SortedMap<u64, InQuery>,
    next_in_query: u64,

    next_gossip: Instant,
    next_push_pull: Instant,
    /// Set after a join reply: the next push-pull is an early one (see
    /// [`Node::arm_early_push_pull`]).
    early_push_pull: bool,
    next_reconnect: Instant,
    next_reap: Instant,
    next_join: Option<Instant>,
    join_targets: Vec<SocketAddr>,
    saved_peers: Vec<SocketAddr>,
    conflicts: Vec<SocketAddr>,
    /// Set while merging a join reply (see [`Node::rebroadcast`]).
    quiet: bool,

    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
}

impl Node {
    /// A node that knows only itself. `seed` drives every random choice and
    /// nonce: the shell passes fresh OS randomness, tests a fixed number.
    pub fn new(identity: Identity, config: Config, keyring: Keyring, seed: u64) -> Node {
        // Mix the name in so two nodes given the same seed still differ.
        let mut mixed = seed;
        for b in identity.name.bytes() {
            mixed = mixed.rotate_left(5) ^ u64::from(b);
            mixed = mixed.wrapping_mul(0x100_0000_01B3);
        }
        let me_member = Member {
            name: identity.name.clone(),
            addr: identity.addr,
            state: MemberState::Alive,
            incarnation: 1,
            tags: Vec::new(),
            tags_lamport: 0,
            state_since: Instant::ZERO,
            coordinate: None,
            rtt_samples: LatencyFilter::default(),
        };
        let mut index = NameIndex::default();
        index.insert(identity.name.clone(), 0);
        let mut catalogs = SortedMap::default();
        catalogs.insert(identity.name.clone(), NodeCatalog::default());
        let mut node = Node {
            config,
            keyring,
            rng: Rng::new(seed ^ mixed),
            me: identity.name,
            addr: identity.addr,
            incarnation: 1,
            left: false,
            started: false,
            members: alloc::vec![me_member],
            index,
            live: 1,
            probe_order: Vec::new(),
            probe_pos: 0,
            probe: None,
            next_probe: Instant::ZERO,
            seq: 0,
            relays: SortedMap::default(),
            suspicions: SortedMap::default(),
            awareness: 0,
            coord: Coordinate::origin(),
            catalogs,
            broadcasts: Broadcasts::default(),
            event_clock: 1,
            seen_events: SortedMap::default(),
            query_clock: 1,
            seen_queries: SortedMap::default(),
            next_query_id: 1,
            out_queries: SortedMap::default(),
            in_queries: SortedMap::default(),
            // Handles of incoming queries live above 2^32 so they can never
            // be mistaken for the ids of this node's own queries.
            next_in_query: 1 << 32,
            next_gossip: Instant::ZERO,
            next_push_pull: Instant::ZERO,
            early_push_pull: false,
            next_reconnect: Instant::ZERO,
            next_reap: Instant::ZERO,
            next_join: None,
            join_targets: Vec::new(),
            saved_peers: Vec::new(),
            conflicts: Vec::new(),
            quiet: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        };
        node.announce_self();
        node
    }

    pub fn name(&self) -> &str {
        &self.me
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Lifeguard local health score, 0 (healthy) up to `awareness_max_multiplier - 1`.
    pub fn health_score(&self) -> u32 {
        self.awareness
    }

    pub fn coordinate(&self) -> &Coordinate {
        &self.coord
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Install, switch or remove keys (see [`Keyring`]); takes effect on the
    /// next packet.
    pub fn keyring_mut(&mut self) -> &mut Keyring {
        &mut self.keyring
    }

    /// Updates waiting to be piggybacked.
    pub fn queued_updates(&self) -> usize {
        self.broadcasts.len()
    }

    pub fn is_left(&self) -> bool {
        self.left
    }

    /// Every known member, this node first.
    pub fn members(&self) -> impl Iterator<Item = &Member> + '_ {
        self.members.iter()
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.index.get(name).map(|&i| &self.members[i])
    }

    /// Members alive or suspect, this node included (while not left).
    pub fn num_live(&self) -> usize {
        self.live
    }

    /// Estimated round-trip time to `node` from Vivaldi coordinates.
    pub fn rtt_to(&self, node: &str) -> Option<Duration> {
        if node == self.me {
            return Some(Duration::ZERO);
        }
        let c = self.member(node)?.coordinate.as_ref()?;
        Some(Duration::from_micros(
            (self.coord.distance_ms(c) * 1000.0) as u64,
        ))
    }

    /// Next bytes to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event to act on.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.started {
            return Some(Instant::ZERO);
        }
        Timer::ALL.iter().filter_map(|&t| self.deadline(t)).min()
    }

    /// When `timer` next fires; `None` while it has nothing to do. A node
    /// that left still gossips (its leave must spread) and reaps, but no
    /// longer probes, push-pulls or reconnects.
    fn deadline(&self, timer: Timer) -> Option<Instant> {
        let running = !self.left;
        match timer {
            Timer::Gossip => Some(self.next_gossip),
            Timer::Reap => Some(self.next_reap),
            Timer::PushPull => running.then_some(self.next_push_pull),
            Timer::Reconnect => running.then_some(self.next_reconnect),
            Timer::Probe => running.then(|| match &self.probe {
                Some(p) if p.phase == ProbePhase::Direct && !p.acked => {
                    p.direct_deadline.min(p.end)
                }
                Some(p) => p.end,
                None => self.next_probe,
            }),
            Timer::Join => self.next_join,
            Timer::Suspicions => self.suspicions.values().map(|s| s.deadline()).min(),
            Timer::Relays => self
                .relays
                .values()
                .map(|r| r.nack_at.unwrap_or(r.expires).min(r.expires))
                .min(),
            Timer::Queries => self.out_queries.values().map(|q| q.deadline).min(),
        }
    }

    /// Run every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.started {
            self.start(now);
        }
        self.run_suspicions(now);
        self.run_relays(now);
        if !self.left {
            self.run_probe(now);
        }
        if now >= self.next_gossip {
            self.next_gossip = now + self.config.gossip_interval;
            self.gossip();
        }
        if !self.left && now >= self.next_push_pull {
            self.next_push_pull = now + self.config.push_pull_interval_for(self.live);
            if self.early_push_pull {
                self.early_push_pull = false;
                let second = now + self.config.gossip_interval * EARLY_PUSH_PULL_2;
                self.next_push_pull = self.next_push_pull.min(second);
            }
            if let Some(i) = self.random_member(|m| m.state.is_live()) {
                let to = self.members[i].addr;
                self.send_push_pull(to, false);
            }
        }
        if !self.left && now >= self.next_reconnect {
            self.next_reconnect = now + self.config.reconnect_interval;
            let timeout = self.config.reconnect_timeout;
            if let Some(i) = self.random_member(|m| {
                m.state == MemberState::Failed && now.saturating_since(m.state_since) < timeout
            }) {
                let to = self.members[i].addr;
                self.send_push_pull(to, false);
            }
        }
        if let Some(j) = self.next_join {
            if now >= j {
                if self.left || self.live > 1 {
                    self.next_join = None;
                } else {
                    self.send_joins(now);
                }
            }
        }
        if now >= self.next_reap {
            self.next_reap = now + REAP_PERIOD;
            self.reap(now);
        }
        let expired: Vec<u32> = self
            .out_queries
            .iter()
            .filter(|(_, q)| now >= q.deadline)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            self.out_queries.remove(&id);
            self.events.push_back(Event::QueryDone {
                id: QueryId(u64::from(id)),
            });
        }
        self.in_queries.retain(|_, q| now < q.deadline);
    }

    /// A datagram arrived from `from`. Rejected datagrams are counted in
    /// [`Stats`] and change nothing.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), InputError> {
        self.stats.packets_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        let plain = self.open_input(bytes, 65_535)?;
        let messages = wire::decode_packet(&plain).map_err(|e| {
            self.stats.packets_malformed += 1;
            InputError::Wire(e)
        })?;
        if !self.started {
            self.start(now);
        }
        for m in messages {
            self.handle_message(now, from, m);
        }
        Ok(())
    }

    /// Unseals a datagram or stream of at most `limit` bytes, counting what is
    /// refused: oversized input as malformed, input no installed key opens as
    /// rejected. Doesn't affect membership state.
    fn open_input(&mut self, bytes: &[u8], limit: usize) -> Result<Vec<u8>, InputError> {
        if bytes.len() > limit {
            self.stats.packets_malformed += 1;
            return Err(InputError::Wire(WireError::TooLarge));
        }
        self.keyring.open(bytes).map_err(|e| {
            self.stats.packets_rejected += 1;
            InputError::Open(e)
        })
    }

    /// A push-pull stream arrived (from a peer connecting to us, or as the
    /// reply to our [`Transmit::Stream`]). Returns the reply to send back on
    /// the same connection, if any.
    pub fn handle_stream(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<Option<Vec<u8>>, InputError> {
        let _ = from;
        self.stats.streams_received += 1;
        self.stats.stream_bytes_received += bytes.len() as u64;
        let plain = self.open_input(bytes, self.config.max_stream_len)?;
        let pp = wire::decode_push_pull(&plain, self.config.decode_budget()).map_err(|e| {
            self.stats.packets_malformed += 1;
            InputError::Wire(e)
        })?;
        if !self.started {
            self.start(now);
        }
        if let Some(seq) = pp.ping {
            if pp.reply {
                self.on_stream_ack(seq, &pp.from);
                return Ok(None);
            }
            let out = self.stream_ping(seq, true);
            self.stats.streams_sent += 1;
            self.stats.stream_bytes_sent += out.len() as u64;
            return Ok(Some(out));
        }
        let (reply, join) = (pp.reply, pp.join);
        let shown = (!reply).then(|| Shown::of(&pp));
        self.quiet = reply && join;
        self.merge(now, pp);
        self.quiet = false;
        if reply {
            if join {
                self.arm_early_push_pull(now);
            }
            return Ok(None);
        }
        let state = self.push_pull_state(join, true, shown.as_ref());
        let out = self.seal(&wire::encode_push_pull(&state));
        self.stats.streams_sent += 1;
        self.stats.stream_bytes_sent += out.len() as u64;
        Ok(Some(out))
    }

    fn start(&mut self, now: Instant) {
        self.started = true;
        // Spread the periodic work over its interval so that nodes started
        // together do not fire in lockstep.
        let jitter = |rng: &mut Rng, d: Duration| {
            Duration::from_millis((rng.unit() * d.as_millis() as f64) as u64)
        };
        self.next_probe = now + jitter(&mut self.rng, self.config.probe_interval);
        self.next_gossip = now + jitter(&mut self.rng, self.config.gossip_interval);
        let pp = self.config.push_pull_interval;
        self.next_push_pull = now + pp / 2 + jitter(&mut self.rng, pp / 2);
        self.next_reconnect = now + jitter(&mut self.rng, self.config.reconnect_interval);
        self.next_reap = now + REAP_PERIOD;
        self.members[0].state_since = now;
    }

    fn handle_message(&mut self, now: Instant, from: SocketAddr, m: Message) {
        match m {
            Message::Ping { seq, target } => {
                if target != self.me {
                    return;
                }
                let ack = Message::Ack {
                    seq,
                    coord: Some(self.coord.to_wire()),
                };
                self.send(from, alloc::vec![wire::encode_message(&ack)]);
            }
            Message::IndirectPing {
                seq,
                target,
                target_addr,
                nack,
            } => {
                self.seq = self.seq.wrapping_add(1);
                let my_seq = self.seq;
                self.relays.insert(
                    my_seq,
                    Relay {
                        requester: from,
                        orig_seq: seq,
                        nack_at: nack
                            .then(|| now + self.config.probe_timeout.saturating_mul(4) / 5),
                        expires: now + self.config.probe_interval,
                    },
                );
                let ping = Message::Ping {
                    seq: my_seq,
                    target,
                };
                self.send(target_addr, alloc::vec![wire::encode_message(&ping)]);
            }
            Message::Ack { seq, coord } => {
                if let Some(p) = &mut self.probe {
                    if p.seq == seq {
                        if p.acked {
                            return;
                        }
                        p.acked = true;
                        let direct = coord.is_some();
                        p.acked_direct = direct && p.phase == ProbePhase::Direct;
                        let rtt = now.saturating_since(p.sent).as_micros() as f64 / 1000.0;
                        let target = p.target.clone();
                        let c = coord.as_ref().and_then(Coordinate::from_wire);
                        if let (Some(c), Some(&i)) = (c, self.index.get(&target)) {
                            // Only a direct answer measures the path to the
                            // target. Vivaldi sees the lowest of the last few
                            // such samples: acks held up by Wi-Fi
                            // retransmissions must not throw the coordinate.
                            let m = &mut self.members[i];
                            let rtt = m.rtt_samples.sample(rtt.max(0.05));
                            self.coord.update(&c, rtt, &mut self.rng);
                            m.coordinate = Some(c);
                        }
                        return;
                    }
                }
                if let Some(r) = self.relays.remove(&seq) {
                    let fwd = Message::Ack {
                        seq: r.orig_seq,
                        coord: None,
                    };
                    self.send(r.requester, alloc::vec![wire::encode_message(&fwd)]);
                }
            }
            Message::Nack { seq } => {
                if let Some(p) = &mut self.probe {
                    if p.seq == seq && p.phase == ProbePhase::Indirect {
                        p.nacks += 1;
                    }
                }
            }
            Message::Alive {
                name,
                addr,
                incarnation,
            } => self.on_alive(now, &name, addr, incarnation),
            Message::Suspect {
                name,
                incarnation,
                from: by,
            } => self.on_suspect(now, &name, incarnation, &by),
            Message::Dead {
                name,
                incarnation,
                from: by,
            } => self.on_dead(now, &name, incarnation, &by),
            Message::Tags {
                name,
                lamport,
                tags,
            } => self.on_tags(&name, lamport, tags),
            Message::Service { node, entry } => self.on_service(now, &node, entry),
            Message::UserEvent {
                lamport,
                origin,
                name,
                payload,
            } => self.on_user_event(lamport, origin, name, payload),
            q @ Message::Query { .. } => self.on_query(now, q),
            Message::QueryResponse {
                id,
                from: who,
                payload,
            } => {
                if let Some(q) = self.out_queries.get_mut(&id) {
                    if now < q.deadline && !q.responders.contains(&who) {
                        q.responders.push(who.clone());
                        self.events.push_back(Event::QueryResponse {
                            id: QueryId(u64::from(id)),
                            from: who,
                            payload,
                        });
                    }
                }
            }
        }
    }
}
