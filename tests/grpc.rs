//! SpiceDB's gRPC API end to end: a tonic client (the `spicedb-rs-proto` client types)
//! against a real server on 127.0.0.1:0, on the same port as the JSON API.

mod support;

use std::time::Duration;

use arbiter::server::ServerConfig;
use spicedb_rs_proto::authzed::api::v1 as pb;
use spicedb_rs_proto::authzed::api::v1::permissions_service_client::PermissionsServiceClient;
use spicedb_rs_proto::authzed::api::v1::schema_service_client::SchemaServiceClient;
use spicedb_rs_proto::authzed::api::v1::watch_service_client::WatchServiceClient;
use support::{TestServer, start_with_schema};
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Adds `authorization: Bearer …` when a token is set.
#[derive(Clone)]
struct Bearer(Option<String>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            let value: MetadataValue<_> = format!("Bearer {token}")
                .parse()
                .map_err(|_| tonic::Status::internal("bad token"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

type Channelled = InterceptedService<Channel, Bearer>;

struct Clients {
    permissions: PermissionsServiceClient<Channelled>,
    schema: SchemaServiceClient<Channelled>,
    watch: WatchServiceClient<Channelled>,
}

async fn clients(server: &TestServer, token: Option<&str>) -> Clients {
    let channel = Channel::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let bearer = Bearer(token.map(str::to_string));
    Clients {
        permissions: PermissionsServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        schema: SchemaServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        watch: WatchServiceClient::with_interceptor(channel, bearer),
    }
}

fn object(text: &str) -> pb::ObjectReference {
    let (object_type, object_id) = text.split_once(':').unwrap();
    pb::ObjectReference {
        object_type: object_type.into(),
        object_id: object_id.into(),
    }
}

fn subject(text: &str) -> pb::SubjectReference {
    let (reference, relation) = text.split_once('#').unwrap_or((text, ""));
    pb::SubjectReference {
        object: Some(object(reference)),
        optional_relation: relation.into(),
    }
}

/// `document:1#viewer@user:alice` as a message.
fn rel(text: &str) -> pb::Relationship {
    let (resource, rest) = text.split_once('#').unwrap();
    let (relation, who) = rest.split_once('@').unwrap();
    pb::Relationship {
        resource: Some(object(resource)),
        relation: relation.into(),
        subject: Some(subject(who)),
        optional_caveat: None,
        optional_expires_at: None,
    }
}

fn update(op: pb::relationship_update::Operation, text: &str) -> pb::RelationshipUpdate {
    pb::RelationshipUpdate {
        operation: op as i32,
        relationship: Some(rel(text)),
    }
}

fn full() -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
    })
}

fn exact(token: &pb::ZedToken) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtExactSnapshot(token.clone())),
    })
}

fn check(resource: &str, permission: &str, who: &str) -> pb::CheckPermissionRequest {
    pb::CheckPermissionRequest {
        consistency: full(),
        resource: Some(object(resource)),
        permission: permission.into(),
        subject: Some(subject(who)),
        context: None,
        with_tracing: false,
    }
}

