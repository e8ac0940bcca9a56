//! Issue 10 through the server: the schemas that crashed it (posted on a tokio worker's
//! 2 MiB stack) are accepted and checked, and what the compiler refuses is a 400 with its
//! position, exactly as `arbiter schema check` reports it.

mod support;

use arbiter::engine::{self, Arbiter};
use arbiter::server::ServerConfig;
use serde_json::json;
use support::{assert_error, start};

/// `definition doc { relation r00000…: user  permission ppp = r00000 OP r00001 OP … }`.
fn chain_schema(op: &str, n_terms: usize) -> String {
    let relations: String = (0..n_terms)
        .map(|idx| format!("    relation r{idx:05}: user\n"))
        .collect();
    let expr = (0..n_terms)
        .map(|idx| format!("r{idx:05}"))
        .collect::<Vec<_>>()
        .join(&format!(" {op} "));
    format!(
        "definition user {{}}\n\ndefinition doc {{\n{relations}    permission ppp = {expr}\n}}\n"
    )
}

async fn server() -> support::TestServer {
    let engine = Arbiter::in_memory(engine::Config::default()).unwrap();
    start(engine, ServerConfig::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_http_flat_union_and_exclusion_chain_are_stored_and_checked() {
    for (op, n_terms, last_grants) in [("+", 20_000, true), ("-", 5_000, false)] {
        let server = server().await;
        let (status, body) = server
            .post("/v1/schema", json!({ "schema": chain_schema(op, n_terms) }))
            .await;
        assert_eq!(status, 200, "{op}: {body}");
        let last = format!("doc:d1#r{:05}@user:alice", n_terms - 1);
        server.touch(&["doc:d1#r00000@user:bob", &last]).await;
        assert_eq!(
            server.allowed("doc:d1", "ppp", "user:alice").await,
            last_grants
        );
        assert!(server.allowed("doc:d1", "ppp", "user:bob").await, "{op}");
        assert!(!server.allowed("doc:d1", "ppp", "user:carol").await, "{op}");
        let (status, _) = server.get("/readyz").await;
        assert_eq!(status, 200);
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue10_http_refused_schemas_name_their_position() {
    let server = server().await;
    let deep = format!(
        "definition doc {{\n    relation aaa: doc\n    permission ppp = {}aaa{}\n}}\n",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    for (text, want) in [
        ("", "1:1: the schema defines nothing"),
        ("// only a comment\n", "1:1: the schema defines nothing"),
        (
            deep.as_str(),
            "expression nests deeper than 64 levels of parentheses",
        ),
    ] {
        let (status, body) = server.post("/v1/schema", json!({ "schema": text })).await;
        assert_error(status, &body, 400, "invalid_schema");
        let message = body.to_string();
        let cli = arbiter::schema::parse_and_compile(text)
            .unwrap_err()
            .to_string();
        assert!(cli.contains(want), "{cli}");
        let problem = &body["error"]["problems"][0];
        let position = format!("{}:{}", problem["line"], problem["column"]);
        assert!(cli.starts_with(&position), "server {message}, cli {cli}");
    }
    let (status, body) = server.get("/readyz").await;
    assert_error(status, &body, 503, "no_schema");
    server.stop().await;
}
