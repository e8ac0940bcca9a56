//! The read paths of [`SledStore`](super::SledStore): prefix scans of the two indexes
//! filtered by revision, paged reads, forward and reverse reads, and the change log.
//!
//! sled has no snapshots, so every read filters versions by `created <= R < deleted` and
//! then re-checks that the collector has not raised the horizon past `R` meanwhile.

use std::sync::atomic::Ordering;

use super::{Inner, blocks, corrupt, io};
use crate::model::{ObjectRef, Relationship, Revision, SubjectRef};
use crate::store::keys::{self, Index};
use crate::store::{Change, ChangeSet, Page, RelationshipFilter, StoreError};

/// Whether a version created at `created` and deleted at `deleted` is live at `at`.
fn visible(created: Revision, deleted: u64, at: Revision) -> bool {
    created <= at && at.0 < deleted
}

impl Inner {
    /// Fails unless `at` is between the oldest readable revision and the watermark.
    fn check_readable(&self, at: Revision) -> Result<(), StoreError> {
        let head = Revision(self.watermark.load(Ordering::Acquire));
        if at > head {
            return Err(StoreError::RevisionAhead {
                requested: at,
                head,
            });
        }
        let oldest = Revision(self.oldest.load(Ordering::Acquire));
        if at < oldest {
            return Err(StoreError::RevisionExpired {
                requested: at,
                oldest,
            });
        }
        Ok(())
    }

    /// Calls `f` with every version matching `filter` (any revision) and its created-at
    /// and deleted-at revisions, until `f` returns false.
    pub(super) fn scan_versions(
        &self,
        filter: &RelationshipFilter,
        f: &mut dyn FnMut(Relationship, Revision, u64) -> bool,
    ) -> Result<(), StoreError> {
        self.scan_index(filter, None, None, f)
    }

    /// Calls `f` with every relationship matching `filter` live at `at`, in the key order of
    /// the index serving `filter`, starting after `after`, until `f` returns false.
    pub(super) fn scan_live(
        &self,
        filter: &RelationshipFilter,
        at: Revision,
        after: Option<&Relationship>,
        f: &mut dyn FnMut(Relationship) -> bool,
    ) -> Result<(), StoreError> {
        self.scan_index(filter, after, Some(at), &mut |rel, _, _| f(rel))
    }

    /// Calls `f` with every version matching `filter` after `after` (visible at `at`, when
    /// given) in key order, until `f` returns false. Invisible versions are skipped from
    /// their revisions alone, before their names are decoded, and a filter the key prefix
    /// already decides is not checked per key: the scan of a whole index at the head
    /// ([`Store::for_each_live`](crate::store::Store::for_each_live)) decodes only what
    /// it hands out.
    fn scan_index(
        &self,
        filter: &RelationshipFilter,
        after: Option<&Relationship>,
        at: Option<Revision>,
        f: &mut dyn FnMut(Relationship, Revision, u64) -> bool,
    ) -> Result<(), StoreError> {
        let (index, prefix) = keys::index_for(filter);
        let tree = match index {
            Index::Resource => &self.by_resource,
            Index::Subject => &self.by_subject,
        };
        // Every version of `after` is its tuple prefix plus 8 revision bytes, so starting
        // at the prefix padded with 0xff (and one byte more) skips all of them.
        let start = match after {
            Some(rel) => {
                let mut key = keys::tuple_prefix(index, rel);
                key.extend_from_slice(&[0xff; 8]);
                key.push(0);
                key.max(prefix.clone())
            }
            None => prefix.clone(),
        };
        let match_each = *filter != RelationshipFilter::default();
        blocks::walk(tree, &self.layout, &start, &mut |key, value| {
            if !key.starts_with(&prefix) {
                return Ok(false);
            }
            if let Some(at) = at {
                let created = keys::decode_created(key).map_err(corrupt)?;
                let deleted = keys::decode_deleted(value).map_err(corrupt)?;
                if !visible(created, deleted, at) {
                    return Ok(true);
                }
            }
            let (mut rel, created) = keys::decode_version_key(index, key).map_err(corrupt)?;
            if match_each && !filter.matches(&rel) {
                return Ok(true);
            }
            let deleted = keys::decode_version_value(value, &mut rel).map_err(corrupt)?;
            Ok(f(rel, created, deleted))
        })
    }

    /// Like [`Inner::scan_live`] for readers: checks `at` before and after the scan.
    fn read_live(
        &self,
        filter: &RelationshipFilter,
        at: Revision,
        after: Option<&Relationship>,
        f: &mut dyn FnMut(Relationship) -> bool,
    ) -> Result<(), StoreError> {
        self.check_readable(at)?;
        self.scan_live(filter, at, after, f)?;
        // The collector raises the horizon before it removes anything: if it passed `at`
        // during the scan, the scan may have missed versions.
        self.check_readable(at)
    }

    pub(super) fn read(
        &self,
        filter: &RelationshipFilter,
        at: Revision,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page, StoreError> {
        let after = crate::store::parse_cursor(cursor)?;
        let limit = if limit == 0 { usize::MAX } else { limit };
        let mut relationships = Vec::new();
        let mut more = false;
        self.read_live(filter, at, after.as_ref(), &mut |rel| {
            if relationships.len() == limit {
                more = true;
                return false;
            }
            relationships.push(rel);
            true
        })?;
        let cursor = if more {
            relationships.last().map(|rel| rel.tuple().to_string())
        } else {
            None
        };
        Ok(Page {
            relationships,
            cursor,
        })
    }

    pub(super) fn subjects(
        &self,
        resource: &ObjectRef,
        relation: &str,
        at: Revision,
    ) -> Result<Vec<SubjectRef>, StoreError> {
        let filter = crate::store::resource_filter(resource, relation);
        let mut res = Vec::new();
        self.read_live(&filter, at, None, &mut |rel| {
            res.push(rel.subject);
            true
        })?;
        Ok(res)
    }

    pub(super) fn resources(
        &self,
        subject: &SubjectRef,
        resource_type: Option<&str>,
        relation: Option<&str>,
        at: Revision,
    ) -> Result<Vec<(ObjectRef, String)>, StoreError> {
        let filter = crate::store::subject_filter(subject, resource_type, relation);
        let mut res = Vec::new();
        self.read_live(&filter, at, None, &mut |rel| {
            res.push((rel.resource, rel.relation));
            true
        })?;
        Ok(res)
    }

    pub(super) fn changes_since(
        &self,
        since: Revision,
        limit: usize,
    ) -> Result<Vec<ChangeSet>, StoreError> {
        self.check_readable(since)?;
        let head = Revision(self.watermark.load(Ordering::Acquire));
        let limit = if limit == 0 { usize::MAX } else { limit };
        let mut res: Vec<ChangeSet> = Vec::new();
        let start = keys::change_key(Revision(since.0.saturating_add(1)), 0);
        for item in self.changes.range(start..) {
            let (key, value) = item.map_err(io)?;
            let (revision, _) = keys::decode_change_key(&key).map_err(corrupt)?;
            if revision > head {
                break;
            }
            let changes = keys::decode_changes(&value)
                .map_err(corrupt)?
                .into_iter()
                .map(|(op, relationship)| Change { op, relationship });
            let same_revision = res.last().is_some_and(|last| last.revision == revision);
            if same_revision {
                if let Some(last) = res.last_mut() {
                    last.changes.extend(changes);
                }
            } else if res.len() == limit {
                break;
            } else {
                res.push(ChangeSet {
                    revision,
                    changes: changes.collect(),
                });
            }
        }
        self.check_readable(since)?;
        Ok(res)
    }
}
