//! Write transactions of the PostgreSQL store. Each one starts by taking the next
//! revision from the counter row (`UPDATE … RETURNING`), which holds that row's lock until
//! commit: writers from every server serialize there, so revisions commit in order. Each
//! ends with `pg_notify` (delivered at commit) so that followers wake up at once.

use std::collections::HashMap;

use deadpool_postgres::{Pool, Transaction};
use futures_util::SinkExt;
use serde_json::Value;

use crate::model::ReadOrder;
use crate::model::{Relationship, RelationshipFilter, Revision};
use crate::store::{
    Change, ChangeOp, ChangeSet, Precondition, PreconditionOp, Update, UpdateOp, WriteRejection,
};

use super::read::{revision, sql_revision};
use super::sql::{COLUMNS, Conditional, Conditions, LIVE, decode, order_columns, order_values};
use super::{PgError, advisory};

/// The six tuple columns, the primary key's prefix.
const TUPLE_KEY: &str =
    "resource_type, resource_id, relation, subject_type, subject_id, subject_relation";

/// The six tuple columns, for joins with `unnest` (`t`) or the import table (`i`).
const TUPLE_JOIN_T: &str = "r.resource_type = t.rt AND r.resource_id = t.ri \
    AND r.relation = t.rl AND r.subject_type = t.st AND r.subject_id = t.si \
    AND r.subject_relation = t.sr";

const UNNEST_TUPLES: &str = "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) \
     AS t(rt, ri, rl, st, si, sr)";

/// Takes the next revision (and the counter row's lock, until commit).
async fn next_revision(tx: &Transaction<'_>) -> Result<Revision, PgError> {
    let row = tx
        .query_one(
            "UPDATE arbiter_revision SET head = head + 1 WHERE id = 1 RETURNING head",
            &[],
        )
        .await?;
    revision(row.try_get(0)?)
}

async fn notify(tx: &Transaction<'_>, channel: &str, at: Revision) -> Result<(), PgError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&channel, &at.to_string()])
        .await?;
    Ok(())
}

/// The six tuple columns of `rels` as arrays, for `unnest`.
fn tuple_arrays(rels: &[&Relationship]) -> [Vec<String>; 6] {
    let mut res: [Vec<String>; 6] = Default::default();
    for rel in rels {
        for (column, value) in res.iter_mut().zip(order_values(ReadOrder::ByResource, rel)) {
            column.push(value);
        }
    }
    res
}

/// Applies a batch of updates at a new revision (see [`crate::store::Store::write`]).
pub async fn write(
    pool: &Pool,
    channel: &str,
    updates: &[Update],
    preconditions: &[Precondition],
) -> Result<Result<ChangeSet, WriteRejection>, PgError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let at = next_revision(&tx).await?;
    for (index, precondition) in preconditions.iter().enumerate() {
        let example = first_live_match(&tx, &precondition.filter).await?;
        let reason = match (precondition.op, example) {
            (PreconditionOp::MustExist, None) => {
                Some("no relationship matches the must_exist filter".to_string())
            }
            (PreconditionOp::MustNotExist, Some(rel)) => Some(format!(
                "relationship `{rel}` matches the must_not_exist filter"
            )),
            _ => None,
        };
        if let Some(reason) = reason {
            // Dropping the transaction rolls it back, revision bump included.
            return Ok(Err(WriteRejection::PreconditionFailed { index, reason }));
        }
    }
    let live = live_versions(
        &tx,
        &updates
            .iter()
            .map(|it| &it.relationship)
            .collect::<Vec<_>>(),
    )
    .await?;
    for update in updates {
        if update.op == UpdateOp::Create && live.contains_key(&update.relationship.tuple()) {
            return Ok(Err(WriteRejection::AlreadyExists(
                update.relationship.clone(),
            )));
        }
    }
    let changes = apply_updates(&tx, updates, &live, at).await?;
    notify(&tx, channel, at).await?;
    tx.commit().await?;
    Ok(Ok(ChangeSet {
        revision: at,
        changes,
    }))
}

