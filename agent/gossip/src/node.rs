//! The gossip node: one member's whole protocol state, driven from outside.
//!
//! Inputs: [`Node::handle_packet`], [`Node::handle_stream`],
//! [`Node::handle_timeout`] and the operations (`join`, `leave`, `publish`,
//! `set_tags`, `fire_event`, `query`, …). Outputs: [`Node::poll_transmit`],
//! [`Node::poll_event`] and [`Node::poll_timeout`]. The node never reads a
//! clock, never touches a socket and draws randomness only from the seed it
//! was given, so the same inputs always give the same outputs.
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

/// Who this node is: a unique name and the address peers reach it at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    /// Advertised gossip address (UDP, and TCP for push-pull streams).
    pub addr: SocketAddr,
}

impl Identity {
    pub fn new(name: &str, addr: SocketAddr) -> Identity {
        Identity {
            name: String::from(name),
            addr,
        }
    }
}

/// A member's state as failure detection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberState {
    Alive,
    Suspect,
    /// Declared dead by failure detection.
    Failed,
    /// Left gracefully.
    Left,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Failed => "failed",
            MemberState::Left => "left",
        }
    }

    fn is_live(self) -> bool {
        matches!(self, MemberState::Alive | MemberState::Suspect)
    }
}

/// A member as this node knows it (this node included).
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    pub addr: SocketAddr,
    pub state: MemberState,
    pub incarnation: u64,
    /// Tags (microcloud, board, arch, role, load, …) and their Lamport time.
    pub tags: Vec<(String, String)>,
    pub tags_lamport: u64,
    /// When `state` last changed here.
    pub state_since: Instant,
    /// Last Vivaldi coordinate heard for it.
    pub coordinate: Option<Coordinate>,
    /// The last few RTT samples to it; Vivaldi is fed the lowest.
    pub(crate) rtt_samples: LatencyFilter,
}

impl Member {
    /// The value of tag `key`, if set.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

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

/// Counters for the page, the CLI and the bandwidth benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub packets_received: u64,
    pub bytes_received: u64,
    /// Datagrams or streams that failed to open under any installed key.
    pub packets_rejected: u64,
    /// Opened fine but not valid protocol messages.
    pub packets_malformed: u64,
    pub streams_sent: u64,
    pub stream_bytes_sent: u64,
    pub streams_received: u64,
    pub stream_bytes_received: u64,
    pub probes_sent: u64,
    pub probes_failed: u64,
    /// Suspicions that timed out here, declaring a member dead.
    pub declared_dead: u64,
    /// Times this node refuted a suspicion or death of itself.
    pub refutations: u64,
    /// Stream probes sent when a direct probe timed out, and those answered
    /// in time (each answer saved a probe from failing).
    pub stream_probes_sent: u64,
    pub stream_probe_acks: u64,
    /// Alives and member records of unknown names, and service updates of
    /// unknown nodes, dropped because the table was full
    /// ([`Config::max_members`]): a microcloud grown past the cap, or a
    /// flood of fake members.
    pub members_refused: u64,
    /// Service entries for a new slot of a node whose catalog was full
    /// ([`crate::catalog::MAX_SLOTS`]), dropped: fake services.
    pub services_refused: u64,
}

/// Why an operation was refused; the node's state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    /// The record, tags, event or query does not fit one datagram.
    TooLarge,
    /// This node has left; it announces nothing any more.
    Left,
    /// Unknown or expired query.
    UnknownQuery,
    /// This node already publishes [`crate::catalog::MAX_OWN_RECORDS`]
    /// services.
    TooManyServices,
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpError::TooLarge => "too large to fit one gossip datagram",
            OpError::Left => "this node has left the microcloud",
            OpError::UnknownQuery => "unknown or expired query",
            OpError::TooManyServices => {
                "this node already publishes the most services it may (256)"
            }
        })
    }
}

/// Why inbound bytes were dropped (also counted in [`Stats`]). Nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// Did not open under any installed key.
    Open(OpenError),
    /// Opened, but not a valid message.
    Wire(WireError),
    /// Saved state of a different node.
    OtherNode,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Open(e) => write!(f, "packet rejected ({e:?})"),
            InputError::Wire(e) => write!(f, "{e}"),
            InputError::OtherNode => f.write_str("saved state belongs to another node name"),
        }
    }
}

/// Parameters of [`Node::query`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryParams {
    pub name: String,
    pub payload: Vec<u8>,
    /// Only these nodes answer (all when empty).
    pub nodes: Vec<String>,
    /// Only nodes whose tags match every pair answer.
    pub tags: Vec<(String, String)>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbePhase {
    Direct,
    Indirect,
}

struct Probe {
    target: String,
    seq: u32,
    sent: Instant,
    phase: ProbePhase,
    direct_deadline: Instant,
    end: Instant,
    acked: bool,
    acked_direct: bool,
    expected_nacks: u32,
    nacks: u32,
    /// A stream probe is under way.
    streamed: bool,
}

struct Relay {
    requester: SocketAddr,
    orig_seq: u32,
    nack_at: Option<Instant>,
    expires: Instant,
}

struct OutQuery {
    deadline: Instant,
    responders: Vec<String>,
}

struct InQuery {
    origin: String,
    origin_addr: SocketAddr,
    id: u32,
    deadline: Instant,
}

/// What a push-pull request showed of its sender's state. The reply leaves
/// out what the sender provably has (docs/protocol.md §5): the request
/// carries the sender's whole state, so after merging it the answerer
/// sends only where its own differs, and both end with the union as before.
struct Shown {
    /// (name, addr, incarnation, state, tags Lamport time, whether it
    /// carried a coordinate) of each member.
    members: Vec<(String, MemberShown)>,
    /// Per node, its slots as (type, port, version). Both levels are in key
    /// order, as every sender writes them; when they are not, this is left
    /// empty (a reply with every entry is never wrong), which spares the
    /// code of a sort.
    catalogs: Vec<(String, SlotsShown)>,
}

/// Address, incarnation, state, tags Lamport time and whether a coordinate
/// came along, of a member.
type MemberShown = (SocketAddr, u64, WireState, u64, bool);
/// A node's catalog slots as (type, port, version).
type SlotsShown = Vec<(String, u16, u64)>;

impl Shown {
    fn of(pp: &PushPull) -> Shown {
        let members = pp
            .members
            .iter()
            .map(|m| {
                let shown = (
                    m.addr,
                    m.incarnation,
                    m.state,
                    m.tags_lamport,
                    m.coord.is_some(),
                );
                (m.name.clone(), shown)
            })
            .collect();
        let mut catalogs: Vec<(String, SlotsShown)> = Vec::with_capacity(pp.catalogs.len());
        for c in &pp.catalogs {
            let slots: SlotsShown = c
                .entries
                .iter()
                .map(|e| (e.service_type.clone(), e.port, e.version))
                .collect();
            let in_order = slots
                .windows(2)
                .all(|w| (&w[0].0, w[0].1) < (&w[1].0, w[1].1))
                && catalogs.last().is_none_or(|(last, _)| *last < c.node);
            if !in_order {
                catalogs.clear();
                break;
            }
            catalogs.push((c.node.clone(), slots));
        }
        Shown { members, catalogs }
    }

