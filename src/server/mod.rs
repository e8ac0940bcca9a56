//! The HTTP API of DESIGN §5: a thin axum layer over the embeddable [`Arbiter`].
//!
//! Layout:
//! - [`router`] builds the whole app from an [`AppState`]; [`serve`] runs it on a bound
//!   listener until a shutdown future resolves, then drains in-flight requests and flushes
//!   the store;
//! - `handlers`: one function per endpoint; `dto`: the JSON bodies and their conversions;
//! - `error`: [`ApiError`] and the one `IntoResponse` impl; `auth`: the bearer token;
//! - `observe`: per-request tracing, Prometheus metrics, the deadline; `watch`: the
//!   streaming change feed; `openapi`: the document served at `/openapi.json`;
//! - `playground`: the page at `/playground` and its sandbox evaluate route.
//!
//! The engine is synchronous. Checks take microseconds and run inline on the runtime
//! (`inline`: within a slice, else on the blocking pool); everything that may touch sled or walk large graphs (writes with their flush, reads,
//! lookups, expand, bulk checks) runs on the blocking pool.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::engine::Arbiter;

mod auth;
mod check_json;
pub mod clip;
pub mod dto;
pub mod error;
pub mod grpc;
mod handlers;
mod http2;
pub mod import;
mod inline;
pub mod keys;
mod layer;
pub mod listen;
mod observe;
pub mod openapi;
pub mod playground;
mod schemas;
mod shape;
pub mod sync;
pub mod tls;
mod watch;

pub use error::{ApiError, ErrorBody};

/// Server settings, validated by the CLI before the server starts.
/// The default `--max-import-bytes`: about 2.5M relationships of typical length.
pub const DEFAULT_IMPORT_LIMIT: usize = 256 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// When set, every `/v1` request must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// The largest request body accepted, in bytes; larger bodies answer 413.
    pub body_limit: usize,
    /// The largest NDJSON body of one bulk import, in bytes (413 past it).
    pub import_limit: usize,
    /// How long one request may run before it answers 503 `deadline_exceeded` (the watch
    /// stream is exempt once its headers are sent).
    pub request_timeout: Duration,
    /// The most items one bulk check or one write may carry; more answer 400.
    pub max_batch: usize,
    /// The largest page a read or lookup returns, and the default page size.
    pub max_page: usize,
    /// Log one line per request at info level (otherwise at debug, off by default).
    pub access_log: bool,
    /// How long a client may take to send a request's headers (HTTP/1) before the
    /// connection is closed: the slowloris guard.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body before it answers 408.
    pub body_timeout: Duration,
    /// The most connections served at once; further ones wait in the listen backlog
    /// (not accepted, so they hold no file descriptor of ours) until one closes.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            token: None,
            body_limit: 4 * 1024 * 1024,
            import_limit: DEFAULT_IMPORT_LIMIT,
            request_timeout: Duration::from_secs(10),
            max_batch: 500,
            max_page: 1_000,
            access_log: false,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 1_000,
        }
    }
}

/// What every handler shares: the engine, the settings and the shutdown signal.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    engine: Arbiter,
    config: ServerConfig,
    /// The API keys (`--token`, `--keys`); replaced whole on SIGHUP.
    keys: keys::Keys,
    /// Flipped to `true` when shutdown starts, so that endless watch streams end and the
    /// graceful drain can finish.
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    pub fn new(engine: Arbiter, config: ServerConfig) -> Self {
        let (shutdown, _) = tokio::sync::watch::channel(false);
        Self {
            inner: Arc::new(Shared {
                engine,
                keys: keys::Keys::new(config.token.as_deref().map(keys::KeyRing::from_token)),
                config,
                shutdown,
            }),
        }
    }

    pub fn engine(&self) -> &Arbiter {
        &self.inner.engine
    }

    /// The engine for one request: its walks stop with `deadline_exceeded` once the
    /// request's deadline (`--request-timeout-ms`) has passed, so no work goes on after the
    /// client got its 503.
    pub fn request_engine(&self) -> Arbiter {
        let deadline = crate::engine::Deadline::after(self.inner.config.request_timeout);
        self.inner.engine.with_deadline(deadline)
    }

    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The API keys every `/v1` request is checked against.
    pub fn keys(&self) -> &keys::Keys {
        &self.inner.keys
    }

    /// Resolves once shutdown has started.
    pub(crate) fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }
}

/// The whole application: every route of DESIGN §5 with auth, limits, deadline, tracing
/// and metrics.
pub fn router(state: AppState) -> Router {
    observe::install(state.config().access_log);
    let (routes, api) = openapi::api_router().split_for_parts();
    let document = Arc::new(openapi::render(api, state.config()));
    routes
        .merge(grpc::router(state.clone()))
        .route(
            "/openapi.json",
            axum::routing::get(move || openapi::serve_document(Arc::clone(&document))),
        )
        .merge(playground::page_routes())
        .fallback(handlers::not_found)
        .layer(observe::Edge::new(state.clone()))
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` resolves; then stops accepting, ends watch
/// streams, waits for in-flight requests and flushes the store. Connections are capped and
/// slow request heads cut off as [`listen`] describes.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, None, state, shutdown).await
}

/// Like [`serve`], over TLS: every connection is handshaken with `acceptor` (HTTP/2 or
/// HTTP/1.1 by ALPN) before it is served, under the same connection cap and timeouts; a
/// client that cannot finish the handshake (a plain-text client) is closed.
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, Some(acceptor), state, shutdown).await
}

/// [`serve`] and [`serve_tls`]: one accept loop, one drain, one flush.
async fn serve_with(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let drain_state = state.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        drain_state.begin_shutdown();
    };
    let limits = listen::ConnectionLimits {
        header_timeout: state.config().header_timeout,
        max_connections: state.config().max_connections,
    };
    listen::run(listener, app, state.clone(), limits, tls, signal).await?;
    finish(&state).await
}

/// After the drain: save the index image (a cache for the next start: a failure is
/// logged, not fatal) and flush the store.
async fn finish(state: &AppState) -> std::io::Result<()> {
    let engine = state.engine().clone();
    let flushed = tokio::task::spawn_blocking(move || {
        if let Err(err) = engine.save_index_image() {
            tracing::warn!(%err, "the index image was not saved; the next start reads every relationship");
        }
        engine.flush()
    })
        .await
        .map_err(std::io::Error::other)?;
    flushed.map_err(std::io::Error::other)?;
    tracing::info!(revision = state.engine().head().0, "store flushed; stopped");
    Ok(())
}
