//! [`SledStore`]: the embedded [`Store`] on sled 0.34.7, the only file that names sled
//! (with its helpers `sled/scan.rs` and `sled/gc.rs`).
//!
//! How it works around what sled lacks (DESIGN §4):
//! - **Revisions**: one writer mutex owns "next revision, commit, flush, publish". The
//!   counter lives in `meta/head`, written in the same transaction as the data; readers
//!   snapshot at the published watermark ([`Inner::watermark`]), never at an unpublished
//!   revision. `generate_id` is never used.
//! - **MVCC**: every tuple version is one key per index whose value is its deleted-at
//!   revision (`u64::MAX` while live); a read at `R` keeps versions with
//!   `created <= R < deleted`. A scan that sees a newer commit half-way still answers
//!   exactly for `R`, because a newer commit only adds versions created after `R` and sets
//!   deleted-at revisions greater than `R`.
//! - **Transactions**: every scan and precondition check runs *before* the transaction,
//!   under the writer mutex, so nothing changes in between; the transaction closure only
//!   replays a prepared list of inserts (idempotent, no I/O, no scans). A transaction holds
//!   at most [`MAX_WRITE_UPDATES`] or [`CHUNK_SIZE`] tuples (about 1,000 keys).
//! - **Durability**: a write returns only after `flush`, unless [`SledConfig::durable`] is
//!   off; then sled's own background flush (every 500 ms) makes it durable later, and a
//!   crash may lose the writes of the last half second (each whole or not at all).
//! - **Large deletes** span several transactions but stay atomic at one revision: every
//!   chunk marks versions deleted at the same new revision `R`, which is published only
//!   after the last chunk; `meta/pending` records `R` and the filter until then, and
//!   [`SledStore::open`] rolls an unfinished delete back.
//! - **Bulk import** commits chunks of [`CHUNK_SIZE`], each its own revision, and flushes
//!   once at the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::sled::Tree;
use ::sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use parking_lot::Mutex;
use rustc_hash::FxHashSet;

use crate::model::{ObjectRef, Relationship, Revision, SubjectRef};
use crate::store::keys::{self, Index, LIVE};
use crate::store::{
    CHUNK_SIZE, Change, ChangeOp, ChangeSet, MAX_WRITE_UPDATES, Page, Precondition, PreconditionOp,
    RelationshipFilter, Store, StoreError, Update, UpdateOp, WriteRejection, check_relationship,
};

mod gc;
mod scan;

/// How to open a [`SledStore`].
#[derive(Clone, Debug)]
pub struct SledConfig {
    /// The database directory; `None` for a temporary database removed on drop.
    pub path: Option<PathBuf>,
    /// Flush before acknowledging every write (default). Off, a crash may lose the last
    /// ~500 ms of acknowledged writes, never part of one.
    pub durable: bool,
    /// How long old versions and change-log entries stay readable (default 24 h).
    pub retention: Duration,
    /// How often the background collector runs; `None` disables it (default 60 s).
    pub gc_interval: Option<Duration>,
    /// sled's page cache in bytes (default 256 MiB; sled's own default is 1 GiB).
    pub cache_capacity: u64,
}

impl SledConfig {
    /// The defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Some(path.into()),
            ..Self::temporary()
        }
    }

    /// The defaults for a temporary database.
    pub fn temporary() -> Self {
        Self {
            path: None,
            durable: true,
            retention: Duration::from_secs(24 * 60 * 60),
            gc_interval: Some(Duration::from_secs(60)),
            cache_capacity: 256 * 1024 * 1024,
        }
    }
}

/// The sled-backed store. Cheap to share behind an `Arc`; dropping it stops the
/// background collector and closes the database.
pub struct SledStore {
    inner: Arc<Inner>,
    /// The background collector, stopped and joined on drop.
    gc: Option<gc::Collector>,
}

/// Everything the store and its collector share.
pub(crate) struct Inner {
    db: ::sled::Db,
    meta: Tree,
    by_resource: Tree,
    by_subject: Tree,
    changes: Tree,
    revisions: Tree,
    /// The single writer: holds the last committed revision and the last commit time.
    /// Every write path allocates, commits, flushes and publishes under it.
    writer: Mutex<Writer>,
    /// The newest revision readers may read: published after commit (and flush).
    watermark: AtomicU64,
    /// The oldest readable revision; the collector raises it (durably) before it removes
    /// anything, and readers re-check it after a scan.
    oldest: AtomicU64,
    durable: bool,
    retention: Duration,
}

