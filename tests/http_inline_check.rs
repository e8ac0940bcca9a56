//! Checks answered on the async worker (issue 14, item 5; issue 13's CheckPermission):
//! over a store only this process writes (sled), the JSON check and gRPC CheckPermission
//! run inline within a slice instead of on the blocking pool. These tests hold that the
//! inline path answers as the blocking one does, and keeps every limit: the body limit,
//! the request deadline, errors that never answer `allowed`.

mod support;

use std::time::Duration;

use arbiter::engine::{self, Arbiter};
use arbiter::server::ServerConfig;
use serde_json::json;
use spicedb_rs_proto::authzed::api::v1 as pb;
use spicedb_rs_proto::authzed::api::v1::permissions_service_client::PermissionsServiceClient;
use support::{SCHEMA, TestServer, assert_error, start};
use tonic::Code;
use tonic::transport::Channel;

const RELATIONSHIPS: &[&str] = &[
    "document:readme#owner@user:alice",
    "document:readme#viewer@group:eng#member",
    "group:eng#member@user:bob",
    "document:readme#banned@user:carol",
    "group:eng#member@user:carol",
];

/// (resource, permission, subject, allowed)
const CHECKS: &[(&str, &str, &str, bool)] = &[
    ("document:readme", "view", "user:alice", true),
    ("document:readme", "edit", "user:alice", true),
    ("document:readme", "view", "user:bob", true),
    ("document:readme", "edit", "user:bob", false),
    ("document:readme", "view", "user:carol", false),
    ("document:readme", "view", "user:dave", false),
    ("document:other", "view", "user:alice", false),
];

/// A server over a temporary sled store (the inline path) or the in-memory store (whose
/// checks take the blocking pool), with [`SCHEMA`] and [`RELATIONSHIPS`] loaded.
async fn server(sled: bool, config: ServerConfig) -> TestServer {
    let engine = if sled {
        Arbiter::temporary(engine::Config::default()).unwrap()
    } else {
        Arbiter::in_memory(engine::Config::default()).unwrap()
    };
    engine.write_schema(SCHEMA).unwrap();
    let server = start(engine, config).await;
    server.touch(RELATIONSHIPS).await;
    server
}

async fn grpc_client(server: &TestServer) -> PermissionsServiceClient<Channel> {
    let channel = Channel::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    PermissionsServiceClient::new(channel)
}

fn reference(text: &str) -> pb::ObjectReference {
    let (object_type, object_id) = text.split_once(':').unwrap();
    pb::ObjectReference {
        object_type: object_type.into(),
        object_id: object_id.into(),
    }
}

fn grpc_check(resource: &str, permission: &str, subject: &str) -> pb::CheckPermissionRequest {
    pb::CheckPermissionRequest {
        consistency: Some(pb::Consistency {
            requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
        }),
        resource: Some(reference(resource)),
        permission: permission.into(),
        subject: Some(pb::SubjectReference {
            object: Some(reference(subject)),
            optional_relation: String::new(),
        }),
        context: None,
        with_tracing: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_inline_checks_answer_as_checks_on_the_blocking_pool() {
    let inline = server(true, ServerConfig::default()).await;
    let pooled = server(false, ServerConfig::default()).await;
    let mut grpc = grpc_client(&inline).await;
    let has = pb::check_permission_response::Permissionship::HasPermission as i32;
    for &(resource, permission, subject, allowed) in CHECKS {
        let case = format!("{resource}#{permission}@{subject}");
        assert_eq!(
            inline.allowed(resource, permission, subject).await,
            allowed,
            "{case}"
        );
        assert_eq!(
            pooled.allowed(resource, permission, subject).await,
            allowed,
            "{case}"
        );
        let answer = grpc
            .check_permission(grpc_check(resource, permission, subject))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.permissionship == has, allowed, "{case}");
    }
    // Errors are answered inline too, never as `allowed`.
    let (status, body) = inline
        .post(
            "/v1/check",
            json!({"resource": "document:readme", "permission": "nope", "subject": "user:alice"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_argument");
    let err = grpc
        .check_permission(grpc_check("document:readme", "nope", "user:alice"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    inline.stop().await;
    pooled.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_an_inline_check_honours_the_request_deadline() {
    // A deadline that has always passed: the inline slice is cut to it, the blocking pool
    // retry stops at once, and the answer is the deadline error, never a decision.
    let config = ServerConfig {
        request_timeout: Duration::ZERO,
        ..ServerConfig::default()
    };
    let engine = Arbiter::temporary(engine::Config::default()).unwrap();
    engine.write_schema(SCHEMA).unwrap();
    let server = start(engine, config).await;
    let (status, body) = server
        .post(
            "/v1/check",
            json!({"resource": "document:readme", "permission": "view", "subject": "user:alice"}),
        )
        .await;
    assert_error(status, &body, 503, "deadline_exceeded");
    let mut grpc = grpc_client(&server).await;
    let err = grpc
        .check_permission(grpc_check("document:readme", "view", "user:alice"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_an_inline_check_honours_the_body_limit() {
    let config = ServerConfig {
        body_limit: 512,
        ..ServerConfig::default()
    };
    let server = server(true, config).await;
    let long = format!("user:{}", "a".repeat(1_000));
    let (status, body) = server
        .post(
            "/v1/check",
            json!({"resource": "document:readme", "permission": "view", "subject": long}),
        )
        .await;
    assert_error(status, &body, 413, "payload_too_large");
    let mut grpc = grpc_client(&server).await;
    let err = grpc
        .check_permission(grpc_check("document:readme", "view", &long))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    // Within the limit, the same server still answers.
    assert!(
        server
            .allowed("document:readme", "view", "user:alice")
            .await
    );
    server.stop().await;
}
