//! End-to-end tests of every endpoint of DESIGN §5 through a real TCP listener: each
//! success path, and each error status (400, 401, 404, 409, 413, 503) with the JSON error
//! shape.

mod support;

use arbiter::engine::{self, Arbiter};
use arbiter::server::ServerConfig;
use serde_json::json;
use support::{SCHEMA, TestServer, assert_error, start, start_with_schema};

async fn server() -> TestServer {
    start_with_schema(ServerConfig::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_write_and_read() {
    let server = start(
        Arbiter::in_memory(engine::Config::default()).unwrap(),
        ServerConfig::default(),
    )
    .await;
    let (status, body) = server.post("/v1/schema", json!({"schema": SCHEMA})).await;
    assert_eq!(status, 200, "{body}");
    let revision = body["revision"].as_u64().unwrap();
    let (status, body) = server.get("/v1/schema").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["schema"], SCHEMA);
    assert_eq!(body["revision"].as_u64(), Some(revision));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_schema_is_400_with_line_and_column() {
    let server = server().await;
    let text = "definition user {}\ndefinition doc {\n  relation viewer: nobody\n}\n";
    let (status, body) = server.post("/v1/schema", json!({"schema": text})).await;
    assert_error(status, &body, 400, "invalid_schema");
    let problem = &body["error"]["problems"][0];
    assert_eq!(problem["line"], 3, "{body}");
    assert!(problem["column"].as_u64().unwrap() > 1, "{body}");
    assert_eq!(body["error"]["field"], "schema");
    // The old schema is still in force.
    let (_, body) = server.get("/v1/schema").await;
    assert_eq!(body["schema"], SCHEMA);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_check_and_bulk_check() {
    let server = server().await;
    let revision = server
        .touch(&[
            "document:1#viewer@group:eng#member",
            "group:eng#member@user:alice",
            "document:1#banned@user:mallory",
            "document:1#viewer@user:mallory",
        ])
        .await;
    let (status, body) = server
        .post(
            "/v1/check",
            json!({"resource": "document:1", "permission": "view", "subject": "user:alice",
                   "consistency": {"mode": "at_least_as_fresh", "revision": revision}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["allowed"], true);
    assert!(body["revision"].as_u64().unwrap() >= revision);
    assert!(!server.allowed("document:1", "view", "user:mallory").await);
    assert!(!server.allowed("document:1", "edit", "user:alice").await);

    let (status, body) = server
        .post(
            "/v1/check/bulk",
            json!({"items": [
                {"resource": "document:1", "permission": "view", "subject": "user:alice"},
                {"resource": "document:1", "permission": "view", "subject": "user:mallory"},
                {"resource": "document:1", "permission": "nope", "subject": "user:alice"},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(
        results[0],
        json!({"allowed": true, "permissionship": "has_permission", "missing_context": []})
    );
    assert_eq!(
        results[1],
        json!({"allowed": false, "permissionship": "no_permission", "missing_context": []})
    );
    assert_eq!(results[2]["error"]["code"], "invalid_argument", "{body}");
    assert!(results[2].get("allowed").is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_check_is_answered_from_the_cache_as_it_was_the_first_time() {
    let server = server().await;
    server.touch(&["document:1#viewer@user:alice"]).await;
    let ask =
        |subject: &str| json!({"resource": "document:1", "permission": "view", "subject": subject});
    let engine = server.state.engine();
    for subject in ["user:alice", "user:bob"] {
        let first = server.post("/v1/check", ask(subject)).await;
        let hits = engine.cache_stats().hits;
        let again = server.post("/v1/check", ask(subject)).await;
        assert_eq!(
            engine.cache_stats().hits,
            hits + 1,
            "{subject}: from the cache"
        );
        assert_eq!(first, again, "{subject}");
        assert_eq!(first.0, 200);
        assert_eq!(first.1["allowed"], subject == "user:alice");
        // The same question written otherwise: not found in the cache, answered alike.
        let otherwise = server
            .post("/v1/check", ask(&format!("{subject}#...")))
            .await;
        assert_eq!(first, otherwise, "{subject}#...");
    }
    // A question no check validated is never in the cache: refused every time.
    for _ in 0..2 {
        let (status, body) = server.post("/v1/check", ask("user:al ice")).await;
        assert_error(status, &body, 400, "invalid_argument");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_errors_never_allow() {
    let server = server().await;
    server.touch(&["document:1#viewer@user:*"]).await;
    let cases = [
        (
            json!({"resource": "document", "permission": "view", "subject": "user:a"}),
            "resource",
        ),
        (
            json!({"resource": "document:1", "permission": "view", "subject": "user"}),
            "subject",
        ),
        (
            json!({"resource": "document:1", "permission": "nope", "subject": "user:a"}),
            "permission",
        ),
        (
            json!({"resource": "unknown:1", "permission": "view", "subject": "user:a"}),
            "resource",
        ),
    ];
    for (request, field) in cases {
        let (status, body) = server.post("/v1/check", request).await;
        assert_error(status, &body, 400, "invalid_argument");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let (status, body) = server
        .post("/v1/check", json!({"resource": "document:1"}))
        .await;
    assert_error(status, &body, 400, "invalid_json");
    let (status, body) = server
        .post(
            "/v1/check",
            json!({"resource": "document:1", "permission": "view", "subject": "user:a",
                   "consistency": {"mode": "at_exact_snapshot", "revision": 999}}),
        )
        .await;
    assert_error(status, &body, 400, "snapshot_ahead");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_pages_and_delete() {
    let server = server().await;
    server
        .touch(&[
            "document:1#viewer@user:a",
            "document:2#viewer@user:b",
            "document:3#owner@user:c",
        ])
        .await;
    let mut seen = Vec::new();
    let mut cursor = serde_json::Value::Null;
    loop {
        let (status, body) = server
            .post(
                "/v1/relationships/read",
                json!({"filter": {"resource_type": "document"}, "limit": 2, "cursor": cursor}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(body["relationships"].as_array().unwrap().len() <= 2);
        for rel in body["relationships"].as_array().unwrap() {
            seen.push(rel.as_str().unwrap().to_string());
        }
        cursor = body["cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "document:1#viewer@user:a",
            "document:2#viewer@user:b",
            "document:3#owner@user:c"
        ]
    );

    let (status, body) = server
        .post(
            "/v1/relationships/delete",
            json!({"filter": {"resource_type": "document", "relation": "viewer"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted"], 2);
    let (_, body) = server
        .post(
            "/v1/relationships/read",
            json!({"filter": {"resource_type": "document"}}),
        )
        .await;
    assert_eq!(body["relationships"], json!(["document:3#owner@user:c"]));

    let (status, body) = server
        .post(
            "/v1/relationships/read",
            json!({"filter": {"resource_type": "document"}, "limit": 5000}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(body["error"]["field"], "limit");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_conflicts_are_409_and_write_nothing() {
    let server = server().await;
    server.touch(&["document:1#owner@user:a"]).await;
    let (status, body) = server
        .post(
            "/v1/relationships/write",
            json!({"updates": [{"op": "touch", "relationship": "document:2#owner@user:b"}],
                   "preconditions": [{"op": "must_exist",
                                      "filter": {"resource_type": "document", "resource_id": "9"}}]}),
        )
        .await;
    assert_error(status, &body, 409, "precondition_failed");
    let (status, body) = server
        .post(
            "/v1/relationships/write",
            json!({"updates": [{"op": "create", "relationship": "document:2#owner@user:b"},
                               {"op": "create", "relationship": "document:1#owner@user:a"}]}),
        )
        .await;
    assert_error(status, &body, 409, "already_exists");
    assert!(!server.allowed("document:2", "edit", "user:b").await);

    // Schema violations and malformed relationships are 400.
    let (status, body) = server
        .post(
            "/v1/relationships/write",
            json!({"updates": [{"op": "touch", "relationship": "document:1#owner@group:eng#member"}]}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_relationship");
    let (status, body) = server
        .post(
            "/v1/relationships/write",
            json!({"updates": [{"op": "touch", "relationship": "document:1#owner"}]}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(body["error"]["field"], "updates");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expand_and_lookups() {
    let server = server().await;
    server
        .touch(&[
            "document:1#viewer@group:eng#member",
            "group:eng#member@user:alice",
            "document:1#owner@user:olga",
            "document:2#viewer@user:alice",
            "document:3#viewer@user:bob",
        ])
        .await;
    let (status, body) = server
        .post(
            "/v1/expand",
            json!({"resource": "document:1", "permission": "view", "depth": "recursive"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tree"]["resource"], "document:1");
    assert_eq!(body["tree"]["relation"], "view");
    assert_eq!(body["tree"]["kind"], "exclusion", "{body}");
    let text = body.to_string();
    assert!(
        text.contains("user:alice") && text.contains("user:olga"),
        "{text}"
    );

    let mut ids = Vec::new();
    let mut cursor = serde_json::Value::Null;
    loop {
        let (status, body) = server
            .post(
                "/v1/lookup/resources",
                json!({"resource_type": "document", "permission": "view",
                       "subject": "user:alice", "limit": 1, "cursor": cursor}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        ids.extend(body["resources"].as_array().unwrap().iter().cloned());
        cursor = body["cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    // Walk order, not sorted.
    ids.sort_by_key(|it| it.to_string());
    assert_eq!(ids, [json!("1"), json!("2")]);

    let (status, body) = server
        .post(
            "/v1/lookup/subjects",
            json!({"resource": "document:1", "permission": "view", "subject_type": "user"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subjects"], json!(["alice", "olga"]));
    assert_eq!(body["excluded"], json!([]));
    let (status, body) = server
        .post(
            "/v1/lookup/subjects",
            json!({"resource": "document:1", "permission": "view", "subject_type": "nobody"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_argument");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_schema_is_503() {
    let server = start(
        Arbiter::in_memory(engine::Config::default()).unwrap(),
        ServerConfig::default(),
    )
    .await;
    let (status, body) = server
        .post(
            "/v1/check",
            json!({"resource": "document:1", "permission": "view", "subject": "user:a"}),
        )
        .await;
    assert_error(status, &body, 503, "no_schema");
    let (status, body) = server.get("/v1/schema").await;
    assert_error(status, &body, 503, "no_schema");
    let (status, body) = server.get("/readyz").await;
    assert_error(status, &body, 503, "no_schema");
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_required_on_v1_only() {
    let config = ServerConfig {
        token: Some("s3cret".to_string()),
        ..ServerConfig::default()
    };
    let server = start_with_schema(config).await;
    let check = json!({"resource": "document:1", "permission": "view", "subject": "user:a"});
    let http = reqwest::Client::new();
    for token in [None, Some("wrong"), Some("s3cre")] {
        let mut request = http.post(format!("{}/v1/check", server.url)).json(&check);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_error(status, &body, 401, "unauthenticated");
    }
    let (status, _) = server.post("/v1/check", check).await;
    assert_eq!(status, 200);
    for probe in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let response = http
            .get(format!("{}{probe}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{probe}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_413_and_400() {
    let config = ServerConfig {
        body_limit: 1024,
        max_batch: 3,
        ..ServerConfig::default()
    };
    let server = start_with_schema(config).await;
    let (status, body) = server
        .post("/v1/schema", json!({"schema": "x".repeat(4096)}))
        .await;
    assert_error(status, &body, 413, "payload_too_large");
    // A chunked body (no Content-Length) is cut off the same way.
    let (status, body) = chunked_post(
        &server,
        "/v1/schema",
        &format!("{{\"schema\": \"{}\"}}", "y".repeat(4096)),
    )
    .await;
    assert_error(status, &body, 413, "payload_too_large");

    let item = json!({"resource": "document:1", "permission": "view", "subject": "user:a"});
    let (status, body) = server
        .post("/v1/check/bulk", json!({"items": vec![item; 4]}))
        .await;
    assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(body["error"]["field"], "items");
    let update = json!({"op": "touch", "relationship": "document:1#viewer@user:a"});
    let (status, body) = server
        .post(
            "/v1/relationships/write",
            json!({"updates": vec![update; 4]}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_argument");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_metrics_and_unknown_routes() {
    let server = server().await;
    let revision = server.touch(&["document:1#viewer@user:a"]).await;
    assert!(server.allowed("document:1", "view", "user:a").await);
    assert!(server.allowed("document:1", "view", "user:a").await);
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(body["revision"].as_u64(), Some(revision));
    let response = server
        .http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    for needle in [
        "arbiter_http_requests_total{route=\"/v1/check\",method=\"POST\",status=\"200\"}",
        "arbiter_http_request_duration_seconds_bucket{route=\"/v1/check\"",
        "arbiter_head_revision",
        "arbiter_check_cache_hits",
        "arbiter_check_cache_misses",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    let (status, body) = server.get("/v2/nothing").await;
    assert_error(status, &body, 404, "not_found");
    server.stop().await;
}

/// POSTs `body` with `Transfer-Encoding: chunked` over a raw connection.
async fn chunked_post(server: &TestServer, path: &str, body: &str) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        server.addr
    );
    for chunk in body.as_bytes().chunks(512) {
        request.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            String::from_utf8_lossy(chunk)
        ));
    }
    request.push_str("0\r\n\r\n");
    // The server may answer and close before reading everything; ignore write errors.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status: u16 = answer[9..12].parse().unwrap();
    let json_start = answer.find('{').unwrap();
    let json_end = answer.rfind('}').unwrap();
    (
        status,
        serde_json::from_str(&answer[json_start..=json_end]).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_body_needs_no_content_type() {
    let server = server().await;
    // What `curl -d` sends: a form content type with a JSON body.
    let response = server
        .http
        .post(format!("{}/v1/check", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"resource": "document:1", "permission": "view", "subject": "user:a"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["allowed"], false);
    server.stop().await;
}
