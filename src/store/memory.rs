//! [`MemoryStore`]: a plain `BTreeMap` [`Store`] with the same semantics as the sled store
//! (revisions, MVCC versions, rejections, chunked import, change log, collection). It is
//! the model the property tests compare `SledStore` against, and a store for engine tests.
//!
//! It favours obviousness over speed: one lock around everything, linear scans for
//! filtered reads. Nothing survives a drop.

use std::collections::BTreeMap;

use parking_lot::RwLock;

use crate::model::{ObjectRef, Relationship, Revision, SubjectRef};
use crate::store::keys::{self, LIVE};
use crate::store::{
    CHUNK_SIZE, Change, ChangeOp, ChangeSet, Page, Precondition, PreconditionOp,
    RelationshipFilter, Store, StoreError, Update, UpdateOp, WriteRejection, check_relationship,
};

/// The in-memory store.
#[derive(Default)]
pub struct MemoryStore {
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    head: Revision,
    oldest: Revision,
    /// Every version of every tuple (keyed by the bare tuple), oldest first.
    versions: BTreeMap<Relationship, Vec<Version>>,
    /// Effective changes by revision; revisions without changes are absent.
    changes: BTreeMap<Revision, Vec<Change>>,
    schema: Option<(String, Revision)>,
    /// The engine's index image, kept like sled keeps it (tests of reopening).
    index_image: Option<Vec<u8>>,
}

#[derive(Clone)]
struct Version {
    created: Revision,
    /// [`LIVE`] while live.
    deleted: u64,
    /// The relationship with this version's caveat and expiration.
    relationship: Relationship,
}

impl Version {
    fn visible(&self, at: Revision) -> bool {
        self.created <= at && at.0 < self.deleted
    }
}

impl MemoryStore {
    /// An empty store at revision 0.
    pub fn new() -> Self {
        Self::default()
    }
}

impl State {
    /// The live version of `rel`'s tuple, with its caveat and expiration.
    fn live(&self, rel: &Relationship) -> Option<&Relationship> {
        self.versions
            .get(&rel.tuple())?
            .iter()
            .find(|v| v.deleted == LIVE)
            .map(|v| &v.relationship)
    }

    fn is_live(&self, rel: &Relationship) -> bool {
        self.live(rel).is_some()
    }

    /// Live relationships matching `filter` at `at`, in the key order of the index the
    /// sled store would use for `filter`.
    fn matching(&self, filter: &RelationshipFilter, at: Revision) -> Vec<Relationship> {
        let (index, _) = keys::index_for(filter);
        let mut res: Vec<(Vec<u8>, Relationship)> = self
            .versions
            .iter()
            .filter(|(rel, _)| filter.matches(rel))
            .filter_map(|(rel, versions)| {
                let version = versions.iter().find(|v| v.visible(at))?;
                Some((keys::tuple_prefix(index, rel), version.relationship.clone()))
            })
            .collect();
        res.sort();
        res.into_iter().map(|(_, rel)| rel).collect()
    }

    fn check_readable(&self, at: Revision) -> Result<(), StoreError> {
        if at > self.head {
            return Err(StoreError::RevisionAhead {
                requested: at,
                head: self.head,
            });
        }
        if at < self.oldest {
            return Err(StoreError::RevisionExpired {
                requested: at,
                oldest: self.oldest,
            });
        }
        Ok(())
    }

    /// Makes `rel` the live version of its tuple as of `revision`: nothing if it already
    /// is; a replacement (delete, then touch) if the live version has other conditions.
    fn touch(&mut self, rel: &Relationship, revision: Revision, changes: &mut Vec<Change>) {
        match self.live(rel) {
            Some(stored) if stored == rel => return,
            Some(_) => self.delete(rel, revision, changes),
            None => {}
        }
        self.versions.entry(rel.tuple()).or_default().push(Version {
            created: revision,
            deleted: LIVE,
            relationship: rel.clone(),
        });
        changes.push(Change {
            op: ChangeOp::Touch,
            relationship: rel.clone(),
        });
    }

    /// Ends the live version of `rel`'s tuple at `revision`, if there is one.
    fn delete(&mut self, rel: &Relationship, revision: Revision, changes: &mut Vec<Change>) {
        if let Some(versions) = self.versions.get_mut(&rel.tuple()) {
            for version in versions.iter_mut().filter(|v| v.deleted == LIVE) {
                version.deleted = revision.0;
                changes.push(Change {
                    op: ChangeOp::Delete,
                    relationship: version.relationship.clone(),
                });
            }
        }
    }

