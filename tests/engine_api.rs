//! The embeddable API around the walks: consistency modes, the check cache, writes and
//! their validation, schema changes, watch, errors, expand, bulk check, reopening a sled
//! database, and the limits (depth, wide groups).

use std::time::Duration;

use arbiter::engine::{
    Arbiter, CheckParts, CheckRequest, Config, Consistency, DeleteRequest, EngineError,
    ExpandDepth, ExpandNode, ExpandRequest, LookupResourcesRequest, LookupSubjectsRequest,
    ReadRequest,
};
use arbiter::model::{ObjectRef, Relationship, Revision, SubjectRef};
use arbiter::store::{Precondition, PreconditionOp, RelationshipFilter, Update, UpdateOp};

const SCHEMA: &str = "
definition user {}
definition group {
    relation member: user | group#member
}
definition doc {
    relation parent: doc
    relation viewer: user | group#member | user:*
    relation banned: user
    permission view = (viewer | parent.view) - banned
}
";

fn engine(config: Config) -> Arbiter {
    let engine = Arbiter::in_memory(config).unwrap();
    engine.write_schema(SCHEMA).unwrap();
    engine
}

fn touch(texts: &[&str]) -> Vec<Update> {
    texts
        .iter()
        .map(|text| Update {
            op: UpdateOp::Touch,
            relationship: text.parse().unwrap(),
        })
        .collect()
}

fn write(engine: &Arbiter, texts: &[&str]) -> Revision {
    engine.write(&touch(texts), &[]).unwrap().unwrap()
}

fn delete(engine: &Arbiter, texts: &[&str]) -> Revision {
    let updates: Vec<Update> = texts
        .iter()
        .map(|text| Update {
            op: UpdateOp::Delete,
            relationship: text.parse().unwrap(),
        })
        .collect();
    engine.write(&updates, &[]).unwrap().unwrap()
}

fn request(text: &str) -> CheckRequest {
    let (resource, subject) = text.split_once('@').unwrap();
    let (resource, permission) = resource.split_once('#').unwrap();
    CheckRequest {
        resource: resource.parse().unwrap(),
        permission: permission.to_string(),
        subject: subject.parse().unwrap(),
        context: None,
    }
}

fn check(engine: &Arbiter, text: &str, consistency: Consistency) -> Result<bool, EngineError> {
    engine
        .check(&request(text), consistency)
        .map(|decision| decision.allowed)
}

#[test]
fn consistency_modes_choose_the_snapshot() {
    let engine = engine(Config {
        quantization_window: Duration::from_secs(3600),
        ..Config::default()
    });
    let quantized_before = engine
        .check(
            &request("doc:1#view@user:alice"),
            Consistency::MinimizeLatency,
        )
        .unwrap()
        .revision;
    let first = write(&engine, &["doc:1#viewer@user:alice"]);
    let second = delete(&engine, &["doc:1#viewer@user:alice"]);
    assert!(second > first);
    assert!(!check(&engine, "doc:1#view@user:alice", Consistency::Full).unwrap());
    let at_first = Consistency::AtExactSnapshot { revision: first };
    assert!(check(&engine, "doc:1#view@user:alice", at_first).unwrap());
    let decision = engine
        .check(
            &request("doc:1#view@user:alice"),
            Consistency::AtLeastAsFresh { revision: first },
        )
        .unwrap();
    assert_eq!(decision.revision, second);
    assert!(!decision.allowed);
    let ahead = Revision(second.0 + 10);
    let err = check(
        &engine,
        "doc:1#view@user:alice",
        Consistency::AtLeastAsFresh { revision: ahead },
    )
    .unwrap_err();
    assert_eq!(err.code(), "snapshot_ahead");
    let err = check(
        &engine,
        "doc:1#view@user:alice",
        Consistency::AtExactSnapshot { revision: ahead },
    )
    .unwrap_err();
    assert_eq!(err.code(), "snapshot_ahead");
    // The quantized revision does not move within the window.
    let decision = engine
        .check(
            &request("doc:1#view@user:alice"),
            Consistency::MinimizeLatency,
        )
        .unwrap();
    assert_eq!(decision.revision, quantized_before);
}

#[test]
fn minimize_latency_follows_the_head_once_the_window_passed() {
    let engine = engine(Config {
        quantization_window: Duration::ZERO,
        ..Config::default()
    });
    let revision = write(&engine, &["doc:1#viewer@user:alice"]);
    let decision = engine
        .check(
            &request("doc:1#view@user:alice"),
            Consistency::MinimizeLatency,
        )
        .unwrap();
    assert_eq!(decision.revision, revision);
    assert!(decision.allowed);
}

