//! The block tree: version entries (key, value) of one index packed into sled values of
//! about [`TARGET`] entries (format 3, see `keys`), behind reads and writes that speak of
//! entries only: [`walk`] (entries from a key on, in order), [`get`] (one entry) and
//! [`plan`] (the block rewrites that put and remove a sorted list of entries).
//!
//! The block holding key `K` is the one with the greatest block key at most `K` (the first
//! block for keys below every block key). A rewritten block splits into blocks of
//! [`TARGET`] entries once it holds more than [`MAX`], and absorbs the next block while it
//! holds fewer than [`MIN`]; an emptied block disappears.
//!
//! Writers plan under the store's writer mutex and commit a plan in one transaction, so
//! the blocks never change between plan and commit. Readers take no lock: sled has no
//! snapshots, but a reader reads each block whole (one sled call), skips entries at or
//! before the last one it handed out, and restarts from there (one seek) whenever a commit
//! that moved entries to an earlier block ([`Plan::moves`]) overlapped its walk, which
//! [`Layout`] tells it. Nothing else moves an entry backwards, so a walk misses nothing.

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

use ::sled::{IVec, Tree};

use super::{corrupt, io};
use crate::store::StoreError;
use crate::store::keys;

/// Entries a new block gets (bulk writes, splits).
pub const TARGET: usize = 64;
/// A block holding more entries than this after a write splits.
pub const MAX: usize = 2 * TARGET;
/// A block holding fewer entries than this after a write absorbs the next block.
pub const MIN: usize = TARGET / 4;

/// Counts commits that move entries to an earlier block: odd while one is in progress.
#[derive(Default)]
pub struct Layout(AtomicU64);

impl Layout {
    /// The count once no move is in progress.
    fn settled(&self) -> u64 {
        loop {
            let count = self.0.load(Ordering::Acquire);
            if count.is_multiple_of(2) {
                return count;
            }
            std::thread::yield_now();
        }
    }

    /// Runs `commit`, marked as a move when `moves` is set.
    pub fn commit<T>(&self, moves: bool, commit: impl FnOnce() -> T) -> T {
        if !moves {
            return commit();
        }
        self.0.fetch_add(1, Ordering::AcqRel);
        let res = commit();
        self.0.fetch_add(1, Ordering::AcqRel);
        res
    }
}

/// The block holding `key`: the greatest block key at most `key`, else the first block.
fn locate(tree: &Tree, key: &[u8]) -> Result<Option<(IVec, IVec)>, StoreError> {
    match tree.range(..=key).next_back() {
        Some(item) => item.map(Some).map_err(io),
        None => tree.first().map_err(io),
    }
}

/// Calls `f` with every entry whose key is at least `start`, in key order, until `f`
/// returns false. Safe against concurrent commits (see the module docs).
pub fn walk(
    tree: &Tree,
    layout: &Layout,
    start: &[u8],
    f: &mut keys::EntryFn<'_, StoreError>,
) -> Result<(), StoreError> {
    // The last key handed out: everything at or before it is skipped after a restart.
    let mut last: Option<Vec<u8>> = None;
    'restart: loop {
        let count = layout.settled();
        let seek = last.as_deref().unwrap_or(start);
        let from = match locate(tree, seek)? {
            Some((key, _)) => Bound::Included(key),
            None => return Ok(()),
        };
        for item in tree.range::<IVec, _>((from, Bound::Unbounded)) {
            let (block_key, value) = item.map_err(io)?;
            let mut stopped = false;
            keys::walk_block::<StoreError>(&block_key, &value, &mut |key, value| {
                let after = match &last {
                    Some(last) => key > last.as_slice(),
                    None => key >= start,
                };
                if !after {
                    return Ok(true);
                }
                let more = f(key, value)?;
                let last = last.get_or_insert_with(Vec::new);
                last.clear();
                last.extend_from_slice(key);
                stopped = !more;
                Ok(more)
            })?;
            if stopped {
                return Ok(());
            }
            if layout.settled() != count {
                continue 'restart;
            }
        }
        if layout.settled() != count {
            continue;
        }
        return Ok(());
    }
}

