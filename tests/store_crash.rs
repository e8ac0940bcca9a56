//! Crash durability: a child process (this same test binary, selected by an environment
//! variable) writes batches to a sled store and prints each acknowledged revision; the
//! parent kills it with SIGKILL mid-stream, reopens the database and checks that every
//! acknowledged batch is there whole and no batch is there in part. Repeated for several
//! rounds, each killed at a different point.
//!
//! The child's stream mixes three kinds of steps:
//! - `write k`: one atomic write of [`BATCH`] tuples `doc:bK#viewer@user:uI`, the first
//!   expiring in 2999 (so the store's `expires_from` mark rides in the same commits);
//! - `import k`: a chunked import of [`BULK`] tuples `bulk:kK_I#viewer@user:u`;
//! - `delete k`: a delete by filter of all of import `k`'s tuples — several transactions,
//!   yet atomic at one revision, so after a crash it is there whole or not at all.
//!
//! After the reopen the collector must still find everything left to collect: every live
//! expiring relationship (the sweep is not skipped), and the versions of every delete
//! that landed (version GC walks).
//!
//! This file has its own `main` (`harness = false` in Cargo.toml): a child is the same
//! binary with [`CHILD_ENV`] set to its database path.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use arbiter::model::{ObjectRef, Relationship, Revision};
use arbiter::store::{RelationshipFilter, SledStore, Store, Update, UpdateOp};

/// Set in the child: the database directory to write to.
const CHILD_ENV: &str = "ARBITER_CRASH_CHILD_DB";
/// Tuples per atomic write.
const BATCH: usize = 40;
/// Tuples per import (several import and delete chunks).
const BULK: usize = 1000;
const ROUNDS: usize = 6;
/// Every write's first tuple expires then (after the test, before [`SWEEP_AT`]).
const EXPIRATION: &str = "[expiration:2999-01-01T00:00:00Z]";
/// A sweep at this time collects every expiring tuple.
const SWEEP_AT: &str = "3000-01-01T00:00:00Z";

fn main() {
    match std::env::var(CHILD_ENV) {
        Ok(path) => child(&path),
        Err(_) => parent(),
    }
}

fn rel(text: &str) -> Relationship {
    text.parse()
        .unwrap_or_else(|err| panic!("bad relationship {text}: {err}"))
}

fn bulk_filter(group: usize) -> RelationshipFilter {
    RelationshipFilter {
        resource_type: Some("bulk".into()),
        relation: Some("viewer".into()),
        subject_type: Some("user".into()),
        subject_id: Some(format!("g{group}")),
        ..Default::default()
    }
}

/// The writer: runs until killed, printing `STEP K REVISION` after each acknowledged step.
fn child(path: &str) {
    let store = SledStore::open_path(path).expect("child: open store");
    for step in 0usize.. {
        let k = step / 6;
        match step % 6 {
            3 => {
                let mut input = (0..BULK).map(|i| rel(&format!("bulk:k{k}_{i}#viewer@user:g{k}")));
                let sets = store.import(&mut input).expect("child: import");
                let revision = sets.last().map_or(Revision(0), |it| it.revision);
                println!("import {k} {revision}");
            }
            5 => {
                let deleted = store
                    .delete_by_filter(&bulk_filter(k), 0)
                    .expect("child: delete");
                assert_eq!(deleted.changes.len(), BULK);
                println!("delete {k} {}", deleted.revision);
            }
            _ => {
                let updates: Vec<Update> = (0..BATCH)
                    .map(|i| Update {
                        op: UpdateOp::Touch,
                        relationship: rel(&format!(
                            "doc:b{step}#viewer@user:u{i}{}",
                            if i == 0 { EXPIRATION } else { "" }
                        )),
                    })
                    .collect();
                let res = store.write(&updates, &[]).expect("child: write");
                let revision = res.expect("child: write rejected").revision;
                println!("write {step} {revision}");
            }
        }
    }
}

/// What the parent saw acknowledged before the kill.
#[derive(Default)]
struct Acknowledged {
    writes: Vec<(usize, Revision)>,
    imports: BTreeMap<usize, Revision>,
    deletes: BTreeMap<usize, Revision>,
}

fn parent() {
    let exe = std::env::current_exe().expect("current exe");
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(&exe)
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child writer");
        let stdout = child.stdout.take().expect("child stdout");
        let mut lines = BufReader::new(stdout).lines();
        // Kill after a different number of acknowledgements each round.
        let kill_after = 4 + round * 5;
        let mut acked = Acknowledged::default();
        let mut n_seen = 0;
        let mut killed = false;
        while let Some(Ok(line)) = lines.next() {
            record(&mut acked, &line);
            n_seen += 1;
            if n_seen == kill_after && !killed {
                child.kill().expect("SIGKILL the child");
                killed = true;
            }
        }
        let status = child.wait().expect("wait for child");
        assert!(killed, "round {round}: child ended on its own: {status}");
        verify(round, dir.path(), &acked);
        println!(
            "round {round}: killed after {n_seen} acknowledgements ({} writes, {} imports, {} deletes): ok",
            acked.writes.len(),
            acked.imports.len(),
            acked.deletes.len()
        );
    }
}