#[test]
fn garbage_collection_expires_old_snapshots() {
    let engine = engine(Config {
        gc_retention: Duration::ZERO,
        ..Config::default()
    });
    let first = write(&engine, &["doc:1#viewer@user:alice"]);
    let second = delete(&engine, &["doc:1#viewer@user:alice"]);
    engine.collect_garbage().unwrap();
    let err = check(
        &engine,
        "doc:1#view@user:alice",
        Consistency::AtExactSnapshot { revision: first },
    )
    .unwrap_err();
    assert_eq!(err.code(), "snapshot_expired");
    let at_second = Consistency::AtExactSnapshot { revision: second };
    assert!(!check(&engine, "doc:1#view@user:alice", at_second).unwrap());
}

#[test]
fn the_cache_counts_hits_and_never_serves_another_snapshot() {
    let engine = engine(Config::default());
    write(&engine, &["doc:1#viewer@user:alice"]);
    assert!(check(&engine, "doc:1#view@user:alice", Consistency::Full).unwrap());
    assert!(check(&engine, "doc:1#view@user:alice", Consistency::Full).unwrap());
    let stats = engine.cache_stats();
    assert_eq!((stats.hits, stats.misses), (1, 1));
    write(&engine, &["doc:1#banned@user:alice"]);
    assert!(!check(&engine, "doc:1#view@user:alice", Consistency::Full).unwrap());
    assert_eq!(engine.cache_stats().misses, 2);

    let uncached = self::engine(Config {
        cache_capacity: 0,
        ..Config::default()
    });
    write(&uncached, &["doc:1#viewer@user:alice"]);
    assert!(check(&uncached, "doc:1#view@user:alice", Consistency::Full).unwrap());
    assert!(check(&uncached, "doc:1#view@user:alice", Consistency::Full).unwrap());
    assert_eq!(uncached.cache_stats().hits, 0);
}

#[test]
fn cached_check_answers_only_what_a_validated_check_put_in_the_cache() {
    let engine = engine(Config::default());
    write(&engine, &["doc:1#viewer@user:alice"]);
    let parts = |resource, permission, subject| {
        CheckParts::from_text(resource, permission, subject).expect("has its `:`s")
    };
    let alice = parts("doc:1", "view", "user:alice");
    assert_eq!(
        engine.cached_check(&alice, Consistency::Full),
        None,
        "nothing asked yet"
    );
    assert_eq!(engine.cache_stats().misses, 0, "a probe counts no miss");
    assert!(check(&engine, "doc:1#view@user:alice", Consistency::Full).unwrap());
    let hit = engine
        .cached_check(&alice, Consistency::Full)
        .expect("asked once");
    assert!(hit.allowed);
    assert_eq!(hit.revision, engine.head());
    assert_eq!(engine.cache_stats().hits, 1);
    // The same question written otherwise is not recognised (it is a miss, never another
    // question's answer), and neither is a question no check validated.
    let spelled_otherwise = parts("doc:1", "view", "user:alice#...");
    assert_eq!(
        engine.cached_check(&spelled_otherwise, Consistency::Full),
        None
    );
    let invalid = parts("doc:1", "view", "user:al ice");
    assert_eq!(engine.cached_check(&invalid, Consistency::Full), None);
    assert!(CheckParts::from_text("doc1", "view", "user:alice").is_none());
    // Another snapshot: the old answer is not served.
    write(&engine, &["doc:1#banned@user:alice"]);
    assert_eq!(engine.cached_check(&alice, Consistency::Full), None);
    // No schema, no revision to choose: no answer, and no error either (the full check
    // reports it).
    let empty = Arbiter::in_memory(Config::default()).unwrap();
    assert_eq!(empty.cached_check(&alice, Consistency::Full), None);
}

#[test]
fn the_cache_stays_bounded() {
    let engine = engine(Config {
        cache_capacity: 10,
        ..Config::default()
    });
    for i in 0..50 {
        check(
            &engine,
            &format!("doc:d{i}#view@user:u{i}"),
            Consistency::Full,
        )
        .unwrap();
    }
    assert!(engine.cache_stats().entries <= 10);
}

#[test]
fn nothing_answers_before_a_schema_is_loaded() {
    let engine = Arbiter::in_memory(Config::default()).unwrap();
    let err = check(&engine, "doc:1#view@user:alice", Consistency::Full).unwrap_err();
    assert_eq!(err.code(), "no_schema");
    assert!(!err.is_client_error());
    let err = engine
        .write(&touch(&["doc:1#viewer@user:alice"]), &[])
        .unwrap_err();
    assert_eq!(err.code(), "no_schema");
}

