//! Caveats and expirations over HTTP (issue 11): a write whose caveat or expiration the
//! schema does not admit is refused with 400 naming the relationship, and nothing of its
//! batch is written; a database that holds caveated relationships opens and answers
//! three-valued; a request context value of the wrong type for a caveat parameter is a 400
//! on `context` wherever a context is taken (docs/CAVEATS.md).

mod support;

use arbiter::engine::{self, Arbiter, CheckRequest, Consistency, Permissionship};
use arbiter::model::Relationship;
use arbiter::server::ServerConfig;
use arbiter::store::{SledStore, Store, Update, UpdateOp};
use serde_json::json;
use support::{assert_error, start_with_schema};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue11_a_caveat_or_expiration_the_schema_does_not_admit_is_400_and_writes_nothing() {
    // support::SCHEMA declares no caveat and no `with expiration`.
    let server = start_with_schema(ServerConfig::default()).await;
    let before = server.touch(&["document:1#owner@user:a"]).await;
    for (conditional, reason) in [
        (
            r#"document:1#viewer@user:tom[ip_allowlist:{"cidr":"10.0.0.0/8"}]"#,
            "caveat `ip_allowlist` is not defined",
        ),
        (
            "document:1#viewer@user:tom[ip_allowlist]",
            "caveat `ip_allowlist` is not defined",
        ),
        (
            "document:1#viewer@user:tom[expiration:2300-12-01T00:00:00Z]",
            "expiration",
        ),
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
        assert_eq!(status, 400, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(reason), "{conditional}: {message}");
        assert!(message.contains("document:1#viewer@user:tom"), "{message}");
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
fn issue11_a_database_holding_caveated_relationships_opens_and_answers_three_valued() {
    let schema = "caveat cav(a int) { a == 1 }
definition user {}
definition document {
    relation viewer: user with cav
    permission view = viewer
}";
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open_path(dir.path()).unwrap();
        store.write_schema(schema).unwrap();
        let updates: Vec<Update> = [
            r#"document:1#viewer@user:tom[cav:{"a":1}]"#,
            r#"document:2#viewer@user:tom[cav:{"a":2}]"#,
            "document:3#viewer@user:tom[cav]",
        ]
        .into_iter()
        .map(|text| Update {
            op: UpdateOp::Touch,
            relationship: text.parse::<Relationship>().unwrap(),
        })
        .collect();
        store.write(&updates, &[]).unwrap().unwrap();
    }
    let engine = Arbiter::open(dir.path(), engine::Config::default()).unwrap();
    let answer = |doc: &str| {
        let request = CheckRequest {
            resource: format!("document:{doc}").parse().unwrap(),
            permission: "view".to_string(),
            subject: "user:tom".parse().unwrap(),
            context: None,
        };
        engine.check(&request, Consistency::Full).unwrap()
    };
    assert_eq!(answer("1").permissionship, Permissionship::HasPermission);
    assert_eq!(answer("2").permissionship, Permissionship::NoPermission);
    let conditional = answer("3");
    assert_eq!(
        conditional.permissionship,
        Permissionship::ConditionalPermission
    );
    assert!(!conditional.allowed);
    assert_eq!(conditional.missing_context, ["a"]);
}

/// Differential seed 104 (docs/DIFFERENTIAL.md), with `res0:b` added so a well-typed
/// context can grant.
const SEED_104_SCHEMA: &str = "caveat cv_a(n2 uint) { n2 == 1 }
definition user {}
definition res0 {
    relation rel_a: user with cv_a | res0#rel_a with cv_a
    permission perm_c = rel_a
}";

const SEED_104_RELATIONSHIPS: &str = r#"res0:c#rel_a@user:u1[cv_a:{"n2":2}]
res0:a#rel_a@res0:c#rel_a[cv_a]
res0:b#rel_a@user:u1[cv_a]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_value_of_the_wrong_type_is_400_on_every_route_that_takes_a_context() {
    let engine = Arbiter::in_memory(engine::Config::default()).unwrap();
    engine.write_schema(SEED_104_SCHEMA).unwrap();
    let server = support::start(engine, ServerConfig::default()).await;
    server
        .touch(&SEED_104_RELATIONSHIPS.lines().collect::<Vec<_>>())
        .await;
    let check = |resource: &str, context: serde_json::Value| {
        json!({"resource": resource, "permission": "perm_c", "subject": "user:u1",
               "context": context})
    };
    let wrong = json!({"n2": {"wrong": true}});
    let mut explained = check("res0:a", wrong.clone());
    explained["explain"] = json!(true);
    let mut playground = check("res0:a", wrong.clone());
    playground["action"] = json!("check");
    playground["schema"] = json!(SEED_104_SCHEMA);
    playground["relationships"] = json!(SEED_104_RELATIONSHIPS);
    let refused = [
        ("/v1/check", check("res0:a", wrong.clone())),
        // No relationship names `res0:z`: refused all the same, before any walk.
        ("/v1/check", check("res0:z", wrong.clone())),
        ("/v1/check", explained),
        ("/v1/playground/evaluate", playground),
        (
            "/v1/lookup/resources",
            json!({"resource_type": "res0", "permission": "perm_c", "subject": "user:u1",
                   "context": wrong}),
        ),
        (
            "/v1/lookup/subjects",
            json!({"resource": "res0:b", "permission": "perm_c", "subject_type": "user",
                   "context": wrong}),
        ),
    ];
    for (path, request) in refused {
        let (status, body) = server.post(path, request.clone()).await;
        assert_error(status, &body, 400, "invalid_argument");
        assert_eq!(body["error"]["field"], "context", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        for part in ["`n2`", "`cv_a`", "`uint`", r#"`{"wrong":true}`"#] {
            assert!(message.contains(part), "{path} {request}: {message}");
        }
    }

    // In a bulk check the item fails alone; well-typed values and undeclared keys answer.
    let (status, body) = server
        .post(
            "/v1/check/bulk",
            json!({"items": [
                check("res0:a", wrong.clone()),
                check("res0:b", json!({"n2": 1, "other": {"x": 1}})),
                check("res0:b", json!({"other": {"x": 1}})),
                check("res0:a", json!({"n2": 1})),
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["error"]["code"], "invalid_argument", "{body}");
    assert_eq!(results[0]["error"]["field"], "context", "{body}");
    assert!(results[0].get("allowed").is_none(), "{body}");
    let answers: Vec<&serde_json::Value> = results[1..]
        .iter()
        .map(|it| &it["permissionship"])
        .collect();
    assert_eq!(
        answers,
        ["has_permission", "conditional_permission", "no_permission"],
        "{body}"
    );
    server.stop().await;
}
