//! Versioned migrations of the PostgreSQL schema: numbered `.sql` files embedded in the
//! binary, applied in order, each recorded in `arbiter_schema_migrations`.
//!
//! Several servers may start at once: migrating happens in one transaction under a
//! transaction-scoped advisory lock, so one migrates and the others find the work done.
//! A database migrated by a newer arbiter (a version this binary does not know) is
//! refused: this binary cannot know what the newer tables mean.

use tokio_postgres::Client;

use super::{PgError, advisory};

/// Every migration, oldest first: (version, name, SQL). Released files are never edited.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (
        2,
        "one_tuple_key",
        include_str!("migrations/0002_one_tuple_key.sql"),
    ),
    (
        3,
        "index_image",
        include_str!("migrations/0003_index_image.sql"),
    ),
    (
        4,
        "subject_id_first",
        include_str!("migrations/0004_subject_id_first.sql"),
    ),
];

/// The newest schema version this binary knows.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |(version, _, _)| *version)
}

/// Brings the database to [`latest`], or refuses a database that is ahead of it.
pub async fn migrate(client: &mut Client) -> Result<(), PgError> {
    client
        .batch_execute(
            // No notice on every start that the table exists.
            "SET client_min_messages = warning;
            CREATE TABLE IF NOT EXISTS arbiter_schema_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await
        .or_else(tolerate_concurrent_create)?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&advisory::MIGRATE])
        .await?;
    let row = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM arbiter_schema_migrations",
            &[],
        )
        .await?;
    let found: i32 = row.try_get(0)?;
    if found > latest() {
        return Err(PgError::NewerSchema {
            found,
            supported: latest(),
        });
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > found) {
        tracing::info!(version, name, "applying postgresql migration");
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO arbiter_schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Two servers creating the bookkeeping table at the same moment may collide on the
/// catalog's unique index even with `IF NOT EXISTS`; the table exists either way.
fn tolerate_concurrent_create(err: tokio_postgres::Error) -> Result<(), PgError> {
    match err.code() {
        Some(code) if *code == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => Ok(()),
        _ => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (idx, (version, _, sql)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version as usize, idx + 1);
            assert!(!sql.trim().is_empty());
        }
    }
}
