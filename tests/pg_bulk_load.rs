//! The PostgreSQL bulk load (issue 12): an import of several chunks into a store that holds
//! no relationship version at all drops the versioned table's indexes, copies the rows in
//! with one COPY and builds the indexes again in the same transaction. What it must keep:
//! the same indexes and constraints afterwards, one revision per chunk, the last of each
//! tuple, and a change log equal to what the import returned. An import into a store that
//! is not empty takes the chunked path and leaves the indexes alone.

use arbiter::model::{Relationship, Revision};
use arbiter::store::{ChangeOp, ChangeSet, PgConfig, PgStore, RelationshipFilter, Store};

#[path = "support/pg.rs"]
mod pg;

fn rel(text: &str) -> Relationship {
    text.parse()
        .unwrap_or_else(|err| panic!("bad test relationship {text}: {err}"))
}

/// The indexes and constraints of the versioned table, as PostgreSQL describes them.
fn table_shape(config: &PgConfig) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&config.url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(connection);
        let schema = config.schema.clone().expect("a test schema");
        let rows = client
            .query(
                "SELECT indexdef FROM pg_indexes \
                 WHERE schemaname = $1 AND tablename = 'arbiter_relationship' \
                 UNION ALL \
                 SELECT conname || ' ' || contype::text || ' ' || pg_get_constraintdef(c.oid) \
                 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
                 WHERE n.nspname = $1 AND conrelid = ($1 || '.arbiter_relationship')::regclass \
                 ORDER BY 1",
                &[&schema],
            )
            .await
            .expect("read the table's indexes");
        rows.iter().map(|row| row.get::<_, String>(0)).collect()
    })
}

/// `(revision, sorted changes as text with + for touch and - for delete)` per change set.
fn described(sets: &[ChangeSet]) -> Vec<(Revision, Vec<String>)> {
    sets.iter()
        .map(|set| {
            let mut changes: Vec<String> = set
                .changes
                .iter()
                .map(|it| {
                    let sign = if it.op == ChangeOp::Touch { '+' } else { '-' };
                    format!("{sign}{}", it.relationship)
                })
                .collect();
            changes.sort();
            (set.revision, changes)
        })
        .collect()
}

fn read_everything(store: &PgStore, at: Revision) -> Vec<String> {
    let page = store
        .read(&RelationshipFilter::default(), at, 0, None)
        .expect("read");
    page.relationships.iter().map(ToString::to_string).collect()
}

