//! Garbage collection of expired relationships (issue 11 item 4): the store removes the
//! live versions of relationships that expired at or before the time it is given (the
//! collector's clock minus the retention window, docs/STORAGE.md), and only those; the
//! engine's collector drops them from its index at once and from the store once they have
//! been expired for the retention window. Runs on sled, and on PostgreSQL when
//! `ARBITER_TEST_PG` names a database.

use std::time::{Duration, SystemTime};

use arbiter::engine::{Arbiter, CheckRequest, Config, Consistency, Permissionship};
use arbiter::model::{ObjectRef, Relationship, Timestamp};
use arbiter::store::{SledStore, Store, Update, UpdateOp};

#[path = "support/pg.rs"]
mod pg;

const PLAIN: &str = "doc:a#viewer@user:tom";
const EXPIRED_2001: &str = "doc:a#viewer@user:old[expiration:2001-01-01T00:00:00Z]";
const CAVEATED_EXPIRED_2002: &str =
    r#"doc:a#viewer@user:cav[cav:{"k":1}][expiration:2002-01-01T00:00:00Z]"#;
const EXPIRES_2999: &str = "doc:a#viewer@user:new[expiration:2999-01-01T00:00:00Z]";
/// Expired, then deleted: its version is history, collected by the revision horizon,
/// not by expiration.
const DELETED_EXPIRED: &str = "doc:a#viewer@user:gone[expiration:2001-06-01T00:00:00Z]";

fn rel(text: &str) -> Relationship {
    text.parse()
        .unwrap_or_else(|err| panic!("bad test relationship {text}: {err}"))
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn write(store: &dyn Store, op: UpdateOp, texts: &[&str]) {
    let updates: Vec<Update> = texts
        .iter()
        .map(|text| Update {
            op,
            relationship: rel(text),
        })
        .collect();
    store
        .write(&updates, &[])
        .expect("store failure")
        .expect("write rejected");
}

fn live(store: &dyn Store) -> Vec<String> {
    let mut all = Vec::new();
    store
        .for_each_live(&mut |rel| all.push(rel.to_string()))
        .unwrap();
    all.sort();
    all
}

fn expired_relationships_leave_the_store(store: &dyn Store) {
    write(
        store,
        UpdateOp::Touch,
        &[
            PLAIN,
            EXPIRED_2001,
            CAVEATED_EXPIRED_2002,
            EXPIRES_2999,
            DELETED_EXPIRED,
        ],
    );
    write(store, UpdateOp::Delete, &[DELETED_EXPIRED]);
    let removed = |before: &str| store.collect_expired_relationships(at(before)).unwrap();
    assert_eq!(removed("2000-12-31T23:59:59Z"), 0, "nothing expired yet");
    // At or before: a relationship expiring exactly at the time goes.
    assert_eq!(removed("2001-01-01T00:00:00Z"), 1);
    assert_eq!(removed("2002-06-01T00:00:00Z"), 1, "the caveated one");
    assert_eq!(removed("2002-06-01T00:00:00Z"), 0, "already gone");
    let mut expected = vec![PLAIN.to_string(), rel(EXPIRES_2999).to_string()];
    expected.sort();
    assert_eq!(live(store), expected);
    // The removed tuple can be written again, and deleting it again finds nothing.
    write(store, UpdateOp::Touch, &[EXPIRED_2001]);
    assert!(live(store).contains(&rel(EXPIRED_2001).to_string()));
    assert_eq!(removed("2002-06-01T00:00:00Z"), 1);
    write(store, UpdateOp::Delete, &[EXPIRED_2001]);
    assert_eq!(live(store), expected);
}

#[test]
fn issue11_sled_collects_relationships_expired_before_the_given_time() {
    let store = SledStore::temporary().unwrap();
    expired_relationships_leave_the_store(&store);
    // The store's own background pass (retention 24 h by default) removes it too.
    write(&store, UpdateOp::Touch, &[EXPIRED_2001]);
    assert_eq!(store.collect_expired(SystemTime::now()).unwrap(), 1);
    assert!(!live(&store).contains(&rel(EXPIRED_2001).to_string()));
}

#[test]
fn issue11_postgres_collects_relationships_expired_before_the_given_time() {
    let Some(store) = pg::fresh_store("issue11_postgres_collects_expired_relationships") else {
        return;
    };
    expired_relationships_leave_the_store(&store);
}

/// The engine's collector: an expiry older than the retention window leaves the store; a
/// recent one stays there (invisible all the same) until it is that old.
#[test]
fn issue11_engine_collector_removes_expired_relationships_after_the_retention_window() {
    let config = Config {
        gc_retention: Duration::from_secs(3600),
        ..Config::default()
    };
    let engine = Arbiter::temporary(config).unwrap();
    engine
        .write_schema(
            "use expiration\n\
             definition user {}\n\
             definition doc { relation viewer: user with expiration | user }",
        )
        .unwrap();
    let a_minute_ago = Timestamp::from_system_time(SystemTime::now() - Duration::from_secs(60));
    let recent = format!("doc:a#viewer@user:recent[expiration:{a_minute_ago}]");
    let updates: Vec<Update> = [EXPIRED_2001, recent.as_str(), EXPIRES_2999, PLAIN]
        .iter()
        .map(|text| Update {
            op: UpdateOp::Touch,
            relationship: rel(text),
        })
        .collect();
    engine.write(&updates, &[]).unwrap().unwrap();
    // No revision is older than the window yet: only the long-expired relationship goes.
    assert_eq!(engine.collect_garbage().unwrap(), 1);
    assert_eq!(engine.collect_garbage().unwrap(), 0);
    for (user, expected) in [
        ("old", Permissionship::NoPermission),
        ("recent", Permissionship::NoPermission),
        ("new", Permissionship::HasPermission),
        ("tom", Permissionship::HasPermission),
    ] {
        let request = CheckRequest {
            resource: ObjectRef::new("doc", "a").unwrap(),
            permission: "viewer".to_string(),
            subject: format!("user:{user}").parse().unwrap(),
            context: None,
        };
        let got = engine.check(&request, Consistency::Full).unwrap();
        assert_eq!(got.permissionship, expected, "user {user}");
    }
}
