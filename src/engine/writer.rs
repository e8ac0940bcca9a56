//! The engine's shared state and its write path.
//!
//! One mutex (`write_lock`) serializes every change: validate against the schema →
//! `Store::write` (the store allocates the revision, commits and flushes) → apply the
//! committed change set to the index → publish the new head. Readers never take it.
//!
//! Bounds: a write holds at most [`Config::max_batch`] updates and preconditions together
//! (each precondition is one bounded scan that stops at its first match); a delete by
//! filter removes at most its limit ([`DeleteOptions`]), so one revision's change set, and
//! the watch event that carries it, stays bounded.
//!
//! Failure and recovery: a write that fails on I/O (a full disk) may or may not have
//! committed. The engine then marks the store failing; the next write (or a health probe,
//! [`Inner::store_health`]) first probes the store and catches the index up with every
//! revision the store committed that the index has not seen, so that once the cause is
//! gone, writes work again without a restart and the index never misses a change.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Mutex, RwLock};

use crate::model::{Relationship, Revision};
use crate::schema::Schema;
use crate::store::{
    ChangeOp, ChangeSet, MAX_WRITE_UPDATES, Precondition, RelationshipFilter, Store, StoreError,
    Update, WriteRejection,
};

use super::cache::CheckCache;
use super::index::{Index, IndexData, Loader, decode_image, encode_image};
use super::pages::PageCache;
use super::plan::{LoadedSchema, Plan};
use super::{
    Config, DEFAULT_DELETE_LIMIT, DeleteOptions, Deleted, EngineError, MAX_DELETE_LIMIT,
    MAX_DEPTH_LIMIT, StoreHealth, filters, schema_text,
};
use crate::schema::admit;

/// How often the follower asks the store for its head when no commit was announced.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Change sets read from the store's log per round trip while catching up.
const FOLLOW_BATCH: usize = 256;

/// Everything an [`super::Arbiter`] handle shares.
pub(crate) struct Inner {
    pub config: Config,
    pub store: Box<dyn Store>,
    /// Serializes index catch-up ([`Inner::follow`]): one thread at a time applies the
    /// store's log. Readers never take it.
    follow_lock: Mutex<()>,
    /// Serializes writes (validate, commit, apply, publish). Readers never take it.
    pub(super) write_lock: Mutex<()>,
    /// The installed schema; swapped whole, under `write_lock`.
    schema: RwLock<Option<Arc<LoadedSchema>>>,
    pub index: Index,
    pub cache: CheckCache,
    /// Sorted lookup results that later pages resume from.
    pub pages: PageCache,
    /// Why the last write failed on I/O, until a probe or a write succeeds again.
    failing: Mutex<Option<String>>,
    /// Publishes each new head after the index applied it (watch streams await it).
    pub head_tx: tokio::sync::watch::Sender<Revision>,
    /// The revision `minimize_latency` reads use and when it was last advanced.
    pub quantized: Mutex<(Revision, Instant)>,
    /// When each revision committed, oldest first, to turn the retention window into a
    /// revision horizon for garbage collection.
    commit_times: Mutex<VecDeque<(Revision, Instant)>>,
    /// Why the schema found in the store at open was not loaded (it no longer compiles);
    /// reported while no schema is installed, instead of refusing to start, so that a
    /// corrected schema can still be written.
    stored_schema_problem: Option<String>,
    /// The revision of the index image the store keeps (`u64::MAX`: none known).
    image_revision: AtomicU64,
    /// The revision of the image the index was loaded from at open, if it was.
    pub opened_from_image: Option<Revision>,
}

