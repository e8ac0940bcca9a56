//! Caveats and expirations over HTTP before the engine can evaluate them (issue 11): a
//! write carrying either suffix is refused with 400 naming the relationship, and nothing
//! of its batch is written; a database that already holds one is refused at open rather
//! than read as unconditional.

mod support;

use arbiter::engine::{self, Arbiter};
use arbiter::model::Relationship;
use arbiter::server::ServerConfig;
use arbiter::store::{SledStore, Store, Update, UpdateOp};
use serde_json::json;
use support::{assert_error, start_with_schema};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue11_a_caveated_or_expiring_write_is_400_and_writes_nothing() {
    let server = start_with_schema(ServerConfig::default()).await;
    let before = server.touch(&["document:1#owner@user:a"]).await;
    for conditional in [
        r#"document:1#viewer@user:tom[ip_allowlist:{"cidr":"10.0.0.0/8"}]"#,
        "document:1#viewer@user:tom[ip_allowlist]",
        "document:1#viewer@user:tom[expiration:2300-12-01T00:00:00Z]",
        r#"document:1#viewer@user:tom[ip_allowlist:{"cidr":"10.0.0.0/8"}][expiration:2300-12-01T00:00:00Z]"#,
    ] {
        let (status, body) = server
            .post(
                "/v1/relationships/write",
                json!({"updates": [
                    {"op": "touch", "relationship": "document:2#viewer@user:tom"},
                    {"op": "touch", "relationship": conditional},
                ]}),
            )
            .await;
        assert_error(status, &body, 400, "invalid_relationship");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("not supported by the engine yet"),
            "{message}"
        );
        assert!(message.contains("document:1#viewer@user:tom["), "{message}");
    }
    // Nothing was written: no new revision, no viewer.
    let (status, body) = server
        .post(
            "/v1/relationships/read",
            json!({"filter": {"resource_type": "document"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["relationships"], json!(["document:1#owner@user:a"]));
    assert_eq!(body["revision"], json!(before));
    assert!(!server.allowed("document:1", "view", "user:tom").await);
    assert!(!server.allowed("document:2", "view", "user:tom").await);

    // A malformed suffix is a 400 on the field, not a silently dropped condition.
    let (status, body) = server
        .post(
            "/v1/relationships/write",
            json!({"updates": [{"op": "touch",
                                "relationship": "document:1#viewer@user:tom[expiration:tomorrow]"}]}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_argument");
    server.stop().await;
}

#[test]
fn issue11_a_database_holding_a_caveated_relationship_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open_path(dir.path()).unwrap();
        store.write_schema(support::SCHEMA).unwrap();
        let relationship: Relationship =
            r#"document:1#viewer@user:tom[cav:{"a":1}]"#.parse().unwrap();
        let update = Update {
            op: UpdateOp::Touch,
            relationship,
        };
        store.write(&[update], &[]).unwrap().unwrap();
    }
    let err = Arbiter::open(dir.path(), engine::Config::default())
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(
        message.contains("not supported by the engine yet"),
        "{message}"
    );
}
