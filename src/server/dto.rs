//! The JSON request and answer bodies of DESIGN §5, with their OpenAPI schemas, and the
//! conversions between them and the engine's types.
//!
//! References travel in the Zanzibar text form (`document:1`, `group:eng#member`,
//! `document:1#viewer@user:alice`); parsing them here names the offending field.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::engine::{
    ConditionalId, Consistency, ExpandDepth, ExpandNode, ExpandTree, Explanation, Permissionship,
};
use crate::model::{self, ObjectRef, Relationship, SubjectRef};
use crate::store::{
    ChangeOp, ChangeSet, Precondition, PreconditionOp, RelationshipFilter, Update, UpdateOp,
};

use super::error::{ApiError, ErrorDetail};

/// `POST /v1/schema`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaWriteBody {
    /// The schema text (DESIGN §2).
    pub schema: String,
}

/// An answer that only carries the revision it committed at.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RevisionAnswer {
    pub revision: u64,
}

/// `GET /v1/schema`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SchemaAnswer {
    pub schema: String,
    /// The revision that wrote this schema.
    pub revision: u64,
}

/// What an update does: `create` fails if the tuple exists, `touch` upserts, `delete`
/// removes it if present.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpdateOpBody {
    Create,
    Touch,
    Delete,
}

/// One update of a write.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    pub op: UpdateOpBody,
    /// `resource#relation@subject`, such as `document:1#viewer@user:alice`.
    #[schema(
        pattern = r"^(([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]):([a-zA-Z0-9/_|=+\-]{1,1024})#([a-z][a-z0-9_]{1,62}[a-z0-9])@(([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]):(([a-zA-Z0-9/_|=+\-]{1,1024})(#([a-z][a-z0-9_]{1,62}[a-z0-9]|\.\.\.))?|\*)$"
    )]
    pub relationship: String,
}

/// Which relationships a precondition looks for.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PreconditionOpBody {
    MustExist,
    MustNotExist,
}

/// A condition checked at the write's revision; if it fails nothing is written (409).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreconditionBody {
    pub op: PreconditionOpBody,
    pub filter: FilterBody,
}

/// Selects relationships; every field but `resource_type` is optional. A
/// `subject_relation` of `...` matches only subjects without a relation.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    #[schema(pattern = r"^([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]$")]
    pub resource_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[a-zA-Z0-9/_|=+\-]{1,1024}$", max_length = 1024)]
    pub resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[a-z][a-z0-9_]{1,62}[a-z0-9]$", max_length = 64)]
    pub relation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]$")]
    pub subject_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^([a-zA-Z0-9/_|=+\-]{1,1024}|\*)$", max_length = 1024)]
    pub subject_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^([a-z][a-z0-9_]{1,62}[a-z0-9]|\.\.\.)$", max_length = 64)]
    pub subject_relation: Option<String>,
}

/// `POST /v1/relationships/write`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteBody {
    pub updates: Vec<UpdateBody>,
    #[serde(default)]
    pub preconditions: Vec<PreconditionBody>,
}

/// Which snapshot a read uses. Default `full` (the newest revision).
///
/// Every mode is a struct variant, even those without fields: serde ignores unknown
/// fields next to the tag of a unit variant, `deny_unknown_fields` or not. That is why
/// this body type mirrors [`Consistency`] (whose unit variants are the engine's API)
/// instead of deserializing it directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConsistencyBody {
    Full {},
    AtLeastAsFresh { revision: u64 },
    AtExactSnapshot { revision: u64 },
    MinimizeLatency {},
}

impl Default for ConsistencyBody {
    fn default() -> Self {
        Self::Full {}
    }
}

/// `POST /v1/relationships/read`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadBody {
    pub filter: FilterBody,
    /// At most this many relationships (default and maximum: the server's page limit).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub limit: Option<usize>,
    /// The `cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub consistency: Option<ConsistencyBody>,
}

/// A page of relationships.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadAnswer {
    pub relationships: Vec<String>,
    /// Pass back for the next page; absent on the last page.
    pub cursor: Option<String>,
    pub revision: u64,
}

/// `POST /v1/relationships/delete`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    pub filter: FilterBody,
    /// The most relationships to delete (default 1000, at most 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// When more match than `limit`: delete `limit` of them instead of refusing.
    #[serde(default)]
    pub allow_partial_deletions: bool,
}

