//! What only the sled store has: reopening keeps everything, retention by commit time,
//! rolling back a delete by filter that a crash interrupted, and the format version check.

use std::time::{Duration, SystemTime};

use arbiter::model::{Relationship, Revision};
use arbiter::store::keys::{self, Index};
use arbiter::store::{
    CHUNK_SIZE, RelationshipFilter, SledConfig, SledStore, Store, StoreError, Update, UpdateOp,
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

fn delete(text: &str) -> Update {
    Update {
        op: UpdateOp::Delete,
        relationship: rel(text),
    }
}

fn live_at(store: &SledStore, at: Revision) -> Vec<String> {
    let page = store
        .read(&RelationshipFilter::default(), at, 0, None)
        .unwrap();
    page.relationships.iter().map(ToString::to_string).collect()
}

#[test]
fn reopening_keeps_tuples_history_schema_and_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2, schema_revision) = {
        let store = SledStore::open_path(dir.path()).unwrap();
        let r1 = store
            .write(
                &[
                    touch("doc:a#viewer@user:alice"),
                    touch("doc:a#viewer@user:bob"),
                ],
                &[],
            )
            .unwrap()
            .unwrap()
            .revision;
        let r2 = store
            .write(&[delete("doc:a#viewer@user:bob")], &[])
            .unwrap()
            .unwrap()
            .revision;
        let schema_revision = store.write_schema("definition user {}").unwrap();
        (r1, r2, schema_revision)
    };
    let store = SledStore::open_path(dir.path()).unwrap();
    assert_eq!(store.head().unwrap(), schema_revision);
    assert_eq!(
        live_at(&store, r1),
        ["doc:a#viewer@user:alice", "doc:a#viewer@user:bob"]
    );
    assert_eq!(live_at(&store, r2), ["doc:a#viewer@user:alice"]);
    assert_eq!(
        store.read_schema().unwrap(),
        Some(("definition user {}".into(), schema_revision))
    );
    assert_eq!(store.changes_since(Revision(0), 0).unwrap().len(), 2);
    // Revisions continue from the stored counter.
    let next = store
        .write(&[touch("doc:b#viewer@user:carol")], &[])
        .unwrap()
        .unwrap();
    assert_eq!(next.revision, Revision(schema_revision.0 + 1));
}

#[test]
fn expiry_follows_commit_time_and_the_retention_window() {
    let config = SledConfig {
        retention: Duration::from_secs(3600),
        gc_interval: None,
        ..SledConfig::temporary()
    };
    let store = SledStore::open(&config).unwrap();
    let r1 = store
        .write(&[touch("doc:a#viewer@user:alice")], &[])
        .unwrap()
        .unwrap()
        .revision;
    let r2 = store
        .write(
            &[
                delete("doc:a#viewer@user:alice"),
                touch("doc:a#viewer@user:bob"),
            ],
            &[],
        )
        .unwrap()
        .unwrap()
        .revision;
    // Within the window nothing is collected.
    assert_eq!(store.collect_expired(SystemTime::now()).unwrap(), 0);
    assert_eq!(store.oldest_readable().unwrap(), Revision(0));
    assert_eq!(live_at(&store, r1), ["doc:a#viewer@user:alice"]);
    // An hour and a minute later, both revisions are past the window: the horizon is the
    // newest of them, whose state stays readable.
    let later = SystemTime::now() + Duration::from_secs(3660);
    assert!(store.collect_expired(later).unwrap() > 0);
    assert_eq!(store.oldest_readable().unwrap(), r2);
    assert!(matches!(
        store.read(&RelationshipFilter::default(), r1, 0, None),
        Err(StoreError::RevisionExpired { .. })
    ));
    assert_eq!(live_at(&store, r2), ["doc:a#viewer@user:bob"]);
}

