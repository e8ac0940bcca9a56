//! [`PgStore`]: the PostgreSQL backend of the [`Store`] trait, for deployments where
//! several `arbiter serve` processes share one database (DESIGN §4, docs/DEPLOYMENT.md).
//!
//! - **Revisions** come from one counter row (`arbiter_revision`), bumped with
//!   `UPDATE … RETURNING` as the first statement of every write transaction. The row lock
//!   serializes writers, so revision order is commit order: one total order every server
//!   agrees on, and "every revision up to the head is committed" holds by construction.
//! - **MVCC rows**: a relationship version carries `created_rev` and `deleted_rev`; a read
//!   at R sees the versions with `created_rev <= R < deleted_rev`. The change log is
//!   derived from them (what R created, what R deleted): no second copy to keep in step.
//! - **Schema writes** are revisions too (the counter moves; followers notice the schema
//!   row's revision).
//! - **Bulk import** on empty ground is one transaction that drops the versioned table's
//!   indexes, copies everything in with one `COPY`, and builds them again; otherwise each
//!   chunk is copied straight into the table when none of its tuples is live (the primary
//!   key proves it), and merged through a temporary table with one `INSERT … ON
//!   CONFLICT` when some are (docs/DEPLOYMENT.md, "Bulk import").
//! - **Garbage collection** runs in one server at a time (a transaction advisory lock).
//! - **Wake-ups**: every commit sends `NOTIFY`; `listen.rs` turns them into
//!   [`Store::wait_for_commits`] returns. Polling stays the guarantee.
//!
//! The trait is synchronous and the driver (tokio-postgres with a deadpool pool) is
//! async: the store owns a small dedicated Tokio runtime and every call hands a future to
//! it and waits on a plain channel. That works from any thread, including threads that
//! are themselves inside another runtime, where `block_on` would panic.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::model::{Relationship, RelationshipFilter, Revision};
use crate::store::{
    ChangeSet, Page, Precondition, Store, StoreError, Update, WriteRejection, check_batch,
    check_relationship,
};

mod listen;
mod migrate;
mod read;
mod sql;
mod write;

pub use self::migrate::latest as latest_schema_version;

/// Advisory lock keys (one namespace per purpose; the values spell "arbiter").
mod advisory {
    /// Held while migrating, so concurrent starts migrate once.
    pub const MIGRATE: i64 = 0x6172_6269_7465_7201;
    /// Held while collecting garbage, so one server at a time does it.
    pub const GC: i64 = 0x6172_6269_7465_7202;
}

/// How to reach the database and how to behave there. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// `postgres://USER:PASS@HOST:PORT/DB` (or `postgresql://`).
    pub url: String,
    /// A PostgreSQL schema to keep the tables in (created if absent); `None` keeps the
    /// connection's default search path. Tests use one schema each.
    pub schema: Option<String>,
    /// Relationships per import chunk (one revision and one transaction each).
    pub import_chunk: usize,
    /// Connections in the pool.
    pub pool_size: usize,
    /// How long to wait for a connection before a call fails as unavailable.
    pub connect_timeout: Duration,
}

/// Failures of the PostgreSQL backend; every one becomes a [`StoreError`].
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("invalid postgresql url: {0}")]
    Url(String),
    #[error("invalid postgresql schema name `{0}`: expected lowercase letters, digits and `_`")]
    SchemaName(String),
    #[error("postgresql: {0}")]
    Sql(String),
    #[error("postgresql is unreachable: {0}")]
    Unreachable(String),
    #[error(
        "the database was migrated by a newer arbiter (schema version {found}, this binary knows versions up to {supported}): run the newer arbiter"
    )]
    NewerSchema { found: i32, supported: i32 },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(err: tokio_postgres::Error) -> Self {
        let mut text = match err.as_db_error() {
            Some(db) => db.message().to_string(),
            None => err.to_string(),
        };
        let mut source = std::error::Error::source(&err);
        if err.as_db_error().is_none() {
            while let Some(inner) = source {
                text = format!("{text}: {inner}");
                source = inner.source();
            }
        }
        if err.as_db_error().is_some() {
            Self::Sql(text)
        } else {
            Self::Unreachable(text)
        }
    }
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        match err {
            deadpool_postgres::PoolError::Backend(inner) => inner.into(),
            other => Self::Unreachable(other.to_string()),
        }
    }
}

