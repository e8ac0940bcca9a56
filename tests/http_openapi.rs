//! Keeps `/openapi.json` true: every documented operation exists and answers with a
//! status it documents (with and without a token, on an empty and on a valid body), every
//! `$ref` resolves, and every route the server answers is documented.

mod support;

use std::collections::BTreeSet;

use arbiter::server::ServerConfig;
use serde_json::{Value, json};
use support::{TestServer, start_with_schema};

/// A valid body for each POST route, so that the success path is exercised too.
fn valid_body(path: &str) -> Value {
    match path {
        "/v1/schema" => json!({"schema": support::SCHEMA}),
        "/v1/relationships/write" => {
            json!({"updates": [{"op": "touch", "relationship": "document:1#viewer@user:a"}]})
        }
        "/v1/relationships/read" | "/v1/relationships/delete" => {
            json!({"filter": {"resource_type": "document", "resource_id": "9"}})
        }
        "/v1/check" => json!({"resource": "document:1", "permission": "view", "subject": "user:a"}),
        "/v1/check/bulk" => {
            json!({"items": [{"resource": "document:1", "permission": "view", "subject": "user:a"}]})
        }
        "/v1/expand" => json!({"resource": "document:1", "permission": "view"}),
        "/v1/lookup/resources" => {
            json!({"resource_type": "document", "permission": "view", "subject": "user:a"})
        }
        "/v1/lookup/subjects" => {
            json!({"resource": "document:1", "permission": "view", "subject_type": "user"})
        }
        "/v1/sync" => json!({"resource_types": ["document"], "dry_run": true}),
        "/v1/relationships/import" => json!({"relationship": "document:1#viewer@user:a"}),
        "/v1/playground/evaluate" => json!({"action": "schema", "schema": support::SCHEMA}),
        other => panic!("no valid body known for documented route {other}: add one here"),
    }
}

async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> u16 {
    let url = format!("{}{path}", server.url);
    let mut request = match method {
        "get" => server.http.get(&url),
        // The bulk import reads NDJSON: the body is one line (or none).
        "post" if path == "/v1/relationships/import" => server
            .http
            .post(&url)
            .header("content-type", "application/x-ndjson")
            .body(body.map_or(String::new(), |it| format!("{it}\n"))),
        "post" => server.http.post(&url).json(&body.unwrap_or(json!({}))),
        other => panic!("undocumented method {other}"),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if path == "/v1/watch" {
        // The stream never ends by itself; the status is all we need.
        drop(response);
    }
    status
}

fn documented(operation: &Value) -> BTreeSet<u16> {
    operation["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(|it| it.parse().unwrap())
        .collect()
}

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                if key == "$ref" {
                    out.push(value.as_str().unwrap().to_string());
                } else {
                    refs(value, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|it| refs(it, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_answers_as_documented() {
    let token = "t0ken";
    let config = ServerConfig {
        token: Some(token.to_string()),
        ..ServerConfig::default()
    };
    let server = start_with_schema(config).await;
    let (status, doc) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    let mut all_refs = Vec::new();
    refs(&doc, &mut all_refs);
    for reference in &all_refs {
        let name = reference.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling {reference}"
        );
    }

    let paths = doc["paths"].as_object().unwrap();
    let mut documented_paths = BTreeSet::new();
    for (path, item) in paths {
        documented_paths.insert(path.clone());
        for (method, operation) in item.as_object().unwrap() {
            let statuses = documented(operation);
            let secured = operation.get("security").is_some();
            let body = (method == "post").then(|| valid_body(path));
            let ok = call(&server, method, path, body, Some(token)).await;
            assert_eq!(ok, 200, "{method} {path} with a valid request");
            let empty = call(&server, method, path, None, Some(token)).await;
            assert!(
                statuses.contains(&empty),
                "{method} {path} answered undocumented {empty}"
            );
            let anonymous = call(&server, method, path, None, None).await;
            assert!(
                statuses.contains(&anonymous),
                "{method} {path} answered undocumented {anonymous} without a token"
            );
            assert_eq!(
                anonymous == 401,
                secured,
                "{method} {path}: security does not match"
            );
        }
    }
    let want: BTreeSet<String> = [
        "/v1/schema",
        "/v1/relationships/write",
        "/v1/relationships/read",
        "/v1/relationships/delete",
        "/v1/relationships/import",
        "/v1/check",
        "/v1/check/bulk",
        "/v1/expand",
        "/v1/lookup/resources",
        "/v1/lookup/subjects",
        "/v1/watch",
        "/v1/sync",
        "/v1/playground/evaluate",
        "/healthz",
        "/readyz",
        "/metrics",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(
        documented_paths, want,
        "DESIGN §5 routes and the document differ"
    );
    server.stop().await;
}
