//! Translations between `authzed.api.v1` messages and arbiter's model and store types.
//!
//! Everything from the wire is validated here with the model's own rules, and refused as
//! INVALID_ARGUMENT naming the field: a missing reference, a malformed id or name, an
//! unspecified operation, or something arbiter does not understand yet (resource id
//! prefixes). Input is never ignored.
//!
//! Caveats (DESIGN §3): a request's `context` becomes the engine's [`Context`] in
//! [`context`] (a `google.protobuf.Struct` is JSON: numbers are doubles, and a whole one is
//! passed as an integer so that `int` parameters accept it); a relationship's
//! `optional_caveat` and `optional_expires_at` are read in [`relationship`] and written
//! back in [`relationship_message`]. [`permissionship`] and [`lookup_permissionship`] are
//! the places where a conditional answer becomes CONDITIONAL with
//! `partial_caveat_info.missing_required_context`.

use spicedb_rs_proto::authzed::api::v1 as pb;
use tonic::Status;

use crate::engine::{CheckAnswer, Context, Permissionship};

use crate::model::{
    ObjectRef, Relationship, RelationshipCaveat, RelationshipFilter, SubjectRef, Timestamp,
    is_valid_object_id, is_valid_relation_name, is_valid_type_name,
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

/// A relationship to store, with its caveat and expiration (the engine validates them
/// against the schema on write).
pub fn relationship(value: Option<&pb::Relationship>, field: &str) -> Result<Relationship, Status> {
    let value = required(value, field)?;
    let invalid =
        |err: &dyn std::fmt::Display| Status::invalid_argument(format!("invalid `{field}`: {err}"));
    let resource = object(value.resource.as_ref(), field)?;
    let subject = subject(value.subject.as_ref(), field)?;
    let mut res =
        Relationship::new(resource, &value.relation, subject).map_err(|err| invalid(&err))?;
    if let Some(caveat) = &value.optional_caveat {
        let context = context(caveat.context.as_ref(), field)?.unwrap_or_default();
        let caveat =
            RelationshipCaveat::new(&caveat.caveat_name, context).map_err(|err| invalid(&err))?;
        res = res.with_caveat(caveat);
    }
    if let Some(at) = &value.optional_expires_at {
        let nanos = u32::try_from(at.nanos).map_err(|_| {
            invalid(&format!(
                "`{}` is not a valid count of nanoseconds",
                at.nanos
            ))
        })?;
        let at = Timestamp::from_unix(at.seconds, nanos).map_err(|err| invalid(&err))?;
        res = res.with_expiration(at);
    }
    Ok(res)
}

/// The wire form of a stored relationship, with its caveat and expiration.
pub fn relationship_message(rel: &Relationship) -> pb::Relationship {
    pb::Relationship {
        resource: Some(object_message(&rel.resource)),
        relation: rel.relation.clone(),
        subject: Some(subject_message(&rel.subject)),
        optional_caveat: rel.caveat.as_ref().map(|caveat| pb::ContextualizedCaveat {
            caveat_name: caveat.name.clone(),
            context: (!caveat.context.is_empty()).then(|| struct_of(&caveat.context)),
        }),
        optional_expires_at: rel.expiration.map(|at| prost_types::Timestamp {
            seconds: at.unix_seconds(),
            // INVARIANT: below 1,000,000,000, so it fits.
            nanos: i32::try_from(at.subsec_nanos()).unwrap_or(0),
        }),
    }
}

/// A request's caveat context (a JSON object on the wire), `None` when absent.
pub fn context(
    value: Option<&prost_types::Struct>,
    field: &str,
) -> Result<Option<Context>, Status> {
    value
        .map(|it| {
            it.fields
                .iter()
                .map(|(key, value)| Ok((key.clone(), json_of(value, field)?)))
                .collect::<Result<Context, Status>>()
        })
        .transpose()
}

fn json_of(value: &prost_types::Value, field: &str) -> Result<serde_json::Value, Status> {
    use prost_types::value::Kind;
    use serde_json::Value as Json;
    Ok(match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(it)) => Json::Bool(*it),
        Some(Kind::StringValue(it)) => Json::String(it.clone()),
        Some(Kind::NumberValue(it)) => number(*it).ok_or_else(|| {
            Status::invalid_argument(format!("invalid `{field}`: `{it}` is not a JSON number"))
        })?,
        Some(Kind::ListValue(list)) => Json::Array(
            list.values
                .iter()
                .map(|it| json_of(it, field))
                .collect::<Result<_, _>>()?,
        ),
        Some(Kind::StructValue(it)) => Json::Object(
            it.fields
                .iter()
                .map(|(key, value)| Ok((key.clone(), json_of(value, field)?)))
                .collect::<Result<_, Status>>()?,
        ),
    })
}

/// A double as JSON: a whole one (within ±2^53, where doubles are exact) as an integer.
fn number(value: f64) -> Option<serde_json::Value> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if value.fract() == 0.0 && value.abs() <= EXACT {
        // In range and whole: the cast is exact.
        #[expect(clippy::cast_possible_truncation, reason = "whole and within ±2^53")]
        return Some(serde_json::Value::from(value as i64));
    }
    serde_json::Number::from_f64(value).map(serde_json::Value::Number)
}

fn struct_of(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(key, value)| (key.clone(), value_of(value)))
            .collect(),
    }
}

fn value_of(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    use serde_json::Value as Json;
    let kind = match value {
        Json::Null => Kind::NullValue(0),
        Json::Bool(it) => Kind::BoolValue(*it),
        Json::Number(it) => Kind::NumberValue(it.as_f64().unwrap_or(0.0)),
        Json::String(it) => Kind::StringValue(it.clone()),
        Json::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(value_of).collect(),
        }),
        Json::Object(map) => Kind::StructValue(struct_of(map)),
    };
    prost_types::Value { kind: Some(kind) }
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

/// The permissionship of a lookup result: definite (`None`), or conditional with the
/// missing parameters.
pub fn lookup_permissionship(missing: Option<&[String]>) -> (i32, Option<pb::PartialCaveatInfo>) {
    match missing {
        None => (pb::LookupPermissionship::HasPermission as i32, None),
        Some(missing) => (
            pb::LookupPermissionship::ConditionalPermission as i32,
            Some(pb::PartialCaveatInfo {
                missing_required_context: missing.to_vec(),
            }),
        ),
    }
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
    fn caveats_and_expirations_cross_the_wire_both_ways() {
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
        rel.optional_expires_at = Some(prost_types::Timestamp {
            seconds: 1_900_000_000,
            nanos: 5,
        });
        let mut context = serde_json::Map::new();
        context.insert("cidr".into(), "10.0.0.0/8".into());
        context.insert("tier".into(), 2.into());
        context.insert("ratio".into(), serde_json::json!(0.5));
        rel.optional_caveat = Some(pb::ContextualizedCaveat {
            caveat_name: "ip_allowlist".into(),
            context: Some(struct_of(&context)),
        });
        let parsed = relationship(Some(&rel), "updates").unwrap();
        assert_eq!(
            parsed.to_string(),
            r#"doc:1#viewer@user:a[ip_allowlist:{"cidr":"10.0.0.0/8","ratio":0.5,"tier":2}][expiration:2030-03-17T17:46:40.000000005Z]"#
        );
        assert_eq!(relationship_message(&parsed), rel);
        rel.optional_expires_at = Some(prost_types::Timestamp {
            seconds: 0,
            nanos: -1,
        });
        let err = relationship(Some(&rel), "updates").unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("`updates`"), "{}", err.message());
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
