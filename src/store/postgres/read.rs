//! Reads of the PostgreSQL store: the revision bounds, filtered pages at a revision, the
//! schema row, the change log derived from the MVCC rows, and the live snapshot that
//! bootstraps an index.

use std::collections::BTreeMap;

use deadpool_postgres::Pool;
use futures_util::{StreamExt, pin_mut};

use crate::model::ReadOrder;
use crate::model::{Relationship, RelationshipFilter, Revision};
use crate::store::{Change, ChangeOp, ChangeSet, Page, StoreError};

use super::PgError;
use super::sql::{COLUMNS, Conditions, LIVE, Param, decode, order_columns};

/// Relationships per batch handed from the snapshot task to the caller.
const SNAPSHOT_BATCH: usize = 10_000;

/// `(head, oldest readable)`.
pub async fn bounds(pool: &Pool) -> Result<(Revision, Revision), PgError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT head, oldest FROM arbiter_revision WHERE id = 1",
            &[],
        )
        .await?;
    Ok((revision(row.try_get(0)?)?, revision(row.try_get(1)?)?))
}

pub fn revision(value: i64) -> Result<Revision, PgError> {
    u64::try_from(value)
        .map(Revision)
        .map_err(|_| PgError::Corrupt(format!("negative revision {value}")))
}

pub fn sql_revision(revision: Revision) -> i64 {
    i64::try_from(revision.0).unwrap_or(i64::MAX)
}

/// The errors of reading at `at` outside `[oldest, head]`.
fn check_readable(at: Revision, head: Revision, oldest: Revision) -> Result<(), StoreError> {
    if at > head {
        return Err(StoreError::RevisionAhead {
            requested: at,
            head,
        });
    }
    if at < oldest {
        return Err(StoreError::RevisionExpired {
            requested: at,
            oldest,
        });
    }
    Ok(())
}

/// One page of relationships matching `filter` at `at`, in the filter's index order.
pub async fn page(
    pool: &Pool,
    filter: &RelationshipFilter,
    at: Revision,
    limit: usize,
    after: Option<Relationship>,
) -> Result<Result<Page, StoreError>, PgError> {
    let (head, oldest) = bounds(pool).await?;
    if let Err(err) = check_readable(at, head, oldest) {
        return Ok(Err(err));
    }
    let order = filter.read_order();
    let mut conditions = Conditions::default();
    conditions.filter(filter);
    conditions.visible_at(sql_revision(at));
    if let Some(after) = &after {
        conditions.after(order, after, filter);
    }
    let limit_clause = if limit == 0 {
        String::new()
    } else {
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
        format!("LIMIT {}", conditions.bind(Param::Int(fetch)))
    };
    let query = format!(
        "SELECT {COLUMNS} FROM arbiter_relationship {} ORDER BY {} {limit_clause}",
        conditions.where_clause(),
        order_columns(order),
    );
    let client = pool.get().await?;
    let rows = client.query(&query, &conditions.refs()).await?;
    let mut relationships = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    let cursor = if limit != 0 && relationships.len() > limit {
        relationships.truncate(limit);
        relationships.last().map(|rel| rel.tuple().to_string())
    } else {
        None
    };
    Ok(Ok(Page {
        relationships,
        cursor,
    }))
}

/// The stored schema text and its revision.
pub async fn schema(pool: &Pool) -> Result<Option<(String, Revision)>, PgError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT schema_text, revision FROM arbiter_schema WHERE id = 1",
            &[],
        )
        .await?;
    row.map(|row| Ok((row.try_get(0)?, revision(row.try_get(1)?)?)))
        .transpose()
}

