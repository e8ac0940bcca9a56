//! The watch stream through a real listener: every change, in revision order, as it
//! commits; resumable with `since`; a bad `since` is a 400; shutdown ends the stream.

mod support;

use std::time::Duration;

use arbiter::server::ServerConfig;
use serde_json::{Value, json};
use support::{TestServer, start_with_schema};

/// Reads NDJSON lines from a watch response until `count` events arrived.
async fn events(mut response: reqwest::Response, count: usize) -> Vec<Value> {
    let mut buffer = Vec::new();
    let mut res = Vec::new();
    while res.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("watch went silent")
            .unwrap()
            .expect("watch stream ended");
        buffer.extend_from_slice(&chunk);
        while let Some(pos) = buffer.iter().position(|it| *it == b'\n') {
            let line: Vec<u8> = buffer.drain(..=pos).collect();
            res.push(serde_json::from_slice(&line).unwrap());
        }
    }
    res
}

async fn watch(server: &TestServer, since: Option<u64>) -> reqwest::Response {
    let url = match since {
        Some(since) => format!("{}/v1/watch?since={since}", server.url),
        None => format!("{}/v1/watch", server.url),
    };
    let response = server.http.get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_delivers_every_change_in_order_as_it_commits() {
    let server = start_with_schema(ServerConfig::default()).await;
    let start = server.state.engine().head().0;
    let response = watch(&server, None).await;
    // Writes after the stream opened, some touching, some deleting.
    let mut want = Vec::new();
    for n in 0..30 {
        let rel = format!("document:{}#viewer@user:u{n}", n % 3);
        let revision = server.touch(&[&rel]).await;
        want.push((revision, "touch", rel.clone()));
        if n % 5 == 0 {
            let (status, body) = server
                .post(
                    "/v1/relationships/write",
                    json!({"updates": [{"op": "delete", "relationship": rel}]}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            want.push((body["revision"].as_u64().unwrap(), "delete", rel));
        }
    }
    let got = events(response, want.len()).await;
    let got: Vec<(u64, String, String)> = got
        .iter()
        .map(|event| {
            let changes = event["changes"].as_array().unwrap();
            assert_eq!(changes.len(), 1, "{event}");
            (
                event["revision"].as_u64().unwrap(),
                changes[0]["op"].as_str().unwrap().to_string(),
                changes[0]["relationship"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, String, String)> = want
        .into_iter()
        .map(|(revision, op, rel)| (revision, op.to_string(), rel))
        .collect();
    assert_eq!(got, want);
    assert!(got.iter().all(|it| it.0 > start));

    // Resume after the tenth event: exactly the rest, again in order.
    let resume_at = got[9].0;
    let resumed = events(watch(&server, Some(resume_at)).await, got.len() - 10).await;
    let resumed: Vec<u64> = resumed
        .iter()
        .map(|it| it["revision"].as_u64().unwrap())
        .collect();
    let rest: Vec<u64> = got[10..].iter().map(|it| it.0).collect();
    assert_eq!(resumed, rest);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_since_is_400_and_shutdown_ends_the_stream() {
    let server = start_with_schema(ServerConfig::default()).await;
    let (status, body) = server.get("/v1/watch?since=99999").await;
    support::assert_error(status, &body, 400, "invalid_argument");
    let (status, body) = server.get("/v1/watch?since=abc").await;
    support::assert_error(status, &body, 400, "invalid_argument");

    let mut response = watch(&server, Some(0)).await;
    server.stop().await;
    // The stream finishes (no hang) once the server drains.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = response.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the watch stream outlived the server");
}
