//! [`SledStore`]: the embedded [`Store`] on sled 0.34.7, the only module that names sled
//! (this file: opening, the transaction helper and the trait; `sled/write.rs`,
//! `sled/scan.rs` and `sled/gc.rs`: the write paths, the read paths and collection;
//! `sled/import.rs`: bulk import; `sled/blocks.rs`: the version entries packed into
//! blocks; `sled/marks.rs`: what the collector may skip; `sled/migrate.rs`: older formats
//! at open).
//!
//! How it works around what sled lacks (DESIGN §4):
//! - **Revisions**: one writer mutex owns "next revision, commit, flush, publish". The
//!   counter lives in `meta/head`, written in the same transaction as the data; readers
//!   snapshot at the published watermark ([`Inner::watermark`]), never at an unpublished
//!   revision. `generate_id` is never used.
//! - **MVCC**: every tuple version is one entry per index whose value is its deleted-at
//!   revision (`u64::MAX` while live), packed with its neighbours into blocks of about 64
//!   entries (format 3, `blocks.rs`); a read at `R` keeps versions with
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
//! - **Bulk import** gives each chunk of [`CHUNK_SIZE`] its own revision, sorts the
//!   whole input's entries and writes them block by block in several transactions under
//!   the same `pending` marker (rolled back at open after a crash), then flushes once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::sled::Tree;
use ::sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use parking_lot::Mutex;

use crate::model::{ObjectRef, Relationship, Revision, SubjectRef};
use crate::store::keys::{self, Index};
use crate::store::{
    Change, ChangeSet, Page, Precondition, RelationshipFilter, Store, StoreError, Update,
    WriteRejection,
};

pub(crate) mod blocks;
mod gc;
mod import;
mod marks;
mod migrate;
mod scan;
mod sync;
mod write;

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
///
/// Recovery: sled keeps the first I/O error (a full disk, say) and fails every later call
/// with it, so [`Store::recover`] reopens the database when a flush fails: calls wait
/// while it reopens, and the database is read back as it is on disk (every acknowledged
/// durable write is there).
pub struct SledStore {
    /// The open database; `None` only while [`Store::recover`] reopens it.
    inner: parking_lot::RwLock<Option<Arc<Inner>>>,
    /// The background collector, stopped and joined on drop (and around a reopen).
    gc: Mutex<Option<gc::Collector>>,
    /// How the database was opened, to reopen it the same way.
    config: SledConfig,
}

/// Everything the store and its collector share.
pub(crate) struct Inner {
    db: ::sled::Db,
    meta: Tree,
    /// Blocks of `by_resource` entries (format 3).
    by_resource: Tree,
    /// Blocks of `by_subject` entries (format 3).
    by_subject: Tree,
    /// Tells readers of the blocks when a commit moved entries (`blocks::walk`).
    layout: blocks::Layout,
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
    /// Whether the collector's walks can find anything (durable marks, `marks.rs`).
    marks: marks::Marks,
    durable: bool,
    retention: Duration,
}

struct Writer {
    /// The newest committed revision (may be ahead of the watermark during a flush).
    head: Revision,
    /// Milliseconds since the epoch of the last commit; commit times never go backwards.
    last_time: u64,
}

/// One prepared insert or removal. For the two index slots the key is a version key
/// (an entry), which [`Inner::commit`] turns into block rewrites; for the others it is
/// the sled key itself.
struct Op {
    tree: TreeSlot,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

/// A sled key of one tree and its new value (`None` removes it), as committed.
type RawOp = (TreeSlot, Vec<u8>, Option<Vec<u8>>);

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

/// How long [`open_with_retry`] waits for the file lock of a database just closed.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Opens the sled database, waiting briefly while its file lock is still held. Dropping a
/// sled `Db` does not release the lock at once: sled's background I/O threads hold the
/// file until their last write lands, so a reopen in the same process can race them.
fn open_with_retry(config: &::sled::Config) -> Result<::sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(::sled::Error::Io(err))
                if err.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(err) => return Err(io(err)),
        }
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |it| u64::try_from(it.as_millis()).unwrap_or(u64::MAX))
}