impl Inner {
    pub fn open(store: Box<dyn Store>, mut config: Config) -> Result<Arc<Self>, EngineError> {
        config.depth_limit = config.depth_limit.min(MAX_DEPTH_LIMIT);
        config.max_batch = config.max_batch.clamp(1, MAX_WRITE_UPDATES);
        config.expand_limit = config.expand_limit.max(1);
        let index = Index::default();
        let mut image_revision = u64::MAX;
        let head = {
            let mut data = index.write();
            // Caveated and expiring relationships go to the index's conditional side.
            let head = match load_image(&*store, &mut data)? {
                Some((image, head)) => {
                    image_revision = image.0;
                    head
                }
                None => {
                    let started = Instant::now();
                    let mut loader = Loader::default();
                    let head = store.for_each_live(&mut |relationship| {
                        loader.add(&mut data, &relationship);
                    })?;
                    loader.finish(&mut data);
                    tracing::info!(
                        head = head.0,
                        total_ms = started.elapsed().as_millis() as u64,
                        "index built from the store's relationships"
                    );
                    head
                }
            };
            data.set_head(head);
            data.set_oldest(head);
            head
        };
        let (head_tx, _) = tokio::sync::watch::channel(head);
        let mut stored_schema = None;
        let mut stored_schema_problem = None;
        if let Some((text, revision)) = store.read_schema()? {
            match schema_text::compile(&text) {
                Ok(schema) => stored_schema = Some((schema, text, revision)),
                Err(err) => {
                    let problem = format!("revision {}: {err}", revision.0);
                    tracing::error!(%problem, "the stored schema no longer compiles; no schema is loaded");
                    stored_schema_problem = Some(problem);
                }
            }
        }
        let inner = Arc::new(Self {
            cache: CheckCache::new(config.cache_capacity),
            pages: PageCache::default(),
            failing: Mutex::new(None),
            config,
            store,
            write_lock: Mutex::new(()),
            follow_lock: Mutex::new(()),
            schema: RwLock::new(None),
            index,
            head_tx,
            quantized: Mutex::new((head, Instant::now())),
            commit_times: Mutex::new(VecDeque::from([(head, Instant::now())])),
            stored_schema_problem,
            image_revision: AtomicU64::new(image_revision),
            opened_from_image: (image_revision != u64::MAX).then_some(Revision(image_revision)),
        });
        if let Some((schema, text, revision)) = stored_schema {
            inner.set_schema(schema, text, revision);
        }
        spawn_collector(Arc::downgrade(&inner));
        spawn_follower(Arc::downgrade(&inner));
        Ok(inner)
    }

    /// The installed schema, if any.
    pub fn loaded(&self) -> Option<Arc<LoadedSchema>> {
        self.schema.read().clone()
    }

    /// The installed schema, or [`EngineError::NoSchema`] (with the reason when the stored
    /// schema no longer compiles).
    pub fn require_schema(&self) -> Result<Arc<LoadedSchema>, EngineError> {
        self.loaded()
            .ok_or_else(|| match &self.stored_schema_problem {
                Some(problem) => EngineError::StoredSchemaInvalid(problem.clone()),
                None => EngineError::NoSchema,
            })
    }

    pub fn head(&self) -> Revision {
        self.index.read().head()
    }

    pub fn install_schema(&self, schema: Schema, text: &str) -> Result<Revision, EngineError> {
        let _writer = self.write_lock.lock();
        self.recover_if_failing()?;
        let old = self.loaded();
        schema_text::refuse_orphans(
            self.store.as_ref(),
            old.as_ref().map(|it| it.schema.as_ref()),
            &schema,
        )?;
        let revision = self.track(self.store.write_schema(text))?;
        self.set_schema(schema, text.to_string(), revision);
        self.follow_to(revision)?;
        Ok(revision)
    }

    /// Whether the store accepts writes; probes it (and recovers) after a failure.
    pub fn store_health(&self) -> StoreHealth {
        if self.failing.lock().is_none() {
            return StoreHealth::Ok;
        }
        let _writer = self.write_lock.lock();
        match self.recover_if_failing() {
            Ok(()) => StoreHealth::Ok,
            Err(err) => StoreHealth::Failing {
                reason: err.to_string(),
            },
        }
    }

    /// Notes an I/O failure of a write, so that the next write recovers first.
    fn track<T>(&self, res: Result<T, StoreError>) -> Result<T, EngineError> {
        if let Err(StoreError::Io(reason)) = &res {
            tracing::warn!(%reason, "a write failed on i/o; the store is marked failing");
            *self.failing.lock() = Some(reason.clone());
        }
        Ok(res?)
    }

