//! A map kept as a `Vec` sorted by key.
//!
//! The node's tables (members' catalogs, suspicions, relays, queries, seen
//! events) hold from a handful to a few thousand entries and are read far
//! more often than changed. A sorted `Vec` iterates in key order like the
//! `BTreeMap`s it replaces, so the node behaves identically, but each key and
//! value type costs a few hundred bytes of code instead of a `BTreeMap`'s few
//! kilobytes (which matters on a router's flash).

use alloc::vec::Vec;
use core::borrow::Borrow;

#[derive(Debug, Clone)]
pub(crate) struct SortedMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        SortedMap {
            entries: Vec::new(),
        }
    }
}

impl<K: Ord, V> SortedMap<K, V> {
    /// Where `key` is (`Ok`), or where it would go (`Err`).
    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.entries.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        let i = self.find(key).ok()?;
        Some(&self.entries[i].1)
    }

    pub(crate) fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        let i = self.find(key).ok()?;
        Some(&mut self.entries[i].1)
    }

    /// Insert or replace; returns the replaced value.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(core::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    pub(crate) fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let i = self.find(key).ok()?;
        Some(self.entries.remove(i).1)
    }

    /// The value at `key`, inserting `make()` first if there is none.
    pub(crate) fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (key, make()));
                i
            }
        };
        &mut self.entries[i].1
    }

    /// Drop every entry whose key is below `key`.
    pub(crate) fn remove_below(&mut self, key: &K) {
        let end = self.entries.partition_point(|(k, _)| k < key);
        self.entries.drain(..end);
    }
}

impl<K, V> SortedMap<K, V> {
    /// Entries in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// Keep the entries `keep` says yes to, visiting them in key order.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_an_ordered_map() {
        let mut m = SortedMap::default();
        assert_eq!(m.insert(3, 'c'), None);
        assert_eq!(m.insert(1, 'a'), None);
        assert_eq!(m.insert(2, 'x'), None);
        assert_eq!(m.insert(2, 'b'), Some('x'));
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            [(&1, &'a'), (&2, &'b'), (&3, &'c')]
        );
        assert_eq!(*m.get_or_insert_with(0, || 'z'), 'z');
        assert_eq!(*m.get_or_insert_with(0, || 'y'), 'z');
        assert_eq!(m.remove(&1), Some('a'));
        assert_eq!(m.remove(&1), None);
        m.remove_below(&3);
        assert_eq!(m.values().collect::<Vec<_>>(), [&'c']);
        m.retain(|k, _| *k != 3);
        assert_eq!(m.iter().count(), 0);
    }
}
