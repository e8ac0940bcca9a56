//! Regression tests for issue 10, the engine's part: every request gets a bounded, clear
//! answer. Expand shares repeated usersets and has a size limit; walks stop at their
//! deadline; lookup pages cost in proportion to the page; writes and deletes are bounded;
//! filters and preconditions are validated; a failed write recovers without a restart;
//! check and lookups agree at the depth limit.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use arbiter::engine::{
    Arbiter, CheckRequest, Config, Consistency, Deadline, DeleteOptions, DeleteRequest,
    EngineError, ExpandDepth, ExpandNode, ExpandRequest, ExpandTree, LookupResourcesRequest,
    LookupSubjectsRequest, ReadRequest, StoreHealth,
};
use arbiter::model::{ObjectRef, Relationship, SubjectRef};
use arbiter::store::{
    FailingStore, MemoryStore, Precondition, PreconditionOp, RelationshipFilter, Update, UpdateOp,
};

const SCHEMA: &str = "
definition user {}
definition group {
    relation member: user | group#member
}
definition folder {
    relation parent: folder
    relation viewer: user | group#member
    permission view = viewer + parent->view
}
";

fn engine(config: Config) -> Arbiter {
    let engine = Arbiter::in_memory(config).unwrap();
    engine.write_schema(SCHEMA).unwrap();
    engine
}

fn touch(texts: impl IntoIterator<Item = String>) -> Vec<Update> {
    texts
        .into_iter()
        .map(|text| Update {
            op: UpdateOp::Touch,
            relationship: text.parse().unwrap(),
        })
        .collect()
}

fn write(engine: &Arbiter, texts: impl IntoIterator<Item = String>) {
    let updates = touch(texts);
    for chunk in updates.chunks(400) {
        engine.write(chunk, &[]).unwrap().unwrap();
    }
}

fn object(text: &str) -> ObjectRef {
    text.parse().unwrap()
}

fn subject(text: &str) -> SubjectRef {
    text.parse().unwrap()
}

fn check(
    engine: &Arbiter,
    resource: &str,
    permission: &str,
    who: &str,
) -> Result<bool, EngineError> {
    let request = CheckRequest {
        resource: object(resource),
        permission: permission.to_string(),
        subject: subject(who),
        context: None,
    };
    engine
        .check(&request, Consistency::Full)
        .map(|it| it.allowed)
}

/// Groups in `layers` layers of three, every group a member of every group of the layer
/// above, and one user at the bottom: 9 tuples per layer, and 3^layers paths to the user.
fn layered_diamond(engine: &Arbiter, layers: usize) {
    let mut texts = Vec::new();
    for layer in 0..layers {
        for upper in 0..3 {
            for lower in 0..3 {
                texts.push(format!(
                    "group:g{layer}_{upper}#member@group:g{}_{lower}#member",
                    layer + 1
                ));
            }
        }
    }
    for lower in 0..3 {
        texts.push(format!("group:g{layers}_{lower}#member@user:u{lower}"));
    }
    texts.push("folder:root#viewer@group:g0_0#member".to_string());
    write(engine, texts);
}

/// Nodes plus leaf subjects.
fn size(tree: &ExpandTree) -> usize {
    1 + match &tree.node {
        ExpandNode::Leaf { subjects } => subjects.len(),
        ExpandNode::Union { children }
        | ExpandNode::Intersection { children }
        | ExpandNode::Arrow { children, .. } => children.iter().map(size).sum(),
        ExpandNode::Exclusion { base, subtracted } => size(base) + size(subtracted),
        ExpandNode::Nil | ExpandNode::Userset | ExpandNode::Repeated => 0,
    }
}

fn has_repeat(tree: &ExpandTree) -> bool {
    match &tree.node {
        ExpandNode::Repeated => true,
        ExpandNode::Union { children }
        | ExpandNode::Intersection { children }
        | ExpandNode::Arrow { children, .. } => children.iter().any(has_repeat),
        ExpandNode::Exclusion { base, subtracted } => has_repeat(base) || has_repeat(subtracted),
        _ => false,
    }
}

#[test]
fn issue10_expand_layered_diamond_is_bounded() {
    // 9 layers is the reported 81 tuples (278 MB before), 18 layers the 161 that ran out
    // of memory. Each userset is now expanded once: the answer grows with the tuples.
    for layers in [9, 18] {
        let engine = engine(Config::default());
        layered_diamond(&engine, layers);
        let tree = engine
            .expand(
                &ExpandRequest::new(object("folder:root"), "view", ExpandDepth::Recursive),
                Consistency::Full,
            )
            .unwrap()
            .tree;
        let n_tuples = 9 * layers + 4;
        assert!(
            size(&tree) < 10 * n_tuples,
            "{layers} layers: {} items",
            size(&tree)
        );
        assert!(has_repeat(&tree));
    }
}