    /// After a failed write: probes the store (a flush) and catches the index up with the
    /// revisions the store committed and the index has not applied. The caller holds the
    /// write lock.
    fn recover_if_failing(&self) -> Result<(), EngineError> {
        if self.failing.lock().is_none() {
            return Ok(());
        }
        self.track(self.store.recover())?;
        self.follow()?;
        *self.failing.lock() = None;
        tracing::info!("the store accepts writes again");
        Ok(())
    }

    /// Makes the index catch up with the store's log: applies every change set the store
    /// committed after the index head, in revision order, installs a newer stored schema,
    /// and publishes the store's head. The path that moves the index forward, for local
    /// writes (read-your-writes: the writer calls it before acknowledging) and for
    /// revisions other servers committed (the follower thread and `full` reads call it);
    /// [`Self::follow_committed`] shortcuts only the read-back of the writer's own
    /// revision when it is the index's very next one.
    pub(super) fn follow(&self) -> Result<Revision, EngineError> {
        // Fast path: nothing new.
        let indexed = self.index.read().head();
        if self.track(self.store.head())? == indexed {
            return Ok(indexed);
        }
        let _follower = self.follow_lock.lock();
        // Both read under the lock: the index moves only here, so a store head behind it
        // means the store lost revisions, not a race with another follower.
        let indexed = self.index.read().head();
        let head = self.track(self.store.head())?;
        if head < indexed {
            // Only a store that acknowledged writes before making them durable can lose
            // them; its revisions would be reused, so it must not take writes.
            return Err(EngineError::StoreUnavailable(format!(
                "the store reopened at revision {head}, behind revision {indexed} already served: acknowledged writes were lost; restart the server"
            )));
        }
        let mut applied = indexed;
        while applied < head {
            let batch = self.track(self.store.changes_since(applied, FOLLOW_BATCH))?;
            let Some(last) = batch.last().map(|it| it.revision) else {
                break;
            };
            for change_set in batch.iter().filter(|it| it.revision <= head) {
                self.apply_without_publishing(change_set);
                self.index.write().set_head(change_set.revision);
                applied = change_set.revision;
            }
            if last >= head {
                break;
            }
        }
        // Schema writes are revisions without relationship changes: the stored schema is
        // the truth, installed before the head passes its revision.
        let installed = self.loaded().map(|it| it.revision);
        if let Some((text, revision)) = self.track(self.store.read_schema())?
            && revision <= head
            && installed.is_none_or(|installed| revision > installed)
        {
            let schema = schema_text::compile(&text)?;
            self.set_schema(schema, text, revision);
        }
        self.index.write().set_head(head);
        self.publish(head);
        Ok(head)
    }

    pub(super) fn set_schema(&self, schema: Schema, text: String, revision: Revision) {
        let mut data = self.index.write();
        let plan = Plan::build(&schema, &mut data);
        drop(data);
        let mut slot = self.schema.write();
        let epoch = slot.as_ref().map_or(0, |old| old.epoch + 1);
        *slot = Some(Arc::new(LoadedSchema {
            schema: Arc::new(schema),
            text,
            revision,
            epoch,
            plan,
        }));
    }

    pub fn write(
        &self,
        updates: &[Update],
        preconditions: &[Precondition],
    ) -> Result<Result<Revision, WriteRejection>, EngineError> {
        let n_items = updates.len().saturating_add(preconditions.len());
        if n_items > self.config.max_batch {
            return Err(EngineError::invalid(
                "updates",
                format!(
                    "a write may hold at most {} updates and preconditions together, this one holds {} updates and {} preconditions",
                    self.config.max_batch,
                    updates.len(),
                    preconditions.len()
                ),
            ));
        }
        let _writer = self.write_lock.lock();
        let loaded = self.require_schema()?;
        for update in updates {
            if update.op != crate::store::UpdateOp::Delete {
                admit::check_relationship(&loaded.schema, &update.relationship)?;
            }
        }
        filters::validate_preconditions(&loaded.schema, preconditions)?;
        self.recover_if_failing()?;
        match self.track(self.store.write(updates, preconditions))? {
            Ok(change_set) => {
                self.follow_committed(std::slice::from_ref(&change_set))?;
                Ok(Ok(change_set.revision))
            }
            Err(rejection) => Ok(Err(rejection)),
        }
    }

