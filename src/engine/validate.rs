//! Validation of relationships against the compiled schema, for the write path and for
//! schema changes (a new schema must still admit every stored relationship).
//!
//! A relationship fits when its resource type exists, its relation exists and is a
//! relation (tuples are never written to permissions), and the relation admits its
//! subject: `T` for a plain object, `T:*` for a wildcard, `T#rel` for a subject set.

use crate::model::Relationship;
use crate::schema::{AllowedSubject, RelationKind, Schema};

use super::EngineError;

/// Why `relationship` does not fit `schema`, or `None` when it does.
pub(crate) fn problem(schema: &Schema, relationship: &Relationship) -> Option<String> {
    let resource_type = &relationship.resource.object_type;
    let Some(definition) = schema.definition(resource_type) else {
        return Some(format!("unknown type `{resource_type}`"));
    };
    let Some(relation_id) = definition.relation_by_name.get(&relationship.relation) else {
        return Some(format!(
            "type `{resource_type}` has no relation `{}`",
            relationship.relation
        ));
    };
    let relation = schema.relation_by_id(*relation_id);
    let RelationKind::Relation { allowed } = &relation.kind else {
        return Some(format!(
            "`{resource_type}#{}` is a permission: relationships cannot be written to it",
            relationship.relation
        ));
    };
    let subject = &relationship.subject;
    let subject_type = &subject.object.object_type;
    let Some(subject_definition) = schema.definition(subject_type) else {
        return Some(format!("unknown subject type `{subject_type}`"));
    };
    let wanted = if subject.is_wildcard() {
        AllowedSubject::Wildcard(subject_definition.id)
    } else if let Some(rel) = &subject.relation {
        let Some(rel_id) = subject_definition.relation_by_name.get(rel) else {
            return Some(format!(
                "type `{subject_type}` has no relation or permission `{rel}`"
            ));
        };
        AllowedSubject::SubjectSet(subject_definition.id, *rel_id)
    } else {
        AllowedSubject::Object(subject_definition.id)
    };
    if allowed.contains(&wanted) {
        None
    } else {
        let shown = match wanted {
            AllowedSubject::Wildcard(_) => format!("{subject_type}:*"),
            AllowedSubject::SubjectSet(..) => {
                format!(
                    "{subject_type}#{}",
                    subject.relation.as_deref().unwrap_or("")
                )
            }
            AllowedSubject::Object(_) => subject_type.clone(),
        };
        Some(format!(
            "relation `{resource_type}#{}` does not admit subjects of type `{shown}`",
            relationship.relation
        ))
    }
}

/// Checks every relationship; the first misfit fails the whole batch.
pub(crate) fn all<'r>(
    schema: &Schema,
    relationships: impl IntoIterator<Item = &'r Relationship>,
) -> Result<(), EngineError> {
    for relationship in relationships {
        if let Some(reason) = problem(schema, relationship) {
            return Err(EngineError::InvalidRelationship {
                relationship: relationship.to_string(),
                reason,
            });
        }
    }
    Ok(())
}
