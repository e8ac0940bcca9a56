//! The relationship store: the source of truth for tuples, the schema text and the change
//! log, behind the [`Store`] trait so that a shared SQL backend can be added later without
//! touching the engine.
//!
//! A store knows nothing about the schema: it stores what it is given. Validation against
//! the schema happens above it (the engine), under the engine's write lock.
//!
//! Implementations: `sled` (the embedded default, `sled.rs`; nothing else names sled) and
//! `memory` (a `BTreeMap` model for tests). The engine's hot path does not read a `Store`
//! directly: it reads the revision-aware in-memory index of `engine` fed by the write path.

use crate::model::{ModelError, ObjectRef, Relationship, Revision, SubjectRef};

pub mod failing;
pub mod keys;
pub mod memory;
pub mod postgres;
pub mod sled;

pub use self::failing::{FailSwitches, FailingStore};
pub use self::memory::MemoryStore;
pub use self::postgres::{PgConfig, PgStore};
pub use self::sled::{SledConfig, SledStore};
pub use crate::model::write::{
    Change, ChangeOp, ChangeSet, Precondition, PreconditionOp, Update, UpdateOp, WriteRejection,
};
pub use crate::model::{RelationshipFilter, check_relationship};

/// The most updates one [`Store::write`] accepts. One write is one sled transaction of
/// about two keys per update, and DESIGN §4 keeps transactions near 1,000 keys; SpiceDB's
/// default limit is 1,000 updates as well.
pub const MAX_WRITE_UPDATES: usize = 500;

/// How many relationships one chunk of [`Store::import`] or [`Store::delete_by_filter`]
/// commits in one transaction (two index keys each, plus a few bookkeeping keys).
pub const CHUNK_SIZE: usize = 450;

/// A page of a filtered read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub relationships: Vec<Relationship>,
    /// Resume after the last relationship of this page; `None` when there are no more.
    pub cursor: Option<String>,
}

/// Failures of the store itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage i/o failed: {0}")]
    Io(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "revision {requested} is no longer available: history before revision {oldest} was garbage-collected"
    )]
    RevisionExpired {
        requested: Revision,
        oldest: Revision,
    },
    #[error("revision {requested} is in the future: the head is {head}")]
    RevisionAhead { requested: Revision, head: Revision },
    #[error(
        "the database has store format version {found}, this binary reads versions up to {supported}: open it with a binary that reads version {found}, `arbiter export --db DIR` there, and `arbiter import --db NEW_DIR` here"
    )]
    UnsupportedFormat { found: u32, supported: u32 },
    #[error("invalid cursor `{0}`")]
    InvalidCursor(String),
    #[error(
        "a write may hold at most {max} updates and preconditions together, this one holds {len}"
    )]
    BatchTooLarge { len: usize, max: usize },
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The filter of a forward read: the relationships of `resource#relation`.
pub fn resource_filter(resource: &ObjectRef, relation: &str) -> RelationshipFilter {
    RelationshipFilter {
        resource_type: Some(resource.object_type.clone()),
        resource_id: Some(resource.object_id.clone()),
        relation: Some(relation.to_string()),
        ..Default::default()
    }
}

/// The filter of a reverse read: relationships naming `subject` (a plain object matches
/// only tuples without a subject relation), optionally of one resource type and relation.
pub fn subject_filter(
    subject: &SubjectRef,
    resource_type: Option<&str>,
    relation: Option<&str>,
) -> RelationshipFilter {
    RelationshipFilter {
        subject_type: Some(subject.object.object_type.clone()),
        subject_id: Some(subject.object.object_id.clone()),
        subject_relation: Some(
            subject
                .relation
                .clone()
                .unwrap_or_else(|| crate::model::ELLIPSIS.to_string()),
        ),
        resource_type: resource_type.map(str::to_string),
        relation: relation.map(str::to_string),
        ..Default::default()
    }
}

/// The checks every store makes on a batch before it looks at stored data: the size cap
/// (updates and preconditions together: each precondition is a scan), the name and id
/// rules, and no relationship twice. `Ok(Err(..))` is a duplicate.
pub fn check_batch(
    updates: &[Update],
    preconditions: &[Precondition],
) -> Result<Result<(), WriteRejection>, StoreError> {
    let len = updates.len().saturating_add(preconditions.len());
    if len > MAX_WRITE_UPDATES {
        return Err(StoreError::BatchTooLarge {
            len,
            max: MAX_WRITE_UPDATES,
        });
    }
    for update in updates {
        check_relationship(&update.relationship)?;
    }
    let mut seen = rustc_hash::FxHashSet::default();
    for update in updates {
        if !seen.insert(update.relationship.tuple_ref()) {
            return Ok(Err(WriteRejection::Duplicate(update.relationship.clone())));
        }
    }
    Ok(Ok(()))
}