#[test]
fn an_invalid_relationship_rejects_the_whole_batch() {
    let engine = engine(Config::default());
    let head = engine.head();
    let err = engine
        .write(
            &touch(&["doc:1#viewer@user:alice", "doc:1#view@user:bob"]),
            &[],
        )
        .unwrap_err();
    assert_eq!(err.code(), "invalid_relationship");
    assert!(err.to_string().contains("doc:1#view@user:bob"), "{err}");
    assert_eq!(engine.head(), head);
    assert!(!check(&engine, "doc:1#view@user:alice", Consistency::Full).unwrap());
    let err = engine
        .write(&touch(&["doc:1#viewer@group:eng"]), &[])
        .unwrap_err();
    assert_eq!(err.code(), "invalid_relationship");
}

#[test]
fn a_failed_precondition_writes_nothing() {
    let engine = engine(Config::default());
    let precondition = Precondition {
        op: PreconditionOp::MustExist,
        filter: RelationshipFilter {
            resource_type: Some("doc".into()),
            resource_id: Some("1".into()),
            ..RelationshipFilter::default()
        },
    };
    let res = engine
        .write(&touch(&["doc:1#viewer@user:alice"]), &[precondition])
        .unwrap();
    assert!(res.is_err());
    assert!(!check(&engine, "doc:1#view@user:alice", Consistency::Full).unwrap());
}

#[test]
fn a_schema_change_that_orphans_relationships_is_refused() {
    let engine = engine(Config::default());
    write(
        &engine,
        &["doc:1#banned@user:alice", "doc:2#banned@user:bob"],
    );
    let narrowed = SCHEMA
        .replace("relation banned: user\n", "")
        .replace(" - banned", "");
    let err = engine.write_schema(&narrowed).unwrap_err();
    assert_eq!(err.code(), "schema_orphans");
    let message = err.to_string();
    assert!(message.contains("doc#banned"), "{message}");
    assert!(message.contains("2 stored"), "{message}");
    assert!(message.contains("@user:"), "{message}");
    // A compatible change goes through and answers with the new schema.
    let widened = SCHEMA.replace(
        "relation banned: user",
        "relation banned: user | group#member",
    );
    engine.write_schema(&widened).unwrap();
    write(&engine, &["doc:1#banned@group:eng#member"]);
    assert_eq!(engine.schema_text().unwrap().0, widened);
}

#[test]
fn an_invalid_schema_reports_line_and_column() {
    let engine = Arbiter::in_memory(Config::default()).unwrap();
    let err = engine
        .write_schema("definition doc {\n    relation viewer: nobody\n}")
        .unwrap_err();
    assert_eq!(err.code(), "invalid_schema");
    match err {
        EngineError::InvalidSchema(problems) => assert_eq!(problems[0].line, 2),
        other => panic!("{other}"),
    }
    assert!(engine.schema().is_none());
}

#[test]
fn subscribers_see_each_new_revision() {
    let engine = engine(Config::default());
    let mut receiver = engine.subscribe();
    let revision = write(&engine, &["doc:1#viewer@user:alice"]);
    assert!(receiver.has_changed().unwrap());
    assert_eq!(*receiver.borrow_and_update(), revision);
    let changes = engine.changes_since(Revision(0), 10).unwrap();
    assert_eq!(changes.last().unwrap().revision, revision);
}

#[test]
fn delete_by_filter_and_read() {
    let engine = engine(Config::default());
    write(
        &engine,
        &[
            "doc:1#viewer@user:alice",
            "doc:1#viewer@user:bob",
            "doc:2#viewer@user:bob",
        ],
    );
    let filter = RelationshipFilter {
        resource_type: Some("doc".into()),
        subject_id: Some("bob".into()),
        ..RelationshipFilter::default()
    };
    let page = engine
        .read(
            &ReadRequest {
                limit: 100,
                ..ReadRequest::new(filter.clone())
            },
            Consistency::Full,
        )
        .unwrap();
    assert_eq!(page.relationships.len(), 2);
    let deleted = engine.delete(&DeleteRequest::new(filter.clone())).unwrap();
    assert_eq!(deleted.deleted, 2);
    assert!(!check(&engine, "doc:2#view@user:bob", Consistency::Full).unwrap());
    assert!(check(&engine, "doc:1#view@user:alice", Consistency::Full).unwrap());
    let (subjects, _) = engine
        .read_subjects(&"doc:1".parse().unwrap(), "viewer", Consistency::Full)
        .unwrap();
    assert_eq!(subjects, ["user:alice".parse().unwrap()]);
    let (resources, _) = engine
        .read_resources(
            &"user:alice".parse().unwrap(),
            "doc",
            "viewer",
            Consistency::Full,
        )
        .unwrap();
    assert_eq!(resources, ["1"]);
}

