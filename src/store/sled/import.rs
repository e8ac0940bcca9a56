//! Bulk import for [`SledStore`](super::SledStore): the whole input becomes change sets of
//! [`CHUNK_SIZE`] relationships, one revision each (what the engine and watch see, the
//! same as a chunk-by-chunk import), and then its entries are sorted per index and written
//! block by block, so that a million relationships cost tens of thousands of block writes
//! rather than two million key writes.
//!
//! The input is read in passes of [`PASS`] relationships: each pass is planned (touch
//! semantics) and its entries sorted per index, then packed front-coded unless it is the
//! last. Nothing is written until the whole input is read and valid; then each index is
//! written once from the merge of the passes: as new blocks when its tree is empty (both
//! indexes at once, on two threads), else merged into the existing blocks.
//!
//! Atomicity: the import spans several commits. The first writes the `pending` marker
//! (its first revision, a filter matching everything); the last writes the new head and
//! removes the marker. Until then no reader sees the new revisions, and a crash leaves
//! the marker, so the next open rolls every version created or deleted at or after the
//! first revision back (`write::roll_back_pending`, which also sweeps the subject index
//! for entries the resource index lacks): a crash during an import leaves the store as
//! it was before it.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use super::marks::earliest;
use super::{Inner, Op, RawOp, TreeSlot, blocks, now_millis};
use crate::model::{Relationship, Revision};
use crate::store::keys::{self, Index, LIVE};
use crate::store::{
    CHUNK_SIZE, Change, ChangeOp, ChangeSet, RelationshipFilter, StoreError, check_relationship,
};

/// Relationships one pass reads and sorts (whole chunks, so that the change sets do not
/// depend on where passes end; 1,000,350, so that 1M is one pass): bounds the memory of
/// the sort whatever the input's size; the passes' sorted runs are kept packed and merged
/// when written.
const PASS: usize = 2_223 * CHUNK_SIZE;
/// Block rewrites per transaction (blocks are ~2–4 KB: about 1–2 MB per transaction).
const BLOCKS_PER_TRANSACTION: usize = 512;
/// Change-log values and revision records per transaction.
const RECORDS_PER_TRANSACTION: usize = 512;

/// A version an import ends: where its relationship is in the change sets (a delete) and
/// when it was created.
struct Ended {
    set: usize,
    change: usize,
    created: Revision,
}

/// The state of the touch-semantics pass over the whole input: the change sets so far
/// and the stored or imported versions they end.
#[derive(Default)]
struct Planned {
    sets: Vec<ChangeSet>,
    ended: Vec<Ended>,
    /// The newest version of every tuple this import wrote: the tuple's hash (so that
    /// growing the table reads no relationship), then (set, change) of its touch.
    newest: HashTable<(u64, u32, u32)>,
}

impl Inner {
    /// Imports the whole input, all or nothing: reads it pass by pass ([`PASS`]
    /// relationships each) into change sets and sorted entries of both indexes, then
    /// writes each index once from the merge of the passes (see the module docs).
    pub(super) fn import(
        &self,
        relationships: &mut dyn Iterator<Item = Relationship>,
    ) -> Result<Vec<ChangeSet>, StoreError> {
        self.import_in_passes(relationships, PASS)
    }

