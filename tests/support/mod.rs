//! Shared helpers of the HTTP tests: start a real server on 127.0.0.1:0 over a given
//! engine, call it with JSON, stop it gracefully.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::net::SocketAddr;

use arbiter::engine::{self, Arbiter};
use arbiter::server::{self, AppState, ServerConfig};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The schema most HTTP tests use.
pub const SCHEMA: &str = "
definition user {}
definition group {
    relation member: user | group#member
}
definition document {
    relation owner: user
    relation viewer: user | user:* | group#member
    relation banned: user
    permission edit = owner
    permission view = (viewer | edit) - banned
}
";

/// Touches `relationships`, given as text, in one write to `engine`.
pub fn touch(engine: &Arbiter, relationships: &[&str]) {
    let updates: Vec<arbiter::store::Update> = relationships
        .iter()
        .map(|text| arbiter::store::Update {
            op: arbiter::store::UpdateOp::Touch,
            relationship: text.parse().unwrap(),
        })
        .collect();
    engine.write(&updates, &[]).unwrap().unwrap();
}

/// A running server and the handle to stop it.
pub struct TestServer {
    pub url: String,
    pub addr: SocketAddr,
    pub state: AppState,
    pub token: Option<String>,
    pub http: reqwest::Client,
    shutdown: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    task: tokio::sync::Mutex<Option<JoinHandle<std::io::Result<()>>>>,
}

/// Starts a server over `engine` on a free loopback port.
pub async fn start(engine: Arbiter, config: ServerConfig) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = config.token.clone();
    let state = AppState::new(engine, config);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(listener, state.clone(), async move {
        let _ = rx.await;
    }));
    TestServer {
        url: format!("http://{addr}"),
        addr,
        state,
        token,
        http: reqwest::Client::new(),
        shutdown: std::sync::Mutex::new(Some(tx)),
        task: tokio::sync::Mutex::new(Some(task)),
    }
}

/// A server over a fresh in-memory engine with [`SCHEMA`] loaded.
pub async fn start_with_schema(config: ServerConfig) -> TestServer {
    let engine = Arbiter::in_memory(engine::Config::default()).unwrap();
    engine.write_schema(SCHEMA).unwrap();
    start(engine, config).await
}

impl TestServer {
    /// POSTs `body` with the server's token; answers (status, JSON body).
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.url)).json(&body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        decode(request.send().await.unwrap()).await
    }

    /// GETs `path` with the server's token.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        decode(request.send().await.unwrap()).await
    }

    /// Writes relationships (touch) and answers the revision.
    pub async fn touch(&self, relationships: &[&str]) -> u64 {
        let updates: Vec<Value> = relationships
            .iter()
            .map(|it| serde_json::json!({"op": "touch", "relationship": it}))
            .collect();
        let (status, body) = self
            .post(
                "/v1/relationships/write",
                serde_json::json!({"updates": updates}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["revision"].as_u64().unwrap()
    }

    /// Checks and answers `allowed`.
    pub async fn allowed(&self, resource: &str, permission: &str, subject: &str) -> bool {
        let (status, body) = self
            .post(
                "/v1/check",
                serde_json::json!({"resource": resource, "permission": permission, "subject": subject}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["allowed"].as_bool().unwrap()
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Triggers graceful shutdown and waits for the server to finish (store flushed).
    pub async fn stop(&self) {
        let sender = self.shutdown.lock().unwrap().take();
        if let Some(tx) = sender {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.lock().await.take() {
            task.await.unwrap().unwrap();
        }
    }
}

async fn decode(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Asserts the DESIGN §5 error shape and code, and that no error carries `allowed`.
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(
        body.get("allowed").is_none(),
        "an error answered allowed: {body}"
    );
}
