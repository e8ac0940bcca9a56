//! HTTP/2 connections, served with `h2` directly rather than through hyper (issue 13).
//!
//! A gRPC client sends most of its calls as CheckPermission over one HTTP/2 connection.
//! Through hyper each call became a spawned task, hyper's request and response types,
//! axum's router and the router-wide layer, then hyper's pipe back into h2: about 25,000
//! instructions of server CPU beyond h2's own frame work, where a whole JSON check over
//! HTTP/1 costs 27,000 (docs/BENCHMARKS.md, "Stop 32"). Here the connection's own task
//! answers a CheckPermission the check cache holds in place: the frames are read, the
//! guard admits the call as the lean route would, the cached answer is framed, and once
//! no accepted stream is left every answer made meanwhile is queued on its stream, so
//! that one write carries them all (64 calls in flight on one connection would otherwise
//! cost a write each). Everything else — a call the cache does not hold, every other
//! method, every plain HTTP/2 request — goes through the same router as before on a task
//! of its own, as hyper would have run it, so one engine answers both ways and only the
//! transport differs.
//!
//! What the connection does not answer in place, and why:
//! - a body not complete when the call is accepted, or more than one message: the
//!   router's lean route reads it;
//! - a query string, a `grpc-encoding`, or any request when the access log or debug
//!   logging is on (its line needs the router-wide layer's details);
//! - an answer the cache does not hold: the walk may take long, so it must not hold up
//!   the connection's other streams.
//!
//! Settings are hyper's defaults for a server (windows, frame and header sizes, stream
//! limits, reset-flood limits), so a client sees the same connection as before.

use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::header::{CONNECTION, CONTENT_LENGTH, TE, TRANSFER_ENCODING, UPGRADE};
use axum::http::{HeaderMap, HeaderValue, Request, Response};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use hyper::body::{Body as _, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite};
use tower::ServiceExt;

use super::AppState;

/// hyper's HTTP/2 server defaults (hyper 1.x `proto::h2::server`).
const STREAM_WINDOW: u32 = 1024 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;
const MAX_FRAME_SIZE: u32 = 16 * 1024;
const MAX_SEND_BUFFER: usize = 400 * 1024;
const MAX_HEADER_LIST: u32 = 16 * 1024;
const MAX_CONCURRENT_STREAMS: u32 = 200;
const MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// Serves one HTTP/2 connection until the client closes it or, after `stopping` turns
/// true, until its open streams have finished.
pub(super) async fn serve<T>(
    io: T,
    app: Router,
    state: AppState,
    remote: SocketAddr,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<(), h2::Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut connection = h2::server::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
        .handshake::<T, Bytes>(io)
        .await?;
    let mut closing = *stopping.borrow();
    if closing {
        connection.graceful_shutdown();
    }
    // Answers made in place, sent together once no accepted stream is left, so that one
    // write carries all of them.
    let mut answered: Vec<Answered> = Vec::new();
    loop {
        let next = tokio::select! {
            next = next_to_route(&mut connection, &state, &mut answered) => next,
            changed = stopping.wait_for(|it| *it), if !closing => {
                closing = true;
                if changed.is_ok() {
                    connection.graceful_shutdown();
                }
                continue;
            }
        };
        let Some(next) = next else {
            return Ok(());
        };
        let (request, respond) = next?;
        tokio::spawn(route(app.clone(), request, respond, remote));
    }
}

/// A CheckPermission answered in place, not sent yet.
struct Answered {
    respond: SendResponse<Bytes>,
    frame: Bytes,
    started: Instant,
}

/// What becomes of one accepted stream.
enum Accepted {
    InPlace(Answered),
    /// For the router, with its body as it was.
    Route(Request<Body>, SendResponse<Bytes>),
    /// Nothing to answer (the stream failed).
    Gone,
}