struct Writer {
    /// The newest committed revision (may be ahead of the watermark during a flush).
    head: Revision,
    /// Milliseconds since the epoch of the last commit; commit times never go backwards.
    last_time: u64,
}

/// One prepared insert or removal, replayed by the transaction closure.
struct Op {
    tree: TreeSlot,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

/// Position of a tree in the transaction's tree array.
#[derive(Clone, Copy)]
enum TreeSlot {
    Meta = 0,
    ByResource = 1,
    BySubject = 2,
    Changes = 3,
    Revisions = 4,
}

fn io(err: ::sled::Error) -> StoreError {
    StoreError::Io(err.to_string())
}

fn corrupt(err: keys::DecodeError) -> StoreError {
    StoreError::Corrupt(err.to_string())
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |it| u64::try_from(it.as_millis()).unwrap_or(u64::MAX))
}

impl SledStore {
    /// Opens (or creates) a database as `config` says, rolls back an unfinished delete
    /// and starts the background collector.
    pub fn open(config: &SledConfig) -> Result<Self, StoreError> {
        let sled_config = ::sled::Config::new()
            .cache_capacity(config.cache_capacity)
            .flush_every_ms(Some(500));
        let sled_config = match &config.path {
            Some(path) => sled_config.path(path),
            None => sled_config.temporary(true),
        };
        let db = sled_config.open().map_err(io)?;
        let inner = Arc::new(Inner::new(db, config)?);
        let gc = config
            .gc_interval
            .map(|interval| gc::Collector::start(Arc::downgrade(&inner), interval));
        Ok(Self { inner, gc })
    }

    /// Opens a database at `path` with the default configuration.
    pub fn open_path(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open(&SledConfig::new(path.as_ref()))
    }

    /// A temporary database (for tests), removed on drop.
    pub fn temporary() -> Result<Self, StoreError> {
        Self::open(&SledConfig::temporary())
    }

    /// Collects everything older than the retention window as of `now`: finds the newest
    /// revision committed at or before `now - retention` and collects below it. Returns how
    /// many entries were removed. The background collector calls this.
    pub fn collect_expired(&self, now: SystemTime) -> Result<usize, StoreError> {
        self.inner.collect_expired(now)
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.inner.db.size_on_disk().map_err(io)
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if let Some(gc) = self.gc.take() {
            gc.stop();
        }
    }
}

impl Inner {
    fn new(db: ::sled::Db, config: &SledConfig) -> Result<Self, StoreError> {
        let open = |name: &str| db.open_tree(name).map_err(io);
        let meta = open(keys::TREE_META)?;
        match meta.get(keys::META_FORMAT).map_err(io)? {
            Some(bytes) => {
                let version = keys::decode_u32(&bytes).map_err(corrupt)?;
                if version != keys::FORMAT_VERSION {
                    return Err(StoreError::Corrupt(format!(
                        "unsupported store format version {version}, expected {}",
                        keys::FORMAT_VERSION
                    )));
                }
            }
            None => {
                meta.insert(keys::META_FORMAT, &keys::encode_u32(keys::FORMAT_VERSION))
                    .map_err(io)?;
            }
        }
        let read_u64 = |key: &[u8]| -> Result<u64, StoreError> {
            match meta.get(key).map_err(io)? {
                Some(bytes) => keys::decode_u64(&bytes).map_err(corrupt),
                None => Ok(0),
            }
        };
        let head = read_u64(keys::META_HEAD)?;
        let oldest = read_u64(keys::META_OLDEST)?;
        let inner = Self {
            by_resource: open(keys::TREE_BY_RESOURCE)?,
            by_subject: open(keys::TREE_BY_SUBJECT)?,
            changes: open(keys::TREE_CHANGES)?,
            revisions: open(keys::TREE_REVISIONS)?,
            meta,
            writer: Mutex::new(Writer {
                head: Revision(head),
                last_time: 0,
            }),
            watermark: AtomicU64::new(head),
            oldest: AtomicU64::new(oldest),
            durable: config.durable,
            retention: config.retention,
            db,
        };
        inner.roll_back_pending()?;
        Ok(inner)
    }

    fn trees(&self) -> [&Tree; 5] {
        [
            &self.meta,
            &self.by_resource,
            &self.by_subject,
            &self.changes,
            &self.revisions,
        ]
    }