#[test]
fn bulk_check_answers_each_item_at_one_revision() {
    let engine = engine(Config::default());
    write(&engine, &["doc:1#viewer@user:alice", "doc:2#parent@doc:1"]);
    let requests = [
        request("doc:1#view@user:alice"),
        request("doc:2#view@user:alice"),
        request("doc:2#view@user:bob"),
        request("doc:2#nope@user:bob"),
    ];
    let answer = engine.check_bulk(&requests, Consistency::Full).unwrap();
    assert_eq!(answer.revision, engine.head());
    let got: Vec<Result<bool, &str>> = answer
        .results
        .iter()
        .map(|it| it.as_ref().map(|b| b.allowed()).map_err(|err| err.code()))
        .collect();
    assert_eq!(
        got,
        [Ok(true), Ok(true), Ok(false), Err("invalid_argument")]
    );
}

#[test]
fn expand_one_level_and_recursively() {
    let engine = engine(Config::default());
    write(
        &engine,
        &[
            "doc:1#viewer@group:eng#member",
            "group:eng#member@user:alice",
            "doc:2#parent@doc:1",
        ],
    );
    let resource: ObjectRef = "doc:2".parse().unwrap();
    let one = engine
        .expand(
            &ExpandRequest::new(resource.clone(), "view", ExpandDepth::OneLevel),
            Consistency::Full,
        )
        .unwrap();
    let json = serde_json::to_value(&one.tree).unwrap();
    assert_eq!(json["kind"], "exclusion");
    assert_eq!(json["base"]["kind"], "union");
    let arrow = &json["base"]["children"][1];
    assert_eq!(arrow["kind"], "arrow");
    assert_eq!(arrow["children"][0]["resource"], "doc:1");
    assert_eq!(arrow["children"][0]["kind"], "userset");
    let deep = engine
        .expand(
            &ExpandRequest::new(resource.clone(), "view", ExpandDepth::Recursive),
            Consistency::Full,
        )
        .unwrap();
    let text = serde_json::to_string(&deep.tree).unwrap();
    assert!(text.contains("\"user:alice\""), "{text}");
    let ExpandNode::Exclusion { subtracted, .. } = &deep.tree.node else {
        panic!("{text}");
    };
    assert_eq!(subtracted.relation, "banned");
}

#[test]
fn the_depth_limit_is_an_error_and_the_stack_survives_it() {
    // A chain of permissions through arrows: every hop is a native recursion.
    let schema = "
definition user {}
definition node {
    relation next: node
    relation holder: user
    permission reach = holder | next.reach
}";
    let engine = Arbiter::in_memory(Config {
        depth_limit: arbiter::engine::MAX_DEPTH_LIMIT,
        ..Config::default()
    })
    .unwrap();
    engine.write_schema(schema).unwrap();
    let n = arbiter::engine::MAX_DEPTH_LIMIT as usize;
    let mut rels: Vec<Relationship> = (0..n + 5)
        .map(|i| format!("node:n{i}#next@node:n{}", i + 1).parse().unwrap())
        .collect();
    rels.push(
        format!("node:n{}#holder@user:alice", n + 5)
            .parse()
            .unwrap(),
    );
    rels.push("node:n150#holder@user:bob".parse().unwrap());
    engine.import(&mut rels.into_iter()).unwrap();
    let err = check(&engine, "node:n0#reach@user:alice", Consistency::Full).unwrap_err();
    assert_eq!(err.code(), "depth_exceeded");
    assert!(check(&engine, "node:n0#reach@user:bob", Consistency::Full).unwrap());
}

