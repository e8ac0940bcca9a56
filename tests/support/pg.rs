//! PostgreSQL for tests: each store gets its own fresh PostgreSQL schema in the database
//! named by `ARBITER_TEST_PG`, so tests run in parallel without seeing each other.
//! Without that variable the caller skips loudly (`SKIPPED:` on stderr); with
//! `ARBITER_CI=1` it fails instead, because CI must run these tests.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::sync::atomic::{AtomicU32, Ordering};

use arbiter::store::{PgConfig, PgStore};

/// The url of the test database, or `None` after a loud skip notice for `test`.
pub fn test_url(test: &str) -> Option<String> {
    match std::env::var("ARBITER_TEST_PG") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let reason = "ARBITER_TEST_PG is not set (for example \
                 postgres://arbiter:arbiter@127.0.0.1:5432/arbiter_test; `.ci/run` starts one)";
            assert!(
                std::env::var("ARBITER_CI").as_deref() != Ok("1"),
                "ARBITER_CI=1 but {test} cannot run: {reason}"
            );
            eprintln!("SKIPPED: {test} against postgresql: {reason}");
            None
        }
    }
}

/// A schema name no other test (or test process) uses.
pub fn unique_schema() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |it| it.subsec_nanos());
    format!(
        "t_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A configuration for a fresh schema, or `None` (after the skip notice).
pub fn fresh_config(test: &str) -> Option<PgConfig> {
    let url = test_url(test)?;
    sweep_dead_schemas(&url);
    let mut config = PgConfig::new(&url).expect("ARBITER_TEST_PG is a postgres url");
    config.schema = Some(unique_schema());
    config.pool_size = 4;
    Some(config)
}

/// A store over a fresh schema, or `None` (after the skip notice).
pub fn fresh_store(test: &str) -> Option<PgStore> {
    let config = fresh_config(test)?;
    Some(PgStore::open(config).expect("open the postgresql test store"))
}

/// Drops, once per test process, the schemas earlier test processes left behind: a
/// schema is `t_<pid>_…`, and one whose process is gone is nobody's. Tests do not drop
/// their own schema (a failing test's data is worth a look); this keeps the database from
/// growing without bound across runs.
fn sweep_dead_schemas(url: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let url = url.to_string();
        // Its own thread and runtime: the caller may be inside a tokio runtime.
        let swept = std::thread::spawn(move || sweep(&url)).join();
        if let Ok(Err(err)) = swept {
            eprintln!("note: leftover test schemas were not dropped: {err}");
        }
    });
}

fn sweep(url: &str) -> Result<(), tokio_postgres::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the schema sweep");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let rows = client
            .query(
                "SELECT schema_name::text FROM information_schema.schemata \
                 WHERE schema_name LIKE 't\\_%'",
                &[],
            )
            .await?;
        for row in rows {
            let name: String = row.get(0);
            let Some(pid) = name.split('_').nth(1).and_then(|it| it.parse::<u32>().ok()) else {
                continue;
            };
            if pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                .await?;
        }
        Ok(())
    })
}