/// Applies `updates` (each tuple once; `create` already checked) at `at`, given the live
/// versions of their tuples, and returns the effective changes in update order.
async fn apply_updates(
    tx: &Transaction<'_>,
    updates: &[Update],
    live: &HashMap<Relationship, Relationship>,
    at: Revision,
) -> Result<Vec<Change>, PgError> {
    let mut ended: Vec<&Relationship> = Vec::new();
    let mut inserted: Vec<&Relationship> = Vec::new();
    let mut changes = Vec::new();
    for update in updates {
        let rel = &update.relationship;
        let stored = live.get(&rel.tuple());
        match update.op {
            UpdateOp::Create | UpdateOp::Touch => {
                if stored == Some(rel) {
                    continue;
                }
                if let Some(stored) = stored {
                    ended.push(rel);
                    changes.push(Change {
                        op: ChangeOp::Delete,
                        relationship: stored.clone(),
                    });
                }
                inserted.push(rel);
                changes.push(Change {
                    op: ChangeOp::Touch,
                    relationship: rel.clone(),
                });
            }
            UpdateOp::Delete => {
                if let Some(stored) = stored {
                    ended.push(rel);
                    changes.push(Change {
                        op: ChangeOp::Delete,
                        relationship: stored.clone(),
                    });
                }
            }
        }
    }
    end_versions(tx, &ended, at).await?;
    insert_versions(tx, &inserted, at).await?;
    Ok(changes)
}

/// Applies any number of updates (the first of each tuple; `create` acts as `touch`) and
/// optionally a new schema text, all at one new revision in one transaction.
pub async fn apply_at_one_revision(
    pool: &Pool,
    channel: &str,
    updates: &[Update],
    schema: Option<&str>,
) -> Result<ChangeSet, PgError> {
    let mut seen = std::collections::HashSet::new();
    let updates: Vec<Update> = updates
        .iter()
        .filter(|it| seen.insert(it.relationship.tuple()))
        .cloned()
        .collect();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let at = next_revision(&tx).await?;
    let mut changes = Vec::new();
    for chunk in updates.chunks(crate::store::MAX_WRITE_UPDATES) {
        let live = live_versions(
            &tx,
            &chunk.iter().map(|it| &it.relationship).collect::<Vec<_>>(),
        )
        .await?;
        changes.extend(apply_updates(&tx, chunk, &live, at).await?);
    }
    if let Some(text) = schema {
        store_schema(&tx, text, at).await?;
    }
    notify(&tx, channel, at).await?;
    tx.commit().await?;
    Ok(ChangeSet {
        revision: at,
        changes,
    })
}

async fn first_live_match(
    tx: &Transaction<'_>,
    filter: &RelationshipFilter,
) -> Result<Option<Relationship>, PgError> {
    let order = filter.read_order();
    let mut conditions = Conditions::default();
    conditions.filter(filter);
    conditions.live();
    let query = format!(
        "SELECT {COLUMNS} FROM arbiter_relationship {} ORDER BY {} LIMIT 1",
        conditions.where_clause(),
        order_columns(order)
    );
    let row = tx.query_opt(&query, &conditions.refs()).await?;
    row.as_ref().map(decode).transpose()
}

/// The live version of each of `tuples`, keyed by the bare tuple.
async fn live_versions(
    tx: &Transaction<'_>,
    tuples: &[&Relationship],
) -> Result<HashMap<Relationship, Relationship>, PgError> {
    if tuples.is_empty() {
        return Ok(HashMap::new());
    }
    let arrays = tuple_arrays(tuples);
    let query = format!(
        "SELECT {} FROM arbiter_relationship r JOIN {UNNEST_TUPLES} ON {TUPLE_JOIN_T} \
         WHERE r.deleted_rev = {LIVE}",
        prefixed_columns("r")
    );
    let rows = tx
        .query(
            &query,
            &[
                &arrays[0], &arrays[1], &arrays[2], &arrays[3], &arrays[4], &arrays[5],
            ],
        )
        .await?;
    let mut res = HashMap::with_capacity(rows.len());
    for row in &rows {
        let rel = decode(row)?;
        res.insert(rel.tuple(), rel);
    }
    Ok(res)
}

