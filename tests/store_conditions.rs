//! Caveats and expirations in the store (issue 11): they are stored and read back with
//! the tuple, a touch with other conditions replaces the live version (a delete and a
//! touch in one change set), a delete ends the version it finds, and a format-1 database
//! is migrated at open. Every semantic test runs against both stores.

use arbiter::model::{Relationship, Revision};
use arbiter::store::keys;
use arbiter::store::{
    Change, MemoryStore, RelationshipFilter, SledStore, Store, StoreError, Update, UpdateOp,
};

const PLAIN: &str = "doc:a#viewer@user:tom";
const CAVEATED: &str = r#"doc:a#viewer@user:tom[ip_allowlist:{"cidr":"10.0.0.0/8"}]"#;
const OTHER_CONTEXT: &str = r#"doc:a#viewer@user:tom[ip_allowlist:{"cidr":"192.168.0.0/16"}]"#;
const BOTH: &str =
    r#"doc:a#viewer@user:tom[ip_allowlist:{"cidr":"10.0.0.0/8"}][expiration:2026-12-01T00:00:00Z]"#;

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

/// Runs `test` against a fresh store of each kind.
fn each_store(test: impl Fn(&dyn Store)) {
    test(&MemoryStore::new());
    test(&SledStore::temporary().expect("open temporary sled store"));
}

/// Writes one update and renders the effective changes as `op text` lines.
fn write(store: &dyn Store, op: UpdateOp, text: &str) -> Vec<String> {
    let change_set = store
        .write(&[update(op, text)], &[])
        .expect("store failure")
        .expect("write rejected");
    render(&change_set.changes)
}

fn render(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|change| format!("{:?} {}", change.op, change.relationship))
        .collect()
}

fn read_all(store: &dyn Store, at: Revision) -> Vec<String> {
    let page = store
        .read(&RelationshipFilter::default(), at, 0, None)
        .expect("read");
    page.relationships.iter().map(ToString::to_string).collect()
}

#[test]
fn issue11_touch_with_other_conditions_replaces_the_live_version() {
    each_store(|store| {
        assert_eq!(
            write(store, UpdateOp::Touch, PLAIN),
            [format!("Touch {PLAIN}")]
        );
        let plain_at = store.head().unwrap();
        assert_eq!(
            write(store, UpdateOp::Touch, CAVEATED),
            [format!("Delete {PLAIN}"), format!("Touch {CAVEATED}")]
        );
        let caveated_at = store.head().unwrap();
        // The same conditions again change nothing; other ones replace again.
        assert!(write(store, UpdateOp::Touch, CAVEATED).is_empty());
        assert_eq!(
            write(store, UpdateOp::Touch, OTHER_CONTEXT),
            [
                format!("Delete {CAVEATED}"),
                format!("Touch {OTHER_CONTEXT}")
            ]
        );
        assert_eq!(
            write(store, UpdateOp::Touch, BOTH),
            [format!("Delete {OTHER_CONTEXT}"), format!("Touch {BOTH}")]
        );
        // Every revision reads the version live at it, with its conditions.
        assert_eq!(read_all(store, plain_at), [PLAIN]);
        assert_eq!(read_all(store, caveated_at), [CAVEATED]);
        assert_eq!(read_all(store, store.head().unwrap()), [BOTH]);
        // A create of the same tuple is refused whatever its conditions.
        let refused = store
            .write(&[update(UpdateOp::Create, PLAIN)], &[])
            .unwrap();
        assert!(refused.is_err(), "{refused:?}");
    });
}

#[test]
fn issue11_delete_ends_the_stored_version_with_its_conditions() {
    each_store(|store| {
        write(store, UpdateOp::Create, BOTH);
        // The delete names the tuple; the change carries what was stored.
        assert_eq!(
            write(store, UpdateOp::Delete, PLAIN),
            [format!("Delete {BOTH}")]
        );
        assert!(read_all(store, store.head().unwrap()).is_empty());
        let log: Vec<Vec<String>> = store
            .changes_since(Revision(0), 0)
            .unwrap()
            .iter()
            .map(|set| render(&set.changes))
            .collect();
        assert_eq!(log, [[format!("Touch {BOTH}")], [format!("Delete {BOTH}")]]);
        // Delete by filter keeps the conditions in the change log as well.
        write(store, UpdateOp::Touch, CAVEATED);
        let deleted = store
            .delete_by_filter(&RelationshipFilter::default(), 0)
            .unwrap();
        assert_eq!(render(&deleted.changes), [format!("Delete {CAVEATED}")]);
    });
}

#[test]
fn issue11_the_same_tuple_twice_in_a_batch_is_a_duplicate_whatever_its_conditions() {
    each_store(|store| {
        let res = store
            .write(
                &[
                    update(UpdateOp::Touch, PLAIN),
                    update(UpdateOp::Touch, CAVEATED),
                ],
                &[],
            )
            .unwrap();
        assert!(res.is_err(), "{res:?}");
        assert_eq!(store.head().unwrap(), Revision(0));
    });
}