/// Accepts streams, answering in place the ones it can, until one is for the router
/// (`None`: the connection is closed). The answers made in place are sent when no
/// accepted stream is left, and written by the next poll of the connection.
async fn next_to_route<T>(
    connection: &mut h2::server::Connection<T, Bytes>,
    state: &AppState,
    answered: &mut Vec<Answered>,
) -> Option<Result<(Request<Body>, SendResponse<Bytes>), h2::Error>>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    std::future::poll_fn(|cx| {
        // Whether the next poll of the connection is a quiet one (see below).
        let mut quiet = false;
        loop {
            let mut quiet_cx = Context::from_waker(std::task::Waker::noop());
            let polled = if quiet {
                connection.poll_accept(&mut quiet_cx)
            } else {
                connection.poll_accept(cx)
            };
            match polled {
                Poll::Ready(Some(Ok((request, respond)))) => {
                    match answer_in_place(state, request, respond) {
                        Accepted::InPlace(answer) => answered.push(answer),
                        Accepted::Route(request, respond) => {
                            return Poll::Ready(Some(Ok((request, respond))));
                        }
                        Accepted::Gone => {}
                    }
                }
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => return Poll::Ready(None),
                // Queued on their streams; the next poll, with this task's waker again,
                // writes them and waits for more.
                Poll::Pending if quiet => {
                    quiet = false;
                    answered.drain(..).for_each(send);
                }
                Poll::Pending if answered.is_empty() => return Poll::Pending,
                // Queuing an answer wakes the waker of the connection's last poll: this
                // task's own, from inside its own poll, which tokio answers by polling
                // it again and waking a parked worker (a futex and an eventfd write per
                // call, for nothing). So the connection is polled once more with a waker
                // that does nothing before the answers are queued.
                Poll::Pending => quiet = true,
            }
        }
    })
    .await
}

/// Queues an answer made in place on its stream: the headers, the message, the
/// `grpc-status` trailer.
fn send(answer: Answered) {
    let Answered {
        mut respond,
        frame,
        started,
    } = answer;
    let mut head = Response::new(());
    head.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    if let Ok(mut stream) = respond.send_response(head, false) {
        let _ = stream.send_data(frame, false);
        let mut trailers = HeaderMap::with_capacity(1);
        trailers.insert(super::grpc::GRPC_STATUS, HeaderValue::from_static("0"));
        let _ = stream.send_trailers(trailers);
    }
    super::observe::count_check_permission(started);
}

/// A request answered in place if it is a CheckPermission the cache holds (its body
/// complete, one message); otherwise handed back, with its body as it was, for [`route`].
fn answer_in_place(
    state: &AppState,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) -> Accepted {
    let started = Instant::now();
    let (parts, mut recv) = request.into_parts();
    // The body so far: a unary call's data has been read with its headers, in one data
    // frame ending the stream (grpc-core, this project's load generator) or in one data
    // frame and an empty one that ends it (tonic, grpc-go).
    let mut first: Option<Bytes> = None;
    let candidate = super::grpc::at_once_candidate(&parts) && !super::observe::details_wanted();
    let limit = state.config().body_limit;
    while candidate && !recv.is_end_stream() && first.as_ref().is_none_or(|it| it.len() <= limit) {
        match poll_once(&mut recv) {
            Some(Some(Ok(data))) => first = Some(joined(first, data)),
            // The stream failed (reset by the client, say): nobody to answer.
            Some(Some(Err(_))) => return Accepted::Gone,
            Some(None) | None => break,
        }
    }
    if let Some(data) = &first
        && recv.is_end_stream()
        && let Some(frame) = super::grpc::answer_at_once(state, &parts, data)
    {
        let _ = recv.flow_control().release_capacity(data.len());
        return Accepted::InPlace(Answered {
            respond,
            frame,
            started,
        });
    }
    let content_length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|it| it.to_str().ok())
        .and_then(|it| it.parse::<u64>().ok());
    let body = IncomingH2 {
        first,
        recv,
        content_length,
        data_done: false,
        done: false,
    };
    Accepted::Route(Request::from_parts(parts, Body::new(body)), respond)
}

/// `data` after what was read before it (a copy only when both have bytes: the empty
/// frame that ends a tonic call's body costs nothing).
fn joined(before: Option<Bytes>, data: Bytes) -> Bytes {
    match before {
        None => data,
        Some(before) if data.is_empty() => before,
        Some(before) if before.is_empty() => data,
        Some(before) => [before, data].concat().into(),
    }
}

/// The next data frame if it is already there: `None` if the stream would wait.
/// (Polled with a waker that does nothing: a stream that waits is polled again by the
/// task it is handed to, which registers its own.)
fn poll_once(recv: &mut RecvStream) -> Option<Option<Result<Bytes, h2::Error>>> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match recv.poll_data(&mut cx) {
        Poll::Ready(data) => Some(data),
        Poll::Pending => None,
    }
}

