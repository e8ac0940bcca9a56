//! MVCC version sets: the keys of one index bucket, each with the revisions it was live
//! in, so a read at revision R sees exactly the keys live at R.
//!
//! A set has two parts:
//! - **settled** keys, live at every revision the index answers for (loaded at open, or
//!   written before the garbage-collection horizon): a sorted array of bare keys, no
//!   revisions, one key inline without an allocation — this is where almost every key of
//!   a large index lives, at 4–12 bytes each;
//! - **recent** versions (written or deleted after the horizon), each with the revisions it
//!   was live in, in a rarely allocated side part; a key found there is decided by its
//!   versions alone (a settled key that was deleted has a recent version created at 0).
//!
//! [`VersionedSet::collect_garbage`] moves recent versions that every reader now sees
//! alike into the settled array and drops the dead ones. Membership is a binary search of
//! the settled array plus, while recent versions exist, a probe of them (a hash index once
//! they are many).

use std::hash::Hash;

use rustc_hash::FxHashMap;

/// Revision marker of a version that is still live.
const LIVE: u64 = u64::MAX;

/// Recent parts with at least this many versions get a hash index next to their vector.
const HASH_THRESHOLD: usize = 12;

/// Settled arrays up to this length are scanned, longer ones binary searched.
const SCAN_LIMIT: usize = 16;

/// Keys live at every readable revision, sorted; one key needs no allocation. No key is
/// an empty `Many` (which allocates nothing either): two variants keep it 16 bytes for
/// 4- and 8-byte keys, the box's pointer telling them apart.
pub(crate) enum Settled<K> {
    One(K),
    Many(Box<[K]>),
}

impl<K> Default for Settled<K> {
    fn default() -> Self {
        Self::Many(Box::default())
    }
}

impl<K: Copy + Ord> Settled<K> {
    pub fn from_sorted(keys: Vec<K>) -> Self {
        match keys.as_slice() {
            [key] => Self::One(*key),
            _ => Self::Many(keys.into_boxed_slice()),
        }
    }

    pub fn as_slice(&self) -> &[K] {
        match self {
            Self::One(key) => std::slice::from_ref(key),
            Self::Many(keys) => keys,
        }
    }

    #[inline]
    fn contains(&self, key: &K) -> bool {
        match self {
            Self::One(one) => one == key,
            Self::Many(keys) if keys.len() <= SCAN_LIMIT => keys.contains(key),
            Self::Many(keys) => keys.binary_search(key).is_ok(),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Self::Many(keys) if keys.is_empty())
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Self::Many(keys) => std::mem::size_of_val::<[K]>(keys),
            Self::One(_) => 0,
        }
    }
}

/// One key with its versions.
struct Versioned<K> {
    key: K,
    /// The newest version: created at `created` (0: settled before), deleted at `deleted`
    /// ([`LIVE`] if not).
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

/// The versions written after the horizon: a vector, plus a hash index once it grows.
pub(crate) struct Recent<K> {
    entries: Vec<Versioned<K>>,
    positions: Option<FxHashMap<K, u32>>,
}

impl<K: Copy + Eq + Hash> Recent<K> {
    fn find(&self, key: &K) -> Option<usize> {
        match &self.positions {
            Some(positions) => positions.get(key).map(|pos| *pos as usize),
            None => self.entries.iter().position(|it| it.key == *key),
        }
    }

    fn push(&mut self, entry: Versioned<K>) {
        let key = entry.key;
        let pos = self.entries.len();
        self.entries.push(entry);
        if let Some(positions) = &mut self.positions {
            positions.insert(key, pos as u32);
        } else if self.entries.len() >= HASH_THRESHOLD {
            self.rebuild_positions();
        }
    }

    fn rebuild_positions(&mut self) {
        if self.entries.len() < HASH_THRESHOLD {
            self.positions = None;
            return;
        }
        let mut positions = FxHashMap::default();
        positions.reserve(self.entries.len());
        for (pos, entry) in self.entries.iter().enumerate() {
            positions.insert(entry.key, pos as u32);
        }
        self.positions = Some(positions);
    }
}

/// The recent versions of a set, allocated only when there are any.
pub(crate) type RecentPart<K> = Option<Box<Recent<K>>>;

/// A set of keys with versions kept in two places (see the module doc): its settled keys,
/// and its recent versions if any. [`VersionedSet`] keeps both side by side; an owner that
/// wants its common case smaller keeps the recent part elsewhere (the index's forward
/// entries keep it in their rarely allocated extension) and reads through this view.
#[derive(Clone, Copy)]
pub(crate) struct SetView<'a, K> {
    settled: &'a Settled<K>,
    recent: Option<&'a Recent<K>>,
}

