//! The playground: one page at `GET /playground` (HTML, script and style compiled into
//! the binary, no network beyond this server) and `POST /v1/playground/evaluate`, a
//! stateless sandbox that builds a fresh in-memory engine from the schema and
//! relationships it is sent, answers one question (schema problems, a check with its
//! explanation, an expand tree, a validation file run) and drops the engine. It never
//! reads or writes the server's own data.
//!
//! Access: the page is static and public; the evaluate route is a `/v1` route like any
//! other, so it needs the bearer token when the server has one (the page has a Token
//! field). Limits: the server's body limit, [`MAX_SCHEMA_BYTES`],
//! [`MAX_RELATIONSHIPS`], [`MAX_VALIDATION_BYTES`], at most [`MAX_CONCURRENT`]
//! evaluations at once, and the server's request deadline.

use std::sync::OnceLock;

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::dto::{TreeBody, object, subject};
use super::error::{ApiError, ErrorBody, ProblemBody};
use super::handlers::Body;
use crate::engine::{
    Arbiter, CheckRequest, Config, Consistency, EngineError, ExpandDepth, ExpandRequest,
    Explanation, Permissionship,
};
use crate::model::Relationship;
use crate::schema::admit::check_relationship;
use crate::validation::{Session, ValidationFile};

/// The largest schema text the sandbox compiles.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// The most relationships one evaluation loads.
pub const MAX_RELATIONSHIPS: usize = 10_000;
/// The largest relationships or validation-file text the sandbox reads.
pub const MAX_VALIDATION_BYTES: usize = 1024 * 1024;
/// How many evaluations run at once; more wait (within the request deadline).
pub const MAX_CONCURRENT: usize = 2;

const INDEX_HTML: &str = include_str!("playground/index.html");
const APP_JS: &str = include_str!("playground/app.js");
const STYLE_CSS: &str = include_str!("playground/style.css");
const EXAMPLE_SCHEMA: &str = include_str!("../../schema/models.zed");
const EXAMPLE_VALIDATION: &str = include_str!("../../schema/models.yaml");

/// Only this server: no inline script, no other origin, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; \
    base-uri 'none'";

/// `POST /v1/playground/evaluate`: one question about the sandbox built from the body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum EvaluateBody {
    /// Compile `schema` and list its problems (200 either way).
    Schema { schema: String },
    /// Check `subject` on `resource#permission`, with the explanation.
    Check {
        schema: String,
        /// One relationship per line; blank lines and `//` comments are skipped.
        #[serde(default)]
        relationships: String,
        /// Caveat context: parameter values by name (the stored context wins per key).
        #[serde(default)]
        #[schema(value_type = Option<Object>)]
        context: Option<serde_json::Map<String, serde_json::Value>>,
        resource: String,
        permission: String,
        subject: String,
    },
    /// The recursive userset tree of `resource#permission`.
    Expand {
        schema: String,
        #[serde(default)]
        relationships: String,
        resource: String,
        permission: String,
    },
    /// Run a SpiceDB validation file; a `schemaFile` in it stands for `schema`.
    Validate {
        #[serde(default)]
        schema: String,
        validation: String,
    },
}

/// The answer of an evaluation; which fields are present depends on the action.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct EvaluateAnswer {
    /// For `schema`: every problem with its line and column (empty: it compiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<ProblemBody>>,
    /// For `check`: `has_permission`, `no_permission` or `conditional_permission`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissionship: Option<String>,
    /// For `check`: true only for `has_permission`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<bool>,
    /// For a conditional `check`: the caveat parameters the context lacks, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_context: Vec<String>,
    /// For `check`: why (docs/PLAYGROUND.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub explanation: Option<Explanation>,
    /// For `expand`: the recursive userset tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<TreeBody>,
    /// For `validate`: every assertion and expected relation, passed or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationAnswer>,
}

/// The outcome of a validation file.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ValidationAnswer {
    /// Whether every item passed and nothing else went wrong.
    pub passed: bool,
    pub items: Vec<ValidationItem>,
    /// Problems not tied to one item (loading the schema or relationships).
    pub problems: Vec<ValidationProblem>,
}

/// One assertion or expected-relation block.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ValidationItem {
    /// `assertTrue`, `assertFalse` or `validation`.
    pub kind: String,
    pub text: String,
    /// Its 1-based line in the file.
    pub line: usize,
    pub passed: bool,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
}

/// A problem at a line of the validation file (0: no line).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ValidationProblem {
    pub line: usize,
    pub message: String,
}

