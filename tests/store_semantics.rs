//! The `Store` contract, run against both implementations (sled and the memory model):
//! MVCC reads, atomicity, preconditions, create-on-existing, delete by filter, paging,
//! forward and reverse reads, the change log, revision bounds and garbage collection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arbiter::model::{ObjectRef, Relationship, Revision, SubjectRef};
use arbiter::store::{
    CHUNK_SIZE, ChangeOp, MAX_WRITE_UPDATES, MemoryStore, Precondition, PreconditionOp,
    RelationshipFilter, SledStore, Store, StoreError, Update, UpdateOp, WriteRejection,
};

#[path = "support/pg.rs"]
mod pg;

fn rel(text: &str) -> Relationship {
    text.parse()
        .unwrap_or_else(|err| panic!("bad test relationship {text}: {err}"))
}

fn update(op: UpdateOp, text: &str) -> Update {
    Update {
        op,
        relationship: rel(text),
    }
}

fn touch(text: &str) -> Update {
    update(UpdateOp::Touch, text)
}

/// Runs `test` against a fresh store of each kind (PostgreSQL when `ARBITER_TEST_PG`
/// names a database; a loud skip otherwise).
fn each_store(test: impl Fn(&dyn Store)) {
    let memory = MemoryStore::new();
    test(&memory);
    let sled = SledStore::temporary().expect("open temporary sled store");
    test(&sled);
    if let Some(mut config) = pg::fresh_config("store_semantics") {
        // The chunk size the chunking tests count with.
        config.import_chunk = CHUNK_SIZE;
        let postgres = arbiter::store::PgStore::open(config).expect("open postgresql store");
        test(&postgres);
    }
}

fn write_ok(store: &dyn Store, updates: &[Update]) -> Revision {
    store
        .write(updates, &[])
        .expect("store failure")
        .expect("write rejected")
        .revision
}

fn read_all(store: &dyn Store, filter: &RelationshipFilter, at: Revision) -> Vec<String> {
    let page = store.read(filter, at, 0, None).expect("read");
    assert_eq!(page.cursor, None);
    page.relationships.iter().map(ToString::to_string).collect()
}

fn everything() -> RelationshipFilter {
    RelationshipFilter::default()
}

fn of_type(resource_type: &str) -> RelationshipFilter {
    RelationshipFilter {
        resource_type: Some(resource_type.into()),
        ..Default::default()
    }
}

#[test]
fn an_old_revision_sees_the_old_state_after_newer_writes() {
    each_store(|store| {
        let r1 = write_ok(store, &[touch("doc:a#viewer@user:alice")]);
        let r2 = write_ok(
            store,
            &[
                update(UpdateOp::Delete, "doc:a#viewer@user:alice"),
                touch("doc:a#viewer@user:bob"),
            ],
        );
        let r3 = write_ok(store, &[touch("doc:a#viewer@user:alice")]);
        assert_eq!(
            read_all(store, &everything(), r1),
            ["doc:a#viewer@user:alice"]
        );
        assert_eq!(
            read_all(store, &everything(), r2),
            ["doc:a#viewer@user:bob"]
        );
        assert_eq!(
            read_all(store, &everything(), r3),
            ["doc:a#viewer@user:alice", "doc:a#viewer@user:bob"]
        );
        assert_eq!(
            read_all(store, &everything(), Revision(0)),
            Vec::<String>::new()
        );
        let resource = ObjectRef::new("doc", "a").unwrap();
        let at_r2 = store.subjects(&resource, "viewer", r2).unwrap();
        assert_eq!(at_r2, vec![SubjectRef::new("user", "bob", None).unwrap()]);
    });
}

