//! Per-request observability and the deadline: one structured log line per request
//! (method, route, status, latency, revision), Prometheus counters and latency histograms
//! by route and status, and the rendering of `/metrics`. [`edge`] is the one router-wide
//! layer: it observes, shapes errors, guards the query string and applies the deadline.
//!
//! Metrics go to one process-wide Prometheus recorder, installed on first use; gauges that
//! mirror engine state (head revision, cache counters, store size) are set when `/metrics`
//! is rendered, so they cost nothing per request.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::header::DATE;
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use parking_lot::RwLock;
use tower::Service;

use super::layer::{Around, ResponseFuture, StateLayer};

use super::AppState;
use super::error::ApiError;
use super::keys::KeyName;
use crate::model::Revision;

/// Latency buckets in seconds: 25 µs to 5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process-wide recorder handle; `None` when another recorder was installed first.
fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("arbiter_http_request_duration_seconds".to_string()),
                    LATENCY_BUCKETS,
                )
                .ok()?;
            builder.install_recorder().ok()
        })
        .as_ref()
}

/// Installs the recorder (idempotent); call before serving so the first requests count.
/// `access_log`: whether this server logs every request at info level.
pub fn install(access_log: bool) {
    let _ = handle();
    if access_log {
        // Sticky: with several routers in one process (tests), one that logs is enough to
        // make all of them attach the details, which costs them time, never correctness.
        ACCESS_LOG.store(true, Ordering::Relaxed);
    }
}

/// Whether some router of this process logs every request at info level.
static ACCESS_LOG: AtomicBool = AtomicBool::new(false);

/// Whether the request log line will be written, so that the details only it shows (the
/// answer's revision, the key's name) are worth attaching to the response.
pub fn details_wanted() -> bool {
    ACCESS_LOG.load(Ordering::Relaxed) || tracing::enabled!(tracing::Level::DEBUG)
}

/// The counter and histogram of one (route, method, status), registered once: building
/// a labelled metric key allocates and hashes, which is too much for every check.
#[derive(Clone)]
struct RouteMetrics {
    requests: metrics::Counter,
    latency: metrics::Histogram,
}

/// Per route: the metrics of each (method, status) seen, a handful at most.
type MetricsCache = HashMap<String, Vec<(&'static str, u16, RouteMetrics)>>;

/// The method label: one of the standard methods, else `other`. INVARIANT: every label
/// comes from a fixed set (route templates, these methods, status codes), so no request
/// can add a time series of its own choosing (issue 10, item 3).
fn method_label(method: &Method) -> &'static str {
    const KNOWN: &[(Method, &str)] = &[
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::PATCH, "PATCH"),
        (Method::TRACE, "TRACE"),
        (Method::CONNECT, "CONNECT"),
    ];
    KNOWN
        .iter()
        .find(|(known, _)| known == method)
        .map_or("other", |(_, label)| label)
}

fn route_metrics(route: &str, method: &'static str, status: u16) -> RouteMetrics {
    static CACHE: OnceLock<RwLock<MetricsCache>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let found = cache.read().get(route).and_then(|entries| {
        entries
            .iter()
            .find(|it| it.0 == method && it.1 == status)
            .map(|it| it.2.clone())
    });
    if let Some(found) = found {
        return found;
    }
    let labels = [
        ("route", route.to_string()),
        ("method", method.to_string()),
        ("status", status.to_string()),
    ];
    let res = RouteMetrics {
        requests: metrics::counter!("arbiter_http_requests_total", &labels),
        latency: metrics::histogram!("arbiter_http_request_duration_seconds", &labels),
    };
    cache
        .write()
        .entry(route.to_string())
        .or_default()
        .push((method, status, res.clone()));
    res
}

/// The one router-wide layer, outermost first: it observes the request (log line,
/// metrics), gives errors the JSON shape (`shape::json_errors`), refuses an unknown query
/// string (`shape::unknown_query`), checks the token of a `/v1` route (`auth::check`) and
/// applies the deadline. One layer instead of five saves four boxed futures and service
/// clones on every request (`server::layer`). Runs outside the route's own layers, so
/// rejected requests (401, 413, deadline) are observed too.
pub type Edge = StateLayer<EdgeAround>;

/// What [`Edge`] does around each route.
pub struct EdgeAround;

