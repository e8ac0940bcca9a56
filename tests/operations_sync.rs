//! The engine's sync (issue 16, permissions as code), in process: one revision for the
//! whole change (schema, additions and deletions, larger than a store chunk), what a sync
//! owns by default and when the file narrows it, refusals that change nothing, a dry run,
//! and a sync that changes nothing writing no revision.

use arbiter::engine::{self, Arbiter, CheckRequest, Consistency, ReadRequest, SyncRequest};
use arbiter::model::Relationship;
use arbiter::store::{RelationshipFilter, Update, UpdateOp};

const SCHEMA: &str = "definition user {}
definition app {
    relation reader: user
    relation writer: user
    permission read = reader + writer
    permission write = writer
}
definition team { relation member: user }";

fn rels(texts: &[String]) -> Vec<Relationship> {
    texts.iter().map(|it| it.parse().unwrap()).collect()
}

fn request(relationships: Vec<Relationship>, scope: &[&str]) -> SyncRequest {
    SyncRequest {
        schema: Some(SCHEMA.to_string()),
        resource_types: scope.iter().map(ToString::to_string).collect(),
        relationships,
    }
}

fn live(engine: &Arbiter, resource_type: &str) -> Vec<String> {
    let filter = RelationshipFilter {
        resource_type: Some(resource_type.to_string()),
        ..Default::default()
    };
    let page = engine
        .read(&ReadRequest::new(filter.clone()), Consistency::Full)
        .unwrap();
    page.relationships.iter().map(ToString::to_string).collect()
}

fn allowed(engine: &Arbiter, resource: &str, permission: &str, subject: &str) -> bool {
    let request = CheckRequest {
        resource: resource.parse().unwrap(),
        permission: permission.to_string(),
        subject: subject.parse().unwrap(),
        context: None,
    };
    engine.check(&request, Consistency::Full).unwrap().allowed
}

#[test]
fn issue16_sync_lands_in_one_revision_even_when_larger_than_a_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arbiter::open(dir.path(), engine::Config::default()).unwrap();
    let first: Vec<String> = (0..600)
        .map(|n| format!("app:a{n}#reader@user:u{n}"))
        .collect();
    let report = engine
        .sync(&request(rels(&first), &["app", "team"]), false)
        .unwrap();
    assert_eq!(report.revision, Some(engine.head()));
    assert!(report.schema_changed);
    assert_eq!(report.added.len(), 600);
    let before = engine.head();

    // Keep 300, drop 300, add 500 writers: 800 changes in one revision.
    let mut second: Vec<String> = first[..300].to_vec();
    second.extend((0..500).map(|n| format!("app:a{n}#writer@user:w{n}")));
    let report = engine
        .sync(&request(rels(&second), &["app", "team"]), false)
        .unwrap();
    assert_eq!(report.revision.map(|it| it.0), Some(before.0 + 1));
    assert!(!report.schema_changed);
    assert_eq!((report.added.len(), report.removed.len()), (500, 300));
    assert_eq!(live(&engine, "app").len(), 800);
    assert!(allowed(&engine, "app:a0", "write", "user:w0"));
    assert!(!allowed(&engine, "app:a400", "read", "user:u400"));
    let changes = engine.changes_since(before, 0).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].changes.len(), 800);

    // The same file again changes nothing and writes no revision.
    let report = engine
        .sync(&request(rels(&second), &["app", "team"]), false)
        .unwrap();
    assert!(report.is_unchanged());
    assert_eq!(report.revision, None);
    assert_eq!(engine.head().0, before.0 + 1);
    drop(engine);
    let reopened = Arbiter::open(dir.path(), engine::Config::default()).unwrap();
    assert_eq!(live(&reopened, "app").len(), 800);
}

#[test]
fn issue16_resync_without_a_line_revokes_it_and_narrowed_scope_keeps_other_types() {
    let engine = Arbiter::in_memory(engine::Config::default()).unwrap();
    let desired = vec![
        "app:billing#reader@user:ana".to_string(),
        "app:billing#writer@user:bo".to_string(),
    ];
    engine
        .sync(&request(rels(&desired), &["app", "team"]), false)
        .unwrap();
    // Someone adds a team membership by hand; an app-only sync must not touch it.
    let team: Relationship = "team:ops#member@user:cy".parse().unwrap();
    engine
        .write(
            &[Update {
                op: UpdateOp::Touch,
                relationship: team.clone(),
            }],
            &[],
        )
        .unwrap()
        .unwrap();
    let report = engine
        .sync(&request(rels(&desired[1..]), &["app"]), false)
        .unwrap();
    assert_eq!(report.removed, rels(&desired[..1]));
    assert!(!allowed(&engine, "app:billing", "read", "user:ana"));
    assert!(allowed(&engine, "app:billing", "read", "user:bo"));
    assert_eq!(live(&engine, "team"), [team.to_string()]);
    // Owning every type again deletes the hand-made membership.
    let report = engine
        .sync(&request(rels(&desired[1..]), &["app", "team"]), false)
        .unwrap();
    assert_eq!(report.removed, [team]);
}

#[test]
fn issue16_refused_syncs_change_nothing() {
    let engine = Arbiter::in_memory(engine::Config::default()).unwrap();
    let desired = vec!["app:a#reader@user:x".to_string()];
    engine
        .sync(&request(rels(&desired), &["app"]), false)
        .unwrap();
    engine
        .write(
            &[Update {
                op: UpdateOp::Touch,
                relationship: "team:t#member@user:x".parse().unwrap(),
            }],
            &[],
        )
        .unwrap()
        .unwrap();
    let head = engine.head();
    let cases: Vec<(SyncRequest, &str)> = vec![
        (
            request(rels(&["team:t#member@user:y".to_string()]), &["app"]),
            "outside the sync scope",
        ),
        (
            request(rels(&["app:a#owner@user:y".to_string()]), &["app"]),
            "owner",
        ),
        (request(Vec::new(), &["nope"]), "`nope`"),
        (
            SyncRequest {
                schema: Some(
                    "definition user {}\ndefinition app { relation reader: user }".to_string(),
                ),
                resource_types: vec!["app".to_string()],
                relationships: Vec::new(),
            },
            "outside the sync scope, so the sync keeps it",
        ),
        (
            SyncRequest {
                schema: Some("definition user {".to_string()),
                resource_types: vec!["app".to_string()],
                relationships: Vec::new(),
            },
            "invalid schema",
        ),
    ];
    for (bad, expected) in cases {
        let err = engine.sync(&bad, false).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}\n  expected: {expected}");
        assert_eq!(engine.head(), head, "a refused sync wrote: {err}");
    }
    assert_eq!(live(&engine, "app"), desired);
}

#[test]
fn issue16_dry_run_reports_without_writing() {
    let engine = Arbiter::in_memory(engine::Config::default()).unwrap();
    engine
        .sync(
            &request(rels(&["app:a#reader@user:x".to_string()]), &["app"]),
            false,
        )
        .unwrap();
    let head = engine.head();
    let report = engine
        .sync(
            &request(rels(&["app:a#writer@user:x".to_string()]), &["app"]),
            true,
        )
        .unwrap();
    assert_eq!(report.revision, None);
    assert_eq!(report.added, rels(&["app:a#writer@user:x".to_string()]));
    assert_eq!(report.removed, rels(&["app:a#reader@user:x".to_string()]));
    assert_eq!(engine.head(), head);
    assert_eq!(live(&engine, "app"), ["app:a#reader@user:x"]);
}
