//! The check engine: check, bulk check, expand and lookups over one revision of the store,
//! behind the embeddable [`Arbiter`] handle that the server and the CLI sit on.
//!
//! Layout:
//! - [`api`]: request and answer types: one request struct per operation
//!   ([`CheckRequest`], [`ExpandRequest`], [`LookupResourcesRequest`],
//!   [`LookupSubjectsRequest`], [`ReadRequest`], [`DeleteRequest`]; reads also take a
//!   [`Consistency`]), [`Decision`], [`ExpandTree`], pages;
//! - [`error`]: [`EngineError`], one enum for the layer, with a stable code per kind;
//! - `index` (with `versions`): the revision-aware in-memory read path (interned symbols,
//!   MVCC version sets, forward and reverse indexes) fed by the write path — the engine
//!   never reads the store on the hot path;
//! - `plan`: per-schema data computed once (name symbols, reverse dependency edges, the
//!   declared types a request context is checked against: `context`);
//! - `writer`: the shared state and the write path; `schema_text`: compiling schema text
//!   and refusing schema changes that orphan relationships;
//! - `queries`: the read side — consistency mode → revision, names → symbols, the cache;
//! - `check`, `expand`, `lookup`: the walks; `cache`: the bounded check cache;
//! - `deadline`: [`Deadline`] and the budget every walk ticks (cancellation);
//! - `filters`: filters and preconditions validated against the schema;
//! - `pages`: lookup cursors, and the cache of paused walks and results that later pages
//!   resume from;
//! - `explain`: the explaining walk, separate from `check` so a plain check pays nothing.
//!
//! Writes go through one lock: validate against the schema (`schema::admit`) →
//! `Store::write` → apply the committed change set to the index → publish the new head
//! revision. Readers pick a revision first (the consistency mode) and then see exactly the
//! tuples live at it.
//!
//! Limits worth knowing: a read at an old revision uses the current schema (schemas are
//! not versioned); after a restart the index starts at the head, so snapshots older than
//! the open are expired for checks; interned strings live until the process ends.

pub mod api;
mod cache;
mod check;
mod conditional;
mod context;
mod deadline;
pub mod error;
mod expand;
mod explain;
mod filters;
mod index;
mod lookup;
mod pages;
mod plan;
mod queries;
mod schema_text;
mod sync;
mod versions;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{ObjectRef, Revision, SubjectRef};
use crate::schema::Schema;
use crate::store::{
    ChangeSet, MemoryStore, Precondition, SledConfig, SledStore, Store, Update, WriteRejection,
};

pub use api::{
    BulkDecision, CacheStats, CheckAnswer, CheckParts, CheckRequest, ConditionalId, Consistency,
    Context, DEFAULT_DELETE_LIMIT, Decision, DeleteOptions, DeleteRequest, Deleted, ExpandDepth,
    ExpandNode, ExpandRequest, ExpandTree, Expansion, LookupResourcesRequest, LookupStats,
    LookupSubjectsRequest, MAX_DELETE_LIMIT, Permissionship, ReadPage, ReadRequest, ResourcePage,
    StoreHealth, SubjectsAnswer,
};
pub use deadline::Deadline;
pub use error::{ContextValueError, EngineError, SchemaProblem};
pub use explain::{
    EXPLAIN_NODE_LIMIT, ExplainKind, ExplainNode, ExplainedAnswer, Explanation, Reason, Verdict,
};
pub use index::IndexStats;
/// The cursor after each result of a lookup page (for streams that answer one per result).
pub(crate) use pages::cursors_after;
pub use sync::{SyncReport, SyncRequest};

/// The stack of the thread a recursive expand runs on (see [`Arbiter::expand`]).
const EXPAND_STACK_BYTES: usize = 256 << 20;

/// The deepest walk the engine accepts, whatever the configuration says: it bounds the
/// native stack used by a check (each level is a few frames).
pub const MAX_DEPTH_LIMIT: u32 = 200;