#[test]
fn the_horizon_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open_path(dir.path()).unwrap();
        for i in 0..3 {
            store
                .write(&[touch(&format!("doc:a#viewer@user:u{i}"))], &[])
                .unwrap()
                .unwrap();
        }
        store.collect_garbage(Revision(2)).unwrap();
    }
    let store = SledStore::open_path(dir.path()).unwrap();
    assert_eq!(store.oldest_readable().unwrap(), Revision(2));
    assert_eq!(live_at(&store, Revision(3)).len(), 3);
}

/// Simulates a crash half-way through a multi-chunk delete by filter: the first chunk's
/// transaction (pending marker, versions marked deleted at the next revision, its part of
/// the change log) is on disk, the last one is not. Opening must undo the first chunk.
#[test]
fn an_interrupted_delete_by_filter_is_rolled_back_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let n = CHUNK_SIZE + 10;
    let head = {
        let store = SledStore::open_path(dir.path()).unwrap();
        let sets = store
            .import(&mut (0..n).map(|i| rel(&format!("doc:d{i}#viewer@user:u"))))
            .unwrap();
        sets.last().unwrap().revision
    };
    let pending = Revision(head.0 + 1);
    let filter = RelationshipFilter {
        resource_type: Some("doc".into()),
        ..Default::default()
    };
    {
        let db = SledStore::open_raw(dir.path()).unwrap();
        let by_resource = db.open_tree(keys::TREE_RESOURCE_BLOCKS).unwrap();
        let by_subject = db.open_tree(keys::TREE_SUBJECT_BLOCKS).unwrap();
        let changes = db.open_tree(keys::TREE_CHANGES).unwrap();
        let meta = db.open_tree(keys::TREE_META).unwrap();
        let mut marker = keys::encode_u64(pending.0).to_vec();
        marker.extend_from_slice(&keys::encode_filter(&filter));
        meta.insert(keys::META_PENDING, marker).unwrap();
        // The first half of the versions (in `by_resource` order) marked deleted at the
        // pending revision in both indexes, as the first chunk's transaction would.
        let deleted = keys::encode_u64(pending.0).to_vec();
        let mut half = Vec::new();
        let mut in_subject_index = std::collections::BTreeSet::new();
        rewrite_entries(&by_resource, &mut |key, value| {
            if half.len() == n / 2 {
                return value.to_vec();
            }
            let (rel, created) = keys::decode_version_key(Index::Resource, key).unwrap();
            in_subject_index.insert(keys::version_key(Index::Subject, &rel, created));
            half.push(rel);
            deleted.clone()
        });
        rewrite_entries(&by_subject, &mut |key, value| {
            if in_subject_index.contains(key) {
                deleted.clone()
            } else {
                value.to_vec()
            }
        });
        assert_eq!(half.len(), n / 2);
        let log = keys::encode_changes(half.iter().map(|r| (arbiter::store::ChangeOp::Delete, r)));
        changes.insert(keys::change_key(pending, 0), log).unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open_path(dir.path()).unwrap();
    assert_eq!(store.head().unwrap(), head);
    assert_eq!(live_at(&store, head).len(), n);
    assert!(store.changes_since(head, 0).unwrap().is_empty());
    // The revision is free again, and a real delete now takes it whole.
    let deleted = store.delete_by_filter(&filter, 0).unwrap();
    assert_eq!(deleted.revision, pending);
    assert_eq!(deleted.changes.len(), n);
    assert!(live_at(&store, pending).is_empty());
    assert_eq!(store.changes_since(head, 0).unwrap()[0].changes.len(), n);
}

/// Rewrites the value of every entry of a format-3 block tree with `f(key, value)`.
fn rewrite_entries(tree: &sled::Tree, f: &mut impl FnMut(&[u8], &[u8]) -> Vec<u8>) {
    for item in tree.iter() {
        let (block_key, value) = item.unwrap();
        let entries: Vec<(Vec<u8>, Vec<u8>)> = keys::decode_block(&block_key, &value)
            .unwrap()
            .into_iter()
            .map(|(key, value)| {
                let value = f(&key, &value);
                (key, value)
            })
            .collect();
        tree.insert(&block_key, keys::encode_block(&entries))
            .unwrap();
    }
}

