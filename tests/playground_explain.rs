//! Issue 15, explain: `"explain": true` on `/v1/check` and bulk items, the documented JSON
//! shape (docs/PLAYGROUND.md), its bound, `arbiter check --explain`, and the explaining
//! walk agreeing with the check walk on every assertion of the scenario files.

mod support;

use std::path::{Path, PathBuf};

use arbiter::engine::{
    self, Arbiter, CheckRequest, Consistency, EXPLAIN_NODE_LIMIT, ExplainKind, ExplainNode,
    ExplainedAnswer, Permissionship, Reason, Verdict,
};
use arbiter::server::ServerConfig;
use arbiter::validation::{Session, ValidationFile, parse};
use serde_json::{Value, json};

/// Every validation file whose assertions the explaining walk must answer as check does:
/// the project's scenarios, and SpiceDB's conformance files where `shared/` is beside the
/// checkout (as in CI and the developers' machines).
/// Each with whether it is the project's own (which must load).
fn scenario_files() -> Vec<(PathBuf, bool)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    yaml_files(&root.join("schema"), &mut files);
    let mut res: Vec<(PathBuf, bool)> = files.drain(..).map(|it| (it, true)).collect();
    // The engine's semantics cases add lookup and error expectations to the format, so
    // only those that read as plain validation files are compared.
    yaml_files(&root.join("tests/engine"), &mut files);
    for shared in [
        root.join("../shared/conformance/spicedb"),
        PathBuf::from("/work/shared/conformance/spicedb"),
    ] {
        if shared.is_dir() {
            yaml_files(&shared, &mut files);
            break;
        }
    }
    res.extend(files.into_iter().map(|it| (it, false)));
    res
}