fn record(acked: &mut Acknowledged, line: &str) {
    let parts: Vec<&str> = line.split(' ').collect();
    let [kind, k, revision] = parts[..] else {
        panic!("unexpected child output {line:?}");
    };
    let k: usize = k.parse().expect("step number");
    let revision = Revision(revision.parse().expect("revision"));
    match kind {
        "write" => acked.writes.push((k, revision)),
        "import" => {
            acked.imports.insert(k, revision);
        }
        "delete" => {
            acked.deletes.insert(k, revision);
        }
        _ => panic!("unexpected child output {line:?}"),
    }
}

fn verify(round: usize, path: &std::path::Path, acked: &Acknowledged) {
    let store = SledStore::open_path(path)
        .unwrap_or_else(|err| panic!("round {round}: reopen after SIGKILL failed: {err}"));
    let head = store.head().expect("head");
    let last_acked = acked
        .writes
        .iter()
        .map(|it| it.1)
        .chain(acked.imports.values().copied())
        .chain(acked.deletes.values().copied())
        .max()
        .unwrap_or(Revision(0));
    assert!(
        head >= last_acked,
        "round {round}: head {head} < acknowledged {last_acked}"
    );

    // Every write batch, acknowledged or not, is whole or absent; acknowledged ones whole.
    let mut per_batch: BTreeMap<String, usize> = BTreeMap::new();
    let doc_filter = RelationshipFilter {
        resource_type: Some("doc".into()),
        ..Default::default()
    };
    for rel in store
        .read(&doc_filter, head, 0, None)
        .expect("read")
        .relationships
    {
        *per_batch.entry(rel.resource.object_id).or_default() += 1;
    }
    for (batch, count) in &per_batch {
        assert_eq!(*count, BATCH, "round {round}: batch {batch} is partial");
    }
    for (step, revision) in &acked.writes {
        let resource = ObjectRef::new("doc", &format!("b{step}")).expect("resource");
        let subjects = store.subjects(&resource, "viewer", head).expect("subjects");
        assert_eq!(
            subjects.len(),
            BATCH,
            "round {round}: acknowledged batch {step} lost"
        );
        // The acknowledged revision shows the batch too.
        let at = store
            .subjects(&resource, "viewer", *revision)
            .expect("subjects");
        assert_eq!(
            at.len(),
            BATCH,
            "round {round}: batch {step} not at {revision}"
        );
    }

    // Imports: acknowledged ones complete unless deleted; deletes are all or nothing.
    for k in acked.imports.keys() {
        let n = store
            .read(&bulk_filter(*k), head, 0, None)
            .expect("read")
            .relationships
            .len();
        if acked.deletes.contains_key(k) {
            assert_eq!(n, 0, "round {round}: acknowledged delete {k} not applied");
        } else {
            assert!(
                n == BULK || n == 0,
                "round {round}: delete of import {k} is partial: {n} of {BULK} left"
            );
        }
    }

    // The change log agrees with the tuples: replaying it gives the live set.
    let mut replay = std::collections::BTreeSet::new();
    let mut n_deletes = 0;
    for set in store.changes_since(Revision(0), 0).expect("changes") {
        for change in set.changes {
            n_deletes += usize::from(change.op == arbiter::store::ChangeOp::Delete);
            match change.op {
                arbiter::store::ChangeOp::Touch => replay.insert(change.relationship),
                arbiter::store::ChangeOp::Delete => replay.remove(&change.relationship),
            };
        }
    }
    let mut live = std::collections::BTreeSet::new();
    store
        .for_each_live(&mut |rel| {
            live.insert(rel);
        })
        .expect("for_each_live");
    assert_eq!(
        replay, live,
        "round {round}: change log and tuples disagree"
    );

    // The collector's marks survived the kill (they ride in the commits they cover).
    let expiring = live.iter().filter(|it| it.expiration.is_some()).count();
    assert!(expiring > 0, "round {round}: no expiring tuple landed");
    let swept = store
        .collect_expired_relationships(SWEEP_AT.parse().expect("time"))
        .expect("sweep");
    assert_eq!(
        swept, expiring,
        "round {round}: the sweep after the crash missed expiring tuples"
    );
    let walks = store.collector_walks().expect("walks").1;
    store.collect_garbage(head).expect("gc");
    if n_deletes > 0 {
        assert_eq!(
            store.collector_walks().expect("walks").1,
            walks + 1,
            "round {round}: {n_deletes} deletes landed, yet version GC did not walk"
        );
    }
}
