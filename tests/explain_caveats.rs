//! Issue 15 item 1 with caveats and expiration: an explained check says *conditional* and
//! names the missing parameters; a denial names the caveat that was false or the
//! relationship that expired and when; a witness shows the granting relationship's
//! caveat and expiry. Through the engine, `arbiter`'s text rendering and `POST /v1/check`.

mod support;

use arbiter::engine::{
    Arbiter, CheckRequest, Config, Consistency, Context, ExplainKind, ExplainNode, ExplainedAnswer,
    Explanation, Reason, Verdict,
};
use arbiter::model::ObjectRef;
use arbiter::server::ServerConfig;
use serde_json::json;

const SCHEMA: &str = "use expiration\n\
    caveat ip_allowlist(user_ip ipaddress, cidr string) { user_ip.in_cidr(cidr) }\n\
    definition user {}\n\
    definition group { relation member: user | user with ip_allowlist }\n\
    definition doc {\n\
        relation viewer: user with ip_allowlist | user with expiration | group#member\n\
        permission view = viewer\n\
    }";

const RELATIONSHIPS: [&str; 5] = [
    r#"doc:1#viewer@user:tom[ip_allowlist:{"cidr":"10.0.0.0/8"}]"#,
    "doc:1#viewer@user:ann[expiration:2001-01-01T00:00:00Z]",
    "doc:1#viewer@user:bob[expiration:2999-01-01T00:00:00Z]",
    "doc:1#viewer@group:eng#member",
    r#"group:eng#member@user:eve[ip_allowlist:{"cidr":"192.168.0.0/16"}]"#,
];

fn engine() -> Arbiter {
    let engine = Arbiter::in_memory(Config::default()).unwrap();
    engine.write_schema(SCHEMA).unwrap();
    support::touch(&engine, &RELATIONSHIPS);
    engine
}

fn explain(engine: &Arbiter, user: &str, ip: Option<&str>) -> Explanation {
    let context: Option<Context> = ip.map(|ip| {
        let mut context = Context::new();
        context.insert("user_ip".to_string(), json!(ip));
        context
    });
    let request = CheckRequest {
        resource: ObjectRef::new("doc", "1").unwrap(),
        permission: "view".to_string(),
        subject: format!("user:{user}").parse().unwrap(),
        context,
    };
    let (decision, explanation) = engine.check_explained(&request, Consistency::Full).unwrap();
    // The explanation's answer is always the check's.
    let checked = engine.check(&request, Consistency::Full).unwrap();
    assert_eq!(decision.permissionship, checked.permissionship);
    assert_eq!(decision.missing_context, explanation.missing_context);
    explanation
}

/// Every relationship node of the tree, depth first.
fn relationships(node: &ExplainNode) -> Vec<&ExplainNode> {
    let mut out = Vec::new();
    if node.kind == ExplainKind::Relationship {
        out.push(node);
    }
    for child in &node.children {
        out.extend(relationships(child));
    }
    out
}

fn relationship<'a>(explanation: &'a Explanation, text: &str) -> &'a ExplainNode {
    relationships(&explanation.tree)
        .into_iter()
        .find(|it| it.relationship.as_deref() == Some(text))
        .unwrap_or_else(|| panic!("no relationship `{text}` in {explanation:#?}"))
}

#[test]
fn issue15_conditional_check_is_explained_as_conditional_naming_the_parameter() {
    let explanation = explain(&engine(), "tom", None);
    assert_eq!(explanation.result, ExplainedAnswer::ConditionalPermission);
    assert_eq!(explanation.missing_context, ["user_ip"]);
    assert_eq!(explanation.tree.result, Verdict::Conditional);
    let tom = relationship(&explanation, RELATIONSHIPS[0]);
    assert_eq!(tom.result, Verdict::Conditional);
    assert_eq!(tom.reason, Some(Reason::MissingContext));
    assert_eq!(tom.caveat.as_deref(), Some("ip_allowlist"));
    assert_eq!(tom.missing_context, ["user_ip"]);
    let text = explanation.render();
    assert!(
        text.starts_with("conditional permission (missing user_ip)\n"),
        "{text}"
    );
    assert!(text.contains("(missing user_ip)"), "{text}");
}

