//! Backup, restore and permissions as code from the command line:
//! `arbiter export --format validation` writes the schema and every relationship, read at
//! ONE revision, as a validation file; `serve --bootstrap` of that file on an empty store
//! restores it. `arbiter import --sync FILE [--dry-run]` makes a running server (or, with
//! `--db`, a database directory) match a permissions file, printing `+ rel` / `- rel`.
//!
//! Relationships are written with their text form (`Display`), so whatever a relationship
//! carries (caveats, expiration) comes along.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::client::{Client, ClientError, Connection};
use super::transfer::{ExportArgs, ImportArgs};
use super::{EXIT_INVALID, EXIT_OK};
use crate::engine::{self, Arbiter, SyncReport};
use crate::server::dto::{ConsistencyBody, FilterBody, ReadAnswer, ReadBody, SchemaAnswer};
use crate::server::sync::{SyncAnswer, SyncBody};

/// A validation file as written by the export.
#[derive(Serialize)]
struct BackupFile {
    schema: String,
    relationships: String,
}

/// The schema and relationships of one revision, as validation-file YAML.
pub fn render_validation(schema: &str, relationships: &[String]) -> Result<String, ClientError> {
    let mut lines = relationships.join("\n");
    if !lines.is_empty() {
        lines.push('\n');
    }
    yaml_serde::to_string(&BackupFile {
        schema: schema.to_string(),
        relationships: lines,
    })
    .map_err(|err| ClientError::Usage(format!("cannot render the backup: {err}")))
}

/// `arbiter export --format validation`.
pub fn export_validation(args: &ExportArgs, out: &mut impl Write) -> Result<(), ClientError> {
    let (schema, relationships, revision) = match &args.db {
        Some(dir) => snapshot_of_directory(dir)?,
        None => snapshot_of_server(&args.connection)?,
    };
    let text = render_validation(&schema, &relationships)?;
    writeln!(
        out,
        "# arbiter backup at revision {revision}: schema and {} relationship(s)",
        relationships.len()
    )
    .and_then(|()| out.write_all(text.as_bytes()))
    .map_err(|err| ClientError::Usage(format!("cannot write the backup: {err}")))
}

fn snapshot_of_directory(dir: &Path) -> Result<(String, Vec<String>, u64), ClientError> {
    let usage = |err: engine::EngineError| ClientError::Usage(format!("{}: {err}", dir.display()));
    if !dir.exists() {
        return Err(ClientError::Usage(format!(
            "{}: no such database directory",
            dir.display()
        )));
    }
    let engine = Arbiter::open(dir, engine::Config::default()).map_err(usage)?;
    let Some((schema, _)) = engine.schema_text() else {
        return Err(ClientError::Usage(format!(
            "{}: the database holds no schema",
            dir.display()
        )));
    };
    let revision = engine.head();
    let mut relationships = Vec::new();
    super::transfer::each_stored(&engine, dir, type_names(&engine), revision, |it| {
        relationships.push(it.to_string());
        Ok(())
    })?;
    Ok((schema, relationships, revision.0))
}

/// Every page is read at the revision of the first one (an exact snapshot), so writes
/// that land during the export are not half in it. The schema is read before and after:
/// if it changed in between, the export fails rather than pair data with the wrong schema.
fn snapshot_of_server(connection: &Connection) -> Result<(String, Vec<String>, u64), ClientError> {
    let client = Client::new(connection);
    let schema: SchemaAnswer = client.get("/v1/schema")?;
    let compiled = crate::schema::parse_and_compile(&schema.schema).map_err(|errors| {
        ClientError::Usage(format!(
            "the server's schema does not compile: {}",
            errors.render("schema").trim_end()
        ))
    })?;
    let mut snapshot: Option<u64> = None;
    let mut relationships = Vec::new();
    for definition in &compiled.definitions {
        let mut cursor = None;
        loop {
            let body = ReadBody {
                filter: FilterBody {
                    resource_type: definition.name.clone(),
                    ..FilterBody::default()
                },
                limit: None,
                cursor: cursor.take(),
                consistency: snapshot.map(|revision| ConsistencyBody::AtExactSnapshot { revision }),
            };
            let page: ReadAnswer = client.post("/v1/relationships/read", &body)?;
            snapshot.get_or_insert(page.revision);
            relationships.extend(page.relationships);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    let after: SchemaAnswer = client.get("/v1/schema")?;
    if after.schema != schema.schema {
        return Err(ClientError::Usage(
            "the schema changed during the export; run it again".to_string(),
        ));
    }
    Ok((schema.schema, relationships, snapshot.unwrap_or(0)))
}

fn type_names(engine: &Arbiter) -> Vec<String> {
    engine
        .schema()
        .map(|schema| {
            schema
                .definitions
                .iter()
                .map(|it| it.name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// `arbiter import --sync FILE [--dry-run]`: exit 0 when synced (or the dry run ran),
/// 1 when the file is invalid, 2 when the sync failed.
pub fn import_sync(args: &ImportArgs) -> u8 {
    let request = match crate::sync::read(&args.file) {
        Ok(request) => request,
        Err(err) => {
            eprintln!("{err}");
            return EXIT_INVALID;
        }
    };
    let answer = match &args.db {
        Some(dir) => sync_directory(dir, &request, args.dry_run),
        None => {
            let body = SyncBody {
                schema: request.schema.clone(),
                resource_types: request.resource_types.clone(),
                relationships: request
                    .relationships
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                dry_run: args.dry_run,
            };
            Client::new(&args.connection).post::<_, SyncAnswer>("/v1/sync", &body)
        }
    };
    match answer {
        Ok(answer) => {
            print!("{}", render_answer(&answer, args.dry_run));
            EXIT_OK
        }
        Err(err) => super::client::fail(&err),
    }
}

fn sync_directory(
    dir: &Path,
    request: &engine::SyncRequest,
    dry_run: bool,
) -> Result<SyncAnswer, ClientError> {
    let usage = |err: engine::EngineError| ClientError::Usage(format!("{}: {err}", dir.display()));
    let engine = Arbiter::open(dir, engine::Config::default()).map_err(usage)?;
    let report: SyncReport = engine.sync(request, dry_run).map_err(usage)?;
    engine.save_index_image().map_err(usage)?;
    engine.flush().map_err(usage)?;
    Ok(SyncAnswer::from_report(&report))
}

/// `~ schema`, `- rel` and `+ rel` lines, then a summary line.
pub fn render_answer(answer: &SyncAnswer, dry_run: bool) -> String {
    let mut out = String::new();
    if answer.schema_changed {
        out.push_str("~ schema\n");
    }
    for relationship in &answer.removed {
        out.push_str(&format!("- {relationship}\n"));
    }
    for relationship in &answer.added {
        out.push_str(&format!("+ {relationship}\n"));
    }
    let counts = format!(
        "{} added, {} removed",
        answer.added.len(),
        answer.removed.len()
    );
    let summary = match (dry_run, answer.revision) {
        (true, _) => format!("dry run: would be {counts}; nothing written"),
        (false, Some(revision)) => format!("synced at revision {revision}: {counts}"),
        (false, None) => "already in sync: nothing written".to_string(),
    };
    out.push_str(&summary);
    out.push('\n');
    out
}