    /// Whether the sender showed `node`'s slot of `e` at its version or newer.
    fn has_slot(&self, node: &str, e: &CatalogEntry) -> bool {
        let Ok(c) = self.catalogs.binary_search_by(|c| c.0.as_str().cmp(node)) else {
            return false;
        };
        let slots = &self.catalogs[c].1;
        let key = (e.service_type.as_str(), e.port);
        slots
            .binary_search_by(|s| (s.0.as_str(), s.1).cmp(&key))
            .is_ok_and(|i| slots[i].2 >= e.version)
    }
}

/// Scan period for reaping dead members and old tombstones.
const REAP_PERIOD: Duration = Duration::from_millis(1000);
/// Gossip rounds after a join reply until the first early push-pull, then
/// from the first to the second (LAN: +1 s, +6 s).
const EARLY_PUSH_PULL_1: u32 = 5;
const EARLY_PUSH_PULL_2: u32 = 25;

/// Seeds contacted per join attempt, at most.
const MAX_JOIN_TARGETS: usize = 8;
/// Fan-out bound whatever the config says (a typo must not stall the node).
const MAX_FANOUT: usize = 64;
/// Distinct conflicting addresses remembered (each is reported once).
const MAX_CONFLICTS: usize = 256;
/// Peers written into saved state, at most.
const MAX_SAVED_PEERS: usize = 64;

/// Member name → position, keyed by a 64-bit FNV-1a hash so a lookup costs
/// one integer search and one string comparison (this is the hot path of
/// every gossiped message). Colliding names share a bucket.
#[derive(Default)]
struct NameIndex {
    buckets: SortedMap<u64, Vec<(String, usize)>>,
}

fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