#[test]
fn a_reader_at_a_fixed_revision_is_stable_while_writes_land() {
    let store = Arc::new(SledStore::temporary().unwrap());
    let base: Vec<Update> = (0..50)
        .map(|i| touch(&format!("doc:d#viewer@user:u{i}")))
        .collect();
    let at = write_ok(&*store, &base);
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let store = Arc::clone(&store);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            for round in 0..40 {
                let victim = format!("doc:d#viewer@user:u{}", round % 50);
                let newcomer = format!("doc:d#viewer@user:n{round}");
                write_ok(
                    &*store,
                    &[update(UpdateOp::Delete, &victim), touch(&newcomer)],
                );
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let resource = ObjectRef::new("doc", "d").unwrap();
    let mut n_reads = 0;
    while !done.load(Ordering::SeqCst) || n_reads < 10 {
        let subjects = store.subjects(&resource, "viewer", at).unwrap();
        assert_eq!(subjects.len(), 50, "read at {at} changed under a writer");
        assert!(subjects.iter().all(|s| s.object.object_id.starts_with('u')));
        n_reads += 1;
    }
    writer.join().unwrap();
    assert_eq!(store.head().unwrap(), Revision(at.0 + 40));
}

#[test]
fn a_rejected_batch_writes_nothing() {
    each_store(|store| {
        let r1 = write_ok(store, &[touch("doc:a#viewer@user:alice")]);
        let res = store
            .write(
                &[
                    touch("doc:b#viewer@user:bob"),
                    update(UpdateOp::Create, "doc:a#viewer@user:alice"),
                ],
                &[],
            )
            .unwrap();
        assert_eq!(
            res,
            Err(WriteRejection::AlreadyExists(rel(
                "doc:a#viewer@user:alice"
            )))
        );
        assert_eq!(store.head().unwrap(), r1);
        assert_eq!(
            read_all(store, &everything(), r1),
            ["doc:a#viewer@user:alice"]
        );
        assert!(store.changes_since(r1, 0).unwrap().is_empty());
    });
}

#[test]
fn create_succeeds_once_and_duplicates_in_a_batch_are_rejected() {
    each_store(|store| {
        let create = update(UpdateOp::Create, "doc:a#viewer@user:alice");
        write_ok(store, std::slice::from_ref(&create));
        let again = store.write(std::slice::from_ref(&create), &[]).unwrap();
        assert!(matches!(again, Err(WriteRejection::AlreadyExists(_))));
        let dup = store
            .write(
                &[
                    touch("doc:b#viewer@user:bob"),
                    update(UpdateOp::Delete, "doc:b#viewer@user:bob"),
                ],
                &[],
            )
            .unwrap();
        assert_eq!(
            dup,
            Err(WriteRejection::Duplicate(rel("doc:b#viewer@user:bob")))
        );
        // Deleted, a tuple can be created again.
        write_ok(
            store,
            &[update(UpdateOp::Delete, "doc:a#viewer@user:alice")],
        );
        write_ok(store, &[create]);
        assert_eq!(
            read_all(store, &everything(), store.head().unwrap()),
            ["doc:a#viewer@user:alice"]
        );
    });
}

#[test]
fn touch_and_delete_are_idempotent_and_change_nothing_twice() {
    each_store(|store| {
        let first = store.write(&[touch("doc:a#viewer@user:alice")], &[]);
        assert_eq!(first.unwrap().unwrap().changes.len(), 1);
        let second = store
            .write(&[touch("doc:a#viewer@user:alice")], &[])
            .unwrap()
            .unwrap();
        assert!(second.changes.is_empty());
        assert_eq!(second.revision, Revision(2));
        let absent = store
            .write(&[update(UpdateOp::Delete, "doc:z#viewer@user:nobody")], &[])
            .unwrap()
            .unwrap();
        assert!(absent.changes.is_empty());
    });
}

#[test]
fn each_precondition_guards_the_write() {
    each_store(|store| {
        write_ok(store, &[touch("doc:a#viewer@user:alice")]);
        let alice = RelationshipFilter {
            resource_type: Some("doc".into()),
            subject_id: Some("alice".into()),
            ..Default::default()
        };
        let bob = RelationshipFilter {
            subject_type: Some("user".into()),
            subject_id: Some("bob".into()),
            ..Default::default()
        };
        let pre = |op, filter: &RelationshipFilter| Precondition {
            op,
            filter: filter.clone(),
        };
        let cases = [
            (pre(PreconditionOp::MustExist, &alice), true),
            (pre(PreconditionOp::MustExist, &bob), false),
            (pre(PreconditionOp::MustNotExist, &bob), true),
            (pre(PreconditionOp::MustNotExist, &alice), false),
        ];
        for (precondition, holds) in cases {
            let head = store.head().unwrap();
            let res = store
                .write(
                    &[touch("doc:new#viewer@user:carol")],
                    std::slice::from_ref(&precondition),
                )
                .unwrap();
            match res {
                Ok(changes) => {
                    assert!(holds, "{precondition:?} should have failed");
                    assert_eq!(changes.revision, Revision(head.0 + 1));
                    write_ok(
                        store,
                        &[update(UpdateOp::Delete, "doc:new#viewer@user:carol")],
                    );
                }
                Err(WriteRejection::PreconditionFailed { index, reason }) => {
                    assert!(!holds, "{precondition:?} should have held: {reason}");
                    assert_eq!(index, 0);
                    assert_eq!(store.head().unwrap(), head);
                }
                Err(other) => panic!("unexpected rejection {other}"),
            }
        }
        let named = store
            .write(&[], &[pre(PreconditionOp::MustNotExist, &alice)])
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(named.contains("`doc:a#viewer@user:alice`"), "{named}");
    });
}

#[test]
fn delete_by_filter_removes_exactly_the_matching_live_tuples() {
    each_store(|store| {
        write_ok(
            store,
            &[
                touch("doc:a#viewer@user:alice"),
                touch("doc:a#editor@user:alice"),
                touch("doc:b#viewer@user:alice"),
                touch("doc:b#viewer@group:eng#member"),
                touch("folder:f#viewer@user:alice"),
            ],
        );
        let filter = RelationshipFilter {
            resource_type: Some("doc".into()),
            relation: Some("viewer".into()),
            subject_relation: Some("...".into()),
            ..Default::default()
        };
        let deleted = store.delete_by_filter(&filter, 0).unwrap();
        let mut names: Vec<String> = deleted
            .changes
            .iter()
            .map(|c| {
                assert_eq!(c.op, ChangeOp::Delete);
                c.relationship.to_string()
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["doc:a#viewer@user:alice", "doc:b#viewer@user:alice"]
        );
        assert_eq!(
            read_all(store, &everything(), deleted.revision),
            [
                "doc:a#editor@user:alice",
                "doc:b#viewer@group:eng#member",
                "folder:f#viewer@user:alice"
            ]
        );
        let nothing = store.delete_by_filter(&filter, 0).unwrap();
        assert!(nothing.changes.is_empty());
    });
}

#[test]
fn a_large_delete_by_filter_is_one_revision() {
    each_store(|store| {
        let n = CHUNK_SIZE * 2 + 17;
        let changes = store
            .import(&mut (0..n).map(|i| rel(&format!("doc:d{i}#viewer@user:u"))))
            .unwrap();
        let before = changes.last().unwrap().revision;
        let deleted = store.delete_by_filter(&of_type("doc"), 0).unwrap();
        assert_eq!(deleted.revision, Revision(before.0 + 1));
        assert_eq!(deleted.changes.len(), n);
        assert_eq!(store.head().unwrap(), deleted.revision);
        assert_eq!(read_all(store, &of_type("doc"), before).len(), n);
        assert!(read_all(store, &of_type("doc"), deleted.revision).is_empty());
        let log = store.changes_since(before, 0).unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0], deleted);
    });
}

