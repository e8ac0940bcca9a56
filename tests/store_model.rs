//! Model-based property test: random sequences of writes, deletes by filter, imports,
//! reads at past revisions, garbage collection and close-and-reopen run against
//! `SledStore` and `PgStore` (when `ARBITER_TEST_PG` names a database) and `MemoryStore`
//! (the model), through one generic helper; every answer must be the same. Within a
//! change set only a tuple's delete-before-touch order is part of the contract, so change
//! sets are compared in a canonical order. Relationships
//! carry caveats and expirations, so replacing a tuple's conditions is covered too.

use std::path::PathBuf;

use arbiter::model::{ObjectRef, Relationship, Revision, SubjectRef};
use arbiter::store::{
    ChangeOp, ChangeSet, MemoryStore, PgConfig, PgStore, Precondition, PreconditionOp,
    RelationshipFilter, SledConfig, SledStore, Store, Update, UpdateOp,
};
use proptest::prelude::*;

#[path = "support/pg.rs"]
mod pg;

const RESOURCES: [&str; 3] = ["doc:a", "doc:b", "folder:f"];
const RELATIONS: [&str; 2] = ["viewer", "editor"];
const SUBJECTS: [&str; 4] = ["user:x", "user:y", "user:*", "group:g#member"];

/// The conditions a tuple of the universe may carry: none, a caveat with two different
/// contexts (touching one over the other replaces the version), a caveat without
/// context, an expiration, both.
const CONDITIONS: [&str; 6] = [
    "",
    r#"[cav:{"k":1}]"#,
    r#"[cav:{"k":[2,"]"]}]"#,
    "[org/other]",
    "[expiration:2026-12-01T00:00:00.5Z]",
    r#"[cav:{"k":1}][expiration:1999-01-01T00:00:00Z]"#,
];

fn universe(idx: usize) -> Relationship {
    let tuple = idx % TUPLES;
    let resource = RESOURCES[tuple % 3];
    let relation = RELATIONS[(tuple / 3) % 2];
    let subject = SUBJECTS[(tuple / 6) % 4];
    let conditions = CONDITIONS[(idx / TUPLES) % CONDITIONS.len()];
    format!("{resource}#{relation}@{subject}{conditions}")
        .parse()
        .unwrap_or_else(|err| panic!("universe {idx}: {err}"))
}

/// Distinct tuples, and relationships (a tuple with one of the conditions).
const TUPLES: usize = 24;
const UNIVERSE: usize = TUPLES * CONDITIONS.len();

#[derive(Clone, Debug)]
enum Op {
    Write {
        updates: Vec<(UpdateOp, usize)>,
        preconditions: Vec<(PreconditionOp, RelationshipFilter)>,
    },
    /// A filter and a limit (0 = every match).
    DeleteByFilter(RelationshipFilter, usize),
    Import(Vec<usize>),
    Schema,
    Reopen,
    /// Collect below `head - back`.
    Collect(u64),
    /// Read at `head - back`, in pages of `limit`.
    Read {
        filter: RelationshipFilter,
        back: u64,
        limit: usize,
    },
    Subjects(usize, usize, u64),
    Resources(usize, Option<usize>, u64),
    Changes(u64, usize),
}

fn filter() -> impl Strategy<Value = RelationshipFilter> {
    (
        prop::option::of(0..2usize),
        prop::option::of(0..3usize),
        prop::option::of(0..2usize),
        prop::option::of(0..4usize),
    )
        .prop_map(|(resource_type, resource, relation, subject)| {
            let mut res = RelationshipFilter {
                resource_type: resource_type.map(|it| ["doc", "folder"][it].to_string()),
                relation: relation.map(|it| RELATIONS[it].to_string()),
                ..Default::default()
            };
            if let Some(idx) = resource {
                let (t, id) = RESOURCES[idx].split_once(':').unwrap_or_default();
                res.resource_type = Some(t.to_string());
                res.resource_id = Some(id.to_string());
            }
            if let Some(idx) = subject {
                let subject: SubjectRef = SUBJECTS[idx].parse().unwrap_or_else(|_| unreachable!());
                res.subject_type = Some(subject.object.object_type);
                res.subject_id = Some(subject.object.object_id);
                res.subject_relation = Some(subject.relation.unwrap_or_else(|| "...".into()));
            }
            res
        })
}

