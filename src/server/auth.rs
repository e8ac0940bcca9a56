//! The authentication layer of every `/v1` route: the route's scope comes from the one
//! table in [`keys::ROUTE_SCOPES`](super::keys::ROUTE_SCOPES), the presented bearer secret
//! from `Authorization`, and [`Keys::authorize`](super::keys::Keys::authorize) decides:
//! 401 without a known key, 403 naming the missing scope, otherwise the request goes on and
//! its response carries the key's name (never the secret) for the access log. Secrets are
//! compared as SHA-256 digests in constant time (`subtle`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use parking_lot::RwLock;

use super::AppState;
use super::error::ApiError;
use super::keys::{AuthError, KeyName, scope_of};

/// Lets the request through when no key is configured or its key grants the route's scope.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| request.uri().path(), MatchedPath::as_str);
    let scope = scope_of(request.method().as_str(), route);
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
    let mut response = next.run(request).await;
    if super::observe::details_wanted() {
        response.extensions_mut().insert(key);
    }
    Ok(response)
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
