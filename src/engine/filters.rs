//! Validation of relationship filters (reads, deletes, write preconditions) against the
//! schema, like writes are validated: a filter naming an unknown type, a relation its type
//! lacks, or a permission (never stored) can match nothing, so it is refused with an error
//! naming the field instead of silently reading, deleting or guarding nothing.

use crate::model::{ELLIPSIS, RelationshipFilter};
use crate::schema::Schema;

use super::EngineError;

/// Checks `filter` against `schema`; an error names `field` and the part of the filter.
pub(crate) fn validate(
    schema: &Schema,
    filter: &RelationshipFilter,
    field: &'static str,
) -> Result<(), EngineError> {
    problem(schema, filter).map_or(Ok(()), |message| Err(EngineError::invalid(field, message)))
}

/// Checks every precondition's filter; an error names the precondition by its index.
pub(crate) fn validate_preconditions(
    schema: &Schema,
    preconditions: &[crate::store::Precondition],
) -> Result<(), EngineError> {
    for (index, precondition) in preconditions.iter().enumerate() {
        if let Some(message) = problem(schema, &precondition.filter) {
            return Err(EngineError::invalid(
                "preconditions",
                format!("precondition {index}: {message}"),
            ));
        }
    }
    Ok(())
}

/// What is wrong with `filter`, if anything.
fn problem(schema: &Schema, filter: &RelationshipFilter) -> Option<String> {
    if let Some(ty) = &filter.resource_type
        && schema.definition(ty).is_none()
    {
        return Some(format!("`resource_type`: unknown type `{ty}`"));
    }
    if let Some(relation) = &filter.relation {
        match &filter.resource_type {
            Some(ty) => match schema.relation(ty, relation) {
                None => {
                    return Some(format!(
                        "`relation`: type `{ty}` has no relation `{relation}`"
                    ));
                }
                Some(def) if def.is_permission() => {
                    return Some(format!(
                        "`relation`: `{relation}` of type `{ty}` is a permission, and only relations are stored"
                    ));
                }
                Some(_) => {}
            },
            None => {
                let stored_somewhere = schema.definitions.iter().any(|definition| {
                    schema
                        .relation(&definition.name, relation)
                        .is_some_and(|def| !def.is_permission())
                });
                if !stored_somewhere {
                    return Some(format!("`relation`: no type has a relation `{relation}`"));
                }
            }
        }
    }
    if let Some(ty) = &filter.subject_type
        && schema.definition(ty).is_none()
    {
        return Some(format!("`subject_type`: unknown type `{ty}`"));
    }
    if let Some(relation) = filter.subject_relation.as_deref()
        && relation != ELLIPSIS
    {
        let known = match &filter.subject_type {
            Some(ty) => schema.relation(ty, relation).is_some(),
            None => schema
                .definitions
                .iter()
                .any(|definition| schema.relation(&definition.name, relation).is_some()),
        };
        if !known {
            return Some(match &filter.subject_type {
                Some(ty) => format!(
                    "`subject_relation`: type `{ty}` has no relation or permission `{relation}`"
                ),
                None => {
                    format!("`subject_relation`: no type has a relation or permission `{relation}`")
                }
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parse_and_compile;

    fn filter(fields: [Option<&str>; 4]) -> RelationshipFilter {
        let [resource_type, relation, subject_type, subject_relation] =
            fields.map(|it| it.map(str::to_string));
        RelationshipFilter {
            resource_type,
            relation,
            subject_type,
            subject_relation,
            ..Default::default()
        }
    }

    #[test]
    fn issue10_filters_naming_unknown_schema_names_are_refused() {
        let schema = parse_and_compile(
            "definition user {}
             definition group { relation member: user | group#member }
             definition doc { relation viewer: user | group#member  permission view = viewer }",
        )
        .unwrap();
        let cases: [([Option<&str>; 4], Option<&str>); 11] = [
            ([None, None, None, None], None),
            (
                [Some("doc"), Some("viewer"), Some("group"), Some("member")],
                None,
            ),
            ([None, Some("member"), None, Some("...")], None),
            (
                [Some("model"), None, None, None],
                Some("`resource_type`: unknown type `model`"),
            ),
            (
                [Some("doc"), Some("editor"), None, None],
                Some("type `doc` has no relation `editor`"),
            ),
            (
                [Some("doc"), Some("view"), None, None],
                Some("is a permission"),
            ),
            (
                [None, Some("editor"), None, None],
                Some("no type has a relation `editor`"),
            ),
            (
                [None, Some("view"), None, None],
                Some("no type has a relation `view`"),
            ),
            (
                [None, None, Some("usr"), None],
                Some("`subject_type`: unknown type `usr`"),
            ),
            (
                [None, None, Some("user"), Some("member")],
                Some("type `user` has no relation"),
            ),
            (
                [None, None, None, Some("owner")],
                Some("no type has a relation or permission `owner`"),
            ),
        ];
        for (fields, expected) in cases {
            let res = validate(&schema, &filter(fields), "filter");
            match (expected, res) {
                (None, Ok(())) => {}
                (Some(text), Err(EngineError::InvalidInput { field, message })) => {
                    assert_eq!(field, "filter");
                    assert!(message.contains(text), "{fields:?}: {message}");
                }
                (expected, res) => panic!("{fields:?}: expected {expected:?}, got {res:?}"),
            }
        }
    }
}