fn prefixed_columns(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|column| format!("{alias}.{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ends the live versions of `tuples` at `at`.
async fn end_versions(
    tx: &Transaction<'_>,
    tuples: &[&Relationship],
    at: Revision,
) -> Result<(), PgError> {
    if tuples.is_empty() {
        return Ok(());
    }
    let arrays = tuple_arrays(tuples);
    let query = format!(
        "UPDATE arbiter_relationship r SET deleted_rev = $7 FROM {UNNEST_TUPLES} \
         WHERE {TUPLE_JOIN_T} AND r.deleted_rev = {LIVE}"
    );
    tx.execute(
        &query,
        &[
            &arrays[0],
            &arrays[1],
            &arrays[2],
            &arrays[3],
            &arrays[4],
            &arrays[5],
            &sql_revision(at),
        ],
    )
    .await?;
    Ok(())
}

/// Inserts `rels` as versions created at `at`.
async fn insert_versions(
    tx: &Transaction<'_>,
    rels: &[&Relationship],
    at: Revision,
) -> Result<(), PgError> {
    if rels.is_empty() {
        return Ok(());
    }
    let arrays = tuple_arrays(rels);
    let mut caveat_names: Vec<Option<String>> = Vec::with_capacity(rels.len());
    let mut contexts: Vec<Option<Value>> = Vec::with_capacity(rels.len());
    let mut seconds: Vec<Option<i64>> = Vec::with_capacity(rels.len());
    let mut nanos: Vec<Option<i32>> = Vec::with_capacity(rels.len());
    for rel in rels {
        let conditional = Conditional::of(rel);
        caveat_names.push(conditional.caveat_name);
        contexts.push(conditional.caveat_context);
        seconds.push(conditional.expiration_seconds);
        nanos.push(conditional.expiration_nanos);
    }
    let query = format!(
        "INSERT INTO arbiter_relationship ({COLUMNS}, created_rev) \
         SELECT *, $11 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
         $5::text[], $6::text[], $7::text[], $8::jsonb[], $9::int8[], $10::int4[])"
    );
    tx.execute(
        &query,
        &[
            &arrays[0],
            &arrays[1],
            &arrays[2],
            &arrays[3],
            &arrays[4],
            &arrays[5],
            &caveat_names,
            &contexts,
            &seconds,
            &nanos,
            &sql_revision(at),
        ],
    )
    .await?;
    Ok(())
}

/// Ends every live version matching `filter` at one new revision.
pub async fn delete_by_filter(
    pool: &Pool,
    channel: &str,
    filter: &RelationshipFilter,
    limit: usize,
) -> Result<ChangeSet, PgError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let at = next_revision(&tx).await?;
    let order = filter.read_order();
    let mut conditions = Conditions::default();
    conditions.filter(filter);
    conditions.live();
    let rev = conditions.bind(super::sql::Param::Int(sql_revision(at)));
    let limit_clause = if limit == 0 {
        String::new()
    } else {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        format!("LIMIT {}", conditions.bind(super::sql::Param::Int(limit)))
    };
    // The first `limit` matches in read order (the primary key picks the live version).
    let query = format!(
        "UPDATE arbiter_relationship SET deleted_rev = {rev} \
         WHERE (resource_type, resource_id, relation, subject_type, subject_id, \
                subject_relation, created_rev) IN ( \
           SELECT resource_type, resource_id, relation, subject_type, subject_id, \
                  subject_relation, created_rev FROM arbiter_relationship {} \
           ORDER BY {} {limit_clause}) \
         RETURNING {COLUMNS}",
        conditions.where_clause(),
        order_columns(order),
    );
    let rows = tx.query(&query, &conditions.refs()).await?;
    let mut deleted = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    deleted.sort_by(|a, b| order.key(a).cmp(&order.key(b)));
    notify(&tx, channel, at).await?;
    tx.commit().await?;
    Ok(ChangeSet {
        revision: at,
        changes: deleted
            .into_iter()
            .map(|relationship| Change {
                op: ChangeOp::Delete,
                relationship,
            })
            .collect(),
    })
}