/// The value of the entry `key`, if there is one.
pub fn get(tree: &Tree, layout: &Layout, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    let mut res = None;
    walk(tree, layout, key, &mut |found, value| {
        if found == key {
            res = Some(value.to_vec());
        }
        Ok(false)
    })?;
    Ok(res)
}

/// The block rewrites of one write to one index.
#[derive(Default)]
pub struct Plan {
    /// Block keys to insert (`Some`) or remove (`None`), each once.
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Whether some entry moves to an earlier block (a block is removed): commit it
    /// through [`Layout::commit`].
    pub moves: bool,
    /// How many of the changes this plan covers (all of them unless a budget stopped it).
    pub consumed: usize,
}

/// One entry change: put `value`, or remove the entry when `None`.
pub type EntryChange = (Vec<u8>, Option<Vec<u8>>);

/// An [`EntryChange`], borrowed.
pub type EntryRef<'a> = (&'a [u8], Option<&'a [u8]>);

/// Sorts `changes` by key, keeping only the last change of each key.
pub fn sort_changes(changes: &mut Vec<EntryChange>) {
    // A stable sort keeps equal keys in their order: the last one wins.
    changes.sort_by(|a, b| a.0.cmp(&b.0));
    let mut res: Vec<EntryChange> = Vec::with_capacity(changes.len());
    for change in changes.drain(..) {
        match res.last_mut() {
            Some(last) if last.0 == change.0 => *last = change,
            _ => res.push(change),
        }
    }
    *changes = res;
}

