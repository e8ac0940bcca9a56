//! The client commands: `check`, `expand`, `lookup resources|subjects`, `write`, `read`,
//! `delete`, `schema read|write`, each one HTTP call (or one call per page) against a
//! running server. Human output by default, the server's JSON with `--json`.
//!
//! Layout: this file holds the arguments and one function per command; `http` the
//! blocking client, `filter` the filter grammar, `tree` the rendering of expand trees.
//!
//! Exit codes: 0 success (and "allowed" for `check`), 1 "denied" (or an invalid schema
//! for `schema write`), 2 anything failed.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{EXIT_ERROR, EXIT_INVALID, EXIT_OK};
use crate::engine::{ConditionalId, ExpandDepth};
use crate::server::dto::{
    CheckAnswer, CheckBody, ConsistencyBody, DeleteAnswer, DeleteBody, ExpandAnswer, ExpandBody,
    LookupResourcesAnswer, LookupResourcesBody, LookupSubjectsAnswer, LookupSubjectsBody,
    ReadAnswer, ReadBody, RevisionAnswer, SchemaAnswer, SchemaWriteBody, UpdateBody, UpdateOpBody,
    WriteBody,
};

mod filter;
mod http;
mod tree;

pub use filter::parse_filter;
pub use http::{Client, ClientError, Connection};
use tree::render_tree;

/// `arbiter check RESOURCE PERMISSION SUBJECT`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// `type:id`, such as `document:1`.
    pub resource: String,
    /// A permission or relation of the resource's type.
    pub permission: String,
    /// `type:id`, `type:id#relation` or `type:*`.
    pub subject: String,
    /// Answer at a revision at least this new (a write's revision).
    #[arg(long)]
    pub at_least_as_fresh: Option<u64>,
    /// Also print why: the relationships that grant it, or every branch tried.
    #[arg(long)]
    pub explain: bool,
    /// Caveat parameter values, a JSON object: `--context '{"ip": "10.1.2.3"}'`.
    #[arg(long)]
    pub context: Option<String>,
    #[command(flatten)]
    pub connection: Connection,
}

/// `arbiter expand RESOURCE PERMISSION`.
#[derive(Debug, Args)]
pub struct ExpandArgs {
    pub resource: String,
    pub permission: String,
    /// Follow every userset to the leaves.
    #[arg(long)]
    pub recursive: bool,
    #[command(flatten)]
    pub connection: Connection,
}

/// `arbiter lookup resources|subjects`.
#[derive(Debug, Subcommand)]
pub enum LookupCommand {
    /// Every object of TYPE on which SUBJECT holds PERMISSION.
    Resources {
        resource_type: String,
        permission: String,
        subject: String,
        /// Caveat parameter values, a JSON object; ids that hold only under a caveat
        /// missing parameters are printed as `ID (conditional: missing P, …)`.
        #[arg(long)]
        context: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Every subject of SUBJECT_TYPE that holds PERMISSION on RESOURCE.
    Subjects {
        resource: String,
        permission: String,
        subject_type: String,
        /// Caveat parameter values, a JSON object (as for `lookup resources`).
        #[arg(long)]
        context: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
}

/// `arbiter write REL…`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Relationships such as `document:1#viewer@user:alice`.
    #[arg(required = true)]
    pub relationships: Vec<String>,
    /// Delete them instead of touching them.
    #[arg(long, conflicts_with = "create")]
    pub delete: bool,
    /// Create them, failing (409) if any exists already.
    #[arg(long)]
    pub create: bool,
    #[command(flatten)]
    pub connection: Connection,
}

/// `arbiter read FILTER` and `arbiter delete FILTER`.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// `TYPE[:ID][#RELATION][@SUBJECT_TYPE[:SUBJECT_ID][#SUBJECT_RELATION]]`.
    pub filter: String,
    #[command(flatten)]
    pub connection: Connection,
}

