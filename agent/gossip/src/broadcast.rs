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

type Rank = (u32, Reverse<u64>);

/// Bound on queued updates; beyond it the most-retransmitted are dropped.
const MAX_QUEUED: usize = 16_384;

#[derive(Default)]
pub(crate) struct Broadcasts {
    items: BTreeMap<Rank, (Subject, Vec<u8>)>,
    by_subject: BTreeMap<Subject, Rank>,
    next_id: u64,
}

impl Broadcasts {
    pub(crate) fn push(&mut self, subject: Subject, encoded: Vec<u8>) {
        if let Some(old) = self.by_subject.remove(&subject) {
            self.items.remove(&old);
        }
        self.next_id += 1;
        let rank = (0, Reverse(self.next_id));
        self.by_subject.insert(subject.clone(), rank);
        self.items.insert(rank, (subject, encoded));
        while self.items.len() > MAX_QUEUED {
            if let Some((_, (s, _))) = self.items.pop_last() {
                self.by_subject.remove(&s);
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Take updates fitting in `budget` bytes, counting one transmission each
    /// and retiring those that reach `limit`.
    pub(crate) fn take(&mut self, mut budget: usize, limit: u32) -> Vec<Vec<u8>> {
        let mut picked: Vec<Rank> = Vec::new();
        let mut out = Vec::new();
        for (rank, (_, bytes)) in &self.items {
            if budget < 4 {
                break;
            }
            if bytes.len() <= budget {
                budget -= bytes.len();
                picked.push(*rank);
                out.push(bytes.clone());
            }
        }
        for rank in picked {
            if let Some((subject, bytes)) = self.items.remove(&rank) {
                let next = rank.0 + 1;
                if next >= limit {
                    self.by_subject.remove(&subject);
                } else {
                    let new_rank = (next, rank.1);
                    self.by_subject.insert(subject.clone(), new_rank);
                    self.items.insert(new_rank, (subject, bytes));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn newest_update_about_a_subject_replaces_the_old() {
        let mut b = Broadcasts::default();
        b.push(Subject::Member("a".into()), vec![1]);
        b.push(Subject::Member("a".into()), vec![2]);
        assert_eq!(b.len(), 1);
        assert_eq!(b.take(100, 5), vec![vec![2]]);
    }

    #[test]
    fn updates_retire_after_the_limit_and_least_sent_go_first() {
        let mut b = Broadcasts::default();
        b.push(Subject::Tags("a".into()), vec![1; 10]);
        assert_eq!(b.take(100, 2).len(), 1);
        b.push(Subject::Tags("b".into()), vec![2; 10]);
        // Only room for one: the unsent "b" wins over "a" (sent once).
        assert_eq!(b.take(12, 2), vec![vec![2; 10]]);
        assert_eq!(b.take(100, 2).len(), 2);
        assert!(b.is_empty());
    }
}