#[test]
fn issue15_denial_names_the_false_caveat() {
    let explanation = explain(&engine(), "tom", Some("8.8.8.8"));
    assert_eq!(explanation.result, ExplainedAnswer::NoPermission);
    let tom = relationship(&explanation, RELATIONSHIPS[0]);
    assert_eq!(tom.result, Verdict::Denied);
    assert_eq!(tom.reason, Some(Reason::CaveatFalse));
    assert!(explanation.render().contains("its caveat is false"));
}

#[test]
fn issue15_denial_names_the_expired_relationship_and_when() {
    let explanation = explain(&engine(), "ann", None);
    assert_eq!(explanation.result, ExplainedAnswer::NoPermission);
    let ann = relationship(&explanation, RELATIONSHIPS[1]);
    assert_eq!(ann.result, Verdict::Denied);
    assert_eq!(ann.reason, Some(Reason::Expired));
    assert_eq!(ann.expires_at.as_deref(), Some("2001-01-01T00:00:00Z"));
    assert!(
        explanation
            .render()
            .contains("expired at 2001-01-01T00:00:00Z"),
        "{}",
        explanation.render()
    );
}

#[test]
fn issue15_witness_shows_the_caveat_and_the_expiry_of_what_grants() {
    let engine = engine();
    let explanation = explain(&engine, "tom", Some("10.1.2.3"));
    assert_eq!(explanation.result, ExplainedAnswer::HasPermission);
    let tom = relationship(&explanation, RELATIONSHIPS[0]);
    assert_eq!(
        (tom.result, tom.reason, tom.caveat.as_deref()),
        (Verdict::Granted, Some(Reason::Direct), Some("ip_allowlist"))
    );
    let explanation = explain(&engine, "bob", None);
    assert_eq!(explanation.result, ExplainedAnswer::HasPermission);
    let bob = relationship(&explanation, RELATIONSHIPS[2]);
    assert_eq!(bob.result, Verdict::Granted);
    assert_eq!(bob.expires_at.as_deref(), Some("2999-01-01T00:00:00Z"));
    // Through a subject set: the group's caveat decides, the set relationship is plain.
    let explanation = explain(&engine, "eve", Some("192.168.1.1"));
    assert_eq!(explanation.result, ExplainedAnswer::HasPermission);
    let eve = relationship(&explanation, RELATIONSHIPS[4]);
    assert_eq!(eve.result, Verdict::Granted);
}