/// What a delete did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeleteAnswer {
    pub revision: u64,
    pub deleted: usize,
    /// More relationships matched than were deleted (only with `allow_partial_deletions`).
    #[serde(default)]
    pub deletions_are_partial: bool,
}

/// `POST /v1/check`, and one item of a bulk check.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    /// `type:id`, such as `document:1`.
    #[schema(
        pattern = r"^(([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]):([a-zA-Z0-9/_|=+\-]{1,1024})$"
    )]
    pub resource: String,
    /// A permission or relation of the resource's type.
    #[schema(pattern = r"^[a-z][a-z0-9_]{1,62}[a-z0-9]$", max_length = 64)]
    pub permission: String,
    /// `type:id`, `type:id#relation` or `type:*`.
    #[schema(
        pattern = r"^(([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]):(([a-zA-Z0-9/_|=+\-]{1,1024})(#([a-z][a-z0-9_]{1,62}[a-z0-9]|\.\.\.))?|\*)$"
    )]
    pub subject: String,
    /// Caveat parameter values for this check (DESIGN §3): a JSON object.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub consistency: Option<ConsistencyBody>,
    /// Add an `explanation` to the answer (docs/PLAYGROUND.md describes its shape).
    #[serde(default)]
    pub explain: bool,
}

/// The answer of one check.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckAnswer {
    /// True only for `has_permission`.
    pub allowed: bool,
    pub permissionship: Permissionship,
    /// For `conditional_permission`: the caveat parameters the context lacks.
    #[serde(default)]
    pub missing_context: Vec<String>,
    /// The revision the answer was computed at.
    pub revision: u64,
    /// With `"explain": true`: why (docs/PLAYGROUND.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub explanation: Option<Explanation>,
}

/// `POST /v1/check/bulk`: every item is answered at one revision.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkCheckBody {
    pub items: Vec<CheckItem>,
    #[serde(default)]
    pub consistency: Option<ConsistencyBody>,
}

/// One item of a bulk check.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckItem {
    #[schema(
        pattern = r"^(([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]):([a-zA-Z0-9/_|=+\-]{1,1024})$"
    )]
    pub resource: String,
    #[schema(pattern = r"^[a-z][a-z0-9_]{1,62}[a-z0-9]$", max_length = 64)]
    pub permission: String,
    #[schema(
        pattern = r"^(([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]):(([a-zA-Z0-9/_|=+\-]{1,1024})(#([a-z][a-z0-9_]{1,62}[a-z0-9]|\.\.\.))?|\*)$"
    )]
    pub subject: String,
    /// Caveat parameter values for this check (DESIGN §3): a JSON object.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    /// Add an `explanation` to this item's answer.
    #[serde(default)]
    pub explain: bool,
}

/// The answers of a bulk check, in item order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkCheckAnswer {
    pub results: Vec<BulkResult>,
    pub revision: u64,
}

/// One item's answer: `{"allowed": bool}` or `{"error": {...}}` when that item failed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum BulkResult {
    Decided {
        allowed: bool,
        permissionship: Permissionship,
        #[serde(default)]
        missing_context: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Object>)]
        explanation: Option<Box<Explanation>>,
    },
    Failed {
        error: ErrorDetail,
    },
}

/// `POST /v1/expand`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpandBody {
    #[schema(
        pattern = r"^(([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]):([a-zA-Z0-9/_|=+\-]{1,1024})$"
    )]
    pub resource: String,
    #[schema(pattern = r"^[a-z][a-z0-9_]{1,62}[a-z0-9]$", max_length = 64)]
    pub permission: String,
    #[serde(default)]
    pub depth: ExpandDepth,
    #[serde(default)]
    pub consistency: Option<ConsistencyBody>,
}

/// The kind of an expansion node.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// Stored subjects (`subjects`).
    Leaf,
    /// Every child's subjects.
    Union,
    /// The subjects every child has.
    Intersection,
    /// The first child's subjects minus the second's.
    Exclusion,
    /// `tupleset.computed` over the related objects (the children).
    Arrow,
    /// No subjects.
    Nil,
    /// A userset on another object that was not followed.
    Userset,
    /// A userset expanded earlier in this answer: its subjects are those of the first node
    /// with the same `resource` and `relation` (each userset is expanded once).
    Repeated,
}

