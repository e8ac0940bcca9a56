//! Backup and restore (issue 16): `arbiter export --format validation` writes the schema
//! and every relationship at one revision; bootstrapping that file into an empty store
//! restores exactly the same state; the file is a validation file `arbiter validate`
//! accepts; an export through a server taken while writes go on equals an exact-snapshot
//! read at the revision it names; and caveats (with and without stored context) and
//! expirations survive both formats and both import paths.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arbiter::engine::{self, Arbiter, Consistency, ReadRequest};
use arbiter::server::ServerConfig;
use arbiter::store::{RelationshipFilter, Update, UpdateOp};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_arbiter");

/// Relationships of every shape the text form has: plain, wildcard, subject set,
/// `...`-free, namespaced types. Caveats and expirations: see [`CONDITIONAL`].
const RELATIONSHIPS: &[&str] = &[
    "org/team:eng#member@user:alice",
    "org/team:eng#member@org/team:platform#member",
    "org/team:platform#member@user:bob",
    "document:readme#viewer@user:*",
    "document:plan#viewer@org/team:eng#member",
    "document:plan#owner@user:carol",
    "document:a-b_c|d=e+f/g#owner@user:dave",
];

const SCHEMA: &str = "definition user {}
definition org/team {
    relation member: user | org/team#member
}
definition document {
    relation owner: user
    relation viewer: user | user:* | org/team#member
    permission view = viewer + owner
}
";

fn everything(engine: &Arbiter, consistency: Consistency) -> Vec<String> {
    let mut res = Vec::new();
    for resource_type in ["user", "org/team", "document"] {
        let filter = RelationshipFilter {
            resource_type: Some(resource_type.to_string()),
            ..Default::default()
        };
        let page = engine
            .read(&ReadRequest::new(filter.clone()), consistency)
            .unwrap();
        res.extend(page.relationships.iter().map(ToString::to_string));
    }
    res.sort();
    res
}

fn backup_relationships(text: &str) -> Vec<String> {
    let request = arbiter::sync::parse("backup.yaml".as_ref(), text).unwrap();
    let mut res: Vec<String> = request
        .relationships
        .iter()
        .map(ToString::to_string)
        .collect();
    res.sort();
    res
}

