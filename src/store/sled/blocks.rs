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
