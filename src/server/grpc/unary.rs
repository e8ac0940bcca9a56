//! A lean unary path for CheckPermission, the call gRPC clients make most: the request
//! body is read into one buffer, its one message decoded with prost, the same
//! [`super::permissions::check`] answers, and the reply goes out as one data frame and the
//! `grpc-status` trailer. tonic's generic unary machinery around the same steps (its
//! streaming decoder and encoder with an 8 KiB buffer each, metadata maps, three boxed
//! futures) cost more than the translation itself (docs/BENCHMARKS.md).
//!
//! Everything a client can observe is tonic's, and the tests compare the two answer for
//! answer: the route sits behind the same `guard` (token, `grpc-timeout`) and router-wide
//! layer (request timeout, metrics); `grpc-encoding` other than `identity` is
//! UNIMPLEMENTED, a compressed or invalid frame flag INTERNAL, a message over the body
//! limit OUT_OF_RANGE, a body without a message, a truncated one or bad protobuf INTERNAL,
//! with tonic's messages. Messages after the first are decoded and ignored, as tonic does.

use std::cell::RefCell;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use hyper::body::{Body as _, Frame};
use prost::Message;
use spicedb_rs_proto::authzed::api::v1 as pb;
use tonic::Status;

use super::super::AppState;
use crate::engine::{Decision, Permissionship};
use crate::model::Revision;

/// The gRPC frame header: a compression flag and a 4-byte big-endian length.
const HEADER: usize = 5;

/// The trailer of every answer, its name checked once at compile time rather than parsed
/// per call.
pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// The header naming a request's compression, looked up as a constant: a name given as
/// text is parsed on every lookup.
const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");

/// The route of the call this module answers.
pub(crate) const CHECK_PERMISSION_PATH: &str = "/authzed.api.v1.PermissionsService/CheckPermission";

/// Whether a request's head lets it be answered before the router sees it
/// (`server::http2`): a gRPC CheckPermission POSTed without a query string or a
/// `grpc-encoding`.
pub(crate) fn at_once_candidate(head: &axum::http::request::Parts) -> bool {
    head.method == axum::http::Method::POST
        && head.uri.path() == CHECK_PERMISSION_PATH
        && head.uri.query().is_none()
        && super::is_grpc_head(&head.headers)
        && !head.headers.contains_key(GRPC_ENCODING)
}

/// The framed answer to a plain CheckPermission whose whole body is `body` (one
/// message, nothing after it), if the guard admits it and the check cache holds it:
/// exactly what this route would answer, without the router. `None` leaves the call to
/// the router, which answers it (or refuses it) as before.
pub(crate) fn answer_at_once(
    state: &AppState,
    head: &axum::http::request::Parts,
    body: &[u8],
) -> Option<Bytes> {
    let (header, message) = body.split_first_chunk::<HEADER>()?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if header[0] != 0 || len != message.len() || len > state.config().body_limit {
        return None;
    }
    super::guard::admit_head(state, &head.headers, head.uri.path()).ok()?;
    let (parts, mode) = super::wire::check_parts(message)?;
    let decision = super::super::inline::cached(state, &parts, mode)?;
    Some(answer_frame(decision))
}

/// The framed answer to a cached `decision`. A plain yes or no at one revision is the
/// same bytes for every call, so each thread keeps the last frame of each and hands out
/// a shared reference to it rather than encoding the ZedToken and the message again (a
/// third of the in-place answer's own instructions, docs/BENCHMARKS.md "Stop 34"). A
/// conditional answer, which names the missing context, is encoded every time.
fn answer_frame(decision: Decision) -> Bytes {
    let slot = match decision.permissionship {
        _ if !decision.missing_context.is_empty() => None,
        Permissionship::NoPermission => Some(0),
        Permissionship::HasPermission => Some(1),
        Permissionship::ConditionalPermission => None,
    };
    let Some(slot) = slot else {
        return encode_frame(&super::permissions::check_response(decision));
    };
    thread_local! {
        static LAST: RefCell<[Option<(Revision, Bytes)>; 2]> = const { RefCell::new([None, None]) };
    }
    LAST.with_borrow_mut(|last| match &last[slot] {
        Some((revision, frame)) if *revision == decision.revision => frame.clone(),
        _ => {
            let revision = decision.revision;
            let frame = encode_frame(&super::permissions::check_response(decision));
            last[slot] = Some((revision, frame.clone()));
            frame
        }
    })
}