impl From<PgError> for StoreError {
    fn from(err: PgError) -> Self {
        match err {
            PgError::Corrupt(text) => StoreError::Corrupt(text),
            other => StoreError::Io(other.to_string()),
        }
    }
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &self.redacted_url())
            .field("schema", &self.schema)
            .field("import_chunk", &self.import_chunk)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

/// Whether `text` names a PostgreSQL database rather than a directory.
pub fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

impl PgConfig {
    /// A configuration for `url`, which must be a `postgres://` or `postgresql://` url.
    pub fn new(url: &str) -> Result<Self, PgError> {
        if !is_postgres_url(url) {
            return Err(PgError::Url(
                "expected `postgres://USER:PASS@HOST:PORT/DB`".to_string(),
            ));
        }
        url.parse::<tokio_postgres::Config>()
            .map_err(|err| PgError::Url(err.to_string()))?;
        Ok(Self {
            url: url.to_string(),
            schema: None,
            import_chunk: 10_000,
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
        })
    }

    /// The url without its password, for messages and logs.
    pub fn redacted_url(&self) -> String {
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return "postgres://…".to_string();
        };
        match rest.rsplit_once('@') {
            Some((user_info, host)) => {
                let user = user_info.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}@{host}")
            }
            None => self.url.clone(),
        }
    }

    fn driver_config(&self) -> Result<tokio_postgres::Config, PgError> {
        let mut config: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|err: tokio_postgres::Error| PgError::Url(err.to_string()))?;
        config.connect_timeout(self.connect_timeout);
        config.application_name("arbiter");
        if let Some(schema) = &self.schema {
            config.options(format!("-c search_path={schema}"));
        }
        Ok(config)
    }

    /// The NOTIFY channel of this store's tables (one per schema, so that tests sharing
    /// a database do not wake each other).
    fn channel(&self) -> String {
        format!("arbiter_{}", self.schema.as_deref().unwrap_or("public"))
    }
}

/// The PostgreSQL store. Cheap to share: calls run on its own runtime.
pub struct PgStore {
    runtime: OwnedRuntime,
    pool: Pool,
    config: Arc<PgConfig>,
    listener: Arc<listen::Wakeups>,
}

impl PgStore {
    /// Connects (failing at once, with the reason, on a wrong url, host or password),
    /// creates the schema if configured, migrates, and starts the LISTEN connection.
    pub fn open(config: PgConfig) -> Result<Self, StoreError> {
        if let Some(schema) = &config.schema
            && !schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(PgError::SchemaName(schema.clone()).into());
        }
        let runtime = OwnedRuntime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("arbiter-pg")
                .enable_all()
                .build()
                .map_err(|err| {
                    StoreError::Io(format!("cannot start the postgresql runtime: {err}"))
                })?,
        ));
        let handle = runtime.get()?.handle().clone();
        let driver = config.driver_config()?;
        let config = Arc::new(config);
        let setup = {
            let driver = driver.clone();
            let config = config.clone();
            async move { setup(&driver, &config).await }
        };
        run_on(runtime.get()?, setup)?;
        let manager = Manager::from_config(
            driver.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|err| StoreError::Io(format!("cannot build the postgresql pool: {err}")))?;
        let listener = listen::Wakeups::start(&handle, driver, config.channel());
        Ok(Self {
            runtime,
            pool,
            config,
            listener,
        })
    }

    /// Runs `make(pool, config)` on the store's runtime and waits for it.
    fn run<T, F>(&self, make: impl FnOnce(Pool, Arc<PgConfig>) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, PgError>> + Send + 'static,
    {
        let future = make(self.pool.clone(), self.config.clone());
        run_on(self.runtime()?, future).map_err(StoreError::from)
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, StoreError> {
        self.runtime.get()
    }
}

/// The change sets of a bulk load: `rels` in chunks of `chunk_size`, one per revision.
fn touches_by_revision(
    rels: Vec<Relationship>,
    revisions: &[Revision],
    chunk_size: usize,
) -> Vec<ChangeSet> {
    let mut input = rels.into_iter();
    revisions
        .iter()
        .map(|&revision| ChangeSet {
            revision,
            changes: (&mut input)
                .take(chunk_size)
                .map(|relationship| crate::store::Change {
                    op: crate::store::ChangeOp::Touch,
                    relationship,
                })
                .collect(),
        })
        .collect()
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.pool.close();
    }
}