/// Loads one chunk (each tuple once) at a new revision, touch semantics.
///
/// First optimistically: the chunk is sorted in the primary key's order and copied
/// straight into the versioned table, every row a new live version. That is right exactly
/// when none of its tuples is live yet (an import into new ground, the common case), and
/// the primary key proves it: a live version has `deleted_rev = LIVE`, so a tuple that is
/// live already fails the COPY with a unique violation. Then the savepoint is rolled back
/// and the chunk goes through the merge ([`merge_chunk`]), which compares conditions.
pub async fn import_chunk(
    pool: &Pool,
    channel: &str,
    mut chunk: Vec<Relationship>,
) -> Result<ChangeSet, PgError> {
    chunk.sort_by(|a, b| {
        ReadOrder::ByResource
            .key(a)
            .cmp(&ReadOrder::ByResource.key(b))
    });
    let mut client = pool.get().await?;
    let mut tx = client.transaction().await?;
    let at = next_revision(&tx).await?;
    let savepoint = tx.savepoint("arbiter_import_direct").await?;
    let copied = copy_rows(&savepoint, &copy_versions(), &chunk, |_| Some(at)).await;
    let changes = match copied {
        Ok(()) => {
            savepoint.commit().await?;
            chunk
                .into_iter()
                .map(|relationship| Change {
                    op: ChangeOp::Touch,
                    relationship,
                })
                .collect()
        }
        Err(err) if err.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            savepoint.rollback().await?;
            merge_chunk(&tx, &chunk, at).await?
        }
        Err(err) => return Err(err.into()),
    };
    notify(&tx, channel, at).await?;
    tx.commit().await?;
    Ok(ChangeSet {
        revision: at,
        changes,
    })
}

