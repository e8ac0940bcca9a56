//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` attributes and
//! the DTOs' `ToSchema` derives: the routes are registered through utoipa-axum's
//! [`OpenApiRouter`], so a route cannot be served without being documented.

use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use serde_json::Value;

use super::{AppState, ServerConfig, handlers};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "arbiter",
        description = "A relationship-based authorization server in the style of Google's Zanzibar. \
            References use the Zanzibar text form (`document:1`, `group:eng#member`, \
            `document:1#viewer@user:alice`). Every `/v1` route requires `Authorization: Bearer TOKEN` \
            when the server runs with a token."
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "schema", description = "the schema of object types, relations and permissions"),
        (name = "relationships", description = "relationship tuples: write, read, delete"),
        (name = "check", description = "check, bulk check and expand"),
        (name = "lookup", description = "reverse questions: which resources, which subjects"),
        (name = "watch", description = "the change feed"),
        (name = "probes", description = "liveness, readiness, metrics"),
        (name = "playground", description = "a sandbox for the page at /playground: never touches the server's data"),
    )
)]
struct ApiDoc;

/// Adds the `bearer` security scheme the `/v1` routes refer to.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every documented route: the `/v1` API (its token checked by `observe::Edge`), and the
/// probes.
pub fn api_router() -> OpenApiRouter<AppState> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(handlers::write_schema, handlers::read_schema))
        .routes(routes!(handlers::write_relationships))
        .routes(routes!(handlers::read_relationships))
        .routes(routes!(handlers::delete_relationships))
        .routes(routes!(handlers::check))
        .routes(routes!(handlers::check_bulk))
        .routes(routes!(handlers::expand))
        .routes(routes!(handlers::lookup_resources))
        .routes(routes!(handlers::lookup_subjects))
        .routes(routes!(handlers::watch_changes))
        .routes(routes!(super::sync::sync))
        .routes(routes!(super::import::import))
        .merge(super::playground::api_routes());
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(v1)
        .routes(routes!(handlers::healthz))
        .routes(routes!(handlers::readyz))
        .routes(routes!(handlers::metrics))
}

/// The document as JSON text, rendered once at start-up and made to say what this server
/// enforces: bearer security only when a token is configured, and the configured page
/// and batch limits.
pub fn render(api: utoipa::openapi::OpenApi, config: &ServerConfig) -> String {
    let mut document = match serde_json::to_value(&api) {
        Ok(document) => document,
        Err(err) => {
            tracing::error!(error = %err, "cannot render the openapi document");
            return String::from("{}");
        }
    };
    if config.token.is_none() {
        remove_security(&mut document);
    }
    fix_unsigned_formats(&mut document);
    // Each consistency mode refuses unknown fields too (serde's `deny_unknown_fields` on
    // the tagged enum), which utoipa does not carry into the variants.
    if let Some(Value::Array(modes)) =
        document.pointer_mut("/components/schemas/ConsistencyBody/oneOf")
    {
        for mode in modes.iter_mut().filter_map(Value::as_object_mut) {
            mode.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
    for (schema, property) in [("ReadBody", "limit"), ("LookupResourcesBody", "limit")] {
        let at = format!("/components/schemas/{schema}/properties/{property}");
        if let Some(Value::Object(limit)) = document.pointer_mut(&at) {
            limit.insert("maximum".into(), config.max_page.into());
        }
    }
    for (schema, property) in [("BulkCheckBody", "items"), ("WriteBody", "updates")] {
        let at = format!("/components/schemas/{schema}/properties/{property}");
        if let Some(Value::Object(list)) = document.pointer_mut(&at) {
            list.insert("maxItems".into(), config.max_batch.into());
        }
    }
    serde_json::to_string_pretty(&document).unwrap_or_else(|err| {
        tracing::error!(error = %err, "cannot render the openapi document");
        String::from("{}")
    })
}

/// utoipa spells unsigned formats `u-int64`; OpenAPI tools know `uint64`.
fn fix_unsigned_formats(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(format)) = map.get_mut("format")
                && let Some(bits) = format.strip_prefix("u-int")
            {
                *format = format!("uint{bits}");
            }
            map.values_mut().for_each(fix_unsigned_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(fix_unsigned_formats),
        _ => {}
    }
}

/// Drops the bearer scheme and every operation's reference to it: without a token the
/// server requires none, and a document that says otherwise misleads clients and fuzzers.
fn remove_security(document: &mut Value) {
    if let Some(Value::Object(components)) = document.get_mut("components") {
        components.remove("securitySchemes");
    }
    if let Some(Value::Object(paths)) = document.get_mut("paths") {
        for operation in paths.values_mut().filter_map(Value::as_object_mut) {
            for (_, operation) in operation.iter_mut() {
                if let Value::Object(operation) = operation {
                    operation.remove("security");
                }
            }
        }
    }
}

pub async fn serve_document(document: Arc<String>) -> Response {
    ([(CONTENT_TYPE, "application/json")], (*document).clone()).into_response()
}
