//! Translations between `authzed.api.v1` messages and arbiter's model and store types.
//!
//! Everything from the wire is validated here with the model's own rules, and refused as
//! INVALID_ARGUMENT naming the field: a missing reference, a malformed id or name, an
//! unspecified operation, or something arbiter does not understand yet (caveat context,
//! caveated or expiring relationships, resource id prefixes). Input is never ignored.
//!
//! Caveats are not in the engine yet: [`permissionship`] is the single place where
//! PERMISSIONSHIP_CONDITIONAL_PERMISSION and `partial_caveat_info` will be mapped once the
//! engine answers three-valued, and [`refuse_context`] / [`relationship`] the places where
//! context and caveated relationships will be accepted.

use spicedb_rs_proto::authzed::api::v1 as pb;
use tonic::Status;

use crate::engine::{CheckAnswer, Permissionship};

use crate::model::{
    ObjectRef, Relationship, RelationshipFilter, SubjectRef, is_valid_object_id,
    is_valid_relation_name, is_valid_type_name,
};
use crate::store::{Precondition, PreconditionOp, Update, UpdateOp};

/// `required` as INVALID_ARGUMENT naming `field`.
pub fn required<T>(value: Option<T>, field: &str) -> Result<T, Status> {
    value.ok_or_else(|| Status::invalid_argument(format!("`{field}` is required")))
}

/// An object reference with a concrete id.
pub fn object(value: Option<&pb::ObjectReference>, field: &str) -> Result<ObjectRef, Status> {
    let value = required(value, field)?;
    ObjectRef::new(&value.object_type, &value.object_id)
        .map_err(|err| Status::invalid_argument(format!("invalid `{field}`: {err}")))
}

/// A subject: an object, a subject set, or `type:*`.
pub fn subject(value: Option<&pb::SubjectReference>, field: &str) -> Result<SubjectRef, Status> {
    let value = required(value, field)?;
    let object = required(value.object.as_ref(), field)?;
    let relation = Some(value.optional_relation.as_str()).filter(|it| !it.is_empty());
    SubjectRef::new(&object.object_type, &object.object_id, relation)
        .map_err(|err| Status::invalid_argument(format!("invalid `{field}`: {err}")))
}

/// A relation or permission name.
pub fn relation_name(value: &str, field: &str) -> Result<String, Status> {
    if is_valid_relation_name(value) {
        Ok(value.to_string())
    } else {
        Err(Status::invalid_argument(format!(
            "invalid `{field}`: `{value}` is not a valid relation or permission name"
        )))
    }
}

/// A type name.
pub fn type_name(value: &str, field: &str) -> Result<String, Status> {
    if is_valid_type_name(value) {
        Ok(value.to_string())
    } else {
        Err(Status::invalid_argument(format!(
            "invalid `{field}`: `{value}` is not a valid type name"
        )))
    }
}

/// A relationship to store. Caveats and expiration are refused until the engine has them.
pub fn relationship(value: Option<&pb::Relationship>, field: &str) -> Result<Relationship, Status> {
    let value = required(value, field)?;
    if let Some(caveat) = &value.optional_caveat {
        return Err(Status::invalid_argument(format!(
            "invalid `{field}`: caveat `{}` on a relationship is not supported yet",
            caveat.caveat_name
        )));
    }
    if value.optional_expires_at.is_some() {
        return Err(Status::invalid_argument(format!(
            "invalid `{field}`: relationship expiration is not supported yet"
        )));
    }
    let resource = object(value.resource.as_ref(), field)?;
    let subject = subject(value.subject.as_ref(), field)?;
    Relationship::new(resource, &value.relation, subject)
        .map_err(|err| Status::invalid_argument(format!("invalid `{field}`: {err}")))
}