/// `POST /authzed.api.v1.PermissionsService/CheckPermission`, guarded here rather than by
/// the `Guard` layer of the other gRPC routes: the same decision, one routing level and
/// its allocations fewer on the hottest call (docs/BENCHMARKS.md).
pub async fn check_permission(State(state): State<AppState>, request: Request) -> Response {
    // One `respond` future whichever way the call goes (a future per branch would make
    // this one, copied into a box per call, twice as large).
    let admitted = if super::is_grpc(&request) {
        match super::guard::admit(&state, &request) {
            Err(status) => return super::guard::reply(status),
            Ok(admitted) => Some(admitted),
        }
    } else {
        None
    };
    let mut answer = std::pin::pin!(async { Ok::<_, Infallible>(respond(&state, request).await) });
    match admitted {
        Some(admitted) => super::guard::finish(admitted, answer).await,
        None => {
            let Ok(response) = answer.as_mut().await;
            response
        }
    }
}

async fn respond(state: &AppState, request: Request) -> Response {
    match answer(state, request).await {
        Ok(reply) => reply_message(&reply),
        Err(status) => reply_status(status),
    }
}

/// A trailers-only answer: the status in the headers and an empty body of unknown
/// length, as tonic sends it (an empty body of known length would gain a
/// `content-length: 0` header on the way out).
fn reply_status(status: Status) -> Response {
    let (parts, _) = status.into_http::<Body>().into_parts();
    let empty = OneMessage {
        data: None,
        trailers: None,
    };
    Response::from_parts(parts, Body::new(empty))
}

async fn answer(state: &AppState, request: Request) -> Result<pb::CheckPermissionResponse, Status> {
    refuse_compression(request.headers())?;
    let limit = state.config().body_limit;
    let message = first_message(request.into_body(), limit).await?;
    // A repeated plain question: the cache's answer, with nothing decoded or copied. A
    // plain one the cache does not hold is not probed again after decoding.
    let plain = super::wire::check_parts(&message);
    let probed = plain.is_some();
    if let Some((parts, mode)) = plain
        && let Some(decision) = super::super::inline::cached(state, &parts, mode)
    {
        return Ok(super::permissions::check_response(decision));
    }
    let request = pb::CheckPermissionRequest::decode(message).map_err(decode_error)?;
    // Boxed: the walk's future is larger than the rest of the call's, and a check the
    // cache answers (the usual one) should not carry its room.
    if probed {
        Box::pin(super::permissions::check_uncached(state, request)).await
    } else {
        Box::pin(super::permissions::check(state, request)).await
    }
}

/// tonic serves no compression: any `grpc-encoding` but `identity` is UNIMPLEMENTED,
/// naming the one encoding accepted.
fn refuse_compression(headers: &HeaderMap) -> Result<(), Status> {
    let Some(encoding) = headers.get(GRPC_ENCODING) else {
        return Ok(());
    };
    if encoding.as_bytes() == b"identity" {
        return Ok(());
    }
    let name = match std::str::from_utf8(encoding.as_bytes()) {
        Ok(text) => text.to_string(),
        Err(_) => format!("{:?}", encoding.as_bytes()),
    };
    let mut status = Status::unimplemented(format!(
        "Content is compressed with `{name}` which isn't supported"
    ));
    status.metadata_mut().insert(
        "grpc-accept-encoding",
        tonic::metadata::MetadataValue::from_static("identity"),
    );
    Err(status)
}

/// Reads the whole body and answers its first message (the bytes after the frame
/// header); later messages are checked frame by frame and decoded, then dropped.
async fn first_message(mut body: Body, limit: usize) -> Result<Bytes, Status> {
    let mut buf = bytes::BytesMut::new();
    let mut first: Option<Bytes> = None;
    loop {
        // Every complete message buffered so far.
        while let Some(message) = take_message(&mut buf, limit)? {
            match first {
                None => first = Some(message),
                Some(_) => {
                    pb::CheckPermissionRequest::decode(message).map_err(decode_error)?;
                }
            }
        }
        let frame = match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(err)) => {
                let status = Status::from_error(Box::new(err));
                // A cancelled request body ends the stream, as tonic reads it.
                if status.code() == tonic::Code::Cancelled {
                    break;
                }
                return Err(status);
            }
        };
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    if !buf.is_empty() {
        return Err(Status::internal("Unexpected EOF decoding stream."));
    }
    first.ok_or_else(|| Status::internal("Missing request message."))
}

