//! The sled collector skips what it provably cannot find (issue 14): the expired sweep and
//! version GC walk the whole resource index only when the durable marks
//! `meta/expires_from` and `meta/ended_since` say an expired relationship or an ended
//! version may be there.
//! A walk reads every block and fills sled's page cache, which doubled the resident set
//! of a 1M server a minute after its start. Counted through
//! [`SledStore::collector_walks`]: (expired-sweep walks, version-GC walks) since open.

use arbiter::model::{Relationship, Revision, Timestamp};
use arbiter::store::{RelationshipFilter, SledConfig, SledStore, Store, Update, UpdateOp, keys};

const PLAIN: &str = "doc:a#viewer@user:tom";
const OTHER: &str = "doc:b#viewer@user:ann";
const PLAIN_CAVEATED: &str = r#"doc:a#viewer@user:tom[cav:{"k":1}]"#;
const EXPIRES_2999: &str = "doc:c#viewer@user:eve[expiration:2999-01-01T00:00:00Z]";
/// After every expiration above: a sweep at this time collects them all.
const FAR_FUTURE: &str = "3000-01-01T00:00:00Z";

fn rel(text: &str) -> Relationship {
    text.parse()
        .unwrap_or_else(|err| panic!("bad test relationship {text}: {err}"))
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn open(dir: &std::path::Path) -> SledStore {
    SledStore::open(&SledConfig {
        gc_interval: None,
        ..SledConfig::new(dir)
    })
    .expect("open store")
}

fn write(store: &SledStore, op: UpdateOp, text: &str) {
    store
        .write(
            &[Update {
                op,
                relationship: rel(text),
            }],
            &[],
        )
        .expect("store failure")
        .expect("write rejected");
}

fn walks(store: &SledStore) -> (u64, u64) {
    store.collector_walks().expect("walks")
}

/// One sweep at [`FAR_FUTURE`] and one GC pass at the head: whether each walked, and how
/// many expired relationships the sweep removed.
fn collect(store: &SledStore) -> (bool, bool, usize) {
    let before = walks(store);
    let expired = store
        .collect_expired_relationships(at(FAR_FUTURE))
        .expect("sweep");
    store.collect_garbage(store.head().unwrap()).expect("gc");
    let after = walks(store);
    (after.0 > before.0, after.1 > before.1, expired)
}

/// A write that ends nothing and expires nothing, so that GC has a new horizon.
fn advance(store: &SledStore, n: usize) {
    write(store, UpdateOp::Touch, &format!("pad:p{n}#viewer@user:pad"));
}

/// What a sequence of writes leaves for the collector.
enum Step {
    Write(UpdateOp, &'static str),
    Import(&'static [&'static str]),
    Sync(UpdateOp, &'static str),
    DeleteByFilter(&'static str),
    Schema,
}

fn run(store: &SledStore, step: &Step) {
    match step {
        Step::Write(op, text) => write(store, *op, text),
        Step::Import(texts) => {
            store
                .import(&mut texts.iter().map(|it| rel(it)))
                .expect("import");
        }
        Step::Sync(op, text) => {
            store
                .apply_at_one_revision(
                    &[Update {
                        op: *op,
                        relationship: rel(text),
                    }],
                    None,
                )
                .expect("sync");
        }
        Step::DeleteByFilter(resource_id) => {
            store
                .delete_by_filter(
                    &RelationshipFilter {
                        resource_type: Some("doc".into()),
                        resource_id: Some((*resource_id).into()),
                        ..Default::default()
                    },
                    0,
                )
                .expect("delete by filter");
        }
        Step::Schema => {
            store.write_schema("definition user {}").expect("schema");
        }
    }
}

/// (name, steps, the sweep walks, GC walks, expired relationships the sweep removes)
fn cases() -> Vec<(&'static str, Vec<Step>, bool, bool, usize)> {
    use Step::*;
    use UpdateOp::{Create, Delete, Touch};
    vec![
        ("nothing written", vec![], false, false, 0),
        ("schema only", vec![Schema], false, false, 0),
        (
            "plain touches",
            vec![Write(Touch, PLAIN), Write(Create, OTHER)],
            false,
            false,
            0,
        ),
        (
            "the same touch twice",
            vec![Write(Touch, PLAIN), Write(Touch, PLAIN)],
            false,
            false,
            0,
        ),
        (
            "an expiring touch",
            vec![Write(Touch, EXPIRES_2999)],
            true,
            false,
            1,
        ),
        (
            "a delete",
            vec![Write(Touch, PLAIN), Write(Delete, PLAIN)],
            false,
            true,
            0,
        ),
        (
            "a delete of nothing",
            vec![Write(Delete, PLAIN)],
            false,
            false,
            0,
        ),
        (
            "a touch with other conditions ends the old version",
            vec![Write(Touch, PLAIN), Write(Touch, PLAIN_CAVEATED)],
            false,
            true,
            0,
        ),
        (
            "an expiring relationship deleted: history for GC, not the sweep",
            vec![Write(Touch, EXPIRES_2999), Write(Delete, EXPIRES_2999)],
            true,
            true,
            0,
        ),
        (
            "a delete by filter",
            vec![Write(Touch, PLAIN), DeleteByFilter("a")],
            false,
            true,
            0,
        ),
        (
            "a delete by filter of nothing",
            vec![Write(Touch, PLAIN), DeleteByFilter("z")],
            false,
            false,
            0,
        ),
        (
            "a plain import",
            vec![Import(&[PLAIN, OTHER])],
            false,
            false,
            0,
        ),
        (
            "an expiring import",
            vec![Import(&[PLAIN, EXPIRES_2999])],
            true,
            false,
            1,
        ),
        (
            "an import replacing conditions",
            vec![Write(Touch, PLAIN), Import(&[PLAIN_CAVEATED])],
            false,
            true,
            0,
        ),
        (
            "an expiring sync",
            vec![Sync(Touch, EXPIRES_2999)],
            true,
            false,
            1,
        ),
        (
            "a sync that deletes",
            vec![Write(Touch, PLAIN), Sync(Delete, PLAIN)],
            false,
            true,
            0,
        ),
    ]
}

#[test]
fn issue14_the_collector_walks_only_when_a_write_left_it_something() {
    for (name, steps, sweep_walks, gc_walks, expired) in cases() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        for step in &steps {
            run(&store, step);
        }
        assert_eq!(
            collect(&store),
            (sweep_walks, gc_walks, expired),
            "{name}: first pass (sweep walked, GC walked, expired removed)"
        );
        // Everything is collected now: neither pass walks again, nor after a reopen.
        advance(&store, 1);
        assert_eq!(collect(&store), (false, false, 0), "{name}: second pass");
        drop(store);
        let store = open(dir.path());
        advance(&store, 2);
        assert_eq!(collect(&store), (false, false, 0), "{name}: after reopen");
    }
}

#[test]
fn issue14_the_sweep_waits_for_the_earliest_expiration() {
    const EXPIRES_2400: &str = "doc:d#viewer@user:joe[expiration:2400-01-01T00:00:00Z]";
    const EXPIRES_2200: &str = "doc:e#viewer@user:kim[expiration:2200-01-01T00:00:00Z]";
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for text in [PLAIN, EXPIRES_2999, EXPIRES_2400] {
        write(&store, UpdateOp::Touch, text);
    }
    // (sweep time, relationships it removes, whether it walks)
    let steps = [
        ("2000-01-01T00:00:00Z", 0, false),
        ("2399-12-31T23:59:59Z", 0, false),
        ("2400-01-01T00:00:00Z", 1, true),
        ("2500-01-01T00:00:00Z", 0, false),
    ];
    let run = |store: &SledStore, steps: &[(&str, usize, bool)]| {
        for (time, removed, walked) in steps {
            let before = walks(store).0;
            assert_eq!(
                store.collect_expired_relationships(at(time)).unwrap(),
                *removed,
                "sweep at {time}"
            );
            assert_eq!(walks(store).0 > before, *walked, "sweep at {time} walked");
        }
    };
    run(&store, &steps);
    // A write expiring earlier lowers the mark in its own commit.
    write(&store, UpdateOp::Touch, EXPIRES_2200);
    run(&store, &[("2300-01-01T00:00:00Z", 1, true)]);
    drop(store);
    // The mark survives a reopen.
    let store = open(dir.path());
    run(
        &store,
        &[
            ("2500-01-01T00:00:00Z", 0, false),
            ("2998-12-31T00:00:00Z", 0, false),
            (FAR_FUTURE, 1, true),
            (FAR_FUTURE, 0, false),
        ],
    );
    let mut live = Vec::new();
    store
        .for_each_live(&mut |it| live.push(it.to_string()))
        .unwrap();
    assert_eq!(live, [PLAIN]);
}

#[test]
fn issue14_gc_skips_horizons_below_the_oldest_ended_version_it_left() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let head = || store.head().unwrap();
    write(&store, UpdateOp::Touch, PLAIN);
    write(&store, UpdateOp::Delete, PLAIN);
    let first_delete = head();
    write(&store, UpdateOp::Touch, OTHER);
    let between = head();
    write(&store, UpdateOp::Delete, OTHER);
    let second_delete = head();
    advance(&store, 1);
    // The first pass collects the first delete and sees the second above its horizon.
    assert!(store.collect_garbage(first_delete).unwrap() >= 1);
    assert_eq!(walks(&store), (0, 1));
    drop(store);
    let store = open(dir.path());
    // Nothing ended at or before `between` is left: no walk, even after a reopen.
    store.collect_garbage(between).unwrap();
    assert_eq!(walks(&store), (0, 0));
    let at_second = store
        .read(&RelationshipFilter::default(), second_delete, 0, None)
        .unwrap();
    assert!(at_second.relationships.is_empty());
    let before_second = store
        .read(&RelationshipFilter::default(), between, 0, None)
        .unwrap();
    assert_eq!(
        before_second.relationships.len(),
        1,
        "OTHER's version is kept"
    );
    store.collect_garbage(second_delete).unwrap();
    assert_eq!(walks(&store), (0, 1), "the second delete is due");
    advance(&store, 2);
    store.collect_garbage(store.head().unwrap()).unwrap();
    assert_eq!(walks(&store), (0, 1), "nothing ended is left");
}

/// How a database can reach this code with marks it cannot trust.
#[derive(Clone, Copy, Debug)]
enum Untrusted {
    /// Written before the marks existed: no keys.
    NoKeys,
    /// Written by a binary without the marks after this one: the head moved past
    /// `marks_head`, and the marks say nothing of the writes (here: "never" while a
    /// delete and an expiring relationship wait).
    OlderBinaryWroteSince,
}

#[test]
fn issue14_a_database_with_marks_it_cannot_trust_walks_once() {
    const EXPIRES_2100: &str = "doc:f#viewer@user:lee[expiration:2100-01-01T00:00:00Z]";
    for untrusted in [Untrusted::NoKeys, Untrusted::OlderBinaryWroteSince] {
        for pending in [false, true] {
            let context = format!("{untrusted:?}, pending {pending}");
            let dir = tempfile::tempdir().unwrap();
            let store = open(dir.path());
            write(&store, UpdateOp::Touch, PLAIN);
            if pending {
                write(&store, UpdateOp::Delete, PLAIN);
                write(&store, UpdateOp::Touch, EXPIRES_2100);
            }
            advance(&store, 1);
            let horizon = store.head().unwrap();
            drop(store);
            let db = SledStore::open_raw(dir.path()).unwrap();
            let meta = db.open_tree(keys::TREE_META).unwrap();
            match untrusted {
                Untrusted::NoKeys => {
                    for key in [
                        keys::META_EXPIRES_FROM,
                        keys::META_ENDED_SINCE,
                        keys::META_MARKS_HEAD,
                    ] {
                        assert!(meta.remove(key).unwrap().is_some(), "{context}: {key:?}");
                    }
                }
                Untrusted::OlderBinaryWroteSince => {
                    // As if the writes since revision 1 came from a binary that keeps
                    // `head` but not the marks.
                    meta.insert(keys::META_EXPIRES_FROM, &i64::MAX.to_be_bytes())
                        .unwrap();
                    meta.insert(keys::META_ENDED_SINCE, &u64::MAX.to_be_bytes())
                        .unwrap();
                    meta.insert(keys::META_MARKS_HEAD, &1_u64.to_be_bytes())
                        .unwrap();
                }
            }
            db.flush().unwrap();
            drop((meta, db));

            let store = open(dir.path());
            let swept = store.collect_expired_relationships(at(FAR_FUTURE)).unwrap();
            let removed = store.collect_garbage(horizon).unwrap();
            assert_eq!(walks(&store), (1, 1), "{context}: one walk each");
            assert_eq!(swept, usize::from(pending), "{context}: the expiring one");
            let at_horizon = store
                .read(&RelationshipFilter::default(), Revision(horizon.0), 0, None)
                .unwrap();
            assert_eq!(at_horizon.relationships.len(), if pending { 1 } else { 2 });
            assert!(!pending || removed >= 1, "{context}: the delete's version");
            advance(&store, 2);
            assert_eq!(collect(&store), (false, false, 0), "{context}: once only");
            drop(store);
            let store = open(dir.path());
            advance(&store, 3);
            assert_eq!(
                collect(&store),
                (false, false, 0),
                "{context}: after reopen"
            );
        }
    }
}
