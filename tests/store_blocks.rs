//! Store format 3 (issue 14 item 3): version entries packed into blocks. Paged reads whose
//! cursors cross block edges in both index orders, collection inside blocks, the
//! migration of a format-2 database (whole, after a crash half-way, after a crash between
//! the switch and the cleanup), and a crash during an import leaving the old state.

use arbiter::model::{Relationship, Revision};
use arbiter::store::keys::{self, Index};
use arbiter::store::{
    ChangeOp, MemoryStore, RelationshipFilter, SledStore, Store, Update, UpdateOp,
};

fn rel(text: &str) -> Relationship {
    text.parse()
        .unwrap_or_else(|err| panic!("bad test relationship {text}: {err}"))
}

fn touch(text: &str) -> Update {
    Update {
        op: UpdateOp::Touch,
        relationship: rel(text),
    }
}

/// 600 distinct relationships over few resources and subjects, so that one resource's
/// or one subject's relationships span several blocks of either index.
fn dataset() -> Vec<Relationship> {
    (0..600)
        .map(|n| match n % 3 {
            0 => rel(&format!("doc:d{}#viewer@user:x{n}", n % 2)),
            1 => rel(&format!("doc:e{n}#viewer@user:u{}", n % 2)),
            _ => rel(&format!("doc:d{}#viewer@group:g{n}#member", n % 2)),
        })
        .collect()
}

fn texts(rels: &[Relationship]) -> Vec<String> {
    rels.iter().map(ToString::to_string).collect()
}

/// Every page of `filter` at the head, `limit` at a time, concatenated.
fn paged(store: &dyn Store, filter: &RelationshipFilter, limit: usize) -> Vec<String> {
    let head = store.head().unwrap();
    let mut res = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.read(filter, head, limit, cursor.as_deref()).unwrap();
        res.extend(texts(&page.relationships));
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return res,
        }
    }
}

#[test]
fn issue14_paged_reads_cross_block_edges_in_both_orders() {
    let sled = SledStore::temporary().unwrap();
    let memory = MemoryStore::new();
    for store in [&sled as &dyn Store, &memory] {
        store.import(&mut dataset().into_iter()).unwrap();
        // Some deletes, so that pages also skip invisible versions inside blocks.
        let deletes: Vec<Update> = dataset()
            .into_iter()
            .step_by(9)
            .map(|relationship| Update {
                op: UpdateOp::Delete,
                relationship,
            })
            .collect();
        for chunk in deletes.chunks(50) {
            store.write(chunk, &[]).unwrap().unwrap();
        }
    }
    let filters = [
        RelationshipFilter {
            resource_type: Some("doc".into()),
            ..Default::default()
        },
        RelationshipFilter {
            resource_type: Some("doc".into()),
            resource_id: Some("d1".into()),
            ..Default::default()
        },
        RelationshipFilter {
            subject_type: Some("user".into()),
            ..Default::default()
        },
        RelationshipFilter {
            subject_type: Some("user".into()),
            subject_id: Some("u1".into()),
            ..Default::default()
        },
        RelationshipFilter::default(),
    ];
    for filter in &filters {
        let whole = paged(&memory, filter, 0);
        assert!(whole.len() > 60, "{filter:?}: {}", whole.len());
        for limit in [1, 7, 63, 64, 65, 200] {
            assert_eq!(paged(&sled, filter, limit), whole, "{filter:?} by {limit}");
        }
    }
}

