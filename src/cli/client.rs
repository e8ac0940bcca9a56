//! The client commands: `check`, `expand`, `lookup resources|subjects`, `write`, `read`,
//! `delete`, `schema read|write`, each one HTTP call (or one call per page) against a
//! running server. Human output by default, the server's JSON with `--json`.
//!
//! Exit codes: 0 success (and "allowed" for `check`), 1 "denied" (or an invalid schema
//! for `schema write`), 2 anything failed.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{EXIT_ERROR, EXIT_INVALID, EXIT_OK};
use crate::server::ErrorBody;
use crate::server::dto::{
    CheckAnswer, CheckBody, ConsistencyBody, DeleteAnswer, DeleteBody, ExpandAnswer, ExpandBody,
    ExpandDepthBody, FilterBody, LookupResourcesAnswer, LookupResourcesBody, LookupSubjectsAnswer,
    LookupSubjectsBody, NodeKind, ReadAnswer, ReadBody, RevisionAnswer, SchemaAnswer,
    SchemaWriteBody, TreeBody, UpdateBody, UpdateOpBody, WriteBody,
};

/// Where the server is and how to talk to it; shared by every client command.
#[derive(Clone, Debug, Args)]
pub struct Connection {
    /// URL of the arbiter server.
    #[arg(long, env = "ARBITER_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Bearer token of the server.
    #[arg(long, env = "ARBITER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the server's JSON answer instead of human output.
    #[arg(long)]
    pub json: bool,
}

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
        #[command(flatten)]
        connection: Connection,
    },
    /// Every subject of SUBJECT_TYPE that holds PERMISSION on RESOURCE.
    Subjects {
        resource: String,
        permission: String,
        subject_type: String,
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

/// A failed client call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the server at `{url}`: {message}")]
    Transport { url: String, message: String },
    #[error("{} ({})", .0.error.message, .0.error.code)]
    Api(ErrorBody),
    #[error("the server answered status {status} with an unexpected body: {message}")]
    Decode { status: u16, message: String },
    #[error("{0}")]
    Usage(String),
}

/// A blocking HTTP client bound to one server and token.
pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(connection: &Connection) -> Self {
        Self {
            http: reqwest::blocking::Client::new(),
            base: connection.server.trim_end_matches('/').to_string(),
            token: connection.token.clone(),
        }
    }

    /// POSTs `body` to `path` and decodes the answer (or the JSON error).
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let request = self.http.post(self.url(path)).json(body);
        self.send(request)
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.http.get(self.url(path)))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send<T: DeserializeOwned>(
        &self,
        mut request: reqwest::blocking::RequestBuilder,
    ) -> Result<T, ClientError> {
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().map_err(|err| ClientError::Transport {
            url: self.base.clone(),
            message: err.to_string(),
        })?;
        let status = response.status();
        let bytes = response.bytes().map_err(|err| ClientError::Transport {
            url: self.base.clone(),
            message: err.to_string(),
        })?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => ClientError::Api(body),
                Err(err) => ClientError::Decode {
                    status: status.as_u16(),
                    message: err.to_string(),
                },
            });
        }
        serde_json::from_slice(&bytes).map_err(|err| ClientError::Decode {
            status: status.as_u16(),
            message: err.to_string(),
        })
    }
}

