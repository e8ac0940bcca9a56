//! The write paths of [`SledStore`](super::SledStore): batches with preconditions,
//! deletes by filter (atomic at one revision across chunks, rolled back at open if a crash
//! interrupted them), and schema replacement.
//!
//! Every path runs its scans and checks under the writer mutex *before* its transaction,
//! so nothing changes in between, and hands prepared ops to [`Inner::commit`].

use super::marks::earliest;
use super::{Inner, Op, TreeSlot, blocks, corrupt, io};
use crate::model::{Relationship, Revision};
use crate::store::keys::{self, Index, LIVE};
use crate::store::{
    CHUNK_SIZE, Change, ChangeOp, ChangeSet, Precondition, PreconditionOp, RelationshipFilter,
    StoreError, Update, UpdateOp, WriteRejection,
};

/// Stray subject-index versions a rollback removes per transaction.
const STRAY_CHUNK: usize = 16_384;

impl Inner {
    pub(super) fn write(
        &self,
        updates: &[Update],
        preconditions: &[Precondition],
    ) -> Result<Result<ChangeSet, WriteRejection>, StoreError> {
        if let Err(rejection) = crate::store::check_batch(updates, preconditions)? {
            return Ok(Err(rejection));
        }
        let mut writer = self.writer.lock();
        let head = writer.head;
        for (index, precondition) in preconditions.iter().enumerate() {
            if let Some(reason) = self.failed_precondition(precondition, head)? {
                return Ok(Err(WriteRejection::PreconditionFailed { index, reason }));
            }
        }
        let revision = Revision(head.0 + 1);
        let mut ops = Vec::with_capacity(updates.len() * 2 + 5);
        let mut changes = Vec::new();
        let (mut expiring, mut ends) = (None, false);
        for update in updates {
            let rel = &update.relationship;
            let live = self.live_version(rel)?;
            match (update.op, live) {
                (UpdateOp::Create, Some(_)) => {
                    return Ok(Err(WriteRejection::AlreadyExists(rel.clone())));
                }
                (UpdateOp::Touch, Some((_, stored))) if stored == *rel => {}
                (UpdateOp::Create | UpdateOp::Touch, None) => {
                    expiring = earliest(expiring, rel.expiration);
                    Self::touch_ops(rel, revision, &mut ops, &mut changes);
                }
                (UpdateOp::Touch, Some((created, stored))) => {
                    // Other conditions: the stored version ends and a new one begins.
                    expiring = earliest(expiring, rel.expiration);
                    ends = true;
                    Self::delete_ops(stored, created, revision, &mut ops, &mut changes);
                    Self::touch_ops(rel, revision, &mut ops, &mut changes);
                }
                (UpdateOp::Delete, Some((created, stored))) => {
                    ends = true;
                    Self::delete_ops(stored, created, revision, &mut ops, &mut changes);
                }
                (UpdateOp::Delete, None) => {}
            }
        }
        // The marks go in the same commit as the versions they cover.
        let note = self
            .marks
            .note(expiring, ends.then_some(revision), &mut ops);
        let res = self.commit_revision(&mut writer, revision, ops, changes, note);
        res.map(Ok)
    }

    /// `Some(reason)` if `precondition` does not hold at `head`.
    fn failed_precondition(
        &self,
        precondition: &Precondition,
        head: Revision,
    ) -> Result<Option<String>, StoreError> {
        let mut example = None;
        self.scan_live(&precondition.filter, head, None, &mut |rel| {
            example = Some(rel);
            false
        })?;
        Ok(match (precondition.op, example) {
            (PreconditionOp::MustExist, None) => {
                Some("no relationship matches the must_exist filter".to_string())
            }
            (PreconditionOp::MustNotExist, Some(rel)) => Some(format!(
                "relationship `{rel}` matches the must_not_exist filter"
            )),
            _ => None,
        })
    }

    /// A new live version of `rel` created at `revision`, and its change.
    fn touch_ops(
        rel: &Relationship,
        revision: Revision,
        ops: &mut Vec<Op>,
        changes: &mut Vec<Change>,
    ) {
        Self::version_ops(rel, revision, LIVE, ops);
        changes.push(Change {
            op: ChangeOp::Touch,
            relationship: rel.clone(),
        });
    }