#[test]
fn issue10_expand_past_its_size_limit_is_an_error_not_a_partial_tree() {
    let engine = engine(Config {
        expand_limit: 50,
        ..Config::default()
    });
    layered_diamond(&engine, 9);
    let res = engine.expand(
        &ExpandRequest::new(object("folder:root"), "view", ExpandDepth::Recursive),
        Consistency::Full,
    );
    assert!(
        matches!(res, Err(EngineError::ExpandTooLarge { limit: 50 })),
        "{res:?}"
    );
    let wide = engine.expand(
        &ExpandRequest::new(object("group:g9_0"), "member", ExpandDepth::OneLevel),
        Consistency::Full,
    );
    assert!(wide.is_ok());
}

#[test]
fn issue10_a_request_past_its_deadline_stops_every_walk() {
    let engine = engine(Config::default());
    layered_diamond(&engine, 4);
    let expired = Deadline::at(Instant::now());
    let flag = Arc::new(AtomicBool::new(true));
    for deadline in [expired, Deadline::none().with_flag(flag)] {
        let late = engine.with_deadline(deadline);
        let request = CheckRequest {
            resource: object("folder:root"),
            permission: "view".to_string(),
            subject: subject("user:u1"),
            context: None,
        };
        let results = [
            late.check(&request, Consistency::Full).map(|_| ()),
            late.check_bulk(std::slice::from_ref(&request), Consistency::Full)
                .map(|_| ()),
            late.expand(
                &ExpandRequest::new(object("folder:root"), "view", ExpandDepth::Recursive),
                Consistency::Full,
            )
            .map(|_| ()),
            late.lookup_resources(
                &LookupResourcesRequest::new("folder", "view", subject("user:u1")),
                Consistency::Full,
            )
            .map(|_| ()),
            late.lookup_subjects(
                &LookupSubjectsRequest::new(object("folder:root"), "view", "user"),
                Consistency::Full,
            )
            .map(|_| ()),
            late.read(
                &ReadRequest::new(RelationshipFilter::default()),
                Consistency::Full,
            )
            .map(|_| ()),
            late.delete(&DeleteRequest::new(RelationshipFilter::default()))
                .map(|_| ()),
            late.write(&touch(["folder:x#viewer@user:u1".to_string()]), &[])
                .map(|_| ()),
        ];
        for (n, res) in results.into_iter().enumerate() {
            assert!(
                matches!(res, Err(EngineError::DeadlineExceeded)),
                "call {n}: {res:?}"
            );
        }
        // The same engine without the deadline still answers, and nothing was written.
        assert!(check(&engine, "folder:root", "view", "user:u1").unwrap());
        assert!(!check(&engine, "folder:x", "view", "user:u1").unwrap());
    }
    let far = engine.with_deadline(Deadline::after(Duration::from_secs(3600)));
    assert!(
        far.lookup_resources(
            &LookupResourcesRequest::new("folder", "view", subject("user:u1")),
            Consistency::Full
        )
        .is_ok()
    );
    assert_eq!(EngineError::DeadlineExceeded.code(), "deadline_exceeded");
    assert!(!EngineError::DeadlineExceeded.is_client_error());
}