/// Engine settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// How many nested steps (subject sets, arrows, permission references) a walk may take
    /// before it answers [`EngineError::DepthExceeded`]. Clamped to [`MAX_DEPTH_LIMIT`].
    pub depth_limit: u32,
    /// How many check answers the cache holds; 0 turns the cache off.
    pub cache_capacity: usize,
    /// `minimize_latency` reads use a revision that advances at most once per window, so
    /// that repeated checks hit the cache.
    pub quantization_window: Duration,
    /// Whether a write is acknowledged only after the store made it durable. Used by
    /// [`Arbiter::open`]; a store passed to [`Arbiter::with_store`] keeps its own setting.
    pub durable: bool,
    /// How long old tuple versions stay readable (exact-snapshot reads, watch) before the
    /// background collector drops them.
    pub gc_retention: Duration,
    /// The most items (nodes plus leaf subjects) one expand answer may hold; a larger
    /// answer is [`EngineError::ExpandTooLarge`], never a truncated tree.
    pub expand_limit: usize,
    /// The most updates plus preconditions one write may hold (the server's
    /// `--max-batch`); at most [`crate::store::MAX_WRITE_UPDATES`].
    pub max_batch: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            depth_limit: 50,
            cache_capacity: 100_000,
            quantization_window: Duration::from_secs(5),
            durable: true,
            gc_retention: Duration::from_secs(24 * 60 * 60),
            expand_limit: 100_000,
            max_batch: crate::store::MAX_WRITE_UPDATES,
        }
    }
}

/// An embeddable arbiter: a store, the schema, the in-memory read path and the check cache.
///
/// Cheap to clone (a handle to shared state) and safe to use from many threads. Every
/// method is synchronous; async callers should run them on a blocking thread. A handle may
/// carry a [`Deadline`] ([`Arbiter::with_deadline`]): every walk it starts stops with
/// [`EngineError::DeadlineExceeded`] once the deadline passes.
///
/// ```
/// use arbiter::engine::{Arbiter, CheckRequest, Config, Consistency};
/// use arbiter::store::{Update, UpdateOp};
///
/// let engine = Arbiter::in_memory(Config::default())?;
/// engine.write_schema(
///     "definition user {}
///      definition doc { relation viewer: user | user:*  permission view = viewer }",
/// )?;
/// let update = Update {
///     op: UpdateOp::Touch,
///     relationship: "doc:readme#viewer@user:alice".parse()?,
/// };
/// let revision = engine.write(&[update], &[])??;
/// let request = CheckRequest::new("doc:readme".parse()?, "view", "user:alice".parse()?);
/// let decision = engine.check(&request, Consistency::AtLeastAsFresh { revision })?;
/// assert!(decision.allowed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Arbiter {
    inner: Arc<writer::Inner>,
    /// When the calls made through this handle stop being worth answering.
    deadline: Deadline,
}

impl Arbiter {
    /// Opens (or creates) the sled database at `path`.
    pub fn open(path: impl AsRef<Path>, config: Config) -> Result<Self, EngineError> {
        let mut sled = SledConfig::new(path.as_ref());
        sled.durable = config.durable;
        sled.retention = config.gc_retention;
        let store = SledStore::open(&sled)?;
        Self::with_store(Box::new(store), config)
    }

    /// A temporary sled database, removed when the engine is dropped.
    pub fn temporary(config: Config) -> Result<Self, EngineError> {
        let mut sled = SledConfig::temporary();
        sled.durable = config.durable;
        sled.retention = config.gc_retention;
        let store = SledStore::open(&sled)?;
        Self::with_store(Box::new(store), config)
    }

    /// An engine over the in-memory store (nothing persists; for tests and embedding).
    pub fn in_memory(config: Config) -> Result<Self, EngineError> {
        Self::with_store(Box::new(MemoryStore::new()), config)
    }

    /// Opens the engine over any store: loads the stored schema (if any) and builds the
    /// in-memory index from the live relationships.
    pub fn with_store(store: Box<dyn Store>, config: Config) -> Result<Self, EngineError> {
        let inner = writer::Inner::open(store, config)?;
        Ok(Self {
            inner,
            deadline: Deadline::none(),
        })
    }