    pub fn delete(
        &self,
        filter: &RelationshipFilter,
        options: DeleteOptions,
    ) -> Result<Deleted, EngineError> {
        let limit = options.limit.unwrap_or(DEFAULT_DELETE_LIMIT);
        if limit == 0 || limit > MAX_DELETE_LIMIT {
            return Err(EngineError::invalid(
                "limit",
                format!("the delete limit must be between 1 and {MAX_DELETE_LIMIT}, got {limit}"),
            ));
        }
        let _writer = self.write_lock.lock();
        let loaded = self.require_schema()?;
        filters::validate(&loaded.schema, filter, "filter")?;
        self.recover_if_failing()?;
        // Nothing changes under the write lock, so this count holds for the delete below.
        let head = self.index.read().head();
        let probe = self.track(self.store.read(filter, head, limit + 1, None))?;
        let partial = probe.relationships.len() > limit;
        if partial && !options.allow_partial_deletions {
            return Err(EngineError::DeleteTooLarge {
                limit,
                max: MAX_DELETE_LIMIT,
            });
        }
        let change_set = self.track(self.store.delete_by_filter(filter, limit))?;
        self.follow_committed(std::slice::from_ref(&change_set))?;
        Ok(Deleted {
            revision: change_set.revision,
            deleted: change_set.changes.len(),
            partial,
        })
    }

    /// Read-your-writes for change sets this server just committed, in revision order.
    /// Each is the store's own record of its revision (what the log holds for it), so
    /// while it is the very next revision of the index (revisions are consecutive, see
    /// [`crate::store::Store`]) it is applied without reading it back; anything else — a
    /// revision of another server in between, a schema write — goes through
    /// [`Self::follow_to`], which reads the log.
    pub(super) fn follow_committed(&self, committed: &[ChangeSet]) -> Result<(), EngineError> {
        let Some(last) = committed.last().map(|it| it.revision) else {
            return Ok(());
        };
        {
            let _follower = self.follow_lock.lock();
            let mut indexed = self.index.read().head();
            for change_set in committed {
                if change_set.revision <= indexed {
                    continue;
                }
                if change_set.revision.0 != indexed.0 + 1 {
                    break;
                }
                self.apply_without_publishing(change_set);
                self.index.write().set_head(change_set.revision);
                indexed = change_set.revision;
            }
            if indexed >= last {
                self.publish(indexed);
                return Ok(());
            }
        }
        self.follow_to(last)
    }

    /// A copy of the live index to build a first import into, if the live one holds no
    /// tuple (see [`BulkBase`]).
    fn bulk_base(&self) -> Option<(IndexData, BulkBase)> {
        let data = self.index.read();
        let base = BulkBase {
            head: data.head(),
            names: data.name_count(),
        };
        data.holds_no_tuple().then(|| (data.empty_copy(), base))
    }

    /// Swaps `staged`, built in bulk from the tuples of `committed`, in for the live index,
    /// if `committed` is a first import on `base` (see [`BulkBase`]). Returns false, having
    /// changed nothing, otherwise.
    fn swap_in_bulk(
        &self,
        mut staged: IndexData,
        base: &BulkBase,
        committed: &[ChangeSet],
    ) -> bool {
        let (Some(first), Some(last)) = (committed.first(), committed.last()) else {
            return false;
        };
        let all_touches = committed
            .iter()
            .all(|it| it.changes.iter().all(|change| change.op == ChangeOp::Touch));
        if !all_touches || base.head.0.checked_add(1) != Some(first.revision.0) {
            return false;
        }
        staged.set_head(last.revision);
        staged.set_oldest(last.revision);
        {
            // The follower applies under this lock: none is half way through.
            let _follower = self.follow_lock.lock();
            let mut data = self.index.write();
            if !data.holds_no_tuple() || data.name_count() != base.names || data.head() != base.head
            {
                return false;
            }
            *data = staged;
        }
        self.publish(last.revision);
        true
    }

