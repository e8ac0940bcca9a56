//! Scoped API keys (issue 16), through the whole router without a socket: every scope
//! against every `/v1` endpoint class (the table of `server::keys`), 401 against 403, a
//! reload, `--token` as an admin key, the key's name (never its secret) in the metrics,
//! and that the route table covers every `/v1` route the API document lists.

use std::collections::BTreeSet;

use arbiter::engine::{self, Arbiter};
use arbiter::server::keys::{KeyRing, ROUTE_SCOPES, Scope, sha256_hex};
use arbiter::server::{AppState, ServerConfig, router};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

const SCHEMA: &str =
    "definition user {}\ndefinition doc { relation viewer: user\n permission view = viewer }";

/// One key per scope: `key-check` with secret `secret-check`, and so on.
fn key_file() -> String {
    let mut text = String::from("keys:\n");
    for scope in Scope::ALL {
        text.push_str(&format!(
            "  - name: key-{scope}\n    sha256: {}\n    scopes: [{scope}]\n",
            sha256_hex(&format!("secret-{scope}"))
        ));
    }
    text
}

fn state(token: Option<&str>) -> AppState {
    let engine = Arbiter::in_memory(engine::Config::default()).unwrap();
    engine.write_schema(SCHEMA).unwrap();
    let config = ServerConfig {
        token: token.map(str::to_string),
        ..ServerConfig::default()
    };
    AppState::new(engine, config)
}

async fn call(
    state: &AppState,
    method: &str,
    path: &str,
    secret: Option<&str>,
) -> (StatusCode, String) {
    let uri = if path == "/v1/watch" {
        "/v1/watch?since=0".to_string()
    } else {
        path.to_string()
    };
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(secret) = secret {
        request = request.header("authorization", format!("Bearer {secret}"));
    }
    let body = if method == "POST" {
        Body::from("{}")
    } else {
        Body::empty()
    };
    let response = router(state.clone())
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    if path == "/v1/watch" && status == StatusCode::OK {
        // An endless stream: the headers are the answer.
        return (status, String::new());
    }
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).to_string())
}

#[tokio::test]
async fn issue16_every_scope_against_every_endpoint_class() {
    let state = state(None);
    state
        .keys()
        .replace(KeyRing::parse("keys.yaml".as_ref(), &key_file()).unwrap());
    for (method, path, needed) in ROUTE_SCOPES.iter().filter(|it| it.1.starts_with("/v1/")) {
        for scope in Scope::ALL {
            let secret = format!("secret-{scope}");
            let (status, body) = call(&state, method, path, Some(&secret)).await;
            let granted = scope == Scope::Admin || scope == *needed;
            if granted {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{method} {path} with {scope}: {status} {body}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{method} {path} with {scope}: {body}"
                );
                let json: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(json["error"]["code"], "permission_denied");
                assert_eq!(
                    json["error"]["message"],
                    format!("key `key-{scope}` lacks the `{needed}` scope"),
                );
            }
        }
        for secret in [None, Some("wrong"), Some("")] {
            let (status, body) = call(&state, method, path, secret).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {secret:?}: {body}"
            );
            assert!(body.contains("unauthenticated"), "{body}");
        }
    }
}

#[tokio::test]
async fn issue16_probes_stay_open_and_reload_replaces_keys() {
    let state = state(None);
    state
        .keys()
        .replace(KeyRing::parse("keys.yaml".as_ref(), &key_file()).unwrap());
    assert_eq!(
        call(&state, "GET", "/healthz", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&state, "GET", "/v1/schema", Some("secret-read"))
            .await
            .0,
        StatusCode::OK
    );
    let reloaded = format!(
        "keys:\n  - name: fresh\n    sha256: {}\n    scopes: [read]\n",
        sha256_hex("fresh-secret")
    );
    state
        .keys()
        .replace(KeyRing::parse("keys.yaml".as_ref(), &reloaded).unwrap());
    assert_eq!(
        call(&state, "GET", "/v1/schema", Some("secret-read"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&state, "GET", "/v1/schema", Some("fresh-secret"))
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn issue16_token_is_one_admin_key_and_metrics_name_keys_not_secrets() {
    let state = state(Some("the-token"));
    for (method, path, _) in ROUTE_SCOPES.iter().filter(|it| it.1.starts_with("/v1/")) {
        let (status, body) = call(&state, method, path, Some("the-token")).await;
        assert!(
            status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
            "{method} {path}: {status} {body}"
        );
    }
    assert_eq!(
        call(&state, "GET", "/v1/schema", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, metrics) = call(&state, "GET", "/metrics", None).await;
    assert!(
        metrics.contains("arbiter_requests_by_key_total{key=\"token\"}"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("the-token"),
        "a secret leaked into /metrics"
    );
}

#[tokio::test]
async fn issue16_route_table_covers_every_v1_route() {
    let state = state(None);
    let (_, document) = call(&state, "GET", "/openapi.json", None).await;
    let document: serde_json::Value = serde_json::from_str(&document).unwrap();
    let mut served = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            served.insert((method.to_uppercase(), path.clone()));
        }
    }
    let table: BTreeSet<(String, String)> = ROUTE_SCOPES
        .iter()
        .filter(|(_, path, _)| path.starts_with("/v1/"))
        .map(|(method, path, _)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(served, table);
}
