//! `POST /v1/relationships/import` (issue 14, item 3): a streamed NDJSON body is loaded all
//! or nothing; the first bad line answers 400 with its line number and nothing changes.

mod support;

use arbiter::server::ServerConfig;
use serde_json::Value;
use support::{TestServer, assert_error, start_with_schema};

async fn import(server: &TestServer, content_type: &str, body: String) -> (u16, Value) {
    let response = server
        .http
        .post(format!("{}/v1/relationships/import", server.url))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn line(relationship: &str) -> String {
    format!(
        "{{\"relationship\": {}}}\n",
        serde_json::json!(relationship)
    )
}

/// Every live relationship of the test schema's types, and the head.
async fn snapshot(server: &TestServer) -> (u64, Vec<String>) {
    let mut all = Vec::new();
    for resource_type in ["document", "group"] {
        let mut cursor = Value::Null;
        loop {
            let (status, body) = server
                .post(
                    "/v1/relationships/read",
                    serde_json::json!({"filter": {"resource_type": resource_type}, "cursor": cursor}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            for it in body["relationships"].as_array().unwrap() {
                all.push(it.as_str().unwrap().to_string());
            }
            cursor = body["cursor"].clone();
            if cursor.is_null() {
                break;
            }
        }
    }
    let (_, health) = server.get("/healthz").await;
    (health["revision"].as_u64().unwrap(), all)
}

#[tokio::test]
async fn issue14_ndjson_import_loads_every_line_and_checks_see_them() {
    let server = start_with_schema(ServerConfig::default()).await;
    let mut body = String::new();
    for idx in 0..2_500 {
        body.push_str(&line(&format!("document:d{idx}#viewer@user:u{}", idx % 7)));
    }
    // Blank lines (a trailing newline, an empty line) are not relationships.
    body.push('\n');
    body.push_str(&line("group:eng#member@user:zoe"));
    let (status, answer) = import(&server, "application/x-ndjson", body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["relationships"], 2_501);
    assert!(server.allowed("document:d13", "view", "user:u6").await);
    assert!(!server.allowed("document:d13", "view", "user:u5").await);
    let (_, all) = snapshot(&server).await;
    assert_eq!(all.len(), 2_501);
    // Touch semantics: importing the same lines again changes nothing.
    let (status, again) = import(
        &server,
        "application/x-ndjson",
        line("group:eng#member@user:zoe"),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(snapshot(&server).await.1.len(), 2_501);
}

/// (what is wrong, the body, the status, the error code, text the message must hold).
fn bad_bodies() -> Vec<(&'static str, String, u16, &'static str, &'static str)> {
    let good = line("document:1#viewer@user:a") + &line("document:2#viewer@user:b");
    vec![
        (
            "unknown type on line 3",
            good.clone() + &line("folder:1#viewer@user:a"),
            400,
            "invalid_argument",
            "line 3:",
        ),
        (
            "unknown relation on line 2",
            line("document:1#viewer@user:a") + &line("document:1#editor@user:a") + &good,
            400,
            "invalid_argument",
            "line 2:",
        ),
        (
            "misspelt field on line 1",
            "{\"relationshp\": \"document:1#viewer@user:a\"}\n".to_string() + &good,
            400,
            "invalid_argument",
            "line 1: invalid json",
        ),
        (
            "an extra field on line 3",
            good.clone() + "{\"relationship\": \"document:3#viewer@user:a\", \"op\": \"delete\"}\n",
            400,
            "invalid_argument",
            "line 3: invalid json",
        ),
        (
            "malformed text on the last line",
            good.clone() + &line("document:3#viewer"),
            400,
            "invalid_argument",
            "line 3:",
        ),
        (
            "a bad id",
            line("document:not valid#viewer@user:a"),
            400,
            "invalid_argument",
            "line 1:",
        ),
    ]
}

#[tokio::test]
async fn issue14_a_bad_line_is_named_and_nothing_is_imported() {
    let server = start_with_schema(ServerConfig::default()).await;
    server.touch(&["document:0#owner@user:root"]).await;
    let before = snapshot(&server).await;
    for (what, body, status, code, needle) in bad_bodies() {
        let (got, answer) = import(&server, "application/x-ndjson", body).await;
        assert_error(got, &answer, status, code);
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{what}: {message}");
        assert!(
            message.contains("nothing was imported"),
            "{what}: {message}"
        );
        assert_eq!(snapshot(&server).await, before, "{what} changed the store");
    }
}

#[tokio::test]
async fn issue14_import_refuses_other_media_types_and_oversized_bodies() {
    let config = ServerConfig {
        import_limit: 1_000,
        ..ServerConfig::default()
    };
    let server = start_with_schema(config).await;
    let before = snapshot(&server).await;
    let (status, answer) = import(
        &server,
        "application/json",
        line("document:1#viewer@user:a"),
    )
    .await;
    assert_error(status, &answer, 415, "unsupported_media_type");
    let big: String = (0..100)
        .map(|idx| line(&format!("document:{idx}#viewer@user:a")))
        .collect();
    let (status, answer) = import(&server, "application/x-ndjson", big).await;
    assert_error(status, &answer, 413, "payload_too_large");
    assert_eq!(snapshot(&server).await, before);
}
