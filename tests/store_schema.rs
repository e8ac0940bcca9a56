//! `schema::admit` wired to a `SledStore` the way the engine uses them: writes validated
//! against the schema (the whole batch refused, nothing written), and a schema change
//! refused while stored tuples would be orphaned, naming a count and an example tuple.

use std::collections::HashMap;

use arbiter::model::{Relationship, Revision};
use arbiter::schema::admit::{self, AdmitError, Orphan};
use arbiter::schema::{
    AllowedSubject, Definition, Expr, RelationDef, RelationId, RelationKind, Schema, TypeId,
};
use arbiter::store::{SledStore, Store, Update, UpdateOp};

/// Builds a schema from `(type, [(relation, spec)])`, where a spec is `=` for a permission
/// or `T | T:* | T#rel` for a relation. (Until the schema compiler is on main.)
fn schema(defs: &[(&str, &[(&str, &str)])]) -> Schema {
    let mut res = Schema {
        definitions: Vec::new(),
        relations: Vec::new(),
        type_by_name: HashMap::new(),
        graph: Default::default(),
        source: String::new(),
    };
    for (type_idx, (name, relations)) in defs.iter().enumerate() {
        let id = TypeId(type_idx as u32);
        let mut definition = Definition {
            id,
            name: name.to_string(),
            relations: Vec::new(),
            relation_by_name: HashMap::new(),
            doc: None,
        };
        for (relation, _) in *relations {
            let relation_id = RelationId(res.relations.len() as u32);
            definition.relations.push(relation_id);
            definition
                .relation_by_name
                .insert(relation.to_string(), relation_id);
            res.relations.push(RelationDef {
                id: relation_id,
                owner: id,
                name: relation.to_string(),
                kind: RelationKind::Permission { expr: Expr::Nil },
                doc: None,
            });
        }
        res.type_by_name.insert(name.to_string(), id);
        res.definitions.push(definition);
    }
    for (name, relations) in defs {
        for (relation, spec) in *relations {
            if *spec == "=" {
                continue;
            }
            let allowed = spec
                .split('|')
                .map(|part| {
                    let part = part.trim();
                    if let Some(t) = part.strip_suffix(":*") {
                        AllowedSubject::Wildcard(res.type_by_name[t])
                    } else if let Some((t, r)) = part.split_once('#') {
                        let def = res.definition(t).expect("subject set type");
                        AllowedSubject::SubjectSet(def.id, def.relation_by_name[r])
                    } else {
                        AllowedSubject::Object(res.type_by_name[part])
                    }
                })
                .collect();
            let id = res.definition(name).expect("type").relation_by_name[*relation];
            res.relations[id.0 as usize].kind = RelationKind::Relation { allowed };
        }
    }
    res
}

fn v1() -> Schema {
    schema(&[
        ("user", &[]),
        ("group", &[("member", "user | group#member")]),
        (
            "doc",
            &[
                ("viewer", "user | user:* | group#member"),
                ("editor", "user"),
                ("view", "="),
            ],
        ),
    ])
}

fn touch(text: &str) -> Update {
    Update {
        op: UpdateOp::Touch,
        relationship: text.parse().expect("relationship"),
    }
}

/// What the engine does on write: validate every update, then write the batch.
fn validated_write(
    store: &dyn Store,
    schema: &Schema,
    updates: &[Update],
) -> Result<Revision, AdmitError> {
    for update in updates {
        admit::check_relationship(schema, &update.relationship)?;
    }
    Ok(store
        .write(updates, &[])
        .expect("store")
        .expect("rejected")
        .revision)
}

/// What the engine does on schema replace: count the stored tuples each orphaned usage
/// matches and refuse with the count and an example.
fn refusals(store: &dyn Store, old: &Schema, new: &Schema) -> Vec<String> {
    let head = store.head().expect("head");
    let mut res = Vec::new();
    for orphan in admit::orphaned_usages(old, new) {
        let matching: Vec<Relationship> = store
            .read(&orphan.filter, head, 0, None)
            .expect("read")
            .relationships
            .into_iter()
            .filter(|rel| Orphan::matches(&orphan, rel))
            .collect();
        if let Some(example) = matching.first() {
            res.push(format!(
                "{}: {} relationship(s) still use it, e.g. `{example}`",
                orphan.description,
                matching.len()
            ));
        }
    }
    res
}

#[test]
fn a_batch_with_one_inadmissible_relationship_writes_nothing() {
    let store = SledStore::temporary().expect("store");
    let schema = v1();
    let err = validated_write(
        &store,
        &schema,
        &[
            touch("doc:1#viewer@user:alice"),
            touch("doc:1#editor@user:*"),
        ],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "relationship `doc:1#editor@user:*`: relation `doc#editor` does not admit subjects of the form `user:*`; it admits `user`"
    );
    assert_eq!(store.head().expect("head"), Revision(0));
    validated_write(&store, &schema, &[touch("doc:1#viewer@user:alice")]).expect("admitted");
}

#[test]
fn a_schema_change_that_would_orphan_tuples_is_refused_with_count_and_example() {
    let store = SledStore::temporary().expect("store");
    let old = v1();
    store.write_schema("v1").expect("schema");
    validated_write(
        &store,
        &old,
        &[
            touch("doc:1#viewer@user:alice"),
            touch("doc:2#viewer@user:bob"),
            touch("doc:2#viewer@user:*"),
            touch("doc:1#editor@user:carol"),
        ],
    )
    .expect("admitted");
    // Dropping `user` from viewer orphans two tuples (not the wildcard one); dropping
    // `group#member` orphans none, since no stored tuple uses it.
    let narrower = schema(&[
        ("user", &[]),
        ("group", &[("member", "user | group#member")]),
        (
            "doc",
            &[("viewer", "user:*"), ("editor", "user"), ("view", "=")],
        ),
    ]);
    assert_eq!(
        refusals(&store, &old, &narrower),
        [
            "relation `doc#viewer` no longer admits `user`: 2 relationship(s) still use it, e.g. `doc:1#viewer@user:alice`"
        ]
    );
    let without_editor = schema(&[
        ("user", &[]),
        ("group", &[("member", "user | group#member")]),
        ("doc", &[("viewer", "user | user:*"), ("view", "=")]),
    ]);
    assert_eq!(
        refusals(&store, &old, &without_editor),
        [
            "relation `doc#editor` was removed: 1 relationship(s) still use it, e.g. `doc:1#editor@user:carol`"
        ]
    );
    // A compatible change (drop the unused subject set) goes through at one new revision.
    let compatible = schema(&[
        ("user", &[]),
        ("group", &[("member", "user | group#member")]),
        (
            "doc",
            &[
                ("viewer", "user | user:*"),
                ("editor", "user"),
                ("view", "="),
            ],
        ),
    ]);
    assert!(refusals(&store, &old, &compatible).is_empty());
    let before = store.head().expect("head");
    let revision = store.write_schema("v2").expect("schema");
    assert_eq!(revision, Revision(before.0 + 1));
}