/// The wire form of a stored relationship.
pub fn relationship_message(rel: &Relationship) -> pb::Relationship {
    pb::Relationship {
        resource: Some(object_message(&rel.resource)),
        relation: rel.relation.clone(),
        subject: Some(subject_message(&rel.subject)),
        optional_caveat: None,
        optional_expires_at: None,
    }
}

pub fn object_message(object: &ObjectRef) -> pb::ObjectReference {
    pb::ObjectReference {
        object_type: object.object_type.clone(),
        object_id: object.object_id.clone(),
    }
}

pub fn subject_message(subject: &SubjectRef) -> pb::SubjectReference {
    pb::SubjectReference {
        object: Some(object_message(&subject.object)),
        optional_relation: subject.relation.clone().unwrap_or_default(),
    }
}

/// A write's update.
pub fn update(value: &pb::RelationshipUpdate) -> Result<Update, Status> {
    use pb::relationship_update::Operation;
    let op = match Operation::try_from(value.operation) {
        Ok(Operation::Create) => UpdateOp::Create,
        Ok(Operation::Touch) => UpdateOp::Touch,
        Ok(Operation::Delete) => UpdateOp::Delete,
        Ok(Operation::Unspecified) | Err(_) => {
            return Err(Status::invalid_argument(format!(
                "invalid `updates`: operation `{}` is not create, touch or delete",
                value.operation
            )));
        }
    };
    Ok(Update {
        op,
        relationship: relationship(value.relationship.as_ref(), "updates")?,
    })
}

/// A write's precondition.
pub fn precondition(value: &pb::Precondition) -> Result<Precondition, Status> {
    use pb::precondition::Operation;
    let op = match Operation::try_from(value.operation) {
        Ok(Operation::MustMatch) => PreconditionOp::MustExist,
        Ok(Operation::MustNotMatch) => PreconditionOp::MustNotExist,
        Ok(Operation::Unspecified) | Err(_) => {
            return Err(Status::invalid_argument(format!(
                "invalid `optional_preconditions`: operation `{}` is not must_match or must_not_match",
                value.operation
            )));
        }
    };
    Ok(Precondition {
        op,
        filter: filter(value.filter.as_ref(), "optional_preconditions")?,
    })
}

/// A relationship filter. An empty `resource_type` matches every type, as in SpiceDB;
/// an id prefix is refused (not supported).
pub fn filter(
    value: Option<&pb::RelationshipFilter>,
    field: &str,
) -> Result<RelationshipFilter, Status> {
    let value = required(value, field)?;
    if !value.optional_resource_id_prefix.is_empty() {
        return Err(Status::invalid_argument(format!(
            "invalid `{field}`: `optional_resource_id_prefix` is not supported"
        )));
    }
    let mut res = RelationshipFilter {
        resource_type: optional(&value.resource_type, |it| type_name(it, field))?,
        resource_id: optional(&value.optional_resource_id, |it| object_id(it, field))?,
        relation: optional(&value.optional_relation, |it| relation_name(it, field))?,
        ..RelationshipFilter::default()
    };
    if let Some(subject) = &value.optional_subject_filter {
        res.subject_type = Some(type_name(&subject.subject_type, field)?);
        res.subject_id = optional(&subject.optional_subject_id, |it| object_id(it, field))?;
        res.subject_relation = match &subject.optional_relation {
            None => None,
            // An empty relation selects subjects without one (SpiceDB's ellipsis).
            Some(it) if it.relation.is_empty() => Some("...".to_string()),
            Some(it) => Some(relation_name(&it.relation, field)?),
        };
    }
    if res == RelationshipFilter::default() {
        return Err(Status::invalid_argument(format!(
            "invalid `{field}`: the filter must set at least one field"
        )));
    }
    Ok(res)
}

/// Refuses a request that carries caveat context: the engine has no caveats yet, and a
/// context silently ignored could change an answer.
pub fn refuse_context(context: Option<&prost_types::Struct>, field: &str) -> Result<(), Status> {
    match context {
        Some(_) => Err(Status::invalid_argument(format!(
            "invalid `{field}`: caveat context is not supported yet"
        ))),
        None => Ok(()),
    }
}

