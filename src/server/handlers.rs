//! One function per endpoint of DESIGN §5. Each parses its body into engine types (naming
//! the offending field on failure), calls the engine once and shapes the answer. The
//! `#[utoipa::path]` attribute on each is the OpenAPI description of that route.

use std::pin::Pin;
use std::task::Poll;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::check_json::{self, CheckReply};
use super::dto::{
    BulkCheckAnswer, BulkCheckBody, BulkResult, CheckAnswer, CheckBody, DeleteAnswer, DeleteBody,
    ExpandAnswer, ExpandBody, HealthAnswer, LookupResourcesAnswer, LookupResourcesBody,
    LookupSubjectsAnswer, LookupSubjectsBody, ReadAnswer, ReadBody, RevisionAnswer, SchemaAnswer,
    SchemaWriteBody, TreeBody, WatchQuery, WriteBody, consistency, object, permission_name,
    subject, type_name,
};
use super::error::{ApiError, ErrorBody};
use super::shape::lowercase_first;
use super::{inline, observe, watch};
use crate::engine::{
    CheckParts, CheckRequest, Consistency, Decision, DeleteOptions, DeleteRequest, EngineError,
    ExpandRequest, Explanation, LookupResourcesRequest, LookupSubjectsRequest, ReadRequest,
};
use crate::model::Revision;

/// A JSON body whose rejections become [`ApiError`]s (413 for an oversized body, 400
/// otherwise), so every error has the JSON error shape. The body is JSON whatever the
/// `Content-Type` says, so that `curl -d` works without a header.
pub struct Body<T>(pub T);

impl<T> FromRequest<AppState> for Body<T>
where
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, state).await?;
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|err| ApiError::BadJson(format!("invalid json body: {err}")))
    }
}

/// The bytes of a JSON body, read as [`Body`] reads them, for a handler that parses them
/// itself (the check: `check_json`).
pub struct BodyBytes(pub Bytes);

impl FromRequest<AppState> for BodyBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        read_body(request, state).await.map(Self)
    }
}

/// The whole body within the body timeout and the size limit (413 past it).
async fn read_body(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let limit = state.config().body_timeout;
    let max = state.config().body_limit;
    let mut read = std::pin::pin!(collect(request.into_body(), max));
    // A body that has arrived whole (the usual case: it came with the head) is read
    // without arming the timer.
    if let Poll::Ready(whole) = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await
    {
        return whole;
    }
    match tokio::time::timeout(limit, read).await {
        Ok(read) => read,
        Err(_) => Err(ApiError::BodyTimeout(limit.as_millis())),
    }
}

/// The body's bytes, at most `max` (`--body-limit`) of them: what axum's `Bytes` extractor
/// under a `DefaultBodyLimit` of `max` gives, with its error texts, without its two boxed
/// wrappers and its buffer list (a body usually comes in one frame). Every JSON body is
/// read here, so the router needs no `DefaultBodyLimit`.
async fn collect(mut body: axum::body::Body, max: usize) -> Result<Bytes, ApiError> {
    use axum::body::HttpBody;
    let mut whole = Bytes::new();
    let mut joined: Option<bytes::BytesMut> = None;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|err| {
            ApiError::BadJson(format!("failed to buffer the request body: {err}"))
        })?;
        // Trailers carry no body bytes; axum's extractor skips them too.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let read = joined.as_ref().map_or(whole.len(), bytes::BytesMut::len);
        if data.len() > max - read {
            return Err(ApiError::PayloadTooLarge(max));
        }
        match joined.as_mut() {
            Some(joined) => joined.extend_from_slice(&data),
            None if whole.is_empty() => whole = data,
            None => {
                let mut both = bytes::BytesMut::with_capacity(whole.len() + data.len());
                both.extend_from_slice(&whole);
                both.extend_from_slice(&data);
                joined = Some(both);
            }
        }
    }
    Ok(joined.map_or(whole, bytes::BytesMut::freeze))
}