#[test]
fn issue14_collection_inside_blocks_removes_only_old_versions() {
    let store = SledStore::temporary().unwrap();
    let all = dataset();
    store.import(&mut all.clone().into_iter()).unwrap();
    let before = store.head().unwrap();
    let doomed: Vec<Update> = all
        .iter()
        .step_by(2)
        .map(|it| Update {
            op: UpdateOp::Delete,
            relationship: it.clone(),
        })
        .collect();
    for chunk in doomed.chunks(100) {
        store.write(chunk, &[]).unwrap().unwrap();
    }
    let head = store.head().unwrap();
    let live_before = paged(&store, &RelationshipFilter::default(), 0);
    let n_deleted = dataset_unique(&all.iter().step_by(2).cloned().collect::<Vec<_>>());
    // Versions deleted at or before the horizon go, with the change log up to it.
    let removed = store.collect_garbage(head).unwrap();
    assert!(removed >= n_deleted, "{removed} < {n_deleted}");
    assert_eq!(
        paged(&store, &RelationshipFilter::default(), 0),
        live_before
    );
    assert!(
        store
            .read(&RelationshipFilter::default(), before, 0, None)
            .is_err()
    );
    // Both indexes agree on what is left.
    let by_subject = RelationshipFilter {
        subject_type: Some("user".into()),
        ..Default::default()
    };
    let mut users: Vec<String> = live_before
        .iter()
        .filter(|it| it.contains("@user:"))
        .cloned()
        .collect();
    users.sort();
    let mut read = paged(&store, &by_subject, 0);
    read.sort();
    assert_eq!(read, users);
    // Collecting again finds nothing.
    assert_eq!(store.collect_garbage(head).unwrap(), 0);
}

fn dataset_unique(rels: &[Relationship]) -> usize {
    let mut texts = texts(rels);
    texts.sort();
    texts.dedup();
    texts.len()
}

/// What format 2 wrote for `live` (created at revision 1) and `ended` (created at 1,
/// deleted at 2), with the change log and revision records, then `meta` at head 2.
fn write_format_2(dir: &std::path::Path, live: &[Relationship], ended: &[Relationship]) {
    let db = SledStore::open_raw(dir).unwrap();
    let tree = |name: &str| db.open_tree(name).unwrap();
    for (name, index) in [
        (keys::TREE_BY_RESOURCE, Index::Resource),
        (keys::TREE_BY_SUBJECT, Index::Subject),
    ] {
        for (rels, deleted) in [(live, keys::LIVE), (ended, 2)] {
            for rel in rels {
                let key = keys::version_key(index, rel, Revision(1));
                tree(name)
                    .insert(key, keys::encode_version_value(deleted, rel))
                    .unwrap();
            }
        }
    }
    let touches = live.iter().chain(ended).map(|it| (ChangeOp::Touch, it));
    let changes = tree(keys::TREE_CHANGES);
    changes
        .insert(
            keys::change_key(Revision(1), 0),
            keys::encode_changes(touches),
        )
        .unwrap();
    let deletes = ended.iter().map(|it| (ChangeOp::Delete, it));
    changes
        .insert(
            keys::change_key(Revision(2), 0),
            keys::encode_changes(deletes),
        )
        .unwrap();
    for revision in [1, 2] {
        tree(keys::TREE_REVISIONS)
            .insert(
                keys::encode_u64(revision),
                &keys::encode_u64(1_700_000_000_000),
            )
            .unwrap();
    }
    let meta = tree(keys::TREE_META);
    meta.insert(keys::META_HEAD, &keys::encode_u64(2)).unwrap();
    meta.insert(keys::META_FORMAT, &keys::encode_u32(2))
        .unwrap();
    db.flush().unwrap();
}

fn read_format(dir: &std::path::Path) -> (u32, Vec<String>) {
    let db = SledStore::open_raw(dir).unwrap();
    let meta = db.open_tree(keys::TREE_META).unwrap();
    let format = keys::decode_u32(&meta.get(keys::META_FORMAT).unwrap().unwrap()).unwrap();
    let trees = db
        .tree_names()
        .iter()
        .map(|it| String::from_utf8_lossy(it).into_owned())
        .collect();
    (format, trees)
}

/// The format-2 fixture: 300 live relationships (some with conditions) and 40 ended.
fn fixture() -> (Vec<Relationship>, Vec<Relationship>) {
    let live: Vec<Relationship> = (0..300)
        .map(|n| match n % 10 {
            0 => rel(&format!(
                r#"doc:m{n}#viewer@user:u{}[ip_allowlist:{{"cidr":"10.0.0.0/8"}}]"#,
                n % 11
            )),
            1 => rel(&format!(
                "doc:m{n}#viewer@user:u{}[expiration:2999-01-01T00:00:00Z]",
                n % 11
            )),
            _ => rel(&format!("doc:m{n}#viewer@user:u{}", n % 11)),
        })
        .collect();
    let ended = (0..40)
        .map(|n| rel(&format!("doc:old{n}#viewer@user:u{n}")))
        .collect();
    (live, ended)
}

