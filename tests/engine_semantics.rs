//! Table-driven semantics tests of the engine: every `tests/engine/*.yaml` file holds a
//! schema, relationships and expected answers, run by the one [`run_file`] helper.
//!
//! Format (a superset of SpiceDB's validation-file assertions):
//! `schema`, `relationships` (one per line, `//` comments allowed), `assertTrue` /
//! `assertFalse` (`resource#permission@subject`), `assertError` (`CHECK: code`, the
//! engine error code), `lookupResources` (`type#permission@subject` → sorted ids),
//! `lookupSubjects` (`resource#permission@subject_type` → `subjects` and `excluded`); a
//! lookup may expect `{error: code}` instead. A check or lookup may end in
//! ` with {JSON}`, its request context (SpiceDB's validation-file spelling).
//! Every check also runs in one bulk check, which must agree, and is asked again with its
//! explanation, which must give the same answer or the same error (explain never changes
//! the answer; docs/ARCHITECTURE.md).

use std::collections::BTreeMap;
use std::path::Path;

use arbiter::engine::{
    Arbiter, CheckRequest, Config, Consistency, Context, EngineError, ExplainedAnswer,
    LookupResourcesRequest, LookupSubjectsRequest, Permissionship, Verdict,
};
use arbiter::model::{ObjectRef, Relationship, SubjectRef};
use arbiter::store::{Update, UpdateOp};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Case {
    schema: String,
    #[serde(default)]
    relationships: String,
    #[serde(default)]
    depth_limit: Option<u32>,
    #[serde(default)]
    assert_true: Vec<String>,
    #[serde(default)]
    assert_false: Vec<String>,
    #[serde(default)]
    assert_error: Vec<String>,
    #[serde(default)]
    lookup_resources: BTreeMap<String, Outcome<Vec<String>>>,
    #[serde(default)]
    lookup_subjects: BTreeMap<String, Outcome<Subjects>>,
}

/// A lookup's expected answer, or `{error: code}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Outcome<T> {
    Error { error: String },
    Answer(T),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Subjects {
    subjects: Vec<String>,
    #[serde(default)]
    excluded: Vec<String>,
}

/// `QUERY with {JSON}` → the query and its context.
fn split_context(text: &str) -> (&str, Option<Context>) {
    match text.split_once(" with ") {
        Some((query, json)) => {
            let context =
                serde_json::from_str(json).unwrap_or_else(|err| panic!("`{text}`: {err}"));
            (query, Some(context))
        }
        None => (text, None),
    }
}

/// A lookup's answer with the one expected, or `None` once an expected error was seen;
/// any other outcome fails the test.
fn answered<'e, T, U>(
    query: &str,
    res: Result<T, EngineError>,
    expected: &'e Outcome<U>,
) -> Option<(T, &'e U)> {
    match (res, expected) {
        (Ok(answer), Outcome::Answer(want)) => Some((answer, want)),
        (Err(err), Outcome::Error { error }) => {
            assert_eq!(err.code(), error, "{query}: {err}");
            None
        }
        (Ok(_), Outcome::Error { error }) => panic!("{query}: expected error `{error}`"),
        (Err(err), Outcome::Answer(_)) => panic!("{query}: {err}"),
    }
}

/// `resource#permission@subject[ with {JSON}]` → a check request.
fn parse_check(text: &str) -> CheckRequest {
    let (text, context) = split_context(text);
    let (resource, subject) = text.split_once('@').unwrap_or_else(|| panic!("`{text}`"));
    let (resource, permission) = resource
        .split_once('#')
        .unwrap_or_else(|| panic!("`{text}`"));
    CheckRequest {
        resource: resource
            .parse()
            .unwrap_or_else(|err| panic!("`{text}`: {err}")),
        permission: permission.to_string(),
        subject: subject
            .parse()
            .unwrap_or_else(|err| panic!("`{text}`: {err}")),
        context,
    }
}

/// Asks `request` plain and explained: the explanation's answer (its `result`, the root's
/// verdict, `missing_context`) must be the plain check's, and an error the same error.
fn assert_explained_agrees(engine: &Arbiter, what: &str, request: &CheckRequest) {
    let plain = engine
        .check(request, Consistency::Full)
        .map(|it| (it.permissionship, it.missing_context))
        .map_err(|err| (err.code(), err.to_string()));
    let explained = engine
        .check_explained(request, Consistency::Full)
        .map(|(decision, explanation)| {
            let said = match explanation.result {
                ExplainedAnswer::HasPermission => Permissionship::HasPermission,
                ExplainedAnswer::NoPermission => Permissionship::NoPermission,
                ExplainedAnswer::ConditionalPermission => Permissionship::ConditionalPermission,
            };
            let root = match explanation.tree.result {
                Verdict::Granted => Permissionship::HasPermission,
                Verdict::Conditional => Permissionship::ConditionalPermission,
                Verdict::Denied | Verdict::Undefined => Permissionship::NoPermission,
                // An error is only ever a branch's verdict: where the answer needs it, the
                // explained check fails.
                other => panic!("{what}: the root of an answered explanation is {other:?}"),
            };
            assert_eq!(root, said, "{what}: the explanation's root verdict");
            assert_eq!(
                (decision.permissionship, &decision.missing_context),
                (said, &explanation.missing_context),
                "{what}: the explained decision and its explanation"
            );
            (said, explanation.missing_context)
        })
        .map_err(|err| (err.code(), err.to_string()));
    assert_eq!(explained, plain, "{what}: explained vs plain");
}

