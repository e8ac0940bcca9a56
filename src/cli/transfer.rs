//! `arbiter import` and `arbiter export`: relationships as text, one per line
//! (`document:1#viewer@user:alice`, with SpiceDB's `[caveat:{…}]` and `[expiration:…]`
//! suffixes when a relationship has them: export prints the model's text form and import
//! parses it, so one is the inverse of the other).
//!
//! Both work against a running server (the default) or, with `--db DIR`, straight on a
//! database directory no server has open. Import through a server sends touch writes of
//! `--batch` relationships each; import into a directory uses the engine's bulk path
//! (chunked transactions, one revision per chunk). Every line is parsed before anything is
//! written, so a malformed file writes nothing.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Args;

use super::client::{Client, ClientError, Connection, fail};
use super::{EXIT_ERROR, EXIT_INVALID, EXIT_OK};
use crate::engine::{self, Arbiter, Consistency, ReadRequest};
use crate::model::{Relationship, Revision};
use crate::schema::parse_and_compile;
use crate::server::dto::{
    FilterBody, ReadAnswer, ReadBody, RevisionAnswer, SchemaAnswer, UpdateBody, UpdateOpBody,
    WriteBody,
};
use crate::store::RelationshipFilter;

/// `arbiter import [FILE]`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Relationships, one per line (`-` for stdin); blank lines and lines starting with
    /// `//` or `#` are skipped.
    #[arg(default_value = "-")]
    pub file: PathBuf,
    /// Load straight into this database directory (not open by a server) or PostgreSQL
    /// database (`postgres://USER:PASS@HOST:PORT/DB`, servers may be running on it),
    /// through the engine's bulk path, instead of through a server.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Relationships per write request when importing through a server.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// FILE is a permissions file (validation YAML): make the store match it atomically,
    /// deleting what it owns but does not list.
    #[arg(long)]
    pub sync: bool,
    /// With `--sync`: print what would be added (`+`) and removed (`-`), write nothing.
    #[arg(long, requires = "sync")]
    pub dry_run: bool,
    #[command(flatten)]
    pub connection: Connection,
}

/// `arbiter export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Read this database directory (not open by a server) instead of a server.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// `lines`: one relationship per line; `validation`: a validation file with the schema
    /// and every relationship at one revision (a backup `serve --bootstrap` restores).
    #[arg(long, value_enum, default_value_t = ExportFormat::Lines)]
    pub format: ExportFormat,
    #[command(flatten)]
    pub connection: Connection,
}

/// What `arbiter export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Lines,
    Validation,
}

/// `arbiter import`.
pub fn import(args: &ImportArgs) -> u8 {
    if args.sync {
        return super::backup::import_sync(args);
    }
    let relationships = match read_relationships(&args.file) {
        Ok(relationships) => relationships,
        Err((code, message)) => {
            eprintln!("{message}");
            return code;
        }
    };
    let count = relationships.len();
    let res = match &args.db {
        Some(db) => match db
            .to_str()
            .filter(|it| crate::store::postgres::is_postgres_url(it))
        {
            Some(url) => import_into_postgres(url, relationships),
            None => import_into(db, relationships),
        },
        None => import_through(args, &relationships),
    };
    match res {
        Ok(revision) => {
            println!("imported {count} relationship(s); last revision {revision}");
            EXIT_OK
        }
        Err(err) => fail(&err),
    }
}

/// `arbiter export`.
pub fn export(args: &ExportArgs) -> u8 {
    let stdout = std::io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    let res = match (&args.db, args.format) {
        (_, ExportFormat::Validation) => super::backup::export_validation(args, &mut out),
        (Some(dir), ExportFormat::Lines) => export_from(dir, &mut out),
        (None, ExportFormat::Lines) => export_through(&args.connection, &mut out),
    };
    let res = res.and_then(|()| out.flush().map_err(io_error));
    match res {
        Ok(()) => EXIT_OK,
        // `arbiter export | head` closes the pipe early: not an error.
        Err(ClientError::Usage(message)) if message.contains("broken pipe") => EXIT_OK,
        Err(err) => fail(&err),
    }
}

/// Every relationship of `file`, or (exit code, message) naming the first bad line.
fn read_relationships(file: &Path) -> Result<Vec<Relationship>, (u8, String)> {
    let reader: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let opened = std::fs::File::open(file).map_err(|err| {
            (
                EXIT_ERROR,
                format!("{}: cannot read file: {err}", file.display()),
            )
        })?;
        Box::new(std::io::BufReader::new(opened))
    };
    let mut res = Vec::new();
    for (idx, line) in reader.lines().enumerate() {
        let line = line.map_err(|err| {
            (
                EXIT_ERROR,
                format!("{}: cannot read file: {err}", file.display()),
            )
        })?;
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") || line.starts_with('#') {
            continue;
        }
        let relationship = line.parse::<Relationship>().map_err(|err| {
            (
                EXIT_INVALID,
                format!("{}:{}: {err}", file.display(), idx + 1),
            )
        })?;
        res.push(relationship);
    }
    Ok(res)
}

fn import_through(args: &ImportArgs, relationships: &[Relationship]) -> Result<u64, ClientError> {
    let client = Client::new(&args.connection);
    let mut revision = 0;
    for chunk in relationships.chunks(args.batch.max(1)) {
        let body = WriteBody {
            updates: chunk
                .iter()
                .map(|relationship| UpdateBody {
                    op: UpdateOpBody::Touch,
                    relationship: relationship.to_string(),
                })
                .collect(),
            preconditions: Vec::new(),
        };
        let answer: RevisionAnswer = client.post("/v1/relationships/write", &body)?;
        revision = answer.revision;
    }
    Ok(revision)
}