impl<'a, K: Copy + Ord + Hash> SetView<'a, K> {
    pub fn new(settled: &'a Settled<K>, recent: Option<&'a Recent<K>>) -> Self {
        Self { settled, recent }
    }

    /// The recent versions of `key`, if it has any.
    fn recent(&self, key: &K) -> Option<&'a Versioned<K>> {
        let recent = self.recent?;
        recent.find(key).map(|pos| &recent.entries[pos])
    }

    #[inline]
    pub fn contains_at(&self, key: &K, rev: u64) -> bool {
        match self.recent(key) {
            Some(entry) => entry.live_at(rev),
            None => self.settled.contains(key),
        }
    }

    /// The revision that created the version of `key` live at `rev`, if one is (0 for
    /// settled keys, whose revision the index no longer knows).
    pub fn created_at(&self, key: &K, rev: u64) -> Option<u64> {
        let Some(entry) = self.recent(key) else {
            return self.settled.contains(key).then_some(0);
        };
        if entry.created <= rev && rev < entry.deleted {
            return Some(entry.created);
        }
        let older = entry.older.as_ref()?;
        older
            .iter()
            .find(|(created, deleted)| *created <= rev && rev < *deleted)
            .map(|(created, _)| *created)
    }

    /// The keys live at `rev`: the settled ones in key order, then the recent ones in the
    /// order they were written.
    pub fn iter_at(self, rev: u64) -> impl Iterator<Item = K> + 'a {
        let recent = self.recent;
        let settled = self
            .settled
            .as_slice()
            .iter()
            .copied()
            .filter(move |key| recent.is_none_or(|recent| recent.find(key).is_none()));
        let newer = recent
            .into_iter()
            .flat_map(|recent| recent.entries.iter())
            .filter(move |it| it.live_at(rev))
            .map(|it| it.key);
        settled.chain(newer)
    }

    /// Calls `f` with the keys live at `rev`, in [`SetView::iter_at`]'s order, until it
    /// returns false; returns false if it did.
    #[inline]
    pub fn each_at(self, rev: u64, mut f: impl FnMut(K) -> bool) -> bool {
        let Some(recent) = self.recent else {
            return self.settled.as_slice().iter().all(|key| f(*key));
        };
        self.settled
            .as_slice()
            .iter()
            .filter(|key| recent.find(key).is_none())
            .all(|key| f(*key))
            && recent
                .entries
                .iter()
                .filter(|it| it.live_at(rev))
                .all(|it| f(it.key))
    }

    /// Every key at any kept revision (a key may come twice).
    pub fn all_keys(self) -> impl Iterator<Item = K> + 'a {
        let recent = self
            .recent
            .into_iter()
            .flat_map(|recent| recent.entries.iter().map(|it| it.key));
        self.settled.as_slice().iter().copied().chain(recent)
    }

    /// How many keys and versions it keeps (a bound on what a walk reads).
    pub fn len(&self) -> usize {
        self.settled.as_slice().len() + self.recent.map_or(0, |it| it.entries.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The heap both parts hold (the recent part's box included).
    pub fn heap_bytes(&self) -> usize {
        let Some(recent) = self.recent else {
            return self.settled.heap_bytes();
        };
        let entries = recent.entries.capacity() * std::mem::size_of::<Versioned<K>>();
        let positions = recent.positions.as_ref().map_or(0, |it| {
            it.capacity() * (std::mem::size_of::<K>() + std::mem::size_of::<u32>() + 1)
        });
        let older: usize = recent
            .entries
            .iter()
            .filter_map(|it| it.older.as_ref())
            .map(|it| it.capacity() * 16 + 24)
            .sum();
        self.settled.heap_bytes() + std::mem::size_of::<Recent<K>>() + entries + positions + older
    }
}

/// Makes `key` live (`live`) or deleted as of `rev` in the set whose parts are `settled`
/// and `recent`; a no-op if it already is. Only the recent part changes.
pub(crate) fn set<K: Copy + Ord + Hash>(
    settled: &Settled<K>,
    recent: &mut RecentPart<K>,
    key: K,
    rev: u64,
    live: bool,
) {
    if let Some(recent) = recent.as_deref_mut()
        && let Some(pos) = recent.find(&key)
    {
        let entry = &mut recent.entries[pos];
        if live && entry.deleted != LIVE {
            let old = (entry.created, entry.deleted);
            entry.older.get_or_insert_with(Default::default).push(old);
            entry.created = rev;
            entry.deleted = LIVE;
        } else if !live && entry.deleted == LIVE {
            entry.deleted = rev;
        }
        return;
    }
    let entry = match (settled.contains(&key), live) {
        (true, true) | (false, false) => return,
        // A settled key deleted: live from before the horizon (0) until `rev`.
        (true, false) => Versioned {
            key,
            created: 0,
            deleted: rev,
            older: None,
        },
        (false, true) => Versioned {
            key,
            created: rev,
            deleted: LIVE,
            older: None,
        },
    };
    recent
        .get_or_insert_with(|| {
            Box::new(Recent {
                entries: Vec::new(),
                positions: None,
            })
        })
        .push(entry);
}

/// Whether [`set`] would change nothing: `key` is settled and has no recent version, and
/// is to stay live (lets an owner skip allocating a place for the recent part).
pub(crate) fn settled_unchanged<K: Copy + Ord>(settled: &Settled<K>, key: &K, live: bool) -> bool {
    live == settled.contains(key)
}

/// Drops versions deleted at or before `horizon` from the set whose parts are `settled`
/// and `recent`, and settles keys live since before it (no read at or after `horizon`
/// can tell them apart); returns how many versions were dropped.
pub(crate) fn collect_garbage<K: Copy + Ord + Hash>(
    settled: &mut Settled<K>,
    recent: &mut RecentPart<K>,
    horizon: u64,
) -> usize {
    let Some(mut part) = recent.take() else {
        return 0;
    };
    let mut dropped = 0;
    let mut settle = Vec::new();
    let mut unsettle = Vec::new();
    part.entries.retain_mut(|entry| {
        if let Some(older) = &mut entry.older {
            let before = older.len();
            older.retain(|(_, deleted)| *deleted > horizon);
            dropped += before - older.len();
            if older.is_empty() {
                entry.older = None;
            }
        }
        if entry.older.is_some() {
            return true;
        }
        if entry.deleted <= horizon {
            dropped += 1;
            unsettle.push(entry.key);
            return false;
        }
        if entry.deleted == LIVE && entry.created <= horizon {
            settle.push(entry.key);
            return false;
        }
        true
    });
    if !settle.is_empty() || !unsettle.is_empty() {
        settle.sort_unstable();
        unsettle.sort_unstable();
        let mut keys: Vec<K> = settled
            .as_slice()
            .iter()
            .copied()
            .filter(|key| unsettle.binary_search(key).is_err())
            .collect();
        keys.extend(settle);
        keys.sort_unstable();
        keys.dedup();
        *settled = Settled::from_sorted(keys);
    }
    if !part.entries.is_empty() {
        part.entries.shrink_to_fit();
        part.rebuild_positions();
        *recent = Some(part);
    }
    dropped
}

/// A set of keys with versions: settled keys plus recent versions (see the module doc).
pub(crate) struct VersionedSet<K> {
    settled: Settled<K>,
    recent: RecentPart<K>,
}

impl<K> Default for VersionedSet<K> {
    fn default() -> Self {
        Self {
            settled: Settled::default(),
            recent: None,
        }
    }
}

impl<K: Copy + Ord + Hash> VersionedSet<K> {
    /// A set of keys live at every readable revision; `keys` sorted, without duplicates.
    pub fn from_sorted(keys: Vec<K>) -> Self {
        debug_assert!(keys.windows(2).all(|it| it[0] < it[1]));
        Self {
            settled: Settled::from_sorted(keys),
            recent: None,
        }
    }

    #[inline]
    pub fn view(&self) -> SetView<'_, K> {
        SetView::new(&self.settled, self.recent.as_deref())
    }

    #[inline]
    pub fn contains_at(&self, key: &K, rev: u64) -> bool {
        self.view().contains_at(key, rev)
    }

    pub fn created_at(&self, key: &K, rev: u64) -> Option<u64> {
        self.view().created_at(key, rev)
    }

    pub fn iter_at(&self, rev: u64) -> impl Iterator<Item = K> + '_ {
        self.view().iter_at(rev)
    }

    #[inline]
    pub fn each_at(&self, rev: u64, f: impl FnMut(K) -> bool) -> bool {
        self.view().each_at(rev, f)
    }

    pub fn all_keys(&self) -> impl Iterator<Item = K> + '_ {
        self.view().all_keys()
    }

    pub fn len(&self) -> usize {
        self.view().len()
    }

    pub fn is_empty(&self) -> bool {
        self.view().is_empty()
    }

    pub fn heap_bytes(&self) -> usize {
        self.view().heap_bytes()
    }

    /// Makes `key` live (`live`) or deleted as of `rev`; a no-op if it already is.
    pub fn set(&mut self, key: K, rev: u64, live: bool) {
        set(&self.settled, &mut self.recent, key, rev, live);
    }

    /// See [`collect_garbage`].
    pub fn collect_garbage(&mut self, horizon: u64) -> usize {
        collect_garbage(&mut self.settled, &mut self.recent, horizon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which of the keys 0..10 are live at each revision 0..=6.
    fn live_table(set: &VersionedSet<u32>) -> Vec<Vec<u32>> {
        (0..=6)
            .map(|rev| (0..10).filter(|key| set.contains_at(key, rev)).collect())
            .collect()
    }

    fn iter_table(set: &VersionedSet<u32>) -> Vec<Vec<u32>> {
        (0..=6)
            .map(|rev| {
                let mut keys: Vec<u32> = set.iter_at(rev).collect();
                keys.sort_unstable();
                keys
            })
            .collect()
    }

    #[test]
    fn settled_and_recent_versions_answer_like_one_history() {
        // Keys 1, 2, 3 settled; 2 deleted at 2 and written again at 4; 5 written at 3;
        // 3 deleted at 5.
        let mut set = VersionedSet::from_sorted(vec![1, 2, 3]);
        set.set(2, 2, false);
        set.set(5, 3, true);
        set.set(2, 4, true);
        set.set(3, 5, false);
        set.set(1, 5, true); // already live: nothing changes
        set.set(7, 5, false); // never there: nothing changes
        let expected = vec![
            vec![1, 2, 3],
            vec![1, 2, 3],
            vec![1, 3],
            vec![1, 3, 5],
            vec![1, 2, 3, 5],
            vec![1, 2, 5],
            vec![1, 2, 5],
        ];
        assert_eq!(live_table(&set), expected);
        assert_eq!(iter_table(&set), expected);
        assert_eq!(set.created_at(&2, 6), Some(4));
        assert_eq!(set.created_at(&2, 1), Some(0));
        assert_eq!(set.created_at(&1, 6), Some(0));
        assert_eq!(set.created_at(&2, 3), None);

        // Horizon 4: every read at 4 or later sees the same; older reads are refused.
        let dropped = set.collect_garbage(4);
        assert_eq!(dropped, 1, "the version of 2 that ended at 2");
        assert_eq!(&live_table(&set)[4..], &expected[4..]);
        assert_eq!(&iter_table(&set)[4..], &expected[4..]);

        // Horizon 6: 3's deletion is settled too; nothing recent is left.
        set.collect_garbage(6);
        assert!(set.recent.is_none());
        assert_eq!(set.settled.as_slice(), &[1, 2, 5]);
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn a_large_recent_part_keeps_exact_membership_through_its_hash_index() {
        let mut set = VersionedSet::from_sorted((0..50).collect());
        for key in 50..100 {
            set.set(key, 1, true);
        }
        for key in (0..100).step_by(3) {
            set.set(key, 2, false);
        }
        for key in 0..100 {
            assert!(set.contains_at(&key, 1), "{key}");
            assert_eq!(set.contains_at(&key, 2), key % 3 != 0, "{key}");
        }
        assert_eq!(set.iter_at(2).count(), 66);
        set.collect_garbage(2);
        assert!(set.recent.is_none());
        assert_eq!(set.iter_at(2).count(), 66);
        assert!((0..100).all(|key| set.contains_at(&key, 2) == (key % 3 != 0)));
    }
}