#[test]
fn import_chunks_into_revisions_and_skips_live_tuples() {
    each_store(|store| {
        write_ok(store, &[touch("doc:d3#viewer@user:u")]);
        let n = CHUNK_SIZE + 5;
        let mut input = (0..n).map(|i| rel(&format!("doc:d{i}#viewer@user:u")));
        let sets = store.import(&mut input).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].revision, Revision(2));
        assert_eq!(sets[1].revision, Revision(3));
        let n_changes: usize = sets.iter().map(|it| it.changes.len()).sum();
        assert_eq!(n_changes, n - 1);
        assert_eq!(read_all(store, &of_type("doc"), Revision(3)).len(), n);
    });
}

/// An import of tuples none of which is live (PostgreSQL copies it straight into the
/// versioned table) keeps names that need escaping, caveat contexts and expirations, and
/// returns exactly what the log holds for its revision.
#[test]
fn import_into_new_ground_keeps_conditions_and_matches_the_log() {
    each_store(|store| {
        let before = write_ok(store, &[touch("doc:other#viewer@user:u")]);
        let texts = [
            "doc:d1#viewer@user:u",
            r#"doc:d2#viewer@user:u[ipnet:{"cidr":"10.0.0.0/8","note":"tab\there\\n"}]"#,
            "doc:d3#viewer@group:g#member",
            "doc:d4#viewer@user:u[expiration:2031-01-01T00:00:00.25Z]",
            "doc:d5#viewer@user:*",
        ];
        let sets = store.import(&mut texts.into_iter().map(rel)).unwrap();
        assert_eq!(sets.len(), 1);
        let mut returned: Vec<String> = sets[0]
            .changes
            .iter()
            .map(|it| {
                assert_eq!(it.op, ChangeOp::Touch);
                it.relationship.to_string()
            })
            .collect();
        returned.sort();
        let mut want: Vec<String> = texts.iter().map(|it| rel(it).to_string()).collect();
        want.sort();
        assert_eq!(returned, want);
        let log = store.changes_since(before, 0).unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].revision, sets[0].revision);
        let mut logged: Vec<String> = log[0]
            .changes
            .iter()
            .map(|it| it.relationship.to_string())
            .collect();
        logged.sort();
        assert_eq!(logged, want);
        let mut read = read_all(store, &of_type("doc"), sets[0].revision);
        read.retain(|it| it != "doc:other#viewer@user:u");
        read.sort();
        assert_eq!(read, want);
    });
}

