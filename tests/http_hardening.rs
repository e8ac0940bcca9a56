//! Issue 10, HTTP side: input the server does not understand is refused and changes
//! nothing; metric labels come from fixed sets; every error has the JSON shape; errors
//! echo bounded input; the OpenAPI document says what the server enforces.

mod support;

use arbiter::server::ServerConfig;
use serde_json::{Value, json};
use support::{TestServer, assert_error, start_with_schema};

async fn server() -> TestServer {
    let server = start_with_schema(ServerConfig::default()).await;
    server
        .touch(&[
            "document:1#viewer@user:a",
            "document:2#owner@user:b",
            "group:eng#member@user:c",
        ])
        .await;
    server
}

/// Everything the server holds, as text: the head revision and every relationship.
async fn snapshot(server: &TestServer) -> (u64, Vec<String>) {
    let mut relationships = Vec::new();
    for resource_type in ["document", "group", "user"] {
        let (status, body) = server
            .post(
                "/v1/relationships/read",
                json!({"filter": {"resource_type": resource_type}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        for it in body["relationships"].as_array().unwrap() {
            relationships.push(it.as_str().unwrap().to_string());
        }
    }
    let (_, health) = server.get("/healthz").await;
    (health["revision"].as_u64().unwrap(), relationships)
}

/// (route, body, the unknown field the answer must name). Each body is a documented one
/// with one field added or misspelt, at the top or nested.
fn unknown_field_cases() -> Vec<(&'static str, Value, &'static str)> {
    let update = json!({"op": "touch", "relationship": "document:9#viewer@user:z"});
    let check = json!({"resource": "document:1", "permission": "view", "subject": "user:a"});
    vec![
        // The regression of the issue: this deleted every `document` relationship.
        (
            "/v1/relationships/delete",
            json!({"filter": {"resource_type": "document", "resourceId": "1"}}),
            "resourceId",
        ),
        (
            "/v1/relationships/delete",
            json!({"filter": {"resource_type": "document"}, "max_deletions": 1}),
            "max_deletions",
        ),
        // A misspelt precondition committed unguarded.
        (
            "/v1/relationships/write",
            json!({"updates": [update], "precondition": [{"op": "must_exist", "filter": {"resource_type": "group"}}]}),
            "precondition",
        ),
        (
            "/v1/relationships/write",
            json!({"updates": [update], "preconditions": [{"op": "must_not_exist", "filter": {"resource_type": "document", "subjectId": "a"}}]}),
            "subjectId",
        ),
        (
            "/v1/relationships/write",
            json!({"updates": [update], "preconditions": [{"op": "must_not_exist", "filter": {"resource_type": "group"}, "negate": true}]}),
            "negate",
        ),
        (
            "/v1/relationships/write",
            json!({"updates": [{"op": "touch", "relationship": "document:9#viewer@user:z", "caveat": "x"}]}),
            "caveat",
        ),
        (
            "/v1/relationships/write",
            json!({"updates": [update], "dry_run": true}),
            "dry_run",
        ),
        (
            "/v1/schema",
            json!({"schema": support::SCHEMA, "force": true}),
            "force",
        ),
        (
            "/v1/relationships/read",
            json!({"filter": {"resource_type": "document", "relationship": "viewer"}}),
            "relationship",
        ),
        (
            "/v1/relationships/read",
            json!({"filter": {"resource_type": "document"}, "consistancy": {"mode": "full"}}),
            "consistancy",
        ),
        (
            "/v1/relationships/read",
            json!({"filter": {"resource_type": "document"}, "consistency": {"mode": "at_least_as_fresh", "revison": 1}}),
            "revison",
        ),
        (
            "/v1/check",
            json!({"resource": "document:1", "permission": "view", "subject": "user:a", "consistancy": {"mode": "full"}}),
            "consistancy",
        ),
        (
            "/v1/check",
            json!({"resource": "document:1", "permission": "view", "subject": "user:a", "consistency": {"mode": "minimize_latency", "revision": 1}}),
            "revision",
        ),
        (
            "/v1/check",
            json!({"resource": "document:1", "permission": "view", "subject": "user:a", "contxt": {}}),
            "contxt",
        ),
        // `context` is a known field of a check, not of a write.
        (
            "/v1/relationships/write",
            json!({"updates": [], "context": {}}),
            "context",
        ),
        (
            "/v1/check/bulk",
            json!({"items": [check], "atomic": true}),
            "atomic",
        ),
        (
            "/v1/check/bulk",
            json!({"items": [{"resource": "document:1", "permission": "view", "subject": "user:a", "consistency": {"mode": "full"}}]}),
            "consistency",
        ),
        (
            "/v1/expand",
            json!({"resource": "document:1", "permission": "view", "deep": true}),
            "deep",
        ),
        (
            "/v1/lookup/resources",
            json!({"resource_type": "document", "permission": "view", "subject": "user:a", "page": 2}),
            "page",
        ),
        (
            "/v1/lookup/subjects",
            json!({"resource": "document:1", "permission": "view", "subject_type": "user", "subject_relation": "member"}),
            "subject_relation",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_unknown_json_fields_are_refused_and_change_nothing() {
    let server = server().await;
    let before = snapshot(&server).await;
    for (path, body, field) in unknown_field_cases() {
        let (status, answer) = server.post(path, body.clone()).await;
        assert_error(status, &answer, 400, "invalid_json");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("`{field}`")),
            "{path} {body}: the message does not name `{field}`: {message}"
        );
        assert_eq!(
            snapshot(&server).await,
            before,
            "{path} {body} changed state"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_unknown_query_parameters_are_refused() {
    let server = server().await;
    let before = snapshot(&server).await;
    // `sincе` with a Cyrillic `е`: silently streaming from the head would skip history.
    let cases = [
        ("get", "/v1/watch?sinc%D0%B5=0", "sincе"),
        ("get", "/v1/watch?since=0&from=1", "from"),
        ("get", "/v1/schema?revision=1", "revision"),
        ("post", "/v1/check?consistency=full", "consistency"),
        ("post", "/v1/relationships/delete?dry_run=1", "dry_run"),
        ("get", "/healthz?verbose", "verbose"),
    ];
    for (method, path, name) in cases {
        let (status, body) = if method == "get" {
            server.get(path).await
        } else {
            let body = json!({"resource": "document:1", "permission": "view", "subject": "user:a"});
            server.post(path, body).await
        };
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(name), "{path}: {message}");
    }
    assert_eq!(snapshot(&server).await, before);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_malformed_filters_are_refused() {
    let server = server().await;
    let before = snapshot(&server).await;
    let cases = [
        (json!({"resource_type": "Document"}), "resource_type"),
        (
            json!({"resource_type": "document", "resource_id": "a b"}),
            "resource_id",
        ),
        (
            json!({"resource_type": "document", "relation": "View"}),
            "relation",
        ),
        (
            json!({"resource_type": "document", "subject_type": "u"}),
            "subject_type",
        ),
        (
            json!({"resource_type": "document", "subject_id": "a:b"}),
            "subject_id",
        ),
        (
            json!({"resource_type": "document", "subject_relation": "#"}),
            "subject_relation",
        ),
    ];
    for (filter, part) in cases {
        for path in ["/v1/relationships/delete", "/v1/relationships/read"] {
            let (status, body) = server.post(path, json!({"filter": filter})).await;
            assert_error(status, &body, 400, "invalid_argument");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(&format!("`{part}`")), "{message}");
        }
    }
    assert_eq!(snapshot(&server).await, before);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_metrics_labels_come_from_fixed_sets() {
    let server = server().await;
    for idx in 0..300 {
        let method = reqwest::Method::from_bytes(format!("ODDMETHOD{idx}X").as_bytes()).unwrap();
        let response = server
            .http
            .request(method.clone(), format!("{}/oddpath{idx}", server.url))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error());
        let response = server
            .http
            .request(method, format!("{}/v1/check", server.url))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error());
    }
    let text = server.metrics().await;
    assert!(
        !text.contains("ODDMETHOD"),
        "a request method became a label"
    );
    assert!(!text.contains("oddpath"), "a request path became a label");
    assert!(
        text.contains(r#"route="unmatched",method="other""#),
        "odd requests are counted under fixed labels:\n{text}"
    );
    let series = text
        .lines()
        .filter(|it| it.starts_with("arbiter_http_requests_total{"))
        .count();
    assert!(series < 40, "{series} request series:\n{text}");
    assert!(text.len() < 64 * 1024, "scrape of {} bytes", text.len());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_http_layer_errors_have_the_json_error_shape() {
    let server = server().await;
    let cases = [
        ("GET", "/v1/check", 405, "method_not_allowed"),
        ("DELETE", "/healthz", 405, "method_not_allowed"),
        ("PUT", "/v1/schema", 405, "method_not_allowed"),
        ("GET", "/v2/nothing", 404, "not_found"),
        ("POST", "/openapi.json", 405, "method_not_allowed"),
    ];
    for (method, path, want_status, want_code) in cases {
        let response = server
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", server.url),
            )
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|it| it.to_str().unwrap().to_string());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_error(status, &body, want_status, want_code);
        assert_eq!(
            content_type.as_deref(),
            Some("application/json"),
            "{method} {path}"
        );
    }
    // Bodies that are not JSON of the right shape.
    for raw in ["{", "[]", r#"{"schema": 5}"#, "", "null"] {
        let response = server
            .http
            .post(format!("{}/v1/schema", server.url))
            .body(raw)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_error(status, &body, 400, "invalid_json");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_errors_echo_at_most_a_bounded_part_of_the_input() {
    let server = server().await;
    let long_id = "!".repeat(3 * 1024 * 1024);
    let cases = [
        json!({"resource": format!("document:{long_id}"), "permission": "view", "subject": "user:a"}),
        json!({"resource": "document:1", "permission": long_id, "subject": "user:a"}),
        json!({"resource": "document:1", "permission": "view", "subject": format!("user:{long_id}")}),
    ];
    for body in cases {
        let response = server
            .http
            .post(format!("{}/v1/check", server.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert!(text.len() < 4096, "an error of {} bytes", text.len());
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains('…'),
            "{body}"
        );
    }
    // An invalid schema of ~730 KB with tens of thousands of problems.
    let schema = "definition doc { relation r: nobody }\n".repeat(19_000);
    assert!(schema.len() > 700 * 1024);
    let response = server
        .http
        .post(format!("{}/v1/schema", server.url))
        .json(&json!({"schema": schema}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(text.len() < 64 * 1024, "an error of {} bytes", text.len());
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_error(status, &body, 400, "invalid_schema");
    let problems = body["error"]["problems"].as_array().unwrap();
    assert!(
        !problems.is_empty() && problems.len() <= 50,
        "{}",
        problems.len()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_openapi_declares_security_only_with_a_token() {
    for token in [None, Some("s3cret")] {
        let config = ServerConfig {
            token: token.map(str::to_string),
            ..ServerConfig::default()
        };
        let server = start_with_schema(config).await;
        let (status, document) = server.get("/openapi.json").await;
        assert_eq!(status, 200);
        let text = document.to_string();
        assert_eq!(
            text.contains("\"security\""),
            token.is_some(),
            "token {token:?}"
        );
        assert_eq!(
            text.contains("securitySchemes"),
            token.is_some(),
            "token {token:?}"
        );
        let schemas = &document["components"]["schemas"];
        assert_eq!(
            schemas["RevisionAnswer"]["properties"]["revision"]["format"],
            "uint64"
        );
        let check = &schemas["CheckBody"];
        assert_eq!(check["additionalProperties"], false, "{check}");
        for field in ["resource", "permission", "subject"] {
            assert!(
                check["properties"][field]["pattern"].is_string(),
                "{field}: {check}"
            );
        }
        let filter = &schemas["FilterBody"]["properties"];
        assert_eq!(filter["resource_id"]["maxLength"], 1024, "{filter}");
        let limit = &schemas["ReadBody"]["properties"]["limit"];
        assert_eq!(limit["maximum"], 1000, "{limit}");
        server.stop().await;
    }
}
