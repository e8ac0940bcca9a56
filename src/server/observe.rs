//! Per-request observability and the deadline: one structured log line per request
//! (method, route, status, latency, revision), Prometheus counters and latency histograms
//! by route and status, and the rendering of `/metrics`.
//!
//! Metrics go to one process-wide Prometheus recorder, installed on first use; gauges that
//! mirror engine state (head revision, cache counters, store size) are set when `/metrics`
//! is rendered, so they cost nothing per request.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::AppState;
use super::error::ApiError;
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
pub fn install() {
    let _ = handle();
}

/// Logs and counts every request. Runs outside every other layer, so rejected requests
/// (401, 413, deadline) are observed too.
pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |path| path.as_str())
        .to_string();
    let response = next.run(request).await;
    let latency = started.elapsed();
    let status = response.status().as_u16();
    let revision = response.extensions().get::<Revision>().map(|it| it.0);
    let labels = [
        ("route", route.clone()),
        ("method", method.to_string()),
        ("status", status.to_string()),
    ];
    metrics::counter!("arbiter_http_requests_total", &labels).increment(1);
    metrics::histogram!("arbiter_http_request_duration_seconds", &labels)
        .record(latency.as_secs_f64());
    tracing::info!(
        method = %method,
        route = %route,
        status,
        latency_us = latency.as_micros() as u64,
        revision,
        "request"
    );
    response
}

/// Answers 503 `deadline_exceeded` when the handler has not produced its response in
/// time. The handler's future is dropped; a blocking write already handed to the store
/// still completes (and is acknowledged by nobody).
pub async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.config().request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
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
    handle.run_upkeep();
    handle.render()
}
