//! Concurrency and durability through a real listener: concurrent writers and checkers
//! lose no write, see strictly increasing revisions, and a check `at_least_as_fresh` a
//! write's revision sees that write; a graceful shutdown then a restart on the same
//! database keeps every acknowledged write.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use arbiter::engine::{self, Arbiter};
use arbiter::server::ServerConfig;
use serde_json::json;
use support::{SCHEMA, start};

const WRITERS: usize = 6;
const WRITES_EACH: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_checkers() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arbiter::open(dir.path(), engine::Config::default()).unwrap();
    engine.write_schema(SCHEMA).unwrap();
    let server = Arc::new(start(engine, ServerConfig::default()).await);

    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let server = Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            let mut revisions = Vec::new();
            for n in 0..WRITES_EACH {
                let user = format!("user:w{writer}_{n}");
                let revision = server
                    .touch(&[&format!("document:{writer}#viewer@{user}")])
                    .await;
                // Read-your-write: a check at least as fresh as the write sees it.
                let (status, body) = server
                    .post(
                        "/v1/check",
                        json!({"resource": format!("document:{writer}"), "permission": "view",
                               "subject": user,
                               "consistency": {"mode": "at_least_as_fresh", "revision": revision}}),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
                assert_eq!(
                    body["allowed"], true,
                    "write at {revision} not seen: {body}"
                );
                assert!(body["revision"].as_u64().unwrap() >= revision);
                revisions.push(revision);
            }
            revisions
        }));
    }
    // Checkers running alongside: answers are denials or grants, never errors.
    let mut checkers = Vec::new();
    for checker in 0..2 {
        let server = Arc::clone(&server);
        checkers.push(tokio::spawn(async move {
            let mut last = 0;
            for n in 0..100 {
                let (status, body) = server
                    .post(
                        "/v1/check",
                        json!({"resource": format!("document:{}", n % WRITERS), "permission": "view",
                               "subject": format!("user:w{checker}_0")}),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
                let revision = body["revision"].as_u64().unwrap();
                assert!(revision >= last, "a later full check went back in time");
                last = revision;
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let revisions = task.await.unwrap();
        assert!(
            revisions.windows(2).all(|it| it[0] < it[1]),
            "one writer's revisions must strictly increase: {revisions:?}"
        );
        all.extend(revisions);
    }
    for checker in checkers {
        checker.await.unwrap();
    }
    let distinct: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        WRITERS * WRITES_EACH,
        "two writes shared a revision"
    );

    // No lost write: every relationship is there.
    let (status, body) = server
        .post(
            "/v1/relationships/read",
            json!({"filter": {"resource_type": "document", "relation": "viewer"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["relationships"].as_array().unwrap().len(),
        WRITERS * WRITES_EACH
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_then_restart_keeps_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arbiter::open(dir.path(), engine::Config::default()).unwrap();
    engine.write_schema(SCHEMA).unwrap();
    let server = Arc::new(start(engine, ServerConfig::default()).await);

    // Writers keep going while shutdown starts; whatever was acknowledged must survive.
    let mut tasks = Vec::new();
    for writer in 0..4 {
        let server = Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0..1_000 {
                let rel = format!("document:{writer}#viewer@user:u{writer}_{n}");
                let body = json!({"updates": [{"op": "touch", "relationship": rel}]});
                let sent = server
                    .http
                    .post(format!("{}/v1/relationships/write", server.url))
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => acknowledged.push(rel),
                    // Refused or cut off by the shutdown: not acknowledged.
                    _ => break,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    server.stop().await;
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    assert!(
        !acknowledged.is_empty(),
        "no write was acknowledged before shutdown"
    );
    // The last handle on the engine goes: the store is closed.
    drop(Arc::into_inner(server).unwrap());

    let engine = Arbiter::open(dir.path(), engine::Config::default()).unwrap();
    let restarted = start(engine, ServerConfig::default()).await;
    for rel in &acknowledged {
        let (resource, subject) = rel.split_once("#viewer@").unwrap();
        assert!(
            restarted.allowed(resource, "view", subject).await,
            "acknowledged write `{rel}` lost after restart"
        );
    }
    restarted.stop().await;
}