fn check_migrated(store: &SledStore, live: &[Relationship], ended: &[Relationship]) {
    assert_eq!(store.head().unwrap(), Revision(2));
    let mut expected = texts(live);
    expected.sort();
    let mut now = paged(store, &RelationshipFilter::default(), 0);
    now.sort();
    assert_eq!(now, expected);
    // History survives: at revision 1 the ended ones were live.
    let at_1 = store
        .read(&RelationshipFilter::default(), Revision(1), 0, None)
        .unwrap();
    assert_eq!(at_1.relationships.len(), live.len() + ended.len());
    let log = store.changes_since(Revision(0), 0).unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].changes.len(), ended.len());
    // The reverse index came over too.
    let subjects = store
        .resources(
            &rel("doc:x#viewer@user:u3").subject,
            None,
            None,
            Revision(2),
        )
        .unwrap();
    assert_eq!(
        subjects.len(),
        live.iter()
            .filter(|it| it.subject.object.object_id == "u3")
            .count()
    );
}

#[test]
fn issue14_a_format_2_database_is_packed_into_blocks_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (live, ended) = fixture();
    write_format_2(dir.path(), &live, &ended);
    {
        let store = SledStore::open_path(dir.path()).unwrap();
        check_migrated(&store, &live, &ended);
        // And it takes writes.
        store
            .write(&[touch("doc:new#viewer@user:u1")], &[])
            .unwrap()
            .unwrap();
    }
    let (format, trees) = read_format(dir.path());
    assert_eq!(format, keys::FORMAT_VERSION);
    assert!(
        !trees.iter().any(|it| it == keys::TREE_BY_RESOURCE),
        "{trees:?}"
    );
    assert!(
        !trees.iter().any(|it| it == keys::TREE_BY_SUBJECT),
        "{trees:?}"
    );
    let store = SledStore::open_path(dir.path()).unwrap();
    assert_eq!(
        paged(&store, &RelationshipFilter::default(), 0).len(),
        live.len() + 1
    );
}

#[test]
fn issue14_a_migration_interrupted_before_the_switch_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let (live, ended) = fixture();
    write_format_2(dir.path(), &live, &ended);
    {
        // A crash half-way left some blocks (here: garbage ones) in the new trees.
        let db = SledStore::open_raw(dir.path()).unwrap();
        let blocks = db.open_tree(keys::TREE_RESOURCE_BLOCKS).unwrap();
        let stray = keys::version_key(
            Index::Resource,
            &rel("doc:stray#viewer@user:x"),
            Revision(1),
        );
        let entry = (stray.clone(), keys::encode_u64(keys::LIVE).to_vec());
        blocks.insert(&stray, keys::encode_block(&[entry])).unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open_path(dir.path()).unwrap();
    check_migrated(&store, &live, &ended);
}

