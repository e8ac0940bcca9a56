//! The authentication of every `/v1` route (run by `observe::Edge`): the route's scope comes from the one
//! table in [`keys::ROUTE_SCOPES`](super::keys::ROUTE_SCOPES), the presented bearer secret
//! from `Authorization`, and [`Keys::authorize`](super::keys::Keys::authorize) decides:
//! 401 without a known key, 403 naming the missing scope, otherwise the request goes on and
//! its response carries the key's name (never the secret) for the access log. Secrets are
//! compared as SHA-256 digests in constant time (`subtle`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::extract::{MatchedPath, Request};
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use parking_lot::RwLock;

use super::AppState;
use super::error::ApiError;
use super::keys::{AuthError, KeyName, ROUTE_SCOPES, Scope};

/// The scope a request to `route` (the matched route template) needs, or `None` when it
/// needs no key: every `/v1` route needs one, the scope the route table names for the
/// method, `admin` (fail-closed) for a route the table does not name. A method the route
/// does not serve needs none, so that the router answers it 405 as it did when the token
/// check was a layer on each route's methods; `HEAD` is served by a route's `GET` and
/// needs `admin`, as [`scope_of`](super::keys::scope_of) gives an unnamed method.
pub fn required_scope(method: &str, route: &str) -> Option<Scope> {
    if !route.starts_with("/v1/") {
        return None;
    }
    let mut named = false;
    let mut head_of_get = false;
    for (served, _, scope) in ROUTE_SCOPES.iter().filter(|(_, path, _)| *path == route) {
        if served.eq_ignore_ascii_case(method) {
            return Some(*scope);
        }
        named = true;
        head_of_get |= method == "HEAD" && *served == "GET";
    }
    (!named || head_of_get).then_some(Scope::Admin)
}

/// The token check of `observe::Edge` (the one router-wide layer), run before the route:
/// `None` when the route needs no key ([`required_scope`]), else the request's key or the
/// refusal. Done there rather than in a layer of its own on every `/v1` route, which cost
/// each check a boxed service clone and a boxed future (docs/BENCHMARKS.md, fourth pass).
pub fn check(state: &AppState, request: &Request) -> Option<Result<KeyName, Response>> {
    let route = request.extensions().get::<MatchedPath>()?.as_str();
    let scope = required_scope(request.method().as_str(), route)?;
    Some(authorize(state, request, scope).map_err(IntoResponse::into_response))
}

/// The key of the request when it has `scope`: 401 without a known key, 403 (and a count
/// of the refusal) when the key lacks the scope.
fn authorize(state: &AppState, request: &Request, scope: Scope) -> Result<KeyName, ApiError> {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let key = match state.keys().authorize(presented, scope) {
        Ok(key) => key,
        Err(AuthError::Unauthenticated) => return Err(ApiError::Unauthorized),
        Err(AuthError::Forbidden { key, scope }) => {
            metrics::counter!("arbiter_forbidden_total", "key" => key.clone()).increment(1);
            return Err(ApiError::Forbidden {
                key,
                scope: scope.name(),
            });
        }
    };
    if state.keys().enabled() {
        requests_by_key(&key).increment(1);
    }
    Ok(key)
}

/// The request counter of one key, registered once: building a labelled metric key
/// allocates and hashes, too much for every request.
fn requests_by_key(key: &KeyName) -> metrics::Counter {
    static CACHE: OnceLock<RwLock<HashMap<Arc<str>, metrics::Counter>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(counter) = cache.read().get(&key.0) {
        return counter.clone();
    }
    let counter =
        metrics::counter!("arbiter_requests_by_key_total", "key" => key.as_str().to_string());
    // INVARIANT: key names come from the key file, so the cache is bounded by it (reloads
    // add at most the names of the new file).
    cache.write().insert(Arc::clone(&key.0), counter.clone());
    counter
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::engine::{self, Arbiter};
    use crate::server::ServerConfig;

    #[test]
    fn the_token_guards_every_v1_route_and_method_it_serves() {
        let cases = [
            ("POST", "/v1/check", true),
            ("GET", "/v1/schema", true),
            ("POST", "/v1/schema", true),
            // HEAD is served by GET, and guarded with it.
            ("HEAD", "/v1/schema", true),
            ("head", "/v1/schema", false),
            // A method the route does not serve is the router's 405.
            ("GET", "/v1/check", false),
            ("DELETE", "/v1/schema", false),
            // A /v1 route the table does not name is guarded (it needs admin).
            ("POST", "/v1/not-in-the-table", true),
            ("GET", "/healthz", false),
            ("GET", "/metrics", false),
            ("GET", "/v1", false),
            // gRPC calls have their own guard (`grpc::guard`).
            (
                "POST",
                "/authzed.api.v1.PermissionsService/CheckPermission",
                false,
            ),
        ];
        for (method, route, expected) in cases {
            let guarded = required_scope(method, route).is_some();
            assert_eq!(guarded, expected, "{method} {route}");
        }
    }

    #[test]
    fn a_guarded_route_needs_the_scope_the_table_gives_it() {
        for (method, route) in [
            ("POST", "/v1/check"),
            ("GET", "/v1/schema"),
            ("POST", "/v1/schema"),
            ("POST", "/v1/sync"),
            ("HEAD", "/v1/schema"),
            ("POST", "/v1/not-in-the-table"),
        ] {
            assert_eq!(
                required_scope(method, route),
                Some(super::super::keys::scope_of(method, route)),
                "{method} {route}"
            );
        }
    }

    #[tokio::test]
    async fn a_method_a_v1_route_does_not_serve_is_405_before_the_token() {
        let engine = Arbiter::in_memory(engine::Config::default()).unwrap();
        let config = ServerConfig {
            token: Some("s3cret".to_string()),
            ..ServerConfig::default()
        };
        let app = crate::server::router(AppState::new(engine, config));
        let cases = [
            (Request::get("/v1/check"), 405),
            (Request::post("/v1/check"), 401),
            (Request::head("/v1/schema"), 401),
            (Request::get("/v1/nowhere"), 404),
        ];
        for (request, status) in cases {
            let request = request.body(Body::empty()).unwrap();
            let what = format!("{} {}", request.method(), request.uri());
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{what}");
        }
    }

    #[tokio::test]
    async fn issue14_the_token_check_refuses_or_names_the_key_for_the_request_log() {
        let engine = Arbiter::in_memory(engine::Config::default()).unwrap();
        let config = ServerConfig {
            token: Some("s3cret".to_string()),
            access_log: true,
            ..ServerConfig::default()
        };
        let app = crate::server::router(AppState::new(engine, config));
        let cases = [
            (None, 401, None),
            (Some("Bearer wrong"), 401, None),
            (Some("s3cret"), 401, None),
            // No schema yet: the route answers 503, through the layer, named.
            (Some("Bearer s3cret"), 503, Some("token")),
        ];
        for (header, status, key) in cases {
            let mut request = Request::get("/v1/schema");
            if let Some(header) = header {
                request = request.header(AUTHORIZATION, header);
            }
            let response = app
                .clone()
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), status, "{header:?}");
            let named = response.extensions().get::<KeyName>().map(KeyName::as_str);
            assert_eq!(named, key, "{header:?}");
        }
    }
}