/// One stream through the router, on a task of its own, as hyper runs it: the answer is
/// dropped if the client resets the stream first, and its body is piped to the stream
/// within the flow-control window.
async fn route(
    app: Router,
    mut request: Request<Body>,
    mut respond: SendResponse<Bytes>,
    remote: SocketAddr,
) {
    request.extensions_mut().insert(ConnectInfo(remote));
    let answer = app.oneshot(request);
    let mut answer = std::pin::pin!(answer);
    let response = std::future::poll_fn(|cx| {
        if let Poll::Ready(reset) = respond.poll_reset(cx) {
            return Poll::Ready(Err(reset));
        }
        answer.as_mut().poll(cx).map(|Ok(response)| Ok(response))
    })
    .await;
    let Ok(response) = response else {
        // Reset by the client (or the stream failed): nobody is waiting.
        return;
    };
    let (head, body) = response.into_parts();
    let mut head = Response::from_parts(head, ());
    strip_connection_headers(head.headers_mut());
    if body.is_end_stream() {
        let _ = respond.send_response(head, true);
        return;
    }
    if let Some(len) = body.size_hint().exact() {
        head.headers_mut()
            .entry(CONTENT_LENGTH)
            .or_insert_with(|| HeaderValue::from(len));
    }
    let Ok(stream) = respond.send_response(head, false) else {
        return;
    };
    pipe(body, stream).await;
}

/// Sends `body`'s frames on `stream`, data within the peer's flow-control window, until
/// the body ends, fails (the stream is reset) or the client resets the stream.
async fn pipe(body: Body, mut stream: SendStream<Bytes>) {
    let mut body = std::pin::pin!(body);
    loop {
        let frame = std::future::poll_fn(|cx| {
            if let Poll::Ready(reset) = stream.poll_reset(cx) {
                return Poll::Ready(Err(reset));
            }
            body.as_mut().poll_frame(cx).map(Ok)
        })
        .await;
        let frame = match frame {
            Err(_) => return,
            Ok(None) => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Ok(Some(Err(err))) => {
                tracing::debug!(error = %err, "an answer's body failed; resetting its stream");
                stream.send_reset(Reason::INTERNAL_ERROR);
                return;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let frame = match frame.into_data() {
            Ok(data) => {
                let end = body.is_end_stream();
                if send_within_window(&mut stream, data, end).await.is_err() || end {
                    return;
                }
                continue;
            }
            Err(frame) => frame,
        };
        if let Ok(trailers) = frame.into_trailers() {
            let _ = stream.send_trailers(trailers);
            return;
        }
    }
}

/// Sends `data` in as many pieces as the window allows, the last one ending the stream if
/// `end`.
async fn send_within_window(
    stream: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), h2::Error> {
    if data.is_empty() {
        return if end {
            stream.send_data(data, true)
        } else {
            Ok(())
        };
    }
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = std::future::poll_fn(|cx| {
            if let Poll::Ready(reset) = stream.poll_reset(cx) {
                return Poll::Ready(Some(Err(reset.map_or_else(|err| err, h2::Error::from))));
            }
            stream.poll_capacity(cx)
        })
        .await;
        let granted = match granted {
            None => return Err(h2::Error::from(Reason::CANCEL)),
            Some(granted) => granted?,
        };
        if granted == 0 {
            continue;
        }
        let piece = data.split_to(granted.min(data.len()));
        stream.send_data(piece, end && data.is_empty())?;
    }
    Ok(())
}

/// Headers HTTP/2 forbids in an answer (RFC 9113 §8.2.2), removed as hyper removes them.
fn strip_connection_headers(headers: &mut HeaderMap) {
    for name in [TRANSFER_ENCODING, UPGRADE, TE] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    if let Some(listed) = headers.remove(CONNECTION)
        && let Ok(listed) = listed.to_str()
    {
        for name in listed.split(',') {
            headers.remove(name.trim());
        }
    }
}

/// A request body read from an h2 stream, the flow-control window given back as each
/// frame is handed on.
struct IncomingH2 {
    /// A data frame read before the body was handed over (its window already given back
    /// when it is handed on, like the others).
    first: Option<Bytes>,
    recv: RecvStream,
    /// What is left of a `content-length`, for the size hint.
    content_length: Option<u64>,
    data_done: bool,
    done: bool,
}

impl IncomingH2 {
    /// Hands `data` on: its window back to the peer, its length off the hint.
    fn hand_on(&mut self, data: Bytes) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let _ = self.recv.flow_control().release_capacity(data.len());
        if let Some(left) = &mut self.content_length {
            *left = left.saturating_sub(data.len() as u64);
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

impl hyper::body::Body for IncomingH2 {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(data) = this.first.take() {
            return this.hand_on(data);
        }
        if !this.data_done {
            match this.recv.poll_data(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(data))) => return this.hand_on(data),
                Poll::Ready(Some(Err(err))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Ready(None) => this.data_done = true,
            }
        }
        let trailers = std::task::ready!(this.recv.poll_trailers(cx));
        this.done = true;
        match trailers {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(err) => Poll::Ready(Some(Err(err))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.first.is_none() && self.recv.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match self.content_length {
            Some(len) => SizeHint::with_exact(len),
            None => SizeHint::default(),
        }
    }
}
