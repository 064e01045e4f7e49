//! The piggyback queue: updates waiting to ride on outgoing datagrams.
//!
//! Each update is retransmitted up to λ·⌈log10(N+1)⌉ times; the least sent
//! and, among those, the newest go first, and each datagram takes what fits
//! under the MTU. A newer update about the same subject (a member, a tag set,
//! a catalog slot) replaces the queued older one, so stale news never
//! travels after fresh news.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Reverse;

/// What an update is about; one queued update per subject.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Subject {
    Member(String),
    Tags(String),
    Service(String, String, u16),
    Event(u64, String, String),
    Query(String, u32),
}

/// Position in the send order: fewest transmissions first, then newest.
type Rank = (u32, Reverse<u64>);

/// Bound on queued updates; beyond it the most-retransmitted are dropped.
const MAX_QUEUED: usize = 16_384;

struct Item {
    subject: Subject,
    bytes: Vec<u8>,
}

#[derive(Default)]
pub(crate) struct Broadcasts {
    /// Queued updates in send order; the rank's second part is the update's
    /// id (newer is higher).
    queue: BTreeMap<Rank, Item>,
    /// Where each subject's update sits in `queue`.
    by_subject: BTreeMap<Subject, Rank>,
    next_id: u64,
}

impl Broadcasts {
    pub(crate) fn push(&mut self, subject: Subject, encoded: Vec<u8>) {
        if let Some(old) = self.by_subject.remove(&subject) {
            self.queue.remove(&old);
        }
        self.next_id += 1;
        let rank = (0, Reverse(self.next_id));
        self.by_subject.insert(subject.clone(), rank);
        self.queue.insert(
            rank,
            Item {
                subject,
                bytes: encoded,
            },
        );
        while self.queue.len() > MAX_QUEUED {
            let Some((_, item)) = self.queue.pop_last() else {
                break;
            };
            self.by_subject.remove(&item.subject);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Append updates fitting in `budget` bytes to `out`, counting one
    /// transmission each and retiring those that reach `limit`. Returns how
    /// many were appended.
    pub(crate) fn take_into(&mut self, out: &mut Vec<u8>, mut budget: usize, limit: u32) -> usize {
        let mut picked: Vec<Rank> = Vec::new();
        let mut misses = 0;
        for (rank, item) in &self.queue {
            // Small messages are rare: once a few in a row did not fit, the
            // datagram is as full as it will usefully get.
            if budget < 4 || misses >= 8 {
                break;
            }
            if item.bytes.len() > budget {
                misses += 1;
                continue;
            }
            budget -= item.bytes.len();
            out.extend_from_slice(&item.bytes);
            picked.push(*rank);
        }
        for &(transmits, id) in &picked {
            let Some(item) = self.queue.remove(&(transmits, id)) else {
                continue;
            };
            let transmits = transmits + 1;
            if transmits >= limit {
                self.by_subject.remove(&item.subject);
            } else {
                let rank = (transmits, id);
                if let Some(r) = self.by_subject.get_mut(&item.subject) {
                    *r = rank;
                }
                self.queue.insert(rank, item);
            }
        }
        picked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn take(b: &mut Broadcasts, budget: usize, limit: u32) -> Vec<u8> {
        let mut out = Vec::new();
        b.take_into(&mut out, budget, limit);
        out
    }

    #[test]
    fn newest_update_about_a_subject_replaces_the_old() {
        let mut b = Broadcasts::default();
        b.push(Subject::Member("a".into()), vec![1]);
        b.push(Subject::Member("a".into()), vec![2]);
        assert_eq!(b.len(), 1);
        assert_eq!(take(&mut b, 100, 5), vec![2]);
    }

    #[test]
    fn updates_retire_after_the_limit_and_least_sent_go_first() {
        let mut b = Broadcasts::default();
        b.push(Subject::Tags("a".into()), vec![1; 10]);
        assert_eq!(take(&mut b, 100, 2).len(), 10);
        b.push(Subject::Tags("b".into()), vec![2; 10]);
        // Only room for one: the unsent "b" wins over "a" (sent once).
        assert_eq!(take(&mut b, 12, 2), vec![2; 10]);
        assert_eq!(take(&mut b, 100, 2).len(), 20);
        assert!(b.is_empty());
    }
}
