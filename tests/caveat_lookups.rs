//! Lookups answer three-valued (issue 11, DESIGN §3): with caveated and expiring
//! relationships, lookup resources and lookup subjects must list, for every object of the
//! type, exactly what a check with the same context answers (`has` ids as results,
//! `conditional` ids apart with their missing parameters, `no` ids absent), through
//! direct tuples, subject sets, arrows, intersection, exclusion, wildcards and expiring
//! tuples. The questions are data: every subject × permission × context below is asked
//! both ways and compared.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use arbiter::engine::{
    Arbiter, CheckRequest, Config, Consistency, Context, ExpandDepth, ExpandNode, ExpandRequest,
    ExpandTree, LookupResourcesRequest, LookupSubjectsRequest, Permissionship, ReadRequest,
};
use arbiter::model::{ObjectRef, SubjectRef, Timestamp};
use arbiter::server::ServerConfig;
use arbiter::store::RelationshipFilter;
use serde_json::json;

const SCHEMA: &str = r#"
use expiration

caveat ip_allowlist(ip ipaddress, cidr string) {
  ip.in_cidr(cidr)
}

caveat has_tier(tier int) {
  tier >= 2
}

definition user {}

definition group {
  relation member: user | user with has_tier | user with expiration | group#member | group#member with ip_allowlist
}

definition folder {
  relation viewer: user | user with ip_allowlist | group#member
  permission view = viewer
}

definition document {
  relation parent: folder | folder with has_tier
  relation viewer: user | user with ip_allowlist | user with expiration | user:* | user:* with has_tier | group#member | group#member with has_tier
  relation editor: user | user with has_tier
  relation banned: user | user with ip_allowlist
  permission view = viewer + parent->view
  permission edit_and_view = editor & view
  permission view_unbanned = view - banned
}
"#;

const RELATIONSHIPS: &[&str] = &[
    "document:d1#viewer@user:alice",
    r#"document:d1#viewer@user:bob[ip_allowlist:{"cidr":"10.0.0.0/8"}]"#,
    "document:d1#editor@user:alice[has_tier]",
    "document:d2#viewer@group:g1#member",
    "document:d2#editor@user:dave",
    "group:g1#member@user:carol[has_tier]",
    "group:g1#member@user:dave",
    "group:g1#member@user:frank[expiration:2023-01-01T00:00:00Z]",
    r#"document:d3#parent@folder:f1[has_tier:{"tier":1}]"#,
    "document:d4#parent@folder:f2[has_tier]",
    "folder:f1#viewer@user:erin",
    "folder:f2#viewer@user:erin",
    r#"folder:f2#viewer@user:bob[ip_allowlist:{"cidr":"192.168.0.0/16"}]"#,
    "document:d5#viewer@user:*[has_tier]",
    r#"document:d5#banned@user:alice[ip_allowlist:{"cidr":"10.0.0.0/8"}]"#,
    "document:d6#viewer@user:*",
    "document:d6#banned@user:bob",
    "document:d6#editor@user:carol",
    r#"group:g2#member@group:g1#member[ip_allowlist:{"cidr":"10.0.0.0/8"}]"#,
    "document:d7#viewer@group:g2#member",
    "document:d7#viewer@user:tom[expiration:2023-01-01T00:00:00Z]",
    "document:d8#viewer@user:tom[expiration:2323-01-01T00:00:00Z]",
    "document:d8#viewer@group:g1#member[has_tier]",
];

const DOCUMENTS: &[&str] = &["d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"];
const USERS: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "tom", "nobody",
];
const PERMISSIONS: &[&str] = &["view", "viewer", "edit_and_view", "view_unbanned"];

fn contexts() -> Vec<Option<Context>> {
    let ctx = |value: serde_json::Value| value.as_object().cloned();
    vec![
        None,
        ctx(serde_json::json!({"tier": 3})),
        ctx(serde_json::json!({"ip": "10.1.2.3"})),
        ctx(serde_json::json!({"tier": 1, "ip": "192.168.1.1"})),
        ctx(serde_json::json!({"tier": 2, "ip": "10.0.0.1"})),
    ]
}

