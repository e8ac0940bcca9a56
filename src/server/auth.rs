//! The authentication layer of every `/v1` route: the route's scope comes from the one
//! table in [`keys::ROUTE_SCOPES`](super::keys::ROUTE_SCOPES), the presented bearer secret
//! from `Authorization`, and [`Keys::authorize`](super::keys::Keys::authorize) decides:
//! 401 without a known key, 403 naming the missing scope, otherwise the request goes on and
//! its response carries the key's name (never the secret) for the access log. Secrets are
//! compared as SHA-256 digests in constant time (`subtle`).

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;
use super::keys::{AuthError, scope_of};

/// Lets the request through when no key is configured or its key grants the route's scope.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_string(),
        |it| it.as_str().to_string(),
    );
    let scope = scope_of(request.method().as_str(), &route);
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
        metrics::counter!("arbiter_requests_by_key_total", "key" => key.0.clone()).increment(1);
    }
    let mut response = next.run(request).await;
    response.extensions_mut().insert(key);
    Ok(response)
}
