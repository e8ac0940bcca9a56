//! Issue 14: an engine reopened from the index image the store keeps answers exactly as
//! the engine that saved it — whether the image is current, older than the store (the
//! change log since it is replayed), damaged, or absent. Checked on every check of a
//! grid and every lookup, with caveated, expiring, wildcard and nested tuples.

use std::path::Path;

#[path = "support/pg.rs"]
mod pg;

use arbiter::engine::{Arbiter, CheckRequest, Config, Consistency, LookupResourcesRequest};
use arbiter::model::{Revision, SubjectRef};
use arbiter::store::{PgStore, SledConfig, SledStore, Store, Update, UpdateOp};

const SCHEMA: &str = r#"
use expiration

caveat has_tier(tier int) {
  tier >= 2
}

definition user {}

definition group {
  relation member: user | user with expiration | group#member
}

definition doc {
  relation viewer: user | user:* | group#member | user with has_tier
  relation owner: user
  permission view = viewer + owner
  permission owner_view = owner & viewer
}
"#;

/// Written before the image.
const BEFORE: &[&str] = &[
    "group:eng#member@user:alice",
    "group:eng#member@group:ops#member",
    "group:ops#member@user:bob",
    "group:ops#member@user:carol[expiration:2300-01-01T00:00:00Z]",
    "group:ops#member@user:dave[expiration:2001-01-01T00:00:00Z]",
    "doc:1#viewer@group:eng#member",
    "doc:1#owner@user:erin",
    "doc:2#viewer@user:*",
    "doc:3#viewer@user:frank[has_tier]",
    "doc:3#owner@user:frank",
    "doc:4#viewer@user:alice",
    "doc:4#owner@user:alice",
];

/// Written after the image, or before it, depending on the case.
const AFTER_TOUCH: &[&str] = &[
    "group:ops#member@user:gina",
    "doc:5#viewer@group:ops#member",
    "doc:1#owner@user:bob",
];
const AFTER_DELETE: &[&str] = &["group:eng#member@user:alice", "doc:2#viewer@user:*"];

const USERS: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "gina", "nobody",
];
const DOCS: &[&str] = &["1", "2", "3", "4", "5"];
const PERMISSIONS: &[&str] = &["view", "owner_view", "viewer"];

fn updates(op: UpdateOp, texts: &[&str]) -> Vec<Update> {
    texts
        .iter()
        .map(|text| Update {
            op,
            relationship: text.parse().unwrap(),
        })
        .collect()
}

/// Every answer of the grid: checks (with their permissionship) and lookups.
fn answers(engine: &Arbiter) -> Vec<String> {
    let mut res = Vec::new();
    for user in USERS {
        let subject: SubjectRef = format!("user:{user}").parse().unwrap();
        for permission in PERMISSIONS {
            for doc in DOCS {
                let request = CheckRequest::new(
                    format!("doc:{doc}").parse().unwrap(),
                    *permission,
                    subject.clone(),
                );
                let decision = engine.check(&request, Consistency::Full).unwrap();
                res.push(format!(
                    "doc:{doc}#{permission}@user:{user} {:?}",
                    decision.permissionship
                ));
            }
            let lookup = LookupResourcesRequest::new("doc", *permission, subject.clone());
            let page = engine.lookup_resources(&lookup, Consistency::Full).unwrap();
            let mut found: Vec<String> = page.resources;
            found.extend(page.conditional.iter().map(|it| format!("{it:?}")));
            found.sort();
            res.push(format!("lookup doc#{permission}@user:{user} {found:?}"));
        }
    }
    res
}

enum Case {
    /// The image is saved after every write.
    Current,
    /// The image is saved before the later writes: they come from the change log.
    Older,
    /// The store keeps bytes that are no image.
    Damaged,
    /// No image was ever saved.
    Absent,
}

fn run(case: Case, path: &Path) {
    let expected = {
        let engine = Arbiter::open(path, Config::default()).unwrap();
        engine.write_schema(SCHEMA).unwrap();
        let written = engine
            .write(&updates(UpdateOp::Touch, BEFORE), &[])
            .unwrap()
            .unwrap();
        if matches!(case, Case::Older) {
            assert_eq!(engine.save_index_image().unwrap(), written);
        }
        engine
            .write(&updates(UpdateOp::Touch, AFTER_TOUCH), &[])
            .unwrap()
            .unwrap();
        engine
            .write(&updates(UpdateOp::Delete, AFTER_DELETE), &[])
            .unwrap()
            .unwrap();
        if matches!(case, Case::Current) {
            assert_eq!(engine.save_index_image().unwrap(), engine.head());
        }
        engine.flush().unwrap();
        (answers(&engine), engine.head(), written)
    };
    if matches!(case, Case::Damaged) {
        let store = SledStore::open(&SledConfig::new(path)).unwrap();
        store
            .write_index_image(Revision(1), b"arbiter-index-2\nnot really")
            .unwrap();
        store.flush().unwrap();
    }
    let engine = Arbiter::open(path, Config::default()).unwrap();
    let loaded = match case {
        Case::Current => Some(expected.1),
        Case::Older => Some(expected.2),
        Case::Damaged | Case::Absent => None,
    };
    assert_eq!(engine.opened_from_image(), loaded);
    assert_eq!(engine.head(), expected.1);
    assert_eq!(answers(&engine), expected.0);
    // And once more: the image saved by the reopened engine answers the same again.
    engine.save_index_image().unwrap();
    drop(engine);
    let engine = Arbiter::open(path, Config::default()).unwrap();
    assert_eq!(engine.opened_from_image(), Some(expected.1));
    assert_eq!(answers(&engine), expected.0);
}

