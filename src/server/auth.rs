//! The authentication layer of every `/v1` route: the route's scope comes from the one
//! table in [`keys::ROUTE_SCOPES`](super::keys::ROUTE_SCOPES), the presented bearer secret
//! from `Authorization`, and [`Keys::authorize`](super::keys::Keys::authorize) decides:
//! 401 without a known key, 403 naming the missing scope, otherwise the request goes on and
//! its response carries the key's name (never the secret) for the access log. Secrets are
//! compared as SHA-256 digests in constant time (`subtle`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Request};
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, Ready, ready};
use parking_lot::RwLock;
use tower::{Layer, Service};

use super::AppState;
use super::error::ApiError;
use super::keys::{AuthError, KeyName, scope_of};

/// The layer of every `/v1` route: lets the request through when no key is configured or
/// its key grants the route's scope. A plain tower layer rather than a `from_fn`
/// middleware: that one clones and boxes the inner service and boxes its future on every
/// request (measured with the JSON check's other cuts: docs/BENCHMARKS.md, third pass).
#[derive(Clone)]
pub struct RequireToken {
    state: AppState,
}

impl RequireToken {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for RequireToken {
    type Service = TokenGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenGuard {
            state: self.state.clone(),
            inner,
        }
    }
}

/// [`RequireToken`] around one route.
#[derive(Clone)]
pub struct TokenGuard<S> {
    state: AppState,
    inner: S,
}

/// The answer of a request refused here, or of the route (with the key's name attached
/// when the request log wants it).
type GuardFuture<F> = Either<Ready<Result<Response, Infallible>>, Either<F, NamedFuture>>;

/// The route's answer carrying the key's name for the request log.
type NamedFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> Service<Request> for TokenGuard<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let key = match authorize(&self.state, &request) {
            Ok(key) => key,
            Err(refusal) => return Either::Left(ready(Ok(refusal.into_response()))),
        };
        let answer = self.inner.call(request);
        if !super::observe::details_wanted() {
            return Either::Right(Either::Left(answer));
        }
        Either::Right(Either::Right(Box::pin(async move {
            let mut response = answer.await?;
            response.extensions_mut().insert(key);
            Ok(response)
        })))
    }
}

/// The key of the request when it may use the route: 401 without a known key, 403 (and
/// a count of the refusal) when the key lacks the route's scope.
fn authorize(state: &AppState, request: &Request) -> Result<KeyName, ApiError> {
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

    #[tokio::test]
    async fn issue14_the_token_layer_refuses_or_names_the_key_for_the_request_log() {
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