    fn finish(&mut self, revision: Revision, changes: Vec<Change>) -> ChangeSet {
        self.head = revision;
        if !changes.is_empty() {
            self.changes.insert(revision, changes.clone());
        }
        ChangeSet { revision, changes }
    }
}

impl Store for MemoryStore {
    fn head(&self) -> Result<Revision, StoreError> {
        Ok(self.state.read().head)
    }

    fn oldest_readable(&self) -> Result<Revision, StoreError> {
        Ok(self.state.read().oldest)
    }

    fn write(
        &self,
        updates: &[Update],
        preconditions: &[Precondition],
    ) -> Result<Result<ChangeSet, WriteRejection>, StoreError> {
        if let Err(rejection) = crate::store::check_batch(updates, preconditions)? {
            return Ok(Err(rejection));
        }
        let mut state = self.state.write();
        let head = state.head;
        for (index, precondition) in preconditions.iter().enumerate() {
            let example = state
                .matching(&precondition.filter, head)
                .into_iter()
                .next();
            let reason = match (precondition.op, example) {
                (PreconditionOp::MustExist, None) => {
                    Some("no relationship matches the must_exist filter".to_string())
                }
                (PreconditionOp::MustNotExist, Some(rel)) => Some(format!(
                    "relationship `{rel}` matches the must_not_exist filter"
                )),
                _ => None,
            };
            if let Some(reason) = reason {
                return Ok(Err(WriteRejection::PreconditionFailed { index, reason }));
            }
        }
        for update in updates {
            if update.op == UpdateOp::Create && state.is_live(&update.relationship) {
                return Ok(Err(WriteRejection::AlreadyExists(
                    update.relationship.clone(),
                )));
            }
        }
        let revision = Revision(head.0 + 1);
        let mut changes = Vec::new();
        for update in updates {
            let rel = &update.relationship;
            match update.op {
                UpdateOp::Create | UpdateOp::Touch => state.touch(rel, revision, &mut changes),
                UpdateOp::Delete => state.delete(rel, revision, &mut changes),
            }
        }
        Ok(Ok(state.finish(revision, changes)))
    }

    fn delete_by_filter(
        &self,
        filter: &RelationshipFilter,
        limit: usize,
    ) -> Result<ChangeSet, StoreError> {
        let mut state = self.state.write();
        let revision = Revision(state.head.0 + 1);
        let mut doomed = state.matching(filter, state.head);
        if limit != 0 {
            doomed.truncate(limit);
        }
        let mut changes = Vec::with_capacity(doomed.len());
        for rel in doomed {
            state.delete(&rel, revision, &mut changes);
        }
        Ok(state.finish(revision, changes))
    }

    fn apply_at_one_revision(
        &self,
        updates: &[Update],
        schema: Option<&str>,
    ) -> Result<ChangeSet, StoreError> {
        for update in updates {
            check_relationship(&update.relationship)?;
        }
        let mut state = self.state.write();
        let revision = Revision(state.head.0 + 1);
        let mut changes = Vec::new();
        let mut seen = rustc_hash::FxHashSet::default();
        for update in updates {
            let rel = &update.relationship;
            if !seen.insert(rel.tuple()) {
                continue;
            }
            match update.op {
                UpdateOp::Create | UpdateOp::Touch => state.touch(rel, revision, &mut changes),
                UpdateOp::Delete => state.delete(rel, revision, &mut changes),
            }
        }
        if let Some(text) = schema {
            state.schema = Some((text.to_string(), revision));
        }
        Ok(state.finish(revision, changes))
    }

    fn import(
        &self,
        relationships: &mut dyn Iterator<Item = Relationship>,
    ) -> Result<Vec<ChangeSet>, StoreError> {
        let mut res = Vec::new();
        loop {
            let chunk: Vec<Relationship> = (&mut *relationships).take(CHUNK_SIZE).collect();
            if chunk.is_empty() {
                return Ok(res);
            }
            for rel in &chunk {
                check_relationship(rel)?;
            }
            let mut state = self.state.write();
            let revision = Revision(state.head.0 + 1);
            let mut changes = Vec::new();
            for rel in crate::store::last_of_each_tuple(chunk) {
                state.touch(&rel, revision, &mut changes);
            }
            res.push(state.finish(revision, changes));
        }
    }