    /// A handle to the same engine whose calls stop at `deadline` (checks, bulk checks,
    /// expands, lookups, reads and deletes): the way a server makes a request that timed
    /// out, or whose client left, stop working.
    pub fn with_deadline(&self, deadline: Deadline) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            deadline,
        }
    }

    fn budget(&self) -> deadline::Budget {
        deadline::Budget::new(self.deadline.clone())
    }

    /// Compiles `text` and makes it the schema at a new revision. Refused (and nothing
    /// changes) when it does not compile or would orphan stored relationships.
    pub fn write_schema(&self, text: &str) -> Result<Revision, EngineError> {
        let schema = schema_text::compile(text)?;
        self.inner.install_schema(schema, text)
    }

    /// Like [`Arbiter::write_schema`] for a schema compiled elsewhere; `text` is what
    /// [`Arbiter::schema_text`] will answer and what is stored.
    pub fn write_compiled_schema(
        &self,
        schema: Schema,
        text: &str,
    ) -> Result<Revision, EngineError> {
        self.inner.install_schema(schema, text)
    }

    /// Ok when a schema is loaded; else why not: [`EngineError::NoSchema`], or
    /// [`EngineError::StoredSchemaInvalid`] when the stored one no longer compiles (the
    /// engine opens without it, so that a corrected schema can be written).
    pub fn require_schema(&self) -> Result<(), EngineError> {
        self.inner.require_schema().map(|_| ())
    }

    /// The current compiled schema, if one is loaded.
    pub fn schema(&self) -> Option<Arc<Schema>> {
        self.inner.loaded().map(|loaded| Arc::clone(&loaded.schema))
    }

    /// The current schema text and the revision that wrote it, if one is loaded.
    pub fn schema_text(&self) -> Option<(String, Revision)> {
        self.inner
            .loaded()
            .map(|loaded| (loaded.text.clone(), loaded.revision))
    }

    /// Applies a batch atomically at a new revision. Every relationship is validated against
    /// the schema first; one invalid relationship rejects the whole batch with
    /// [`EngineError::InvalidRelationship`]. A failed precondition, a `create` of an existing
    /// tuple or a duplicate in the batch is `Ok(Err(..))`: nothing was written.
    pub fn write(
        &self,
        updates: &[Update],
        preconditions: &[Precondition],
    ) -> Result<Result<Revision, WriteRejection>, EngineError> {
        self.budget().check()?;
        self.inner.write(updates, preconditions)
    }

    /// Makes the store match `request` (a schema and the complete relationships of some
    /// resource types) at one new revision, or with `dry_run` only says what would change.
    /// Validated in full first; nothing changes on error. See `engine::sync`.
    pub fn sync(&self, request: &SyncRequest, dry_run: bool) -> Result<SyncReport, EngineError> {
        self.inner.sync(request, dry_run)
    }

    /// Deletes the live relationships matching `request.filter` at a new revision, at most
    /// `request.options.limit` ([`DEFAULT_DELETE_LIMIT`] when `None`); more matches are
    /// [`EngineError::DeleteTooLarge`] (nothing deleted) unless
    /// `options.allow_partial_deletions`, which deletes `limit` of them (in key order) and
    /// answers [`Deleted::partial`].
    pub fn delete(&self, request: &DeleteRequest) -> Result<Deleted, EngineError> {
        self.budget().check()?;
        self.inner.delete(&request.filter, request.options)
    }

    /// Whether the store accepts writes. After a failed write this probes the store (and
    /// recovers when the cause is gone), so `/readyz` can call it.
    pub fn store_health(&self) -> StoreHealth {
        self.inner.store_health()
    }

    /// Loads many relationships (touch semantics), all validated against the schema before
    /// any is stored (a bad one changes nothing), then committed by the store in chunks of
    /// its own (one revision each). Returns the last revision.
    pub fn import(
        &self,
        relationships: &mut dyn Iterator<Item = crate::model::Relationship>,
    ) -> Result<Revision, EngineError> {
        self.inner.import(relationships)
    }

    /// Whether `relationship` may be written under the loaded schema — what
    /// [`Arbiter::write`] and [`Arbiter::import`] check — without writing it.
    pub fn admit(&self, relationship: &crate::model::Relationship) -> Result<(), EngineError> {
        self.inner.admit(relationship)
    }

    /// Relationships matching `request.filter` at the chosen snapshot, at most
    /// `request.limit`, resuming after `request.cursor`.
    pub fn read(
        &self,
        request: &ReadRequest,
        consistency: Consistency,
    ) -> Result<ReadPage, EngineError> {
        self.inner.read(
            &request.filter,
            consistency,
            request.limit,
            request.cursor.as_deref(),
            &self.budget(),
        )
    }

    /// The stored subjects of `resource#relation` (objects, subject sets, wildcards), from
    /// the in-memory index: the engine's forward read path. Only relationships without a
    /// caveat or an expiration are listed (a subject alone cannot say its condition); use
    /// [`Arbiter::read`] to see those.
    pub fn read_subjects(
        &self,
        resource: &ObjectRef,
        relation: &str,
        consistency: Consistency,
    ) -> Result<(Vec<SubjectRef>, Revision), EngineError> {
        self.inner
            .read_subjects(resource, relation, consistency, &self.budget())
    }

    /// The ids of `resource_type` objects whose `relation` names `subject` exactly, from
    /// the in-memory index: the engine's reverse read path. Only relationships without a
    /// caveat or an expiration are listed, as for [`Arbiter::read_subjects`].
    pub fn read_resources(
        &self,
        subject: &SubjectRef,
        resource_type: &str,
        relation: &str,
        consistency: Consistency,
    ) -> Result<(Vec<String>, Revision), EngineError> {
        self.inner.read_resources(
            subject,
            resource_type,
            relation,
            consistency,
            &self.budget(),
        )
    }

    /// May `request.subject` do `request.permission` to `request.resource`? An unknown
    /// type, relation or permission is an error, never `allowed`. With a caveat on the way
    /// the answer may be conditional, naming the parameters `request.context` lacks (never
    /// `allowed`).
    pub fn check(
        &self,
        request: &CheckRequest,
        consistency: Consistency,
    ) -> Result<Decision, EngineError> {
        self.inner.check(request, consistency, &self.budget())
    }

    /// The check cache's answer to a question without context, the names as the client
    /// wrote them (split, not validated: only a validated question's answer is ever
    /// cached, so an invalid one finds nothing). `None` when there is none, or when the
    /// revision cannot be chosen; [`Arbiter::check`] then answers, or reports the error.
    /// A hit costs no parsing, no allocation and no symbol lookup.
    pub fn cached_check(
        &self,
        parts: &CheckParts<'_>,
        consistency: Consistency,
    ) -> Option<Decision> {
        self.inner.cached_check(parts, consistency, &self.budget())
    }

    /// [`Arbiter::check`] with the reasons: for an allowed check the chain of expressions
    /// and relationships that grants it, for a denied one every branch tried and why it
    /// failed, for a conditional one the caveats missing context. Never cached; costs a
    /// second walk.
    pub fn check_explained(
        &self,
        request: &CheckRequest,
        consistency: Consistency,
    ) -> Result<(Decision, Explanation), EngineError> {
        self.inner.check_explained(
            request,
            consistency,
            request.context.as_ref(),
            &self.budget(),
        )
    }

    /// Many checks at one revision, sharing sub-answers between items (each with its own
    /// context). Items fail one by one (an unknown permission fails its item only); the
    /// call fails only when no revision can be chosen or no schema is loaded.
    pub fn check_bulk(
        &self,
        requests: &[CheckRequest],
        consistency: Consistency,
    ) -> Result<BulkDecision, EngineError> {
        self.inner.check_bulk(requests, consistency, &self.budget())
    }

    /// The userset tree of `request.resource#request.permission`: each userset expanded once (a repeat is
    /// [`ExpandNode::Repeated`]), at most [`Config::expand_limit`] items.
    pub fn expand(
        &self,
        request: &ExpandRequest,
        consistency: Consistency,
    ) -> Result<Expansion, EngineError> {
        let (resource, permission, depth) = (
            &request.resource,
            request.permission.as_str(),
            request.depth,
        );
        let budget = self.budget();
        if depth == ExpandDepth::OneLevel {
            return self
                .inner
                .expand(resource, permission, depth, consistency, &budget);
        }
        // A recursive expand recurses per userset level and per operator, up to the depth
        // limit (≤ 200) × MAX_EXPR_NESTING frames, each larger than a check's: more than
        // the 2 MiB of an async worker or a blocking-pool thread. It runs on a thread of
        // its own whose stack is sized for that worst case (reserved, not committed: only
        // the pages a walk touches cost memory).
        std::thread::scope(|scope| {
            let walk = std::thread::Builder::new()
                .name("arbiter-expand".to_string())
                .stack_size(EXPAND_STACK_BYTES)
                .spawn_scoped(scope, || {
                    self.inner
                        .expand(resource, permission, depth, consistency, &budget)
                })
                .map_err(|err| {
                    EngineError::StoreUnavailable(format!("cannot start the expand walk: {err}"))
                })?;
            walk.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// The ids of every `request.resource_type` object on which `request.subject` holds
    /// `request.permission`, at most `request.limit` (0 = no limit), from `request.cursor`
    /// (the previous page's, opaque) on. Ids come in walk order, **not sorted**: one
    /// deterministic order per listing, every id once. A page walks only as far as the
    /// page needs, and the paused walk is kept for a while under the next cursor, so every
    /// page (the first too) costs in proportion to the page; a cursor whose walk was
    /// evicted walks again and skips, slower but never different. The cursor pins the
    /// first page's revision. Ids on which the permission holds only under a caveat
    /// missing parameters of `request.context` are listed apart, in
    /// [`ResourcePage::conditional`] (one order and one cursor with the definite ones);
    /// each id's answer is what [`Arbiter::check`] answers for it (judged with the clock
    /// of the listing's first page; see `engine::pages`).
    pub fn lookup_resources(
        &self,
        request: &LookupResourcesRequest,
        consistency: Consistency,
    ) -> Result<ResourcePage, EngineError> {
        self.inner.lookup_resources(
            &request.resource_type,
            &request.permission,
            &request.subject,
            request.context.as_ref(),
            request.limit,
            request.cursor.as_deref(),
            consistency,
            &self.budget(),
        )
    }

    /// The ids of the `request.subject_type` objects that hold `request.permission` on
    /// `request.resource`, with `*` when a wildcard grants it (and the ids it does not
    /// reach in `excluded`): at most `request.limit` ids (0 = no limit) from
    /// `request.cursor` (the previous page's, opaque, pinning its revision) on, paged like
    /// [`Arbiter::lookup_resources`]: in walk order, each page in proportion to the page.
    /// When a wildcard grants the permission (the answer has `*` and `excluded`), or
    /// while caveated or expiring relationships exist, the whole result is computed,
    /// sorted by byte order (`*` first), and kept instead. Subjects (and `*`) that hold
    /// only under a caveat missing parameters of `request.context` are listed apart, in
    /// [`SubjectsAnswer::conditional`].
    pub fn lookup_subjects(
        &self,
        request: &LookupSubjectsRequest,
        consistency: Consistency,
    ) -> Result<SubjectsAnswer, EngineError> {
        self.inner.lookup_subjects(
            &request.resource,
            &request.permission,
            &request.subject_type,
            request.context.as_ref(),
            request.limit,
            request.cursor.as_deref(),
            consistency,
            &self.budget(),
        )
    }

    /// Lookup work counters (lookups begun from the start, their steps, pages resumed from
    /// a kept walk or result).
    pub fn lookup_stats(&self) -> LookupStats {
        self.inner.pages.stats()
    }

    /// Change sets committed after `since`, oldest first, at most `limit`.
    pub fn changes_since(
        &self,
        since: Revision,
        limit: usize,
    ) -> Result<Vec<ChangeSet>, EngineError> {
        Ok(self.inner.store.changes_since(since, limit)?)
    }

    /// A receiver that sees every new head revision as it is published (after the index
    /// applied it), for streaming watch without polling.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Revision> {
        self.inner.head_tx.subscribe()
    }

    /// Whether this process is its store's only writer (sled, in-memory): then a check at
    /// any consistency is answered from memory, without a call to the store.
    pub fn exclusive_store(&self) -> bool {
        self.inner.store.exclusive()
    }

    /// The newest committed revision.
    pub fn head(&self) -> Revision {
        self.inner.head()
    }

    /// Sizes of the in-memory index (walks it: for metrics and benches).
    pub fn index_stats(&self) -> IndexStats {
        self.inner.index.read().stats()
    }

    /// Check-cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// Drops tuple versions older than the retention window from the index and the store.
    /// Runs in the background too; returns how many store entries were removed.
    pub fn collect_garbage(&self) -> Result<usize, EngineError> {
        self.inner.collect_garbage()
    }

    /// Bytes the store occupies on disk, if it has a disk.
    pub fn store_disk_bytes(&self) -> Option<u64> {
        self.inner.store.disk_bytes()
    }

    /// Makes everything committed so far durable.
    pub fn flush(&self) -> Result<(), EngineError> {
        Ok(self.inner.store.flush()?)
    }

    /// Saves an image of the in-memory index in the store (if the store keeps one), so
    /// the next open loads it instead of decoding every relationship; the store's change
    /// log brings it up to date then. Cheap when nothing changed since the last image.
    /// Returns the image's revision.
    pub fn save_index_image(&self) -> Result<Revision, EngineError> {
        self.inner.save_index_image()
    }

    /// The revision of the index image this engine's index was loaded from at open, or
    /// `None` if it was built from the store's relationships.
    pub fn opened_from_image(&self) -> Option<Revision> {
        self.inner.opened_from_image
    }
}