#[test]
fn a_wide_group_costs_no_recursion() {
    // The million-member case runs against the index directly (engine::check tests);
    // here the whole stack, with a size a debug build loads quickly.
    let engine = engine(Config::default());
    let members = (0..100_000).map(|i| {
        Relationship::new(
            ObjectRef::new("group", "big").unwrap(),
            "member",
            format!("user:u{i}").parse().unwrap(),
        )
        .unwrap()
    });
    let mut all = members.chain(["doc:1#viewer@group:big#member".parse().unwrap()]);
    engine.import(&mut all).unwrap();
    assert!(check(&engine, "doc:1#view@user:u99999", Consistency::Full).unwrap());
    assert!(!check(&engine, "doc:1#view@user:stranger", Consistency::Full).unwrap());
    let page = engine
        .lookup_resources(
            &LookupResourcesRequest {
                limit: 10,
                ..LookupResourcesRequest::new("doc", "view", "user:u123".parse().unwrap())
            },
            Consistency::Full,
        )
        .unwrap();
    assert_eq!(page.resources, ["1"]);
}

#[test]
fn lookup_resources_pages_with_a_cursor() {
    let engine = engine(Config::default());
    let texts: Vec<String> = (0..25)
        .map(|i| format!("doc:d{i:02}#viewer@user:alice"))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    write(&engine, &refs);
    let alice: SubjectRef = "user:alice".parse().unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = engine
            .lookup_resources(
                &LookupResourcesRequest {
                    limit: 10,
                    cursor: cursor.clone(),
                    ..LookupResourcesRequest::new("doc", "view", alice.clone())
                },
                Consistency::Full,
            )
            .unwrap();
        assert!(page.resources.len() <= 10);
        seen.extend(page.resources);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // Walk order, not sorted: every id once.
    seen.sort();
    let expected: Vec<String> = (0..25).map(|i| format!("d{i:02}")).collect();
    assert_eq!(seen, expected);
}

#[test]
fn reopening_a_sled_database_rebuilds_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let revision = {
        let engine = Arbiter::open(&path, Config::default()).unwrap();
        engine.write_schema(SCHEMA).unwrap();
        let revision = write(
            &engine,
            &[
                "doc:1#viewer@group:eng#member",
                "group:eng#member@user:alice",
            ],
        );
        engine.flush().unwrap();
        revision
    };
    let engine = Arbiter::open(&path, Config::default()).unwrap();
    assert_eq!(engine.head(), revision);
    assert!(engine.schema().is_some());
    assert!(check(&engine, "doc:1#view@user:alice", Consistency::Full).unwrap());
    // Snapshots before the reopen are not answerable from the rebuilt index.
    let err = check(
        &engine,
        "doc:1#view@user:alice",
        Consistency::AtExactSnapshot {
            revision: Revision(revision.0 - 1),
        },
    )
    .unwrap_err();
    assert_eq!(err.code(), "snapshot_expired");
}

#[test]
fn lookup_errors_name_the_field() {
    let engine = engine(Config::default());
    let alice: SubjectRef = "user:alice".parse().unwrap();
    let err = engine
        .lookup_resources(
            &LookupResourcesRequest::new("nosuch", "view", alice.clone()),
            Consistency::Full,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::InvalidInput {
                field: "resource_type",
                ..
            }
        ),
        "{err}"
    );
    let err = engine
        .lookup_resources(
            &LookupResourcesRequest::new("doc", "nosuch", alice.clone()),
            Consistency::Full,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::InvalidInput {
                field: "permission",
                ..
            }
        ),
        "{err}"
    );
    let err = engine
        .lookup_subjects(
            &LookupSubjectsRequest::new("doc:1".parse().unwrap(), "view", "nosuch"),
            Consistency::Full,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::InvalidInput {
                field: "subject_type",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn readers_at_a_snapshot_are_unaffected_by_concurrent_writes() {
    let engine = engine(Config {
        cache_capacity: 0,
        ..Config::default()
    });
    let base = write(
        &engine,
        &[
            "doc:1#viewer@group:eng#member",
            "group:eng#member@user:alice",
        ],
    );
    let writer = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            for i in 0..200 {
                let text = format!("group:eng#member@user:w{i}");
                write(&engine, &[&text]);
                if i % 2 == 0 {
                    delete(&engine, &["group:eng#member@user:alice"]);
                } else {
                    write(&engine, &["group:eng#member@user:alice"]);
                }
            }
        })
    };
    let at_base = Consistency::AtExactSnapshot { revision: base };
    for i in 0..2_000 {
        assert!(
            check(&engine, "doc:1#view@user:alice", at_base).unwrap(),
            "read {i}"
        );
        assert!(
            !check(&engine, "doc:1#view@user:w150", at_base).unwrap(),
            "read {i}"
        );
    }
    writer.join().unwrap();
    assert!(check(&engine, "doc:1#view@user:w150", Consistency::Full).unwrap());
    assert!(check(&engine, "doc:1#view@user:alice", Consistency::Full).unwrap());
}
