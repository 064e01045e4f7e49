//! Service records and each node's versioned catalog.
//!
//! A node owns a set of records keyed by `(type, port)`. Every change bumps
//! the owner's catalog version and stamps the entry with it; a removal leaves
//! a tombstone with its version, so an older copy of the record arriving late
//! (after a partition, from a lagging peer) can never resurrect it. Receivers
//! keep, per `(node, type, port)`, the entry with the highest version. Single
//! changes spread as piggybacked updates; whole catalogs ride push-pull, so a
//! catalog has no size limit (only one record must fit a datagram).

use alloc::string::String;
use alloc::vec::Vec;

use crate::sorted::SortedMap;
use crate::time::Instant;

/// One catalog slot: a record, or a tombstone when `record` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub version: u64,
    pub service_type: String,
    pub port: u16,
    pub record: Option<ServiceRecord>,
}

/// Health of a published service, as its owner's checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Healthy = 0,
    Unhealthy = 1,
    /// No health check configured.
    Unknown = 2,
}

/// One announced service (Cloudy's avahi-ps fields), in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    pub service_type: String,
    pub description: String,
    /// Host name of the publishing node.
    pub host: String,
    pub ip: String,
    pub port: u16,
    pub microcloud: String,
    /// `key=value` pairs, in the owner's order.
    pub txt: Vec<(String, String)>,
    pub health: Health,
}

/// What [`crate::Node::search`] looks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilter {
    /// Only records of this type (all types when `None`).
    pub service_type: Option<String>,
    /// Only records of this microcloud (every microcloud when `None`).
    pub microcloud: Option<String>,
}

/// A search hit, with what the caller needs to rank it.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    /// The member that publishes it.
    pub node: String,
    pub record: ServiceRecord,
    /// Estimated RTT to `node` in microseconds (0 for this node itself).
    pub rtt_us: Option<u64>,
    /// The publisher's `load` tag (1-minute load × 100), 0 when absent.
    pub load_x100: u32,
}

impl SearchResult {
    /// 0..=100, higher is better: starts from health, loses points for RTT
    /// (1 per 2 ms, at most 60) and load (1 per 0.1 load, at most 20).
    pub fn quality(&self) -> u8 {
        let base: i64 = match self.record.health {
            Health::Healthy => 100,
            Health::Unknown => 90,
            Health::Unhealthy => 30,
        };
        let rtt_penalty = match self.rtt_us {
            Some(us) => ((us / 2000) as i64).min(60),
            None => 30,
        };
        let load_penalty = i64::from(self.load_x100 / 10).min(20);
        (base - rtt_penalty - load_penalty).clamp(0, 100) as u8
    }
}

/// One record slot of a catalog: the record, or a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    pub version: u64,
    pub record: Option<ServiceRecord>,
    /// When the tombstone was learnt (for reaping); unused for live records.
    pub since: Instant,
}

/// The catalog of one node as this node knows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeCatalog {
    /// Highest entry version seen.
    pub version: u64,
    pub slots: SortedMap<(String, u16), Slot>,
    /// When this node first heard of the catalog (reaps catalogs of nodes
    /// that never became members).
    pub created: Instant,
}

/// Slots (records and tombstones) one node's catalog holds at most. A
/// router publishes a handful of services; without a bound, Service
/// datagrams naming ever new ports for one known node (anyone on a keyless
/// LAN, any key holder) would grow it until the router runs out of memory.
pub const MAX_SLOTS: usize = 512;

/// Live records this node publishes at most: half of [`MAX_SLOTS`], so its
/// unpublished slots (tombstones, kept a day) leave peers room for changes.
pub const MAX_OWN_RECORDS: usize = MAX_SLOTS / 2;

/// What applying an entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Older or equal to what we hold: nothing changed.
    Stale,
    Up(ServiceRecord),
    Changed(ServiceRecord),
    Down(ServiceRecord),
    /// A tombstone for a record we never had.
    Tombstone,
}

impl NodeCatalog {
    pub(crate) fn apply(&mut self, entry: &CatalogEntry, now: Instant) -> Applied {
        let key = (entry.service_type.clone(), entry.port);
        if let Some(slot) = self.slots.get(&key) {
            if slot.version >= entry.version {
                return Applied::Stale;
            }
        }
        self.version = self.version.max(entry.version);
        let old = self.slots.insert(
            key,
            Slot {
                version: entry.version,
                record: entry.record.clone(),
                since: now,
            },
        );
        let old = old.and_then(|s| s.record);
        match (old, &entry.record) {
            (None, Some(r)) => Applied::Up(r.clone()),
            (Some(_), Some(r)) => Applied::Changed(r.clone()),
            (Some(o), None) => Applied::Down(o),
            (None, None) => Applied::Tombstone,
        }
    }

    pub(crate) fn entries(&self) -> Vec<CatalogEntry> {
        self.slots
            .iter()
            .map(|((t, p), s)| CatalogEntry {
                version: s.version,
                service_type: t.clone(),
                port: *p,
                record: s.record.clone(),
            })
            .collect()
    }

    pub(crate) fn live(&self) -> impl Iterator<Item = &ServiceRecord> {
        self.slots.values().filter_map(|s| s.record.as_ref())
    }

    /// Drop tombstones older than `retention`.
    pub(crate) fn reap(&mut self, now: Instant, retention: core::time::Duration) {
        self.slots
            .retain(|_, s| s.record.is_some() || now.saturating_since(s.since) < retention);
    }
}