#[test]
fn issue10_lookup_page_costs_in_proportion_to_page() {
    let engine = engine(Config::default());
    let n_docs = 3_000;
    write(
        &engine,
        (0..n_docs).map(|n| format!("folder:f{n:05}#viewer@user:alice")),
    );
    let alice = subject("user:alice");
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    let mut n_pages = 0;
    loop {
        let page = engine
            .lookup_resources(
                &LookupResourcesRequest {
                    limit: 100,
                    cursor: cursor.clone(),
                    ..LookupResourcesRequest::new("folder", "view", alice.clone())
                },
                Consistency::Full,
            )
            .unwrap();
        n_pages += 1;
        all.extend(page.resources);
        let stats = engine.lookup_stats();
        // One walk for the whole listing: every later page resumes at its cursor.
        assert_eq!(stats.walks, 1, "page {n_pages}");
        assert_eq!(stats.resumed_pages, n_pages - 1);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(n_pages, 30);
    let steps = engine.lookup_stats().steps;
    assert!(
        steps >= n_docs as u64 && steps < 3 * n_docs as u64,
        "{steps}"
    );
    // Walk order, not sorted: every id once.
    all.sort();
    let expected: Vec<String> = (0..n_docs).map(|n| format!("f{n:05}")).collect();
    assert_eq!(all, expected);
    // A cursor pins its revision: a write between pages does not change the listing.
    let first = engine
        .lookup_resources(
            &LookupResourcesRequest {
                limit: 10,
                ..LookupResourcesRequest::new("folder", "view", alice.clone())
            },
            Consistency::Full,
        )
        .unwrap();
    let whole = engine
        .lookup_resources(
            &LookupResourcesRequest::new("folder", "view", alice.clone()),
            Consistency::AtExactSnapshot {
                revision: first.revision,
            },
        )
        .unwrap();
    assert_eq!(first.resources, whole.resources[..10]);
    write(&engine, ["folder:a#viewer@user:alice".to_string()]);
    let second = engine
        .lookup_resources(
            &LookupResourcesRequest {
                limit: 10,
                cursor: first.cursor.clone(),
                ..LookupResourcesRequest::new("folder", "view", alice.clone())
            },
            Consistency::Full,
        )
        .unwrap();
    assert_eq!(second.revision, first.revision);
    assert_eq!(second.resources, whole.resources[10..20]);
    // A malformed cursor is refused.
    let bad = engine.lookup_resources(
        &LookupResourcesRequest {
            limit: 10,
            cursor: Some("x:f1".to_string()),
            ..LookupResourcesRequest::new("folder", "view", alice.clone())
        },
        Consistency::Full,
    );
    assert!(
        matches!(
            bad,
            Err(EngineError::InvalidInput {
                field: "cursor",
                ..
            })
        ),
        "{bad:?}"
    );
}

#[test]
fn issue10_lookup_subjects_pages() {
    let engine = engine(Config::default());
    write(
        &engine,
        (0..250).map(|n| format!("folder:f#viewer@user:u{n:03}")),
    );
    let everyone = engine
        .lookup_subjects(
            &LookupSubjectsRequest::new(object("folder:f"), "view", "user"),
            Consistency::Full,
        )
        .unwrap();
    assert_eq!((everyone.subjects.len(), everyone.cursor), (250, None));
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = engine
            .lookup_subjects(
                &LookupSubjectsRequest {
                    limit: 100,
                    cursor: cursor.clone(),
                    ..LookupSubjectsRequest::new(object("folder:f"), "view", "user")
                },
                Consistency::Full,
            )
            .unwrap();
        assert!(page.subjects.len() <= 100);
        all.extend(page.subjects);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(all, everyone.subjects);
}

#[test]
fn issue10_preconditions_count_toward_max_batch() {
    let engine = engine(Config {
        max_batch: 10,
        ..Config::default()
    });
    let head = engine.head();
    let precondition = Precondition {
        op: PreconditionOp::MustNotExist,
        filter: RelationshipFilter {
            resource_type: Some("folder".to_string()),
            ..Default::default()
        },
    };
    let updates = touch((0..5).map(|n| format!("folder:f{n}#viewer@user:alice")));
    let res = engine.write(&updates, &vec![precondition.clone(); 6]);
    assert!(
        matches!(
            res,
            Err(EngineError::InvalidInput {
                field: "updates",
                ..
            })
        ),
        "{res:?}"
    );
    assert_eq!(engine.head(), head);
    engine
        .write(&updates, &vec![precondition; 5])
        .unwrap()
        .unwrap();
}

#[test]
fn issue10_filters_and_preconditions_naming_unknown_names_are_refused() {
    let engine = engine(Config::default());
    write(&engine, ["folder:f#viewer@user:alice".to_string()]);
    let head = engine.head();
    let misspelt = RelationshipFilter {
        resource_type: Some("folder".to_string()),
        relation: Some("viewers".to_string()),
        ..Default::default()
    };
    let res = engine.delete(&DeleteRequest::new(misspelt.clone()));
    assert!(
        matches!(
            res,
            Err(EngineError::InvalidInput {
                field: "filter",
                ..
            })
        ),
        "{res:?}"
    );
    let res = engine.read(&ReadRequest::new(misspelt.clone()), Consistency::Full);
    assert!(
        matches!(
            res,
            Err(EngineError::InvalidInput {
                field: "filter",
                ..
            })
        ),
        "{res:?}"
    );
    let guard = Precondition {
        op: PreconditionOp::MustExist,
        filter: RelationshipFilter {
            resource_type: Some("fodler".to_string()),
            ..Default::default()
        },
    };
    let res = engine.write(&touch(["folder:g#viewer@user:bob".to_string()]), &[guard]);
    match res {
        Err(EngineError::InvalidInput {
            field: "preconditions",
            message,
        }) => {
            assert!(
                message.contains("precondition 0") && message.contains("`fodler`"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(engine.head(), head);
}

#[test]
fn issue10_delete_by_filter_is_bounded_and_partial_only_when_allowed() {
    let engine = engine(Config::default());
    write(
        &engine,
        (0..30).map(|n| format!("folder:f{n:02}#viewer@user:alice")),
    );
    let filter = RelationshipFilter {
        resource_type: Some("folder".to_string()),
        ..Default::default()
    };
    let head = engine.head();
    let limited = DeleteOptions {
        limit: Some(10),
        allow_partial_deletions: false,
    };
    let res = engine.delete(&DeleteRequest {
        filter: filter.clone(),
        options: limited,
    });
    assert!(
        matches!(res, Err(EngineError::DeleteTooLarge { limit: 10, .. })),
        "{res:?}"
    );
    assert_eq!(engine.head(), head);
    let partial = engine
        .delete(&DeleteRequest {
            filter: filter.clone(),
            options: DeleteOptions {
                allow_partial_deletions: true,
                ..limited
            },
        })
        .unwrap();
    assert_eq!((partial.deleted, partial.partial), (10, true));
    let changes = engine.changes_since(head, 0).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].changes.len(), 10);
    let rest = engine.delete(&DeleteRequest::new(filter.clone())).unwrap();
    assert_eq!((rest.deleted, rest.partial), (20, false));
    for limit in [0, 10_001] {
        let res = engine.delete(&DeleteRequest {
            filter: filter.clone(),
            options: DeleteOptions {
                limit: Some(limit),
                allow_partial_deletions: true,
            },
        });
        assert!(
            matches!(res, Err(EngineError::InvalidInput { field: "limit", .. })),
            "{res:?}"
        );
    }
    // The default limit is 1,000.
    write(
        &engine,
        (0..1_001).map(|n| format!("folder:g{n}#viewer@user:bob")),
    );
    let res = engine.delete(&DeleteRequest::new(filter.clone()));
    assert!(
        matches!(res, Err(EngineError::DeleteTooLarge { limit: 1_000, .. })),
        "{res:?}"
    );
}

#[test]
fn issue10_full_disk_recovers_without_restart() {
    let store = FailingStore::new(MemoryStore::new());
    let switches = store.switches();
    let engine = Arbiter::with_store(Box::new(store), Config::default()).unwrap();
    engine.write_schema(SCHEMA).unwrap();
    assert_eq!(engine.store_health(), StoreHealth::Ok);
    // The disk fills up after the write committed (the flush fails): the caller gets an
    // error, and the store is marked failing.
    switches.fail_after_commit(true);
    let res = engine.write(&touch(["folder:a#viewer@user:alice".to_string()]), &[]);
    assert!(matches!(res, Err(EngineError::Store(_))), "{res:?}");
    assert!(matches!(engine.store_health(), StoreHealth::Failing { .. }));
    // While it fails, a write first probes the store and is refused before it commits.
    let res = engine.write(&touch(["folder:b#viewer@user:alice".to_string()]), &[]);
    assert!(matches!(res, Err(EngineError::Store(_))), "{res:?}");
    // Space is freed: the next probe recovers, and the index has caught up with what the
    // store committed, so check and the store agree.
    switches.fail_after_commit(false);
    assert_eq!(engine.store_health(), StoreHealth::Ok);
    let stored: Vec<Relationship> = engine
        .read(
            &ReadRequest::new(RelationshipFilter::default()),
            Consistency::Full,
        )
        .unwrap()
        .relationships;
    // The first write committed before its flush failed; the second never reached it.
    assert_eq!(stored.len(), 1, "{stored:?}");
    for folder in ["folder:a", "folder:b"] {
        let in_store = stored.iter().any(|it| it.resource.to_string() == folder);
        assert_eq!(
            check(&engine, folder, "view", "user:alice").unwrap(),
            in_store,
            "{folder}"
        );
    }
    // Writes work again without a restart.
    engine
        .write(&touch(["folder:c#viewer@user:alice".to_string()]), &[])
        .unwrap()
        .unwrap();
    assert!(check(&engine, "folder:c", "view", "user:alice").unwrap());
    // A write that fails before it commits recovers the same way.
    switches.fail_writes(true);
    assert!(
        engine
            .write(&touch(["folder:d#viewer@user:alice".to_string()]), &[])
            .is_err()
    );
    switches.fail_writes(false);
    engine
        .write(&touch(["folder:d#viewer@user:alice".to_string()]), &[])
        .unwrap()
        .unwrap();
    assert_eq!(engine.store_health(), StoreHealth::Ok);
    // A schema write that commits and then fails: after recovery the store's schema is
    // the one the engine serves.
    let extended = format!("{SCHEMA}\ndefinition team {{}}");
    switches.fail_after_commit(true);
    assert!(engine.write_schema(&extended).is_err());
    switches.fail_after_commit(false);
    assert_eq!(engine.store_health(), StoreHealth::Ok);
    assert_eq!(engine.schema_text().unwrap().0, extended);
}

/// Check, lookup resources and lookup subjects give the same answer for every folder of
/// a parent chain around the depth limit: an error where check errs, else the same set.
#[test]
fn issue10_check_and_lookups_agree_at_the_depth_limit() {
    let depth_limit = 8;
    for n_folders in depth_limit - 3..depth_limit + 4 {
        let engine = engine(Config {
            depth_limit: depth_limit as u32,
            ..Config::default()
        });
        let mut texts = vec!["folder:f0#viewer@user:alice".to_string()];
        for n in 1..n_folders {
            texts.push(format!("folder:f{n}#parent@folder:f{}", n - 1));
        }
        write(&engine, texts);
        let alice = subject("user:alice");
        let resources = engine.lookup_resources(
            &LookupResourcesRequest::new("folder", "view", alice.clone()),
            Consistency::Full,
        );
        let mut any_check_failed = false;
        for n in 0..n_folders {
            let folder = format!("folder:f{n}");
            let checked = check(&engine, &folder, "view", "user:alice");
            let subjects = engine
                .lookup_subjects(
                    &LookupSubjectsRequest::new(object(&folder), "view", "user"),
                    Consistency::Full,
                )
                .map(|it| it.subjects.contains(&"alice".to_string()));
            let context =
                format!("{n_folders} folders, {folder}: check {checked:?}, subjects {subjects:?}");
            match (&checked, &subjects) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{context}"),
                (Err(EngineError::DepthExceeded(_)), Err(EngineError::DepthExceeded(_))) => {}
                _ => panic!("disagree: {context}"),
            }
            match (&checked, &resources) {
                (Ok(allowed), Ok(page)) => {
                    assert_eq!(
                        *allowed,
                        page.resources.contains(&format!("f{n}")),
                        "{context}"
                    );
                }
                (Err(_), Ok(page)) => {
                    panic!("lookup resources answered {:?}: {context}", page.resources)
                }
                (_, Err(EngineError::DepthExceeded(_))) => {}
                (_, Err(other)) => panic!("{other:?}: {context}"),
            }
            any_check_failed |= checked.is_err();
        }
        assert_eq!(
            any_check_failed,
            resources.is_err(),
            "{n_folders} folders: {resources:?}"
        );
        // The chains straddle the limit: the shortest fit, the longest do not.
        if n_folders == depth_limit - 3 {
            assert!(!any_check_failed);
        }
        if n_folders == depth_limit + 3 {
            assert!(any_check_failed);
        }
    }
}

/// The users a recursive expand reaches (through repeated nodes too) are exactly the users
/// lookup subjects answers, on diamonds with and without a cycle back to the top.
#[test]
fn issue10_repeated_expand_nodes_keep_the_same_subjects() {
    let cycles: [&[&str]; 3] = [
        &[],
        &["group:g3_0#member@group:g0_0#member"],
        &[
            "group:g2_1#member@group:g1_0#member",
            "group:g1_2#member@group:g3_2#member",
        ],
    ];
    for extra in cycles {
        let engine = engine(Config::default());
        layered_diamond(&engine, 3);
        write(&engine, extra.iter().map(|it| it.to_string()));
        write(&engine, ["group:g1_1#member@user:mid".to_string()]);
        let tree = engine
            .expand(
                &ExpandRequest::new(object("folder:root"), "view", ExpandDepth::Recursive),
                Consistency::Full,
            )
            .unwrap()
            .tree;
        let membership = arbiter::validation::membership::Membership::of_tree(&tree).unwrap();
        let mut from_expand: Vec<String> = membership
            .found()
            .into_iter()
            .filter(|it| it.subject.object.object_type == "user")
            .map(|it| it.subject.object.object_id)
            .collect();
        from_expand.sort();
        let mut from_lookup = engine
            .lookup_subjects(
                &LookupSubjectsRequest::new(object("folder:root"), "view", "user"),
                Consistency::Full,
            )
            .unwrap()
            .subjects;
        // Walk order, not sorted.
        from_lookup.sort();
        assert_eq!(from_expand, from_lookup, "{extra:?}");
    }
}