    /// Ends the stored version `stored` (created at `created`) at `revision`, keeping its
    /// caveat and expiration, and its change.
    fn delete_ops(
        stored: Relationship,
        created: Revision,
        revision: Revision,
        ops: &mut Vec<Op>,
        changes: &mut Vec<Change>,
    ) {
        Self::version_ops(&stored, created, revision.0, ops);
        changes.push(Change {
            op: ChangeOp::Delete,
            relationship: stored,
        });
    }

    /// The created-at revision and the stored relationship (with its caveat and
    /// expiration) of the live version of `rel`'s tuple, if it is live. Only the writer
    /// calls this, so nothing changes the answer before its commit.
    pub(super) fn live_version(
        &self,
        rel: &Relationship,
    ) -> Result<Option<(Revision, Relationship)>, StoreError> {
        let prefix = keys::tuple_prefix(Index::Resource, rel);
        let mut res = None;
        blocks::walk(
            &self.by_resource,
            &self.layout,
            &prefix,
            &mut |key, value| {
                let Some(created) = key.strip_prefix(prefix.as_slice()) else {
                    return Ok(false);
                };
                let mut stored = rel.tuple();
                if keys::decode_version_value(value, &mut stored).map_err(corrupt)? == LIVE {
                    let created = Revision(keys::decode_u64(created).map_err(corrupt)?);
                    res = Some((created, stored));
                    return Ok(false);
                }
                Ok(true)
            },
        )?;
        Ok(res)
    }

    pub(super) fn delete_by_filter(
        &self,
        filter: &RelationshipFilter,
        limit: usize,
    ) -> Result<ChangeSet, StoreError> {
        let limit = if limit == 0 { usize::MAX } else { limit };
        let mut writer = self.writer.lock();
        let head = writer.head;
        let revision = Revision(head.0 + 1);
        let mut doomed = Vec::new();
        self.scan_versions(filter, &mut |rel, created, deleted| {
            if created <= head && deleted == LIVE {
                doomed.push((rel, created));
            }
            doomed.len() < limit
        })?;
        let n_chunks = doomed.len().div_ceil(CHUNK_SIZE).max(1);
        let mut changes = Vec::with_capacity(doomed.len());
        let mut chunks = doomed.chunks(CHUNK_SIZE);
        for part in 0..n_chunks {
            let chunk = chunks.next().unwrap_or_default();
            let mut ops = Vec::with_capacity(chunk.len() * 2 + 5);
            // Every chunk ends versions at `revision`: the first one lowers the mark.
            let note = if part == 0 && !doomed.is_empty() {
                self.marks.note(None, Some(revision), &mut ops)
            } else {
                Default::default()
            };
            let first_change = changes.len();
            for (rel, created) in chunk {
                Self::version_ops(rel, *created, revision.0, &mut ops);
                changes.push(Change {
                    op: ChangeOp::Delete,
                    relationship: rel.clone(),
                });
            }
            // INVARIANT: part < n_chunks, which is at most doomed.len() / CHUNK_SIZE + 1.
            let part_u32 = u32::try_from(part).unwrap_or(u32::MAX);
            Self::change_ops(revision, part_u32, &changes[first_change..], &mut ops);
            let last = part + 1 == n_chunks;
            if n_chunks > 1 && part == 0 {
                let mut pending = keys::encode_u64(revision.0).to_vec();
                pending.extend_from_slice(&keys::encode_filter(filter));
                ops.push(Op {
                    tree: TreeSlot::Meta,
                    key: keys::META_PENDING.to_vec(),
                    value: Some(pending),
                });
            }
            if last {
                if n_chunks > 1 {
                    ops.push(Op {
                        tree: TreeSlot::Meta,
                        key: keys::META_PENDING.to_vec(),
                        value: None,
                    });
                }
                Self::revision_ops(&mut writer, revision, &mut ops);
            }
            self.commit(&ops)?;
            self.marks.committed(note);
        }
        writer.head = revision;
        self.flush_if_durable()?;
        self.publish(revision);
        Ok(ChangeSet { revision, changes })
    }