#[test]
fn issue14_an_engine_reopened_from_a_current_image_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    run(Case::Current, &dir.path().join("db"));
}

#[test]
fn issue14_an_older_image_is_brought_up_to_date_from_the_change_log() {
    let dir = tempfile::tempdir().unwrap();
    run(Case::Older, &dir.path().join("db"));
}

#[test]
fn issue14_a_damaged_image_is_ignored_and_the_index_built_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    run(Case::Damaged, &dir.path().join("db"));
}

#[test]
fn issue14_without_an_image_the_index_is_built_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    run(Case::Absent, &dir.path().join("db"));
}

#[test]
fn issue14_an_image_newer_than_the_store_is_ignored() {
    // The image of a database three revisions on, put into a database at revision two:
    // it cannot describe that database, and must not be loaded.
    let dir = tempfile::tempdir().unwrap();
    let (first, other) = (dir.path().join("first"), dir.path().join("other"));
    {
        let engine = Arbiter::open(&first, Config::default()).unwrap();
        engine.write_schema(SCHEMA).unwrap();
        engine
            .write(&updates(UpdateOp::Touch, &BEFORE[..6]), &[])
            .unwrap()
            .unwrap();
        engine
            .write(&updates(UpdateOp::Touch, &BEFORE[6..]), &[])
            .unwrap()
            .unwrap();
        assert_eq!(engine.save_index_image().unwrap(), Revision(3));
        engine.flush().unwrap();
    }
    let image = SledStore::open(&SledConfig::new(&first))
        .unwrap()
        .read_index_image()
        .unwrap()
        .unwrap();
    {
        let engine = Arbiter::open(&other, Config::default()).unwrap();
        engine.write_schema(SCHEMA).unwrap();
        let zoe = updates(UpdateOp::Touch, &["doc:9#owner@user:zoe"]);
        assert_eq!(engine.write(&zoe, &[]).unwrap().unwrap(), Revision(2));
        engine.flush().unwrap();
    }
    {
        let store = SledStore::open(&SledConfig::new(&other)).unwrap();
        store.write_index_image(Revision(3), &image).unwrap();
        store.flush().unwrap();
    }
    let engine = Arbiter::open(&other, Config::default()).unwrap();
    assert_eq!(engine.opened_from_image(), None);
    let allowed = |text: &str| {
        let (doc, user) = text.split_once('@').unwrap();
        let request = CheckRequest::new(doc.parse().unwrap(), "view", user.parse().unwrap());
        engine.check(&request, Consistency::Full).unwrap().allowed
    };
    assert!(allowed("doc:9@user:zoe"));
    assert!(
        !allowed("doc:4@user:alice"),
        "a tuple of the other database's image leaked in"
    );
}

#[test]
fn issue14_a_server_joining_a_postgresql_database_starts_from_the_newest_image() {
    let Some(config) = pg::fresh_config("issue14_index_image (postgresql)") else {
        return;
    };
    let first = Arbiter::with_store(
        Box::new(PgStore::open(config.clone()).unwrap()),
        Config::default(),
    )
    .unwrap();
    first.write_schema(SCHEMA).unwrap();
    let written = first
        .write(&updates(UpdateOp::Touch, BEFORE), &[])
        .unwrap()
        .unwrap();
    assert_eq!(first.save_index_image().unwrap(), written);
    first
        .write(&updates(UpdateOp::Touch, AFTER_TOUCH), &[])
        .unwrap()
        .unwrap();
    first
        .write(&updates(UpdateOp::Delete, AFTER_DELETE), &[])
        .unwrap()
        .unwrap();

    // A second server joins: the image, then the change log since it.
    let joining = Arbiter::with_store(
        Box::new(PgStore::open(config.clone()).unwrap()),
        Config::default(),
    )
    .unwrap();
    assert_eq!(joining.opened_from_image(), Some(written));
    assert_eq!(joining.head(), first.head());
    assert_eq!(answers(&joining), answers(&first));

    // The joining server saves a newer image; an older one saved later does not replace it.
    assert_eq!(joining.save_index_image().unwrap(), first.head());
    let store = PgStore::open(config.clone()).unwrap();
    store.write_index_image(Revision(1), b"older").unwrap();
    let third = Arbiter::with_store(Box::new(store), Config::default()).unwrap();
    assert_eq!(third.opened_from_image(), Some(first.head()));
    assert_eq!(answers(&third), answers(&first));
}