#[tokio::test]
async fn issue15_http_explain_of_a_conditional_check_says_conditional() {
    let server = support::start(engine(), ServerConfig::default()).await;
    let (status, body) = server
        .post(
            "/v1/check",
            json!({"resource": "doc:1", "permission": "view", "subject": "user:tom", "explain": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["permissionship"], "conditional_permission", "{body}");
    assert_eq!(body["allowed"], false);
    assert_eq!(body["explanation"]["result"], "conditional_permission");
    assert_eq!(body["explanation"]["missing_context"], json!(["user_ip"]));
    assert_eq!(body["explanation"]["tree"]["result"], "conditional");
}

/// The playground's sandbox takes the Context text area's object and answers conditional
/// (it refused any context before caveats existed).
#[tokio::test]
async fn issue15_playground_check_uses_the_context() {
    let server = support::start(engine(), ServerConfig::default()).await;
    let relationships = RELATIONSHIPS.join("\n");
    for (context, permissionship) in [
        (json!({}), "conditional_permission"),
        (json!({"user_ip": "10.9.9.9"}), "has_permission"),
        (json!({"user_ip": "172.16.0.1"}), "no_permission"),
    ] {
        let (status, body) = server
            .post(
                "/v1/playground/evaluate",
                json!({
                    "action": "check",
                    "schema": SCHEMA,
                    "relationships": relationships,
                    "context": context,
                    "resource": "doc:1",
                    "permission": "view",
                    "subject": "user:tom",
                }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["permissionship"], permissionship, "{context}: {body}");
        assert_eq!(body["explanation"]["result"], permissionship, "{body}");
        if permissionship == "conditional_permission" {
            assert_eq!(body["missing_context"], json!(["user_ip"]), "{body}");
        }
    }
}

/// A caveat that fails to evaluate (`m["k"]` on a map without `k`): where the answer does
/// not need it (the exclusion's subtracted side holds), the explanation shows the branch
/// as an error, its relationship with the message; where the answer needs it, the
/// explained check fails with the check's own error; for another subject it is never
/// evaluated. Explain never changes the answer.
#[test]
fn a_failing_caveat_is_an_error_branch_or_the_checks_error() {
    let engine = Arbiter::in_memory(Config::default()).unwrap();
    engine
        .write_schema(
            "caveat cav_err(m map<int>) { m[\"k\"] == 1 }\n\
             definition user {}\n\
             definition doc {\n\
                 relation failing: user with cav_err\n\
                 relation plain: user\n\
                 permission exc = failing - plain\n\
             }",
        )
        .unwrap();
    let failing = r#"doc:1#failing@user:tom[cav_err:{"m":{}}]"#;
    support::touch(&engine, &[failing, "doc:1#plain@user:tom"]);
    let request = |permission: &str, user: &str| CheckRequest {
        resource: ObjectRef::new("doc", "1").unwrap(),
        permission: permission.to_string(),
        subject: format!("user:{user}").parse().unwrap(),
        context: None,
    };

    let (decision, explanation) = engine
        .check_explained(&request("exc", "tom"), Consistency::Full)
        .unwrap();
    assert_eq!(explanation.result, ExplainedAnswer::NoPermission);
    assert_eq!(
        decision.permissionship,
        engine
            .check(&request("exc", "tom"), Consistency::Full)
            .unwrap()
            .permissionship
    );
    assert_eq!(explanation.tree.reason, Some(Reason::Excluded));
    let base = &explanation.tree.children[0];
    assert_eq!(base.result, Verdict::Error, "{explanation:#?}");
    let node = relationship(&explanation, failing);
    assert_eq!(
        (node.result, node.reason),
        (Verdict::Error, Some(Reason::CaveatError))
    );
    let error = node.error.as_deref().unwrap_or_default();
    assert!(error.contains("no such key"), "{error}");
    let text = explanation.render();
    assert!(
        text.contains("error — its caveat failed to evaluate"),
        "{text}"
    );

    let checked = engine
        .check(&request("failing", "tom"), Consistency::Full)
        .unwrap_err();
    let explained = engine
        .check_explained(&request("failing", "tom"), Consistency::Full)
        .unwrap_err();
    assert_eq!(checked.code(), "caveat_error");
    assert_eq!(explained.to_string(), checked.to_string());

    let (_, explanation) = engine
        .check_explained(&request("failing", "ann"), Consistency::Full)
        .unwrap();
    assert_eq!(explanation.result, ExplainedAnswer::NoPermission);
}

/// Explain fails as the check fails, in the same order: a revision ahead of the head is
/// reported before a context value that does not convert, as the check reports it (the
/// context was checked before the explained check chose its revision).
#[test]
fn explain_reports_errors_in_the_order_of_the_check() {
    let engine = engine();
    let mut context = Context::new();
    context.insert("user_ip".to_string(), json!(5));
    let request = CheckRequest {
        resource: ObjectRef::new("doc", "1").unwrap(),
        permission: "view".to_string(),
        subject: "user:tom".parse().unwrap(),
        context: Some(context),
    };
    let ahead = Consistency::AtExactSnapshot {
        revision: arbiter::model::Revision(1_000),
    };
    for consistency in [Consistency::Full, ahead] {
        let checked = engine.check(&request, consistency).unwrap_err();
        let explained = engine.check_explained(&request, consistency).unwrap_err();
        assert_eq!(
            (explained.code(), explained.to_string()),
            (checked.code(), checked.to_string()),
            "{consistency:?}"
        );
    }
}