/// One node of the userset tree of `resource#relation`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TreeBody {
    pub resource: String,
    pub relation: String,
    pub kind: NodeKind,
    /// For `leaf`: the stored subjects in text form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// For `union`, `intersection`, `arrow`; for `exclusion`, exactly the base and the
    /// subtracted set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    pub children: Vec<TreeBody>,
    /// For `arrow`: the relation followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tupleset: Option<String>,
    /// For `arrow`: what is evaluated on each related object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed: Option<String>,
    /// For `arrow`: the tupleset relationships walked that carry a caveat or an
    /// expiration, in text form with their suffixes; the children they lead to hold only
    /// under that condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
}

/// The userset tree and the revision it was computed at.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExpandAnswer {
    pub tree: TreeBody,
    pub revision: u64,
}

/// `POST /v1/lookup/resources`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupResourcesBody {
    #[schema(pattern = r"^([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]$")]
    pub resource_type: String,
    #[schema(pattern = r"^[a-z][a-z0-9_]{1,62}[a-z0-9]$", max_length = 64)]
    pub permission: String,
    #[schema(
        pattern = r"^(([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]):(([a-zA-Z0-9/_|=+\-]{1,1024})(#([a-z][a-z0-9_]{1,62}[a-z0-9]|\.\.\.))?|\*)$"
    )]
    pub subject: String,
    /// Caveat parameter values for this lookup (DESIGN §3): a JSON object.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    /// At most this many ids (default and maximum: the server's page limit).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub limit: Option<usize>,
    /// The `cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub consistency: Option<ConsistencyBody>,
}

/// A page of resource ids in walk order (not sorted; sorted while caveated or expiring
/// relationships exist); definite and conditional ids share one order and one cursor.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LookupResourcesAnswer {
    /// The ids the subject has the permission on.
    pub resources: Vec<String>,
    /// The ids on which it depends on caveat parameters the context lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditional: Vec<ConditionalId>,
    pub cursor: Option<String>,
    pub revision: u64,
}

/// `POST /v1/lookup/subjects`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupSubjectsBody {
    #[schema(
        pattern = r"^(([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]):([a-zA-Z0-9/_|=+\-]{1,1024})$"
    )]
    pub resource: String,
    #[schema(pattern = r"^[a-z][a-z0-9_]{1,62}[a-z0-9]$", max_length = 64)]
    pub permission: String,
    #[schema(pattern = r"^([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]$")]
    pub subject_type: String,
    /// Caveat parameter values for this lookup (DESIGN §3): a JSON object.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    /// At most this many ids (default and maximum: the server's page limit).
    #[serde(default)]
    pub limit: Option<usize>,
    /// The `cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub consistency: Option<ConsistencyBody>,
}

/// Subject ids (`*` for a wildcard grant, with its exceptions in `excluded`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LookupSubjectsAnswer {
    /// The ids (and `*`) that have the permission.
    pub subjects: Vec<String>,
    /// The ids (and `*`) that have it only under caveats needing parameters the context
    /// lacks; one sorted order and one cursor with `subjects`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditional: Vec<ConditionalId>,
    /// Sent with the first page only.
    pub excluded: Vec<String>,
    /// Pass back to get the next page; absent on the last page.
    #[serde(default)]
    pub cursor: Option<String>,
    pub revision: u64,
}

/// `GET /v1/watch` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WatchQuery {
    /// Stream the revisions after this one (default: the head, so only new changes).
    pub since: Option<u64>,
}

/// One line of the watch stream: every change of one revision.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WatchEvent {
    pub revision: u64,
    pub changes: Vec<ChangeBody>,
}

