//! [`Store::apply_at_one_revision`](crate::store::Store::apply_at_one_revision) on sled:
//! the sync of a permissions file, any number of touches and deletes (and optionally the
//! schema text) at ONE revision.
//!
//! A sled transaction should stay near 1,000 keys (DESIGN §4), so a large sync commits in
//! chunks, the way a delete by filter does: every chunk writes versions created or deleted
//! at the new revision, which no reader can see until the head moves; the first chunk also
//! writes the `pending` marker (with a filter matching everything), and the last chunk
//! writes the schema, the new head and removes the marker, in one transaction. A crash in
//! between leaves the marker; the next open rolls the revision back (versions deleted at it
//! become live again, versions created at it are removed), as `write::roll_back_pending`
//! does for both kinds of pending work.

use rustc_hash::FxHashSet;

use super::marks::earliest;
use super::{Inner, Op, TreeSlot};
use crate::model::{Relationship, Revision};
use crate::store::keys::{self, LIVE};
use crate::store::{
    CHUNK_SIZE, Change, ChangeOp, ChangeSet, RelationshipFilter, StoreError, Update, UpdateOp,
    check_relationship,
};

impl Inner {
    pub(super) fn apply_at_one_revision(
        &self,
        updates: &[Update],
        schema: Option<&str>,
    ) -> Result<ChangeSet, StoreError> {
        for update in updates {
            check_relationship(&update.relationship)?;
        }
        let mut writer = self.writer.lock();
        let revision = Revision(writer.head.0 + 1);
        // Decide every effective change first, under the writer, so nothing moves between.
        let mut planned: Vec<(ChangeOp, Relationship, Revision)> =
            Vec::with_capacity(updates.len());
        let mut seen = FxHashSet::default();
        for update in updates {
            let rel = &update.relationship;
            if !seen.insert(rel.tuple()) {
                continue;
            }
            match (update.op, self.live_version(rel)?) {
                (UpdateOp::Create | UpdateOp::Touch, None) => {
                    planned.push((ChangeOp::Touch, rel.clone(), revision))
                }
                (UpdateOp::Create | UpdateOp::Touch, Some((_, stored))) if stored == *rel => {}
                (UpdateOp::Create | UpdateOp::Touch, Some((created, stored))) => {
                    // Other conditions: the stored version ends and a new one begins.
                    planned.push((ChangeOp::Delete, stored, created));
                    planned.push((ChangeOp::Touch, rel.clone(), revision));
                }
                (UpdateOp::Delete, Some((created, stored))) => {
                    planned.push((ChangeOp::Delete, stored, created))
                }
                (UpdateOp::Delete, None) => {}
            }
        }
        let expiring = planned
            .iter()
            .filter(|(op, ..)| *op == ChangeOp::Touch)
            .fold(None, |it, (_, rel, _)| earliest(it, rel.expiration));
        let ends = planned.iter().any(|(op, ..)| *op == ChangeOp::Delete);
        let n_chunks = planned.len().div_ceil(CHUNK_SIZE).max(1);
        let mut changes = Vec::with_capacity(planned.len());
        let mut chunks = planned.chunks(CHUNK_SIZE);
        for part in 0..n_chunks {
            let chunk = chunks.next().unwrap_or_default();
            let mut ops = Vec::with_capacity(chunk.len() * 2 + 8);
            // The first chunk sets the marks for what every chunk writes.
            let note = if part == 0 {
                self.marks
                    .note(expiring, ends.then_some(revision), &mut ops)
            } else {
                Default::default()
            };
            let first_change = changes.len();
            for (op, rel, created) in chunk {
                match op {
                    ChangeOp::Touch => Self::version_ops(rel, revision, LIVE, &mut ops),
                    ChangeOp::Delete => Self::version_ops(rel, *created, revision.0, &mut ops),
                }
                changes.push(Change {
                    op: *op,
                    relationship: rel.clone(),
                });
            }
            // INVARIANT: part < n_chunks, which is at most planned.len() / CHUNK_SIZE + 1.
            let part_u32 = u32::try_from(part).unwrap_or(u32::MAX);
            Self::change_ops(revision, part_u32, &changes[first_change..], &mut ops);
            let last = part + 1 == n_chunks;
            if n_chunks > 1 && part == 0 {
                let mut pending = keys::encode_u64(revision.0).to_vec();
                pending.extend_from_slice(&keys::encode_filter(&RelationshipFilter::default()));
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
                if let Some(text) = schema {
                    ops.push(Op {
                        tree: TreeSlot::Meta,
                        key: keys::META_SCHEMA.to_vec(),
                        value: Some(text.as_bytes().to_vec()),
                    });
                    ops.push(Op {
                        tree: TreeSlot::Meta,
                        key: keys::META_SCHEMA_REVISION.to_vec(),
                        value: Some(keys::encode_u64(revision.0).to_vec()),
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
}

#[cfg(test)]
mod tests {
    use crate::model::Relationship;
    use crate::store::{RelationshipFilter, SledStore, Store, Update, UpdateOp};

    fn rel(text: &str) -> Relationship {
        text.parse().unwrap()
    }

    fn live(store: &SledStore) -> Vec<String> {
        let head = store.head().unwrap();
        let filter = RelationshipFilter {
            resource_type: Some("doc".to_string()),
            ..Default::default()
        };
        let page = store.read(&filter, head, 0, None).unwrap();
        page.relationships.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_sync_larger_than_one_chunk_lands_at_one_revision_with_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open_path(dir.path()).unwrap();
        store.write_schema("old").unwrap();
        let old: Vec<Update> = (0..700)
            .map(|n| Update {
                op: UpdateOp::Touch,
                relationship: rel(&format!("doc:{n}#viewer@user:a")),
            })
            .collect();
        store.apply_at_one_revision(&old, None).unwrap();
        let before = store.head().unwrap();
        let mut updates: Vec<Update> = (0..300)
            .map(|n| Update {
                op: UpdateOp::Delete,
                relationship: rel(&format!("doc:{n}#viewer@user:a")),
            })
            .collect();
        updates.extend((0..900).map(|n| Update {
            op: UpdateOp::Touch,
            relationship: rel(&format!("doc:{n}#viewer@user:b")),
        }));
        let change_set = store.apply_at_one_revision(&updates, Some("new")).unwrap();
        assert_eq!(change_set.revision.0, before.0 + 1);
        assert_eq!(change_set.changes.len(), 1_200);
        assert_eq!(store.head().unwrap(), change_set.revision);
        assert_eq!(
            store.read_schema().unwrap(),
            Some(("new".to_string(), change_set.revision))
        );
        assert_eq!(live(&store).len(), 400 + 900);
        let at_before = store
            .read(
                &RelationshipFilter {
                    resource_type: Some("doc".to_string()),
                    ..Default::default()
                },
                before,
                0,
                None,
            )
            .unwrap();
        assert_eq!(at_before.relationships.len(), 700);
        drop(store);
        let reopened = SledStore::open_path(dir.path()).unwrap();
        assert_eq!(live(&reopened).len(), 1_300);
    }

    /// A crash after the first chunk of a sync (its versions and the pending marker are
    /// committed, the head is not) is rolled back at open: created versions vanish,
    /// deleted ones are live again, the head and the change log are as before.
    #[test]
    fn an_interrupted_sync_is_rolled_back_at_open() {
        use super::super::{Inner, Op, TreeSlot};
        use crate::model::Revision;
        use crate::store::keys::{self, LIVE};

        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open_path(dir.path()).unwrap();
        let kept = rel("doc:1#viewer@user:a");
        store
            .apply_at_one_revision(
                &[Update {
                    op: UpdateOp::Touch,
                    relationship: kept.clone(),
                }],
                None,
            )
            .unwrap();
        let head = store.head().unwrap();
        let revision = Revision(head.0 + 1);
        let mut ops = Vec::new();
        Inner::version_ops(&rel("doc:2#viewer@user:b"), revision, LIVE, &mut ops);
        Inner::version_ops(&kept, head, revision.0, &mut ops);
        Inner::change_ops(revision, 0, &[], &mut ops);
        let mut pending = keys::encode_u64(revision.0).to_vec();
        pending.extend_from_slice(&keys::encode_filter(&RelationshipFilter::default()));
        ops.push(Op {
            tree: TreeSlot::Meta,
            key: keys::META_PENDING.to_vec(),
            value: Some(pending),
        });
        let inner = store.inner().unwrap();
        inner.commit(&ops).unwrap();
        inner.db.flush().unwrap();
        drop(inner);
        drop(store);

        let reopened = SledStore::open_path(dir.path()).unwrap();
        assert_eq!(reopened.head().unwrap(), head);
        assert_eq!(live(&reopened), [kept.to_string()]);
        assert!(reopened.changes_since(head, 0).unwrap().is_empty());
        // The next sync reuses the revision cleanly.
        let change_set = reopened
            .apply_at_one_revision(
                &[Update {
                    op: UpdateOp::Touch,
                    relationship: rel("doc:3#viewer@user:c"),
                }],
                None,
            )
            .unwrap();
        assert_eq!(change_set.revision, revision);
        assert_eq!(live(&reopened).len(), 2);
    }
}