impl NameIndex {
    fn get(&self, name: &str) -> Option<&usize> {
        self.buckets
            .get(&name_hash(name))?
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, i)| i)
    }

    fn insert(&mut self, name: String, i: usize) {
        let bucket = self.buckets.get_or_insert_with(name_hash(&name), Vec::new);
        match bucket.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = i,
            None => bucket.push((name, i)),
        }
    }

    fn remove(&mut self, name: &str) -> Option<usize> {
        let h = name_hash(name);
        let bucket = self.buckets.get_mut(&h)?;
        let pos = bucket.iter().position(|(n, _)| n == name)?;
        let (_, i) = bucket.swap_remove(pos);
        if bucket.is_empty() {
            self.buckets.remove(&h);
        }
        Some(i)
    }
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

    // ----- accessors -----

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

    /// This node's own live records.
    pub fn own_records(&self) -> Vec<ServiceRecord> {
        self.catalogs
            .get(&self.me)
            .map(|c| c.live().cloned().collect())
            .unwrap_or_default()
    }

    /// Records of live members matching `filter`, best first: healthy before
    /// unhealthy, then by estimated RTT (unknown last), then by load.
    pub fn search(&self, filter: &SearchFilter) -> Vec<SearchResult> {
        let mut out = Vec::new();
        for (node, cat) in self.catalogs.iter() {
            let Some(m) = self.member(node) else { continue };
            if !m.state.is_live() {
                continue;
            }
            let rtt_us = self.rtt_to(node).map(|d| d.as_micros() as u64);
            let load_x100 = m.tag("load").and_then(|v| v.parse().ok()).unwrap_or(0);
            for r in cat.live() {
                if filter
                    .service_type
                    .as_ref()
                    .is_some_and(|t| *t != r.service_type)
                {
                    continue;
                }
                if filter
                    .microcloud
                    .as_ref()
                    .is_some_and(|c| *c != r.microcloud)
                {
                    continue;
                }
                out.push(SearchResult {
                    node: node.clone(),
                    record: r.clone(),
                    rtt_us,
                    load_x100,
                });
            }
        }
        // A total order (a node has one record per type and port), so the
        // unstable sort, smaller in code, gives the one possible result.
        out.sort_unstable_by(|a, b| {
            let ha = a.record.health == crate::catalog::Health::Unhealthy;
            let hb = b.record.health == crate::catalog::Health::Unhealthy;
            ha.cmp(&hb)
                .then(
                    a.rtt_us
                        .unwrap_or(u64::MAX)
                        .cmp(&b.rtt_us.unwrap_or(u64::MAX)),
                )
                .then(a.load_x100.cmp(&b.load_x100))
                .then(a.node.cmp(&b.node))
                .then(a.record.port.cmp(&b.record.port))
                .then(a.record.service_type.cmp(&b.record.service_type))
        });
        out
    }

    // ----- outputs -----

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
        let mut t = self.next_gossip.min(self.next_reap);
        if !self.left {
            t = t.min(self.next_push_pull).min(self.next_reconnect);
            match &self.probe {
                Some(p) if p.phase == ProbePhase::Direct && !p.acked => {
                    t = t.min(p.direct_deadline.min(p.end))
                }
                Some(p) => t = t.min(p.end),
                None => t = t.min(self.next_probe),
            }
        }
        if let Some(j) = self.next_join {
            t = t.min(j);
        }
        for s in self.suspicions.values() {
            t = t.min(s.deadline());
        }
        for r in self.relays.values() {
            t = t.min(r.nack_at.unwrap_or(r.expires).min(r.expires));
        }
        for q in self.out_queries.values() {
            t = t.min(q.deadline);
        }
        Some(t)
    }

    // ----- inputs -----

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

    // ----- operations -----

    /// Join through any of `seeds` (and peers from imported state): push-pull
    /// with each, retried every `join_retry_interval` until another member is known.
    pub fn join(&mut self, now: Instant, seeds: &[SocketAddr]) {
        if !self.started {
            self.start(now);
        }
        if self.left {
            self.rejoin(now);
        }
        for s in seeds {
            if *s != self.addr && !self.join_targets.contains(s) {
                self.join_targets.push(*s);
            }
        }
        self.send_joins(now);
    }

    /// Back after a leave (a join does it): peers hold this node as left at
    /// its incarnation, so it comes back alive at a higher one, as a
    /// restarted node would, and its probing and records resume.
    fn rejoin(&mut self, now: Instant) {
        self.left = false;
        self.incarnation += 1;
        self.members[0].incarnation = self.incarnation;
        self.set_state(0, MemberState::Alive, now);
        self.announce_self();
    }

    /// Leave gracefully: peers mark this node left, not failed. Keep driving
    /// the node for a few gossip intervals so the news spreads.
    pub fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        let _ = now;
        self.left = true;
        self.probe = None;
        self.next_join = None;
        self.set_state(0, MemberState::Left, now);
        let msg = Message::Dead {
            name: self.me.clone(),
            incarnation: self.incarnation,
            from: self.me.clone(),
        };
        let enc = wire::encode_message(&msg);
        self.broadcasts
            .push(Subject::Member(self.me.clone()), enc.clone());
        // Tell a few members straight away rather than waiting for a round.
        let n = (self.config.gossip_nodes.min(MAX_FANOUT) * 2).max(1);
        for i in self.random_members(n, |m| m.state.is_live()) {
            let to = self.members[i].addr;
            self.send(to, alloc::vec![enc.clone()]);
        }
    }

    /// Publish (or replace) one of this node's records. Publishing the same
    /// record again changes nothing. An empty `host` becomes this node's name.
    pub fn publish(&mut self, mut record: ServiceRecord) -> Result<(), OpError> {
        if self.left {
            return Err(OpError::Left);
        }
        if record.host.is_empty() {
            record.host = self.me.clone();
        }
        let budget = self.payload_budget();
        let cat = self
            .catalogs
            .get_or_insert_with(self.me.clone(), NodeCatalog::default);
        let key = (record.service_type.clone(), record.port);
        let held = cat.slots.get(&key);
        if held.is_some_and(|s| s.record.as_ref() == Some(&record)) {
            return Ok(());
        }
        if held.is_none_or(|s| s.record.is_none())
            && cat.slots.values().filter(|s| s.record.is_some()).count() >= MAX_OWN_RECORDS
        {
            return Err(OpError::TooManyServices);
        }
        let entry = CatalogEntry {
            version: cat.version + 1,
            service_type: record.service_type.clone(),
            port: record.port,
            record: Some(record),
        };
        let msg = Message::Service {
            node: self.me.clone(),
            entry: entry.clone(),
        };
        let enc = wire::encode_message(&msg);
        if enc.len() > budget {
            return Err(OpError::TooLarge);
        }
        cat.version = entry.version;
        cat.slots.insert(
            key,
            Slot {
                version: entry.version,
                record: entry.record,
                since: Instant::ZERO,
            },
        );
        self.broadcasts.push(
            Subject::Service(self.me.clone(), entry.service_type, entry.port),
            enc,
        );
        Ok(())
    }

    /// Withdraw this node's record of that type and port. False if none.
    pub fn unpublish(&mut self, now: Instant, service_type: &str, port: u16) -> bool {
        let cat = self
            .catalogs
            .get_or_insert_with(self.me.clone(), NodeCatalog::default);
        let key = (String::from(service_type), port);
        if cat.slots.get(&key).is_none_or(|s| s.record.is_none()) {
            return false;
        }
        cat.version += 1;
        let version = cat.version;
        cat.slots.insert(
            key,
            Slot {
                version,
                record: None,
                since: now,
            },
        );
        self.broadcast_own_slot(service_type, port);
        true
    }

    /// Replace this node's tags; peers keep the newest by Lamport time.
    pub fn set_tags(&mut self, tags: Vec<(String, String)>) -> Result<(), OpError> {
        let lamport = self.members[0].tags_lamport + 1;
        let msg = Message::Tags {
            name: self.me.clone(),
            lamport,
            tags: tags.clone(),
        };
        let enc = wire::encode_message(&msg);
        if enc.len() > self.payload_budget() {
            return Err(OpError::TooLarge);
        }
        self.members[0].tags = tags;
        self.members[0].tags_lamport = lamport;
        self.broadcasts.push(Subject::Tags(self.me.clone()), enc);
        Ok(())
    }

    /// Fire a user event to every member (also delivered here as an event).
    pub fn fire_event(&mut self, name: &str, payload: &[u8]) -> Result<(), OpError> {
        if self.left {
            return Err(OpError::Left);
        }
        let lamport = self.event_clock;
        let msg = Message::UserEvent {
            lamport,
            origin: self.me.clone(),
            name: String::from(name),
            payload: payload.to_vec(),
        };
        let enc = wire::encode_message(&msg);
        if enc.len() > self.payload_budget() {
            return Err(OpError::TooLarge);
        }
        self.event_clock += 1;
        self.seen_events
            .insert((lamport, self.me.clone(), String::from(name)), ());
        self.broadcasts.push(
            Subject::Event(lamport, self.me.clone(), String::from(name)),
            enc,
        );
        self.events.push_back(Event::UserEvent {
            origin: self.me.clone(),
            name: String::from(name),
            payload: payload.to_vec(),
            lamport,
        });
        Ok(())
    }

    /// Ask matching members; answers arrive as [`Event::QueryResponse`]
    /// until [`Event::QueryDone`]. This node answers too if it matches.
    pub fn query(&mut self, now: Instant, params: QueryParams) -> Result<QueryId, OpError> {
        if self.left {
            return Err(OpError::Left);
        }
        let id = self.next_query_id;
        let lamport = self.query_clock;
        let timeout = params.timeout.min(self.config.max_query_timeout);
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        let msg = Message::Query {
            id,
            lamport,
            origin: self.me.clone(),
            origin_addr: self.addr,
            name: params.name,
            payload: params.payload,
            nodes: params.nodes,
            tags: params.tags,
            timeout_ms,
        };
        let enc = wire::encode_message(&msg);
        if enc.len() > self.payload_budget() {
            return Err(OpError::TooLarge);
        }
        self.next_query_id = self.next_query_id.wrapping_add(1).max(1);
        self.query_clock += 1;
        self.out_queries.insert(
            id,
            OutQuery {
                deadline: now + timeout,
                responders: Vec::new(),
            },
        );
        self.broadcasts
            .push(Subject::Query(self.me.clone(), id), enc);
        self.on_query(now, msg);
        Ok(QueryId(u64::from(id)))
    }

    /// Answer a [`Event::QueryRequest`] (once, before its timeout).
    pub fn respond(&mut self, now: Instant, id: QueryId, payload: &[u8]) -> Result<(), OpError> {
        let q = self.in_queries.get(&id.0).ok_or(OpError::UnknownQuery)?;
        if now >= q.deadline {
            self.in_queries.remove(&id.0);
            return Err(OpError::UnknownQuery);
        }
        let msg = Message::QueryResponse {
            id: q.id,
            from: self.me.clone(),
            payload: payload.to_vec(),
        };
        let enc = wire::encode_message(&msg);
        if enc.len() > self.payload_budget() {
            return Err(OpError::TooLarge);
        }
        let (origin, addr) = (q.origin.clone(), q.origin_addr);
        self.in_queries.remove(&id.0);
        if origin == self.me {
            self.handle_message(now, addr, msg);
        } else {
            self.send(addr, alloc::vec![enc]);
        }
        Ok(())
    }

    /// Persistable state: incarnation, tags, own catalog, known peers,
    /// Lamport clocks. Write it atomically; pass it to
    /// [`Node::import_state`] after a restart.
    pub fn export_state(&self) -> Vec<u8> {
        let own = self.catalogs.get(&self.me);
        let mut peers: Vec<Peer> = self
            .members
            .iter()
            .skip(1)
            .filter(|m| m.state.is_live())
            .map(|m| Peer {
                name: m.name.clone(),
                addr: m.addr,
            })
            .collect();
        peers.truncate(MAX_SAVED_PEERS);
        wire::encode_saved_state(&SavedState {
            version: wire::VERSION,
            name: self.me.clone(),
            incarnation: self.incarnation,
            tags_lamport: self.members[0].tags_lamport,
            tags: self.members[0].tags.clone(),
            catalog: CatalogState {
                node: self.me.clone(),
                version: own.map_or(0, |c| c.version),
                entries: own.map(|c| c.entries()).unwrap_or_default(),
            },
            peers,
            event_clock: self.event_clock,
            query_clock: self.query_clock,
        })
    }

    /// Restore state saved by [`Node::export_state`], before joining: the
    /// node comes back with a higher incarnation (refuting its old death),
    /// its catalog and clocks, and rejoins through its saved peers too.
    pub fn import_state(&mut self, bytes: &[u8]) -> Result<(), InputError> {
        let s = wire::decode_saved_state(bytes).map_err(InputError::Wire)?;
        if s.name != self.me {
            return Err(InputError::OtherNode);
        }
        self.incarnation = self.incarnation.max(s.incarnation + 1);
        self.members[0].incarnation = self.incarnation;
        let me0 = &mut self.members[0];
        if me0.tags.is_empty() {
            me0.tags = s.tags;
        }
        me0.tags_lamport = me0.tags_lamport.max(s.tags_lamport) + 1;
        let cat = self
            .catalogs
            .get_or_insert_with(self.me.clone(), NodeCatalog::default);
        for e in &s.catalog.entries {
            cat.apply(e, Instant::ZERO);
        }
        cat.version = cat.version.max(s.catalog.version);
        self.event_clock = self.event_clock.max(s.event_clock);
        self.query_clock = self.query_clock.max(s.query_clock);
        self.saved_peers = s
            .peers
            .iter()
            .filter(|p| p.name != self.me)
            .map(|p| p.addr)
            .collect();
        self.announce_self();
        let tags = self.members[0].tags.clone();
        let lamport = self.members[0].tags_lamport;
        let enc = wire::encode_message(&Message::Tags {
            name: self.me.clone(),
            lamport,
            tags,
        });
        self.broadcasts.push(Subject::Tags(self.me.clone()), enc);
        Ok(())
    }

    // ----- internals: timers -----

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

    /// A join reply is the seed's view at one instant: nodes joining at the
    /// same time (a power cut's reboot) are missing from it, and their
    /// Alives, gossiped while everyone knew few members, can run out of
    /// retransmissions before reaching us. So push-pull with a random live
    /// member a few gossip rounds after joining, and again a little later,
    /// instead of only after the full `push_pull_interval`.
    fn arm_early_push_pull(&mut self, now: Instant) {
        let at = now + self.config.gossip_interval * EARLY_PUSH_PULL_1;
        if at < self.next_push_pull {
            self.next_push_pull = at;
            self.early_push_pull = true;
        }
    }

    fn scaled(&self, d: Duration) -> Duration {
        d.saturating_mul(self.awareness + 1)
    }

    fn run_probe(&mut self, now: Instant) {
        if let Some(p) = &mut self.probe {
            if !p.acked && p.phase == ProbePhase::Direct && now >= p.direct_deadline {
                p.phase = ProbePhase::Indirect;
                let (target, seq, streamed) = (p.target.clone(), p.seq, p.streamed);
                self.send_indirect(&target, seq);
                if self.config.stream_probes && !streamed {
                    self.send_stream_ping(&target, seq);
                }
            }
        }
        if self.probe.as_ref().is_some_and(|p| now >= p.end) {
            if let Some(p) = self.probe.take() {
                self.finish_probe(now, p);
            }
            self.next_probe = now;
        }
        if self.probe.is_none() && now >= self.next_probe {
            self.start_probe(now);
        }
    }

    fn start_probe(&mut self, now: Instant) {
        let Some(target) = self.next_probe_target() else {
            self.next_probe = now + self.config.probe_interval;
            return;
        };
        let Some(&i) = self.index.get(&target) else {
            return;
        };
        let m = &self.members[i];
        let addr = m.addr;
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut msgs = Vec::new();
        if self.config.lifeguard && m.state == MemberState::Suspect {
            // Buddy system: tell the suspect straight away so it can refute.
            msgs.push(wire::encode_message(&Message::Suspect {
                name: target.clone(),
                incarnation: m.incarnation,
                from: self.me.clone(),
            }));
        }
        msgs.push(wire::encode_message(&Message::Ping {
            seq,
            target: target.clone(),
        }));
        self.send(addr, msgs);
        self.stats.probes_sent += 1;
        let target_name = target.clone();
        self.probe = Some(Probe {
            target,
            seq,
            sent: now,
            phase: ProbePhase::Direct,
            direct_deadline: now + self.scaled(self.config.probe_timeout),
            end: now + self.scaled(self.config.probe_interval),
            acked: false,
            acked_direct: false,
            expected_nacks: 0,
            nacks: 0,
            streamed: false,
        });
        // Lifeguard's awareness says datagrams are going missing: start the
        // stream probe with the ping, so its retransmissions get the whole
        // (stretched) probe interval instead of what is left after the
        // direct timeout.
        if self.config.stream_probes && self.awareness > 0 {
            self.send_stream_ping(&target_name, seq);
        }
    }

    fn next_probe_target(&mut self) -> Option<String> {
        for _ in 0..2 {
            while self.probe_pos < self.probe_order.len() {
                let name = &self.probe_order[self.probe_pos];
                self.probe_pos += 1;
                if let Some(&i) = self.index.get(name) {
                    if i != 0 && self.members[i].state.is_live() {
                        return Some(name.clone());
                    }
                }
            }
            // A new round: every live member once, in a fresh random order.
            self.probe_order = self
                .members
                .iter()
                .skip(1)
                .filter(|m| m.state.is_live())
                .map(|m| m.name.clone())
                .collect();
            self.rng.shuffle(&mut self.probe_order);
            self.probe_pos = 0;
        }
        None
    }

    fn send_indirect(&mut self, target: &str, seq: u32) {
        let Some(&ti) = self.index.get(target) else {
            return;
        };
        let target_addr = self.members[ti].addr;
        let k = self.config.indirect_checks.min(MAX_FANOUT);
        let helpers = self.random_members(k, |m| m.state == MemberState::Alive && m.name != target);
        let nack = self.config.lifeguard;
        for i in &helpers {
            let to = self.members[*i].addr;
            let msg = Message::IndirectPing {
                seq,
                target: String::from(target),
                target_addr,
                nack,
            };
            self.send(to, alloc::vec![wire::encode_message(&msg)]);
        }
        if let Some(p) = &mut self.probe {
            p.expected_nacks = if nack { helpers.len() as u32 } else { 0 };
        }
    }

    /// memberlist's TCP fallback: the stream's retransmissions get through
    /// loss that defeats single datagrams, and its answer counts as an ack.
    fn send_stream_ping(&mut self, target: &str, seq: u32) {
        let Some(&ti) = self.index.get(target) else {
            return;
        };
        let to = self.members[ti].addr;
        let bytes = self.stream_ping(seq, false);
        self.stats.streams_sent += 1;
        self.stats.stream_bytes_sent += bytes.len() as u64;
        self.stats.stream_probes_sent += 1;
        self.transmits.push_back(Transmit::Stream { to, bytes });
        if let Some(p) = &mut self.probe {
            p.streamed = true;
        }
    }

    fn finish_probe(&mut self, now: Instant, p: Probe) {
        if p.acked {
            if p.acked_direct {
                self.adjust_awareness(-1);
            }
            return;
        }
        self.stats.probes_failed += 1;
        // Lifeguard: missing nacks mean our own links are the problem.
        let delta = if p.expected_nacks > 0 {
            p.expected_nacks.saturating_sub(p.nacks) as i32
        } else {
            1
        };
        self.adjust_awareness(delta);
        if let Some(&i) = self.index.get(&p.target) {
            let inc = self.members[i].incarnation;
            if self.members[i].state.is_live() {
                let me = self.me.clone();
                self.on_suspect(now, &p.target, inc, &me);
            }
        }
    }

    fn adjust_awareness(&mut self, delta: i32) {
        if !self.config.lifeguard {
            return;
        }
        let max = self.config.awareness_max_multiplier.saturating_sub(1) as i32;
        self.awareness = (self.awareness as i32 + delta).clamp(0, max.max(0)) as u32;
    }

    fn run_suspicions(&mut self, now: Instant) {
        let due: Vec<(String, u64)> = self
            .suspicions
            .iter()
            .filter(|(_, s)| now >= s.deadline())
            .map(|(n, s)| (n.clone(), s.incarnation))
            .collect();
        for (name, inc) in due {
            self.suspicions.remove(&name);
            let Some(&i) = self.index.get(&name) else {
                continue;
            };
            if self.members[i].state == MemberState::Suspect && self.members[i].incarnation == inc {
                self.stats.declared_dead += 1;
                let me = self.me.clone();
                self.on_dead(now, &name, inc, &me);
            }
        }
    }

    fn run_relays(&mut self, now: Instant) {
        let mut nacks = Vec::new();
        self.relays.retain(|_, r| {
            if r.nack_at.is_some_and(|t| now >= t) {
                r.nack_at = None;
                nacks.push((r.requester, r.orig_seq));
            }
            now < r.expires
        });
        for (to, seq) in nacks {
            self.send(
                to,
                alloc::vec![wire::encode_message(&Message::Nack { seq })],
            );
        }
    }

    fn gossip(&mut self) {
        if self.broadcasts.is_empty() {
            return;
        }
        let fanout = self.config.gossip_nodes.min(MAX_FANOUT);
        let targets = self.random_members(fanout, |m| m.state.is_live());
        for i in targets {
            if self.broadcasts.is_empty() {
                break;
            }
            let to = self.members[i].addr;
            self.send(to, Vec::new());
        }
    }

    fn reap(&mut self, now: Instant) {
        let retention = self.config.dead_retention;
        let doomed: Vec<String> = self
            .members
            .iter()
            .skip(1)
            .filter(|m| !m.state.is_live() && now.saturating_since(m.state_since) >= retention)
            .map(|m| m.name.clone())
            .collect();
        for name in doomed {
            self.remove_member(&name);
            self.catalogs.remove(&name);
            self.events.push_back(Event::MemberReaped { name });
        }
        let tomb = self.config.tombstone_retention;
        for c in self.catalogs.values_mut() {
            c.reap(now, tomb);
        }
        // Catalogs of nodes that never became members (updates that raced
        // ahead of an Alive, or trailed a reaped member) expire too.
        let index = &self.index;
        self.catalogs.retain(|node, c| {
            index.get(node).is_some() || now.saturating_since(c.created) < retention
        });
        let buffer = self.config.event_buffer;
        let ev_floor = self.event_clock.saturating_sub(buffer);
        self.seen_events
            .remove_below(&(ev_floor, String::new(), String::new()));
        let q_floor = self.query_clock.saturating_sub(buffer);
        self.seen_queries.remove_below(&(q_floor, String::new(), 0));
    }

    fn remove_member(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        if i == 0 {
            return;
        }
        let last = self.members.len() - 1;
        self.members.swap_remove(i);
        if i != last {
            let moved = self.members[i].name.clone();
            self.index.insert(moved, i);
        }
        self.suspicions.remove(name);
    }

    // ----- internals: sending -----

    fn payload_budget(&self) -> usize {
        self.config
            .mtu
            .saturating_sub(SEAL_OVERHEAD + PACKET_OVERHEAD)
    }

    fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        self.rng.fill(&mut nonce);
        self.keyring.seal(nonce, plain)
    }

    /// Send `msgs` to `to`, filling the rest of the datagram with updates.
    fn send(&mut self, to: SocketAddr, msgs: Vec<Vec<u8>>) {
        let used: usize = msgs.iter().map(Vec::len).sum();
        let room = self.payload_budget().saturating_sub(used);
        let limit = self.config.retransmit_limit(self.live);
        let mut plain = Vec::with_capacity(self.config.mtu);
        wire::begin_packet(&mut plain);
        for m in &msgs {
            plain.extend_from_slice(m);
        }
        let piggybacked = self.broadcasts.take_into(&mut plain, room, limit);
        if msgs.is_empty() && piggybacked == 0 {
            return;
        }
        wire::finish_packet(&mut plain);
        let bytes = self.seal(&plain);
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        self.transmits.push_back(Transmit::Packet { to, bytes });
    }

    fn send_push_pull(&mut self, to: SocketAddr, join: bool) {
        let state = self.push_pull_state(join, false, None);
        let bytes = self.seal(&wire::encode_push_pull(&state));
        self.stats.streams_sent += 1;
        self.stats.stream_bytes_sent += bytes.len() as u64;
        self.transmits.push_back(Transmit::Stream { to, bytes });
    }

    fn send_joins(&mut self, now: Instant) {
        let mut targets = self.join_targets.clone();
        let mut saved = self.saved_peers.clone();
        self.rng.shuffle(&mut saved);
        for p in saved {
            if !targets.contains(&p) {
                targets.push(p);
            }
        }
        targets.truncate(MAX_JOIN_TARGETS.max(self.join_targets.len()));
        if targets.is_empty() {
            self.next_join = None;
            return;
        }
        for t in targets {
            self.send_push_pull(t, true);
        }
        self.next_join = Some(now + self.config.join_retry_interval);
    }

    /// Our state as a push-pull. A reply to `shown` leaves out what the
    /// request showed: a member whose address, incarnation and state it
    /// showed alike and whose tags it showed as new (tags alone go out as
    /// "none", Lamport time 0, which merging skips), and catalog slots it
    /// showed at the same version. Our own record always goes (it carries
    /// our coordinate), and so does, in a join reply, a member whose
    /// coordinate we hold and the request did not carry.
    fn push_pull_state(&self, join: bool, reply: bool, shown: Option<&Shown>) -> PushPull {
        // What the request showed of each of our members, by position.
        let mut seen: Vec<Option<MemberShown>> = alloc::vec![None; self.members.len()];
        for (name, m) in shown.map_or(&[][..], |s| &s.members[..]) {
            if let Some(&i) = self.index.get(name) {
                seen[i] = Some(*m);
            }
        }
        let mut members = Vec::with_capacity(self.members.len());
        for (i, m) in self.members.iter().enumerate() {
            let state = match m.state {
                MemberState::Alive => WireState::Alive,
                MemberState::Suspect => WireState::Suspect,
                MemberState::Failed => WireState::Dead,
                MemberState::Left => WireState::Left,
            };
            let mut tags_lamport = m.tags_lamport;
            if let Some((addr, inc, st, lamport, had_coord)) = seen[i] {
                let has_tags = lamport >= m.tags_lamport;
                let has_coord = had_coord || !join || m.coordinate.is_none();
                let alike = (addr, inc, st) == (m.addr, m.incarnation, state);
                if i != 0 && has_tags && has_coord && alike {
                    continue;
                }
                if has_tags {
                    tags_lamport = 0;
                }
            }
            members.push(MemberRecord {
                name: m.name.clone(),
                addr: m.addr,
                incarnation: m.incarnation,
                state,
                tags_lamport,
                tags: if tags_lamport == 0 {
                    Vec::new()
                } else {
                    m.tags.clone()
                },
                // Other members' coordinates only serve a joiner: a receiver
                // keeps a relayed coordinate only for a member it has none
                // for, and in a settled cluster every member has probed
                // every other. 52 bytes a member, in every periodic exchange.
                coord: if i == 0 {
                    Some(self.coord.to_wire())
                } else if join {
                    m.coordinate.as_ref().map(Coordinate::to_wire)
                } else {
                    None
                },
            });
        }
        let catalogs = self
            .catalogs
            .iter()
            .filter_map(|(n, c)| {
                let mut entries = c.entries();
                if let Some(s) = shown {
                    entries.retain(|e| !s.has_slot(n, e));
                }
                (!entries.is_empty()).then(|| CatalogState {
                    node: n.clone(),
                    version: c.version,
                    entries,
                })
            })
            .collect();
        PushPull {
            version: wire::VERSION,
            join,
            reply,
            from: self.me.clone(),
            members,
            catalogs,
            event_clock: self.event_clock,
            query_clock: self.query_clock,
            ping: None,
        }
    }

    /// A stream probe (`ping` set), or its answer when `reply`: our name and
    /// the sequence number, no state.
    fn stream_ping(&mut self, seq: u32, reply: bool) -> Vec<u8> {
        let ping = PushPull {
            version: wire::VERSION,
            join: false,
            reply,
            from: self.me.clone(),
            members: Vec::new(),
            catalogs: Vec::new(),
            event_clock: 0,
            query_clock: 0,
            ping: Some(seq),
        };
        self.seal(&wire::encode_push_pull(&ping))
    }

    /// A stream probe's answer: an ack, if it is from the target of the
    /// probe still running. Late answers are ignored like late datagrams.
    fn on_stream_ack(&mut self, seq: u32, from: &str) {
        if let Some(p) = &mut self.probe {
            if p.seq == seq && p.target == from && !p.acked {
                p.acked = true;
                self.stats.stream_probe_acks += 1;
            }
        }
    }

    /// Pass on news learnt from a peer, unless it came with a join reply:
    /// a joiner learning the whole cluster is no news to the cluster.
    fn rebroadcast(&mut self, subject: Subject, encoded: Vec<u8>) {
        if !self.quiet {
            self.broadcasts.push(subject, encoded);
        }
    }

    fn announce_self(&mut self) {
        let msg = Message::Alive {
            name: self.me.clone(),
            addr: self.addr,
            incarnation: self.incarnation,
        };
        self.broadcasts
            .push(Subject::Member(self.me.clone()), wire::encode_message(&msg));
    }

    fn broadcast_own_slot(&mut self, service_type: &str, port: u16) {
        let Some(cat) = self.catalogs.get(&self.me) else {
            return;
        };
        let key = (String::from(service_type), port);
        let Some(slot) = cat.slots.get(&key) else {
            return;
        };
        let msg = Message::Service {
            node: self.me.clone(),
            entry: CatalogEntry {
                version: slot.version,
                service_type: key.0.clone(),
                port,
                record: slot.record.clone(),
            },
        };
        self.broadcasts.push(
            Subject::Service(self.me.clone(), key.0, port),
            wire::encode_message(&msg),
        );
    }

    // ----- internals: membership -----

    /// Indexes of up to `n` distinct random members other than this node.
    fn random_members(&mut self, n: usize, pred: impl Fn(&Member) -> bool) -> Vec<usize> {
        let total = self.members.len();
        let mut out: Vec<usize> = Vec::new();
        if n == 0 || total <= 1 {
            return out;
        }
        if total <= 4 * n + 8 {
            let mut all: Vec<usize> = (1..total).filter(|&i| pred(&self.members[i])).collect();
            self.rng.shuffle(&mut all);
            all.truncate(n);
            return all;
        }
        // Large membership: sample with a bounded number of attempts.
        for _ in 0..n * 16 {
            let i = 1 + self.rng.below(total - 1);
            if !out.contains(&i) && pred(&self.members[i]) {
                out.push(i);
                if out.len() == n {
                    break;
                }
            }
        }
        out
    }

    fn random_member(&mut self, pred: impl Fn(&Member) -> bool) -> Option<usize> {
        self.random_members(1, pred).first().copied()
    }

    fn set_state(&mut self, i: usize, state: MemberState, now: Instant) {
        let old = self.members[i].state;
        if old == state {
            return;
        }
        if old.is_live() && !state.is_live() {
            self.live -= 1;
        } else if !old.is_live() && state.is_live() {
            self.live += 1;
        }
        self.members[i].state = state;
        self.members[i].state_since = now;
    }

    fn refute(&mut self, accused: u64) {
        self.incarnation = self.incarnation.max(accused) + 1;
        self.members[0].incarnation = self.incarnation;
        self.stats.refutations += 1;
        self.adjust_awareness(1);
        self.announce_self();
        self.events.push_back(Event::Refuted {
            incarnation: self.incarnation,
        });
    }

    fn service_events(&mut self, node: &str, up: bool) {
        let Some(cat) = self.catalogs.get(node) else {
            return;
        };
        for r in cat.live() {
            let (node, record) = (String::from(node), r.clone());
            self.events.push_back(if up {
                Event::ServiceUp { node, record }
            } else {
                Event::ServiceDown { node, record }
            });
        }
    }

    fn report_conflict(&mut self, name: &str, addr: SocketAddr) {
        if self.conflicts.len() >= MAX_CONFLICTS {
            // Forget old reports rather than grow without bound.
            self.conflicts.clear();
        }
        if !self.conflicts.contains(&addr) {
            self.conflicts.push(addr);
            self.events.push_back(Event::NameConflict {
                name: String::from(name),
                addr,
            });
        }
    }

    fn on_alive(&mut self, now: Instant, name: &str, addr: SocketAddr, inc: u64) {
        if name == self.me {
            if self.left {
                return;
            }
            if addr != self.addr {
                // Someone else claims our name. Report it; fighting over
                // incarnations would only make the two flap in everyone's view.
                self.report_conflict(name, addr);
            } else if inc > self.incarnation {
                // News of an earlier life of ours: outbid it.
                self.refute(inc);
            }
            return;
        }
        match self.index.get(name).copied() {
            None if self.members.len() >= self.config.max_members => {
                // Full: no new name until reaping makes room. Evicting
                // anyone would let a flood of fake names push real members
                // out; not re-gossiping keeps the refused name from
                // filling others' tables through us.
                self.stats.members_refused += 1;
                return;
            }
            None => {
                self.members.push(Member {
                    name: String::from(name),
                    addr,
                    state: MemberState::Alive,
                    incarnation: inc,
                    tags: Vec::new(),
                    tags_lamport: 0,
                    state_since: now,
                    coordinate: None,
                    rtt_samples: LatencyFilter::default(),
                });
                self.index
                    .insert(String::from(name), self.members.len() - 1);
                self.live += 1;
                self.events.push_back(Event::MemberUp {
                    name: String::from(name),
                    addr,
                });
                self.service_events(name, true);
            }
            Some(i) => {
                let old = self.members[i].state;
                if self.members[i].addr != addr && old.is_live() {
                    // A second node with a live member's name: keep the one
                    // we know (as memberlist does) and report it.
                    self.report_conflict(name, addr);
                    return;
                }
                if inc <= self.members[i].incarnation {
                    return;
                }
                self.members[i].incarnation = inc;
                self.members[i].addr = addr;
                self.set_state(i, MemberState::Alive, now);
                self.suspicions.remove(name);
                match old {
                    MemberState::Suspect => self.events.push_back(Event::MemberAlive {
                        name: String::from(name),
                        incarnation: inc,
                    }),
                    MemberState::Failed | MemberState::Left => {
                        self.events.push_back(Event::MemberUp {
                            name: String::from(name),
                            addr,
                        });
                        self.service_events(name, true);
                    }
                    MemberState::Alive => {}
                }
            }
        }
        let msg = Message::Alive {
            name: String::from(name),
            addr,
            incarnation: inc,
        };
        self.rebroadcast(
            Subject::Member(String::from(name)),
            wire::encode_message(&msg),
        );
    }

    /// The shared first step of a suspicion or death claim about `name` at
    /// `inc`: about ourselves it is refuted; about a member it is the member's
    /// index, unless the claim is stale or the member already dead or left.
    fn claim_target(&mut self, name: &str, inc: u64) -> Option<usize> {
        if name == self.me {
            if !self.left && inc >= self.incarnation {
                self.refute(inc);
            }
            return None;
        }
        let i = self.index.get(name).copied()?;
        let m = &self.members[i];
        (inc >= m.incarnation && m.state.is_live()).then_some(i)
    }

    fn on_suspect(&mut self, now: Instant, name: &str, inc: u64, from: &str) {
        let Some(i) = self.claim_target(name, inc) else {
            return;
        };
        let m = &self.members[i];
        let msg = || Message::Suspect {
            name: String::from(name),
            incarnation: inc,
            from: String::from(from),
        };
        if m.state == MemberState::Suspect && inc == m.incarnation {
            // Lifeguard: an independent confirmation shortens the timeout
            // and is worth passing on.
            if let Some(s) = self.suspicions.get_mut(name) {
                if s.confirm(from) {
                    self.rebroadcast(
                        Subject::Member(String::from(name)),
                        wire::encode_message(&msg()),
                    );
                }
            }
            return;
        }
        self.members[i].incarnation = inc;
        self.set_state(i, MemberState::Suspect, now);
        let n = self.live;
        let mut k = self.config.suspicion_mult.saturating_sub(2);
        if n < k as usize + 2 {
            k = 0;
        }
        self.suspicions.insert(
            String::from(name),
            Suspicion::new(
                inc,
                String::from(from),
                now,
                // Lifeguard: while our own datagrams go missing (awareness
                // up), refutations reach us late too, so wait for them as
                // much longer as we stretch our probes.
                self.scaled(self.config.suspicion_min_timeout(n)),
                self.config.suspicion_max_timeout_mult,
                k,
                self.config.lifeguard,
            ),
        );
        self.events.push_back(Event::MemberSuspect {
            name: String::from(name),
            incarnation: inc,
        });
        self.rebroadcast(
            Subject::Member(String::from(name)),
            wire::encode_message(&msg()),
        );
    }

    fn on_dead(&mut self, now: Instant, name: &str, inc: u64, from: &str) {
        let Some(i) = self.claim_target(name, inc) else {
            return;
        };
        let graceful = from == name;
        self.members[i].incarnation = inc;
        let state = if graceful {
            MemberState::Left
        } else {
            MemberState::Failed
        };
        self.set_state(i, state, now);
        self.suspicions.remove(name);
        self.events.push_back(if graceful {
            Event::MemberLeft {
                name: String::from(name),
            }
        } else {
            Event::MemberFailed {
                name: String::from(name),
            }
        });
        self.service_events(name, false);
        let msg = Message::Dead {
            name: String::from(name),
            incarnation: inc,
            from: String::from(from),
        };
        self.rebroadcast(
            Subject::Member(String::from(name)),
            wire::encode_message(&msg),
        );
    }

    fn on_tags(&mut self, name: &str, lamport: u64, tags: Vec<(String, String)>) {
        let Some(i) = self.index.get(name).copied() else {
            return;
        };
        if lamport <= self.members[i].tags_lamport {
            return;
        }
        if i == 0 {
            // Newer tags of ours than we know: an earlier life. Outbid them.
            self.members[0].tags_lamport = lamport + 1;
            let msg = Message::Tags {
                name: self.me.clone(),
                lamport: lamport + 1,
                tags: self.members[0].tags.clone(),
            };
            self.broadcasts
                .push(Subject::Tags(self.me.clone()), wire::encode_message(&msg));
            return;
        }
        self.members[i].tags_lamport = lamport;
        self.members[i].tags = tags.clone();
        self.events.push_back(Event::MemberUpdated {
            name: String::from(name),
        });
        let msg = Message::Tags {
            name: String::from(name),
            lamport,
            tags,
        };
        self.rebroadcast(
            Subject::Tags(String::from(name)),
            wire::encode_message(&msg),
        );
    }

    fn on_service(&mut self, now: Instant, node: &str, entry: CatalogEntry) {
        if node == self.me {
            // We own this catalog: anything newer than our copy is from an
            // earlier life; restate our current truth above it.
            let cat = self
                .catalogs
                .get_or_insert_with(self.me.clone(), NodeCatalog::default);
            let key = (entry.service_type.clone(), entry.port);
            let ours = cat.slots.get(&key).map(|s| s.version);
            if ours.is_some_and(|v| v >= entry.version) {
                return;
            }
            if ours.is_none() && entry.record.is_none() {
                return;
            }
            cat.version = cat.version.max(entry.version) + 1;
            let version = cat.version;
            let slot = cat.slots.get_or_insert_with(key, || Slot {
                version,
                record: None,
                since: now,
            });
            slot.version = version;
            self.broadcast_own_slot(&entry.service_type, entry.port);
            return;
        }
        let known = self.member(node);
        let live = known.is_some_and(|m| m.state.is_live());
        if known.is_none()
            && self.catalogs.len() >= self.config.max_members
            && self.catalogs.get(node).is_none()
        {
            // A catalog racing ahead of its node's Alive is kept, but only
            // while there is room: the table bounds these too.
            self.stats.members_refused += 1;
            return;
        }
        let cat = self
            .catalogs
            .get_or_insert_with(String::from(node), || NodeCatalog {
                created: now,
                ..NodeCatalog::default()
            });
        let key = (entry.service_type.clone(), entry.port);
        if cat.slots.len() >= MAX_SLOTS && cat.slots.get(&key).is_none() {
            self.stats.services_refused += 1;
            return;
        }
        let applied = cat.apply(&entry, now);
        let (node_s, subject) = (
            String::from(node),
            Subject::Service(String::from(node), entry.service_type.clone(), entry.port),
        );
        match applied {
            Applied::Stale => return,
            Applied::Up(record) if live => self.events.push_back(Event::ServiceUp {
                node: node_s.clone(),
                record,
            }),
            Applied::Changed(record) if live => self.events.push_back(Event::ServiceChanged {
                node: node_s.clone(),
                record,
            }),
            Applied::Down(record) if live => self.events.push_back(Event::ServiceDown {
                node: node_s.clone(),
                record,
            }),
            _ => {}
        }
        let msg = Message::Service {
            node: node_s,
            entry,
        };
        self.rebroadcast(subject, wire::encode_message(&msg));
    }

    fn on_user_event(&mut self, lamport: u64, origin: String, name: String, payload: Vec<u8>) {
        self.event_clock = self.event_clock.max(lamport.saturating_add(1));
        if lamport.saturating_add(self.config.event_buffer) < self.event_clock {
            return;
        }
        if self
            .seen_events
            .insert((lamport, origin.clone(), name.clone()), ())
            .is_some()
        {
            return;
        }
        let msg = Message::UserEvent {
            lamport,
            origin: origin.clone(),
            name: name.clone(),
            payload: payload.clone(),
        };
        self.broadcasts.push(
            Subject::Event(lamport, origin.clone(), name.clone()),
            wire::encode_message(&msg),
        );
        self.events.push_back(Event::UserEvent {
            origin,
            name,
            payload,
            lamport,
        });
    }

    fn on_query(&mut self, now: Instant, msg: Message) {
        let Message::Query {
            id,
            lamport,
            ref origin,
            origin_addr,
            ref name,
            ref payload,
            ref nodes,
            ref tags,
            timeout_ms,
        } = msg
        else {
            return;
        };
        self.query_clock = self.query_clock.max(lamport.saturating_add(1));
        if lamport.saturating_add(self.config.event_buffer) < self.query_clock {
            return;
        }
        let mine = *origin == self.me;
        if self
            .seen_queries
            .insert((lamport, origin.clone(), id), ())
            .is_some()
            && !mine
        {
            return;
        }
        if !mine {
            self.broadcasts.push(
                Subject::Query(origin.clone(), id),
                wire::encode_message(&msg),
            );
        }
        if self.left {
            return;
        }
        let node_ok = nodes.is_empty() || nodes.contains(&self.me);
        let tags_ok = tags
            .iter()
            .all(|(k, v)| self.members[0].tag(k) == Some(v.as_str()));
        if !(node_ok && tags_ok) {
            return;
        }
        let timeout =
            Duration::from_millis(u64::from(timeout_ms)).min(self.config.max_query_timeout);
        let handle = self.next_in_query;
        self.next_in_query += 1;
        self.in_queries.insert(
            handle,
            InQuery {
                origin: origin.clone(),
                origin_addr,
                id,
                deadline: now + timeout,
            },
        );
        self.events.push_back(Event::QueryRequest {
            id: QueryId(handle),
            origin: origin.clone(),
            name: name.clone(),
            payload: payload.clone(),
        });
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

    fn merge(&mut self, now: Instant, pp: PushPull) {
        let from = pp.from;
        // A suspicion learned from a peer's state counts as our own, not as
        // the peer's confirmation (as memberlist): the peer may only be
        // echoing what it heard from us, and Lifeguard shortens the timeout
        // per independent confirmation.
        let me = self.me.clone();
        for m in pp.members {
            match m.state {
                WireState::Alive => self.on_alive(now, &m.name, m.addr, m.incarnation),
                WireState::Left => self.on_dead(now, &m.name, m.incarnation, &m.name),
                // Someone else's verdict of death is only a suspicion here:
                // our own timer decides (as memberlist does).
                WireState::Suspect | WireState::Dead => {
                    if m.name == self.me {
                        self.on_dead(now, &m.name, m.incarnation, &from);
                    } else {
                        self.on_suspect(now, &m.name, m.incarnation, &me)
                    }
                }
            }
            if m.tags_lamport > 0 {
                self.on_tags(&m.name, m.tags_lamport, m.tags);
            }
            if let (Some(c), Some(&i)) = (m.coord, self.index.get(&m.name)) {
                if i != 0 && (m.name == from || self.members[i].coordinate.is_none()) {
                    self.members[i].coordinate = Coordinate::from_wire(&c);
                }
            }
        }
        for c in pp.catalogs {
            for e in c.entries {
                self.on_service(now, &c.node, e);
            }
        }
        self.event_clock = self.event_clock.max(pp.event_clock);
        self.query_clock = self.query_clock.max(pp.query_clock);
    }
}