/// THE mapping of the engine's three-valued answer to SpiceDB's permissionship: a
/// conditional answer is CONDITIONAL with the missing parameters in `partial_caveat_info`.
pub fn permissionship(answer: &CheckAnswer) -> (i32, Option<pb::PartialCaveatInfo>) {
    use pb::check_permission_response::Permissionship as Wire;
    match answer.permissionship {
        Permissionship::HasPermission => (Wire::HasPermission as i32, None),
        Permissionship::NoPermission => (Wire::NoPermission as i32, None),
        Permissionship::ConditionalPermission => (
            Wire::ConditionalPermission as i32,
            Some(pb::PartialCaveatInfo {
                missing_required_context: answer.missing_context.clone(),
            }),
        ),
    }
}

/// The permissionship of a lookup result: every result is definite until the engine
/// answers conditional ones (caveats); they will be mapped here.
pub fn lookup_permissionship() -> i32 {
    pb::LookupPermissionship::HasPermission as i32
}

fn object_id(value: &str, field: &str) -> Result<String, Status> {
    if is_valid_object_id(value) || value == "*" {
        Ok(value.to_string())
    } else {
        Err(Status::invalid_argument(format!(
            "invalid `{field}`: `{value}` is not a valid object id"
        )))
    }
}

fn optional(
    value: &str,
    parse: impl Fn(&str) -> Result<String, Status>,
) -> Result<Option<String>, Status> {
    if value.is_empty() {
        Ok(None)
    } else {
        parse(value).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn reference(object_type: &str, object_id: &str) -> pb::ObjectReference {
        pb::ObjectReference {
            object_type: object_type.into(),
            object_id: object_id.into(),
        }
    }

    #[test]
    fn malformed_references_are_invalid_argument() {
        let cases = [("doc", "a b"), ("Doc", "1"), ("doc", ""), ("doc", "*")];
        for (object_type, object_id) in cases {
            let err = object(Some(&reference(object_type, object_id)), "resource").unwrap_err();
            assert_eq!(
                err.code(),
                Code::InvalidArgument,
                "{object_type}:{object_id}"
            );
            assert!(err.message().contains("`resource`"), "{}", err.message());
        }
        assert_eq!(
            object(None, "resource").unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn caveated_and_expiring_relationships_are_refused() {
        let mut rel = pb::Relationship {
            resource: Some(reference("doc", "1")),
            relation: "viewer".into(),
            subject: Some(pb::SubjectReference {
                object: Some(reference("user", "a")),
                optional_relation: String::new(),
            }),
            optional_caveat: None,
            optional_expires_at: None,
        };
        assert!(relationship(Some(&rel), "updates").is_ok());
        rel.optional_expires_at = Some(prost_types::Timestamp::default());
        let err = relationship(Some(&rel), "updates").unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("expiration"), "{}", err.message());
    }

    #[test]
    fn filters_refuse_what_they_cannot_honour() {
        let empty = pb::RelationshipFilter::default();
        assert!(filter(Some(&empty), "relationship_filter").is_err());
        let prefix = pb::RelationshipFilter {
            resource_type: "doc".into(),
            optional_resource_id_prefix: "a".into(),
            ..Default::default()
        };
        assert!(filter(Some(&prefix), "relationship_filter").is_err());
        let ellipsis = pb::RelationshipFilter {
            resource_type: "doc".into(),
            optional_subject_filter: Some(pb::SubjectFilter {
                subject_type: "user".into(),
                optional_subject_id: String::new(),
                optional_relation: Some(pb::subject_filter::RelationFilter {
                    relation: String::new(),
                }),
            }),
            ..Default::default()
        };
        let parsed = filter(Some(&ellipsis), "relationship_filter").unwrap();
        assert_eq!(parsed.subject_relation.as_deref(), Some("..."));
    }
}