/// `arbiter check`: exit 0 allowed, 1 denied, 2 error.
pub fn check(args: &CheckArgs) -> u8 {
    let Ok(context) = parse_context(args.context.as_deref()) else {
        return EXIT_ERROR;
    };
    let body = CheckBody {
        context,
        resource: args.resource.clone(),
        permission: args.permission.clone(),
        subject: args.subject.clone(),
        consistency: args
            .at_least_as_fresh
            .map(|revision| ConsistencyBody::AtLeastAsFresh { revision }),
        explain: args.explain,
    };
    let client = Client::new(&args.connection);
    match client.post::<_, CheckAnswer>("/v1/check", &body) {
        Ok(answer) => {
            let mut text = if args.connection.json {
                json_line(&answer)
            } else if answer.allowed {
                "allowed".to_string()
            } else if !answer.missing_context.is_empty() {
                format!(
                    "conditional: missing context {}",
                    answer
                        .missing_context
                        .iter()
                        .map(|it| format!("`{it}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                "denied".to_string()
            };
            if let (false, Some(explanation)) = (args.connection.json, &answer.explanation) {
                text.push('\n');
                text.push_str(explanation.render().trim_end());
            }
            print_out(&text);
            if answer.allowed {
                EXIT_OK
            } else {
                EXIT_INVALID
            }
        }
        Err(err) => fail(&err),
    }
}

/// `arbiter expand`: the userset tree, indented.
pub fn expand(args: &ExpandArgs) -> u8 {
    let body = ExpandBody {
        resource: args.resource.clone(),
        permission: args.permission.clone(),
        depth: if args.recursive {
            ExpandDepth::Recursive
        } else {
            ExpandDepth::OneLevel
        },
        consistency: None,
    };
    let client = Client::new(&args.connection);
    match client.post::<_, ExpandAnswer>("/v1/expand", &body) {
        Ok(answer) if args.connection.json => done(&json_line(&answer)),
        Ok(answer) => {
            let mut text = String::new();
            render_tree(&answer.tree, 0, &mut text);
            done(text.trim_end())
        }
        Err(err) => fail(&err),
    }
}

/// The `--context` option: a JSON object, or an error printed (`Err(())`).
fn parse_context(
    text: Option<&str>,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, ()> {
    match text.map(serde_json::from_str::<serde_json::Value>) {
        None => Ok(None),
        Some(Ok(serde_json::Value::Object(map))) => Ok(Some(map)),
        Some(_) => {
            eprintln!(
                "error: `--context` must be a JSON object, such as '{{\"ip\": \"10.1.2.3\"}}'"
            );
            Err(())
        }
    }
}

/// Conditional lookup results, one per line: `ID (conditional: missing P, …)`.
fn print_conditional(ids: &[ConditionalId]) {
    for it in ids {
        print_out(&format!(
            "{} (conditional: missing {})",
            it.id,
            it.missing_context.join(", ")
        ));
    }
}

/// `arbiter lookup resources|subjects`: one id per line (every page).
pub fn lookup(command: &LookupCommand) -> u8 {
    match command {
        LookupCommand::Resources {
            resource_type,
            permission,
            subject,
            context,
            connection,
        } => {
            let Ok(context) = parse_context(context.as_deref()) else {
                return EXIT_ERROR;
            };
            every_page(
                connection,
                "/v1/lookup/resources",
                |cursor| LookupResourcesBody {
                    resource_type: resource_type.clone(),
                    permission: permission.clone(),
                    subject: subject.clone(),
                    context: context.clone(),
                    limit: None,
                    cursor,
                    consistency: None,
                },
                |page: &LookupResourcesAnswer| {
                    print_lines(&page.resources);
                    print_conditional(&page.conditional);
                },
            )
        }
        LookupCommand::Subjects {
            resource,
            permission,
            subject_type,
            context,
            connection,
        } => {
            let Ok(context) = parse_context(context.as_deref()) else {
                return EXIT_ERROR;
            };
            every_page(
                connection,
                "/v1/lookup/subjects",
                |cursor| LookupSubjectsBody {
                    resource: resource.clone(),
                    permission: permission.clone(),
                    subject_type: subject_type.clone(),
                    context: context.clone(),
                    limit: None,
                    cursor,
                    consistency: None,
                },
                |page: &LookupSubjectsAnswer| {
                    print_lines(&page.subjects);
                    print_conditional(&page.conditional);
                    if !page.excluded.is_empty() {
                        print_out(&format!("except: {}", page.excluded.join(", ")));
                    }
                },
            )
        }
    }
}

/// Posts the body for each cursor to `path` until a page comes back without a cursor,
/// printing each page as one JSON line with `--json`, else through `print`.
fn every_page<B, A>(
    connection: &Connection,
    path: &str,
    body: impl Fn(Option<String>) -> B,
    print: impl Fn(&A),
) -> u8
where
    B: Serialize,
    A: Serialize + serde::de::DeserializeOwned + HasCursor,
{
    let client = Client::new(connection);
    let mut cursor = None;
    loop {
        let page: A = match client.post(path, &body(cursor.take())) {
            Ok(page) => page,
            Err(err) => return fail(&err),
        };
        if connection.json {
            print_out(&json_line(&page));
        } else {
            print(&page);
        }
        match page.cursor() {
            Some(next) => cursor = Some(next),
            None => return EXIT_OK,
        }
    }
}

/// A paged answer's cursor.
trait HasCursor {
    fn cursor(&self) -> Option<String>;
}

impl HasCursor for LookupResourcesAnswer {
    fn cursor(&self) -> Option<String> {
        self.cursor.clone()
    }
}

impl HasCursor for LookupSubjectsAnswer {
    fn cursor(&self) -> Option<String> {
        self.cursor.clone()
    }
}

/// `arbiter write REL…`: one atomic write.
pub fn write(args: &WriteArgs) -> u8 {
    let op = if args.delete {
        UpdateOpBody::Delete
    } else if args.create {
        UpdateOpBody::Create
    } else {
        UpdateOpBody::Touch
    };
    let body = WriteBody {
        updates: args
            .relationships
            .iter()
            .map(|relationship| UpdateBody {
                op,
                relationship: relationship.clone(),
            })
            .collect(),
        preconditions: Vec::new(),
    };
    match Client::new(&args.connection).post::<_, RevisionAnswer>("/v1/relationships/write", &body)
    {
        Ok(answer) if args.connection.json => done(&json_line(&answer)),
        Ok(answer) => done(&format!("written at revision {}", answer.revision)),
        Err(err) => fail(&err),
    }
}

/// `arbiter read FILTER`: one relationship per line (every page).
pub fn read(args: &FilterArgs) -> u8 {
    let filter = match parse_filter(&args.filter) {
        Ok(filter) => filter,
        Err(err) => return fail(&err),
    };
    let client = Client::new(&args.connection);
    let mut cursor = None;
    loop {
        let body = ReadBody {
            filter: filter.clone(),
            limit: None,
            cursor: cursor.take(),
            consistency: None,
        };
        let page: ReadAnswer = match client.post("/v1/relationships/read", &body) {
            Ok(page) => page,
            Err(err) => return fail(&err),
        };
        if args.connection.json {
            print_out(&json_line(&page));
        } else {
            print_lines(&page.relationships);
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return EXIT_OK,
        }
    }
}

/// `arbiter delete FILTER`.
pub fn delete(args: &FilterArgs) -> u8 {
    let filter = match parse_filter(&args.filter) {
        Ok(filter) => filter,
        Err(err) => return fail(&err),
    };
    let body = DeleteBody {
        filter,
        limit: None,
        allow_partial_deletions: false,
    };
    match Client::new(&args.connection).post::<_, DeleteAnswer>("/v1/relationships/delete", &body) {
        Ok(answer) if args.connection.json => done(&json_line(&answer)),
        Ok(answer) => done(&format!(
            "deleted {} relationship(s) at revision {}",
            answer.deleted, answer.revision
        )),
        Err(err) => fail(&err),
    }
}

/// `arbiter schema read`: the schema text.
pub fn schema_read(connection: &Connection) -> u8 {
    match Client::new(connection).get::<SchemaAnswer>("/v1/schema") {
        Ok(answer) if connection.json => done(&json_line(&answer)),
        Ok(answer) => done(answer.schema.trim_end()),
        Err(err) => fail(&err),
    }
}

/// `arbiter schema write FILE`: exit 1 with `FILE:LINE:COL: message` lines when the server
/// finds the schema invalid.
pub fn schema_write(file: &PathBuf, connection: &Connection) -> u8 {
    let schema = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("{}: cannot read file: {err}", file.display());
            return EXIT_ERROR;
        }
    };
    let body = SchemaWriteBody { schema };
    match Client::new(connection).post::<_, RevisionAnswer>("/v1/schema", &body) {
        Ok(answer) if connection.json => done(&json_line(&answer)),
        Ok(answer) => done(&format!("schema written at revision {}", answer.revision)),
        Err(ClientError::Api(body)) if !body.error.problems.is_empty() => {
            for problem in &body.error.problems {
                eprintln!(
                    "{}:{}:{}: {}",
                    file.display(),
                    problem.line,
                    problem.column,
                    problem.message
                );
            }
            EXIT_INVALID
        }
        Err(err) => fail(&err),
    }
}

fn json_line<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"))
}

/// Prints `text` and a newline; a closed pipe is not an error.
fn print_out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
}

fn print_lines(lines: &[String]) {
    let mut stdout = std::io::stdout().lock();
    for line in lines {
        if writeln!(stdout, "{line}").is_err() {
            return;
        }
    }
}

fn done(text: &str) -> u8 {
    if !text.is_empty() {
        print_out(text);
    }
    EXIT_OK
}

/// Reports a failure on stderr; exit 2.
pub fn fail(err: &ClientError) -> u8 {
    eprintln!("error: {err}");
    EXIT_ERROR
}