    /// Follows a first import by building the index in bulk from its change sets, after
    /// the commit (when the build beside the store's work was not possible). Returns
    /// false, having changed nothing, when `committed` is not a first import.
    fn follow_import_in_bulk(&self, committed: &[ChangeSet]) -> bool {
        let changes: usize = committed.iter().map(|it| it.changes.len()).sum();
        if changes < BULK_INDEX_MIN {
            return false;
        }
        let Some((mut staged, base)) = self.bulk_base() else {
            return false;
        };
        if base.head.0.checked_add(1) != committed.first().map(|it| it.revision.0) {
            return false;
        }
        let mut loader = Loader::default();
        for change_set in committed {
            for change in &change_set.changes {
                loader.add(&mut staged, &change.relationship);
            }
        }
        loader.finish(&mut staged);
        self.swap_in_bulk(staged, &base, committed)
    }

    /// Read-your-writes: returns once the index has applied `revision` (just committed
    /// by this server), reading it from the store's log like any other revision.
    pub(super) fn follow_to(&self, revision: Revision) -> Result<(), EngineError> {
        let head = self.follow()?;
        if head < revision {
            return Err(EngineError::StoreUnavailable(format!(
                "the store's head {head} is behind revision {revision} it just committed"
            )));
        }
        Ok(())
    }

    pub fn admit(&self, relationship: &Relationship) -> Result<(), EngineError> {
        let loaded = self.require_schema()?;
        admit::check_relationship(&loaded.schema, relationship)?;
        Ok(())
    }

    pub fn import(
        &self,
        relationships: &mut dyn Iterator<Item = Relationship>,
    ) -> Result<Revision, EngineError> {
        let _writer = self.write_lock.lock();
        let loaded = self.require_schema()?;
        self.recover_if_failing()?;
        // Validated in full before the store sees any of it (a bad relationship changes
        // nothing), then handed over in one call, so that the store can load it its
        // fastest way (PostgreSQL: one bulk transaction on empty ground).
        let started = Instant::now();
        let (all, gathered) = self.gather_import(relationships, &loaded)?;
        if all.is_empty() {
            return Ok(self.head());
        }
        let count = all.len();
        let validated = started.elapsed();
        let (stored, staged) = std::thread::scope(|scope| {
            let finisher = gathered.map(|(loader, mut staged, base)| {
                scope.spawn(move || {
                    loader.finish(&mut staged);
                    (staged, base)
                })
            });
            let stored = self.store.import(&mut all.into_iter());
            (stored, finisher.and_then(|it| joined(it.join())))
        });
        let change_sets = self.track(stored)?;
        let stored = started.elapsed();
        let touches: usize = change_sets.iter().map(|it| it.changes.len()).sum();
        let swapped = staged.is_some_and(|(staged, base)| {
            touches == count && self.swap_in_bulk(staged, &base, &change_sets)
        });
        if !swapped && !self.follow_import_in_bulk(&change_sets) {
            self.follow_committed(&change_sets)?;
        }
        tracing::info!(
            relationships = count,
            revisions = change_sets.len(),
            indexed_beside_the_store = swapped,
            read_and_validate_ms = validated.as_millis() as u64,
            store_ms = (stored - validated).as_millis() as u64,
            index_ms = (started.elapsed() - stored).as_millis() as u64,
            "import committed"
        );
        Ok(change_sets
            .last()
            .map_or_else(|| self.head(), |it| it.revision))
    }

