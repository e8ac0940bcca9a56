//! Bulk import for [`SledStore`](super::SledStore): the whole input becomes change sets of
//! [`CHUNK_SIZE`] relationships, one revision each (what the engine and watch see, the
//! same as a chunk-by-chunk import), and then its entries are sorted per index and written
//! block by block, so that a million relationships cost tens of thousands of block writes
//! rather than two million key writes.
//!
//! Atomicity: the import spans several transactions. The first writes the `pending`
//! marker (its first revision, a filter matching everything); the last writes the change
//! log's tail, the new head and removes the marker. Until then no reader sees the new
//! revisions, and a crash leaves the marker, so the next open rolls every version created
//! or deleted at or after the first revision back (`write::roll_back_pending`): a crash
//! during an import leaves the store as it was before it.

use std::hash::BuildHasher;

use rustc_hash::FxBuildHasher;

use super::{Inner, Op, RawOp, TreeSlot, blocks, now_millis};
use crate::model::{Relationship, Revision};
use crate::store::keys::{self, Index, LIVE};
use crate::store::{
    CHUNK_SIZE, Change, ChangeOp, ChangeSet, RelationshipFilter, StoreError, check_relationship,
    last_of_each_tuple,
};

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
    /// `first` (touch semantics against the store and the earlier chunks), and the stored
    /// versions they end.
    fn plan_import(
        &self,
        relationships: &mut dyn Iterator<Item = Relationship>,
        first: Revision,
    ) -> Result<(Vec<ChangeSet>, Vec<Ended>), StoreError> {
        let empty = self.by_resource.is_empty();
        let mut sets: Vec<ChangeSet> = Vec::new();
        let mut ended = Vec::new();
        // The newest version of every tuple this import wrote: (set, change) of its touch.
        let mut newest: hashbrown::HashTable<(usize, usize)> = hashbrown::HashTable::new();
        let hasher = FxBuildHasher;
        loop {
            let chunk: Vec<Relationship> = (&mut *relationships).take(CHUNK_SIZE).collect();
            if chunk.is_empty() {
                break;
            }
            for rel in &chunk {
                check_relationship(rel)?;
            }
            let revision = Revision(first.0 + sets.len() as u64);
            let mut changes = Vec::with_capacity(chunk.len());
            for rel in last_of_each_tuple(chunk) {
                let hash = hasher.hash_one(rel.tuple_ref());
                let earlier = newest
                    .find(hash, |&(set, change)| {
                        sets[set].changes[change].relationship.tuple_ref() == rel.tuple_ref()
                    })
                    .map(|&(set, change)| {
                        let set = &sets[set];
                        (set.revision, set.changes[change].relationship.clone())
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
                            set: sets.len(),
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
                changes.push(Change {
                    op: ChangeOp::Touch,
                    relationship: rel,
                });
            }
            sets.push(ChangeSet { revision, changes });
            let set = sets.len() - 1;
            for (change, it) in sets[set].changes.iter().enumerate() {
                if it.op != ChangeOp::Touch {
                    continue;
                }
                let hash = hasher.hash_one(it.relationship.tuple_ref());
                let tuple = it.relationship.tuple_ref();
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
        for (slot, index, tree) in [
            (TreeSlot::ByResource, Index::Resource, &self.by_resource),
            (TreeSlot::BySubject, Index::Subject, &self.by_subject),
        ] {
            let mut entries = Vec::with_capacity(sets.iter().map(|it| it.changes.len()).sum());
            for set in sets {
                for change in set.changes.iter().filter(|it| it.op == ChangeOp::Touch) {
                    let rel = &change.relationship;
                    entries.push((
                        keys::version_key(index, rel, set.revision),
                        Some(keys::encode_version_value(LIVE, rel)),
                    ));
                }
            }
            for it in ended {
                let set = &sets[it.set];
                let rel = &set.changes[it.change].relationship;
                entries.push((
                    keys::version_key(index, rel, it.created),
                    Some(keys::encode_version_value(set.revision.0, rel)),
                ));
            }
            blocks::sort_changes(&mut entries);
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
        }
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