fn engine() -> Arbiter {
    let engine = Arbiter::in_memory(Config::default()).unwrap();
    engine.write_schema(SCHEMA).unwrap();
    support::touch(&engine, RELATIONSHIPS);
    engine
}

/// Conditional ids with their missing parameters.
type Answers = BTreeMap<String, Vec<String>>;

/// A check's answer: `None` for no, else the permissionship and the missing parameters.
type CheckAnswer = Option<(Permissionship, Vec<String>)>;

fn check(
    engine: &Arbiter,
    resource: &str,
    permission: &str,
    subject: &str,
    context: Option<&Context>,
) -> CheckAnswer {
    let request = CheckRequest {
        resource: resource.parse().unwrap(),
        permission: permission.to_string(),
        subject: subject.parse().unwrap(),
        context: context.cloned(),
    };
    let decision = engine.check(&request, Consistency::Full).unwrap();
    match decision.permissionship {
        Permissionship::NoPermission => None,
        other => Some((other, decision.missing_context)),
    }
}

/// Splits per-id check answers into (has ids, conditional ids with missing parameters).
fn split(answers: Vec<(String, CheckAnswer)>) -> (Vec<String>, Answers) {
    let mut has = Vec::new();
    let mut conditional = Answers::new();
    for (id, answer) in answers {
        match answer {
            Some((Permissionship::HasPermission, _)) => has.push(id),
            Some((_, missing)) => {
                conditional.insert(id, missing);
            }
            None => {}
        }
    }
    has.sort();
    (has, conditional)
}

#[test]
fn issue11_lookup_resources_equals_the_three_valued_check_of_every_object() {
    let engine = engine();
    let mut subjects: Vec<String> = USERS.iter().map(|it| format!("user:{it}")).collect();
    subjects.push("user:*".to_string());
    subjects.push("group:g1#member".to_string());
    let mut conditional_seen = 0;
    let mut has_seen = 0;
    for subject in &subjects {
        for permission in PERMISSIONS {
            for context in contexts() {
                let expected = split(
                    DOCUMENTS
                        .iter()
                        .map(|doc| {
                            let answer = check(
                                &engine,
                                &format!("document:{doc}"),
                                permission,
                                subject,
                                context.as_ref(),
                            );
                            (doc.to_string(), answer)
                        })
                        .collect(),
                );
                let page = engine
                    .lookup_resources(
                        &LookupResourcesRequest {
                            context: context.clone(),
                            ..LookupResourcesRequest::new(
                                "document",
                                *permission,
                                subject.parse().unwrap(),
                            )
                        },
                        Consistency::Full,
                    )
                    .unwrap();
                let got_conditional: Answers = page
                    .conditional
                    .iter()
                    .map(|it| (it.id.clone(), it.missing_context.clone()))
                    .collect();
                let question = format!("document#{permission}@{subject} with {context:?}");
                // Walk order, not sorted: compared as sets.
                let mut resources = page.resources.clone();
                resources.sort();
                assert_eq!(resources, expected.0, "has: {question}");
                assert_eq!(got_conditional, expected.1, "conditional: {question}");
                assert_eq!(page.cursor, None, "{question}");
                conditional_seen += got_conditional.len();
                has_seen += page.resources.len();
            }
        }
    }
    // The data exercises both kinds of answers.
    assert!(conditional_seen > 20, "{conditional_seen}");
    assert!(has_seen > 20, "{has_seen}");
}