fn update_op() -> impl Strategy<Value = UpdateOp> {
    prop_oneof![
        Just(UpdateOp::Create),
        Just(UpdateOp::Touch),
        Just(UpdateOp::Touch),
        Just(UpdateOp::Delete)
    ]
}

fn precondition_op() -> impl Strategy<Value = PreconditionOp> {
    prop_oneof![
        Just(PreconditionOp::MustExist),
        Just(PreconditionOp::MustNotExist)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            prop::collection::vec((update_op(), 0..UNIVERSE), 0..6),
            prop::collection::vec((precondition_op(), filter()), 0..2),
        )
            .prop_map(|(updates, preconditions)| Op::Write { updates, preconditions }),
        1 => (filter(), 0..4usize).prop_map(|(filter, limit)| Op::DeleteByFilter(filter, limit)),
        1 => prop::collection::vec(0..UNIVERSE, 0..10).prop_map(Op::Import),
        1 => Just(Op::Schema),
        1 => Just(Op::Reopen),
        1 => (0..4u64).prop_map(Op::Collect),
        3 => (filter(), 0..4u64, 0..4usize)
            .prop_map(|(filter, back, limit)| Op::Read { filter, back, limit }),
        2 => (0..3usize, 0..2usize, 0..3u64).prop_map(|(r, rel, back)| Op::Subjects(r, rel, back)),
        2 => (0..4usize, prop::option::of(0..2usize), 0..3u64)
            .prop_map(|(s, rel, back)| Op::Resources(s, rel, back)),
        1 => (0..6u64, 0..3usize).prop_map(|(back, limit)| Op::Changes(back, limit)),
    ]
}

/// A store under test that can be closed and reopened in place.
trait Backend {
    fn get(&self) -> &dyn Store;
    fn reopen(&mut self);
}

/// A sled store that can be closed and reopened in place.
struct Reopenable {
    path: PathBuf,
    store: Option<SledStore>,
}

impl Backend for Reopenable {
    fn get(&self) -> &dyn Store {
        self.store.as_ref().unwrap_or_else(|| unreachable!())
    }

    fn reopen(&mut self) {
        self.store = None;
        self.store = Some(SledStore::open(&Self::config(&self.path)).expect("reopen"));
    }
}

/// A PostgreSQL store (its own schema) that can be disconnected and reconnected.
struct PgBackend {
    config: PgConfig,
    store: Option<PgStore>,
}

impl Backend for PgBackend {
    fn get(&self) -> &dyn Store {
        self.store.as_ref().unwrap_or_else(|| unreachable!())
    }

    fn reopen(&mut self) {
        self.store = None;
        self.store = Some(PgStore::open(self.config.clone()).expect("reopen"));
    }
}

impl Reopenable {
    fn config(path: &std::path::Path) -> SledConfig {
        SledConfig {
            // Dropping the store must keep non-durable writes too.
            durable: false,
            gc_interval: None,
            ..SledConfig::new(path)
        }
    }
}

/// Change sets with their changes in a canonical order: by tuple, a delete before a touch.
fn canonical(mut sets: Vec<ChangeSet>) -> Vec<ChangeSet> {
    for set in &mut sets {
        set.changes
            .sort_by_key(|it| (it.relationship.tuple(), it.op == ChangeOp::Touch));
    }
    sets
}

