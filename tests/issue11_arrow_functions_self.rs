//! Issue 11: `.any()` / `.all()` arrows and `self`, beyond the answers pinned in
//! `tests/engine/arrow_functions_and_self.yaml` (whose answers SpiceDB gave): on that
//! file's data, check, lookup resources, lookup subjects, expand and explain must agree
//! with each other on every question its relationships allow; the schema round-trips
//! through the formatter; `self` needs `use self`.

mod consistency;

use std::path::Path;

use arbiter::engine::{CheckRequest, Consistency, ExplainKind, ExplainedAnswer, Reason, Verdict};
use arbiter::model::{ObjectRef, SubjectRef};
use arbiter::schema::{format, parse_and_compile};
use arbiter::validation::{Session, ValidationFile, parse};

/// The schema and relationships of the engine case file.
fn case() -> (String, String) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engine/arrow_functions_and_self.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let value: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
    let field = |name: &str| value[name].as_str().unwrap().to_string();
    (field("schema"), field("relationships"))
}

fn session() -> (Session, Vec<arbiter::model::Relationship>) {
    let (schema, relationships) = case();
    let mut doc = yaml_serde::Mapping::new();
    doc.insert("schema".into(), schema.into());
    doc.insert("relationships".into(), relationships.clone().into());
    let text = yaml_serde::to_string(&doc).unwrap();
    let file = ValidationFile::parse(Path::new("issue11.yaml"), &text).unwrap();
    let mut session = Session::new().unwrap();
    let findings = session.load(&file);
    assert!(findings.is_empty(), "{findings:?}");
    let relationships = relationships
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| parse::relationship(line).unwrap())
        .collect();
    (session, relationships)
}

#[test]
fn issue11_check_lookups_and_expand_agree_on_all_arrows_and_self() {
    let (session, relationships) = session();
    let (stats, problems) = consistency::cross_check(&session, &relationships, 20);
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(stats.n_checks > 500, "{stats:?}");
}

#[test]
fn issue11_explain_agrees_with_check_on_all_arrows_and_self() {
    let (session, relationships) = session();
    let engine = session.engine();
    let schema = engine.schema().unwrap();
    let mut objects: Vec<ObjectRef> = Vec::new();
    let mut subjects: Vec<SubjectRef> = Vec::new();
    for rel in &relationships {
        objects.push(rel.resource.clone());
        objects.push(rel.subject.object.clone());
        subjects.push(rel.subject.clone());
        subjects.push(SubjectRef {
            object: rel.resource.clone(),
            relation: None,
        });
    }
    subjects.push("user:*".parse().unwrap());
    objects.sort();
    objects.dedup();
    subjects.sort();
    subjects.dedup();
    let mut n_compared = 0;
    for resource in &objects {
        let definition = schema.definition(&resource.object_type).unwrap();
        for rel in &definition.relations {
            let permission = schema.relation_by_id(*rel).name.clone();
            for subject in &subjects {
                let request = CheckRequest {
                    resource: resource.clone(),
                    permission: permission.clone(),
                    subject: subject.clone(),
                    context: None,
                };
                let checked = engine.check(&request, Consistency::Full).unwrap().allowed;
                let (decision, explanation) =
                    engine.check_explained(&request, Consistency::Full).unwrap();
                let said = explanation.result == ExplainedAnswer::HasPermission;
                let text = format!("{resource}#{permission}@{subject}");
                assert_eq!(decision.allowed, checked, "{text}");
                assert_eq!(said, checked, "{text}");
                assert_eq!(
                    explanation.tree.result == Verdict::Granted,
                    checked,
                    "{text}"
                );
                n_compared += 1;
            }
        }
    }
    assert!(n_compared > 500, "{n_compared}");
}