impl Around for EdgeAround {
    fn call<S>(state: &AppState, inner: &mut S, request: Request) -> ResponseFuture
    where
        S: Service<Request, Response = Response, Error = Infallible>,
        S::Future: Send + 'static,
    {
        let started = Instant::now();
        let method = request.method().clone();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let grpc = super::grpc::is_grpc(&request);
        let dated = needs_date(&request, grpc);
        let state = state.clone();
        let answer = match super::shape::unknown_query(&request) {
            Some(refusal) => Err(refusal),
            None => match super::auth::check(&state, &request).transpose() {
                Err(refusal) => Err(refusal),
                Ok(key) => {
                    let limit = deadline_of(&state, &request);
                    Ok((inner.call(request), limit, grpc, key))
                }
            },
        };
        Box::pin(async move {
            let response = match answer {
                Err(refusal) => refusal,
                Ok((inner, limit, grpc, key)) => {
                    let mut response = within(inner, limit, grpc).await;
                    if let Some(key) = key.filter(|_| details_wanted()) {
                        response.extensions_mut().insert(key);
                    }
                    response
                }
            };
            let mut response = super::shape::json_errors(response).await;
            if dated {
                add_date(&mut response);
            }
            let route = route.as_ref().map_or("unmatched", |path| path.as_str());
            observe(&state, started, &method, route, &response);
            Ok(response)
        })
    }
}

/// Whether the answer must be dated here: an HTTP/2 request that is not a gRPC call
/// (hyper dates HTTP/1 answers itself, and HTTP/2 ones not at all: `listen`).
fn needs_date(request: &Request, grpc: bool) -> bool {
    request.version() == axum::http::Version::HTTP_2 && !grpc
}

/// Adds `Date: <now>` unless the answer has one.
fn add_date(response: &mut Response) {
    let headers = response.headers_mut();
    if headers.contains_key(DATE) {
        return;
    }
    let now = httpdate::fmt_http_date(std::time::SystemTime::now());
    if let Ok(value) = HeaderValue::from_str(&now) {
        headers.insert(DATE, value);
    }
}

/// Counts one answered request in the route's metrics; returns its latency.
fn count(method: &Method, route: &str, status: u16, started: Instant) -> Duration {
    let latency = started.elapsed();
    let metrics = route_metrics(route, method_label(method), status);
    metrics.requests.increment(1);
    metrics.latency.record(latency.as_secs_f64());
    latency
}

/// [`count`] for a CheckPermission answered before the router (`server::http2`, `POST`,
/// 200), its metrics looked up once per process rather than by route name on every call;
/// also counted in `arbiter_grpc_checks_in_place_total`, which tells an operator whether
/// their clients' calls take this path. No log line: calls are answered there only while
/// [`details_wanted`] is false.
pub(crate) fn count_check_permission(started: Instant) {
    static METRICS: OnceLock<(RouteMetrics, metrics::Counter)> = OnceLock::new();
    let (metrics, in_place) = METRICS.get_or_init(|| {
        let route = route_metrics(
            super::grpc::CHECK_PERMISSION_PATH,
            method_label(&Method::POST),
            200,
        );
        (route, metrics::counter!(IN_PLACE_CHECKS))
    });
    metrics.requests.increment(1);
    metrics.latency.record(started.elapsed().as_secs_f64());
    in_place.increment(1);
}

/// The CheckPermission calls answered on their HTTP/2 connection's task, without the
/// router (also counted under their route in `arbiter_http_requests_total`).
pub(crate) const IN_PLACE_CHECKS: &str = "arbiter_grpc_checks_in_place_total";

/// Logs and counts one answered request.
fn observe(state: &AppState, started: Instant, method: &Method, route: &str, response: &Response) {
    let status = response.status().as_u16();
    let latency = count(method, route, status, started);
    let access_log = state.config().access_log;
    // The line is built only when it is logged: most servers log requests at debug level,
    // which is off.
    if !access_log && !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let revision = response.extensions().get::<Revision>().map(|it| it.0);
    let key = response.extensions().get::<KeyName>().map(KeyName::as_str);
    let latency_us = latency.as_micros() as u64;
    // The log line shows at most a bounded prefix of an odd method.
    let method = super::clip::truncate(method.as_str(), 32);
    if access_log {
        tracing::info!(method = %method, route, status, latency_us, revision, key, "request");
    } else {
        tracing::debug!(method = %method, route, status, latency_us, revision, key, "request");
    }
}

