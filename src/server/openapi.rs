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

use super::{AppState, auth, handlers};

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

/// Every documented route: the `/v1` API behind the token layer, and the probes.
pub fn api_router(state: AppState) -> OpenApiRouter<AppState> {
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
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            auth::require_token,
        ));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(v1)
        .routes(routes!(handlers::healthz))
        .routes(routes!(handlers::readyz))
        .routes(routes!(handlers::metrics))
}

/// The document as JSON text, rendered once at start-up.
pub fn render(api: utoipa::openapi::OpenApi) -> String {
    api.to_pretty_json().unwrap_or_else(|err| {
        tracing::error!(error = %err, "cannot render the openapi document");
        String::from("{}")
    })
}

pub async fn serve_document(document: Arc<String>) -> Response {
    ([(CONTENT_TYPE, "application/json")], (*document).clone()).into_response()
}