/// Loads `rels` (each tuple once) into a store that
/// holds no relationship version at all — a first load — in one transaction, one revision
/// per `chunk` relationships; `None` (nothing done) when the store is not empty.
///
/// On empty ground every row is a new live version, so the indexes of the versioned table
/// are dropped, the rows copied in with one COPY, and the indexes built again from their
/// own definitions (`pg_indexes`) before the commit: PostgreSQL builds a B-tree from
/// sorted input several times faster than it inserts into one row by row. The table is
/// locked (`ACCESS EXCLUSIVE`) for the transaction, after the revision row, the lock every
/// writer takes first, so writers and readers on other servers wait for the commit
/// instead of seeing a table without its indexes; they see all the revisions at once.
pub async fn bulk_load(
    pool: &Pool,
    channel: &str,
    rels: &[Relationship],
    chunk: usize,
) -> Result<Option<Vec<Revision>>, PgError> {
    let started = std::time::Instant::now();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT head FROM arbiter_revision WHERE id = 1 FOR UPDATE",
        &[],
    )
    .await?;
    tx.batch_execute("LOCK TABLE arbiter_relationship IN ACCESS EXCLUSIVE MODE")
        .await?;
    let empty: bool = tx
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM arbiter_relationship)",
            &[],
        )
        .await?
        .try_get(0)?;
    if !empty {
        return Ok(None);
    }
    let indexes = tx
        .query(
            "SELECT i.indexname, i.indexdef, c.conname, c.contype::text \
             FROM pg_indexes i LEFT JOIN pg_constraint c \
               ON c.conindid = (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass \
             WHERE i.schemaname = current_schema() AND i.tablename = 'arbiter_relationship'",
            &[],
        )
        .await?;
    let mut rebuild = Vec::with_capacity(indexes.len());
    for row in &indexes {
        let name: String = row.try_get(0)?;
        let definition: String = row.try_get(1)?;
        let constraint: Option<String> = row.try_get(2)?;
        let kind = match row.try_get::<_, Option<String>>(3)?.as_deref() {
            Some("p") => "PRIMARY KEY",
            Some("u") => "UNIQUE",
            Some(other) if constraint.is_some() => {
                return Err(PgError::Sql(format!(
                    "index `{name}` backs a constraint of kind `{other}` the bulk load cannot rebuild"
                )));
            }
            _ => "",
        };
        let drop = match &constraint {
            Some(constraint) => format!(
                "ALTER TABLE arbiter_relationship DROP CONSTRAINT {}",
                quote_ident(constraint)
            ),
            None => format!("DROP INDEX {}", quote_ident(&name)),
        };
        tx.batch_execute(&drop).await?;
        rebuild.push((name, definition, constraint.map(|it| (it, kind))));
    }
    let chunk = chunk.max(1);
    let revisions = rels.len().div_ceil(chunk);
    let head = tx
        .query_one(
            "UPDATE arbiter_revision SET head = head + $1 WHERE id = 1 RETURNING head",
            &[&i64::try_from(revisions).map_err(|_| PgError::Sql("import too large".into()))?],
        )
        .await?;
    let last = revision(head.try_get(0)?)?;
    let first = last.0 + 1 - revisions as u64;
    let at: Vec<Revision> = (0..revisions)
        .map(|idx| Revision(first + idx as u64))
        .collect();
    copy_rows(&tx, &copy_versions(), rels, |idx| {
        Some(Revision(first + (idx / chunk) as u64))
    })
    .await?;
    let copied = started.elapsed();
    // Sorting for the B-trees is the slow part of the rebuild: give it memory (this
    // transaction only).
    tx.batch_execute("SET LOCAL maintenance_work_mem = '256MB'")
        .await?;
    for (name, definition, constraint) in rebuild {
        tx.batch_execute(&definition).await?;
        if let Some((constraint, kind)) = constraint {
            tx.batch_execute(&format!(
                "ALTER TABLE arbiter_relationship ADD CONSTRAINT {} {kind} USING INDEX {}",
                quote_ident(&constraint),
                quote_ident(&name)
            ))
            .await?;
        }
    }
    notify(&tx, channel, last).await?;
    let indexed = started.elapsed();
    tx.commit().await?;
    tracing::info!(
        relationships = rels.len(),
        revisions,
        copy_ms = copied.as_millis() as u64,
        indexes_ms = (indexed - copied).as_millis() as u64,
        commit_ms = (started.elapsed() - indexed).as_millis() as u64,
        "bulk load into an empty postgresql store"
    );
    Ok(Some(at))
}

/// `COPY` of new versions straight into the versioned table: the [`COLUMNS`], then
/// `created_rev`.
fn copy_versions() -> String {
    format!("COPY arbiter_relationship ({COLUMNS}, created_rev) FROM STDIN")
}

/// `name` as an SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Streams `rels` into `copy` (a `COPY … FROM STDIN` in text format): each relationship,
/// with `created_rev(its position)` as a last column when that gives one.
async fn copy_rows(
    tx: &Transaction<'_>,
    copy: &str,
    rels: &[Relationship],
    created_rev: impl Fn(usize) -> Option<Revision>,
) -> Result<(), tokio_postgres::Error> {
    const FLUSH_AT: usize = 1 << 20;
    let sink = tx.copy_in(copy).await?;
    futures_util::pin_mut!(sink);
    let mut buf = Vec::with_capacity(FLUSH_AT + 4096);
    for (idx, rel) in rels.iter().enumerate() {
        copy_line(&mut buf, rel, created_rev(idx).map(sql_revision));
        if buf.len() >= FLUSH_AT {
            let full = std::mem::replace(&mut buf, Vec::with_capacity(FLUSH_AT + 4096));
            sink.send(bytes::Bytes::from(full)).await?;
        }
    }
    if !buf.is_empty() {
        sink.send(bytes::Bytes::from(buf)).await?;
    }
    sink.finish().await?;
    Ok(())
}