    fn read(
        &self,
        filter: &RelationshipFilter,
        revision: Revision,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page, StoreError> {
        let after = crate::store::parse_cursor(cursor)?;
        let state = self.state.read();
        state.check_readable(revision)?;
        let (index, _) = keys::index_for(filter);
        let after_key = after.map(|rel| keys::tuple_prefix(index, &rel));
        let limit = if limit == 0 { usize::MAX } else { limit };
        let mut rest = state.matching(filter, revision).into_iter().filter(|rel| {
            after_key
                .as_ref()
                .is_none_or(|after| keys::tuple_prefix(index, rel) > *after)
        });
        let relationships: Vec<Relationship> = rest.by_ref().take(limit).collect();
        let cursor = match rest.next() {
            Some(_) => relationships.last().map(|rel| rel.tuple().to_string()),
            None => None,
        };
        Ok(Page {
            relationships,
            cursor,
        })
    }

    fn subjects(
        &self,
        resource: &ObjectRef,
        relation: &str,
        revision: Revision,
    ) -> Result<Vec<SubjectRef>, StoreError> {
        let filter = crate::store::resource_filter(resource, relation);
        let state = self.state.read();
        state.check_readable(revision)?;
        Ok(state
            .matching(&filter, revision)
            .into_iter()
            .map(|rel| rel.subject)
            .collect())
    }

    fn resources(
        &self,
        subject: &SubjectRef,
        resource_type: Option<&str>,
        relation: Option<&str>,
        revision: Revision,
    ) -> Result<Vec<(ObjectRef, String)>, StoreError> {
        let filter = super::subject_filter(subject, resource_type, relation);
        let state = self.state.read();
        state.check_readable(revision)?;
        Ok(state
            .matching(&filter, revision)
            .into_iter()
            .map(|rel| (rel.resource, rel.relation))
            .collect())
    }

    fn read_schema(&self) -> Result<Option<(String, Revision)>, StoreError> {
        Ok(self.state.read().schema.clone())
    }

    fn write_schema(&self, text: &str) -> Result<Revision, StoreError> {
        let mut state = self.state.write();
        let revision = Revision(state.head.0 + 1);
        state.schema = Some((text.to_string(), revision));
        state.head = revision;
        Ok(revision)
    }

    fn changes_since(&self, since: Revision, limit: usize) -> Result<Vec<ChangeSet>, StoreError> {
        let state = self.state.read();
        state.check_readable(since)?;
        let limit = if limit == 0 { usize::MAX } else { limit };
        Ok(state
            .changes
            .range(Revision(since.0.saturating_add(1))..)
            .take(limit)
            .map(|(revision, changes)| ChangeSet {
                revision: *revision,
                changes: changes.clone(),
            })
            .collect())
    }

    /// Only this process writes it: the index head is the store's head.
    fn exclusive(&self) -> bool {
        true
    }

    fn read_index_image(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state.read().index_image.clone())
    }

    fn write_index_image(&self, _revision: Revision, image: &[u8]) -> Result<(), StoreError> {
        self.state.write().index_image = Some(image.to_vec());
        Ok(())
    }

    fn for_each_live(&self, f: &mut dyn FnMut(Relationship)) -> Result<Revision, StoreError> {
        let state = self.state.read();
        for rel in state.matching(&RelationshipFilter::default(), state.head) {
            f(rel);
        }
        Ok(state.head)
    }

    fn collect_garbage(&self, horizon: Revision) -> Result<usize, StoreError> {
        let mut state = self.state.write();
        let horizon = horizon.min(state.head);
        if horizon <= state.oldest {
            return Ok(0);
        }
        state.oldest = horizon;
        let mut n_removed = 0;
        state.versions.retain(|_, versions| {
            let before = versions.len();
            versions.retain(|v| v.deleted == LIVE || v.deleted > horizon.0);
            n_removed += before - versions.len();
            !versions.is_empty()
        });
        let kept = state.changes.split_off(&Revision(horizon.0 + 1));
        n_removed += state.changes.len();
        state.changes = kept;
        Ok(n_removed)
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