/// Change sets after `since` (at most `limit`, 0 = all), oldest first: per revision, the
/// versions it deleted (in resource order), then the versions it created.
pub async fn changes_since(
    pool: &Pool,
    since: Revision,
    limit: usize,
) -> Result<Result<Vec<ChangeSet>, StoreError>, PgError> {
    let (head, oldest) = bounds(pool).await?;
    if let Err(err) = check_readable(since, head, oldest) {
        return Ok(Err(err));
    }
    let client = pool.get().await?;
    let from = sql_revision(since);
    let mut upto = sql_revision(head);
    if limit != 0 {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &format!(
                    "SELECT rev FROM (
                        SELECT created_rev AS rev FROM arbiter_relationship
                            WHERE created_rev > $1 AND created_rev <= $2
                        UNION
                        SELECT deleted_rev AS rev FROM arbiter_relationship
                            WHERE deleted_rev > $1 AND deleted_rev <= $2 AND deleted_rev <> {LIVE}
                     ) AS revisions ORDER BY rev LIMIT $3"
                ),
                &[&from, &upto, &limit],
            )
            .await?;
        match rows.last() {
            Some(row) if rows.len() as i64 == limit => upto = row.try_get(0)?,
            _ => {}
        }
    }
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS}, created_rev, deleted_rev FROM arbiter_relationship
                 WHERE (created_rev > $1 AND created_rev <= $2)
                    OR (deleted_rev > $1 AND deleted_rev <= $2)
                 ORDER BY {}",
                order_columns(ReadOrder::ByResource)
            ),
            &[&from, &upto],
        )
        .await?;
    let mut by_revision: BTreeMap<i64, (Vec<Change>, Vec<Change>)> = BTreeMap::new();
    for row in &rows {
        let rel = decode(row)?;
        let created: i64 = row.try_get(10)?;
        let deleted: i64 = row.try_get(11)?;
        if deleted > from && deleted <= upto {
            by_revision.entry(deleted).or_default().0.push(Change {
                op: ChangeOp::Delete,
                relationship: rel.clone(),
            });
        }
        if created > from && created <= upto {
            by_revision.entry(created).or_default().1.push(Change {
                op: ChangeOp::Touch,
                relationship: rel,
            });
        }
    }
    let mut res = Vec::with_capacity(by_revision.len());
    for (rev, (mut changes, touches)) in by_revision {
        changes.extend(touches);
        res.push(ChangeSet {
            revision: revision(rev)?,
            changes,
        });
    }
    Ok(Ok(res))
}

/// Streams every live relationship of one consistent snapshot to `tx` in batches and
/// returns the snapshot's revision.
pub async fn live_snapshot(
    pool: &Pool,
    tx: std::sync::mpsc::SyncSender<Vec<Relationship>>,
) -> Result<Revision, PgError> {
    let mut client = pool.get().await?;
    let transaction = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let row = transaction
        .query_one("SELECT head FROM arbiter_revision WHERE id = 1", &[])
        .await?;
    let head = revision(row.try_get(0)?)?;
    let query = format!(
        "SELECT {COLUMNS} FROM arbiter_relationship WHERE deleted_rev = {LIVE} ORDER BY {}",
        order_columns(ReadOrder::ByResource)
    );
    let none: [&str; 0] = [];
    let rows = transaction.query_raw(&query, none).await?;
    pin_mut!(rows);
    let mut batch = Vec::with_capacity(SNAPSHOT_BATCH);
    while let Some(row) = rows.next().await {
        batch.push(decode(&row?)?);
        if batch.len() == SNAPSHOT_BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(SNAPSHOT_BATCH));
            send_blocking(&tx, full).await?;
        }
    }
    if !batch.is_empty() {
        send_blocking(&tx, batch).await?;
    }
    transaction.commit().await?;
    Ok(head)
}

/// Hands a batch to the (synchronous) consumer without blocking a runtime worker.
async fn send_blocking(
    tx: &std::sync::mpsc::SyncSender<Vec<Relationship>>,
    batch: Vec<Relationship>,
) -> Result<(), PgError> {
    let tx = tx.clone();
    tokio::task::spawn_blocking(move || tx.send(batch))
        .await
        .map_err(|err| PgError::Unreachable(format!("snapshot consumer failed: {err}")))?
        .map_err(|_| PgError::Unreachable("the snapshot consumer went away".to_string()))
}
