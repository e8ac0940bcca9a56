//! The HTTP/2 transport of the gRPC API (`src/server/http2.rs`), driven by a raw `h2`
//! client against a real server: a CheckPermission the connection answers in place is
//! the router's answer byte for byte, a streamed answer larger than the client's window
//! arrives whole, and shutdown closes an idle HTTP/2 connection instead of waiting on it.

mod support;

use std::time::Duration;

use arbiter::server::ServerConfig;
use bytes::Bytes;
use prost::Message;
use spicedb_rs_proto::authzed::api::v1 as pb;
use support::start_with_schema;

/// What a client sees of one call.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
}

fn pairs(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    let mut res: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                String::from_utf8_lossy(value.as_bytes()).into(),
            )
        })
        .collect();
    res.sort();
    res
}

async fn connect(
    addr: std::net::SocketAddr,
    window: u32,
) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(window)
        .handshake(tcp)
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, task)
}

/// `message` framed for gRPC.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// Calls `path` with the body sent in `pieces` (a pause between two, so that they
/// arrive apart) and reads the whole answer.
async fn call(client: &mut h2::client::SendRequest<Bytes>, path: &str, pieces: &[&[u8]]) -> Seen {
    exchange(
        client,
        grpc_request(path),
        pieces,
        Duration::from_millis(30),
    )
    .await
}

