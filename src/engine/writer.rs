//! The engine's shared state and its write path.
//!
//! One mutex (`write_lock`) serializes every change: validate against the schema →
//! `Store::write` (the store allocates the revision, commits and flushes) → apply the
//! committed change set to the index → publish the new head. Readers never take it.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::model::{Relationship, Revision};
use crate::schema::Schema;
use crate::store::{ChangeSet, Precondition, RelationshipFilter, Store, Update, WriteRejection};

use super::cache::CheckCache;
use super::index::Index;
use super::plan::{LoadedSchema, Plan};
use super::{Config, Deleted, EngineError, MAX_DEPTH_LIMIT, schema_text};
use crate::schema::admit;

/// Relationships per chunk handed to the index during import (bounds how long readers wait
/// for the index write lock).
const IMPORT_CHUNK: usize = 1_000;

/// Everything an [`super::Arbiter`] handle shares.
pub(crate) struct Inner {
    pub config: Config,
    pub store: Box<dyn Store>,
    /// Serializes writes (validate, commit, apply, publish). Readers never take it.
    pub(super) write_lock: Mutex<()>,
    /// The installed schema; swapped whole, under `write_lock`.
    schema: RwLock<Option<Arc<LoadedSchema>>>,
    pub index: Index,
    pub cache: CheckCache,
    /// Publishes each new head after the index applied it (watch streams await it).
    pub head_tx: tokio::sync::watch::Sender<Revision>,
    /// The revision `minimize_latency` reads use and when it was last advanced.
    pub quantized: Mutex<(Revision, Instant)>,
    /// When each revision committed, oldest first, to turn the retention window into a
    /// revision horizon for garbage collection.
    commit_times: Mutex<VecDeque<(Revision, Instant)>>,
}

impl Inner {
    pub fn open(store: Box<dyn Store>, mut config: Config) -> Result<Arc<Self>, EngineError> {
        config.depth_limit = config.depth_limit.min(MAX_DEPTH_LIMIT);
        let index = Index::default();
        let head = {
            let mut data = index.write();
            // The walks cannot evaluate caveats or expirations yet: a database holding
            // such a relationship is refused rather than read as unconditional.
            let mut conditional = None;
            let head = store.for_each_live(&mut |relationship| {
                if relationship.is_conditional() {
                    conditional.get_or_insert_with(|| relationship.to_string());
                } else {
                    data.insert_live(&relationship, 0);
                }
            })?;
            if let Some(relationship) = conditional {
                return Err(crate::schema::admit::AdmitError::ConditionsUnsupported {
                    relationship,
                }
                .into());
            }
            data.set_head(head);
            data.set_oldest(head);
            head
        };
        let (head_tx, _) = tokio::sync::watch::channel(head);
        let inner = Arc::new(Self {
            cache: CheckCache::new(config.cache_capacity),
            config,
            store,
            write_lock: Mutex::new(()),
            schema: RwLock::new(None),
            index,
            head_tx,
            quantized: Mutex::new((head, Instant::now())),
            commit_times: Mutex::new(VecDeque::from([(head, Instant::now())])),
        });
        if let Some((text, revision)) = inner.store.read_schema()? {
            let schema = schema_text::compile(&text)?;
            inner.set_schema(schema, text, revision);
        }
        spawn_collector(Arc::downgrade(&inner));
        Ok(inner)
    }

    /// The installed schema, if any.
    pub fn loaded(&self) -> Option<Arc<LoadedSchema>> {
        self.schema.read().clone()
    }

    /// The installed schema, or [`EngineError::NoSchema`].
    pub fn require_schema(&self) -> Result<Arc<LoadedSchema>, EngineError> {
        self.loaded().ok_or(EngineError::NoSchema)
    }

    pub fn head(&self) -> Revision {
        self.index.read().head()
    }

    pub fn install_schema(&self, schema: Schema, text: &str) -> Result<Revision, EngineError> {
        let _writer = self.write_lock.lock();
        let old = self.loaded();
        schema_text::refuse_orphans(
            self.store.as_ref(),
            old.as_ref().map(|it| it.schema.as_ref()),
            &schema,
        )?;
        let revision = self.store.write_schema(text)?;
        self.set_schema(schema, text.to_string(), revision);
        self.publish(revision);
        Ok(revision)
    }

    pub(super) fn set_schema(&self, schema: Schema, text: String, revision: Revision) {
        let mut data = self.index.write();
        let plan = Plan::build(&schema, &mut data);
        data.set_head(revision);
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
        let _writer = self.write_lock.lock();
        let loaded = self.require_schema()?;
        for update in updates {
            if update.op != crate::store::UpdateOp::Delete {
                admit::check_relationship(&loaded.schema, &update.relationship)?;
            }
        }
        match self.store.write(updates, preconditions)? {
            Ok(change_set) => {
                self.apply(&change_set);
                Ok(Ok(change_set.revision))
            }
            Err(rejection) => Ok(Err(rejection)),
        }
    }

    pub fn delete(&self, filter: &RelationshipFilter) -> Result<Deleted, EngineError> {
        let _writer = self.write_lock.lock();
        let change_set = self.store.delete_by_filter(filter)?;
        self.apply(&change_set);
        Ok(Deleted {
            revision: change_set.revision,
            deleted: change_set.changes.len(),
        })
    }

    pub fn import(
        &self,
        relationships: &mut dyn Iterator<Item = Relationship>,
    ) -> Result<Revision, EngineError> {
        let _writer = self.write_lock.lock();
        let loaded = self.require_schema()?;
        let mut last = self.head();
        loop {
            let chunk: Vec<Relationship> = (&mut *relationships).take(IMPORT_CHUNK * 10).collect();
            if chunk.is_empty() {
                break;
            }
            for relationship in &chunk {
                admit::check_relationship(&loaded.schema, relationship)?;
            }
            let change_sets = self.store.import(&mut chunk.into_iter())?;
            for change_set in &change_sets {
                self.apply(change_set);
                last = change_set.revision;
            }
        }
        Ok(last)
    }

    /// Applies a committed change set to the index and publishes its revision.
    fn apply(&self, change_set: &ChangeSet) {
        for chunk in change_set.changes.chunks(IMPORT_CHUNK) {
            let partial = ChangeSet {
                revision: change_set.revision,
                changes: chunk.to_vec(),
            };
            // Readers at the new revision cannot start before the head moves, which
            // happens only once the last chunk is in.
            let mut data = self.index.write();
            let head = data.head();
            data.apply(&partial);
            data.set_head(head);
        }
        self.index.write().set_head(change_set.revision);
        self.publish(change_set.revision);
    }

    pub(super) fn publish(&self, revision: Revision) {
        self.commit_times
            .lock()
            .push_back((revision, Instant::now()));
        self.head_tx.send_replace(revision);
    }

    /// Drops versions older than the retention window from the store and the index.
    pub fn collect_garbage(&self) -> Result<usize, EngineError> {
        let Some(cutoff) = Instant::now().checked_sub(self.config.gc_retention) else {
            return Ok(0);
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
            return Ok(0);
        };
        let removed = self.store.collect_garbage(horizon)?;
        self.index.write().collect_garbage(horizon);
        Ok(removed)
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
