//! The member table: who this node knows, in which state, found by name
//! through a hash index; random choice among members; reaping the dead.

use super::*;

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

    pub(super) fn is_live(self) -> bool {
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

/// Member name → position, keyed by a 64-bit FNV-1a hash so a lookup costs
/// one integer search and one string comparison (this is the hot path of
/// every gossiped message). Colliding names share a bucket.
#[derive(Default)]
pub(super) struct NameIndex {
    pub(super) buckets: SortedMap<u64, Vec<(String, usize)>>,
}

pub(super) fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

impl NameIndex {
    pub(super) fn get(&self, name: &str) -> Option<&usize> {
        self.buckets
            .get(&name_hash(name))?
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, i)| i)
    }

    pub(super) fn insert(&mut self, name: String, i: usize) {
        let bucket = self.buckets.get_or_insert_with(name_hash(&name), Vec::new);
        match bucket.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = i,
            None => bucket.push((name, i)),
        }
    }

    pub(super) fn remove(&mut self, name: &str) -> Option<usize> {
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

impl Node {
    /// Indexes of up to `n` distinct random members other than this node.
    pub(super) fn random_members(
        &mut self,
        n: usize,
        pred: impl Fn(&Member) -> bool,
    ) -> Vec<usize> {
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

    pub(super) fn random_member(&mut self, pred: impl Fn(&Member) -> bool) -> Option<usize> {
        self.random_members(1, pred).first().copied()
    }

    pub(super) fn set_state(&mut self, i: usize, state: MemberState, now: Instant) {
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

    pub(super) fn remove_member(&mut self, name: &str) {
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

    pub(super) fn reap(&mut self, now: Instant) {
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
}