/// A gRPC call's head, as clients send it.
fn grpc_request(path: &str) -> axum::http::Request<()> {
    axum::http::Request::post(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

/// Sends `request` with its body in `pieces`, `pause` between two, and reads the whole
/// answer.
async fn exchange(
    client: &mut h2::client::SendRequest<Bytes>,
    request: axum::http::Request<()>,
    pieces: &[&[u8]],
    pause: Duration,
) -> Seen {
    let ready = client.clone().ready().await.unwrap();
    *client = ready;
    let (answer, mut send) = client.send_request(request, false).unwrap();
    for (n, piece) in pieces.iter().enumerate() {
        if n > 0 && !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        let last = n + 1 == pieces.len();
        send.send_data(Bytes::copy_from_slice(piece), last).unwrap();
    }
    let answer = answer.await.unwrap();
    let status = answer.status().as_u16();
    let headers = pairs(answer.headers());
    let mut recv = answer.into_body();
    let mut body = Vec::new();
    while let Some(data) = recv.data().await {
        let data = data.unwrap();
        let _ = recv.flow_control().release_capacity(data.len());
        body.extend_from_slice(&data);
    }
    let trailers = recv
        .trailers()
        .await
        .unwrap()
        .map_or_else(Vec::new, |it| pairs(&it));
    Seen {
        status,
        headers,
        body,
        trailers,
    }
}

fn check_request(who: &str) -> Vec<u8> {
    let object = |ty: &str, id: &str| pb::ObjectReference {
        object_type: ty.to_string(),
        object_id: id.to_string(),
    };
    pb::CheckPermissionRequest {
        consistency: Some(pb::Consistency {
            requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
        }),
        resource: Some(object("document", "1")),
        permission: "view".to_string(),
        subject: Some(pb::SubjectReference {
            object: Some(object("user", who)),
            optional_relation: String::new(),
        }),
        context: None,
        with_tracing: false,
    }
    .encode_to_vec()
}

const CHECK: &str = "/authzed.api.v1.PermissionsService/CheckPermission";

/// The metrics are the process's, so the tests that count calls in them run one at a time
/// (and the difference between two readings is the test's own).
static COUNTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The count of answered CheckPermission calls in `/metrics`.
async fn checks_counted(server: &support::TestServer) -> u64 {
    let text = server.metrics().await;
    text.lines()
        .filter(|line| line.starts_with("arbiter_http_requests_total{") && line.contains(CHECK))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// How many CheckPermission calls were answered on their connection's task.
async fn in_place_counted(server: &support::TestServer) -> u64 {
    let text = server.metrics().await;
    text.lines()
        .filter(|line| line.starts_with("arbiter_grpc_checks_in_place_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// tonic and grpc-go end a unary call's body with an empty data frame after the message
/// (grpc-core and the load generator end it with the message's frame): both shapes are
/// answered in place once cached, with the router's answer. (The test's runtime has one
/// thread, so the client's frames are queued before its connection writes them, and the
/// server reads them at once.)
#[tokio::test]
async fn issue13_a_body_ended_by_an_empty_frame_is_answered_in_place() {
    let _counting = COUNTING.lock().await;
    let server = start_with_schema(ServerConfig::default()).await;
    server.touch(&["document:1#viewer@user:alice"]).await;
    let (mut client, _task) = connect(server.addr, 65_535).await;
    let body = frame(&check_request("alice"));
    let shapes: [&[&[u8]]; 2] = [&[&body, &[]], &[&body]];
    let counted = in_place_counted(&server).await;
    // The first call walks, through the router.
    let walked = exchange(&mut client, grpc_request(CHECK), shapes[0], Duration::ZERO).await;
    assert_eq!(in_place_counted(&server).await, counted, "a walk is routed");
    for (n, pieces) in shapes.into_iter().enumerate() {
        let seen = exchange(&mut client, grpc_request(CHECK), pieces, Duration::ZERO).await;
        assert_eq!(seen, walked, "shape {n}");
        assert_eq!(
            in_place_counted(&server).await,
            counted + n as u64 + 1,
            "shape {n} answered in place"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn issue13_a_check_answered_on_the_connection_is_the_routers_answer() {
    let _counting = COUNTING.lock().await;
    let server = start_with_schema(ServerConfig::default()).await;
    server.touch(&["document:1#viewer@user:alice"]).await;
    let (mut client, _task) = connect(server.addr, 65_535).await;
    let engine = server.state.engine();
    let counted = checks_counted(&server).await;
    for who in ["alice", "bob"] {
        let body = frame(&check_request(who));
        // The first call walks (through the router); the second is a cache hit answered
        // in place; the third arrives in two pieces, so the router's route answers it
        // from the cache.
        let first = call(&mut client, CHECK, &[&body]).await;
        let hits = engine.cache_stats().hits;
        let in_place = call(&mut client, CHECK, &[&body]).await;
        let (head, tail) = body.split_at(7);
        let split = call(&mut client, CHECK, &[head, tail]).await;
        assert_eq!(engine.cache_stats().hits, hits + 2, "{who}: from the cache");
        assert_eq!(first.status, 200);
        assert_eq!(
            first.trailers,
            vec![("grpc-status".to_string(), "0".to_string())]
        );
        assert_eq!(in_place, first, "{who}");
        assert_eq!(split, first, "{who}");
        let message = pb::CheckPermissionResponse::decode(&first.body[5..]).unwrap();
        let expected = match who {
            "alice" => pb::check_permission_response::Permissionship::HasPermission,
            _ => pb::check_permission_response::Permissionship::NoPermission,
        };
        assert_eq!(message.permissionship, expected as i32, "{who}");
    }
    assert_eq!(
        checks_counted(&server).await,
        counted + 6,
        "every call counted"
    );
    // A body with more than the one message is not answered in place: the router's
    // route reads (and checks) every message, as tonic does.
    let body = frame(&check_request("alice"));
    let twice = [body.clone(), b"\0\0\0\0\x02\xff\xff".to_vec()].concat();
    let refused = call(&mut client, CHECK, &[&twice]).await;
    assert_eq!(refused.status, 200);
    assert!(
        refused
            .headers
            .iter()
            .chain(&refused.trailers)
            .any(|(name, value)| name == "grpc-status" && value == "13"),
        "{refused:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn issue13_a_stream_larger_than_the_clients_window_arrives_whole() {
    let server = start_with_schema(ServerConfig::default()).await;
    let texts: Vec<String> = (0..1500)
        .map(|n| format!("document:d{n}#viewer@user:someone-with-a-longish-name-{n}"))
        .collect();
    for chunk in texts.chunks(500) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        server.touch(&chunk).await;
    }
    // A 1 KiB stream window: the ~150 KB answer needs a hundred window updates.
    let (mut client, _task) = connect(server.addr, 1024).await;
    let request = pb::ReadRelationshipsRequest {
        consistency: Some(pb::Consistency {
            requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
        }),
        relationship_filter: Some(pb::RelationshipFilter {
            resource_type: "document".to_string(),
            ..Default::default()
        }),
        optional_limit: 0,
        optional_cursor: None,
    };
    let seen = call(
        &mut client,
        "/authzed.api.v1.PermissionsService/ReadRelationships",
        &[&frame(&request.encode_to_vec())],
    )
    .await;
    assert_eq!(seen.status, 200);
    assert!(seen.body.len() > 100_000, "{} bytes", seen.body.len());
    let mut rest = seen.body.as_slice();
    let mut read = 0;
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        pb::ReadRelationshipsResponse::decode(&rest[5..5 + len]).unwrap();
        rest = &rest[5 + len..];
        read += 1;
    }
    assert_eq!(read, texts.len());
    assert_eq!(
        seen.trailers
            .iter()
            .find(|(name, _)| name == "grpc-status")
            .map(|it| it.1.as_str()),
        Some("0")
    );
    server.stop().await;
}

#[tokio::test]
async fn issue13_shutdown_closes_an_idle_http2_connection() {
    let server = start_with_schema(ServerConfig::default()).await;
    let (mut client, connection) = connect(server.addr, 65_535).await;
    // Not a CheckPermission: the first test counts those.
    let read_schema = "/authzed.api.v1.SchemaService/ReadSchema";
    let seen = call(&mut client, read_schema, &[&frame(&[])]).await;
    assert_eq!(seen.status, 200);
    assert!(
        seen.trailers
            .contains(&("grpc-status".to_string(), "0".to_string())),
        "{seen:?}"
    );
    // The connection stays open and idle; the server still stops, and closes it.
    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("the server drained");
    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("the connection was closed")
        .unwrap();
}

/// A JSON request over HTTP/2 (prior knowledge), answered by the router.
async fn json_over_h2(
    client: &mut h2::client::SendRequest<Bytes>,
    path: &str,
    body: &[u8],
    content_length: bool,
) -> (u16, Vec<(String, String)>, serde_json::Value) {
    let mut request = axum::http::Request::post(format!("http://localhost{path}"))
        .header("content-type", "application/json");
    if content_length {
        request = request.header("content-length", body.len());
    }
    // In small pieces: the route reads across frames.
    let pieces: Vec<&[u8]> = body.chunks(100).collect();
    let seen = exchange(client, request.body(()).unwrap(), &pieces, Duration::ZERO).await;
    let json = serde_json::from_slice(&seen.body).unwrap();
    (seen.status, seen.headers, json)
}

#[tokio::test]
async fn issue13_json_over_http2_is_answered_and_limited_as_over_http1() {
    let config = ServerConfig {
        body_limit: 1024,
        ..ServerConfig::default()
    };
    let server = start_with_schema(config).await;
    server.touch(&["document:1#viewer@user:alice"]).await;
    let (mut client, _task) = connect(server.addr, 65_535).await;
    let check = serde_json::json!({
        "resource": "document:1", "permission": "view", "subject": "user:alice",
    });
    let (status, headers, body) =
        json_over_h2(&mut client, "/v1/check", check.to_string().as_bytes(), true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["allowed"], true, "{body}");
    let header = |name: &str| {
        headers
            .iter()
            .find(|it| it.0 == name)
            .map(|it| it.1.clone())
    };
    assert!(
        header("date").is_some(),
        "HTTP/2 answers are dated: {headers:?}"
    );
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    // Too large, with and without a content-length: refused, as over HTTP/1.
    let schema = serde_json::json!({ "schema": "x".repeat(4096) }).to_string();
    for content_length in [true, false] {
        let (status, _, body) =
            json_over_h2(&mut client, "/v1/schema", schema.as_bytes(), content_length).await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    }
    // An unknown field is still refused, over the same connection.
    let odd = serde_json::json!({
        "resource": "document:1", "permission": "view", "subject": "user:alice", "extra": 1,
    });
    let (status, _, body) =
        json_over_h2(&mut client, "/v1/check", odd.to_string().as_bytes(), true).await;
    assert_eq!(status, 400, "{body}");
    server.stop().await;
}