/// The store's own runtime. Dropping a runtime blocks, which Tokio forbids inside another
/// runtime (the server's), so this shuts it down in the background instead. `None` only
/// while dropping.
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl OwnedRuntime {
    fn get(&self) -> Result<&tokio::runtime::Runtime, StoreError> {
        self.0
            .as_ref()
            .ok_or_else(|| StoreError::Io("the postgresql store is closed".to_string()))
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Spawns `future` on `runtime` and blocks this thread until it finishes.
fn run_on<T, F>(runtime: &tokio::runtime::Runtime, future: F) -> Result<T, PgError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, PgError>> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        // The receiver only goes away if the caller did, which a blocked caller cannot.
        let _ = tx.send(future.await);
    });
    rx.recv()
        .map_err(|_| PgError::Unreachable("the postgresql task ended early".to_string()))?
}

/// The first connection: proves the url and password, creates the schema, migrates.
async fn setup(driver: &tokio_postgres::Config, config: &PgConfig) -> Result<(), PgError> {
    let (mut client, connection) = driver.connect(NoTls).await?;
    let driver_task = tokio::spawn(connection);
    if let Some(schema) = &config.schema {
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await
            .or_else(|err| match err.code() {
                Some(code) if *code == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => Ok(()),
                _ => Err(err),
            })?;
    }
    let res = migrate::migrate(&mut client).await;
    drop(client);
    let _ = driver_task.await;
    res
}

impl Store for PgStore {
    fn read_index_image(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(|pool, _| async move {
            let client = pool.get().await?;
            let row = client
                .query_opt("SELECT image FROM arbiter_index_image WHERE id = 1", &[])
                .await?;
            Ok(row.map(|row| row.get::<_, Vec<u8>>(0)))
        })
    }

    /// Upserts the one image row unless it holds a newer image (another server's).
    fn write_index_image(&self, revision: Revision, image: &[u8]) -> Result<(), StoreError> {
        let image = image.to_vec();
        let revision = i64::try_from(revision.0)
            .map_err(|_| StoreError::Io("revision out of range".to_string()))?;
        self.run(move |pool, _| async move {
            let client = pool.get().await?;
            client
                .execute(
                    "INSERT INTO arbiter_index_image (id, revision, image) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO UPDATE SET revision = EXCLUDED.revision, \
                     image = EXCLUDED.image \
                     WHERE arbiter_index_image.revision < EXCLUDED.revision",
                    &[&revision, &image],
                )
                .await?;
            Ok(())
        })
    }

    fn head(&self) -> Result<Revision, StoreError> {
        self.run(|pool, _| async move { Ok(read::bounds(&pool).await?.0) })
    }

    fn oldest_readable(&self) -> Result<Revision, StoreError> {
        self.run(|pool, _| async move { Ok(read::bounds(&pool).await?.1) })
    }

    fn write(
        &self,
        updates: &[Update],
        preconditions: &[Precondition],
    ) -> Result<Result<ChangeSet, WriteRejection>, StoreError> {
        if let Err(rejection) = check_batch(updates, preconditions)? {
            return Ok(Err(rejection));
        }
        let updates = updates.to_vec();
        let preconditions = preconditions.to_vec();
        self.run(|pool, config| async move {
            write::write(&pool, &config.channel(), &updates, &preconditions).await
        })
    }

    fn delete_by_filter(
        &self,
        filter: &RelationshipFilter,
        limit: usize,
    ) -> Result<ChangeSet, StoreError> {
        let filter = filter.clone();
        self.run(move |pool, config| async move {
            write::delete_by_filter(&pool, &config.channel(), &filter, limit).await
        })
    }

    fn apply_at_one_revision(
        &self,
        updates: &[Update],
        schema: Option<&str>,
    ) -> Result<ChangeSet, StoreError> {
        for update in updates {
            check_relationship(&update.relationship)?;
        }
        let updates = updates.to_vec();
        let schema = schema.map(str::to_string);
        self.run(|pool, config| async move {
            write::apply_at_one_revision(&pool, &config.channel(), &updates, schema.as_deref())
                .await
        })
    }