#[test]
fn issue11_arrow_functions_and_self_round_trip_through_the_formatter() {
    let (schema, _) = case();
    let formatted = format(&schema).unwrap();
    assert!(
        formatted.contains("permission all_team = holder.all(member_perm)"),
        "{formatted}"
    );
    assert!(
        formatted.contains("permission any_mixed = team.any(member)"),
        "{formatted}"
    );
    assert!(
        formatted.contains("permission mine = self | friend"),
        "{formatted}"
    );
    assert!(formatted.starts_with("use self\n"), "{formatted}");
    assert_eq!(format(&formatted).unwrap(), formatted);
    assert_eq!(
        parse_and_compile(&formatted).unwrap().relations,
        parse_and_compile(&schema).unwrap().relations
    );
}

#[test]
fn issue11_self_without_use_self_is_an_error_at_its_position() {
    let errors = parse_and_compile(
        "definition user {\n    relation friend: user\n    permission mine = friend + self\n}",
    )
    .unwrap_err();
    let messages: Vec<String> = errors.errors().iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        ["3:32: `self` needs `use self` at the top of the schema"]
    );
}

#[test]
fn issue11_all_arrow_errors_name_the_all_arrow() {
    let cases = [
        (
            "definition user { relation abc: user }\ndefinition doc {\n relation owner: user | user:*\n permission view = owner.all(abc)\n}",
            "4:20: arrow `owner.all(abc)`: relation `owner` admits the wildcard `user:*`, and an arrow cannot walk a wildcard",
        ),
        (
            "definition user {}\ndefinition doc {\n relation owner: user\n permission view = owner.all(view)\n}",
            "4:30: arrow `owner.all(view)`: none of the subject types of `owner` (`user`) has a relation or permission `view`",
        ),
        (
            "definition doc {\n relation owner: doc\n permission upp = owner\n permission view = upp.all(view)\n}",
            "4:20: arrow `upp.all(view)`: `upp` is a permission, but the left side of an arrow must be a relation",
        ),
    ];
    for (text, expected) in cases {
        let errors = parse_and_compile(text).unwrap_err();
        assert_eq!(errors.errors()[0].to_string(), expected, "{text}");
    }
}

/// The explanation of `resource#permission@subject` on the case file's data.
fn explained(resource: &str, permission: &str, subject: &str) -> arbiter::engine::ExplainNode {
    let (session, _) = session();
    let request = CheckRequest {
        resource: resource.parse().unwrap(),
        permission: permission.to_string(),
        subject: subject.parse().unwrap(),
        context: None,
    };
    let (_, explanation) = session
        .engine()
        .check_explained(&request, Consistency::Full)
        .unwrap();
    explanation.tree
}

#[test]
fn issue11_explain_names_the_related_object_that_fails_an_all_arrow() {
    // r1's holders are teams a and b; ann is in a only.
    let tree = explained("resource:r1", "all_team", "user:ann");
    assert_eq!(tree.result, Verdict::Denied);
    let arrow = &tree.children[0];
    assert_eq!(arrow.kind, ExplainKind::Arrow);
    assert_eq!(arrow.expression.as_deref(), Some("holder.all(member_perm)"));
    let tried: Vec<(&str, Verdict)> = arrow
        .children
        .iter()
        .map(|it| (it.relationship.as_deref().unwrap(), it.result))
        .collect();
    assert_eq!(
        tried,
        [
            ("resource:r1#holder@team:a", Verdict::Granted),
            ("resource:r1#holder@team:b", Verdict::Denied)
        ]
    );
    let none = explained("resource:r6", "all_mixed", "user:tom");
    assert_eq!(none.children[0].reason, Some(Reason::NoRelatedObjects));
}

#[test]
fn issue11_explain_says_why_self_grants_or_not() {
    let granted = explained("user:zed", "only_self", "user:zed");
    assert_eq!(granted.result, Verdict::Granted);
    assert_eq!(granted.children[0].kind, ExplainKind::SelfRef);
    assert_eq!(granted.children[0].reason, Some(Reason::IsResource));
    let denied = explained("user:tom", "only_self", "user:tom#friend");
    assert_eq!(denied.result, Verdict::Denied);
    assert_eq!(denied.children[0].reason, Some(Reason::NotResource));
}