#[test]
fn issue11_export_then_import_round_trips_the_text_form() {
    let lines = [
        PLAIN.replace("doc:a", "doc:b"),
        CAVEATED.to_string(),
        "doc:c#viewer@group:g#member[expiration:2300-12-01T00:00:00.25Z]".to_string(),
        r#"doc:d#viewer@user:*[org/cav:{"list":[1,2.5,"]"],"nested":{"x":null}}][expiration:2023-12-01T00:00:00Z]"#.to_string(),
        "doc:e#viewer@user:tom[no_context]".to_string(),
    ];
    each_store(|store| {
        // An import where a tuple appears twice keeps the last occurrence.
        let mut input: Vec<Relationship> = lines.iter().map(|it| rel(it)).collect();
        input.insert(0, rel(CAVEATED).tuple());
        store.import(&mut input.into_iter()).unwrap();
        let exported = read_all(store, store.head().unwrap());
        let mut expected = lines.to_vec();
        expected.sort();
        assert_eq!(exported, expected);
        let reimported = MemoryStore::new();
        reimported
            .import(&mut exported.iter().map(|it| rel(it)))
            .unwrap();
        assert_eq!(read_all(&reimported, reimported.head().unwrap()), exported);
    });
}

#[test]
fn issue11_conditions_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open_path(dir.path()).unwrap();
        write(&store, UpdateOp::Touch, BOTH);
    }
    let store = SledStore::open_path(dir.path()).unwrap();
    assert_eq!(read_all(&store, store.head().unwrap()), [BOTH]);
    let mut live = Vec::new();
    store
        .for_each_live(&mut |rel| live.push(rel.to_string()))
        .unwrap();
    assert_eq!(live, [BOTH]);
}

#[test]
fn issue11_a_format_1_database_is_migrated_at_open() {
    let dir = tempfile::tempdir().unwrap();
    // What format 1 wrote for a touch of PLAIN at revision 1: one key per version in each
    // index (a value without conditions), the change log, the revision record and `meta`.
    {
        let db = SledStore::open_raw(dir.path()).unwrap();
        let tree = |name: &str| db.open_tree(name).unwrap();
        let plain = rel(PLAIN);
        for (name, index) in [
            (keys::TREE_BY_RESOURCE, keys::Index::Resource),
            (keys::TREE_BY_SUBJECT, keys::Index::Subject),
        ] {
            let key = keys::version_key(index, &plain, Revision(1));
            tree(name)
                .insert(key, &keys::encode_u64(keys::LIVE))
                .unwrap();
        }
        let log = keys::encode_changes([(arbiter::store::ChangeOp::Touch, &plain)]);
        tree(keys::TREE_CHANGES)
            .insert(keys::change_key(Revision(1), 0), log)
            .unwrap();
        tree(keys::TREE_REVISIONS)
            .insert(keys::encode_u64(1), &keys::encode_u64(1_700_000_000_000))
            .unwrap();
        let meta = tree(keys::TREE_META);
        meta.insert(keys::META_HEAD, &keys::encode_u64(1)).unwrap();
        meta.insert(keys::META_FORMAT, &keys::encode_u32(1))
            .unwrap();
        db.flush().unwrap();
    }
    let set_format = |version: u32| {
        let db = SledStore::open_raw(dir.path()).unwrap();
        let meta = db.open_tree(keys::TREE_META).unwrap();
        meta.insert(keys::META_FORMAT, &keys::encode_u32(version))
            .unwrap();
        db.flush().unwrap();
    };
    let read_format = || {
        let db = SledStore::open_raw(dir.path()).unwrap();
        let meta = db.open_tree(keys::TREE_META).unwrap();
        keys::decode_u32(&meta.get(keys::META_FORMAT).unwrap().unwrap()).unwrap()
    };
    {
        let store = SledStore::open_path(dir.path()).unwrap();
        assert_eq!(read_all(&store, store.head().unwrap()), [PLAIN]);
        let log = store.changes_since(Revision(0), 0).unwrap();
        assert_eq!(render(&log[0].changes), [format!("Touch {PLAIN}")]);
        assert_eq!(
            write(&store, UpdateOp::Touch, CAVEATED),
            [format!("Delete {PLAIN}"), format!("Touch {CAVEATED}")]
        );
    }
    assert_eq!(read_format(), keys::FORMAT_VERSION);
    // A format newer than this binary's is refused, naming the version and what to do.
    set_format(keys::FORMAT_VERSION + 1);
    let err = SledStore::open_path(dir.path()).err().expect("refused");
    assert!(matches!(err, StoreError::UnsupportedFormat { .. }), "{err}");
    let message = err.to_string();
    let newer = format!("format version {}", keys::FORMAT_VERSION + 1);
    assert!(message.contains(&newer), "{message}");
    assert!(message.contains("arbiter export"), "{message}");
}