/// One change: a relationship became live (`touch`) or stopped being live (`delete`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChangeBody {
    pub op: ChangeOpBody,
    pub relationship: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOpBody {
    Touch,
    Delete,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthAnswer {
    /// `ok` or `ready`.
    pub status: String,
    /// The newest committed revision.
    pub revision: u64,
}

impl From<ConsistencyBody> for Consistency {
    fn from(body: ConsistencyBody) -> Self {
        match body {
            ConsistencyBody::Full {} => Self::Full,
            ConsistencyBody::AtLeastAsFresh { revision } => Self::AtLeastAsFresh {
                revision: crate::model::Revision(revision),
            },
            ConsistencyBody::AtExactSnapshot { revision } => Self::AtExactSnapshot {
                revision: crate::model::Revision(revision),
            },
            ConsistencyBody::MinimizeLatency {} => Self::MinimizeLatency,
        }
    }
}

/// The engine consistency of an optional body field.
pub fn consistency(body: Option<ConsistencyBody>) -> Consistency {
    body.unwrap_or_default().into()
}

/// Parses a text-form value of `field`, naming the field in the error.
pub fn parse<T>(field: &'static str, text: &str) -> Result<T, ApiError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    T::from_str(text).map_err(|err| ApiError::bad_request(field, err.to_string()))
}

/// A permission or relation name of `field`, checked for syntax only (whether the schema
/// defines it is the engine's to say).
pub fn permission_name(field: &'static str, text: &str) -> Result<(), ApiError> {
    if model::is_valid_relation_name(text) {
        return Ok(());
    }
    Err(ApiError::bad_request(
        field,
        format!("invalid permission name `{text}`: expected `[a-z][a-z0-9_]{{1,62}}[a-z0-9]`"),
    ))
}

/// A type name of `field`, checked for syntax only.
pub fn type_name(field: &'static str, text: &str) -> Result<(), ApiError> {
    if model::is_valid_type_name(text) {
        return Ok(());
    }
    Err(ApiError::bad_request(
        field,
        format!("invalid type name `{text}`: expected a name such as `document` or `ns/document`"),
    ))
}

pub fn object(field: &'static str, text: &str) -> Result<ObjectRef, ApiError> {
    parse(field, text)
}

pub fn subject(field: &'static str, text: &str) -> Result<SubjectRef, ApiError> {
    parse(field, text)
}

pub fn relationship(field: &'static str, text: &str) -> Result<Relationship, ApiError> {
    parse(field, text)
}

impl UpdateBody {
    pub fn to_update(&self) -> Result<Update, ApiError> {
        let op = match self.op {
            UpdateOpBody::Create => UpdateOp::Create,
            UpdateOpBody::Touch => UpdateOp::Touch,
            UpdateOpBody::Delete => UpdateOp::Delete,
        };
        Ok(Update {
            op,
            relationship: relationship("updates", &self.relationship)?,
        })
    }
}

impl PreconditionBody {
    pub fn to_precondition(&self) -> Result<Precondition, ApiError> {
        let op = match self.op {
            PreconditionOpBody::MustExist => PreconditionOp::MustExist,
            PreconditionOpBody::MustNotExist => PreconditionOp::MustNotExist,
        };
        Ok(Precondition {
            op,
            filter: self.filter.to_filter("preconditions")?,
        })
    }
}

impl FilterBody {
    /// The store filter; `field` names where this filter sits in the request. Every part
    /// must be well-formed (the patterns the OpenAPI document declares); whether the names
    /// exist in the schema is the engine's to check.
    pub fn to_filter(&self, field: &'static str) -> Result<RelationshipFilter, ApiError> {
        if self.resource_type.is_empty() {
            return Err(ApiError::bad_request(field, "`resource_type` is required"));
        }
        let bad = |part: &str, value: &str, expected: &str| {
            ApiError::bad_request(
                field,
                format!("invalid `{part}` `{value}`: expected {expected}"),
            )
        };
        let type_name = "a type name such as `document` or `ns/document`";
        let relation_name = "a relation name such as `viewer`";
        let object_id = "1 to 1024 characters of `a-z A-Z 0-9 / _ | - = +`";
        if !model::is_valid_type_name(&self.resource_type) {
            return Err(bad("resource_type", &self.resource_type, type_name));
        }
        if let Some(id) = self
            .resource_id
            .as_deref()
            .filter(|it| !model::is_valid_object_id(it))
        {
            return Err(bad("resource_id", id, object_id));
        }
        if let Some(name) = self
            .relation
            .as_deref()
            .filter(|it| !model::is_valid_relation_name(it))
        {
            return Err(bad("relation", name, relation_name));
        }
        if let Some(name) = self
            .subject_type
            .as_deref()
            .filter(|it| !model::is_valid_type_name(it))
        {
            return Err(bad("subject_type", name, type_name));
        }
        if let Some(id) = self
            .subject_id
            .as_deref()
            .filter(|it| *it != model::WILDCARD_ID && !model::is_valid_object_id(it))
        {
            return Err(bad("subject_id", id, "an object id or `*`"));
        }
        if let Some(name) = self
            .subject_relation
            .as_deref()
            .filter(|it| *it != model::ELLIPSIS && !model::is_valid_relation_name(it))
        {
            return Err(bad("subject_relation", name, "a relation name or `...`"));
        }
        let filter = RelationshipFilter {
            resource_type: Some(self.resource_type.clone()),
            resource_id: self.resource_id.clone(),
            relation: self.relation.clone(),
            subject_type: self.subject_type.clone(),
            subject_id: self.subject_id.clone(),
            subject_relation: self.subject_relation.clone(),
        };
        Ok(filter)
    }
}

impl From<&ExpandTree> for TreeBody {
    fn from(tree: &ExpandTree) -> Self {
        let mut res = TreeBody {
            resource: tree.resource.clone(),
            relation: tree.relation.clone(),
            kind: NodeKind::Nil,
            subjects: Vec::new(),
            children: Vec::new(),
            tupleset: None,
            computed: None,
            conditions: Vec::new(),
        };
        let children = |children: &[ExpandTree]| children.iter().map(TreeBody::from).collect();
        match &tree.node {
            ExpandNode::Leaf { subjects } => {
                res.kind = NodeKind::Leaf;
                res.subjects = subjects.clone();
            }
            ExpandNode::Union { children: it } => {
                res.kind = NodeKind::Union;
                res.children = children(it);
            }
            ExpandNode::Intersection { children: it } => {
                res.kind = NodeKind::Intersection;
                res.children = children(it);
            }
            ExpandNode::Exclusion { base, subtracted } => {
                res.kind = NodeKind::Exclusion;
                res.children = vec![TreeBody::from(&**base), TreeBody::from(&**subtracted)];
            }
            ExpandNode::Arrow {
                tupleset,
                computed,
                children: it,
                conditions,
            } => {
                res.kind = NodeKind::Arrow;
                res.tupleset = Some(tupleset.clone());
                res.computed = Some(computed.clone());
                res.children = children(it);
                res.conditions.clone_from(conditions);
            }
            ExpandNode::Nil => res.kind = NodeKind::Nil,
            ExpandNode::Userset => res.kind = NodeKind::Userset,
            ExpandNode::Repeated => res.kind = NodeKind::Repeated,
        }
        res
    }
}

impl From<&ChangeSet> for WatchEvent {
    fn from(change_set: &ChangeSet) -> Self {
        Self {
            revision: change_set.revision.0,
            changes: change_set
                .changes
                .iter()
                .map(|change| ChangeBody {
                    op: match change.op {
                        ChangeOp::Touch => ChangeOpBody::Touch,
                        ChangeOp::Delete => ChangeOpBody::Delete,
                    },
                    relationship: change.relationship.to_string(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistency_modes_parse_from_design_spelling() {
        let cases = [
            (r#"{"mode": "full"}"#, Consistency::Full),
            (
                r#"{"mode": "at_least_as_fresh", "revision": 7}"#,
                Consistency::AtLeastAsFresh {
                    revision: crate::model::Revision(7),
                },
            ),
            (
                r#"{"mode": "at_exact_snapshot", "revision": 3}"#,
                Consistency::AtExactSnapshot {
                    revision: crate::model::Revision(3),
                },
            ),
            (
                r#"{"mode": "minimize_latency"}"#,
                Consistency::MinimizeLatency,
            ),
        ];
        for (text, want) in cases {
            let body: ConsistencyBody = serde_json::from_str(text).unwrap();
            assert_eq!(Consistency::from(body), want, "{text}");
        }
    }

    #[test]
    fn issue10_unknown_fields_next_to_any_consistency_mode_are_refused() {
        for text in [
            r#"{"mode": "full", "revision": 3}"#,
            r#"{"mode": "minimize_latency", "x": 42}"#,
            r#"{"mode": "at_least_as_fresh", "revision": 1, "x": 1}"#,
            r#"{"mode": "at_exact_snapshot", "revison": 1}"#,
        ] {
            let err = serde_json::from_str::<ConsistencyBody>(text).unwrap_err();
            assert!(err.to_string().contains("unknown field"), "{text}: {err}");
        }
    }

    #[test]
    fn bad_reference_names_its_field() {
        let err = subject("subject", "user").unwrap_err();
        assert_eq!(err.body().error.field.as_deref(), Some("subject"));
        let err = FilterBody::default().to_filter("filter").unwrap_err();
        assert_eq!(err.status().as_u16(), 400);
    }

    #[test]
    fn bulk_results_serialize_untagged() {
        let decided = serde_json::to_string(&BulkResult::Decided {
            allowed: false,
            permissionship: Permissionship::ConditionalPermission,
            missing_context: vec!["ip".into()],
            explanation: None,
        })
        .unwrap();
        assert_eq!(
            decided,
            r#"{"allowed":false,"permissionship":"conditional_permission","missing_context":["ip"]}"#
        );
    }
}