async fn write(clients: &mut Clients, texts: &[&str]) -> pb::ZedToken {
    use pb::relationship_update::Operation;
    let updates = texts
        .iter()
        .map(|it| update(Operation::Touch, it))
        .collect();
    clients
        .permissions
        .write_relationships(pb::WriteRelationshipsRequest {
            updates,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .written_at
        .unwrap()
}

async fn permissionship(clients: &mut Clients, request: pb::CheckPermissionRequest) -> i32 {
    clients
        .permissions
        .check_permission(request)
        .await
        .unwrap()
        .into_inner()
        .permissionship
}

const HAS: i32 = pb::check_permission_response::Permissionship::HasPermission as i32;
const NO: i32 = pb::check_permission_response::Permissionship::NoPermission as i32;

#[tokio::test]
async fn checks_and_json_share_one_port() {
    let server = start_with_schema(ServerConfig::default()).await;
    let mut clients = clients(&server, None).await;
    let schema_written = clients
        .schema
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap()
        .into_inner()
        .read_at
        .unwrap();
    let token = write(
        &mut clients,
        &[
            "document:1#viewer@user:alice",
            "document:1#banned@user:bob",
            "document:1#viewer@user:bob",
        ],
    )
    .await;
    let cases = [
        ("document:1", "view", "user:alice", HAS),
        ("document:1", "view", "user:bob", NO),
        ("document:1", "viewer", "user:bob", HAS),
        ("document:2", "view", "user:alice", NO),
    ];
    for (resource, permission, who, expected) in cases {
        let got = permissionship(&mut clients, check(resource, permission, who)).await;
        assert_eq!(got, expected, "{resource}#{permission}@{who}");
    }
    // The ZedToken pins a snapshot: before the write, alice could not view.
    let mut before = check("document:1", "view", "user:alice");
    before.consistency = exact(&schema_written);
    assert_eq!(permissionship(&mut clients, before).await, NO);
    let mut after = check("document:1", "view", "user:alice");
    after.consistency = exact(&token);
    assert_eq!(permissionship(&mut clients, after).await, HAS);
    // HTTP/1.1 JSON on the same port still answers.
    let (status, body) = server
        .post(
            "/v1/check",
            serde_json::json!({"resource": "document:1", "permission": "view", "subject": "user:alice"}),
        )
        .await;
    assert_eq!((status, body["allowed"].as_bool()), (200, Some(true)));
    // A JSON call to a path no route serves is still the JSON 404, not a gRPC status.
    let (status, body) = server.post("/v1/nope", serde_json::json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_repeated_check_is_answered_from_the_cache_as_it_was_the_first_time() {
    let server = start_with_schema(ServerConfig::default()).await;
    let mut clients = clients(&server, None).await;
    write(&mut clients, &["document:1#viewer@user:alice"]).await;
    let engine = server.state.engine();
    for (who, expected) in [("user:alice", HAS), ("user:bob", NO)] {
        let ask = || check("document:1", "view", who);
        let first = clients.permissions.check_permission(ask()).await.unwrap();
        let hits = engine.cache_stats().hits;
        let again = clients.permissions.check_permission(ask()).await.unwrap();
        assert_eq!(engine.cache_stats().hits, hits + 1, "{who}: from the cache");
        assert_eq!(first.get_ref(), again.get_ref(), "{who}");
        assert_eq!(first.get_ref().permissionship, expected, "{who}");
    }
    // A call no check validated is never found in the cache: refused every time.
    for _ in 0..2 {
        let status = clients
            .permissions
            .check_permission(check("document:1", "view", "user:al ice"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn errors_use_spicedbs_status_codes() {
    use pb::relationship_update::Operation;
    let server = start_with_schema(ServerConfig::default()).await;
    let mut clients = clients(&server, None).await;
    write(&mut clients, &["document:1#viewer@user:alice"]).await;
    let checks = [
        (
            check("nope:1", "view", "user:alice"),
            Code::FailedPrecondition,
        ),
        (
            check("document:1", "nope", "user:alice"),
            Code::FailedPrecondition,
        ),
        (
            check("document:a b", "view", "user:alice"),
            Code::InvalidArgument,
        ),
        (
            check("document:1", "view", "user:al ice"),
            Code::InvalidArgument,
        ),
        (
            // A context is JSON: a number that is not one is refused.
            pb::CheckPermissionRequest {
                context: Some(prost_types::Struct {
                    fields: [(
                        "ip".to_string(),
                        prost_types::Value {
                            kind: Some(prost_types::value::Kind::NumberValue(f64::NAN)),
                        },
                    )]
                    .into(),
                }),
                ..check("document:1", "view", "user:alice")
            },
            Code::InvalidArgument,
        ),
    ];
    for (request, code) in checks {
        let err = clients
            .permissions
            .check_permission(request.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{request:?}: {}", err.message());
    }
    let writes = [
        (
            vec![update(Operation::Create, "document:1#viewer@user:alice")],
            vec![],
            Code::AlreadyExists,
        ),
        (
            vec![update(Operation::Touch, "document:1#nope@user:alice")],
            vec![],
            Code::FailedPrecondition,
        ),
        (
            vec![update(
                Operation::Touch,
                "document:1#owner@group:eng#member",
            )],
            vec![],
            Code::InvalidArgument,
        ),
        (
            vec![update(Operation::Touch, "document:2#viewer@user:carol")],
            vec![pb::Precondition {
                operation: pb::precondition::Operation::MustMatch as i32,
                filter: Some(pb::RelationshipFilter {
                    resource_type: "document".into(),
                    optional_resource_id: "2".into(),
                    ..Default::default()
                }),
            }],
            Code::FailedPrecondition,
        ),
        (
            (0..501)
                .map(|it| update(Operation::Touch, &format!("document:{it}#viewer@user:x")))
                .collect(),
            vec![],
            Code::InvalidArgument,
        ),
    ];
    for (updates, preconditions, code) in writes {
        let err = clients
            .permissions
            .write_relationships(pb::WriteRelationshipsRequest {
                updates,
                optional_preconditions: preconditions,
                optional_transaction_metadata: None,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{}", err.message());
    }
    // Nothing of the refused writes landed.
    assert_eq!(
        permissionship(&mut clients, check("document:2", "view", "user:carol")).await,
        NO
    );
    // A schema that would orphan `document:1#viewer@user:alice`.
    let err = clients
        .schema
        .write_schema(pb::WriteSchemaRequest {
            schema: "definition user {}\ndefinition document { relation owner: user }".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    // A service arbiter does not serve.
    let mut raw = tonic::client::Grpc::new(
        Channel::from_shared(server.url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    raw.ready().await.unwrap();
    let err = raw
        .unary::<pb::ReadSchemaRequest, pb::ReadSchemaResponse, _>(
            tonic::Request::new(pb::ReadSchemaRequest {}),
            "/authzed.api.v1.ExperimentalService/ExperimentalReflectSchema"
                .parse()
                .unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{}", err.message());
    server.stop().await;
}

#[tokio::test]
async fn bearer_token_guards_grpc_like_spicedbs_preshared_key() {
    let config = ServerConfig {
        token: Some("s3cret".into()),
        ..ServerConfig::default()
    };
    let server = start_with_schema(config).await;
    let cases = [
        (None, Some(Code::Unauthenticated)),
        (Some("wrong"), Some(Code::PermissionDenied)),
        (Some("s3cret"), None),
    ];
    for (token, expected) in cases {
        let mut clients = clients(&server, token).await;
        let res = clients.schema.read_schema(pb::ReadSchemaRequest {}).await;
        assert_eq!(res.err().map(|it| it.code()), expected, "{token:?}");
        // CheckPermission's lean route applies the same guard itself; asked twice, so the
        // second is a cached question answered before decoding.
        for _ in 0..2 {
            let res = clients
                .permissions
                .check_permission(check("document:1", "view", "user:alice"))
                .await;
            assert_eq!(res.err().map(|it| it.code()), expected, "check, {token:?}");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn streams_page_with_cursors_at_one_snapshot() {
    let server = start_with_schema(ServerConfig::default()).await;
    let mut clients = clients(&server, None).await;
    let texts: Vec<String> = (0..7)
        .map(|it| format!("document:d{it}#viewer@user:alice"))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    write(&mut clients, &refs).await;
    // LookupResources, three at a time, resumed from each page's last cursor.
    let mut found = Vec::new();
    let mut cursor = None;
    loop {
        let mut stream = clients
            .permissions
            .lookup_resources(pb::LookupResourcesRequest {
                consistency: full(),
                resource_object_type: "document".into(),
                permission: "view".into(),
                subject: Some(subject("user:alice")),
                optional_limit: 3,
                optional_cursor: cursor.take(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut n_page = 0;
        while let Some(item) = stream.message().await.unwrap() {
            found.push(item.resource_object_id);
            cursor = item.after_result_cursor;
            n_page += 1;
        }
        assert!(n_page <= 3);
        if n_page < 3 {
            break;
        }
    }
    // Walk order, not sorted: every id once.
    found.sort();
    let expected: Vec<String> = (0..7).map(|it| format!("d{it}")).collect();
    assert_eq!(found, expected);
    // ReadRelationships with a limit, then resumed.
    let read = |cursor: Option<pb::Cursor>| pb::ReadRelationshipsRequest {
        consistency: full(),
        relationship_filter: Some(pb::RelationshipFilter {
            resource_type: "document".into(),
            ..Default::default()
        }),
        optional_limit: 4,
        optional_cursor: cursor,
    };
    let mut stream = clients
        .permissions
        .read_relationships(read(None))
        .await
        .unwrap()
        .into_inner();
    let mut first = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        first.push(item);
    }
    assert_eq!(first.len(), 4);
    let cursor = first.last().and_then(|it| it.after_result_cursor.clone());
    let mut stream = clients
        .permissions
        .read_relationships(read(cursor))
        .await
        .unwrap()
        .into_inner();
    let mut rest = 0;
    while stream.message().await.unwrap().is_some() {
        rest += 1;
    }
    assert_eq!(rest, 3);
    // LookupSubjects and export see the same relationships.
    let mut subjects = clients
        .permissions
        .lookup_subjects(pb::LookupSubjectsRequest {
            consistency: full(),
            resource: Some(object("document:d3")),
            permission: "view".into(),
            subject_object_type: "user".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let only = subjects.message().await.unwrap().unwrap();
    assert_eq!(only.subject.unwrap().subject_object_id, "alice");
    assert!(subjects.message().await.unwrap().is_none());
    let mut export = clients
        .permissions
        .export_bulk_relationships(pb::ExportBulkRelationshipsRequest {
            consistency: full(),
            optional_limit: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut exported = 0;
    while let Some(page) = export.message().await.unwrap() {
        exported += page.relationships.len();
    }
    assert_eq!(exported, 7);
    server.stop().await;
}

/// SpiceDB (v1.54, asked through `../shared/peers/spicedb/`) answers a LookupSubjects with
/// `optional_concrete_limit` UNIMPLEMENTED ("concrete limit is not yet supported"), and
/// hands out no cursor; arbiter answers the same for a limit, and refuses a cursor (SpiceDB
/// decodes one and then ignores it) instead of ignoring it.
#[tokio::test]
async fn lookup_subjects_refuses_a_concrete_limit_as_spicedb_and_a_cursor() {
    let server = start_with_schema(ServerConfig::default()).await;
    let mut clients = clients(&server, None).await;
    write(
        &mut clients,
        &[
            "document:d1#viewer@user:alice",
            "document:d1#viewer@user:bob",
        ],
    )
    .await;
    let lookup = |limit: u32, cursor: Option<pb::Cursor>| pb::LookupSubjectsRequest {
        consistency: full(),
        resource: Some(object("document:d1")),
        permission: "view".into(),
        subject_object_type: "user".into(),
        optional_concrete_limit: limit,
        optional_cursor: cursor,
        ..Default::default()
    };
    let cursor = Some(pb::Cursor {
        token: "anything".into(),
    });
    let cases = [
        (lookup(1, None), Code::Unimplemented, "concrete limit"),
        (
            lookup(0, cursor.clone()),
            Code::InvalidArgument,
            "optional_cursor",
        ),
        (lookup(2, cursor), Code::Unimplemented, "concrete limit"),
    ];
    for (request, code, words) in cases {
        let err = clients
            .permissions
            .lookup_subjects(request)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{}", err.message());
        assert!(err.message().contains(words), "{}", err.message());
    }
    // Without either, every subject comes in one stream.
    let mut stream = clients
        .permissions
        .lookup_subjects(lookup(0, None))
        .await
        .unwrap()
        .into_inner();
    let mut found = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        found.push(item.subject.unwrap().subject_object_id);
    }
    assert_eq!(found, ["alice", "bob"]);
    server.stop().await;
}

#[tokio::test]
async fn issue10_lookup_resources_resumes_after_any_result() {
    let server = start_with_schema(ServerConfig::default()).await;
    let mut clients = clients(&server, None).await;
    let texts: Vec<String> = (0..9)
        .map(|it| format!("document:d{it}#viewer@user:alice"))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    write(&mut clients, &refs).await;
    let lookup = |cursor: Option<pb::Cursor>| pb::LookupResourcesRequest {
        consistency: full(),
        resource_object_type: "document".into(),
        permission: "view".into(),
        subject: Some(subject("user:alice")),
        optional_limit: 5,
        optional_cursor: cursor,
        ..Default::default()
    };
    let mut stream = clients
        .permissions
        .lookup_resources(lookup(None))
        .await
        .unwrap()
        .into_inner();
    let mut page = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        page.push(item);
    }
    assert_eq!(page.len(), 5);
    // Each result's cursor resumes right after it: no duplicate, no gap.
    for (n, item) in page.iter().enumerate() {
        let mut ids: Vec<String> = page[..=n]
            .iter()
            .map(|it| it.resource_object_id.clone())
            .collect();
        let mut stream = clients
            .permissions
            .lookup_resources(pb::LookupResourcesRequest {
                optional_limit: 0,
                ..lookup(item.after_result_cursor.clone())
            })
            .await
            .unwrap()
            .into_inner();
        while let Some(rest) = stream.message().await.unwrap() {
            ids.push(rest.resource_object_id);
        }
        ids.sort();
        let expected: Vec<String> = (0..9).map(|it| format!("d{it}")).collect();
        assert_eq!(ids, expected, "resumed after result {n}");
    }
    server.stop().await;
}

#[tokio::test]
async fn delete_honours_limit_and_preconditions() {
    let server = start_with_schema(ServerConfig::default()).await;
    let mut clients = clients(&server, None).await;
    let texts: Vec<String> = (0..5)
        .map(|it| format!("document:k{it}#viewer@user:key"))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    write(&mut clients, &refs).await;
    let by_key = || pb::RelationshipFilter {
        resource_type: "document".into(),
        optional_subject_filter: Some(pb::SubjectFilter {
            subject_type: "user".into(),
            optional_subject_id: "key".into(),
            optional_relation: None,
        }),
        ..Default::default()
    };
    let limited = |allow_partial| pb::DeleteRelationshipsRequest {
        relationship_filter: Some(by_key()),
        optional_limit: 2,
        optional_allow_partial_deletions: allow_partial,
        ..Default::default()
    };
    let err = clients
        .permissions
        .delete_relationships(limited(false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    let partial = clients
        .permissions
        .delete_relationships(limited(true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(partial.relationships_deleted_count, 2);
    assert_eq!(
        partial.deletion_progress,
        pb::delete_relationships_response::DeletionProgress::Partial as i32
    );
    let guarded = pb::DeleteRelationshipsRequest {
        relationship_filter: Some(by_key()),
        optional_preconditions: vec![pb::Precondition {
            operation: pb::precondition::Operation::MustNotMatch as i32,
            filter: Some(by_key()),
        }],
        ..Default::default()
    };
    let err = clients
        .permissions
        .delete_relationships(guarded)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    let rest = clients
        .permissions
        .delete_relationships(pb::DeleteRelationshipsRequest {
            relationship_filter: Some(by_key()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.relationships_deleted_count, 3);
    server.stop().await;
}

#[tokio::test]
async fn watch_resumes_from_a_zedtoken_and_streams_new_changes() {
    let server = start_with_schema(ServerConfig::default()).await;
    let mut clients = clients(&server, None).await;
    let start = write(&mut clients, &["document:w0#viewer@user:alice"]).await;
    write(&mut clients, &["document:w1#viewer@user:alice"]).await;
    let mut stream = clients
        .watch
        .watch(pb::WatchRequest {
            optional_start_cursor: Some(start),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    let written = first.updates[0].relationship.clone().unwrap();
    assert_eq!(written.resource.unwrap().object_id, "w1");
    write(&mut clients, &["document:w2#viewer@user:alice"]).await;
    let next = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("watch delivers a new change")
        .unwrap()
        .unwrap();
    let written = next.updates[0].relationship.clone().unwrap();
    assert_eq!(written.resource.unwrap().object_id, "w2");
    drop(stream);
    server.stop().await;
}

/// A request context as the wire carries it.
fn wire_context(pairs: &[(&str, &str)]) -> Option<prost_types::Struct> {
    Some(prost_types::Struct {
        fields: pairs
            .iter()
            .map(|(key, value)| {
                let kind = prost_types::value::Kind::StringValue((*value).to_string());
                ((*key).to_string(), prost_types::Value { kind: Some(kind) })
            })
            .collect(),
    })
}

#[tokio::test]
async fn issue11_grpc_lookups_answer_conditional_results_and_reads_carry_caveats() {
    use pb::relationship_update::Operation;
    let server = start_with_schema(ServerConfig::default()).await;
    let mut clients = clients(&server, None).await;
    clients
        .schema
        .write_schema(pb::WriteSchemaRequest {
            schema: "use expiration
caveat ip_allowlist(ip ipaddress, cidr string) { ip.in_cidr(cidr) }
definition user {}
definition document {
  relation viewer: user | user with ip_allowlist | user with expiration
  permission view = viewer
}"
            .into(),
        })
        .await
        .unwrap();
    let mut caveated = rel("document:d1#viewer@user:tom");
    caveated.optional_caveat = Some(pb::ContextualizedCaveat {
        caveat_name: "ip_allowlist".into(),
        context: wire_context(&[("cidr", "10.0.0.0/8")]),
    });
    let mut expiring = rel("document:d2#viewer@user:tom");
    expiring.optional_expires_at = Some(prost_types::Timestamp {
        seconds: 10_000_000_000,
        nanos: 0,
    });
    let mut expired = rel("document:d3#viewer@user:tom");
    expired.optional_expires_at = Some(prost_types::Timestamp {
        seconds: 1_000_000_000,
        nanos: 0,
    });
    let updates = [caveated.clone(), expiring.clone(), expired]
        .into_iter()
        .map(|relationship| pb::RelationshipUpdate {
            operation: Operation::Touch as i32,
            relationship: Some(relationship),
        })
        .collect();
    clients
        .permissions
        .write_relationships(pb::WriteRelationshipsRequest {
            updates,
            ..Default::default()
        })
        .await
        .unwrap();

    // ReadRelationships returns the caveat and the expiration; the expired one is gone.
    let mut stream = clients
        .permissions
        .read_relationships(pb::ReadRelationshipsRequest {
            consistency: full(),
            relationship_filter: Some(pb::RelationshipFilter {
                resource_type: "document".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut read = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        read.extend(item.relationship);
    }
    assert_eq!(read, [caveated, expiring]);

    let lookup = |context: Option<prost_types::Struct>| pb::LookupResourcesRequest {
        consistency: full(),
        resource_object_type: "document".into(),
        permission: "view".into(),
        subject: Some(subject("user:tom")),
        context,
        ..Default::default()
    };
    let conditional = pb::LookupPermissionship::ConditionalPermission as i32;
    let has = pb::LookupPermissionship::HasPermission as i32;
    let mut answers = Vec::new();
    for context in [None, wire_context(&[("ip", "10.1.1.1")])] {
        let mut stream = clients
            .permissions
            .lookup_resources(lookup(context))
            .await
            .unwrap()
            .into_inner();
        let mut found = Vec::new();
        while let Some(item) = stream.message().await.unwrap() {
            let missing = item
                .partial_caveat_info
                .map(|it| it.missing_required_context)
                .unwrap_or_default();
            found.push((item.resource_object_id, item.permissionship, missing));
        }
        answers.push(found);
    }
    assert_eq!(
        answers,
        [
            vec![
                ("d1".to_string(), conditional, vec!["ip".to_string()]),
                ("d2".to_string(), has, vec![]),
            ],
            vec![
                ("d1".to_string(), has, vec![]),
                ("d2".to_string(), has, vec![]),
            ],
        ]
    );

    let mut stream = clients
        .permissions
        .lookup_subjects(pb::LookupSubjectsRequest {
            consistency: full(),
            resource: Some(object("document:d1")),
            permission: "view".into(),
            subject_object_type: "user".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let only = stream.message().await.unwrap().unwrap();
    let resolved = only.subject.unwrap();
    assert_eq!(
        (resolved.subject_object_id.as_str(), resolved.permissionship),
        ("tom", conditional)
    );
    assert_eq!(
        resolved
            .partial_caveat_info
            .unwrap()
            .missing_required_context,
        ["ip"]
    );

    let mut request = check("document:d1", "view", "user:tom");
    request.context = wire_context(&[("ip", "10.1.1.1")]);
    assert_eq!(permissionship(&mut clients, request.clone()).await, HAS);
    request.context = wire_context(&[("ip", "192.168.1.1")]);
    assert_eq!(permissionship(&mut clients, request).await, NO);
}

/// A JSON object as the wire carries a context.
fn wire_json(json: serde_json::Value) -> Option<prost_types::Struct> {
    fn value(json: &serde_json::Value) -> prost_types::Value {
        use prost_types::value::Kind;
        let kind = match json {
            serde_json::Value::Null => Kind::NullValue(0),
            serde_json::Value::Bool(it) => Kind::BoolValue(*it),
            serde_json::Value::Number(it) => Kind::NumberValue(it.as_f64().unwrap()),
            serde_json::Value::String(it) => Kind::StringValue(it.clone()),
            serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
                values: items.iter().map(value).collect(),
            }),
            serde_json::Value::Object(_) => Kind::StructValue(wire_json(json.clone()).unwrap()),
        };
        prost_types::Value { kind: Some(kind) }
    }
    let fields = json.as_object().unwrap();
    Some(prost_types::Struct {
        fields: fields
            .iter()
            .map(|(key, it)| (key.clone(), value(it)))
            .collect(),
    })
}

/// The first message of a server stream, or the error of the call or of the stream.
async fn first_message<T>(
    res: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
) -> Result<(), tonic::Status> {
    res?.into_inner().message().await.map(|_| ())
}

/// Differential seed 104 (docs/DIFFERENTIAL.md): SpiceDB v1.54 answers INVALID_ARGUMENT
/// for a context value of the wrong type (asked through `oracle.py`), and so does arbiter,
/// before any walk, on every call that takes a context; a bulk item fails alone.
#[tokio::test]
async fn a_context_value_of_the_wrong_type_is_invalid_argument_as_in_spicedb() {
    use pb::check_bulk_permissions_pair::Response;
    let engine = arbiter::engine::Arbiter::in_memory(arbiter::engine::Config::default()).unwrap();
    engine
        .write_schema(
            "caveat cv_a(n2 uint) { n2 == 1 }
definition user {}
definition res0 {
    relation rel_a: user with cv_a | res0#rel_a with cv_a
    permission perm_c = rel_a
}",
        )
        .unwrap();
    let updates: Vec<arbiter::store::Update> = [
        r#"res0:c#rel_a@user:u1[cv_a:{"n2":2}]"#,
        "res0:a#rel_a@res0:c#rel_a[cv_a]",
        "res0:b#rel_a@user:u1[cv_a]",
    ]
    .into_iter()
    .map(|text| arbiter::store::Update {
        op: arbiter::store::UpdateOp::Touch,
        relationship: text.parse().unwrap(),
    })
    .collect();
    engine.write(&updates, &[]).unwrap().unwrap();
    let server = support::start(engine, ServerConfig::default()).await;
    let mut clients = clients(&server, None).await;
    let wrong = || wire_json(serde_json::json!({"n2": {"wrong": true}}));
    let expect_refused = |res: Result<(), tonic::Status>, what: &str| {
        let err = res.expect_err(what);
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{what}: {}",
            err.message()
        );
        for part in ["`n2`", "`cv_a`", "`uint`"] {
            assert!(err.message().contains(part), "{what}: {}", err.message());
        }
    };

    let mut request = check("res0:a", "perm_c", "user:u1");
    request.context = wrong();
    let res = clients.permissions.check_permission(request).await;
    expect_refused(res.map(|_| ()), "check");
    let res = clients
        .permissions
        .lookup_resources(pb::LookupResourcesRequest {
            consistency: full(),
            resource_object_type: "res0".into(),
            permission: "perm_c".into(),
            subject: Some(subject("user:u1")),
            context: wrong(),
            ..Default::default()
        })
        .await;
    expect_refused(first_message(res).await, "lookup resources");
    let res = clients
        .permissions
        .lookup_subjects(pb::LookupSubjectsRequest {
            consistency: full(),
            resource: Some(object("res0:b")),
            permission: "perm_c".into(),
            subject_object_type: "user".into(),
            context: wrong(),
            ..Default::default()
        })
        .await;
    expect_refused(first_message(res).await, "lookup subjects");

    // Well-typed values and undeclared keys answer as before.
    let mut request = check("res0:b", "perm_c", "user:u1");
    request.context = wire_json(serde_json::json!({"n2": 1, "other": {"x": true}}));
    assert_eq!(permissionship(&mut clients, request).await, HAS);

    let item = |resource: &str, context| pb::CheckBulkPermissionsRequestItem {
        resource: Some(object(resource)),
        permission: "perm_c".into(),
        subject: Some(subject("user:u1")),
        context,
    };
    let pairs = clients
        .permissions
        .check_bulk_permissions(pb::CheckBulkPermissionsRequest {
            consistency: full(),
            items: vec![
                item("res0:a", wrong()),
                item("res0:b", wire_json(serde_json::json!({"n2": 1}))),
            ],
            with_tracing: false,
        })
        .await
        .unwrap()
        .into_inner()
        .pairs;
    match &pairs[0].response {
        Some(Response::Error(status)) => assert_eq!(status.code, Code::InvalidArgument as i32),
        other => panic!("expected an error, got {other:?}"),
    }
    match &pairs[1].response {
        Some(Response::Item(item)) => assert_eq!(item.permissionship, HAS),
        other => panic!("expected an answer, got {other:?}"),
    }
    server.stop().await;
}