/// The request's deadline: the request timeout, except for a bulk import, which has none.
fn deadline_of(state: &AppState, request: &Request) -> Option<Duration> {
    (!super::import::is_import(request.uri().path())).then(|| state.config().request_timeout)
}

/// Answers 503 `deadline_exceeded` (a gRPC call: DEADLINE_EXCEEDED) when the handler has
/// not produced its response within `limit`. The handler's future is dropped; a blocking
/// write already handed to the store still completes (and is acknowledged by nobody).
async fn within<F>(inner: F, limit: Option<Duration>, grpc: bool) -> Response
where
    F: Future<Output = Result<Response, Infallible>>,
{
    let Some(limit) = limit else {
        let Ok(response) = inner.await;
        return response;
    };
    match tokio::time::timeout(limit, inner).await {
        Ok(Ok(response)) => response,
        Err(_) if grpc => super::grpc::deadline_exceeded(limit),
        Err(_) => ApiError::DeadlineExceeded(limit.as_millis()).into_response(),
    }
}

/// The Prometheus text of every metric, after refreshing the engine gauges.
pub fn render(state: &AppState) -> String {
    let Some(handle) = handle() else {
        return String::new();
    };
    let engine = state.engine();
    let stats = engine.cache_stats();
    metrics::gauge!("arbiter_head_revision").set(engine.head().0 as f64);
    metrics::gauge!("arbiter_check_cache_hits").set(stats.hits as f64);
    metrics::gauge!("arbiter_check_cache_misses").set(stats.misses as f64);
    metrics::gauge!("arbiter_check_cache_entries").set(stats.entries as f64);
    metrics::gauge!("arbiter_schema_loaded").set(if engine.schema().is_some() { 1.0 } else { 0.0 });
    if let Some(bytes) = engine.store_disk_bytes() {
        metrics::gauge!("arbiter_store_disk_bytes").set(bytes as f64);
    }
    handle.run_upkeep();
    handle.render()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;
    use crate::engine::{self, Arbiter};
    use crate::server::ServerConfig;

    fn state(timeout: Duration) -> AppState {
        let engine = Arbiter::in_memory(engine::Config::default()).unwrap();
        let config = ServerConfig {
            request_timeout: timeout,
            ..ServerConfig::default()
        };
        AppState::new(engine, config)
    }

    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_millis(500)).await;
        "done"
    }

    #[tokio::test]
    async fn deadline_answers_503_with_the_json_error() {
        let state = state(Duration::from_millis(20));
        let app = Router::new()
            .route("/slow", get(slow))
            .layer(Edge::new(state.clone()))
            .with_state(state);
        let request = Request::get("/slow").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"]["code"], "deadline_exceeded");
    }

    #[tokio::test]
    async fn http2_answers_are_dated_here_except_grpc_ones() {
        // hyper dates HTTP/1 answers and, as `listen` configures it, no HTTP/2 ones.
        let app = crate::server::router(state(Duration::from_secs(5)));
        let cases = [
            ("HTTP/2 JSON", axum::http::Version::HTTP_2, None, true),
            ("HTTP/1.1 JSON", axum::http::Version::HTTP_11, None, false),
            (
                "HTTP/2 gRPC",
                axum::http::Version::HTTP_2,
                Some("application/grpc"),
                false,
            ),
        ];
        for (name, version, content_type, dated) in cases {
            let mut request = Request::get("/healthz").version(version);
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let response = app
                .clone()
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let date = response.headers().get(DATE).map(|it| it.to_str().unwrap());
            assert_eq!(date.is_some(), dated, "{name}");
            if let Some(date) = date {
                assert!(httpdate::parse_http_date(date).is_ok(), "{name}: {date}");
            }
        }
    }

    #[tokio::test]
    async fn metrics_count_requests_by_route_and_status() {
        let state = state(Duration::from_secs(5));
        let app = crate::server::router(state.clone());
        let request = Request::get("/healthz").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let text = render(&state);
        assert!(
            text.contains(
                r#"arbiter_http_requests_total{route="/healthz",method="GET",status="200"}"#
            ),
            "{text}"
        );
        assert!(text.contains("arbiter_schema_loaded 0"), "{text}");
    }
}