/// A JSON answer that also tells the request log which revision it was computed at.
pub struct Answer<T>(pub Revision, pub T);

impl<T: Serialize> IntoResponse for Answer<T> {
    fn into_response(self) -> Response {
        with_revision(Json(self.1).into_response(), self.0)
    }
}

/// `response`, carrying `revision` for the request log when the log will show it.
pub fn with_revision(mut response: Response, revision: Revision) -> Response {
    if observe::details_wanted() {
        response.extensions_mut().insert(revision);
    }
    response
}

type Reply<T> = Result<Answer<T>, ApiError>;

/// Runs a synchronous engine call on the blocking pool, so that a long walk never holds
/// an async worker (and `/healthz` stays responsive while lookups run). The request
/// deadline still answers on time: the deadline layer drops this future, and the walk's
/// result is discarded when it ends.
async fn blocking<T, F>(call: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?
}

/// Replace the schema. Refused (400) when it does not compile or would orphan stored
/// relationships.
#[utoipa::path(post, path = "/v1/schema", tag = "schema",
    request_body = SchemaWriteBody,
    responses(
        (status = 200, body = RevisionAnswer),
        (status = 400, description = "invalid schema (with line and column) or orphaning change", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn write_schema(
    State(state): State<AppState>,
    Body(body): Body<SchemaWriteBody>,
) -> Reply<RevisionAnswer> {
    let engine = state.request_engine();
    let revision = blocking(move || Ok(engine.write_schema(&body.schema)?)).await?;
    Ok(Answer(
        revision,
        RevisionAnswer {
            revision: revision.0,
        },
    ))
}

/// The current schema text.
#[utoipa::path(get, path = "/v1/schema", tag = "schema",
    responses(
        (status = 200, body = SchemaAnswer),
        (status = 401, body = ErrorBody),
        (status = 503, description = "no schema is loaded", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn read_schema(State(state): State<AppState>) -> Reply<SchemaAnswer> {
    let (schema, revision) = state.engine().schema_text().ok_or(EngineError::NoSchema)?;
    Ok(Answer(
        revision,
        SchemaAnswer {
            schema,
            revision: revision.0,
        },
    ))
}

/// Apply creates, touches and deletes atomically at one new revision.
#[utoipa::path(post, path = "/v1/relationships/write", tag = "relationships",
    request_body = WriteBody,
    responses(
        (status = 200, body = RevisionAnswer),
        (status = 400, description = "malformed or schema-invalid relationship, too many updates", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "a precondition failed or a created relationship exists; nothing was written", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 503, description = "no schema is loaded", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn write_relationships(
    State(state): State<AppState>,
    Body(body): Body<WriteBody>,
) -> Reply<RevisionAnswer> {
    let max = state.config().max_batch;
    if body.updates.len() > max {
        return Err(ApiError::bad_request(
            "updates",
            format!(
                "at most {max} updates per write, got {}",
                body.updates.len()
            ),
        ));
    }
    let updates = body
        .updates
        .iter()
        .map(|it| it.to_update())
        .collect::<Result<Vec<_>, _>>()?;
    let preconditions = body
        .preconditions
        .iter()
        .map(|it| it.to_precondition())
        .collect::<Result<Vec<_>, _>>()?;
    let engine = state.request_engine();
    let revision = blocking(move || Ok(engine.write(&updates, &preconditions)??)).await?;
    Ok(Answer(
        revision,
        RevisionAnswer {
            revision: revision.0,
        },
    ))
}

/// Relationships matching a filter, one page at a time.
#[utoipa::path(post, path = "/v1/relationships/read", tag = "relationships",
    request_body = ReadBody,
    responses(
        (status = 200, body = ReadAnswer),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 503, description = "no schema is loaded", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn read_relationships(
    State(state): State<AppState>,
    Body(body): Body<ReadBody>,
) -> Reply<ReadAnswer> {
    let filter = body.filter.to_filter("filter")?;
    let limit = page_limit(&state, body.limit)?;
    let request = ReadRequest {
        filter,
        limit,
        cursor: body.cursor,
    };
    let mode = consistency(body.consistency);
    let engine = state.request_engine();
    let page = blocking(move || Ok(engine.read(&request, mode)?)).await?;
    Ok(Answer(
        page.revision,
        ReadAnswer {
            relationships: page.relationships.iter().map(ToString::to_string).collect(),
            cursor: page.cursor,
            revision: page.revision.0,
        },
    ))
}

/// Delete every relationship matching a filter, at one new revision.
#[utoipa::path(post, path = "/v1/relationships/delete", tag = "relationships",
    request_body = DeleteBody,
    responses(
        (status = 200, body = DeleteAnswer),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 503, description = "no schema is loaded", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn delete_relationships(
    State(state): State<AppState>,
    Body(body): Body<DeleteBody>,
) -> Reply<DeleteAnswer> {
    let request = DeleteRequest {
        filter: body.filter.to_filter("filter")?,
        options: DeleteOptions {
            limit: body.limit,
            allow_partial_deletions: body.allow_partial_deletions,
        },
    };
    let engine = state.request_engine();
    let deleted = blocking(move || Ok(engine.delete(&request)?)).await?;
    Ok(Answer(
        deleted.revision,
        DeleteAnswer {
            revision: deleted.revision.0,
            deleted: deleted.deleted,
            deletions_are_partial: deleted.partial,
        },
    ))
}

/// May the subject do the permission to the resource? Errors never answer `allowed`.
#[utoipa::path(post, path = "/v1/check", tag = "check",
    request_body = CheckBody,
    responses(
        (status = 200, body = CheckAnswer),
        (status = 400, description = "malformed reference, unknown type or permission, depth limit", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 503, description = "no schema is loaded", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn check(
    State(state): State<AppState>,
    BodyBytes(bytes): BodyBytes,
) -> Result<CheckReply, ApiError> {
    let body = check_json::parse(&bytes)?;
    let mode = consistency(body.consistency);
    // A repeated question is answered from the check cache before its names are
    // validated and copied: only a valid question's answer was ever cached.
    if !body.explain
        && body.context.is_none()
        && let Some(parts) = CheckParts::from_text(&body.resource, &body.permission, &body.subject)
        && let Some(decision) = inline::cached(&state, &parts, mode)
    {
        return Ok(check_reply(decision, None));
    }
    permission_name("permission", &body.permission)?;
    let request = CheckRequest {
        resource: object("resource", &body.resource)?,
        permission: body.permission.into_owned(),
        subject: subject("subject", &body.subject)?,
        context: body.context,
    };
    let (decision, explanation) = if !body.explain
        && let Some(decision) = inline::check(&state, &request, mode)?
    {
        (decision, None)
    } else if body.explain {
        let engine = state.request_engine();
        blocking(move || {
            let (decision, explanation) = engine.check_explained(&request, mode)?;
            Ok((decision, Some(explanation)))
        })
        .await?
    } else {
        let engine = state.request_engine();
        (
            blocking(move || Ok(engine.check(&request, mode)?)).await?,
            None,
        )
    };
    Ok(check_reply(decision, explanation))
}

/// The answer to one JSON check.
fn check_reply(decision: Decision, explanation: Option<Explanation>) -> CheckReply {
    CheckReply(
        decision.revision,
        CheckAnswer {
            allowed: decision.allowed,
            permissionship: decision.permissionship,
            missing_context: decision.missing_context,
            revision: decision.revision.0,
            explanation,
        },
    )
}

/// Many checks at one revision; an item that fails carries its own error.
#[utoipa::path(post, path = "/v1/check/bulk", tag = "check",
    request_body = BulkCheckBody,
    responses(
        (status = 200, body = BulkCheckAnswer),
        (status = 400, description = "malformed item or too many items", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 503, description = "no schema is loaded", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn check_bulk(
    State(state): State<AppState>,
    Body(body): Body<BulkCheckBody>,
) -> Reply<BulkCheckAnswer> {
    let max = state.config().max_batch;
    if body.items.len() > max {
        return Err(ApiError::bad_request(
            "items",
            format!(
                "at most {max} items per bulk check, got {}",
                body.items.len()
            ),
        ));
    }
    let explain: Vec<bool> = body.items.iter().map(|item| item.explain).collect();
    let requests = body
        .items
        .into_iter()
        .map(|item| {
            permission_name("items", &item.permission)?;
            Ok(CheckRequest {
                resource: object("items", &item.resource)?,
                permission: item.permission,
                subject: subject("items", &item.subject)?,
                context: item.context,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let engine = state.request_engine();
    let mode = consistency(body.consistency);
    let bulk = blocking(move || {
        let mut bulk = engine.check_bulk(&requests, mode)?;
        // Explained items are walked again, with reasons, at the bulk's revision.
        let at = Consistency::AtExactSnapshot {
            revision: bulk.revision,
        };
        let explanations = requests
            .iter()
            .zip(&explain)
            .zip(&mut bulk.results)
            .map(|((request, explain), res)| match res {
                Ok(_) if *explain => match engine.check_explained(request, at) {
                    Ok((_, explanation)) => Some(Box::new(explanation)),
                    Err(err) => {
                        *res = Err(err);
                        None
                    }
                },
                _ => None,
            })
            .collect::<Vec<_>>();
        Ok((bulk, explanations))
    })
    .await?;
    let (bulk, explanations) = bulk;
    let results = bulk
        .results
        .into_iter()
        .zip(explanations)
        .map(|(res, explanation)| match res {
            Ok(answer) => BulkResult::Decided {
                allowed: answer.allowed(),
                permissionship: answer.permissionship,
                missing_context: answer.missing_context,
                explanation,
            },
            Err(err) => BulkResult::Failed {
                error: ApiError::from(err).body().error,
            },
        })
        .collect();
    Ok(Answer(
        bulk.revision,
        BulkCheckAnswer {
            results,
            revision: bulk.revision.0,
        },
    ))
}

/// The userset tree of `resource#permission`: why subjects have it.
#[utoipa::path(post, path = "/v1/expand", tag = "check",
    request_body = ExpandBody,
    responses(
        (status = 200, body = ExpandAnswer),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 503, description = "no schema is loaded", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn expand(
    State(state): State<AppState>,
    Body(body): Body<ExpandBody>,
) -> Reply<ExpandAnswer> {
    permission_name("permission", &body.permission)?;
    let request = ExpandRequest {
        resource: object("resource", &body.resource)?,
        permission: body.permission,
        depth: body.depth,
    };
    let mode = consistency(body.consistency);
    let engine = state.request_engine();
    let expansion = blocking(move || Ok(engine.expand(&request, mode)?)).await?;
    Ok(Answer(
        expansion.revision,
        ExpandAnswer {
            tree: TreeBody::from(&expansion.tree),
            revision: expansion.revision.0,
        },
    ))
}

/// The ids of every object of a type on which the subject holds the permission.
#[utoipa::path(post, path = "/v1/lookup/resources", tag = "lookup",
    request_body = LookupResourcesBody,
    responses(
        (status = 200, body = LookupResourcesAnswer),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 503, description = "no schema is loaded", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn lookup_resources(
    State(state): State<AppState>,
    Body(body): Body<LookupResourcesBody>,
) -> Reply<LookupResourcesAnswer> {
    type_name("resource_type", &body.resource_type)?;
    permission_name("permission", &body.permission)?;
    let request = LookupResourcesRequest {
        subject: subject("subject", &body.subject)?,
        limit: page_limit(&state, body.limit)?,
        resource_type: body.resource_type,
        permission: body.permission,
        context: body.context,
        cursor: body.cursor,
    };
    let mode = consistency(body.consistency);
    let engine = state.request_engine();
    let page = blocking(move || Ok(engine.lookup_resources(&request, mode)?)).await?;
    Ok(Answer(
        page.revision,
        LookupResourcesAnswer {
            resources: page.resources,
            conditional: page.conditional,
            cursor: page.cursor,
            revision: page.revision.0,
        },
    ))
}

/// The ids of the subjects of a type that hold the permission on the resource.
#[utoipa::path(post, path = "/v1/lookup/subjects", tag = "lookup",
    request_body = LookupSubjectsBody,
    responses(
        (status = 200, body = LookupSubjectsAnswer),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 503, description = "no schema is loaded", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn lookup_subjects(
    State(state): State<AppState>,
    Body(body): Body<LookupSubjectsBody>,
) -> Reply<LookupSubjectsAnswer> {
    let resource = object("resource", &body.resource)?;
    let limit = page_limit(&state, body.limit)?;
    permission_name("permission", &body.permission)?;
    type_name("subject_type", &body.subject_type)?;
    let request = LookupSubjectsRequest {
        resource,
        permission: body.permission,
        subject_type: body.subject_type,
        context: body.context,
        limit,
        cursor: body.cursor,
    };
    let mode = consistency(body.consistency);
    let engine = state.request_engine();
    let answer = blocking(move || Ok(engine.lookup_subjects(&request, mode)?)).await?;
    Ok(Answer(
        answer.revision,
        LookupSubjectsAnswer {
            subjects: answer.subjects,
            conditional: answer.conditional,
            excluded: answer.excluded,
            cursor: answer.cursor,
            revision: answer.revision.0,
        },
    ))
}

/// Stream every change after `since` as newline-delimited JSON (`WatchEvent` per line),
/// then new ones as they commit.
#[utoipa::path(get, path = "/v1/watch", tag = "watch",
    params(WatchQuery),
    responses(
        (status = 200, description = "one `WatchEvent` JSON object per line", content_type = "application/x-ndjson", body = super::dto::WatchEvent),
        (status = 400, description = "`since` is in the future or no longer retained", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn watch_changes(
    State(state): State<AppState>,
    query: Result<Query<WatchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|err| ApiError::bad_request("query", lowercase_first(&err.body_text())))?;
    watch::start(state, query.since).await
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "probes",
    responses((status = 200, body = HealthAnswer)))]
pub async fn healthz(State(state): State<AppState>) -> Json<HealthAnswer> {
    Json(HealthAnswer {
        status: "ok".to_string(),
        revision: state.engine().head().0,
    })
}

/// Readiness: the store is open and a schema is loaded.
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses(
        (status = 200, body = HealthAnswer),
        (status = 503, description = "no schema is loaded, or the store fails writes", body = ErrorBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<HealthAnswer>, ApiError> {
    let engine = state.request_engine();
    engine.require_schema()?;
    let probe = engine.clone();
    if let crate::engine::StoreHealth::Failing { reason } =
        blocking(move || Ok(probe.store_health())).await?
    {
        return Err(EngineError::StoreUnavailable(reason).into());
    }
    Ok(Json(HealthAnswer {
        status: "ready".to_string(),
        revision: engine.head().0,
    }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "probes",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = observe::render(&state);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Any path no route serves.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

/// The page size for `limit`: the server maximum when absent, 400 when above it or 0.
fn page_limit(state: &AppState, limit: Option<usize>) -> Result<usize, ApiError> {
    let max = state.config().max_page;
    match limit {
        None => Ok(max),
        Some(0) => Err(ApiError::bad_request("limit", "must be at least 1")),
        Some(limit) if limit > max => Err(ApiError::bad_request(
            "limit",
            format!("at most {max}, got {limit}"),
        )),
        Some(limit) => Ok(limit),
    }
}