/// The page and its assets, public: they are static.
pub fn page_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/playground",
            get(|| asset("text/html; charset=utf-8", INDEX_HTML)),
        )
        .route(
            "/playground/",
            get(|| asset("text/html; charset=utf-8", INDEX_HTML)),
        )
        .route(
            "/playground/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/playground/style.css",
            get(|| asset("text/css; charset=utf-8", STYLE_CSS)),
        )
        .route("/playground/example.json", get(example))
}

/// The example the page's Load example button fills in: `schema/models.zed` and its
/// validation file, compiled into the binary.
#[derive(Debug, Serialize, Deserialize)]
pub struct Example {
    pub schema: String,
    pub relationships: String,
    pub validation: String,
    pub resource: String,
    pub permission: String,
    pub subject: String,
}

async fn example() -> Response {
    let relationships = ValidationFile::parse_detached(EXAMPLE_VALIDATION, Some(EXAMPLE_SCHEMA))
        .map(|file| {
            let lines: Vec<String> = file.relationships.into_iter().map(|it| it.text).collect();
            lines.join("\n")
        })
        .unwrap_or_default();
    let example = Example {
        schema: EXAMPLE_SCHEMA.to_string(),
        relationships,
        validation: EXAMPLE_VALIDATION.to_string(),
        resource: "model:public_llm".to_string(),
        permission: "edit".to_string(),
        subject: "user:stranger".to_string(),
    };
    axum::Json(example).into_response()
}

/// The evaluate route, documented; a `/v1` route, so `observe::Edge` checks its token.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(evaluate))
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "no-cache"),
            (axum::http::header::CONTENT_SECURITY_POLICY, CSP),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| Semaphore::new(MAX_CONCURRENT))
}

/// Evaluate a schema, a check, an expand or a validation file in a throw-away sandbox.
#[utoipa::path(post, path = "/v1/playground/evaluate", tag = "playground",
    request_body = EvaluateBody,
    responses(
        (status = 200, body = EvaluateAnswer),
        (status = 400, description = "invalid schema (with line and column), relationship (with its line), reference, or a limit exceeded", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, description = "the deadline passed", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn evaluate(
    Body(body): Body<EvaluateBody>,
) -> Result<axum::Json<EvaluateAnswer>, ApiError> {
    let _permit = permits()
        .acquire()
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    let answer = tokio::task::spawn_blocking(move || run(body))
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))??;
    Ok(axum::Json(answer))
}

fn run(body: EvaluateBody) -> Result<EvaluateAnswer, ApiError> {
    match body {
        EvaluateBody::Schema { schema } => {
            limit("schema", &schema, MAX_SCHEMA_BYTES)?;
            let engine = sandbox()?;
            let problems = match engine.write_schema(&schema) {
                Ok(_) => Vec::new(),
                Err(EngineError::InvalidSchema(problems)) => problems
                    .into_iter()
                    .map(|it| ProblemBody {
                        line: it.line,
                        column: it.column,
                        message: it.message,
                    })
                    .collect(),
                Err(err) => return Err(err.into()),
            };
            Ok(EvaluateAnswer {
                problems: Some(problems),
                ..EvaluateAnswer::default()
            })
        }
        EvaluateBody::Check {
            schema,
            relationships,
            context,
            resource,
            permission,
            subject: who,
        } => {
            let request = CheckRequest {
                resource: object("resource", &resource)?,
                permission,
                subject: subject("subject", &who)?,
                context,
            };
            let engine = load(&schema, &relationships)?;
            let (decision, explanation) = engine.check_explained(&request, Consistency::Full)?;
            let permissionship = match decision.permissionship {
                Permissionship::HasPermission => "has_permission",
                Permissionship::NoPermission => "no_permission",
                Permissionship::ConditionalPermission => "conditional_permission",
            };
            Ok(EvaluateAnswer {
                permissionship: Some(permissionship.to_string()),
                allowed: Some(decision.allowed),
                missing_context: decision.missing_context,
                explanation: Some(explanation),
                ..EvaluateAnswer::default()
            })
        }
        EvaluateBody::Expand {
            schema,
            relationships,
            resource,
            permission,
        } => {
            let request = ExpandRequest {
                resource: object("resource", &resource)?,
                permission,
                depth: ExpandDepth::Recursive,
            };
            let engine = load(&schema, &relationships)?;
            let expansion = engine.expand(&request, Consistency::Full)?;
            Ok(EvaluateAnswer {
                tree: Some(TreeBody::from(&expansion.tree)),
                ..EvaluateAnswer::default()
            })
        }
        EvaluateBody::Validate { schema, validation } => {
            limit("schema", &schema, MAX_SCHEMA_BYTES)?;
            limit("validation", &validation, MAX_VALIDATION_BYTES)?;
            Ok(EvaluateAnswer {
                validation: Some(validate(&schema, &validation)?),
                ..EvaluateAnswer::default()
            })
        }
    }
}