#[test]
fn issue12_bulk_load_on_empty_ground_keeps_indexes_revisions_and_the_log() {
    let Some(mut config) = pg::fresh_config("issue12 bulk load") else {
        return;
    };
    config.import_chunk = 100;
    let store = PgStore::open(config.clone()).expect("open the postgresql test store");
    let shape = table_shape(&config);
    assert!(
        shape.iter().any(|it| it.contains("PRIMARY KEY")),
        "the table has its primary key: {shape:?}"
    );

    let mut input: Vec<String> = (0..240)
        .map(|i| format!("doc:d{i}#viewer@user:u{}", i % 7))
        .collect();
    input.push("doc:w#viewer@user:*".into());
    input.push("doc:g#viewer@group:g1#member".into());
    input.push("doc:e#viewer@user:u1[expiration:2031-01-01T00:00:00Z]".into());
    // Repeated tuples: the last occurrence wins.
    input.push(r#"doc:d3#viewer@user:u3[ipnet:{"cidr":"10.0.0.0/8"}]"#.into());
    input.push("doc:d5#viewer@user:u5[expiration:2030-06-01T00:00:00Z]".into());
    let sets = store
        .import(&mut input.iter().map(|it| rel(it)))
        .expect("bulk import");

    let mut want: Vec<String> = input
        .iter()
        .filter(|it| {
            !matches!(
                it.as_str(),
                "doc:d3#viewer@user:u3" | "doc:d5#viewer@user:u5"
            )
        })
        .map(|it| rel(it).to_string())
        .collect();
    want.sort();
    assert_eq!(want.len(), 243);
    let revisions: Vec<u64> = sets.iter().map(|it| it.revision.0).collect();
    let sizes: Vec<usize> = sets.iter().map(|it| it.changes.len()).collect();
    assert_eq!(revisions, [1, 2, 3]);
    assert_eq!(sizes, [100, 100, 43]);
    let mut returned: Vec<String> = described(&sets)
        .into_iter()
        .flat_map(|(_, changes)| changes)
        .collect();
    returned.sort();
    assert_eq!(
        returned,
        want.iter().map(|it| format!("+{it}")).collect::<Vec<_>>()
    );
    let log = store.changes_since(Revision(0), 0).expect("the log");
    assert_eq!(described(&log), described(&sets));
    let mut read = read_everything(&store, Revision(3));
    read.sort();
    assert_eq!(read, want);
    assert!(read_everything(&store, Revision(1)).len() == 100);
    assert_eq!(
        table_shape(&config),
        shape,
        "the same indexes after the bulk load"
    );

    // Not empty any more: the chunked path, with touch semantics against live tuples.
    let again = [
        "doc:d1#viewer@user:u1",
        r#"doc:d2#viewer@user:u2[ipnet:{"cidr":"192.168.0.0/16"}]"#,
    ]
    .into_iter()
    .chain((0..150).map(|i| Box::leak(format!("doc:n{i}#viewer@user:u").into_boxed_str()) as &str))
    .map(rel);
    let sets = store.import(&mut again.into_iter()).expect("second import");
    let revisions: Vec<u64> = sets.iter().map(|it| it.revision.0).collect();
    assert_eq!(revisions, [4, 5]);
    let changes: Vec<String> = described(&sets)
        .into_iter()
        .flat_map(|(_, changes)| changes)
        .filter(|it| it.contains("d2#"))
        .collect();
    assert_eq!(
        changes,
        [
            r#"+doc:d2#viewer@user:u2[ipnet:{"cidr":"192.168.0.0/16"}]"#,
            "-doc:d2#viewer@user:u2",
        ]
    );
    let total: usize = sets.iter().map(|it| it.changes.len()).sum();
    assert_eq!(total, 152, "d1 unchanged; d2 ended and created; 150 new");
    assert_eq!(
        described(&store.changes_since(Revision(3), 0).expect("log")),
        described(&sets)
    );
    assert_eq!(table_shape(&config), shape);
}

/// `arbiter import --db postgres://…` takes the same bulk path, refuses a file with an
/// unknown relation without storing any of it, and keeps the password out of its output.
#[test]
fn issue12_cli_import_into_postgres_is_all_or_nothing() {
    let Some(config) = pg::fresh_config("issue12 cli import into postgresql") else {
        return;
    };
    let schema = config.schema.clone().expect("a test schema");
    {
        let store = PgStore::open(config.clone()).expect("open the postgresql test store");
        let engine = arbiter::engine::Arbiter::with_store(Box::new(store), Default::default())
            .expect("engine");
        engine
            .write_schema(
                "definition user {}\ndefinition doc {\n  relation viewer: user\n  permission view = viewer\n}",
            )
            .expect("schema");
    }
    let separator = if config.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}options=-csearch_path%3D{schema}", config.url);
    let dir = tempfile::tempdir().expect("temp dir");
    let import = |lines: &str| {
        let file = dir.path().join("rels.txt");
        std::fs::write(&file, lines).expect("write the file");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_arbiter"))
            .args(["import", "--db", &url])
            .arg(&file)
            .output()
            .expect("run arbiter import");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };

    let (ok, text) = import("doc:a#viewer@user:u1\ndoc:b#viewer@user:u2\ndoc:b#viewer@user:u3\n");
    assert!(ok, "{text}");
    assert!(text.contains("imported 3 relationship(s)"), "{text}");
    let (ok, text) = import("doc:c#viewer@user:u4\ndoc:c#editor@user:u5\n");
    assert!(!ok, "an unknown relation fails the import: {text}");
    assert!(
        text.contains("editor"),
        "the message names the relation: {text}"
    );
    assert!(
        !text.contains(":arbiter@"),
        "no password in the output: {text}"
    );

    let store = PgStore::open(config).expect("reopen");
    let head = store.head().expect("head");
    let mut stored = read_everything(&store, head);
    stored.sort();
    assert_eq!(
        stored,
        [
            "doc:a#viewer@user:u1",
            "doc:b#viewer@user:u2",
            "doc:b#viewer@user:u3"
        ],
        "nothing of the refused file was stored"
    );
}

/// A bulk load on one server while another server writes: both take the revision row
/// first, so neither waits on the other in the wrong order. Every write commits, each
/// revision is in the log once, and the store ends with everything.
#[test]
fn issue12_a_bulk_load_beside_a_writer_on_another_server_commits_in_one_order() {
    let Some(mut config) = pg::fresh_config("issue12 bulk load beside a writer") else {
        return;
    };
    config.import_chunk = 1_000;
    let loader = PgStore::open(config.clone()).expect("open the loading server's store");
    let writer = PgStore::open(config).expect("open the writing server's store");
    let n = 5_000;
    let load = std::thread::spawn(move || {
        let sets = loader
            .import(&mut (0..n).map(|i| rel(&format!("doc:d{i}#viewer@user:u{}", i % 13))))
            .expect("bulk import");
        (loader, sets)
    });
    let writes = 30;
    for i in 0..writes {
        let update = arbiter::store::Update {
            op: arbiter::store::UpdateOp::Touch,
            relationship: rel(&format!("other:o{i}#viewer@user:w")),
        };
        writer
            .write(&[update], &[])
            .expect("the other server's write")
            .expect("not rejected");
    }
    let (_loader, sets) = load.join().expect("the loading thread");
    let imported: usize = sets.iter().map(|it| it.changes.len()).sum();
    assert_eq!(imported, n);

    let head = writer.head().expect("head");
    let log = writer.changes_since(Revision(0), 0).expect("the log");
    let revisions: Vec<u64> = log.iter().map(|it| it.revision.0).collect();
    assert_eq!(
        revisions,
        (1..=head.0).collect::<Vec<_>>(),
        "every revision once, in order"
    );
    let changes: usize = log.iter().map(|it| it.changes.len()).sum();
    assert_eq!(changes, n + writes);
    assert_eq!(read_everything(&writer, head).len(), n + writes);
}