#[test]
fn issue16_export_then_bootstrap_round_trips_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    {
        let engine = Arbiter::open(&db, engine::Config::default()).unwrap();
        engine.write_schema(SCHEMA).unwrap();
        let updates: Vec<Update> = RELATIONSHIPS
            .iter()
            .map(|it| Update {
                op: UpdateOp::Touch,
                relationship: it.parse().unwrap(),
            })
            .collect();
        engine.write(&updates, &[]).unwrap().unwrap();
        // A deleted relationship must not come back.
        engine
            .write(
                &[Update {
                    op: UpdateOp::Delete,
                    relationship: RELATIONSHIPS[0].parse().unwrap(),
                }],
                &[],
            )
            .unwrap()
            .unwrap();
    }
    let out = Command::new(BIN)
        .args([
            "export",
            "--db",
            db.to_str().unwrap(),
            "--format",
            "validation",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("# arbiter backup at revision 3: schema and 6 relationship(s)\n"),
        "{text}"
    );
    let backup = dir.path().join("backup.yaml");
    std::fs::write(&backup, &text).unwrap();

    // The backup is a validation file that validates.
    let out = Command::new(BIN)
        .args(["validate", backup.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    // Restore into an empty store through the bootstrap path.
    let request = arbiter::sync::read(&backup).unwrap();
    let restored = Arbiter::in_memory(engine::Config::default()).unwrap();
    let report = restored.sync(&request, false).unwrap();
    assert_eq!(report.revision, Some(restored.head()));
    assert_eq!(restored.schema_text().unwrap().0, SCHEMA);
    let original = Arbiter::open(&db, engine::Config::default()).unwrap();
    assert_eq!(
        everything(&restored, Consistency::Full),
        everything(&original, Consistency::Full)
    );
    assert_eq!(
        everything(&restored, Consistency::Full).len(),
        RELATIONSHIPS.len() - 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_export_through_a_server_is_one_snapshot_while_writes_go_on() {
    let engine = Arbiter::in_memory(engine::Config::default()).unwrap();
    engine.write_schema(SCHEMA).unwrap();
    let server = support::start(engine.clone(), ServerConfig::default()).await;
    let initial: Vec<serde_json::Value> = (0..1_500)
        .map(|n| json!({"op": "touch", "relationship": format!("document:d{n}#owner@user:u{n}")}))
        .collect();
    for chunk in initial.chunks(500) {
        let (status, body) = server
            .post("/v1/relationships/write", json!({"updates": chunk}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let engine = engine.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let updates = [
                    Update {
                        op: UpdateOp::Touch,
                        relationship: format!("document:new{n}#owner@user:w").parse().unwrap(),
                    },
                    Update {
                        op: UpdateOp::Delete,
                        relationship: format!("document:d{n}#owner@user:u{n}").parse().unwrap(),
                    },
                ];
                engine.write(&updates, &[]).unwrap().unwrap();
                n += 1;
            }
            n
        })
    };
    let url = server.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["export", "--server", &url, "--format", "validation"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let n_writes = writer.join().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().next().unwrap();
    let revision: u64 = header
        .strip_prefix("# arbiter backup at revision ")
        .and_then(|rest| rest.split(':').next())
        .unwrap()
        .parse()
        .unwrap();
    let expected = everything(
        &engine,
        Consistency::AtExactSnapshot {
            revision: arbiter::model::Revision(revision),
        },
    );
    assert_eq!(
        backup_relationships(&text),
        expected,
        "{n_writes} writes ran during the export"
    );
    server.stop().await;
}

const CONDITIONAL_SCHEMA: &str = "use expiration
caveat ip_allowlist(user_ip ipaddress, cidr string) {
    user_ip.in_cidr(cidr)
}
definition user {}
definition document {
    relation viewer: user | user with ip_allowlist | user with expiration | user with ip_allowlist and expiration
    permission view = viewer
}
";

/// Caveated (stored context, none, a context with characters JSON escapes), expiring,
/// both, and plain relationships.
const CONDITIONAL: &[&str] = &[
    r#"document:plan#viewer@user:erin[ip_allowlist:{"cidr":"10.0.0.0/8"}]"#,
    "document:plan#viewer@user:fay[ip_allowlist]",
    r#"document:plan#viewer@user:gil[ip_allowlist:{"cidr":"a \"quoted\" ]}[x] cidr"}]"#,
    "document:plan#viewer@user:gus[expiration:2999-01-01T00:00:00Z]",
    "document:plan#viewer@user:ida[expiration:2998-12-31T23:59:59.5Z]",
    r#"document:plan#viewer@user:hal[ip_allowlist:{"cidr":"192.168.0.0/16"}][expiration:2999-06-01T12:30:00Z]"#,
    "document:plan#viewer@user:tom",
];

fn arbiter(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(out.status.success(), "arbiter {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The relationship lines of a `lines` export, sorted.
fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|it| !it.trim().is_empty())
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

fn store_with(dir: &std::path::Path, relationships: &[&str]) {
    let engine = Arbiter::open(dir, engine::Config::default()).unwrap();
    engine.write_schema(CONDITIONAL_SCHEMA).unwrap();
    let updates: Vec<Update> = relationships
        .iter()
        .map(|it| Update {
            op: UpdateOp::Touch,
            relationship: it.parse().unwrap(),
        })
        .collect();
    engine.write(&updates, &[]).unwrap().unwrap();
}

#[test]
fn issue16_backup_round_trips_caveats_contexts_and_expirations() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    store_with(&db, CONDITIONAL);
    let db = db.to_str().unwrap();
    let mut want: Vec<String> = CONDITIONAL
        .iter()
        .map(|it| {
            it.parse::<arbiter::model::Relationship>()
                .unwrap()
                .to_string()
        })
        .collect();
    want.sort();

    // Lines: export, import into a fresh store with the schema, export again.
    let lines = arbiter(&["export", "--db", db]);
    assert_eq!(sorted_lines(&lines), want, "{lines}");
    let file = dir.path().join("relationships.txt");
    std::fs::write(&file, &lines).unwrap();
    let copy = dir.path().join("copy");
    store_with(&copy, &[]);
    let copy = copy.to_str().unwrap();
    arbiter(&["import", file.to_str().unwrap(), "--db", copy]);
    assert_eq!(sorted_lines(&arbiter(&["export", "--db", copy])), want);

    // Validation: the backup validates, and `import --sync` of it into an empty store (the
    // bootstrap path) restores the same relationships and the schema.
    let backup_text = arbiter(&["export", "--db", db, "--format", "validation"]);
    assert_eq!(backup_relationships(&backup_text), want, "{backup_text}");
    let backup = dir.path().join("backup.yaml");
    std::fs::write(&backup, &backup_text).unwrap();
    arbiter(&["validate", backup.to_str().unwrap()]);
    let restored = dir.path().join("restored");
    let restored = restored.to_str().unwrap();
    arbiter(&[
        "import",
        "--sync",
        backup.to_str().unwrap(),
        "--db",
        restored,
    ]);
    assert_eq!(sorted_lines(&arbiter(&["export", "--db", restored])), want);
    let engine = Arbiter::open(restored, engine::Config::default()).unwrap();
    assert_eq!(engine.schema_text().unwrap().0, CONDITIONAL_SCHEMA);
    // And the restored store answers as the original: conditional without an address.
    let request = arbiter::engine::CheckRequest {
        resource: arbiter::model::ObjectRef::new("document", "plan").unwrap(),
        permission: "view".to_string(),
        subject: "user:erin".parse().unwrap(),
        context: None,
    };
    let answer = engine.check(&request, Consistency::Full).unwrap();
    assert_eq!(answer.missing_context, ["user_ip"]);
}