impl SledStore {
    /// The raw sled database at `path`, opened as the store opens it (waiting briefly for
    /// the file lock of a database just closed), without the store's checks, migration or
    /// recovery: for tests and tools that inspect or edit the stored bytes.
    pub fn open_raw(path: &std::path::Path) -> Result<::sled::Db, StoreError> {
        open_with_retry(&::sled::Config::new().path(path))
    }

    /// Opens (or creates) a database as `config` says, rolls back an unfinished delete
    /// and starts the background collector.
    pub fn open(config: &SledConfig) -> Result<Self, StoreError> {
        let (inner, gc) = Self::open_inner(config)?;
        Ok(Self {
            inner: parking_lot::RwLock::new(Some(inner)),
            gc: Mutex::new(gc),
            config: config.clone(),
        })
    }

    fn open_inner(config: &SledConfig) -> Result<(Arc<Inner>, Option<gc::Collector>), StoreError> {
        let sled_config = ::sled::Config::new()
            .cache_capacity(config.cache_capacity)
            .flush_every_ms(Some(500));
        let sled_config = match &config.path {
            Some(path) => sled_config.path(path),
            None => sled_config.temporary(true),
        };
        let db = open_with_retry(&sled_config)?;
        let inner = Arc::new(Inner::new(db, config)?);
        let gc = config
            .gc_interval
            .map(|interval| gc::Collector::start(Arc::downgrade(&inner), interval));
        Ok((inner, gc))
    }

    /// The open database, or an error while it is being reopened.
    fn inner(&self) -> Result<Arc<Inner>, StoreError> {
        self.inner.read().clone().ok_or_else(|| {
            StoreError::Io(
                "the store is closed after a failure; a write or /readyz reopens it".into(),
            )
        })
    }

    /// Flushes; if that fails (sled then fails every call until reopened), closes and
    /// reopens the database at the same path and flushes again. If reopening fails too
    /// (the disk is still full), the store stays closed and the next call retries.
    fn flush_or_reopen(&self) -> Result<(), StoreError> {
        let current = self.inner.read().clone();
        if let Some(inner) = current {
            let Err(err) = inner.db.flush() else {
                return Ok(());
            };
            if self.config.path.is_none() {
                // A temporary database reopened would be empty.
                return Err(io(err));
            }
            tracing::warn!(error = %err, "the store failed; reopening it");
        }
        let mut slot = self.inner.write();
        if let Some(gc) = self.gc.lock().take() {
            gc.stop();
        }
        // INVARIANT: calls clone the `Arc` under the read lock and drop it when done, so
        // once this is the last reference the database closes and releases its file lock
        // (`open_with_retry` waits for in-flight calls and sled's threads to finish).
        drop(slot.take());
        let (inner, gc) = Self::open_inner(&self.config)?;
        inner.db.flush().map_err(io)?;
        *slot = Some(inner);
        *self.gc.lock() = gc;
        Ok(())
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
        self.inner()?.collect_expired(now)
    }