/// Runs one op against a store and renders everything it answered.
fn apply(store: &dyn Store, op: &Op) -> String {
    let head = store.head().expect("head");
    let back = |n: u64| Revision(head.0.saturating_sub(n));
    match op {
        Op::Write {
            updates,
            preconditions,
        } => {
            let updates: Vec<Update> = updates
                .iter()
                .map(|(op, idx)| Update {
                    op: *op,
                    relationship: universe(*idx),
                })
                .collect();
            let preconditions: Vec<Precondition> = preconditions
                .iter()
                .map(|(op, filter)| Precondition {
                    op: *op,
                    filter: filter.clone(),
                })
                .collect();
            match store.write(&updates, &preconditions) {
                Ok(Ok(set)) => format!("{:?}", Ok::<_, ()>(Ok::<_, ()>(canonical(vec![set])))),
                other => format!("{other:?}"),
            }
        }
        Op::DeleteByFilter(filter, limit) => format!(
            "{:?}",
            store
                .delete_by_filter(filter, *limit)
                .map(|set| canonical(vec![set]))
        ),
        Op::Import(idxs) => {
            format!(
                "{:?}",
                store
                    .import(&mut idxs.iter().map(|it| universe(*it)))
                    .map(canonical)
            )
        }
        Op::Schema => format!("{:?}", store.write_schema(&format!("// at {head}"))),
        Op::Reopen => String::new(),
        Op::Collect(n) => {
            let ok = store.collect_garbage(back(*n)).is_ok();
            format!("{ok} {:?}", store.oldest_readable())
        }
        Op::Read {
            filter,
            back: n,
            limit,
        } => {
            let mut pages = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = store.read(filter, back(*n), *limit, cursor.as_deref());
                let next = page.as_ref().ok().and_then(|it| it.cursor.clone());
                pages.push(format!("{page:?}"));
                match next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            pages.join("\n")
        }
        Op::Subjects(resource, relation, n) => {
            let resource: ObjectRef = RESOURCES[*resource]
                .parse()
                .unwrap_or_else(|_| unreachable!());
            format!(
                "{:?}",
                store.subjects(&resource, RELATIONS[*relation], back(*n))
            )
        }
        Op::Resources(subject, relation, n) => {
            let subject: SubjectRef = SUBJECTS[*subject]
                .parse()
                .unwrap_or_else(|_| unreachable!());
            let relation = relation.map(|it| RELATIONS[it]);
            format!("{:?}", store.resources(&subject, None, relation, back(*n)))
        }
        Op::Changes(n, limit) => {
            format!("{:?}", store.changes_since(back(*n), *limit).map(canonical))
        }
    }
}

fn live(store: &dyn Store) -> Vec<Relationship> {
    let mut res = Vec::new();
    store.for_each_live(&mut |rel| res.push(rel)).expect("live");
    res
}

/// Runs `ops` against `backend` and the model; every answer must be the same.
fn answers_like_the_model(
    backend: &mut dyn Backend,
    ops: &[Op],
) -> Result<(), proptest::test_runner::TestCaseError> {
    let model = MemoryStore::new();
    for (step, op) in ops.iter().enumerate() {
        if matches!(op, Op::Reopen) {
            backend.reopen();
        }
        let expected = apply(&model, op);
        let actual = apply(backend.get(), op);
        prop_assert_eq!(&actual, &expected, "step {} {:?}", step, op);
        prop_assert_eq!(
            backend.get().head().expect("head"),
            model.head().expect("head")
        );
    }
    prop_assert_eq!(live(backend.get()), live(&model));
    prop_assert_eq!(
        backend.get().read_schema().expect("schema"),
        model.read_schema().expect("schema")
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn sled_answers_like_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sled = Reopenable {
            path: dir.path().to_path_buf(),
            store: None,
        };
        sled.reopen();
        answers_like_the_model(&mut sled, &ops)?;
    }
}

proptest! {
    // Each case migrates a fresh PostgreSQL schema: fewer cases keep it affordable.
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn postgres_answers_like_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let Some(config) = pg::fresh_config("store_model") else {
            return Ok(());
        };
        let mut postgres = PgBackend { config, store: None };
        postgres.reopen();
        answers_like_the_model(&mut postgres, &ops)?;
    }
}
