//! Sync: make the store match a desired state — a schema and the complete set of
//! relationships of some resource types — atomically, at one revision.
//!
//! What a sync owns is its *scope*: every relationship whose resource type is in
//! [`SyncRequest::resource_types`]. Inside the scope, relationships that are desired and not
//! live are written, and live ones that are not desired are deleted. Outside it nothing is
//! touched, but every relationship kept there must still fit the new schema (otherwise the
//! sync is refused, as a schema write that would orphan them is).
//!
//! Everything is decided and validated under the engine's write lock before anything is
//! written, then handed to [`Store::apply_at_one_revision`](crate::store::Store) as one
//! revision (chunked into several transactions by the store when large, rolled back at
//! open if a crash interrupted it). A sync that changes nothing writes nothing.

use rustc_hash::FxHashSet;

use crate::model::{Relationship, Revision};
use crate::schema::admit;
use crate::store::{ChangeSet, Update, UpdateOp};

use super::writer::Inner;
use super::{EngineError, schema_text};

/// The desired state.
#[derive(Clone, Debug, Default)]
pub struct SyncRequest {
    /// The schema text to install; `None` keeps the current one (which must exist).
    pub schema: Option<String>,
    /// The resource types the sync owns; each must be defined by the (new) schema.
    pub resource_types: Vec<String>,
    /// Every relationship the scope should hold; each must be of a type in the scope.
    pub relationships: Vec<Relationship>,
}

/// What a sync did (or, for a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// The revision the sync committed at; `None` for a dry run or when nothing changed.
    pub revision: Option<Revision>,
    /// Whether the schema text differs from the installed one.
    pub schema_changed: bool,
    /// Relationships written, sorted.
    pub added: Vec<Relationship>,
    /// Relationships deleted, sorted.
    pub removed: Vec<Relationship>,
}

impl SyncReport {
    /// Whether the store already matched.
    pub fn is_unchanged(&self) -> bool {
        !self.schema_changed && self.added.is_empty() && self.removed.is_empty()
    }
}

impl Inner {
    pub fn sync(&self, request: &SyncRequest, dry_run: bool) -> Result<SyncReport, EngineError> {
        let _writer = self.write_lock.lock();
        let current = self.loaded();
        let (schema, schema_text) = match (&request.schema, &current) {
            (Some(text), _) => (schema_text::compile(text)?, text.clone()),
            (None, Some(loaded)) => (schema_text::compile(&loaded.text)?, loaded.text.clone()),
            (None, None) => return Err(EngineError::NoSchema),
        };
        let schema_changed = current.as_ref().is_none_or(|it| it.text != schema_text);
        for resource_type in &request.resource_types {
            if schema.definition(resource_type).is_none() {
                return Err(EngineError::invalid(
                    "resource_types",
                    format!(
                        "the sync scope names `{resource_type}`, which the schema does not define"
                    ),
                ));
            }
        }
        let scope: FxHashSet<&str> = request.resource_types.iter().map(String::as_str).collect();
        let mut desired: FxHashSet<&Relationship> = FxHashSet::default();
        for relationship in &request.relationships {
            if !scope.contains(relationship.resource.object_type.as_str()) {
                return Err(EngineError::invalid(
                    "relationships",
                    format!(
                        "relationship `{relationship}` is outside the sync scope (its resource type is not synced)"
                    ),
                ));
            }
            admit::check_relationship(&schema, relationship)?;
            desired.insert(relationship);
        }
        // One pass over everything live: find what to delete in the scope, what is already
        // there, and whether anything kept outside the scope would not fit the new schema.
        let mut removed = Vec::new();
        let mut present: FxHashSet<Relationship> = FxHashSet::default();
        let mut misfit: Option<(String, String, usize)> = None;
        self.store.for_each_live(&mut |relationship| {
            if scope.contains(relationship.resource.object_type.as_str()) {
                if desired.contains(&relationship) {
                    present.insert(relationship);
                } else {
                    removed.push(relationship);
                }
            } else if schema_changed
                && let Err(err) = admit::check_relationship(&schema, &relationship)
            {
                let entry =
                    misfit.get_or_insert_with(|| (err.to_string(), relationship.to_string(), 0));
                entry.2 += 1;
            }
        })?;
        if let Some((what, example, count)) = misfit {
            return Err(EngineError::SchemaOrphans {
                what: format!("{what} (outside the sync scope, so the sync keeps it)"),
                count,
                example,
            });
        }
        let mut added: Vec<Relationship> = desired
            .into_iter()
            .filter(|it| !present.contains(*it))
            .cloned()
            .collect();
        added.sort();
        removed.sort();
        let mut report = SyncReport {
            revision: None,
            schema_changed,
            added,
            removed,
        };
        if dry_run || report.is_unchanged() {
            return Ok(report);
        }
        let updates: Vec<Update> = report
            .removed
            .iter()
            .map(|rel| (UpdateOp::Delete, rel))
            .chain(report.added.iter().map(|rel| (UpdateOp::Touch, rel)))
            .map(|(op, rel)| Update {
                op,
                relationship: rel.clone(),
            })
            .collect();
        let change_set = self
            .store
            .apply_at_one_revision(&updates, schema_changed.then_some(schema_text.as_str()))?;
        if schema_changed {
            self.set_schema(schema, schema_text, change_set.revision);
        }
        self.follow_to(change_set.revision)?;
        report.revision = Some(change_set.revision);
        Ok(report)
    }

    /// Applies a committed change set to the index without moving the head.
    pub(super) fn apply_without_publishing(&self, change_set: &ChangeSet) {
        for part in change_set.changes.chunks(1_000) {
            self.index.write().apply_changes(change_set.revision, part);
        }
    }
}
