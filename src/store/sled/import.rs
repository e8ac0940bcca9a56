//! Bulk import for [`SledStore`](super::SledStore): the whole input becomes change sets of
//! [`CHUNK_SIZE`] relationships, one revision each (what the engine and watch see, the
//! same as a chunk-by-chunk import), and then its entries are sorted per index and written
//! block by block, so that a million relationships cost tens of thousands of block writes
//! rather than two million key writes.
//!
//! An input larger than [`PASS`] relationships is imported in passes of that size, each
//! one as below; a failure or a crash keeps the passes before it.
//!
//! Atomicity: a pass spans several transactions. The first writes the `pending`
//! marker (its first revision, a filter matching everything); the last writes the change
//! log's tail, the new head and removes the marker. Until then no reader sees the new
//! revisions, and a crash leaves the marker, so the next open rolls every version created
//! or deleted at or after the first revision back (`write::roll_back_pending`): a crash
//! during an import leaves the store as it was before it.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use super::{Inner, Op, RawOp, TreeSlot, blocks, now_millis};
use crate::model::{Relationship, Revision};
use crate::store::keys::{self, Index, LIVE};
use crate::store::{
    CHUNK_SIZE, Change, ChangeOp, ChangeSet, RelationshipFilter, StoreError, check_relationship,
};

/// Relationships one pass reads, sorts and writes (all or nothing): bounds the memory of
/// an import (~1 GB at 1M) whatever its size; a larger input is several passes, each
/// merged into the blocks of the ones before.
const PASS: usize = 1_000_000;
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

impl Inner {
    pub(super) fn import(
        &self,
        relationships: &mut dyn Iterator<Item = Relationship>,
    ) -> Result<Vec<ChangeSet>, StoreError> {
        let mut res = Vec::new();
        loop {
            let mut pass = (&mut *relationships).take(PASS).peekable();
            if pass.peek().is_none() {
                return Ok(res);
            }
            res.extend(self.import_pass(&mut pass)?);
        }
    }

    /// One pass of at most [`PASS`] relationships, all or nothing.
    fn import_pass(
        &self,
        relationships: &mut dyn Iterator<Item = Relationship>,
    ) -> Result<Vec<ChangeSet>, StoreError> {
        let mut writer = self.writer.lock();
        let first = Revision(writer.head.0 + 1);
        let (sets, ended) = self.plan_import(relationships, first)?;
        let Some(last) = sets.last().map(|set| set.revision) else {
            return Ok(sets);
        };
        let res = self.write_import(&mut writer, &sets, &ended, first, last);
        if let Err(err) = res {
            // Best effort: undo the transactions that landed (the next open would).
            if let Err(undo) = self.roll_back_pending() {
                tracing::warn!(error = %undo, "could not roll back a failed import");
            }
            return Err(err);
        }
        writer.head = last;
        self.flush_if_durable()?;
        self.publish(last);
        Ok(sets)
    }