/// The next complete message in `buf`, removed from it; `None` until one is complete.
/// The header is judged as soon as it has arrived, as tonic does.
fn take_message(buf: &mut bytes::BytesMut, limit: usize) -> Result<Option<Bytes>, Status> {
    let Some(header) = buf.get(..HEADER) else {
        return Ok(None);
    };
    match header[0] {
        0 => {}
        1 => {
            return Err(Status::internal(
                "protocol error: received message with compressed-flag but no grpc-encoding was specified",
            ));
        }
        flag => {
            return Err(Status::internal(format!(
                "protocol error: received message with invalid compression flag: {flag} (valid flags are 0 and 1), while sending request"
            )));
        }
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > limit {
        return Err(Status::out_of_range(format!(
            "Error, decoded message length too large: found {len} bytes, the limit is: {limit} bytes"
        )));
    }
    if buf.len() < HEADER + len {
        return Ok(None);
    }
    let mut frame = buf.split_to(HEADER + len);
    Ok(Some(frame.split_off(HEADER).freeze()))
}

/// Bad protobuf is INTERNAL, as gRPC's status code guide (and tonic) say.
fn decode_error(err: prost::DecodeError) -> Status {
    Status::internal(err.to_string())
}

/// A 200 with `content-type: application/grpc`, the message in one data frame and
/// `grpc-status: 0` as the trailer.
fn reply_message(message: &pb::CheckPermissionResponse) -> Response {
    let frame = encode_frame(message);
    let mut trailers = HeaderMap::with_capacity(1);
    trailers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
    let body = OneMessage {
        data: Some(frame),
        trailers: Some(trailers),
    };
    let mut response = Response::new(Body::new(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

/// `message` as one gRPC frame: no compression, its length, its bytes.
fn encode_frame(message: &pb::CheckPermissionResponse) -> Bytes {
    let len = message.encoded_len();
    let mut frame = Vec::with_capacity(HEADER + len);
    frame.push(0);
    // A CheckPermission answer is a few dozen bytes; it always fits the length field.
    frame.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    message.encode_raw(&mut frame);
    Bytes::from(frame)
}

/// A body of one data frame, then the trailers.
struct OneMessage {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl hyper::body::Body for OneMessage {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match self.data.take() {
            Some(data) => Some(Frame::data(data)),
            None => self.trailers.take().map(Frame::trailers),
        };
        Poll::Ready(frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::super::generated::permissions_service_server::PermissionsServiceServer;
    use super::super::permissions::Permissions;
    use super::*;
    use crate::engine::{self, Arbiter};
    use crate::server::ServerConfig;
    use crate::store::{Update, UpdateOp};

    const PATH: &str = "/authzed.api.v1.PermissionsService/CheckPermission";
    /// The body limit of the servers under test: small, so that one case passes it.
    const LIMIT: usize = 256;

    fn state() -> AppState {
        let engine = Arbiter::temporary(engine::Config::default()).unwrap();
        engine
            .write_schema(
                "definition user {}
                 definition document {
                     relation viewer: user
                     permission view = viewer
                 }",
            )
            .unwrap();
        let update = Update {
            op: UpdateOp::Touch,
            relationship: "document:1#viewer@user:alice".parse().unwrap(),
        };
        engine.write(&[update], &[]).unwrap().unwrap();
        let config = ServerConfig {
            body_limit: LIMIT,
            ..ServerConfig::default()
        };
        AppState::new(engine, config)
    }

    fn check(resource_id: &str, permission: &str, who: &str) -> Vec<u8> {
        let object = |kind: &str, id: &str| pb::ObjectReference {
            object_type: kind.to_string(),
            object_id: id.to_string(),
        };
        pb::CheckPermissionRequest {
            consistency: Some(pb::Consistency {
                requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
            }),
            resource: Some(object("document", resource_id)),
            permission: permission.to_string(),
            subject: Some(pb::SubjectReference {
                object: Some(object("user", who)),
                optional_relation: String::new(),
            }),
            context: None,
            with_tracing: false,
        }
        .encode_to_vec()
    }

    /// `message` framed: flag, big-endian length, bytes.
    fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
        let mut out = vec![flag];
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
        out
    }

    fn request(encoding: Option<&str>, body: Vec<u8>) -> Request<Body> {
        let mut builder = Request::post(PATH).header(CONTENT_TYPE, "application/grpc");
        if let Some(encoding) = encoding {
            builder = builder.header("grpc-encoding", encoding);
        }
        builder.body(Body::from(body)).unwrap()
    }

    /// What a client sees of an answer: the HTTP status, the message bytes, the names of
    /// all headers and trailers, and the values of the content type, `grpc-status`,
    /// `grpc-message` and `grpc-accept-encoding` wherever they are.
    async fn seen(response: Response) -> Vec<(String, String)> {
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.unwrap();
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let mut out = vec![
            ("status".to_string(), parts.status.to_string()),
            ("body".to_string(), format!("{:?}", collected.to_bytes())),
        ];
        // No header or trailer beyond the compared ones on either side.
        for (place, map) in [("headers", &parts.headers), ("trailers", &trailers)] {
            let mut names: Vec<&str> = map.keys().map(|it| it.as_str()).collect();
            names.sort_unstable();
            out.push((place.to_string(), names.join(",")));
        }
        for name in [
            "content-type",
            "grpc-status",
            "grpc-message",
            "grpc-accept-encoding",
        ] {
            for (place, map) in [("header", &parts.headers), ("trailer", &trailers)] {
                if let Some(value) = map.get(name) {
                    out.push((format!("{place} {name}"), format!("{value:?}")));
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn issue13_the_lean_check_answers_every_request_as_tonic_does() {
        let state = state();
        let good = check("1", "view", "alice");
        let mut two = frame(0, &good);
        two.extend(frame(0, &check("1", "view", "bob")));
        let mut good_then_bad = frame(0, &good);
        good_then_bad.extend(frame(0, &[0xff, 0xff]));
        let cases: Vec<(&str, Option<&str>, Vec<u8>)> = vec![
            ("allowed", None, frame(0, &good)),
            ("denied", None, frame(0, &check("1", "view", "bob"))),
            ("identity encoding", Some("identity"), frame(0, &good)),
            (
                "unknown permission",
                None,
                frame(0, &check("1", "edit", "alice")),
            ),
            (
                "malformed id",
                None,
                frame(0, &check("a b", "view", "alice")),
            ),
            ("empty message", None, frame(0, &[])),
            ("gzip encoding", Some("gzip"), frame(0, &good)),
            ("compressed flag", None, frame(1, &good)),
            ("invalid flag", None, frame(7, &good)),
            ("over the limit", None, frame(0, &vec![0; LIMIT + 1])),
            ("no message", None, Vec::new()),
            ("truncated header", None, vec![0, 0, 0]),
            ("truncated message", None, frame(0, &good)[..10].to_vec()),
            ("bad protobuf", None, frame(0, &[0xff, 0xff, 0xff])),
            ("two messages", None, two),
            ("a bad second message", None, good_then_bad),
        ];
        let lean = axum::Router::new()
            .route(PATH, axum::routing::any(check_permission))
            .with_state(state.clone());
        let tonic = PermissionsServiceServer::new(Permissions::new(state.clone()))
            .max_decoding_message_size(LIMIT);
        for (name, encoding, body) in cases {
            let ours = lean
                .clone()
                .oneshot(request(encoding, body.clone()))
                .await
                .unwrap();
            let theirs = tonic
                .clone()
                .oneshot(request(encoding, body))
                .await
                .unwrap();
            let ours = seen(ours).await;
            let theirs = seen(theirs.map(Body::new)).await;
            assert_eq!(ours, theirs, "{name}");
            assert!(
                ours.iter().any(|(key, _)| key.ends_with("grpc-status")),
                "{name}: {ours:?}"
            );
        }
    }
}