    /// [`Inner::import`] with passes of `pass` relationships (rounded down to whole
    /// chunks).
    fn import_in_passes(
        &self,
        relationships: &mut dyn Iterator<Item = Relationship>,
        pass: usize,
    ) -> Result<Vec<ChangeSet>, StoreError> {
        let pass = (pass / CHUNK_SIZE).max(1) * CHUNK_SIZE;
        let mut writer = self.writer.lock();
        let first = Revision(writer.head.0 + 1);
        let started = std::time::Instant::now();
        let mut planned = Planned::default();
        // Sorted runs of both indexes, one per pass; the last one is kept unpacked.
        let mut runs: [Vec<Run>; 2] = Default::default();
        let mut input = relationships.peekable();
        // Every tuple once, whatever the passes: no growing when the input says its size.
        planned
            .newest
            .reserve(input.size_hint().0, |&(hash, _, _)| hash);
        while input.peek().is_some() {
            let from = (planned.sets.len(), planned.ended.len());
            let mut pass = (&mut input).take(pass);
            self.plan_pass(&mut planned, &mut pass, first)?;
            tracing::debug!(elapsed = ?started.elapsed(), "import: pass planned");
            let more = input.peek().is_some();
            let planned = &planned;
            let [resource, subject] = std::thread::scope(|scope| {
                let subject = scope.spawn(move || Run::sort(Index::Subject, planned, from, more));
                let resource = Run::sort(Index::Resource, planned, from, more);
                let subject = subject
                    .join()
                    .map_err(|_| StoreError::Io("the import's sorting thread panicked".into()))?;
                Ok::<_, StoreError>([resource, subject])
            })?;
            tracing::debug!(elapsed = ?started.elapsed(), "import: pass sorted");
            runs[0].push(resource);
            runs[1].push(subject);
        }
        let Some(last) = planned.sets.last().map(|set| set.revision) else {
            return Ok(Vec::new());
        };
        let res = self.write_import(&mut writer, &planned.sets, runs, first, last);
        if let Err(err) = res {
            // Best effort: undo the writes that landed (the next open would).
            if let Err(undo) = self.roll_back_pending() {
                tracing::warn!(error = %undo, "could not roll back a failed import");
            }
            return Err(err);
        }
        writer.head = last;
        tracing::debug!(elapsed = ?started.elapsed(), "import: written");
        self.flush_if_durable()?;
        tracing::debug!(elapsed = ?started.elapsed(), "import: flushed");
        self.publish(last);
        Ok(planned.sets)
    }