    /// Reads the whole input into change sets of [`CHUNK_SIZE`] starting at revision
    /// `first` (touch semantics against the store and the earlier chunks; within a chunk
    /// the last occurrence of a tuple wins, at the position of its first, as
    /// `store::last_of_each_tuple` says), and the stored versions they end.
    fn plan_import(
        &self,
        relationships: &mut dyn Iterator<Item = Relationship>,
        first: Revision,
    ) -> Result<(Vec<ChangeSet>, Vec<Ended>), StoreError> {
        let empty = self.by_resource.is_empty();
        let hasher = FxBuildHasher;
        let hash = |rel: &Relationship| hasher.hash_one(rel.tuple_ref());
        let mut sets: Vec<ChangeSet> = Vec::new();
        let mut ended = Vec::new();
        // The newest version of every tuple this import wrote: (set, change) of its touch.
        let mut newest: HashTable<(usize, usize)> =
            HashTable::with_capacity(relationships.size_hint().0);
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
                    .find(hash, |&(s, c)| {
                        sets[s].changes[c].relationship.tuple_ref() == tuple
                    })
                    .map(|&(s, c)| (sets[s].revision, sets[s].changes[c].relationship.clone()));
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
            for (hash, change) in touched {
                let tuple = sets[set].changes[change].relationship.tuple_ref();
                match newest.find_mut(hash, |&(s, c)| {
                    sets[s].changes[c].relationship.tuple_ref() == tuple
                }) {
                    Some(slot) => *slot = (set, change),
                    None => {
                        newest.insert_unique(hash, (set, change), |&(s, c)| {
                            hasher.hash_one(sets[s].changes[c].relationship.tuple_ref())
                        });
                    }
                }
            }
        }
        Ok((sets, ended))
    }

    /// Writes sorted entries into the blocks of `tree`, a bounded number of blocks per
    /// transaction.
    fn write_entries(
        &self,
        slot: TreeSlot,
        tree: &::sled::Tree,
        entries: &[blocks::EntryRef<'_>],
    ) -> Result<(), StoreError> {
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

    /// Writes planned change sets: the marker, both indexes block by block, the change
    /// log and revision records, then the head (see the module docs).
    fn write_import(
        &self,
        writer: &mut super::Writer,
        sets: &[ChangeSet],
        ended: &[Ended],
        first: Revision,
        last: Revision,
    ) -> Result<(), StoreError> {
        let mut marker = keys::encode_u64(first.0).to_vec();
        marker.extend_from_slice(&keys::encode_filter(&RelationshipFilter::default()));
        self.commit(&[Op {
            tree: TreeSlot::Meta,
            key: keys::META_PENDING.to_vec(),
            value: Some(marker),
        }])?;
        // The subject index is built and sorted on a second thread meanwhile.
        let (subject, order) = std::thread::scope(|scope| {
            let subject = scope.spawn(|| {
                let entries = Entries::build(Index::Subject, sets, ended);
                let order = entries.order();
                (entries, order)
            });
            let resource = Entries::build(Index::Resource, sets, ended);
            let order = resource.order();
            self.write_entries(
                TreeSlot::ByResource,
                &self.by_resource,
                &resource.refs(&order),
            )?;
            subject
                .join()
                .map_err(|_| StoreError::Io("the import's sorting thread panicked".into()))
        })?;
        self.write_entries(TreeSlot::BySubject, &self.by_subject, &subject.refs(&order))?;
        drop((subject, order));
        let time = now_millis().max(writer.last_time);
        let mut ops: Vec<RawOp> = Vec::with_capacity(RECORDS_PER_TRANSACTION + 2);
        for set in sets {
            if !set.changes.is_empty() {
                ops.push((
                    TreeSlot::Changes,
                    keys::change_key(set.revision, 0).to_vec(),
                    Some(keys::encode_changes(
                        set.changes.iter().map(|it| (it.op, &it.relationship)),
                    )),
                ));
            }
            ops.push((
                TreeSlot::Revisions,
                keys::encode_u64(set.revision.0).to_vec(),
                Some(keys::encode_u64(time).to_vec()),
            ));
            if ops.len() >= RECORDS_PER_TRANSACTION && set.revision != last {
                self.commit_raw(&ops, false)?;
                ops.clear();
            }
        }
        ops.push((
            TreeSlot::Meta,
            keys::META_HEAD.to_vec(),
            Some(keys::encode_u64(last.0).to_vec()),
        ));
        ops.push((TreeSlot::Meta, keys::META_PENDING.to_vec(), None));
        self.commit_raw(&ops, false)?;
        writer.last_time = time;
        Ok(())
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
    fn build(index: Index, sets: &[ChangeSet], ended: &[Ended]) -> Self {
        let n = sets.iter().map(|it| it.changes.len()).sum::<usize>();
        let mut res = Self {
            bytes: Vec::with_capacity(n * 64),
            spans: Vec::with_capacity(n),
        };
        for set in sets {
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
    /// 16-byte key prefixes with the position, comparing whole keys only on equal
    /// prefixes.
    fn order(&self) -> Vec<usize> {
        let mut order: Vec<(u128, usize)> = (0..self.spans.len())
            .map(|at| {
                let mut prefix = [0_u8; 16];
                let key = self.key(at);
                let n = key.len().min(16);
                prefix[..n].copy_from_slice(&key[..n]);
                (u128::from_be_bytes(prefix), at)
            })
            .collect();
        order.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| self.key(a.1).cmp(self.key(b.1)))
                .then(a.1.cmp(&b.1))
        });
        let mut res: Vec<usize> = Vec::with_capacity(order.len());
        for (_, at) in order {
            match res.last_mut() {
                Some(last) if self.key(*last) == self.key(at) => *last = at,
                _ => res.push(at),
            }
        }
        res
    }

    /// The entries at `order`, borrowed.
    fn refs(&self, order: &[usize]) -> Vec<blocks::EntryRef<'_>> {
        order
            .iter()
            .map(|&at| {
                let (start, key_len, value_len) = self.spans[at];
                let key = &self.bytes[start..start + key_len];
                let value = &self.bytes[start + key_len..start + key_len + value_len];
                (key, Some(value))
            })
            .collect()
    }
}