/// The block rewrites that apply `changes` (sorted by [`sort_changes`]) to `tree`, reading
/// the blocks they touch. Stops after a rewrite once `budget` block ops are planned
/// ([`Plan::consumed`] says how far it got); `usize::MAX` plans everything. Removing an
/// absent entry changes nothing.
pub fn plan(tree: &Tree, changes: &[EntryRef<'_>], budget: usize) -> Result<Plan, StoreError> {
    let mut plan = Plan::default();
    let mut ops: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> = Default::default();
    let mut done = 0;
    // Entries merged so far and not yet written out (an underfull run carried forward).
    let mut pending: Vec<keys::Entry> = Vec::new();
    let mut block = match changes.first() {
        Some((key, _)) => locate(tree, key)?,
        None => return Ok(plan),
    };
    loop {
        let next = match &block {
            Some((key, _)) => tree
                .range::<&[u8], _>((Bound::Excluded(key.as_ref()), Bound::Unbounded))
                .next()
                .transpose()
                .map_err(io)?,
            None => None,
        };
        let end = changes[done..]
            .iter()
            .position(|(key, _)| next.as_ref().is_some_and(|(next, _)| *key >= next.as_ref()))
            .map_or(changes.len(), |n| done + n);
        let stored = match &block {
            Some((key, value)) => {
                ops.insert(key.to_vec(), None);
                keys::decode_block(key, value).map_err(corrupt)?
            }
            None => Vec::new(),
        };
        merge(stored, &changes[done..end], &mut pending);
        done = end;
        if pending.len() < MIN && !pending.is_empty() && next.is_some() {
            // Too small: absorb the next block (touched by later changes or not).
            block = next;
            continue;
        }
        emit(&mut pending, &mut ops);
        if done == changes.len() || ops.len() >= budget {
            break;
        }
        block = locate(tree, changes[done].0)?;
    }
    plan.moves = ops.values().any(Option::is_none);
    plan.ops = ops.into_iter().collect();
    plan.consumed = done;
    Ok(plan)
}

/// Appends to `out` the entries of `stored` with `changes` applied, both sorted.
fn merge(stored: Vec<keys::Entry>, changes: &[EntryRef<'_>], out: &mut Vec<keys::Entry>) {
    let mut stored = stored.into_iter().peekable();
    for &(key, change) in changes {
        while let Some(entry) = stored.next_if(|(stored, _)| stored.as_slice() < key) {
            out.push(entry);
        }
        stored.next_if(|(stored, _)| stored.as_slice() == key);
        if let Some(value) = change {
            out.push((key.to_vec(), value.to_vec()));
        }
    }
    out.extend(stored);
}

/// Writes `entries` as one block, or as blocks of about [`TARGET`] when more than [`MAX`].
fn emit(
    entries: &mut Vec<keys::Entry>,
    ops: &mut std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>,
) {
    if entries.is_empty() {
        return;
    }
    let n_blocks = if entries.len() > MAX {
        entries.len().div_ceil(TARGET)
    } else {
        1
    };
    let per_block = entries.len().div_ceil(n_blocks);
    for block in entries.chunks(per_block) {
        ops.insert(block[0].0.clone(), Some(keys::encode_block(block)));
    }
    entries.clear();
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn tree() -> (::sled::Db, Tree) {
        let db = ::sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        (db, tree)
    }

    fn key(n: u32) -> Vec<u8> {
        format!("k{n:06}").into_bytes()
    }

    /// Plans `changes` and applies the plan (as a transaction would).
    fn write(tree: &Tree, changes: Vec<EntryChange>) {
        let mut changes = changes;
        sort_changes(&mut changes);
        let refs: Vec<EntryRef<'_>> = changes
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        let plan = plan(tree, &refs, usize::MAX).unwrap();
        assert_eq!(plan.consumed, refs.len());
        for (key, value) in plan.ops {
            match value {
                Some(value) => tree.insert(key, value).unwrap(),
                None => tree.remove(key).unwrap(),
            };
        }
    }

    /// The entry count of every block, after checking the block invariants: non-empty,
    /// keyed by the first entry, entries below the next block's key.
    fn block_sizes(tree: &Tree) -> Vec<usize> {
        let blocks: Vec<(IVec, IVec)> = tree.iter().map(Result::unwrap).collect();
        let mut sizes = Vec::new();
        for (at, (block_key, value)) in blocks.iter().enumerate() {
            let entries = keys::decode_block(block_key, value).unwrap();
            assert_eq!(entries[0].0, block_key.to_vec());
            if let Some((next, _)) = blocks.get(at + 1) {
                assert!(entries.last().unwrap().0.as_slice() < next.as_ref());
            }
            sizes.push(entries.len());
        }
        sizes
    }

    fn walk_all(tree: &Tree, start: &[u8]) -> Vec<Vec<u8>> {
        let mut res = Vec::new();
        walk(tree, &Layout::default(), start, &mut |key, _| {
            res.push(key.to_vec());
            Ok(true)
        })
        .unwrap();
        res
    }

    fn puts(range: impl Iterator<Item = u32>) -> Vec<EntryChange> {
        range.map(|n| (key(n), Some(vec![n as u8]))).collect()
    }

    fn removes(range: impl Iterator<Item = u32>) -> Vec<EntryChange> {
        range.map(|n| (key(n), None)).collect()
    }

    #[test]
    fn a_write_splits_above_max_into_target_sized_blocks() {
        // (entries written at once, the block sizes that result)
        for (n, sizes) in [
            (1, vec![1]),
            (MIN as u32 - 1, vec![MIN - 1]),
            (TARGET as u32, vec![TARGET]),
            (MAX as u32, vec![MAX]),
            (MAX as u32 + 1, vec![43, 43, 43]),
            (3 * TARGET as u32, vec![TARGET; 3]),
            // 641 entries: ceil(641 / 64) = 11 blocks, as even as the chunks allow.
            (10 * TARGET as u32 + 1, [vec![59; 10], vec![51]].concat()),
        ] {
            let (_db, tree) = tree();
            write(&tree, puts(0..n));
            assert_eq!(block_sizes(&tree), sizes, "{n}");
            assert_eq!(walk_all(&tree, b""), (0..n).map(key).collect::<Vec<_>>());
        }
    }

    #[test]
    fn one_more_entry_at_max_splits_and_below_min_absorbs_the_next_block() {
        let (_db, tree) = tree();
        write(&tree, puts((0..2 * MAX as u32).step_by(2)));
        assert_eq!(block_sizes(&tree), [MAX]);
        write(&tree, puts([1].into_iter()));
        assert_eq!(block_sizes(&tree), [43, 43, 43]);
        // Emptying the first block down to MIN keeps it; one below absorbs the second.
        let first: Vec<Vec<u8>> = walk_all(&tree, b"").into_iter().take(43).collect();
        let doomed: Vec<EntryChange> = first[..43 - MIN]
            .iter()
            .map(|k| (k.clone(), None))
            .collect();
        write(&tree, doomed);
        assert_eq!(block_sizes(&tree), [MIN, 43, 43]);
        write(&tree, vec![(first[43 - MIN].clone(), None)]);
        assert_eq!(block_sizes(&tree), [MIN - 1 + 43, 43]);
        assert_eq!(walk_all(&tree, b"").len(), 129 - (43 - MIN) - 1);
    }

    #[test]
    fn emptied_blocks_disappear_and_keys_below_the_first_block_join_it() {
        let (_db, tree) = tree();
        write(&tree, puts(100..100 + 3 * TARGET as u32));
        assert_eq!(block_sizes(&tree), [TARGET; 3]);
        write(&tree, removes(100..100 + 3 * TARGET as u32));
        assert_eq!(block_sizes(&tree), Vec::<usize>::new());
        write(&tree, puts(50..60));
        write(&tree, puts(0..5));
        assert_eq!(block_sizes(&tree), [15]);
        assert_eq!(walk_all(&tree, b"")[0], key(0));
    }

    /// A deterministic random walk of puts and removes in batches of every size,
    /// checked against a `BTreeMap` after each batch: the invariants, a full walk, walks
    /// from starts inside and between blocks, and `get`.
    #[test]
    fn random_batches_match_a_sorted_map() {
        let (_db, tree) = tree();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for round in 0..150 {
            let batch = [1, 3, 40, 300][round % 4];
            let mut changes = Vec::new();
            for _ in 0..batch {
                let k = key(next(2_000) as u32);
                let change = if next(3) == 0 {
                    None
                } else {
                    Some(vec![round as u8])
                };
                changes.push((k, change));
            }
            for (k, v) in &changes {
                match v {
                    Some(v) => model.insert(k.clone(), v.clone()),
                    None => model.remove(k),
                };
            }
            write(&tree, changes);
            let sizes = block_sizes(&tree);
            assert!(sizes.iter().all(|it| *it <= MAX), "{sizes:?}");
            let all: Vec<Vec<u8>> = model.keys().cloned().collect();
            assert_eq!(walk_all(&tree, b""), all);
            let start = key(next(2_000) as u32);
            let from: Vec<Vec<u8>> = model
                .range(start.clone()..)
                .map(|(k, _)| k.clone())
                .collect();
            assert_eq!(walk_all(&tree, &start), from);
            let probe = key(next(2_000) as u32);
            assert_eq!(
                get(&tree, &Layout::default(), &probe).unwrap(),
                model.get(&probe).cloned()
            );
        }
        // Underfull blocks are merged away once written: few stay below MIN.
        let sizes = block_sizes(&tree);
        let small = sizes.iter().filter(|it| **it < MIN).count();
        assert!(small <= 1 + sizes.len() / 4, "{sizes:?}");
    }

    #[test]
    fn a_walk_restarts_after_a_move_and_misses_nothing() {
        let (_db, tree) = tree();
        write(&tree, puts(0..3 * TARGET as u32));
        let layout = Layout::default();
        let mut seen = Vec::new();
        let mut moved = false;
        walk(&tree, &layout, b"", &mut |found, _| {
            seen.push(found.to_vec());
            if seen.len() == TARGET && !moved {
                // While the walk is between blocks 1 and 2, a commit merges block 2 into
                // block 1 (block 2 gone, its entries under block 1's key).
                moved = true;
                let entries: Vec<keys::Entry> = (0..2 * TARGET as u32)
                    .map(|n| (key(n), vec![n as u8]))
                    .collect();
                layout.commit(true, || {
                    tree.insert(key(0), keys::encode_block(&entries)).unwrap();
                    tree.remove(key(TARGET as u32)).unwrap();
                });
            }
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen, (0..3 * TARGET as u32).map(key).collect::<Vec<_>>());
    }
}