    /// Runs one sled transaction that replays `ops`. The closure may run several times;
    /// it only inserts and removes prepared keys.
    fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        let trees = self.trees();
        let res: Result<(), TransactionError<()>> = trees[..].transaction(|views| {
            for op in ops {
                let view = &views[op.tree as usize];
                match &op.value {
                    Some(value) => view.insert(op.key.as_slice(), value.as_slice())?,
                    None => view.remove(op.key.as_slice())?,
                };
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        match res {
            Ok(()) => Ok(()),
            Err(TransactionError::Storage(err)) => Err(io(err)),
            Err(TransactionError::Abort(())) => {
                Err(StoreError::Io("transaction aborted unexpectedly".into()))
            }
        }
    }

    fn flush_if_durable(&self) -> Result<(), StoreError> {
        if self.durable {
            self.db.flush().map_err(io)?;
        }
        Ok(())
    }

    fn publish(&self, revision: Revision) {
        self.watermark.fetch_max(revision.0, Ordering::AcqRel);
    }

    /// The bookkeeping keys every revision writes: its commit time and the new head.
    fn revision_ops(writer: &mut Writer, revision: Revision, ops: &mut Vec<Op>) {
        let time = now_millis().max(writer.last_time);
        writer.last_time = time;
        ops.push(Op {
            tree: TreeSlot::Revisions,
            key: keys::encode_u64(revision.0).to_vec(),
            value: Some(keys::encode_u64(time).to_vec()),
        });
        ops.push(Op {
            tree: TreeSlot::Meta,
            key: keys::META_HEAD.to_vec(),
            value: Some(keys::encode_u64(revision.0).to_vec()),
        });
    }

    /// Both index keys of one version, with deleted-at `deleted`.
    fn version_ops(rel: &Relationship, created: Revision, deleted: u64, ops: &mut Vec<Op>) {
        let value = keys::encode_u64(deleted).to_vec();
        ops.push(Op {
            tree: TreeSlot::ByResource,
            key: keys::version_key(Index::Resource, rel, created),
            value: Some(value.clone()),
        });
        ops.push(Op {
            tree: TreeSlot::BySubject,
            key: keys::version_key(Index::Subject, rel, created),
            value: Some(value),
        });
    }

    fn change_ops(revision: Revision, part: u32, changes: &[Change], ops: &mut Vec<Op>) {
        if changes.is_empty() {
            return;
        }
        ops.push(Op {
            tree: TreeSlot::Changes,
            key: keys::change_key(revision, part).to_vec(),
            value: Some(keys::encode_changes(
                changes.iter().map(|it| (it.op, &it.relationship)),
            )),
        });
    }

    /// Commits a whole revision in one transaction, flushes, publishes. The caller holds
    /// the writer and has prepared the data ops.
    fn commit_revision(
        &self,
        writer: &mut Writer,
        revision: Revision,
        mut ops: Vec<Op>,
        changes: Vec<Change>,
    ) -> Result<ChangeSet, StoreError> {
        Self::change_ops(revision, 0, &changes, &mut ops);
        Self::revision_ops(writer, revision, &mut ops);
        self.commit(&ops)?;
        writer.head = revision;
        self.flush_if_durable()?;
        self.publish(revision);
        Ok(ChangeSet { revision, changes })
    }

    fn write(
        &self,
        updates: &[Update],
        preconditions: &[Precondition],
    ) -> Result<Result<ChangeSet, WriteRejection>, StoreError> {
        if updates.len() > MAX_WRITE_UPDATES {
            return Err(StoreError::BatchTooLarge {
                len: updates.len(),
                max: MAX_WRITE_UPDATES,
            });
        }
        for update in updates {
            check_relationship(&update.relationship)?;
        }
        let mut seen = FxHashSet::default();
        for update in updates {
            if !seen.insert(&update.relationship) {
                return Ok(Err(WriteRejection::Duplicate(update.relationship.clone())));
            }
        }
        let mut writer = self.writer.lock();
        let head = writer.head;
        for (index, precondition) in preconditions.iter().enumerate() {
            if let Some(reason) = self.failed_precondition(precondition, head)? {
                return Ok(Err(WriteRejection::PreconditionFailed { index, reason }));
            }
        }
        let revision = Revision(head.0 + 1);
        let mut ops = Vec::with_capacity(updates.len() * 2 + 3);
        let mut changes = Vec::new();
        for update in updates {
            let rel = &update.relationship;
            let live = self.live_version(rel)?;
            match (update.op, live) {
                (UpdateOp::Create, Some(_)) => {
                    return Ok(Err(WriteRejection::AlreadyExists(rel.clone())));
                }
                (UpdateOp::Create | UpdateOp::Touch, None) => {
                    Self::version_ops(rel, revision, LIVE, &mut ops);
                    changes.push(Change {
                        op: ChangeOp::Touch,
                        relationship: rel.clone(),
                    });
                }
                (UpdateOp::Delete, Some(created)) => {
                    Self::version_ops(rel, created, revision.0, &mut ops);
                    changes.push(Change {
                        op: ChangeOp::Delete,
                        relationship: rel.clone(),
                    });
                }
                (UpdateOp::Touch, Some(_)) | (UpdateOp::Delete, None) => {}
            }
        }
        self.commit_revision(&mut writer, revision, ops, changes)
            .map(Ok)
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

    /// The created-at revision of the live version of `rel`, if it is live. Only the
    /// writer calls this, so nothing changes the answer before its commit.
    fn live_version(&self, rel: &Relationship) -> Result<Option<Revision>, StoreError> {
        let prefix = keys::tuple_prefix(Index::Resource, rel);
        for item in self.by_resource.scan_prefix(&prefix) {
            let (key, value) = item.map_err(io)?;
            if keys::decode_u64(&value).map_err(corrupt)? == LIVE {
                let created = key.get(prefix.len()..).unwrap_or_default();
                return Ok(Some(Revision(keys::decode_u64(created).map_err(corrupt)?)));
            }
        }
        Ok(None)
    }

    fn delete_by_filter(&self, filter: &RelationshipFilter) -> Result<ChangeSet, StoreError> {
        let mut writer = self.writer.lock();
        let head = writer.head;
        let revision = Revision(head.0 + 1);
        let mut doomed = Vec::new();
        self.scan_versions(filter, &mut |rel, created, deleted| {
            if created <= head && deleted == LIVE {
                doomed.push((rel, created));
            }
            true
        })?;
        let n_chunks = doomed.len().div_ceil(CHUNK_SIZE).max(1);
        let mut changes = Vec::with_capacity(doomed.len());
        let mut chunks = doomed.chunks(CHUNK_SIZE);
        for part in 0..n_chunks {
            let chunk = chunks.next().unwrap_or_default();
            let mut ops = Vec::with_capacity(chunk.len() * 2 + 4);
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
        }
        writer.head = revision;
        self.flush_if_durable()?;
        self.publish(revision);
        Ok(ChangeSet { revision, changes })
    }

    /// Undoes a delete by filter that did not finish (see the module docs).
    fn roll_back_pending(&self) -> Result<(), StoreError> {
        let Some(pending) = self.meta.get(keys::META_PENDING).map_err(io)? else {
            return Ok(());
        };
        let (revision, filter) = pending.split_at_checked(8).ok_or(StoreError::Corrupt(
            "undecodable pending delete".to_string(),
        ))?;
        let revision = keys::decode_u64(revision).map_err(corrupt)?;
        let filter = keys::decode_filter(filter).map_err(corrupt)?;
        let mut marked = Vec::new();
        self.scan_versions(&filter, &mut |rel, created, deleted| {
            if deleted == revision {
                marked.push((rel, created));
            }
            true
        })?;
        for chunk in marked.chunks(CHUNK_SIZE) {
            let mut ops = Vec::with_capacity(chunk.len() * 2);
            for (rel, created) in chunk {
                Self::version_ops(rel, *created, LIVE, &mut ops);
            }
            self.commit(&ops)?;
        }
        let mut ops = Vec::new();
        for item in self.changes.scan_prefix(keys::encode_u64(revision)) {
            let (key, _) = item.map_err(io)?;
            ops.push(Op {
                tree: TreeSlot::Changes,
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
        tracing::warn!(revision, "rolled back an unfinished delete by filter");
        Ok(())
    }

    fn import(
        &self,
        relationships: &mut dyn Iterator<Item = Relationship>,
    ) -> Result<Vec<ChangeSet>, StoreError> {
        let mut res = Vec::new();
        let mut last = None;
        loop {
            let chunk: Vec<Relationship> = (&mut *relationships).take(CHUNK_SIZE).collect();
            if chunk.is_empty() {
                break;
            }
            for rel in &chunk {
                check_relationship(rel)?;
            }
            let mut writer = self.writer.lock();
            let revision = Revision(writer.head.0 + 1);
            let mut seen = FxHashSet::default();
            let mut ops = Vec::with_capacity(chunk.len() * 2 + 3);
            let mut changes = Vec::with_capacity(chunk.len());
            for rel in chunk {
                if seen.contains(&rel) || self.live_version(&rel)?.is_some() {
                    continue;
                }
                Self::version_ops(&rel, revision, LIVE, &mut ops);
                seen.insert(rel.clone());
                changes.push(Change {
                    op: ChangeOp::Touch,
                    relationship: rel,
                });
            }
            Self::change_ops(revision, 0, &changes, &mut ops);
            Self::revision_ops(&mut writer, revision, &mut ops);
            self.commit(&ops)?;
            writer.head = revision;
            if !self.durable {
                self.publish(revision);
            }
            last = Some(revision);
            res.push(ChangeSet { revision, changes });
        }
        if let Some(revision) = last {
            self.flush_if_durable()?;
            self.publish(revision);
        }
        Ok(res)
    }

    fn write_schema(&self, text: &str) -> Result<Revision, StoreError> {
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
        self.commit_revision(&mut writer, revision, ops, Vec::new())
            .map(|it| it.revision)
    }

    fn read_schema(&self) -> Result<Option<(String, Revision)>, StoreError> {
        let Some(text) = self.meta.get(keys::META_SCHEMA).map_err(io)? else {
            return Ok(None);
        };
        let text = String::from_utf8(text.to_vec())
            .map_err(|_| StoreError::Corrupt("stored schema is not utf-8".into()))?;
        let revision = match self.meta.get(keys::META_SCHEMA_REVISION).map_err(io)? {
            Some(bytes) => keys::decode_u64(&bytes).map_err(corrupt)?,
            None => 0,
        };
        Ok(Some((text, Revision(revision))))
    }
}

impl Store for SledStore {
    fn disk_bytes(&self) -> Option<u64> {
        self.size_on_disk().ok()
    }

    fn head(&self) -> Result<Revision, StoreError> {
        Ok(Revision(self.inner.watermark.load(Ordering::Acquire)))
    }

    fn oldest_readable(&self) -> Result<Revision, StoreError> {
        Ok(Revision(self.inner.oldest.load(Ordering::Acquire)))
    }

    fn write(
        &self,
        updates: &[Update],
        preconditions: &[Precondition],
    ) -> Result<Result<ChangeSet, WriteRejection>, StoreError> {
        self.inner.write(updates, preconditions)
    }

    fn delete_by_filter(&self, filter: &RelationshipFilter) -> Result<ChangeSet, StoreError> {
        self.inner.delete_by_filter(filter)
    }

    fn import(
        &self,
        relationships: &mut dyn Iterator<Item = Relationship>,
    ) -> Result<Vec<ChangeSet>, StoreError> {
        self.inner.import(relationships)
    }

    fn read(
        &self,
        filter: &RelationshipFilter,
        revision: Revision,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page, StoreError> {
        self.inner.read(filter, revision, limit, cursor)
    }

    fn subjects(
        &self,
        resource: &ObjectRef,
        relation: &str,
        revision: Revision,
    ) -> Result<Vec<SubjectRef>, StoreError> {
        self.inner.subjects(resource, relation, revision)
    }

    fn resources(
        &self,
        subject: &SubjectRef,
        resource_type: Option<&str>,
        relation: Option<&str>,
        revision: Revision,
    ) -> Result<Vec<(ObjectRef, String)>, StoreError> {
        self.inner
            .resources(subject, resource_type, relation, revision)
    }

    fn read_schema(&self) -> Result<Option<(String, Revision)>, StoreError> {
        self.inner.read_schema()
    }

    fn write_schema(&self, text: &str) -> Result<Revision, StoreError> {
        self.inner.write_schema(text)
    }

    fn changes_since(&self, since: Revision, limit: usize) -> Result<Vec<ChangeSet>, StoreError> {
        self.inner.changes_since(since, limit)
    }

    fn for_each_live(&self, f: &mut dyn FnMut(Relationship)) -> Result<Revision, StoreError> {
        let head = self.head()?;
        self.inner
            .scan_live(&RelationshipFilter::default(), head, None, &mut |rel| {
                f(rel);
                true
            })?;
        Ok(head)
    }

    fn collect_garbage(&self, horizon: Revision) -> Result<usize, StoreError> {
        self.inner.collect_garbage(horizon)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.db.flush().map(|_| ()).map_err(io)
    }
}