/// The merge of a chunk some of whose tuples are live already: COPY into a temporary
/// table, then one `INSERT … ON CONFLICT` against the versioned table. Returns the
/// effective changes (ended versions as deletes, new versions as touches).
async fn merge_chunk(
    tx: &Transaction<'_>,
    chunk: &[Relationship],
    at: Revision,
) -> Result<Vec<Change>, PgError> {
    tx.batch_execute(
        "CREATE TEMPORARY TABLE arbiter_import (
            resource_type TEXT COLLATE \"C\", resource_id TEXT COLLATE \"C\",
            relation TEXT COLLATE \"C\", subject_type TEXT COLLATE \"C\",
            subject_id TEXT COLLATE \"C\", subject_relation TEXT COLLATE \"C\",
            caveat_name TEXT, caveat_context JSONB,
            expiration_seconds BIGINT, expiration_nanos INTEGER
         ) ON COMMIT DROP",
    )
    .await?;
    copy_rows(
        tx,
        &format!("COPY arbiter_import ({COLUMNS}) FROM STDIN"),
        chunk,
        |_| None,
    )
    .await?;
    // One pass: the primary key's probe of each row is the duplicate check (a live
    // version has deleted_rev = LIVE). A new tuple is inserted; a live tuple whose caveat
    // or expiration differs has its version ended (touch semantics: a new version
    // follows); the same tuple unchanged is no change.
    let merge = format!(
        "INSERT INTO arbiter_relationship AS r ({COLUMNS}, created_rev) \
         SELECT {}, $1 FROM arbiter_import i \
         ON CONFLICT ({TUPLE_KEY}, deleted_rev) DO UPDATE SET deleted_rev = $1 \
         WHERE r.caveat_name IS DISTINCT FROM EXCLUDED.caveat_name \
            OR r.caveat_context IS DISTINCT FROM EXCLUDED.caveat_context \
            OR r.expiration_seconds IS DISTINCT FROM EXCLUDED.expiration_seconds \
            OR r.expiration_nanos IS DISTINCT FROM EXCLUDED.expiration_nanos \
         RETURNING {}, r.deleted_rev",
        prefixed_columns("i"),
        prefixed_columns("r")
    );
    let rows = tx.query(&merge, &[&sql_revision(at)]).await?;
    let live = |row: &tokio_postgres::Row| -> Result<bool, PgError> {
        Ok(row.try_get::<_, i64>("deleted_rev")? == LIVE)
    };
    let (mut created, mut ended) = (Vec::new(), Vec::new());
    for row in rows {
        if live(&row)? {
            created.push(row);
        } else {
            ended.push(row);
        }
    }
    if !ended.is_empty() {
        // The new versions of the tuples just ended (nothing else is missing now).
        let insert = format!(
            "INSERT INTO arbiter_relationship ({COLUMNS}, created_rev) \
             SELECT {}, $1 FROM arbiter_import i \
             ON CONFLICT ({TUPLE_KEY}, deleted_rev) DO NOTHING \
             RETURNING {COLUMNS}",
            prefixed_columns("i")
        );
        created.extend(tx.query(&insert, &[&sql_revision(at)]).await?);
    }
    let mut changes = Vec::with_capacity(ended.len() + created.len());
    for (op, rows) in [(ChangeOp::Delete, &ended), (ChangeOp::Touch, &created)] {
        let mut rels = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        rels.sort_by(|a, b| {
            ReadOrder::ByResource
                .key(a)
                .cmp(&ReadOrder::ByResource.key(b))
        });
        changes.extend(
            rels.into_iter()
                .map(|relationship| Change { op, relationship }),
        );
    }
    Ok(changes)
}