/// The relationships of an import with each tuple once: where a tuple appears several
/// times, its last occurrence wins (as consecutive touches would), at the position of its
/// first. The table holds positions and hashes the names in place: no tuple is copied.
pub fn last_of_each_tuple(chunk: Vec<Relationship>) -> Vec<Relationship> {
    use std::hash::{Hash, Hasher};
    fn hash(rel: &Relationship) -> u64 {
        let mut hasher = rustc_hash::FxHasher::default();
        crate::model::ReadOrder::ByResource
            .key(rel)
            .hash(&mut hasher);
        hasher.finish()
    }
    let same = |a: &Relationship, b: &Relationship| {
        crate::model::ReadOrder::ByResource.key(a) == crate::model::ReadOrder::ByResource.key(b)
    };
    let mut positions = hashbrown::HashTable::<usize>::with_capacity(chunk.len());
    let mut res: Vec<Relationship> = Vec::with_capacity(chunk.len());
    for rel in chunk {
        let hashed = hash(&rel);
        match positions.find(hashed, |&at| same(&res[at], &rel)).copied() {
            Some(at) => res[at] = rel,
            None => {
                positions.insert_unique(hashed, res.len(), |&at| hash(&res[at]));
                res.push(rel);
            }
        }
    }
    res
}

/// Decodes the cursor of a filtered read: the text form of the last relationship of the
/// previous page.
pub fn parse_cursor(cursor: Option<&str>) -> Result<Option<Relationship>, StoreError> {
    cursor
        .map(|text| {
            text.parse::<Relationship>()
                .map_err(|_| StoreError::InvalidCursor(text.to_string()))
        })
        .transpose()
}

/// The source of truth. All methods are safe to call from many threads; writes are
/// serialized inside the implementation (one writer allocates revisions, commits,
/// flushes and publishes, in that order). Revisions are consecutive: every commit (a
/// change set, possibly empty, or a schema write) takes the head plus one, so a change
/// set at the index's head plus one is the next entry of the log.
pub trait Store: Send + Sync {
    /// The newest committed revision (0 for an empty store).
    fn head(&self) -> Result<Revision, StoreError>;

    /// The oldest revision that can still be read (history before it was collected).
    fn oldest_readable(&self) -> Result<Revision, StoreError>;

    /// Applies a batch of at most [`MAX_WRITE_UPDATES`] updates and preconditions together
    /// atomically at a new revision, after checking the preconditions against the state at
    /// the previous head (each stops at its first match). `Ok(Err(..))` means nothing was written.
    /// Returns the new revision and the effective changes (deleting an absent tuple and
    /// touching a live one change nothing and are left out; the revision is still new).
    fn write(
        &self,
        updates: &[Update],
        preconditions: &[Precondition],
    ) -> Result<Result<ChangeSet, WriteRejection>, StoreError>;

    /// Deletes the live relationships matching `filter` at one new revision, atomically
    /// even when it spans several transactions: the first `limit` in key order (0 means
    /// every one).
    fn delete_by_filter(
        &self,
        filter: &RelationshipFilter,
        limit: usize,
    ) -> Result<ChangeSet, StoreError>;

    /// Applies `updates` (any number; `create` acts as `touch`) and, when `schema` is
    /// given, the new schema text, all at ONE new revision — the sync of a permissions
    /// file. Atomic even when it spans several transactions: readers see the revision only
    /// once everything is in, and a crash part-way is rolled back at the next open. The
    /// caller has validated everything (names, ids, no relationship twice). Returns the
    /// effective changes.
    fn apply_at_one_revision(
        &self,
        updates: &[Update],
        schema: Option<&str>,
    ) -> Result<ChangeSet, StoreError>;

    /// Loads many relationships quickly (touch semantics; the last occurrence of a tuple
    /// wins), as consecutive revisions of at most a chunk each ([`CHUNK_SIZE`] on sled,
    /// `import_chunk` on PostgreSQL). The engine validates everything first and hands the
    /// whole import over in one call, so that a store can load it its fastest way. How
    /// much becomes visible at once is the store's: sled commits passes of up to 1M
    /// relationships, each all or nothing; PostgreSQL loads empty ground in one
    /// transaction, and otherwise commits chunk by chunk. Durable (flushed) at the end.
    /// Returns the change set of every revision. A malformed relationship stops the
    /// import with an error; what was committed before it stays committed.
    fn import(
        &self,
        relationships: &mut dyn Iterator<Item = Relationship>,
    ) -> Result<Vec<ChangeSet>, StoreError>;

