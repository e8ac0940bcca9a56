//! `schema::admit` wired to a `SledStore` the way the engine uses them: writes validated
//! against the schema (the whole batch refused, nothing written), and a schema change
//! refused while stored tuples would be orphaned, naming a count and an example tuple.

use arbiter::model::{Relationship, Revision};
use arbiter::schema::Schema;
use arbiter::schema::admit::{self, AdmitError, Orphan};
use arbiter::store::{SledStore, Store, Update, UpdateOp};

fn schema(text: &str) -> Schema {
    arbiter::schema::parse_and_compile(text)
        .unwrap_or_else(|err| panic!("test schema does not compile: {err:?}"))
}

const V1: &str = "
    definition user {}
    definition group { relation member: user | group#member }
    definition doc {
        relation viewer: user | user:* | group#member
        relation editor: user
        permission view = viewer + editor
    }";

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
    let schema = schema(V1);
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
    let old = schema(V1);
    store.write_schema(V1).expect("schema");
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
    let narrower = schema(&V1.replace("viewer: user | user:* | group#member", "viewer: user:*"));
    assert_eq!(
        refusals(&store, &old, &narrower),
        [
            "relation `doc#viewer` no longer admits `user`: 2 relationship(s) still use it, e.g. `doc:1#viewer@user:alice`"
        ]
    );
    let without_editor = schema(
        &V1.replace("relation editor: user", "")
            .replace("viewer + editor", "viewer"),
    );
    assert_eq!(
        refusals(&store, &old, &without_editor),
        [
            "relation `doc#editor` was removed: 1 relationship(s) still use it, e.g. `doc:1#editor@user:carol`"
        ]
    );
    // A compatible change (drop the unused subject set) goes through at one new revision.
    let compatible = schema(&V1.replace(
        "viewer: user | user:* | group#member",
        "viewer: user | user:*",
    ));
    assert!(refusals(&store, &old, &compatible).is_empty());
    let before = store.head().expect("head");
    let revision = store.write_schema(&compatible.source).expect("schema");
    assert_eq!(revision, Revision(before.0 + 1));
}