#[test]
fn issue14_a_migration_interrupted_after_the_switch_drops_the_old_trees() {
    let dir = tempfile::tempdir().unwrap();
    let (live, ended) = fixture();
    write_format_2(dir.path(), &live, &ended);
    drop(SledStore::open_path(dir.path()).unwrap());
    {
        // The old trees are back, as if the crash came before they were dropped.
        let db = SledStore::open_raw(dir.path()).unwrap();
        db.open_tree(keys::TREE_BY_RESOURCE)
            .unwrap()
            .insert(b"left", b"over")
            .unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open_path(dir.path()).unwrap();
    check_migrated(&store, &live, &ended);
    drop(store);
    let (_, trees) = read_format(dir.path());
    assert!(
        !trees.iter().any(|it| it == keys::TREE_BY_RESOURCE),
        "{trees:?}"
    );
}

/// Everything a store answers about its state, for comparing before and after.
fn snapshot(store: &SledStore) -> (Revision, Vec<String>, Vec<String>, usize) {
    let head = store.head().unwrap();
    let mut live = paged(store, &RelationshipFilter::default(), 0);
    live.sort();
    let by_subject = RelationshipFilter {
        subject_type: Some("user".into()),
        ..Default::default()
    };
    let mut users = paged(store, &by_subject, 0);
    users.sort();
    let log = store.changes_since(Revision(0), 0).unwrap().len();
    (head, live, users, log)
}

/// A crash during an import, simulated at its last moment: every transaction but the last
/// landed (blocks, change log, revision records), so the `pending` marker is still there
/// and `meta/head` still names the revision before the import. Opening must give back
/// exactly the state before the import, and the next import reuses its revisions. An
/// import into an empty store writes both indexes at once, so a crash may also leave the
/// subject index written and the resource index not.
#[test]
fn issue14_a_crash_during_an_import_leaves_the_old_state() {
    // (what the store holds before, what the interrupted import brings, whether the
    // resource index lost its blocks)
    let cases: Vec<(&str, Vec<String>, Vec<String>, bool)> = vec![
        (
            "new tuples into an empty store",
            vec![],
            (0..1_000)
                .map(|n| format!("doc:i{n}#viewer@user:u{}", n % 13))
                .collect(),
            false,
        ),
        (
            "new tuples into an empty store, only the subject index written",
            vec![],
            (0..1_000)
                .map(|n| format!("doc:i{n}#viewer@user:u{}", n % 13))
                .collect(),
            true,
        ),
        (
            "new tuples among existing ones",
            (0..500)
                .map(|n| format!("doc:i{}#viewer@user:a", n * 2))
                .collect(),
            (0..500)
                .map(|n| format!("doc:i{}#viewer@user:a", n * 2 + 1))
                .collect(),
            false,
        ),
        (
            "tuples replaced with other conditions, and repeated ones",
            (0..300)
                .map(|n| format!("doc:i{n}#viewer@user:b"))
                .collect(),
            (0..600)
                .map(|n| {
                    format!(
                        "doc:i{}#viewer@user:b[expiration:2999-01-01T00:00:00Z]",
                        n % 400
                    )
                })
                .collect(),
            false,
        ),
    ];
    for (name, before, import, lose_resource) in cases {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open_path(dir.path()).unwrap();
        if !before.is_empty() {
            store.import(&mut before.iter().map(|it| rel(it))).unwrap();
        }
        store.write_schema("definition user {}").unwrap();
        let expected = snapshot(&store);
        let sets = store.import(&mut import.iter().map(|it| rel(it))).unwrap();
        assert!(sets.len() > 1, "{name}");
        drop(store);
        {
            let db = SledStore::open_raw(dir.path()).unwrap();
            let meta = db.open_tree(keys::TREE_META).unwrap();
            let first = Revision(expected.0.0 + 1);
            let mut marker = keys::encode_u64(first.0).to_vec();
            marker.extend_from_slice(&keys::encode_filter(&RelationshipFilter::default()));
            meta.insert(keys::META_PENDING, marker).unwrap();
            meta.insert(keys::META_HEAD, &keys::encode_u64(expected.0.0))
                .unwrap();
            if lose_resource {
                let blocks = db.open_tree(keys::TREE_RESOURCE_BLOCKS).unwrap();
                blocks.clear().unwrap();
            }
            db.flush().unwrap();
        }
        let store = SledStore::open_path(dir.path()).unwrap();
        assert_eq!(snapshot(&store), expected, "{name}");
        assert!(
            store.changes_since(expected.0, 0).unwrap().is_empty(),
            "{name}"
        );
        if lose_resource {
            // A subject entry left behind would show once the head reaches the revisions
            // the import had used: both indexes must agree there.
            store.write_schema("definition user {}").unwrap();
            let (_, live, users, _) = snapshot(&store);
            assert_eq!(users, live, "{name}");
            continue;
        }
        let again = store.import(&mut import.iter().map(|it| rel(it))).unwrap();
        assert_eq!(again[0].revision, Revision(expected.0.0 + 1), "{name}");
        assert_eq!(again.len(), sets.len(), "{name}");
        assert_eq!(
            again, sets,
            "{name}: the same import gives the same change sets"
        );
    }
}