    /// Undoes a delete by filter that did not finish (see the module docs).
    pub(super) fn roll_back_pending(&self) -> Result<(), StoreError> {
        let Some(pending) = self.meta.get(keys::META_PENDING).map_err(io)? else {
            return Ok(());
        };
        let (revision, filter) = pending.split_at_checked(8).ok_or(StoreError::Corrupt(
            "undecodable pending delete".to_string(),
        ))?;
        let revision = keys::decode_u64(revision).map_err(corrupt)?;
        let filter = keys::decode_filter(filter).map_err(corrupt)?;
        // Versions deleted at or after the unfinished revision become live again; versions
        // created at or after it (a sync, see `sync.rs`, or an import, `import.rs`) are
        // removed. Nothing was committed after it: the head never moved past it.
        let mut marked = Vec::new();
        self.scan_versions(&filter, &mut |rel, created, deleted| {
            if (deleted != LIVE && deleted >= revision) || created.0 >= revision {
                marked.push((rel, created));
            }
            true
        })?;
        // Versions that become live again may expire: mark it before they do.
        let mut ops = Vec::new();
        let note = self.marks.before_revival(&mut ops);
        if !ops.is_empty() {
            self.commit(&ops)?;
            self.marks.committed(note);
        }
        for chunk in marked.chunks(CHUNK_SIZE) {
            let mut ops = Vec::with_capacity(chunk.len() * 2);
            for (rel, created) in chunk {
                if created.0 >= revision {
                    for (tree, index) in [
                        (TreeSlot::ByResource, Index::Resource),
                        (TreeSlot::BySubject, Index::Subject),
                    ] {
                        ops.push(Op {
                            tree,
                            key: keys::version_key(index, rel, *created),
                            value: None,
                        });
                    }
                } else {
                    Self::version_ops(rel, *created, LIVE, &mut ops);
                }
            }
            self.commit(&ops)?;
        }
        // An import into empty trees writes both indexes at once (`import.rs`), so the
        // subject index may hold versions the resource index does not have yet.
        let mut stray = Vec::new();
        blocks::walk(&self.by_subject, &self.layout, b"", &mut |key, _| {
            if keys::decode_created(key).map_err(corrupt)?.0 >= revision {
                stray.push(key.to_vec());
            }
            Ok(true)
        })?;
        for chunk in stray.chunks(STRAY_CHUNK) {
            let ops: Vec<Op> = chunk
                .iter()
                .map(|key| Op {
                    tree: TreeSlot::BySubject,
                    key: key.clone(),
                    value: None,
                })
                .collect();
            self.commit(&ops)?;
        }
        let mut ops = Vec::new();
        for item in self
            .changes
            .range(keys::change_key(Revision(revision), 0)..)
        {
            let (key, _) = item.map_err(io)?;
            ops.push(Op {
                tree: TreeSlot::Changes,
                key: key.to_vec(),
                value: None,
            });
        }
        for item in self.revisions.range(keys::encode_u64(revision)..) {
            let (key, _) = item.map_err(io)?;
            ops.push(Op {
                tree: TreeSlot::Revisions,
                key: key.to_vec(),
                value: None,
            });
        }
        ops.push(Op {
            tree: TreeSlot::Meta,
            key: keys::META_PENDING.to_vec(),
            value: None,
        });
        self.commit(&ops)?;
        self.db.flush().map_err(io)?;
        tracing::warn!(
            revision,
            "rolled back an unfinished delete by filter, sync or import"
        );
        Ok(())
    }

    pub(super) fn write_schema(&self, text: &str) -> Result<Revision, StoreError> {
        let mut writer = self.writer.lock();
        let revision = Revision(writer.head.0 + 1);
        let ops = vec![
            Op {
                tree: TreeSlot::Meta,
                key: keys::META_SCHEMA.to_vec(),
                value: Some(text.as_bytes().to_vec()),
            },
            Op {
                tree: TreeSlot::Meta,
                key: keys::META_SCHEMA_REVISION.to_vec(),
                value: Some(keys::encode_u64(revision.0).to_vec()),
            },
        ];
        self.commit_revision(&mut writer, revision, ops, Vec::new(), Default::default())
            .map(|it| it.revision)
    }
}