fn yaml_files(folder: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|it| it == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn explain_agrees_with_check_on_every_scenario_assertion() {
    let mut n_compared = 0;
    for (path, ours) in scenario_files() {
        let Ok(file) = ValidationFile::read(&path) else {
            assert!(!ours, "{} does not read", path.display());
            continue;
        };
        let mut session = Session::new().unwrap();
        let findings = session.load(&file);
        if !findings.is_empty() {
            // A conformance file using what arbiter does not support yet (caveats, …).
            assert!(!ours, "{}: {findings:?}", path.display());
            continue;
        }
        let engine = session.engine();
        for item in file
            .assert_true
            .iter()
            .chain(&file.assert_false)
            .chain(&file.assert_caveated)
        {
            let (relationship, context) = parse::assertion_with_context(&item.text).unwrap();
            let request = CheckRequest {
                resource: relationship.resource,
                permission: relationship.relation,
                subject: relationship.subject,
                context,
            };
            let checked = engine
                .check(&request, Consistency::Full)
                .map(|it| (it.permissionship, it.missing_context))
                .map_err(|err| err.to_string());
            let explained = engine
                .check_explained(&request, Consistency::Full)
                .map(|(decision, explanation)| {
                    let said = match explanation.result {
                        ExplainedAnswer::HasPermission => Permissionship::HasPermission,
                        ExplainedAnswer::NoPermission => Permissionship::NoPermission,
                        ExplainedAnswer::ConditionalPermission => {
                            Permissionship::ConditionalPermission
                        }
                    };
                    assert_eq!(
                        said,
                        decision.permissionship,
                        "{}: {}",
                        path.display(),
                        item.text
                    );
                    let root = match explanation.tree.result {
                        Verdict::Granted => Permissionship::HasPermission,
                        Verdict::Conditional => Permissionship::ConditionalPermission,
                        // An error is only ever a branch's verdict: where the answer needs it, the
                        // explained check fails.
                        Verdict::Error => panic!("an answered explanation's root is an error"),
                        Verdict::Denied | Verdict::Undefined => Permissionship::NoPermission,
                    };
                    assert_eq!(root, said, "{}: {}", path.display(), item.text);
                    (said, explanation.missing_context)
                })
                .map_err(|err| err.to_string());
            assert_eq!(explained, checked, "{}: {}", path.display(), item.text);
            n_compared += 1;
        }
    }
    eprintln!("explain and check agree on {n_compared} assertions");
    assert!(n_compared >= 70, "only {n_compared} assertions compared");
}

fn models() -> Arbiter {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/models.yaml");
    let file = ValidationFile::read(&path).unwrap();
    let mut session = Session::new().unwrap();
    assert!(session.load(&file).is_empty());
    session.engine().clone()
}

fn explain(engine: &Arbiter, resource: &str, permission: &str, subject: &str) -> ExplainNode {
    let request = CheckRequest {
        resource: resource.parse().unwrap(),
        permission: permission.to_string(),
        subject: subject.parse().unwrap(),
        context: None,
    };
    let (_, explanation) = engine.check_explained(&request, Consistency::Full).unwrap();
    assert!(!explanation.truncated);
    explanation.tree
}

/// Every node of a tree, depth first.
fn nodes(node: &ExplainNode) -> Vec<&ExplainNode> {
    let mut out = vec![node];
    for child in &node.children {
        out.extend(nodes(child));
    }
    out
}

#[test]
fn issue15_a_guest_executes_a_public_model_through_the_wildcard() {
    let engine = models();
    let tree = explain(&engine, "model:public_llm", "execute", "user:stranger");
    assert_eq!(tree.kind, ExplainKind::Permission);
    assert_eq!(tree.result, Verdict::Granted);
    assert_eq!(
        tree.expression.as_deref(),
        Some("guest | project.guest | edit")
    );
    // The witness only: the granting branch, down to the stored relationship.
    assert_eq!(tree.children.len(), 1);
    let guest = &tree.children[0];
    assert_eq!(guest.kind, ExplainKind::Relation);
    assert_eq!(guest.relation.as_deref(), Some("guest"));
    let relationship = &guest.children[0];
    assert_eq!(relationship.kind, ExplainKind::Relationship);
    assert_eq!(
        relationship.relationship.as_deref(),
        Some("model:public_llm#guest@user:*")
    );
    assert_eq!(relationship.reason, Some(Reason::Wildcard));
    assert!(relationship.written_at.is_some());
}

#[test]
fn issue15_a_guest_may_not_edit_and_every_branch_says_why() {
    let engine = models();
    let tree = explain(&engine, "model:public_llm", "edit", "user:stranger");
    assert_eq!(tree.result, Verdict::Denied);
    assert_eq!(
        tree.expression.as_deref(),
        Some("contributor | project.contributor")
    );
    let reasons: Vec<(ExplainKind, Option<Reason>)> = tree
        .children
        .iter()
        .map(|it| (it.kind, it.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            (ExplainKind::Relation, Some(Reason::NoRelationship)),
            (ExplainKind::Arrow, Some(Reason::NoRelatedObjects)),
        ]
    );
    assert!(nodes(&tree).iter().all(|it| it.result == Verdict::Denied));
}

#[test]
fn issue15_a_nested_group_grant_is_a_chain_of_relationships_with_revisions() {
    let engine = models();
    let tree = explain(&engine, "model:team_model", "edit", "user:gina");
    assert_eq!(tree.result, Verdict::Granted);
    let chain: Vec<&str> = nodes(&tree)
        .into_iter()
        .filter_map(|it| it.relationship.as_deref())
        .collect();
    assert_eq!(
        chain,
        [
            "model:team_model#project@project:vision",
            "project:vision#contributor@group:vision_team#member",
            "group:vision_team#member@user:gina",
        ]
    );
    for node in nodes(&tree) {
        assert_eq!(node.result, Verdict::Granted, "{node:?}");
    }
}

fn engine_with(schema: &str, relationships: &[&str]) -> Arbiter {
    let engine = Arbiter::in_memory(engine::Config::default()).unwrap();
    engine.write_schema(schema).unwrap();
    let mut parsed = relationships.iter().map(|it| it.parse().unwrap());
    engine.import(&mut parsed).unwrap();
    engine
}

#[test]
fn issue15_an_exclusion_names_the_relationship_that_excludes() {
    let engine = engine_with(
        support::SCHEMA,
        &["document:1#viewer@user:*", "document:1#banned@user:bob"],
    );
    let tree = explain(&engine, "document:1", "view", "user:bob");
    assert_eq!(tree.result, Verdict::Denied);
    assert_eq!(tree.reason, Some(Reason::Excluded));
    assert_eq!(tree.children.len(), 2, "the base and the subtracted side");
    assert_eq!(tree.children[0].result, Verdict::Granted);
    let excluded = &tree.children[1];
    assert_eq!(excluded.result, Verdict::Granted);
    assert_eq!(
        excluded.children[0].relationship.as_deref(),
        Some("document:1#banned@user:bob")
    );
    assert_eq!(excluded.children[0].reason, Some(Reason::Direct));
}

#[test]
fn issue15_a_cycle_of_groups_is_explained_as_a_cycle() {
    let schema = "definition user {}
        definition group {
            relation member: user | group#member | group#everyone
            permission everyone = member
        }
        definition doc { relation viewer: group#everyone  permission view = viewer }";
    let engine = engine_with(
        schema,
        &[
            "doc:1#viewer@group:a#everyone",
            "group:a#member@group:b#everyone",
            "group:b#member@group:a#everyone",
        ],
    );
    let tree = explain(&engine, "doc:1", "view", "user:zed");
    assert_eq!(tree.result, Verdict::Denied);
    let reasons: Vec<Reason> = nodes(&tree).iter().filter_map(|it| it.reason).collect();
    assert!(reasons.contains(&Reason::Cycle), "{tree:#?}");
}

#[test]
fn issue15_a_huge_denial_is_cut_at_the_node_limit() {
    let many: Vec<String> = (0..3_000)
        .map(|i| format!("group:g{i}#member@group:h{i}#member"))
        .chain((0..3_000).map(|i| format!("group:top#member@group:g{i}#member")))
        .chain(std::iter::once("doc:1#viewer@group:top#member".to_string()))
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let schema = "definition user {}
        definition group { relation member: user | group#member }
        definition doc { relation viewer: group#member  permission view = viewer }";
    let engine = engine_with(schema, &refs);
    let request = CheckRequest {
        resource: "doc:1".parse().unwrap(),
        permission: "view".to_string(),
        subject: "user:nobody".parse().unwrap(),
        context: None,
    };
    let (decision, explanation) = engine.check_explained(&request, Consistency::Full).unwrap();
    assert!(!decision.allowed);
    assert_eq!(explanation.result, ExplainedAnswer::NoPermission);
    assert!(explanation.truncated);
    assert!(
        explanation.nodes <= EXPLAIN_NODE_LIMIT + 4,
        "{}",
        explanation.nodes
    );
    assert!(
        explanation.nodes >= EXPLAIN_NODE_LIMIT / 2,
        "{}",
        explanation.nodes
    );
    assert_eq!(explanation.nodes, nodes(&explanation.tree).len());
}

#[test]
fn issue15_explain_fails_as_check_fails() {
    let engine = models();
    let request = CheckRequest {
        resource: "model:public_llm".parse().unwrap(),
        permission: "delete".to_string(),
        subject: "user:x".parse().unwrap(),
        context: None,
    };
    let err = engine
        .check_explained(&request, Consistency::Full)
        .unwrap_err();
    assert_eq!(err.code(), "invalid_argument");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue15_http_check_explains_only_when_asked() {
    let server = support::start_with_schema(ServerConfig::default()).await;
    let revision = server
        .touch(&[
            "document:1#viewer@user:ann",
            "document:1#viewer@user:bob",
            "document:1#banned@user:bob",
        ])
        .await;
    let (status, body) = server
        .post(
            "/v1/check",
            json!({"resource": "document:1", "permission": "view", "subject": "user:ann"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("explanation").is_none(), "{body}");

    let (status, body) = server
        .post(
            "/v1/check",
            json!({"resource": "document:1", "permission": "view", "subject": "user:ann", "explain": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["allowed"], true);
    let explanation = &body["explanation"];
    assert_eq!(explanation["result"], "has_permission");
    assert_eq!(explanation["truncated"], false);
    let tree = &explanation["tree"];
    assert_eq!(tree["kind"], "permission");
    assert_eq!(tree["resource"], "document:1");
    assert_eq!(tree["relation"], "view");
    assert_eq!(tree["expression"], "(viewer | edit) - banned");
    assert_eq!(tree["result"], "granted");
    let text = explanation.to_string();
    assert!(
        text.contains(r#""relationship":"document:1#viewer@user:ann""#),
        "{text}"
    );
    assert!(
        text.contains(&format!(r#""written_at":{revision}"#)),
        "{text}"
    );

    let (status, body) = server
        .post(
            "/v1/check/bulk",
            json!({"items": [
                {"resource": "document:1", "permission": "view", "subject": "user:bob", "explain": true},
                {"resource": "document:1", "permission": "view", "subject": "user:ann"},
                {"resource": "document:1", "permission": "nope", "subject": "user:ann", "explain": true},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["allowed"], false);
    assert_eq!(results[0]["explanation"]["tree"]["reason"], "excluded");
    assert_eq!(results[1]["allowed"], true);
    assert!(results[1].get("explanation").is_none());
    assert_eq!(results[2]["error"]["code"], "invalid_argument");
    assert!(results[2].get("allowed").is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue15_cli_check_explain_prints_an_indented_tree() {
    let server = support::start_with_schema(ServerConfig::default()).await;
    server.touch(&["document:1#banned@user:bob"]).await;
    let url = server.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_arbiter"))
            .args(["check", "document:1", "view", "user:bob", "--explain"])
            .args(["--server", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "denied", "{text}");
    assert_eq!(lines[1], "no permission", "{text}");
    assert!(
        lines[2].starts_with("  document:1#view = (viewer | edit) - banned: denied"),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("    ") && line.contains("document:1#viewer: denied")),
        "{text}"
    );
    server.stop().await;
}

#[test]
fn issue15_the_explanation_json_round_trips() {
    let engine = models();
    let request = CheckRequest {
        resource: "model:private_cv".parse().unwrap(),
        permission: "edit".to_string(),
        subject: "user:frank".parse().unwrap(),
        context: None,
    };
    let (_, explanation) = engine.check_explained(&request, Consistency::Full).unwrap();
    let value: Value = serde_json::to_value(&explanation).unwrap();
    assert_eq!(value["result"], "no_permission");
    let back: arbiter::engine::Explanation = serde_json::from_value(value).unwrap();
    assert_eq!(back, explanation);
}