/// `arbiter check`: exit 0 allowed, 1 denied, 2 error.
pub fn check(args: &CheckArgs) -> u8 {
    let body = CheckBody {
        resource: args.resource.clone(),
        permission: args.permission.clone(),
        subject: args.subject.clone(),
        consistency: args
            .at_least_as_fresh
            .map(|revision| ConsistencyBody::AtLeastAsFresh { revision }),
    };
    let client = Client::new(&args.connection);
    match client.post::<_, CheckAnswer>("/v1/check", &body) {
        Ok(answer) => {
            let text = if args.connection.json {
                json_line(&answer)
            } else if answer.allowed {
                "allowed".to_string()
            } else {
                "denied".to_string()
            };
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
            ExpandDepthBody::Recursive
        } else {
            ExpandDepthBody::OneLevel
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

/// `arbiter lookup resources|subjects`: one id per line (every page).
pub fn lookup(command: &LookupCommand) -> u8 {
    match command {
        LookupCommand::Resources {
            resource_type,
            permission,
            subject,
            connection,
        } => {
            let client = Client::new(connection);
            let mut cursor = None;
            loop {
                let body = LookupResourcesBody {
                    resource_type: resource_type.clone(),
                    permission: permission.clone(),
                    subject: subject.clone(),
                    limit: None,
                    cursor: cursor.take(),
                    consistency: None,
                };
                let page: LookupResourcesAnswer = match client.post("/v1/lookup/resources", &body) {
                    Ok(page) => page,
                    Err(err) => return fail(&err),
                };
                if connection.json {
                    print_out(&json_line(&page));
                } else {
                    print_lines(&page.resources);
                }
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => return EXIT_OK,
                }
            }
        }
        LookupCommand::Subjects {
            resource,
            permission,
            subject_type,
            connection,
        } => {
            let client = Client::new(connection);
            let mut cursor = None;
            loop {
                let body = LookupSubjectsBody {
                    resource: resource.clone(),
                    permission: permission.clone(),
                    subject_type: subject_type.clone(),
                    limit: None,
                    cursor: cursor.take(),
                    consistency: None,
                };
                let page: LookupSubjectsAnswer = match client.post("/v1/lookup/subjects", &body) {
                    Ok(page) => page,
                    Err(err) => return fail(&err),
                };
                if connection.json {
                    print_out(&json_line(&page));
                } else {
                    print_lines(&page.subjects);
                    if !page.excluded.is_empty() {
                        print_out(&format!("except: {}", page.excluded.join(", ")));
                    }
                }
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => return EXIT_OK,
                }
            }
        }
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

/// Parses `TYPE[:ID][#RELATION][@SUBJECT_TYPE[:SUBJECT_ID][#SUBJECT_RELATION]]`.
pub fn parse_filter(text: &str) -> Result<FilterBody, ClientError> {
    fn part(text: &str) -> (String, Option<String>, Option<String>) {
        let (object, relation) = match text.split_once('#') {
            Some((object, relation)) => (object, Some(relation.to_string())),
            None => (text, None),
        };
        let (object_type, id) = match object.split_once(':') {
            Some((object_type, id)) => (object_type.to_string(), Some(id.to_string())),
            None => (object.to_string(), None),
        };
        (object_type, id, relation)
    }
    let (resource, subject) = match text.split_once('@') {
        Some((resource, subject)) => (resource, Some(subject)),
        None => (text, None),
    };
    let (resource_type, resource_id, relation) = part(resource);
    if resource_type.is_empty() {
        return Err(ClientError::Usage(format!(
            "invalid filter `{text}`: expected TYPE[:ID][#RELATION][@SUBJECT_TYPE[:ID][#RELATION]]"
        )));
    }
    let mut filter = FilterBody {
        resource_type,
        resource_id,
        relation,
        ..FilterBody::default()
    };
    if let Some(subject) = subject {
        let (subject_type, subject_id, subject_relation) = part(subject);
        filter.subject_type = Some(subject_type).filter(|it| !it.is_empty());
        filter.subject_id = subject_id;
        filter.subject_relation = subject_relation;
    }
    Ok(filter)
}

fn render_tree(tree: &TreeBody, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    let head = format!("{indent}{}#{}", tree.resource, tree.relation);
    let line = match tree.kind {
        NodeKind::Leaf if tree.subjects.is_empty() => format!("{head}: (none)"),
        NodeKind::Leaf => format!("{head}: {}", tree.subjects.join(", ")),
        NodeKind::Union => format!("{head}: union"),
        NodeKind::Intersection => format!("{head}: intersection"),
        NodeKind::Exclusion => format!("{head}: exclusion (first minus second)"),
        NodeKind::Arrow => format!(
            "{head}: arrow {}.{}",
            tree.tupleset.as_deref().unwrap_or("?"),
            tree.computed.as_deref().unwrap_or("?")
        ),
        NodeKind::Nil => format!("{head}: nil"),
        NodeKind::Userset => format!("{head}: (not expanded)"),
        NodeKind::Repeated => format!("{head}: (expanded above)"),
    };
    out.push_str(&line);
    out.push('\n');
    for child in &tree.children {
        render_tree(child, depth + 1, out);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_every_part() {
        let filter = parse_filter("document:1#viewer@group:eng#member").unwrap();
        assert_eq!(filter.resource_type, "document");
        assert_eq!(filter.resource_id.as_deref(), Some("1"));
        assert_eq!(filter.relation.as_deref(), Some("viewer"));
        assert_eq!(filter.subject_type.as_deref(), Some("group"));
        assert_eq!(filter.subject_id.as_deref(), Some("eng"));
        assert_eq!(filter.subject_relation.as_deref(), Some("member"));
        let filter = parse_filter("document#viewer").unwrap();
        assert_eq!(filter.resource_id, None);
        assert_eq!(filter.relation.as_deref(), Some("viewer"));
        assert!(parse_filter("@user:alice").is_err());
    }
}