    /// Relationships matching `filter` live at `revision`, in key order, at most `limit`
    /// (0 means no limit), resuming after `cursor`.
    fn read(
        &self,
        filter: &RelationshipFilter,
        revision: Revision,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page, StoreError>;

    /// Forward read: the subjects of `resource#relation` live at `revision`.
    fn subjects(
        &self,
        resource: &ObjectRef,
        relation: &str,
        revision: Revision,
    ) -> Result<Vec<SubjectRef>, StoreError>;

    /// Reverse read: the `(resource, relation)` pairs that name `subject` live at
    /// `revision`, optionally restricted to one resource type and relation.
    fn resources(
        &self,
        subject: &SubjectRef,
        resource_type: Option<&str>,
        relation: Option<&str>,
        revision: Revision,
    ) -> Result<Vec<(ObjectRef, String)>, StoreError>;

    /// The stored schema text and the revision that wrote it, if any.
    fn read_schema(&self) -> Result<Option<(String, Revision)>, StoreError>;

    /// Replaces the schema text at a new revision.
    fn write_schema(&self, text: &str) -> Result<Revision, StoreError>;

    /// Change sets of revisions after `since`, oldest first, at most `limit` of them
    /// (0 means no limit).
    /// Revisions that changed no relationship (schema writes, no-op batches) are absent.
    fn changes_since(&self, since: Revision, limit: usize) -> Result<Vec<ChangeSet>, StoreError>;

    /// Every relationship live at the head, for building the in-memory index at open.
    fn for_each_live(&self, f: &mut dyn FnMut(Relationship)) -> Result<Revision, StoreError>;

    /// Drops versions and change-log entries no reader at or after `horizon` can see.
    /// Returns how many entries were removed. Never blocks readers.
    fn collect_garbage(&self, horizon: Revision) -> Result<usize, StoreError>;

    /// Removes the live versions of relationships that expired at or before `before`
    /// (the collector passes its clock minus the retention window): invisible since they
    /// expired, they leave without a change-log entry. Returns how many were removed. The
    /// default removes nothing (a store for tests may keep them: reads hide them anyway).
    fn collect_expired_relationships(
        &self,
        before: crate::model::Timestamp,
    ) -> Result<usize, StoreError> {
        let _ = before;
        Ok(0)
    }

    /// Makes everything committed so far durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Blocks until another process may have committed a new revision, or until
    /// `timeout` passes (a wake-up, not a promise: the caller polls [`Store::head`]).
    /// A store that only this process writes has nothing to announce and just sleeps.
    fn wait_for_commits(&self, timeout: std::time::Duration) {
        std::thread::sleep(timeout);
    }

    /// After a failed write: makes the store usable again if the cause is gone (a full
    /// disk with space freed), without a restart. The default is a flush; a store that
    /// keeps failing after an I/O error (sled) reopens itself.
    fn recover(&self) -> Result<(), StoreError> {
        self.flush()
    }

    /// Whether this process is the store's only writer (an embedded database behind a file
    /// lock). The index applies every local write before it is acknowledged, so for such a
    /// store the index head is the store's head: `full` reads need not ask the store, and
    /// keep being served while it fails (a full disk). Shared stores answer false.
    fn exclusive(&self) -> bool {
        false
    }

    /// Bytes the store occupies on disk, when it has a disk (for the `/metrics` gauge).
    fn disk_bytes(&self) -> Option<u64> {
        None
    }

    /// The index image the engine saved last ([`Store::write_index_image`]), if the store
    /// keeps one. Opaque bytes to the store; the engine checks them and falls back to
    /// [`Store::for_each_live`] when they do not fit.
    fn read_index_image(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }

    /// Keeps `image`, the index at `revision`, for the next open (replacing the previous
    /// one; a store shared by several servers keeps the newest); durable once this
    /// returns. A store without a place for it ignores it.
    fn write_index_image(&self, revision: Revision, image: &[u8]) -> Result<(), StoreError> {
        let _ = (revision, image);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rels(texts: &[&str]) -> Vec<Relationship> {
        texts
            .iter()
            .map(|it| it.parse().expect("test relationship"))
            .collect()
    }

    #[test]
    fn the_last_occurrence_of_each_tuple_wins_at_the_position_of_the_first() {
        let input = [
            "doc:b#viewer@user:u",
            r#"doc:a#viewer@user:u[ipnet:{"cidr":"10.0.0.0/8"}]"#,
            "doc:b#viewer@user:u[expiration:2030-01-01T00:00:00Z]",
            "doc:a#viewer@user:u",
            "doc:a#owner@user:u",
            "doc:b#viewer@user:u[expiration:2031-01-01T00:00:00Z]",
            "doc:b#viewer@group:g#member",
        ];
        let kept: Vec<String> = last_of_each_tuple(rels(&input))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            kept,
            [
                "doc:b#viewer@user:u[expiration:2031-01-01T00:00:00Z]",
                "doc:a#viewer@user:u",
                "doc:a#owner@user:u",
                "doc:b#viewer@group:g#member",
            ]
        );
    }
}
