//! `POST /v1/sync`: make the store match a permissions file (schema + the complete
//! relationships of some resource types) at one revision, or with `dry_run` say what would
//! change. `arbiter import --sync FILE` reads and validates the file locally and sends its
//! content here; the engine validates everything again and applies it atomically
//! (`engine::sync`). Needs the `admin` scope: it may delete anything in its scope.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::handlers::{Answer, Body};
use crate::engine::{SyncReport, SyncRequest};
use crate::model::Relationship;

/// `POST /v1/sync`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncBody {
    /// The schema text to install; absent keeps the current schema.
    #[serde(default)]
    pub schema: Option<String>,
    /// The resource types the sync owns: their relationships not listed are deleted.
    pub resource_types: Vec<String>,
    /// Every relationship the owned types should hold, in text form.
    #[serde(default)]
    pub relationships: Vec<String>,
    /// Only report what would change.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a sync did (or would do).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncAnswer {
    /// The revision the sync committed at; absent for a dry run or when nothing changed.
    pub revision: Option<u64>,
    pub schema_changed: bool,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl SyncAnswer {
    pub fn from_report(report: &SyncReport) -> Self {
        Self {
            revision: report.revision.map(|it| it.0),
            schema_changed: report.schema_changed,
            added: report.added.iter().map(ToString::to_string).collect(),
            removed: report.removed.iter().map(ToString::to_string).collect(),
        }
    }
}

/// Make the store match a permissions file, atomically at one revision.
#[utoipa::path(post, path = "/v1/sync", tag = "relationships",
    request_body = SyncBody,
    responses(
        (status = 200, body = SyncAnswer),
        (status = 400, description = "invalid schema, relationship or scope; nothing changed", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, description = "no schema is loaded and the body carries none", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn sync(
    State(state): State<AppState>,
    Body(body): Body<SyncBody>,
) -> Result<Answer<SyncAnswer>, ApiError> {
    let mut relationships = Vec::with_capacity(body.relationships.len());
    for text in &body.relationships {
        let relationship = text
            .parse::<Relationship>()
            .map_err(|err| ApiError::bad_request("relationships", format!("`{text}`: {err}")))?;
        relationships.push(relationship);
    }
    let request = SyncRequest {
        schema: body.schema,
        resource_types: body.resource_types,
        relationships,
    };
    let engine = state.engine().clone();
    let dry_run = body.dry_run;
    let report = tokio::task::spawn_blocking(move || engine.sync(&request, dry_run))
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))??;
    let revision = report.revision.unwrap_or_else(|| state.engine().head());
    Ok(Answer(revision, SyncAnswer::from_report(&report)))
}