    /// Reads one pass of the input into change sets of [`CHUNK_SIZE`] (touch semantics
    /// against the store and everything planned before; within a chunk the last
    /// occurrence of a tuple wins, at the position of its first, as
    /// `store::last_of_each_tuple` says), the first one at revision `first`.
    fn plan_pass(
        &self,
        planned: &mut Planned,
        relationships: &mut dyn Iterator<Item = Relationship>,
        first: Revision,
    ) -> Result<(), StoreError> {
        let empty = self.by_resource.is_empty();
        let hasher = FxBuildHasher;
        let hash = |rel: &Relationship| hasher.hash_one(rel.tuple_ref());
        let Planned {
            sets,
            ended,
            newest,
        } = planned;
        // This chunk's tuples: positions in `unique`.
        let mut in_chunk: HashTable<usize> = HashTable::with_capacity(CHUNK_SIZE);
        loop {
            let chunk: Vec<Relationship> = (&mut *relationships).take(CHUNK_SIZE).collect();
            if chunk.is_empty() {
                break;
            }
            in_chunk.clear();
            let mut unique: Vec<(u64, Relationship)> = Vec::with_capacity(chunk.len());
            for rel in chunk {
                check_relationship(&rel)?;
                let hash = hash(&rel);
                let tuple = rel.tuple_ref();
                match in_chunk.find(hash, |&at| unique[at].1.tuple_ref() == tuple) {
                    Some(&at) => unique[at].1 = rel,
                    None => {
                        in_chunk.insert_unique(hash, unique.len(), |&at| unique[at].0);
                        unique.push((hash, rel));
                    }
                }
            }
            let set = sets.len();
            let revision = Revision(first.0 + set as u64);
            let mut changes = Vec::with_capacity(unique.len());
            let mut touched = Vec::with_capacity(unique.len());
            for (hash, rel) in unique {
                let tuple = rel.tuple_ref();
                let earlier = newest
                    .find(hash, |&(h, s, c)| {
                        h == hash
                            && sets[s as usize].changes[c as usize]
                                .relationship
                                .tuple_ref()
                                == tuple
                    })
                    .map(|&(_, s, c)| {
                        let set = &sets[s as usize];
                        (set.revision, set.changes[c as usize].relationship.clone())
                    });
                let live = match earlier {
                    Some(found) => Some(found),
                    None if empty => None,
                    None => self.live_version(&rel)?,
                };
                match live {
                    Some((_, stored)) if stored == rel => continue,
                    Some((created, stored)) => {
                        ended.push(Ended {
                            set,
                            change: changes.len(),
                            created,
                        });
                        changes.push(Change {
                            op: ChangeOp::Delete,
                            relationship: stored,
                        });
                    }
                    None => {}
                }
                touched.push((hash, changes.len()));
                changes.push(Change {
                    op: ChangeOp::Touch,
                    relationship: rel,
                });
            }
            sets.push(ChangeSet { revision, changes });
            let too_large = || StoreError::Io("an import of more than 2^32 chunks".into());
            let set_at = u32::try_from(set).map_err(|_| too_large())?;
            for (hash, change) in touched {
                let tuple = sets[set].changes[change].relationship.tuple_ref();
                let change_at = u32::try_from(change).map_err(|_| too_large())?;
                match newest.find_mut(hash, |&(h, s, c)| {
                    h == hash
                        && sets[s as usize].changes[c as usize]
                            .relationship
                            .tuple_ref()
                            == tuple
                }) {
                    Some(slot) => *slot = (hash, set_at, change_at),
                    None => {
                        newest.insert_unique(hash, (hash, set_at, change_at), |&(h, _, _)| h);
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes planned change sets: the marker, both indexes (one on a second thread),
    /// the change log and revision records, then the head (see the module docs).
    fn write_import(
        &self,
        writer: &mut super::Writer,
        sets: &[ChangeSet],
        runs: [Vec<Run>; 2],
        first: Revision,
        last: Revision,
    ) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let mut marker = keys::encode_u64(first.0).to_vec();
        marker.extend_from_slice(&keys::encode_filter(&RelationshipFilter::default()));
        let mut ops = vec![Op {
            tree: TreeSlot::Meta,
            key: keys::META_PENDING.to_vec(),
            value: Some(marker),
        }];
        // The marks go in the marker's commit, before any version they cover.
        let expiring = sets
            .iter()
            .flat_map(|set| &set.changes)
            .filter(|it| it.op == ChangeOp::Touch)
            .fold(None, |it, change| {
                earliest(it, change.relationship.expiration)
            });
        let ended = sets
            .iter()
            .find(|set| set.changes.iter().any(|it| it.op == ChangeOp::Delete))
            .map(|set| set.revision);
        if let Some(newest) = sets
            .iter()
            .rev()
            .find(|set| set.changes.iter().any(|it| it.op == ChangeOp::Delete))
        {
            self.marks.will_end_through(newest.revision);
        }
        let note = self.marks.note(expiring, ended, &mut ops);
        self.commit(&ops)?;
        self.marks.committed(note);
        let [resource, subject] = runs;
        let time = now_millis().max(writer.last_time);
        if self.by_resource.is_empty() && self.by_subject.is_empty() {
            // Both indexes at once, the change log after the resource index: a crash may
            // leave subject entries the resource index lacks, which the rollback removes
            // too (`write::roll_back_pending`).
            std::thread::scope(|scope| {
                let subject = scope.spawn(|| {
                    self.write_index(TreeSlot::BySubject, &self.by_subject, subject)?;
                    tracing::debug!(elapsed = ?started.elapsed(), "import: subject written");
                    Ok::<(), StoreError>(())
                });
                self.write_index(TreeSlot::ByResource, &self.by_resource, resource)?;
                tracing::debug!(elapsed = ?started.elapsed(), "import: resource written");
                self.write_log(sets, time)?;
                subject
                    .join()
                    .map_err(|_| StoreError::Io("the import's writing thread panicked".into()))?
            })?;
        } else {
            // One after the other: entries merged into existing blocks may move (which
            // readers track one commit at a time, `blocks::Layout`), and the rollback
            // finds the versions an import ended through the resource index.
            self.write_index(TreeSlot::ByResource, &self.by_resource, resource)?;
            self.write_index(TreeSlot::BySubject, &self.by_subject, subject)?;
            self.write_log(sets, time)?;
        }
        tracing::debug!(elapsed = ?started.elapsed(), "import: change log written");
        let ops: Vec<RawOp> = vec![
            (
                TreeSlot::Meta,
                keys::META_HEAD.to_vec(),
                Some(keys::encode_u64(last.0).to_vec()),
            ),
            (
                TreeSlot::Meta,
                keys::META_MARKS_HEAD.to_vec(),
                Some(keys::encode_u64(last.0).to_vec()),
            ),
            (TreeSlot::Meta, keys::META_PENDING.to_vec(), None),
        ];
        self.commit_raw(&ops, false)?;
        writer.last_time = time;
        Ok(())
    }

    /// Writes the change log and the revision records of `sets`, committed at `time`
    /// (under the import's marker: a crash before its last commit rolls them back).
    fn write_log(&self, sets: &[ChangeSet], time: u64) -> Result<(), StoreError> {
        for part in sets.chunks(RECORDS_PER_TRANSACTION) {
            let mut changes = ::sled::Batch::default();
            let mut revisions = ::sled::Batch::default();
            for set in part {
                if !set.changes.is_empty() {
                    changes.insert(
                        &keys::change_key(set.revision, 0),
                        keys::encode_changes(
                            set.changes.iter().map(|it| (it.op, &it.relationship)),
                        ),
                    );
                }
                revisions.insert(&keys::encode_u64(set.revision.0), &keys::encode_u64(time));
            }
            self.changes.apply_batch(changes).map_err(super::io)?;
            self.revisions.apply_batch(revisions).map_err(super::io)?;
        }
        Ok(())
    }

    /// Writes the merge of `runs` (later runs win on equal keys) into `tree`: straight
    /// into new blocks when the tree is empty, else merged into its blocks a bounded
    /// number of blocks per transaction.
    fn write_index(
        &self,
        slot: TreeSlot,
        tree: &::sled::Tree,
        runs: Vec<Run>,
    ) -> Result<(), StoreError> {
        let bound: usize = runs.iter().map(Run::len).sum();
        let mut sink = if tree.is_empty() {
            Sink::Fresh {
                tree,
                blocks: Blocks::new(bound),
                batch: ::sled::Batch::default(),
                in_batch: 0,
            }
        } else {
            Sink::Merge {
                inner: self,
                slot,
                tree,
                chunk: Vec::with_capacity(MERGE_CHUNK.min(bound)),
            }
        };
        let mut cursors = runs
            .iter()
            .map(Run::cursor)
            .collect::<Result<Vec<_>, StoreError>>()?;
        cursors.retain(|it| !it.done);
        if let [only] = cursors.as_mut_slice() {
            while !only.done {
                sink.push(only.key(), only.value())?;
                only.advance()?;
            }
            return sink.finish();
        }
        loop {
            // The least key; on a tie the later run (a later pass) wins.
            let mut best: Option<usize> = None;
            for (at, cursor) in cursors.iter().enumerate() {
                if !cursor.done && best.is_none_or(|best| cursor.key() <= cursors[best].key()) {
                    best = Some(at);
                }
            }
            let Some(best) = best else {
                return sink.finish();
            };
            sink.push(cursors[best].key(), cursors[best].value())?;
            for at in 0..cursors.len() {
                if at != best && !cursors[at].done && cursors[at].key() == cursors[best].key() {
                    cursors[at].advance()?;
                }
            }
            cursors[best].advance()?;
        }
    }
}

/// Entries handed to `blocks::plan` at a time when an import merges into existing blocks.
const MERGE_CHUNK: usize = 65_536;

/// Where [`Inner::write_index`] puts the merged entries.
enum Sink<'a> {
    /// An empty tree: new blocks, written in batches (the import's marker covers them).
    Fresh {
        tree: &'a ::sled::Tree,
        blocks: Blocks,
        batch: ::sled::Batch,
        in_batch: usize,
    },
    /// A tree with blocks: merged into them through `blocks::plan`.
    Merge {
        inner: &'a Inner,
        slot: TreeSlot,
        tree: &'a ::sled::Tree,
        chunk: Vec<keys::Entry>,
    },
}

impl Sink<'_> {
    fn push(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        match self {
            Self::Fresh {
                tree,
                blocks,
                batch,
                in_batch,
            } => {
                if let Some((key, value)) = blocks.push(key, value) {
                    batch.insert(key, value);
                    *in_batch += 1;
                    if *in_batch >= BLOCKS_PER_TRANSACTION {
                        tree.apply_batch(std::mem::take(batch)).map_err(super::io)?;
                        *in_batch = 0;
                    }
                }
            }
            Self::Merge {
                inner,
                slot,
                tree,
                chunk,
            } => {
                chunk.push((key.to_vec(), value.to_vec()));
                if chunk.len() >= MERGE_CHUNK {
                    inner.write_entries(*slot, tree, chunk)?;
                    chunk.clear();
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), StoreError> {
        match &mut self {
            Self::Fresh {
                tree,
                blocks,
                batch,
                ..
            } => {
                if let Some((key, value)) = blocks.finish() {
                    batch.insert(key, value);
                }
                tree.apply_batch(std::mem::take(batch)).map_err(super::io)
            }
            Self::Merge {
                inner,
                slot,
                tree,
                chunk,
            } => inner.write_entries(*slot, tree, chunk),
        }
    }
}

/// Cuts a stream of sorted entries into blocks as `blocks::plan` would cut them all at
/// once: blocks of [`blocks::TARGET`] evenly spread, one block up to [`blocks::MAX`].
struct Blocks {
    encoder: keys::BlockEncoder,
    per_block: usize,
}

impl Blocks {
    /// For at most `bound` entries.
    fn new(bound: usize) -> Self {
        let n_blocks = if bound > blocks::MAX {
            bound.div_ceil(blocks::TARGET)
        } else {
            1
        };
        Self {
            encoder: keys::BlockEncoder::default(),
            per_block: bound.div_ceil(n_blocks).max(1),
        }
    }

    /// Adds an entry; returns a block once one is full.
    fn push(&mut self, key: &[u8], value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        self.encoder.push(key, value);
        (self.encoder.len() >= self.per_block).then(|| self.encoder.finish())
    }

    /// The last block, unless empty.
    fn finish(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        (!self.encoder.is_empty()).then(|| self.encoder.finish())
    }
}

impl Inner {
    /// Writes sorted entries into the blocks of `tree`, a bounded number of blocks per
    /// transaction.
    fn write_entries(
        &self,
        slot: TreeSlot,
        tree: &::sled::Tree,
        entries: &[keys::Entry],
    ) -> Result<(), StoreError> {
        let entries: Vec<blocks::EntryRef<'_>> = entries
            .iter()
            .map(|(key, value)| (key.as_slice(), Some(value.as_slice())))
            .collect();
        let mut done = 0;
        while done < entries.len() {
            let plan = blocks::plan(tree, &entries[done..], BLOCKS_PER_TRANSACTION)?;
            let ops: Vec<RawOp> = plan
                .ops
                .into_iter()
                .map(|(key, value)| (slot, key, value))
                .collect();
            self.commit_raw(&ops, plan.moves)?;
            done += plan.consumed;
        }
        Ok(())
    }
}

/// One pass's entries of one index, sorted, the last of equal keys kept: as built
/// (the last pass) or packed front-coded (earlier passes, to bound the memory).
enum Run {
    Sorted {
        entries: Entries,
        order: Vec<usize>,
    },
    Packed {
        first: Vec<u8>,
        bytes: Vec<u8>,
        len: usize,
    },
}

impl Run {
    /// The entries of the change sets and ended versions planned since `from` (set,
    /// ended), sorted; packed when `pack` is set.
    fn sort(index: Index, planned: &Planned, from: (usize, usize), pack: bool) -> Self {
        let entries = Entries::build(index, &planned.sets, from.0, &planned.ended[from.1..]);
        let order = entries.order();
        if !pack {
            return Self::Sorted { entries, order };
        }
        let mut encoder = keys::BlockEncoder::default();
        for &at in &order {
            let (key, value) = entries.entry(at);
            encoder.push(key, value);
        }
        let len = encoder.len();
        let (first, bytes) = encoder.finish();
        Self::Packed { first, bytes, len }
    }

    fn len(&self) -> usize {
        match self {
            Self::Sorted { order, .. } => order.len(),
            Self::Packed { len, .. } => *len,
        }
    }

    /// A cursor on the first entry.
    fn cursor(&self) -> Result<Cursor<'_>, StoreError> {
        let mut cursor = match self {
            Self::Sorted { entries, order } => Cursor {
                source: Source::Sorted {
                    entries,
                    order,
                    at: 0,
                },
                done: false,
            },
            Self::Packed { first, bytes, .. } => Cursor {
                source: Source::Packed(keys::EntryCursor::new(first, bytes)),
                done: false,
            },
        };
        cursor.start()?;
        Ok(cursor)
    }
}

/// Reads one [`Run`] in order.
struct Cursor<'a> {
    source: Source<'a>,
    /// Past the last entry.
    done: bool,
}

enum Source<'a> {
    Sorted {
        entries: &'a Entries,
        order: &'a [usize],
        /// The current position in `order`.
        at: usize,
    },
    Packed(keys::EntryCursor<'a>),
}

impl Cursor<'_> {
    fn start(&mut self) -> Result<(), StoreError> {
        self.done = match &mut self.source {
            Source::Sorted { order, .. } => order.is_empty(),
            Source::Packed(cursor) => !cursor.advance().map_err(super::corrupt)?,
        };
        Ok(())
    }

    fn advance(&mut self) -> Result<(), StoreError> {
        self.done = match &mut self.source {
            Source::Sorted { order, at, .. } => {
                *at += 1;
                *at >= order.len()
            }
            Source::Packed(cursor) => !cursor.advance().map_err(super::corrupt)?,
        };
        Ok(())
    }

    /// The current entry's key (the cursor is not done).
    fn key(&self) -> &[u8] {
        match &self.source {
            Source::Sorted { entries, order, at } => entries.entry(order[*at]).0,
            Source::Packed(cursor) => cursor.key(),
        }
    }

    fn value(&self) -> &[u8] {
        match &self.source {
            Source::Sorted { entries, order, at } => entries.entry(order[*at]).1,
            Source::Packed(cursor) => cursor.value(),
        }
    }
}

/// The entries of one index an import writes, in one buffer: every new version's key and
/// value, then every ended version's key and value (so that, sorted with ties in this
/// order, an ended version's value wins over its touch earlier in the same import).
struct Entries {
    bytes: Vec<u8>,
    /// Start of the key, length of the key, length of the value that follows it.
    spans: Vec<(usize, usize, usize)>,
}

impl Entries {
    /// The entries of `sets[from..]` and of `ended` (which end versions in those sets).
    fn build(index: Index, sets: &[ChangeSet], from: usize, ended: &[Ended]) -> Self {
        let n = sets[from..]
            .iter()
            .map(|it| it.changes.len())
            .sum::<usize>();
        let mut res = Self {
            bytes: Vec::with_capacity(n * 64),
            spans: Vec::with_capacity(n),
        };
        for set in &sets[from..] {
            for change in set.changes.iter().filter(|it| it.op == ChangeOp::Touch) {
                res.push(index, &change.relationship, set.revision, LIVE);
            }
        }
        for it in ended {
            let set = &sets[it.set];
            res.push(
                index,
                &set.changes[it.change].relationship,
                it.created,
                set.revision.0,
            );
        }
        res
    }

    fn push(&mut self, index: Index, rel: &Relationship, created: Revision, deleted: u64) {
        let start = self.bytes.len();
        keys::push_tuple(&mut self.bytes, index, rel);
        self.bytes.extend_from_slice(&keys::encode_u64(created.0));
        let key_len = self.bytes.len() - start;
        keys::push_version_value(&mut self.bytes, deleted, rel);
        self.spans
            .push((start, key_len, self.bytes.len() - start - key_len));
    }

    fn key(&self, at: usize) -> &[u8] {
        let (start, key_len, _) = self.spans[at];
        &self.bytes[start..start + key_len]
    }

    /// The positions of the entries in key order, the last of equal keys kept: a sort of
    /// the keys' first 32 bytes (two integers) with the position, comparing whole keys
    /// only on equal prefixes (keys differ within 32 bytes but for the rare long names).
    fn order(&self) -> Vec<usize> {
        let prefix = |key: &[u8], from: usize| {
            let mut bytes = [0_u8; 16];
            let part = key.get(from..).unwrap_or_default();
            let n = part.len().min(16);
            bytes[..n].copy_from_slice(&part[..n]);
            u128::from_be_bytes(bytes)
        };
        let mut order: Vec<(u128, u128, usize)> = (0..self.spans.len())
            .map(|at| {
                let key = self.key(at);
                (prefix(key, 0), prefix(key, 16), at)
            })
            .collect();
        order.sort_unstable_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then_with(|| self.key(a.2).cmp(self.key(b.2)))
                .then(a.2.cmp(&b.2))
        });
        let mut res: Vec<usize> = Vec::with_capacity(order.len());
        let mut previous = None;
        for (high, low, at) in order {
            match res.last_mut() {
                Some(last) if previous == Some((high, low)) && self.key(*last) == self.key(at) => {
                    *last = at;
                }
                _ => res.push(at),
            }
            previous = Some((high, low));
        }
        res
    }