    /// Reads and validates an import. A first import (the index holds no tuple) of at
    /// least [`BULK_INDEX_MIN`] relationships is also
    /// indexed in bulk, as at open, on a second thread that interns the names of each
    /// batch as soon as it is read and validated here; the tables are built later, while
    /// the store works. The copy is swapped in only if the store's change sets prove it
    /// exact: the import's revisions right after the copy's head, every input tuple
    /// touched once (so no repeats, and none was live). Otherwise it is dropped and the
    /// import followed the usual way.
    #[allow(clippy::type_complexity)]
    fn gather_import(
        &self,
        relationships: &mut dyn Iterator<Item = Relationship>,
        loaded: &LoadedSchema,
    ) -> Result<(Vec<Relationship>, Option<(Loader, IndexData, BulkBase)>), EngineError> {
        const BATCH: usize = 4_096;
        let mut first: Vec<Relationship> = relationships.take(BULK_INDEX_MIN).collect();
        let bulk = (first.len() == BULK_INDEX_MIN)
            .then(|| self.bulk_base())
            .flatten();
        let Some((mut staged, base)) = bulk else {
            first.extend(relationships);
            for relationship in &first {
                admit::check_relationship(&loaded.schema, relationship)?;
            }
            return Ok((first, None));
        };
        // Batches are shared with the builder, then taken back whole once it is done
        // (or has failed: its references go with it), so a failure there loses nothing.
        let mut batches: Vec<Arc<Vec<Relationship>>> = Vec::new();
        let (valid, built) = std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Arc<Vec<Relationship>>>(16);
            let builder = scope.spawn(move || {
                let mut loader = Loader::default();
                for batch in rx {
                    for relationship in batch.iter() {
                        loader.add(&mut staged, relationship);
                    }
                }
                (loader, staged)
            });
            let mut valid = Ok(());
            let mut batch = Vec::with_capacity(BATCH);
            let mut send = |batch: Vec<Relationship>| {
                let batch = Arc::new(batch);
                batches.push(Arc::clone(&batch));
                // A builder that stopped (it panicked) is noticed at its join.
                let _ = tx.send(batch);
            };
            for relationship in first.into_iter().chain(relationships) {
                if let Err(err) = admit::check_relationship(&loaded.schema, &relationship) {
                    valid = Err(err);
                    break;
                }
                batch.push(relationship);
                if batch.len() == BATCH {
                    send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
                }
            }
            if !batch.is_empty() {
                send(batch);
            }
            drop(tx);
            (valid, joined(builder.join()))
        });
        valid?;
        let mut all = Vec::with_capacity(batches.iter().map(|it| it.len()).sum());
        for batch in batches {
            all.extend(Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone()));
        }
        Ok((all, built.map(|(loader, staged)| (loader, staged, base))))
    }

    pub(super) fn publish(&self, revision: Revision) {
        self.commit_times
            .lock()
            .push_back((revision, Instant::now()));
        self.head_tx.send_replace(revision);
    }

    /// Saves an image of the index at its head in the store, unless the last one saved
    /// is of that revision already; returns the image's revision.
    pub fn save_index_image(&self) -> Result<Revision, EngineError> {
        let (image, revision) = {
            let data = self.index.read();
            let revision = data.head();
            if self.image_revision.load(Ordering::Acquire) == revision.0 {
                return Ok(revision);
            }
            (encode_image(&data), revision)
        };
        self.store.write_index_image(revision, &image)?;
        self.image_revision.store(revision.0, Ordering::Release);
        Ok(revision)
    }

    /// Drops versions older than the retention window from the store and the index, and
    /// relationships that expired: from the index as soon as they have (they are invisible
    /// by the clock at every revision), from the store once they have been expired for
    /// the retention window (docs/STORAGE.md).
    pub fn collect_garbage(&self) -> Result<usize, EngineError> {
        self.index
            .write()
            .drop_expired(crate::model::Timestamp::now());
        let expired = match SystemTime::now().checked_sub(self.config.gc_retention) {
            Some(before) => self
                .store
                .collect_expired_relationships(crate::model::Timestamp::from_system_time(before))?,
            None => 0,
        };
        let Some(cutoff) = Instant::now().checked_sub(self.config.gc_retention) else {
            return Ok(expired);
        };
        let horizon = {
            let mut times = self.commit_times.lock();
            let mut horizon = None;
            // Keep the newest revision committed before the cutoff: it is the state
            // every reader inside the window may still ask for.
            while times.len() > 1 && times.get(1).is_some_and(|(_, at)| *at <= cutoff) {
                times.pop_front();
            }
            if let Some((revision, at)) = times.front()
                && *at <= cutoff
            {
                horizon = Some(*revision);
            }
            horizon
        };
        let Some(horizon) = horizon else {
            return Ok(expired);
        };
        let removed = self.store.collect_garbage(horizon)?;
        self.index.write().collect_garbage(horizon);
        Ok(expired + removed)
    }
}