#[test]
fn import_gives_a_changed_caveat_or_expiration_a_new_version_and_returns_the_log_entry() {
    each_store(|store| {
        let before = write_ok(
            store,
            &[
                touch("doc:d1#viewer@user:u"),
                touch(r#"doc:d2#viewer@user:u[ipnet:{"cidr":"10.0.0.0/8"}]"#),
                touch("doc:d4#viewer@user:u[expiration:2030-01-01T00:00:00Z]"),
            ],
        );
        let mut input = [
            "doc:d1#viewer@user:u",
            r#"doc:d2#viewer@user:u[ipnet:{"cidr":"192.168.0.0/16"}]"#,
            "doc:d3#viewer@user:u",
            "doc:d4#viewer@user:u[expiration:2031-01-01T00:00:00Z]",
        ]
        .into_iter()
        .map(rel);
        let sets = store.import(&mut input).unwrap();
        assert_eq!(sets.len(), 1);
        let changes = |set: &arbiter::store::ChangeSet| {
            let mut changes: Vec<(String, bool)> = set
                .changes
                .iter()
                .map(|it| (it.relationship.to_string(), it.op == ChangeOp::Touch))
                .collect();
            changes.sort();
            changes
        };
        let ended = |text: &str| (text.to_string(), false);
        let created = |text: &str| (text.to_string(), true);
        assert_eq!(
            changes(&sets[0]),
            vec![
                ended(r#"doc:d2#viewer@user:u[ipnet:{"cidr":"10.0.0.0/8"}]"#),
                created(r#"doc:d2#viewer@user:u[ipnet:{"cidr":"192.168.0.0/16"}]"#),
                created("doc:d3#viewer@user:u"),
                ended("doc:d4#viewer@user:u[expiration:2030-01-01T00:00:00Z]"),
                created("doc:d4#viewer@user:u[expiration:2031-01-01T00:00:00Z]"),
            ]
        );
        // What the import returns is what the log holds for its revision (the order of
        // changes within a revision aside): the engine applies it to the index without
        // reading it back.
        let log = store.changes_since(before, 0).unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].revision, sets[0].revision);
        assert_eq!(changes(&log[0]), changes(&sets[0]));
        assert_eq!(read_all(store, &of_type("doc"), sets[0].revision).len(), 4);
        assert_eq!(
            read_all(store, &of_type("doc"), before),
            vec![
                "doc:d1#viewer@user:u",
                r#"doc:d2#viewer@user:u[ipnet:{"cidr":"10.0.0.0/8"}]"#,
                "doc:d4#viewer@user:u[expiration:2030-01-01T00:00:00Z]",
            ]
        );
    });
}

#[test]
fn paged_reads_resume_after_the_cursor_in_index_order() {
    each_store(|store| {
        let mut texts: Vec<String> = (0..25)
            .map(|i| format!("doc:d{i:02}#viewer@user:u{}", i % 3))
            .collect();
        texts.extend((0..9).map(|i| format!("doc:d{i:02}#editor@group:g{}#member", i % 2)));
        texts.extend((0..6).map(|i| format!("folder:f{i}#viewer@user:u1")));
        let updates: Vec<Update> = texts.iter().map(|t| touch(t)).collect();
        let at = write_ok(store, &updates);
        let filter = |resource: [Option<&str>; 2], subject: [Option<&str>; 3]| RelationshipFilter {
            resource_type: resource[0].map(Into::into),
            resource_id: resource[1].map(Into::into),
            subject_type: subject[0].map(Into::into),
            subject_id: subject[1].map(Into::into),
            subject_relation: subject[2].map(Into::into),
            ..Default::default()
        };
        // Filters pinning a prefix of either order: the PostgreSQL store leaves pinned
        // columns out of the cursor's comparison (its by-subject index leads with the id).
        for filter in [
            of_type("doc"),
            filter([Some("doc"), Some("d01")], [None; 3]),
            filter([None; 2], [Some("user"), None, None]),
            filter([None; 2], [Some("user"), Some("u1"), None]),
            filter([None; 2], [Some("user"), Some("u1"), Some("...")]),
            filter([None; 2], [Some("group"), Some("g0"), Some("member")]),
            filter([Some("doc"), None], [Some("user"), Some("u2"), None]),
        ] {
            let mut seen: Vec<Relationship> = Vec::new();
            let mut cursor = None;
            loop {
                let page = store.read(&filter, at, 4, cursor.as_deref()).unwrap();
                assert!(page.relationships.len() <= 4);
                seen.extend(page.relationships);
                cursor = page.cursor;
                if cursor.is_none() {
                    break;
                }
            }
            let order = filter.read_order();
            assert!(
                seen.windows(2)
                    .all(|it| order.key(&it[0]) < order.key(&it[1])),
                "{filter:?}: pages in read order, no repeats"
            );
            let seen: Vec<String> = seen.iter().map(ToString::to_string).collect();
            assert_eq!(seen, read_all(store, &filter, at), "{filter:?}");
            let mut expected: Vec<String> = texts
                .iter()
                .filter(|text| filter.matches(&text.parse().unwrap()))
                .cloned()
                .collect();
            expected.sort();
            let mut sorted = seen.clone();
            sorted.sort();
            assert_eq!(sorted, expected, "{filter:?}");
            assert!(!expected.is_empty(), "{filter:?} matches something");
        }
        let bad = store.read(&everything(), at, 1, Some("not a cursor"));
        assert!(matches!(bad, Err(StoreError::InvalidCursor(_))));
    });
}

#[test]
fn forward_and_reverse_reads_agree() {
    each_store(|store| {
        let at = write_ok(
            store,
            &[
                touch("doc:a#viewer@user:alice"),
                touch("doc:a#viewer@group:eng#member"),
                touch("doc:a#viewer@user:*"),
                touch("doc:b#editor@user:alice"),
                touch("folder:f#viewer@user:alice"),
                touch("doc:a#editor@user:bob"),
            ],
        );
        let doc_a = ObjectRef::new("doc", "a").unwrap();
        let subjects: Vec<String> = store
            .subjects(&doc_a, "viewer", at)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(subjects, ["group:eng#member", "user:*", "user:alice"]);
        let alice = SubjectRef::new("user", "alice", None).unwrap();
        let all = store.resources(&alice, None, None, at).unwrap();
        let all: Vec<String> = all.iter().map(|(r, rel)| format!("{r}#{rel}")).collect();
        assert_eq!(all, ["doc:b#editor", "doc:a#viewer", "folder:f#viewer"]);
        let docs = store.resources(&alice, Some("doc"), None, at).unwrap();
        assert_eq!(docs.len(), 2);
        let viewers = store.resources(&alice, None, Some("viewer"), at).unwrap();
        assert_eq!(viewers.len(), 2);
        let eng = SubjectRef::new("group", "eng", Some("member")).unwrap();
        assert_eq!(
            store.resources(&eng, None, None, at).unwrap(),
            vec![(doc_a.clone(), "viewer".to_string())]
        );
        let eng_plain = SubjectRef::new("group", "eng", None).unwrap();
        assert!(
            store
                .resources(&eng_plain, None, None, at)
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn the_change_log_is_ordered_and_complete() {
    each_store(|store| {
        let r1 = write_ok(
            store,
            &[
                touch("doc:a#viewer@user:alice"),
                touch("doc:b#viewer@user:bob"),
            ],
        );
        let schema_revision = store.write_schema("definition user {}").unwrap();
        let r3 = write_ok(
            store,
            &[update(UpdateOp::Delete, "doc:a#viewer@user:alice")],
        );
        let noop = write_ok(store, &[touch("doc:b#viewer@user:bob")]);
        let r5 = store.delete_by_filter(&of_type("doc"), 0).unwrap().revision;
        assert_eq!(schema_revision, Revision(2));
        let log = store.changes_since(Revision(0), 0).unwrap();
        let flat: Vec<(u64, ChangeOp, String)> = log
            .iter()
            .flat_map(|set| {
                set.changes
                    .iter()
                    .map(move |c| (set.revision.0, c.op, c.relationship.to_string()))
            })
            .collect();
        assert_eq!(
            flat,
            [
                (r1.0, ChangeOp::Touch, "doc:a#viewer@user:alice".to_string()),
                (r1.0, ChangeOp::Touch, "doc:b#viewer@user:bob".to_string()),
                (
                    r3.0,
                    ChangeOp::Delete,
                    "doc:a#viewer@user:alice".to_string()
                ),
                (r5.0, ChangeOp::Delete, "doc:b#viewer@user:bob".to_string()),
            ]
        );
        assert_eq!(noop, Revision(4));
        assert_eq!(store.changes_since(r1, 1).unwrap().len(), 1);
        assert_eq!(store.changes_since(r3, 0).unwrap()[0].revision, r5);
        assert!(store.changes_since(r5, 0).unwrap().is_empty());
        assert!(matches!(
            store.changes_since(Revision(r5.0 + 1), 0),
            Err(StoreError::RevisionAhead { .. })
        ));
    });
}

#[test]
fn reads_outside_the_history_are_errors() {
    each_store(|store| {
        write_ok(store, &[touch("doc:a#viewer@user:alice")]);
        let ahead = store.read(&everything(), Revision(9), 0, None);
        assert!(matches!(ahead, Err(StoreError::RevisionAhead { .. })));
    });
}

#[test]
fn garbage_collection_removes_only_history_past_the_horizon() {
    each_store(|store| {
        let r1 = write_ok(
            store,
            &[
                touch("doc:a#viewer@user:old"),
                touch("doc:a#viewer@user:keep"),
            ],
        );
        let r2 = write_ok(store, &[update(UpdateOp::Delete, "doc:a#viewer@user:old")]);
        let r3 = write_ok(store, &[touch("doc:a#viewer@user:new")]);
        let r4 = write_ok(store, &[update(UpdateOp::Delete, "doc:a#viewer@user:new")]);
        let removed = store.collect_garbage(r3).unwrap();
        assert!(removed >= 1, "nothing collected");
        assert_eq!(store.oldest_readable().unwrap(), r3);
        assert!(matches!(
            store.read(&everything(), r1, 0, None),
            Err(StoreError::RevisionExpired { .. })
        ));
        assert!(matches!(
            store.changes_since(r2, 0),
            Err(StoreError::RevisionExpired { .. })
        ));
        assert_eq!(
            read_all(store, &everything(), r3),
            ["doc:a#viewer@user:keep", "doc:a#viewer@user:new"]
        );
        assert_eq!(
            read_all(store, &everything(), r4),
            ["doc:a#viewer@user:keep"]
        );
        let log = store.changes_since(r3, 0).unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].revision, r4);
        // Collecting at the head keeps every live tuple.
        store.collect_garbage(r4).unwrap();
        assert_eq!(
            read_all(store, &everything(), r4),
            ["doc:a#viewer@user:keep"]
        );
        assert_eq!(store.collect_garbage(r1).unwrap(), 0);
    });
}

#[test]
fn malformed_and_oversized_writes_are_refused() {
    each_store(|store| {
        let mut bad = rel("doc:a#viewer@user:alice");
        bad.resource.object_id = "a\0b".into();
        let res = store.write(
            &[Update {
                op: UpdateOp::Touch,
                relationship: bad,
            }],
            &[],
        );
        assert!(matches!(res, Err(StoreError::Model(_))), "{res:?}");
        let many: Vec<Update> = (0..=MAX_WRITE_UPDATES)
            .map(|i| touch(&format!("doc:d{i}#viewer@user:u")))
            .collect();
        let res = store.write(&many, &[]);
        assert!(
            matches!(res, Err(StoreError::BatchTooLarge { .. })),
            "{res:?}"
        );
        assert_eq!(store.head().unwrap(), Revision(0));
    });
}

#[test]
fn the_schema_is_stored_at_its_own_revision() {
    each_store(|store| {
        assert_eq!(store.read_schema().unwrap(), None);
        write_ok(store, &[touch("doc:a#viewer@user:alice")]);
        let revision = store.write_schema("definition user {}").unwrap();
        assert_eq!(revision, Revision(2));
        assert_eq!(
            store.read_schema().unwrap(),
            Some(("definition user {}".to_string(), revision))
        );
        let mut live = Vec::new();
        let head = store.for_each_live(&mut |rel| live.push(rel)).unwrap();
        assert_eq!(head, revision);
        assert_eq!(live, vec![rel("doc:a#viewer@user:alice")]);
    });
}
