//! Bulk import on sled answers exactly like the `MemoryStore` model (issue 14 item 3): a
//! tuple repeated across the chunks of one import, across import calls, after other
//! writes and after reopening keeps its last occurrence, and every change set and the
//! live relationships match the model's. (A faster import must keep these answers: the
//! cases target what a skipped read-before-write or a changed chunking would break.)

use arbiter::model::Relationship;
use arbiter::store::{
    CHUNK_SIZE, ChangeOp, ChangeSet, MemoryStore, RelationshipFilter, SledStore, Store, Update,
    UpdateOp,
};

fn rel(text: &str) -> Relationship {
    text.parse()
        .unwrap_or_else(|err| panic!("bad test relationship {text}: {err}"))
}

/// One step of a case.
enum Step {
    /// Imports these relationships in one call.
    Import(Vec<String>),
    /// A touch write of one relationship.
    Touch(&'static str),
    /// A delete write of one relationship.
    Delete(&'static str),
    /// A delete by filter of every `doc` relationship.
    DeleteDocs,
    /// Closes and reopens the sled store (the model stays as it is).
    Reopen,
}

/// `n` distinct viewers of `doc:{n}` named after `tag`.
fn distinct(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|it| format!("doc:{it}#viewer@user:{tag}{it}"))
        .collect()
}

/// `lines` with `line` inserted at `at`.
fn with(mut lines: Vec<String>, at: usize, line: &str) -> Vec<String> {
    lines.insert(at, line.to_string());
    lines
}

const PLAIN: &str = "doc:x#viewer@user:tom";
const CAVEATED: &str = r#"doc:x#viewer@user:tom[cav:{"a":1}]"#;
const EXPIRING: &str = "doc:x#viewer@user:tom[expiration:2099-01-01T00:00:00Z]";

fn cases() -> Vec<(&'static str, Vec<Step>)> {
    let big = CHUNK_SIZE * 2 + 7;
    vec![
        (
            "a tuple repeated in a later chunk of one import keeps its last conditions",
            vec![Step::Import(with(
                with(distinct("a", big), 3, CAVEATED),
                big - 5,
                EXPIRING,
            ))],
        ),
        (
            "a tuple repeated unchanged in a later chunk changes nothing",
            vec![Step::Import(with(
                with(distinct("a", big), 3, PLAIN),
                big,
                PLAIN,
            ))],
        ),
        (
            "a tuple repeated in a later import call",
            vec![
                Step::Import(with(distinct("a", 20), 0, PLAIN)),
                Step::Import(with(distinct("b", 20), 7, CAVEATED)),
                Step::Import(distinct("a", 20)),
            ],
        ),
        (
            "an import after a write reads what the write stored",
            vec![
                Step::Import(distinct("a", 10)),
                Step::Touch(CAVEATED),
                Step::Import(with(distinct("a", 10), 4, PLAIN)),
            ],
        ),
        (
            "an import after a delete of the same tuple",
            vec![
                Step::Import(with(distinct("a", 10), 2, PLAIN)),
                Step::Delete(PLAIN),
                Step::Import(vec![EXPIRING.to_string(), PLAIN.to_string()]),
            ],
        ),
        (
            "an import after a delete by filter re-creates what it deleted",
            vec![
                Step::Import(distinct("a", CHUNK_SIZE + 3)),
                Step::DeleteDocs,
                Step::Import(distinct("a", CHUNK_SIZE + 3)),
            ],
        ),
        (
            "an import into a reopened store that holds tuples",
            vec![
                Step::Import(with(distinct("a", 30), 1, CAVEATED)),
                Step::Reopen,
                Step::Import(with(distinct("a", 30), 29, EXPIRING)),
            ],
        ),
        (
            "an import into a reopened empty store",
            vec![
                Step::Reopen,
                Step::Import(with(with(distinct("a", big), 0, PLAIN), big, CAVEATED)),
            ],
        ),
    ]
}

/// Changes in a canonical order: by tuple, a delete before a touch.
fn canonical(mut sets: Vec<ChangeSet>) -> Vec<ChangeSet> {
    for set in &mut sets {
        set.changes
            .sort_by_key(|it| (it.relationship.tuple(), it.op == ChangeOp::Touch));
    }
    sets
}

fn run(store: &dyn Store, step: &Step) -> String {
    let write = |op, text| {
        let update = Update {
            op,
            relationship: rel(text),
        };
        match store.write(&[update], &[]) {
            Ok(Ok(set)) => format!("{:?}", canonical(vec![set])),
            other => format!("{other:?}"),
        }
    };
    match step {
        Step::Import(lines) => {
            let mut rels = lines.iter().map(|it| rel(it));
            format!("{:?}", store.import(&mut rels).map(canonical))
        }
        Step::Touch(text) => write(UpdateOp::Touch, text),
        Step::Delete(text) => write(UpdateOp::Delete, text),
        Step::DeleteDocs => {
            let filter = RelationshipFilter {
                resource_type: Some("doc".to_string()),
                ..RelationshipFilter::default()
            };
            format!(
                "{:?}",
                store
                    .delete_by_filter(&filter, 0)
                    .map(|set| canonical(vec![set]))
            )
        }
        Step::Reopen => String::new(),
    }
}

fn live(store: &dyn Store) -> Vec<String> {
    let mut res = Vec::new();
    store
        .for_each_live(&mut |rel| res.push(rel.to_string()))
        .unwrap_or_else(|err| panic!("for_each_live: {err}"));
    res
}

#[test]
fn issue14_import_answers_like_the_model_when_tuples_repeat() {
    for (name, steps) in cases() {
        let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("tempdir: {err}"));
        let open =
            || SledStore::open_path(dir.path()).unwrap_or_else(|err| panic!("{name}: open: {err}"));
        let mut sled = open();
        let model = MemoryStore::new();
        for (idx, step) in steps.iter().enumerate() {
            if matches!(step, Step::Reopen) {
                drop(sled);
                sled = open();
            }
            assert_eq!(run(&sled, step), run(&model, step), "{name}: step {idx}");
        }
        assert_eq!(live(&sled), live(&model), "{name}");
        assert_eq!(sled.head().ok(), model.head().ok(), "{name}");
        drop(sled);
        assert_eq!(live(&open()), live(&model), "{name}: after reopening");
    }
}