/// One line of COPY's text format for `rel`: the [`COLUMNS`], then `created_rev` when
/// given.
fn copy_line(buf: &mut Vec<u8>, rel: &Relationship, created_rev: Option<i64>) {
    use std::io::Write as _;
    fn text(buf: &mut Vec<u8>, text: &str) {
        for &byte in text.as_bytes() {
            match byte {
                b'\\' => buf.extend_from_slice(b"\\\\"),
                b'\t' => buf.extend_from_slice(b"\\t"),
                b'\n' => buf.extend_from_slice(b"\\n"),
                b'\r' => buf.extend_from_slice(b"\\r"),
                other => buf.push(other),
            }
        }
        buf.push(b'\t');
    }
    fn null(buf: &mut Vec<u8>) {
        buf.extend_from_slice(b"\\N\t");
    }
    for name in ReadOrder::ByResource.key(rel) {
        text(buf, name);
    }
    match &rel.caveat {
        Some(caveat) => {
            text(buf, &caveat.name);
            // A JSON map always serializes.
            text(
                buf,
                &serde_json::to_string(&caveat.context).unwrap_or_default(),
            );
        }
        None => {
            null(buf);
            null(buf);
        }
    }
    match rel.expiration {
        Some(at) => {
            let (seconds, nanos) = (at.unix_seconds(), at.subsec_nanos());
            // Writing into a Vec cannot fail.
            let _ = write!(buf, "{seconds}\t{nanos}\t");
        }
        None => {
            null(buf);
            null(buf);
        }
    }
    if let Some(revision) = created_rev {
        let _ = write!(buf, "{revision}\t");
    }
    // The last field's tab becomes the line's end.
    if let Some(last) = buf.last_mut() {
        *last = b'\n';
    }
}

/// Replaces the schema text at a new revision.
pub async fn write_schema(pool: &Pool, channel: &str, text: &str) -> Result<Revision, PgError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let at = next_revision(&tx).await?;
    store_schema(&tx, text, at).await?;
    notify(&tx, channel, at).await?;
    tx.commit().await?;
    Ok(at)
}

async fn store_schema(tx: &Transaction<'_>, text: &str, at: Revision) -> Result<(), PgError> {
    tx.execute(
        "INSERT INTO arbiter_schema (id, schema_text, revision) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO UPDATE SET schema_text = EXCLUDED.schema_text, \
         revision = EXCLUDED.revision",
        &[&text, &sql_revision(at)],
    )
    .await?;
    Ok(())
}

/// Removes the live versions of relationships that expired at or before `before`, if no
/// other server is collecting right now (then it does nothing and returns 0). They have
/// been invisible since they expired, so no change-log entry records their removal; a
/// write that races with the removal waits on the row lock and then finds no live
/// version, as it would after a delete.
pub async fn collect_expired_relationships(
    pool: &Pool,
    before: crate::model::Timestamp,
) -> Result<usize, PgError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&advisory::GC])
        .await?;
    if !row.try_get::<_, bool>(0)? {
        return Ok(0);
    }
    let nanos = i32::try_from(before.subsec_nanos()).unwrap_or(i32::MAX);
    let removed = tx
        .execute(
            "DELETE FROM arbiter_relationship \
             WHERE deleted_rev = 9223372036854775807 AND expiration_seconds IS NOT NULL \
             AND (expiration_seconds, expiration_nanos) <= ($1, $2)",
            &[&before.unix_seconds(), &nanos],
        )
        .await?;
    tx.commit().await?;
    Ok(usize::try_from(removed).unwrap_or(usize::MAX))
}

/// Drops versions deleted at or before `horizon` and moves the readable floor there, if
/// no other server is collecting right now (then it does nothing and returns 0).
pub async fn collect_garbage(pool: &Pool, horizon: Revision) -> Result<usize, PgError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&advisory::GC])
        .await?;
    if !row.try_get::<_, bool>(0)? {
        return Ok(0);
    }
    let row = tx
        .query_one(
            "SELECT head, oldest FROM arbiter_revision WHERE id = 1",
            &[],
        )
        .await?;
    let (head, oldest): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    let horizon = sql_revision(horizon).min(head);
    if horizon <= oldest {
        return Ok(0);
    }
    let removed = tx
        .execute(
            "DELETE FROM arbiter_relationship WHERE deleted_rev <= $1",
            &[&horizon],
        )
        .await?;
    tx.execute(
        "UPDATE arbiter_revision SET oldest = GREATEST(oldest, $1) WHERE id = 1",
        &[&horizon],
    )
    .await?;
    tx.commit().await?;
    Ok(usize::try_from(removed).unwrap_or(usize::MAX))
}
