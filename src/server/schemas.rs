//! OpenAPI schemas of the engine types the JSON API carries as they are (serde on the engine
//! type is the wire format), so the JSON layer needs no mirror enum of them. Only `server/`
//! names utoipa; the engine stays free of it.
//!
//! Enum values are produced by serializing every variant, so a schema cannot drift from the
//! serde spelling; the exhaustive `match` in each variant list stops the build when a
//! variant is added and not listed.

use std::borrow::Cow;

use serde::Serialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::engine::{ConditionalId, ExpandDepth, Permissionship};

/// A string schema whose values are the serde spellings of `variants`.
fn string_enum<T: Serialize>(variants: &[T], description: &str) -> RefOr<Schema> {
    let values: Vec<serde_json::Value> = variants
        .iter()
        .filter_map(|it| serde_json::to_value(it).ok())
        .collect();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .description(Some(description))
        .into()
}

/// Every variant of `Permissionship`, in declaration order.
fn permissionships() -> [Permissionship; 3] {
    use Permissionship::{ConditionalPermission, HasPermission, NoPermission};
    // INVARIANT: the list names every variant; this match stops the build when one is added.
    let _exhaustive = |it: Permissionship| match it {
        HasPermission | NoPermission | ConditionalPermission => (),
    };
    [HasPermission, NoPermission, ConditionalPermission]
}

/// Every variant of `ExpandDepth`, in declaration order.
fn expand_depths() -> [ExpandDepth; 2] {
    use ExpandDepth::{OneLevel, Recursive};
    // INVARIANT: as for `permissionships`.
    let _exhaustive = |it: ExpandDepth| match it {
        OneLevel | Recursive => (),
    };
    [OneLevel, Recursive]
}

impl PartialSchema for Permissionship {
    fn schema() -> RefOr<Schema> {
        string_enum(
            &permissionships(),
            "Whether the subject has the permission, three-valued (DESIGN §3).",
        )
    }
}

impl ToSchema for Permissionship {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Permissionship")
    }
}

impl PartialSchema for ExpandDepth {
    fn schema() -> RefOr<Schema> {
        string_enum(
            &expand_depths(),
            "How far an expansion follows usersets: `one_level` (only the requested \
             object's expression; other usersets are references) or `recursive` (to the \
             leaves).",
        )
    }
}

impl ToSchema for ExpandDepth {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ExpandDepth")
    }
}

impl PartialSchema for ConditionalId {
    fn schema() -> RefOr<Schema> {
        let strings = ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "A lookup result that depends on caveat parameters the request's context lacks.",
            ))
            .property("id", ObjectBuilder::new().schema_type(Type::String))
            .required("id")
            .property(
                "missing_context",
                strings.description(Some("The caveat parameters missing, sorted.")),
            )
            .required("missing_context")
            .into()
    }
}

impl ToSchema for ConditionalId {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ConditionalId")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema's enum values, as strings.
    fn values(schema: RefOr<Schema>) -> Vec<String> {
        let json = serde_json::to_value(schema).unwrap();
        json["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|it| it.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn enum_schemas_list_the_serde_spelling_of_every_variant() {
        let cases = [
            (
                values(Permissionship::schema()),
                vec!["has_permission", "no_permission", "conditional_permission"],
            ),
            (
                values(ExpandDepth::schema()),
                vec!["one_level", "recursive"],
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn conditional_id_schema_names_the_serialized_fields() {
        let sample = serde_json::to_value(ConditionalId {
            id: "d1".into(),
            missing_context: vec!["ip".into()],
        })
        .unwrap();
        let schema = serde_json::to_value(ConditionalId::schema()).unwrap();
        let mut serialized: Vec<&String> = sample.as_object().unwrap().keys().collect();
        let mut declared: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        serialized.sort();
        declared.sort();
        assert_eq!(serialized, declared);
        assert_eq!(
            schema["required"],
            serde_json::json!(["id", "missing_context"])
        );
    }
}