#[test]
fn issue11_lookup_subjects_equals_the_three_valued_check_of_every_subject() {
    let engine = engine();
    let mut conditional_seen = 0;
    for doc in DOCUMENTS {
        let resource = format!("document:{doc}");
        for permission in PERMISSIONS {
            for context in contexts() {
                let got = engine
                    .lookup_subjects(
                        &LookupSubjectsRequest {
                            context: context.clone(),
                            ..LookupSubjectsRequest::new(
                                resource.parse().unwrap(),
                                *permission,
                                "user",
                            )
                        },
                        Consistency::Full,
                    )
                    .unwrap();
                let question = format!("{resource}#{permission}@user with {context:?}");
                let got_conditional: Answers = got
                    .conditional
                    .iter()
                    .map(|it| (it.id.clone(), it.missing_context.clone()))
                    .collect();
                let listed = |id: &str| {
                    if got.subjects.iter().any(|it| it == id) {
                        Some((Permissionship::HasPermission, Vec::new()))
                    } else {
                        got_conditional
                            .get(id)
                            .map(|missing| (Permissionship::ConditionalPermission, missing.clone()))
                    }
                };
                let wildcard = check(&engine, &resource, permission, "user:*", context.as_ref());
                assert_eq!(listed("*"), wildcard, "`*`: {question}");
                for user in USERS {
                    let want = check(
                        &engine,
                        &resource,
                        permission,
                        &format!("user:{user}"),
                        context.as_ref(),
                    );
                    match listed(user) {
                        // Not listed: only `*` may stand for it, with the same answer.
                        None if want.is_some() => {
                            assert_eq!(wildcard, want, "{user} under `*`: {question}");
                            assert!(!got.excluded.iter().any(|it| it == user), "{question}");
                        }
                        got_answer => assert_eq!(got_answer, want, "{user}: {question}"),
                    }
                }
                let mut sorted = got.subjects.clone();
                sorted.sort();
                assert_eq!(sorted, got.subjects, "{question}");
                if wildcard.is_some() {
                    for id in &got.excluded {
                        let answer = check(
                            &engine,
                            &resource,
                            permission,
                            &format!("user:{id}"),
                            context.as_ref(),
                        );
                        assert_eq!(answer, None, "excluded {id}: {question}");
                    }
                } else {
                    assert!(got.excluded.is_empty(), "{question}: {:?}", got.excluded);
                }
                conditional_seen += got_conditional.len();
            }
        }
    }
    assert!(conditional_seen > 20, "{conditional_seen}");
}