fn limit(field: &'static str, text: &str, max: usize) -> Result<(), ApiError> {
    if text.len() > max {
        return Err(ApiError::bad_request(
            field,
            format!("at most {max} bytes in the playground, got {}", text.len()),
        ));
    }
    Ok(())
}

/// A fresh in-memory engine: no cache (every answer is computed once anyway).
fn sandbox() -> Result<Arbiter, ApiError> {
    let config = Config {
        cache_capacity: 0,
        ..Config::default()
    };
    Ok(Arbiter::in_memory(config)?)
}

/// A sandbox with `schema` installed and `relationships` (text, one per line) loaded.
/// A bad line is an error naming its line; nothing is half-loaded (the sandbox is
/// dropped).
fn load(schema: &str, relationships: &str) -> Result<Arbiter, ApiError> {
    limit("schema", schema, MAX_SCHEMA_BYTES)?;
    limit("relationships", relationships, MAX_VALIDATION_BYTES)?;
    let engine = sandbox()?;
    engine.write_schema(schema)?;
    let compiled = engine.schema().ok_or(EngineError::NoSchema)?;
    let mut parsed: Vec<Relationship> = Vec::new();
    for (idx, line) in relationships.lines().enumerate() {
        let text = line.trim();
        if text.is_empty() || text.starts_with("//") {
            continue;
        }
        if parsed.len() >= MAX_RELATIONSHIPS {
            return Err(ApiError::bad_request(
                "relationships",
                format!("at most {MAX_RELATIONSHIPS} relationships in the playground"),
            ));
        }
        let line_no = idx + 1;
        let relationship: Relationship = text.parse().map_err(|err| {
            ApiError::bad_request("relationships", format!("line {line_no}: {err}"))
        })?;
        check_relationship(&compiled, &relationship).map_err(|err| {
            ApiError::bad_request("relationships", format!("line {line_no}: {err}"))
        })?;
        parsed.push(relationship);
    }
    if !parsed.is_empty() {
        engine.import(&mut parsed.into_iter())?;
    }
    Ok(engine)
}

/// Runs a validation file in its own sandbox and marks each item passed or failed.
fn validate(schema: &str, text: &str) -> Result<ValidationAnswer, ApiError> {
    let schema_file = (!schema.trim().is_empty()).then_some(schema);
    let file = match ValidationFile::parse_detached(text, schema_file) {
        Ok(file) => file,
        Err((line, error)) => {
            return Ok(ValidationAnswer {
                passed: false,
                items: Vec::new(),
                problems: vec![ValidationProblem {
                    line,
                    message: error.to_string(),
                }],
            });
        }
    };
    if file.relationships.len() > MAX_RELATIONSHIPS {
        return Err(ApiError::bad_request(
            "validation",
            format!("at most {MAX_RELATIONSHIPS} relationships in the playground"),
        ));
    }
    let mut session = Session::new().map_err(|err| ApiError::Internal(err.to_string()))?;
    let mut findings = session.load(&file);
    let loaded = findings.is_empty();
    if loaded {
        findings = session.run(&file).1;
    }
    let mut items = Vec::new();
    for (kind, located) in [
        ("assertTrue", &file.assert_true),
        ("assertFalse", &file.assert_false),
        ("assertCaveated", &file.assert_caveated),
    ] {
        for item in located {
            items.push((kind, item.text.trim().to_string(), vec![item.line]));
        }
    }
    for block in &file.expected {
        let mut lines = vec![block.resource.line];
        lines.extend(block.subjects.iter().map(|it| it.line));
        items.push(("validation", block.resource.text.clone(), lines));
    }
    let mut claimed = vec![false; findings.len()];
    let mut answers = Vec::new();
    for (kind, text, lines) in items {
        let mut messages = Vec::new();
        for (idx, finding) in findings.iter().enumerate() {
            if !claimed[idx] && lines.contains(&finding.line) {
                claimed[idx] = true;
                messages.push(finding.error.to_string());
            }
        }
        if !loaded {
            messages.push("not run: the schema or the relationships did not load".to_string());
        }
        answers.push(ValidationItem {
            kind: kind.to_string(),
            text,
            line: lines.first().copied().unwrap_or(0),
            passed: messages.is_empty(),
            messages,
        });
    }
    let problems: Vec<ValidationProblem> = findings
        .iter()
        .zip(&claimed)
        .filter(|(_, claimed)| !**claimed)
        .map(|(finding, _)| ValidationProblem {
            line: finding.line,
            message: finding.error.to_string(),
        })
        .collect();
    Ok(ValidationAnswer {
        passed: loaded && findings.is_empty(),
        items: answers,
        problems,
    })
}