    /// How many times, since the database was opened (or reopened by
    /// [`Store::recover`]), the expired sweep and version GC walked the whole resource
    /// index: a pass that provably has nothing to find reads no block (`sled/marks.rs`).
    pub fn collector_walks(&self) -> Result<(u64, u64), StoreError> {
        Ok(self.inner()?.marks.walks())
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.inner()?.db.size_on_disk().map_err(io)
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if let Some(gc) = self.gc.get_mut().take() {
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
                if keys::MIGRATABLE_FORMAT_VERSIONS.contains(&version) {
                    migrate::to_blocks(&db, &meta, version)?;
                } else if version != keys::FORMAT_VERSION {
                    return Err(StoreError::UnsupportedFormat {
                        found: version,
                        supported: keys::FORMAT_VERSION,
                    });
                } else {
                    migrate::drop_old_trees(&db)?;
                }
            }
            None => {
                if meta.get(keys::META_HEAD).map_err(io)?.is_none() {
                    // Nothing was ever committed: no version expires or has ended.
                    marks::Marks::init_fresh(&meta)?;
                }
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
        let revisions = open(keys::TREE_REVISIONS)?;
        // Commit times continue from the newest record even if the clock went back.
        let last_time = match revisions.last().map_err(io)? {
            Some((_, time)) => keys::decode_u64(&time).map_err(corrupt)?,
            None => 0,
        };
        let marks = marks::Marks::load(&meta, head)?;
        let inner = Self {
            marks,
            by_resource: open(keys::TREE_RESOURCE_BLOCKS)?,
            by_subject: open(keys::TREE_SUBJECT_BLOCKS)?,
            layout: blocks::Layout::default(),
            changes: open(keys::TREE_CHANGES)?,
            revisions,
            meta,
            writer: Mutex::new(Writer {
                head: Revision(head),
                last_time,
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

    /// Runs one sled transaction that replays `ops`, the entries of the two indexes turned
    /// into block rewrites first. The caller holds the writer mutex (or is alone, at
    /// open), so the blocks do not change between the plan and the transaction.
    fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        let mut entries: [Vec<blocks::EntryChange>; 2] = Default::default();
        let mut raw = Vec::with_capacity(ops.len());
        for op in ops {
            match op.tree {
                TreeSlot::ByResource => entries[0].push((op.key.clone(), op.value.clone())),
                TreeSlot::BySubject => entries[1].push((op.key.clone(), op.value.clone())),
                _ => raw.push((op.tree, op.key.clone(), op.value.clone())),
            }
        }
        let mut moves = false;
        for (changes, (slot, tree)) in entries.iter_mut().zip([
            (TreeSlot::ByResource, &self.by_resource),
            (TreeSlot::BySubject, &self.by_subject),
        ]) {
            blocks::sort_changes(changes);
            let changes: Vec<blocks::EntryRef<'_>> = changes
                .iter()
                .map(|(key, value)| (key.as_slice(), value.as_deref()))
                .collect();
            let plan = blocks::plan(tree, &changes, usize::MAX)?;
            moves |= plan.moves;
            raw.extend(plan.ops.into_iter().map(|(key, value)| (slot, key, value)));
        }
        self.commit_raw(&raw, moves)
    }

    /// Runs one sled transaction that replays `ops` as they are (block keys for the two
    /// index slots); `moves` as [`blocks::Plan::moves`] says.
    fn commit_raw(&self, ops: &[RawOp], moves: bool) -> Result<(), StoreError> {
        let trees = self.trees();
        let res: Result<(), TransactionError<()>> = self.layout.commit(moves, || {
            trees[..].transaction(|views| {
                for (tree, key, value) in ops {
                    let view = &views[*tree as usize];
                    match value {
                        Some(value) => view.insert(key.as_slice(), value.as_slice())?,
                        None => view.remove(key.as_slice())?,
                    };
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
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

    /// The bookkeeping keys every revision writes: its commit time and the new head (with
    /// the head the collector's marks are kept up to, `sled/marks.rs`).
    fn revision_ops(writer: &mut Writer, revision: Revision, ops: &mut Vec<Op>) {
        let time = now_millis().max(writer.last_time);
        writer.last_time = time;
        ops.push(Op {
            tree: TreeSlot::Revisions,
            key: keys::encode_u64(revision.0).to_vec(),
            value: Some(keys::encode_u64(time).to_vec()),
        });
        for key in [keys::META_HEAD, keys::META_MARKS_HEAD] {
            ops.push(Op {
                tree: TreeSlot::Meta,
                key: key.to_vec(),
                value: Some(keys::encode_u64(revision.0).to_vec()),
            });
        }
    }

    /// Both index keys of one version, with deleted-at `deleted` and the caveat and
    /// expiration of `rel`.
    fn version_ops(rel: &Relationship, created: Revision, deleted: u64, ops: &mut Vec<Op>) {
        let value = keys::encode_version_value(deleted, rel);
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
    /// the writer and has prepared the data ops, the marks' ops among them (`note`).
    fn commit_revision(
        &self,
        writer: &mut Writer,
        revision: Revision,
        mut ops: Vec<Op>,
        changes: Vec<Change>,
        note: marks::Note,
    ) -> Result<ChangeSet, StoreError> {
        Self::change_ops(revision, 0, &changes, &mut ops);
        Self::revision_ops(writer, revision, &mut ops);
        self.commit(&ops)?;
        self.marks.committed(note);
        writer.head = revision;
        self.flush_if_durable()?;
        self.publish(revision);
        Ok(ChangeSet { revision, changes })
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
    /// sled locks its directory: no other process writes it.
    fn exclusive(&self) -> bool {
        true
    }

    fn disk_bytes(&self) -> Option<u64> {
        self.size_on_disk().ok()
    }

    /// The image lives in a tree of its own, one value, written outside the data's
    /// transactions: it is a cache the engine checks, never part of a revision.
    fn read_index_image(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let inner = self.inner()?;
        let tree = inner.db.open_tree(keys::TREE_INDEX_IMAGE).map_err(io)?;
        Ok(tree
            .get(keys::INDEX_IMAGE)
            .map_err(io)?
            .map(|it| it.to_vec()))
    }

    fn write_index_image(&self, _revision: Revision, image: &[u8]) -> Result<(), StoreError> {
        let inner = self.inner()?;
        let tree = inner.db.open_tree(keys::TREE_INDEX_IMAGE).map_err(io)?;
        tree.insert(keys::INDEX_IMAGE, image).map_err(io)?;
        tree.flush().map_err(io)?;
        Ok(())
    }

    fn head(&self) -> Result<Revision, StoreError> {
        Ok(Revision(self.inner()?.watermark.load(Ordering::Acquire)))
    }

    fn oldest_readable(&self) -> Result<Revision, StoreError> {
        Ok(Revision(self.inner()?.oldest.load(Ordering::Acquire)))
    }

    fn write(
        &self,
        updates: &[Update],
        preconditions: &[Precondition],
    ) -> Result<Result<ChangeSet, WriteRejection>, StoreError> {
        self.inner()?.write(updates, preconditions)
    }

    fn delete_by_filter(
        &self,
        filter: &RelationshipFilter,
        limit: usize,
    ) -> Result<ChangeSet, StoreError> {
        self.inner()?.delete_by_filter(filter, limit)
    }

    fn apply_at_one_revision(
        &self,
        updates: &[Update],
        schema: Option<&str>,
    ) -> Result<ChangeSet, StoreError> {
        self.inner()?.apply_at_one_revision(updates, schema)
    }

    fn import(
        &self,
        relationships: &mut dyn Iterator<Item = Relationship>,
    ) -> Result<Vec<ChangeSet>, StoreError> {
        self.inner()?.import(relationships)
    }

    fn read(
        &self,
        filter: &RelationshipFilter,
        revision: Revision,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page, StoreError> {
        self.inner()?.read(filter, revision, limit, cursor)
    }

    fn subjects(
        &self,
        resource: &ObjectRef,
        relation: &str,
        revision: Revision,
    ) -> Result<Vec<SubjectRef>, StoreError> {
        self.inner()?.subjects(resource, relation, revision)
    }

    fn resources(
        &self,
        subject: &SubjectRef,
        resource_type: Option<&str>,
        relation: Option<&str>,
        revision: Revision,
    ) -> Result<Vec<(ObjectRef, String)>, StoreError> {
        self.inner()?
            .resources(subject, resource_type, relation, revision)
    }

    fn read_schema(&self) -> Result<Option<(String, Revision)>, StoreError> {
        self.inner()?.read_schema()
    }

    fn write_schema(&self, text: &str) -> Result<Revision, StoreError> {
        self.inner()?.write_schema(text)
    }

    fn changes_since(&self, since: Revision, limit: usize) -> Result<Vec<ChangeSet>, StoreError> {
        self.inner()?.changes_since(since, limit)
    }

    fn for_each_live(&self, f: &mut dyn FnMut(Relationship)) -> Result<Revision, StoreError> {
        let head = self.head()?;
        self.inner()?
            .scan_live(&RelationshipFilter::default(), head, None, &mut |rel| {
                f(rel);
                true
            })?;
        Ok(head)
    }

    fn collect_garbage(&self, horizon: Revision) -> Result<usize, StoreError> {
        self.inner()?.collect_garbage(horizon)
    }

    fn collect_expired_relationships(
        &self,
        before: crate::model::Timestamp,
    ) -> Result<usize, StoreError> {
        self.inner()?.collect_expired_relationships(before)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner()?.db.flush().map(|_| ()).map_err(io)
    }

    fn recover(&self) -> Result<(), StoreError> {
        self.flush_or_reopen()
    }
}