#[test]
fn issue11_conditional_and_definite_ids_share_one_cursor() {
    let engine = engine();
    let subject: SubjectRef = "user:bob".parse().unwrap();
    let all = engine
        .lookup_resources(
            &LookupResourcesRequest::new("document", "view", subject.clone()),
            Consistency::Full,
        )
        .unwrap();
    let mut want: Vec<String> = all.resources.clone();
    want.extend(all.conditional.iter().map(|it| it.id.clone()));
    want.sort();
    assert!(!all.conditional.is_empty() && !all.resources.is_empty());
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = engine
            .lookup_resources(
                &LookupResourcesRequest {
                    limit: 1,
                    cursor: cursor.clone(),
                    ..LookupResourcesRequest::new("document", "view", subject.clone())
                },
                Consistency::Full,
            )
            .unwrap();
        assert_eq!(page.resources.len() + page.conditional.len(), 1);
        got.extend(page.resources);
        got.extend(page.conditional.into_iter().map(|it| it.id));
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn issue11_expired_relationships_are_invisible_to_read_and_expand() {
    let engine = engine();
    let filter = RelationshipFilter {
        resource_type: Some("document".to_string()),
        resource_id: Some("d7".to_string()),
        ..RelationshipFilter::default()
    };
    let page = engine
        .read(&ReadRequest::new(filter.clone()), Consistency::Full)
        .unwrap();
    let texts: Vec<String> = page.relationships.iter().map(ToString::to_string).collect();
    assert_eq!(texts, ["document:d7#viewer@group:g2#member"]);
    // The live expiring one is read with its suffix.
    let filter = RelationshipFilter {
        resource_type: Some("document".to_string()),
        resource_id: Some("d8".to_string()),
        ..RelationshipFilter::default()
    };
    let page = engine
        .read(&ReadRequest::new(filter.clone()), Consistency::Full)
        .unwrap();
    let texts: Vec<String> = page.relationships.iter().map(ToString::to_string).collect();
    assert!(
        texts.contains(&"document:d8#viewer@user:tom[expiration:2323-01-01T00:00:00Z]".to_string()),
        "{texts:?}"
    );

    let tree = expand(&engine, "document:d7", "viewer", ExpandDepth::OneLevel);
    assert_eq!(leaves(&tree), ["group:g2#member"]);
    let tree = expand(&engine, "group:g1", "member", ExpandDepth::OneLevel);
    assert_eq!(leaves(&tree), ["user:carol[has_tier]", "user:dave"]);
}

#[test]
fn issue11_expand_shows_conditional_tuples_with_their_suffixes() {
    let engine = engine();
    let tree = expand(&engine, "document:d1", "viewer", ExpandDepth::OneLevel);
    assert_eq!(
        leaves(&tree),
        [
            "user:alice",
            r#"user:bob[ip_allowlist:{"cidr":"10.0.0.0/8"}]"#
        ]
    );
    let tree = expand(&engine, "document:d8", "viewer", ExpandDepth::OneLevel);
    assert_eq!(
        leaves(&tree),
        [
            "group:g1#member[has_tier]",
            "user:tom[expiration:2323-01-01T00:00:00Z]"
        ]
    );
    // Recursive: the caveated subject set is followed (its members appear below it).
    let tree = expand(&engine, "document:d8", "view", ExpandDepth::Recursive);
    let all = leaves(&tree);
    assert!(all.contains(&"user:dave".to_string()), "{all:?}");
    assert!(all.contains(&"user:carol[has_tier]".to_string()), "{all:?}");
    // An arrow through a caveated tupleset relationship names it.
    let tree = expand(&engine, "document:d4", "view", ExpandDepth::OneLevel);
    let conditions = arrow_conditions(&tree);
    assert_eq!(conditions, ["document:d4#parent@folder:f2[has_tier]"]);
}

#[test]
fn issue11_a_cached_lookup_is_not_served_past_an_expiry_it_read() {
    let engine = engine();
    let expires = Timestamp::from_unix(Timestamp::now().unix_seconds() + 3, 0).unwrap();
    let relationship = format!("document:d9#viewer@user:nobody[expiration:{expires}]");
    support::touch(&engine, &[relationship.as_str()]);
    let subject: SubjectRef = "user:nobody".parse().unwrap();
    let lookup = || {
        engine
            .lookup_resources(
                &LookupResourcesRequest::new("document", "view", subject.clone()),
                Consistency::Full,
            )
            .unwrap()
            .resources
    };
    let first = lookup();
    // Answered before the expiry (on a loaded machine it may not have been): it is there.
    if Timestamp::now() < expires {
        assert!(first.contains(&"d9".to_string()), "{first:?}");
    }
    while Timestamp::now() <= expires {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!lookup().contains(&"d9".to_string()));
    let object: ObjectRef = "document:d9".parse().unwrap();
    let subjects = engine
        .lookup_subjects(
            &LookupSubjectsRequest::new(object.clone(), "view", "user"),
            Consistency::Full,
        )
        .unwrap();
    assert!(!subjects.subjects.contains(&"nobody".to_string()));
}

#[test]
fn issue11_lookups_key_their_cached_pages_on_the_context() {
    let engine = engine();
    let subject: SubjectRef = "user:bob".parse().unwrap();
    let lookup = |context: Option<&Context>| {
        engine
            .lookup_resources(
                &LookupResourcesRequest {
                    context: context.cloned(),
                    ..LookupResourcesRequest::new("document", "view", subject.clone())
                },
                Consistency::Full,
            )
            .unwrap()
    };
    let without = lookup(None);
    let inside = serde_json::json!({"ip": "10.9.9.9"});
    let with = lookup(inside.as_object());
    assert!(without.conditional.iter().any(|it| it.id == "d1"));
    assert!(with.resources.contains(&"d1".to_string()), "{with:?}");
    assert_eq!(lookup(None), without);
}

fn expand(engine: &Arbiter, resource: &str, relation: &str, depth: ExpandDepth) -> ExpandTree {
    engine
        .expand(
            &ExpandRequest::new(resource.parse().unwrap(), relation, depth),
            Consistency::Full,
        )
        .unwrap()
        .tree
}

/// Every leaf subject of `tree`, sorted.
fn leaves(tree: &ExpandTree) -> Vec<String> {
    fn walk(tree: &ExpandTree, out: &mut Vec<String>) {
        match &tree.node {
            ExpandNode::Leaf { subjects } => out.extend(subjects.iter().cloned()),
            ExpandNode::Union { children }
            | ExpandNode::Intersection { children }
            | ExpandNode::Arrow { children, .. } => {
                for child in children {
                    walk(child, out);
                }
            }
            ExpandNode::Exclusion { base, subtracted } => {
                walk(base, out);
                walk(subtracted, out);
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(tree, &mut out);
    out.sort();
    out.dedup();
    out
}

/// The conditional tupleset relationships of every arrow in `tree`.
fn arrow_conditions(tree: &ExpandTree) -> Vec<String> {
    fn walk(tree: &ExpandTree, out: &mut Vec<String>) {
        match &tree.node {
            ExpandNode::Arrow {
                children,
                conditions,
                ..
            } => {
                out.extend(conditions.iter().cloned());
                for child in children {
                    walk(child, out);
                }
            }
            ExpandNode::Union { children } | ExpandNode::Intersection { children } => {
                for child in children {
                    walk(child, out);
                }
            }
            ExpandNode::Exclusion { base, subtracted } => {
                walk(base, out);
                walk(subtracted, out);
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(tree, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue11_http_lookups_take_a_context_and_answer_conditional_ids() {
    let server = support::start(engine(), ServerConfig::default()).await;
    let lookup = |context: Option<serde_json::Value>| {
        let mut body =
            json!({"resource_type": "document", "permission": "view", "subject": "user:bob"});
        if let Some(context) = context {
            body["context"] = context;
        }
        body
    };
    let (status, body) = server.post("/v1/lookup/resources", lookup(None)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resources"], json!(["d6"]), "{body}");
    assert_eq!(
        body["conditional"],
        json!([
            {"id": "d1", "missing_context": ["ip"]},
            {"id": "d4", "missing_context": ["ip", "tier"]},
            {"id": "d5", "missing_context": ["tier"]},
        ]),
        "{body}"
    );
    let context = json!({"ip": "10.0.0.1", "tier": 2});
    let (status, body) = server
        .post("/v1/lookup/resources", lookup(Some(context.clone())))
        .await;
    assert_eq!(status, 200, "{body}");
    // Walk order, not sorted.
    let mut resources: Vec<String> = serde_json::from_value(body["resources"].clone()).unwrap();
    resources.sort();
    assert_eq!(resources, ["d1", "d5", "d6"], "{body}");
    assert!(body.get("conditional").is_none(), "{body}");
    // One cursor over both kinds: one id per page.
    let mut body = lookup(None);
    body["limit"] = json!(1);
    let mut listed = Vec::new();
    loop {
        let (status, page) = server.post("/v1/lookup/resources", body.clone()).await;
        assert_eq!(status, 200, "{page}");
        let resources = page["resources"].as_array().cloned().unwrap_or_default();
        let conditional = page["conditional"].as_array().cloned().unwrap_or_default();
        assert_eq!(resources.len() + conditional.len(), 1, "{page}");
        listed.extend(resources);
        listed.extend(conditional);
        if page["cursor"].is_null() {
            break;
        }
        body["cursor"] = page["cursor"].clone();
    }
    listed.sort_by_key(|it| it.to_string());
    assert_eq!(
        listed,
        [
            json!("d6"),
            json!({"id": "d1", "missing_context": ["ip"]}),
            json!({"id": "d4", "missing_context": ["ip", "tier"]}),
            json!({"id": "d5", "missing_context": ["tier"]}),
        ]
    );

    let subjects = |context: serde_json::Value| json!({"resource": "document:d5", "permission": "view_unbanned", "subject_type": "user", "context": context});
    let (status, body) = server
        .post("/v1/lookup/subjects", subjects(json!({})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subjects"], json!([]), "{body}");
    assert_eq!(
        body["conditional"],
        json!([
            {"id": "*", "missing_context": ["tier"]},
            {"id": "alice", "missing_context": ["ip", "tier"]},
        ]),
        "{body}"
    );
    let (status, body) = server
        .post(
            "/v1/lookup/subjects",
            subjects(json!({"tier": 5, "ip": "10.0.0.1"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subjects"], json!(["*"]), "{body}");
    assert_eq!(body["excluded"], json!(["alice"]), "{body}");
    // A context of the wrong shape is refused, not ignored.
    let (status, body) = server
        .post("/v1/lookup/subjects", subjects(json!(["tier"])))
        .await;
    assert_eq!(status, 400, "{body}");
    server.stop().await;
}