#[test]
fn a_database_of_another_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(SledStore::open_path(dir.path()).unwrap());
    {
        let db = SledStore::open_raw(dir.path()).unwrap();
        let meta = db.open_tree(keys::TREE_META).unwrap();
        meta.insert(keys::META_FORMAT, &keys::encode_u32(99))
            .unwrap();
        db.flush().unwrap();
    }
    let err = SledStore::open_path(dir.path()).err().unwrap();
    assert!(err.to_string().contains("format version 99"), "{err}");
}

#[test]
fn non_durable_writes_are_readable_at_once() {
    let config = SledConfig {
        durable: false,
        ..SledConfig::temporary()
    };
    let store = SledStore::open(&config).unwrap();
    let res = store
        .write(&[touch("doc:a#viewer@user:alice")], &[])
        .unwrap()
        .unwrap();
    assert_eq!(live_at(&store, res.revision), ["doc:a#viewer@user:alice"]);
    store.flush().unwrap();
}

/// Regression (found by `store_model`, seed in `store_model.proptest-regressions`): a
/// reopen right after a drop failed with "could not acquire lock", because sled's I/O
/// threads hold the database file for a moment after the `Db` is dropped. `open` now
/// waits for the lock (a few seconds at most).
#[test]
fn reopening_right_after_a_drop_waits_for_the_file_lock() {
    let dir = tempfile::tempdir().unwrap();
    let config = SledConfig {
        durable: false,
        gc_interval: None,
        ..SledConfig::new(dir.path())
    };
    for round in 0..50 {
        let store = SledStore::open(&config)
            .unwrap_or_else(|err| panic!("round {round}: reopen failed: {err}"));
        store
            .write(&[touch(&format!("doc:a#viewer@user:u{round}"))], &[])
            .unwrap()
            .unwrap();
        assert_eq!(store.head().unwrap(), Revision(round + 1));
    }
}

#[test]
fn the_background_collector_runs_and_readers_at_the_head_stay_correct() {
    let config = SledConfig {
        retention: Duration::ZERO,
        gc_interval: Some(Duration::from_millis(20)),
        ..SledConfig::temporary()
    };
    let store = SledStore::open(&config).unwrap();
    let keep: Vec<Update> = (0..100)
        .map(|i| touch(&format!("doc:d#viewer@user:keep{i}")))
        .collect();
    store.write(&keep, &[]).unwrap().unwrap();
    for round in 0..30 {
        let doomed: Vec<Update> = (0..20)
            .map(|i| touch(&format!("doc:d#viewer@user:r{round}_{i}")))
            .collect();
        store.write(&doomed, &[]).unwrap().unwrap();
        let filter = RelationshipFilter {
            subject_type: Some("user".into()),
            ..Default::default()
        };
        let mut gone: Vec<Update> = Vec::new();
        store
            .read(&filter, store.head().unwrap(), 0, None)
            .unwrap()
            .relationships
            .into_iter()
            .filter(|rel| rel.subject.object.object_id.starts_with('r'))
            .for_each(|rel| {
                gone.push(Update {
                    op: UpdateOp::Delete,
                    relationship: rel,
                })
            });
        store.write(&gone, &[]).unwrap().unwrap();
        // Reads at the head are exact while the collector removes the dead versions.
        let resource = arbiter::model::ObjectRef::new("doc", "d").unwrap();
        let head = store.head().unwrap();
        assert_eq!(
            store.subjects(&resource, "viewer", head).unwrap().len(),
            100
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.oldest_readable().unwrap() < Revision(2) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        store.oldest_readable().unwrap() >= Revision(2),
        "the background collector never ran"
    );
    let head = store.head().unwrap();
    assert_eq!(live_at(&store, head).len(), 100);
}