    fn import(
        &self,
        relationships: &mut dyn Iterator<Item = Relationship>,
    ) -> Result<Vec<ChangeSet>, StoreError> {
        let chunk_size = self.config.import_chunk.max(1);
        let all: Vec<Relationship> = relationships.collect();
        for rel in &all {
            check_relationship(rel)?;
        }
        let mut unique = crate::store::last_of_each_tuple(all);
        if unique.len() > chunk_size {
            // Several chunks: on empty ground, a bulk load (see `write::bulk_load`).
            let (loaded, returned) = self.run(move |pool, config| async move {
                let loaded =
                    write::bulk_load(&pool, &config.channel(), &unique, chunk_size).await?;
                Ok((loaded, unique))
            })?;
            if let Some(revisions) = loaded {
                return Ok(touches_by_revision(returned, &revisions, chunk_size));
            }
            unique = returned;
        }
        let mut res = Vec::new();
        let mut input = unique.into_iter();
        loop {
            let chunk: Vec<Relationship> = (&mut input).take(chunk_size).collect();
            if chunk.is_empty() {
                return Ok(res);
            }
            res.push(self.run(|pool, config| async move {
                write::import_chunk(&pool, &config.channel(), chunk).await
            })?);
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
        let filter = filter.clone();
        self.run(
            move |pool, _| async move { read::page(&pool, &filter, revision, limit, after).await },
        )?
    }

    fn subjects(
        &self,
        resource: &crate::model::ObjectRef,
        relation: &str,
        revision: Revision,
    ) -> Result<Vec<crate::model::SubjectRef>, StoreError> {
        let filter = crate::store::resource_filter(resource, relation);
        let page = self.read(&filter, revision, 0, None)?;
        Ok(page
            .relationships
            .into_iter()
            .map(|rel| rel.subject)
            .collect())
    }

    fn resources(
        &self,
        subject: &crate::model::SubjectRef,
        resource_type: Option<&str>,
        relation: Option<&str>,
        revision: Revision,
    ) -> Result<Vec<(crate::model::ObjectRef, String)>, StoreError> {
        let filter = crate::store::subject_filter(subject, resource_type, relation);
        let page = self.read(&filter, revision, 0, None)?;
        Ok(page
            .relationships
            .into_iter()
            .map(|rel| (rel.resource, rel.relation))
            .collect())
    }

    fn read_schema(&self) -> Result<Option<(String, Revision)>, StoreError> {
        self.run(|pool, _| async move { read::schema(&pool).await })
    }

    fn write_schema(&self, text: &str) -> Result<Revision, StoreError> {
        let text = text.to_string();
        self.run(|pool, config| async move {
            write::write_schema(&pool, &config.channel(), &text).await
        })
    }

    fn changes_since(&self, since: Revision, limit: usize) -> Result<Vec<ChangeSet>, StoreError> {
        self.run(move |pool, _| async move { read::changes_since(&pool, since, limit).await })?
    }

    fn for_each_live(&self, f: &mut dyn FnMut(Relationship)) -> Result<Revision, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Relationship>>(4);
        let pool = self.pool.clone();
        let runtime = self.runtime()?;
        let task = runtime.spawn(async move { read::live_snapshot(&pool, tx).await });
        for batch in rx {
            batch.into_iter().for_each(&mut *f);
        }
        let res = run_on(runtime, async move {
            task.await
                .map_err(|err| PgError::Unreachable(format!("the snapshot task failed: {err}")))?
        })?;
        Ok(res)
    }

    fn collect_garbage(&self, horizon: Revision) -> Result<usize, StoreError> {
        self.run(move |pool, _| async move { write::collect_garbage(&pool, horizon).await })
    }

    fn collect_expired_relationships(
        &self,
        before: crate::model::Timestamp,
    ) -> Result<usize, StoreError> {
        self.run(
            move |pool, _| async move { write::collect_expired_relationships(&pool, before).await },
        )
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every acknowledged write is a committed transaction (synchronous_commit).
        Ok(())
    }

    fn wait_for_commits(&self, timeout: Duration) {
        self.listener.wait(timeout);
    }
}