    /// The key and value of entry `at`.
    fn entry(&self, at: usize) -> (&[u8], &[u8]) {
        let (start, key_len, value_len) = self.spans[at];
        (
            &self.bytes[start..start + key_len],
            &self.bytes[start + key_len..start + key_len + value_len],
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::{SledStore, Store};

    fn rels(texts: impl IntoIterator<Item = String>) -> Vec<Relationship> {
        texts.into_iter().map(|it| it.parse().unwrap()).collect()
    }

    /// Every entry of both index trees, decoded from the blocks.
    fn entries(inner: &Inner) -> [Vec<keys::Entry>; 2] {
        [&inner.by_resource, &inner.by_subject].map(|tree| {
            let mut res = Vec::new();
            blocks::walk(tree, &inner.layout, b"", &mut |key, value| {
                res.push((key.to_vec(), value.to_vec()));
                Ok(true)
            })
            .unwrap();
            res
        })
    }

    /// An import cut into passes of any size gives the same change sets and the same
    /// entries as one pass, into an empty store (blocks written fresh) and into one with
    /// data (merged into its blocks); the live tuples are the last of each in the input.
    #[test]
    fn issue14_passes_of_any_size_import_like_one() {
        // Tuples repeat 1,700 apart, every third one with an expiration: repeats with
        // other conditions end the version an earlier pass created.
        let input = rels((0..4_000).map(|n| {
            let at = n % 1_700;
            let expiration = if n % 3 == 0 {
                "[expiration:2999-01-01T00:00:00Z]"
            } else {
                ""
            };
            format!("doc:i{at}#viewer@user:u{}{expiration}", at % 7)
        }));
        // (what the store holds before)
        for before in [
            vec![],
            rels((0..900).map(|n| format!("doc:i{}#viewer@user:u{}", n * 2, (n * 2) % 7))),
        ] {
            let mut reference = None;
            for pass in [usize::MAX, 1, 449, 450, 1_000, 3_999] {
                let store = SledStore::temporary().unwrap();
                let inner = store.inner().unwrap();
                store.import(&mut before.clone().into_iter()).unwrap();
                let sets = inner
                    .import_in_passes(&mut input.clone().into_iter(), pass)
                    .unwrap();
                let got = (sets, entries(&inner));
                match &reference {
                    None => reference = Some(got),
                    Some(reference) => {
                        assert!(got == *reference, "pass {pass}, {} before", before.len())
                    }
                }
                let mut model = BTreeMap::new();
                for rel in before.iter().chain(&input) {
                    model.insert(rel.tuple(), rel.clone());
                }
                let mut live = Vec::new();
                store.for_each_live(&mut |rel| live.push(rel)).unwrap();
                live.sort_by_key(|it| it.tuple());
                let model: Vec<Relationship> = model.into_values().collect();
                assert_eq!(live, model, "pass {pass}, {} before", before.len());
            }
        }
    }
}