fn run_file(path: &Path) -> usize {
    let name = path.display();
    let text = std::fs::read_to_string(path).unwrap();
    let case: Case = yaml_serde::from_str(&text).unwrap_or_else(|err| panic!("{name}: {err}"));
    let mut config = Config::default();
    if let Some(limit) = case.depth_limit {
        config.depth_limit = limit;
    }
    let engine = Arbiter::in_memory(config).unwrap();
    engine
        .write_schema(&case.schema)
        .unwrap_or_else(|err| panic!("{name}: schema: {err}"));
    let updates: Vec<Update> = case
        .relationships
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("//"))
        .map(|line| Update {
            op: UpdateOp::Touch,
            relationship: line
                .parse::<Relationship>()
                .unwrap_or_else(|err| panic!("{name}: `{line}`: {err}")),
        })
        .collect();
    match engine.write(&updates, &[]) {
        Ok(Ok(_)) => {}
        Ok(Err(rejection)) => panic!("{name}: write rejected: {rejection}"),
        Err(err) => panic!("{name}: write: {err}"),
    }
    let mut n_assertions = 0;
    let mut bulk = Vec::new();
    for (expected, list) in [(true, &case.assert_true), (false, &case.assert_false)] {
        for check in list {
            let request = parse_check(check);
            let decision = engine
                .check(&request, Consistency::Full)
                .unwrap_or_else(|err| panic!("{name}: {check}: {err}"));
            assert_eq!(decision.allowed, expected, "{name}: {check}");
            assert_explained_agrees(&engine, &format!("{name}: {check}"), &request);
            bulk.push((request, Ok(expected)));
            n_assertions += 1;
        }
    }
    for item in &case.assert_error {
        let (check, code) = item.rsplit_once(": ").unwrap_or_else(|| panic!("`{item}`"));
        let request = parse_check(check);
        match engine.check(&request, Consistency::Full) {
            Ok(decision) => panic!("{name}: {check}: expected error `{code}`, got {decision:?}"),
            Err(err) => assert_eq!(err.code(), code, "{name}: {check}: {err}"),
        }
        assert_explained_agrees(&engine, &format!("{name}: {check}"), &request);
        bulk.push((request, Err(code.to_string())));
        n_assertions += 1;
    }
    let requests: Vec<CheckRequest> = bulk.iter().map(|(request, _)| request.clone()).collect();
    let answers = engine.check_bulk(&requests, Consistency::Full).unwrap();
    for ((request, expected), got) in bulk.iter().zip(&answers.results) {
        match (expected, got) {
            (Ok(want), Ok(got)) => assert_eq!(*want, got.allowed(), "{name}: bulk {request:?}"),
            (Err(code), Err(err)) => assert_eq!(code, err.code(), "{name}: bulk {request:?}"),
            _ => panic!("{name}: bulk {request:?}: expected {expected:?}, got {got:?}"),
        }
    }
    for (query, expected) in &case.lookup_resources {
        n_assertions += 1;
        let (target, context) = split_context(query);
        let (target, subject) = target.split_once('@').unwrap();
        let (resource_type, permission) = target.split_once('#').unwrap();
        let subject: SubjectRef = subject.parse().unwrap();
        let request = LookupResourcesRequest {
            context,
            ..LookupResourcesRequest::new(resource_type, permission, subject)
        };
        let res = engine.lookup_resources(&request, Consistency::Full);
        let Some((mut page, expected)) = answered(&format!("{name}: {query}"), res, expected)
        else {
            continue;
        };
        // Walk order, not sorted: compared as sorted lists (no duplicate).
        page.resources.sort();
        let mut expected = expected.clone();
        expected.sort();
        assert_eq!(page.resources, expected, "{name}: lookup resources {query}");
    }
    for (query, expected) in &case.lookup_subjects {
        n_assertions += 1;
        let (target, context) = split_context(query);
        let (target, subject_type) = target.split_once('@').unwrap();
        let (resource, permission) = target.split_once('#').unwrap();
        let resource: ObjectRef = resource.parse().unwrap();
        let request = LookupSubjectsRequest {
            context,
            ..LookupSubjectsRequest::new(resource, permission, subject_type)
        };
        let res = engine.lookup_subjects(&request, Consistency::Full);
        let Some((mut answer, expected)) = answered(&format!("{name}: {query}"), res, expected)
        else {
            continue;
        };
        // Walk order, not sorted (sorted with a wildcard grant): compared as sorted lists.
        answer.subjects.sort();
        let mut subjects = expected.subjects.clone();
        subjects.sort();
        assert_eq!(answer.subjects, subjects, "{name}: lookup subjects {query}");
        assert_eq!(
            answer.excluded, expected.excluded,
            "{name}: excluded {query}"
        );
    }
    assert!(n_assertions > 0, "{name} asserts nothing");
    n_assertions
}

#[test]
fn semantics_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engine");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    let total: usize = paths.iter().map(|path| run_file(path)).sum();
    eprintln!("{} files, {total} assertions", paths.len());
}
