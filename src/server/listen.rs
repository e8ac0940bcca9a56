//! The accept loop: serves an axum [`Router`] on a bound listener with the connection
//! guards `axum::serve` does not expose (issue 10, item 6, slowloris):
//! - a cap on open connections: a semaphore permit is taken *before* `accept`, so a
//!   connection past the cap waits in the kernel's listen backlog and holds no descriptor
//!   of ours until a served connection closes;
//! - a header read timeout: an HTTP/1 client that has not sent a complete request head
//!   within it is disconnected (hyper's `header_read_timeout`, which needs a timer);
//! - graceful shutdown: on the signal the loop stops accepting, every connection is told
//!   to finish its in-flight requests and close, and the loop returns once all have.
//!
//! HTTP/1 and HTTP/2 share the port: a connection that opens with the HTTP/2 preface (or
//! picks `h2` by ALPN) is served by `server::http2`, on h2 directly; every other one by
//! hyper. So gRPC routes merged into the router are served here too. With a TLS acceptor
//! every connection is handshaken first (within the header timeout; ALPN picks HTTP/2 or
//! HTTP/1.1) and then served the same way; a client that cannot finish the handshake (a
//! plain-text one) is closed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// How long to pause accepting after `accept` fails (out of descriptors, say), so the
/// loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The connection-level limits of [`run`].
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains every connection.
pub async fn run(
    listener: TcpListener,
    app: Router,
    state: super::AppState,
    limits: ConnectionLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    // No `Date` from hyper on HTTP/2: a gRPC answer needs none (SpiceDB's grpc-go server
    // sends none) and formatting and HPACK-encoding it cost 3 µs of server CPU per gRPC
    // check (docs/BENCHMARKS.md). `observe::Edge` dates every other HTTP/2 answer, as
    // HTTP requires of a server with a clock; hyper still dates every HTTP/1 answer.
    builder
        .http2()
        .timer(TokioTimer::new())
        .auto_date_header(false);
    let mut shutdown = std::pin::pin!(shutdown);
    // Tells connections still waiting for their first bytes that shutdown has started.
    let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
    // Every HTTP/2 connection's task holds a sender: the drain waits until all are gone.
    let (h2_open, mut h2_drained) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                // The semaphore is never closed; stop serving if it somehow is.
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let header_timeout = limits.header_timeout;
        let (app_h2, state, h2_open) = (app.clone(), state.clone(), h2_open.clone());
        let service = app.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(remote));
                request
            },
        );
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let mut stopping = stopping_rx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let ready = async {
                match &tls {
                    Some(acceptor) => tokio::time::timeout(header_timeout, acceptor.accept(stream))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .map(|stream| {
                            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            Connection::Tls(Box::new(stream), h2)
                        }),
                    None => protocol_known(&stream, header_timeout)
                        .await
                        .map(|h2| Connection::Plain(stream, h2)),
                }
            };
            let connection = tokio::select! {
                connection = ready => connection,
                _ = stopping.wait_for(|it| *it) => None,
            };
            // One body for both kinds of stream (the service's type cannot be named, so
            // a generic function would not do): HTTP/2 to `server::http2`, the rest to
            // hyper, watched for the graceful drain.
            macro_rules! serve_on {
                ($io:expr, $h2:expr) => {
                    if $h2 {
                        let _open = h2_open;
                        super::http2::serve($io, app_h2, state, remote, stopping)
                            .await
                            .map_err(Into::into)
                    } else {
                        let connection = builder
                            .serve_connection_with_upgrades(
                                TokioIo::new($io),
                                TowerToHyperService::new(service),
                            )
                            .into_owned();
                        watcher.watch(connection).await
                    }
                };
            }
            let served = match connection {
                None => {
                    tracing::debug!(%remote, "closed a connection that sent no request (or no TLS handshake) in time");
                    Ok(())
                }
                Some(Connection::Plain(stream, h2)) => serve_on!(stream, h2),
                Some(Connection::Tls(stream, h2)) => serve_on!(stream, h2),
            };
            if let Err(err) = served {
                tracing::debug!(error = %err, %remote, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    stopping.send_replace(true);
    drop(h2_open);
    graceful.shutdown().await;
    // `None` once every HTTP/2 connection's task has ended.
    let _ = h2_drained.recv().await;
    Ok(())
}

/// An accepted connection, ready to be served, and whether it speaks HTTP/2 (the
/// preface, or ALPN's `h2`): served by `server::http2`, the rest by hyper.
enum Connection {
    Plain(tokio::net::TcpStream, bool),
    Tls(
        Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
        bool,
    ),
}

/// The HTTP/2 connection preface; hyper-util reads up to its length to tell HTTP/1 from
/// HTTP/2, without a timeout of its own.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits (without consuming anything) until the client has sent enough bytes to tell its
/// protocol, at most `timeout`: whether it is HTTP/2 (the whole preface), `None` if it
/// did not tell in time. hyper's header timeout only starts once the protocol is known,
/// so without this a client sending a few bytes and stopping would hold its connection
/// slot for ever.
async fn protocol_known(stream: &tokio::net::TcpStream, timeout: Duration) -> Option<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 24];
    let mut seen = 0;
    loop {
        let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await;
        let n = match peeked {
            Ok(Ok(n)) => n,
            // Timed out, or the connection failed.
            Ok(Err(_)) | Err(_) => return None,
        };
        if n == 0 {
            // Closed by the client before sending anything.
            return None;
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Some(false);
        }
        if n >= H2_PREFACE.len() {
            return Some(true);
        }
        if n == seen {
            // Partial preface and nothing new: peek returns at once while data is
            // buffered, so pause instead of spinning.
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(PEEK_PAUSE).await;
        }
        seen = n;
    }
}

/// The pause between two peeks at a partial HTTP/2 preface.
const PEEK_PAUSE: Duration = Duration::from_millis(20);