/// Builds the index from the store's index image and the change log since the image's
/// revision. `Ok(None)`, the index untouched, when there is no image or it does not fit
/// (damaged, another format, newer than the store, older than the log): then the caller
/// builds the index from the store's relationships.
/// Returns the image's revision and the index head.
fn load_image(
    store: &dyn Store,
    data: &mut IndexData,
) -> Result<Option<(Revision, Revision)>, EngineError> {
    let started = Instant::now();
    let Some(bytes) = store.read_index_image()? else {
        return Ok(None);
    };
    let read = started.elapsed();
    let head = store.head()?;
    let oldest = store.oldest_readable()?;
    let mut fresh = IndexData::default();
    let revision = match decode_image(&bytes, &mut fresh) {
        Ok(revision) => revision,
        Err(err) => {
            tracing::warn!(%err, "the index image was not used; building the index from the store");
            return Ok(None);
        }
    };
    if revision > head || revision < oldest {
        tracing::warn!(
            image = revision.0,
            head = head.0,
            oldest = oldest.0,
            "the index image does not fit the store's log; building the index from the store"
        );
        return Ok(None);
    }
    fresh.set_head(revision);
    let changes = store.changes_since(revision, 0)?;
    for change_set in &changes {
        fresh.apply(change_set);
    }
    fresh.set_head(head);
    tracing::info!(
        image = revision.0,
        bytes = bytes.len(),
        replayed = changes.len(),
        head = fresh.head().0,
        read_ms = read.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "index loaded from its image"
    );
    *data = fresh;
    Ok(Some((revision, data.head())))
}

/// Keeps the index following the store's log until the engine is dropped: wakes up on
/// the store's commit announcements (LISTEN/NOTIFY on PostgreSQL) or every
/// [`FOLLOW_POLL`], whichever comes first. Polling is the guarantee; announcements only
/// make it quick.
fn spawn_follower(inner: Weak<Inner>) {
    let spawned = std::thread::Builder::new()
        .name("arbiter-follow".to_string())
        .spawn(move || {
            let mut failing = false;
            loop {
                let Some(engine) = inner.upgrade() else {
                    return;
                };
                engine.store.wait_for_commits(FOLLOW_POLL);
                // A local write applies its own revision (`follow_committed`); reading it
                // back here at the same time would only repeat the work in the store.
                let writer = engine.write_lock.lock();
                let followed = engine.follow();
                drop(writer);
                match followed {
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("the index follows the store again");
                    }
                    Ok(_) => {}
                    Err(err) if !failing => {
                        failing = true;
                        tracing::warn!(error = %err, "the index cannot follow the store");
                    }
                    Err(_) => {}
                }
            }
        });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "could not start the index follower");
    }
}

/// Runs garbage collection every so often until the engine is dropped.
fn spawn_collector(inner: Weak<Inner>) {
    const TICK: Duration = Duration::from_millis(500);
    let period = inner.upgrade().map_or(Duration::from_secs(60), |it| {
        (it.config.gc_retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
    });
    let spawned = std::thread::Builder::new()
        .name("arbiter-gc".to_string())
        .spawn(move || {
            let mut waited = Duration::ZERO;
            loop {
                std::thread::sleep(TICK);
                waited += TICK;
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                if waited >= period {
                    waited = Duration::ZERO;
                    if let Err(err) = inner.collect_garbage() {
                        tracing::warn!(error = %err, "garbage collection failed");
                    }
                }
            }
        });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "could not start the garbage collector");
    }
}

/// The fewest relationships a first import must have to be indexed in bulk. A smaller
/// one is applied version by version: it costs little that way, and keeps what a bulk
/// build forgets, the revision each tuple was written at (explain shows it) and exact
/// snapshots inside the import.
const BULK_INDEX_MIN: usize = 10_000;

/// The live index as a bulk build of a first import found it: an import is a first one
/// if its revisions follow `head` directly and the live index still holds no tuple and
/// the same names when the built copy is swapped in.
struct BulkBase {
    head: Revision,
    names: usize,
}

/// The result of a helper thread of the import; a panic there (a bug) is logged and the
/// import goes on without the thread's work.
fn joined<T>(result: std::thread::Result<T>) -> Option<T> {
    match result {
        Ok(it) => Some(it),
        Err(_) => {
            tracing::error!(
                "building an import's index beside the store panicked; following it the usual way"
            );
            None
        }
    }
}
