//! MVCC version sets: the keys of one index bucket, each with the revisions it was live
//! in, so a read at revision R sees exactly the keys live at R.
//!
//! A set is a vector of entries (small sets are scanned) plus a hash index once it grows,
//! so "is this key live at R" is O(1) even for a million keys. Almost every key has one
//! version; older versions (deleted and written again) live in a rarely allocated list.

use std::hash::Hash;

use rustc_hash::FxHashMap;

/// Revision marker of a version that is still live.
const LIVE: u64 = u64::MAX;

/// Sets at least this large get a hash index next to their entry vector.
const HASH_THRESHOLD: usize = 12;

/// One key with its versions.
pub(crate) struct Versioned<K> {
    pub key: K,
    /// The newest version: created at `created`, deleted at `deleted` ([`LIVE`] if not).
    created: u64,
    deleted: u64,
    /// Older `(created, deleted)` versions, rare (a tuple deleted and written again).
    #[expect(
        clippy::box_collection,
        reason = "a thin pointer keeps every entry 8 bytes smaller; the box is rarely allocated"
    )]
    older: Option<Box<Vec<(u64, u64)>>>,
}

impl<K> Versioned<K> {
    fn live_at(&self, rev: u64) -> bool {
        (self.created <= rev && rev < self.deleted)
            || self
                .older
                .as_ref()
                .is_some_and(|older| older.iter().any(|(c, d)| *c <= rev && rev < *d))
    }
}

/// A set of keys with versions: a vector, plus a hash index once it grows.
pub(crate) struct VersionedSet<K> {
    pub entries: Vec<Versioned<K>>,
    positions: Option<Box<FxHashMap<K, u32>>>,
}

impl<K> Default for VersionedSet<K> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            positions: None,
        }
    }
}

impl<K: Copy + Eq + Hash> VersionedSet<K> {
    fn find(&self, key: &K) -> Option<usize> {
        match &self.positions {
            Some(positions) => positions.get(key).map(|pos| *pos as usize),
            None => self.entries.iter().position(|it| it.key == *key),
        }
    }

    pub fn contains_at(&self, key: &K, rev: u64) -> bool {
        self.find(key)
            .is_some_and(|pos| self.entries[pos].live_at(rev))
    }

    /// The revision that created the version of `key` live at `rev`, if one is (0 for
    /// entries loaded when the index was built, whose revision is unknown).
    pub fn created_at(&self, key: &K, rev: u64) -> Option<u64> {
        let entry = &self.entries[self.find(key)?];
        if entry.created <= rev && rev < entry.deleted {
            return Some(entry.created);
        }
        let older = entry.older.as_ref()?;
        older
            .iter()
            .find(|(created, deleted)| *created <= rev && rev < *deleted)
            .map(|(created, _)| *created)
    }

    pub fn iter_at(&self, rev: u64) -> impl Iterator<Item = K> + '_ {
        self.entries
            .iter()
            .filter(move |it| it.live_at(rev))
            .map(|it| it.key)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn heap_bytes(&self) -> usize {
        let entries = self.entries.capacity() * std::mem::size_of::<Versioned<K>>();
        let positions = self.positions.as_ref().map_or(0, |it| {
            it.capacity() * (std::mem::size_of::<K>() + std::mem::size_of::<u32>() + 1)
        });
        let older: usize = self
            .entries
            .iter()
            .filter_map(|it| it.older.as_ref())
            .map(|it| it.capacity() * 16 + 24)
            .sum();
        entries + positions + older
    }

    /// Makes `key` live (`live`) or deleted as of `rev`; a no-op if it already is.
    pub fn set(&mut self, key: K, rev: u64, live: bool) {
        match self.find(&key) {
            Some(pos) => {
                let entry = &mut self.entries[pos];
                if live && entry.deleted != LIVE {
                    let old = (entry.created, entry.deleted);
                    entry.older.get_or_insert_with(Default::default).push(old);
                    entry.created = rev;
                    entry.deleted = LIVE;
                } else if !live && entry.deleted == LIVE {
                    entry.deleted = rev;
                }
            }
            None if live => {
                let pos = self.entries.len();
                self.entries.push(Versioned {
                    key,
                    created: rev,
                    deleted: LIVE,
                    older: None,
                });
                if let Some(positions) = &mut self.positions {
                    positions.insert(key, pos as u32);
                } else if self.entries.len() >= HASH_THRESHOLD {
                    self.rebuild_positions();
                }
            }
            None => {}
        }
    }

    fn rebuild_positions(&mut self) {
        let mut positions = FxHashMap::default();
        positions.reserve(self.entries.len());
        for (pos, entry) in self.entries.iter().enumerate() {
            positions.insert(entry.key, pos as u32);
        }
        self.positions = Some(Box::new(positions));
    }

    /// Drops versions deleted at or before `horizon`; returns how many.
    pub fn collect_garbage(&mut self, horizon: u64) -> usize {
        let mut dropped = 0;
        for entry in &mut self.entries {
            if let Some(older) = &mut entry.older {
                let before = older.len();
                older.retain(|(_, deleted)| *deleted > horizon);
                dropped += before - older.len();
                if older.is_empty() {
                    entry.older = None;
                }
            }
        }
        let before = self.entries.len();
        self.entries
            .retain(|it| it.deleted > horizon || it.older.is_some());
        let removed = before - self.entries.len();
        if removed > 0 {
            dropped += removed;
            if self.entries.len() >= HASH_THRESHOLD {
                self.rebuild_positions();
            } else {
                self.positions = None;
            }
            self.entries.shrink_to_fit();
        }
        dropped
    }
}