fn import_into(dir: &Path, relationships: Vec<Relationship>) -> Result<u64, ClientError> {
    let engine = open(dir)?;
    let revision = engine
        .import(&mut relationships.into_iter())
        .map_err(|err| ClientError::Usage(format!("{}: {err}", dir.display())))?;
    // The image lets the next `serve` start without decoding every relationship.
    engine
        .save_index_image()
        .and_then(|_| engine.flush())
        .map_err(|err| ClientError::Usage(format!("{}: {err}", dir.display())))?;
    Ok(revision.0)
}

/// `import --db postgres://…`: the engine's bulk path on a PostgreSQL store (one COPY and
/// rebuilt indexes on empty ground, chunked COPY otherwise; docs/DEPLOYMENT.md). The
/// database must hold a schema already, as a directory must.
fn import_into_postgres(url: &str, relationships: Vec<Relationship>) -> Result<u64, ClientError> {
    let config = crate::store::PgConfig::new(url)
        .map_err(|err| ClientError::Usage(format!("--db: {err}")))?;
    let label = config.redacted_url();
    let engine = crate::store::PgStore::open(config)
        .map_err(engine::EngineError::from)
        .and_then(|store| Arbiter::with_store(Box::new(store), engine::Config::default()))
        .map_err(|err| ClientError::Usage(format!("{label}: cannot open the database: {err}")))?;
    let revision = engine
        .import(&mut relationships.into_iter())
        .map_err(|err| ClientError::Usage(format!("{label}: {err}")))?;
    // The newest image lets servers that start or join later skip the full read.
    engine
        .save_index_image()
        .map_err(|err| ClientError::Usage(format!("{label}: {err}")))?;
    Ok(revision.0)
}

fn export_through(connection: &Connection, out: &mut impl Write) -> Result<(), ClientError> {
    let client = Client::new(connection);
    let schema: SchemaAnswer = client.get("/v1/schema")?;
    // One consistent snapshot for every type: the revision of the first page.
    let mut snapshot = None;
    for resource_type in type_names(&schema.schema)? {
        let mut cursor = None;
        loop {
            let body = ReadBody {
                filter: FilterBody {
                    resource_type: resource_type.clone(),
                    ..FilterBody::default()
                },
                limit: None,
                cursor: cursor.take(),
                consistency: snapshot.map(|revision| {
                    crate::server::dto::ConsistencyBody::AtExactSnapshot { revision }
                }),
            };
            let page: ReadAnswer = client.post("/v1/relationships/read", &body)?;
            snapshot.get_or_insert(page.revision);
            for relationship in &page.relationships {
                writeln!(out, "{relationship}").map_err(io_error)?;
            }
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    Ok(())
}

fn export_from(dir: &Path, out: &mut impl Write) -> Result<(), ClientError> {
    let engine = open(dir)?;
    let Some((text, _)) = engine.schema_text() else {
        return Err(ClientError::Usage(format!(
            "{}: the database holds no schema",
            dir.display()
        )));
    };
    let revision = engine.head();
    each_stored(&engine, dir, type_names(&text)?, revision, |relationship| {
        writeln!(out, "{relationship}").map_err(io_error)
    })
}

/// Hands every relationship of `types` stored in `engine` (opened on `dir`) at `revision`
/// to `each`, page by page at that exact snapshot.
pub(super) fn each_stored(
    engine: &Arbiter,
    dir: &Path,
    types: Vec<String>,
    revision: Revision,
    mut each: impl FnMut(&Relationship) -> Result<(), ClientError>,
) -> Result<(), ClientError> {
    for resource_type in types {
        let mut read = ReadRequest {
            filter: RelationshipFilter {
                resource_type: Some(resource_type),
                ..RelationshipFilter::default()
            },
            limit: 1_000,
            cursor: None,
        };
        loop {
            let page = engine
                .read(&read, Consistency::AtExactSnapshot { revision })
                .map_err(|err| ClientError::Usage(format!("{}: {err}", dir.display())))?;
            for relationship in &page.relationships {
                each(relationship)?;
            }
            match page.cursor {
                Some(next) => read.cursor = Some(next),
                None => break,
            }
        }
    }
    Ok(())
}

fn open(dir: &Path) -> Result<Arbiter, ClientError> {
    if !dir.exists() {
        return Err(ClientError::Usage(format!(
            "{}: no such database directory",
            dir.display()
        )));
    }
    Arbiter::open(dir, engine::Config::default()).map_err(|err| {
        ClientError::Usage(format!(
            "{}: cannot open the database: {err}",
            dir.display()
        ))
    })
}

/// The definition names of a schema text, in order.
fn type_names(schema: &str) -> Result<Vec<String>, ClientError> {
    let compiled = parse_and_compile(schema).map_err(|errors| {
        ClientError::Usage(format!(
            "the stored schema does not compile: {}",
            errors.render("schema").trim_end()
        ))
    })?;
    Ok(compiled
        .definitions
        .iter()
        .map(|definition| definition.name.clone())
        .collect())
}

fn io_error(err: std::io::Error) -> ClientError {
    ClientError::Usage(format!(
        "cannot write to stdout: {}",
        err.to_string().to_lowercase()
    ))
}
