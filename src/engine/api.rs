//! The request and answer types of the engine's public API.
//!
//! These are plain data, serde-ready where the HTTP layer needs them (consistency, the
//! expand tree), so that the server can stay a thin translation layer over [`super::Arbiter`].

use serde::{Deserialize, Serialize};

use crate::model::{ObjectRef, Relationship, Revision, SubjectRef};
use crate::store::RelationshipFilter;

use super::EngineError;

/// Which snapshot a read may use (DESIGN §5).
///
/// Serialized as `{"mode": "full"}`, `{"mode": "at_least_as_fresh", "revision": R}`,
/// `{"mode": "at_exact_snapshot", "revision": R}` or `{"mode": "minimize_latency"}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Consistency {
    /// The newest committed revision.
    #[default]
    Full,
    /// Any revision at least as new as `revision`; the engine answers at the head.
    AtLeastAsFresh { revision: Revision },
    /// Exactly `revision`; an error if it was garbage-collected or is in the future.
    AtExactSnapshot { revision: Revision },
    /// A recent revision, quantized to [`super::Config::quantization_window`] so that
    /// cached answers can be reused; may be slightly stale.
    MinimizeLatency,
}

/// One check question: may `subject` do `permission` to `resource`?
///
/// `permission` may name a relation as well as a permission. The subject may be an
/// object, a subject set (`group:eng#member`) or a wildcard (`user:*`: "is it public?").
/// Also one item of a bulk check ([`super::Arbiter::check_bulk`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CheckRequest {
    pub resource: ObjectRef,
    pub permission: String,
    pub subject: SubjectRef,
    /// Caveat parameter values; without them a caveated path answers conditional,
    /// naming what it lacks.
    pub context: Option<Context>,
}

impl CheckRequest {
    /// The question without a context.
    pub fn new(resource: ObjectRef, permission: impl Into<String>, subject: SubjectRef) -> Self {
        Self {
            resource,
            permission: permission.into(),
            subject,
            context: None,
        }
    }
}

/// A check question's names as the client sent them, borrowed and not validated: what
/// [`super::Arbiter::cached_check`] looks up before anything is parsed or allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckParts<'a> {
    pub resource_type: &'a str,
    pub resource_id: &'a str,
    pub permission: &'a str,
    pub subject_type: &'a str,
    pub subject_id: &'a str,
    pub subject_relation: Option<&'a str>,
}

impl<'a> CheckParts<'a> {
    /// The parts of `type:id`, a permission and `type:id[#relation]`, split as the model's
    /// parsers split them; `None` when a reference has no `:`.
    pub fn from_text(resource: &'a str, permission: &'a str, subject: &'a str) -> Option<Self> {
        let (resource_type, resource_id) = crate::model::split_object(resource)?;
        let (subject_type, subject_id, subject_relation) = crate::model::split_subject(subject)?;
        Some(Self {
            resource_type,
            resource_id,
            permission,
            subject_type,
            subject_id,
            subject_relation,
        })
    }

    /// The parts of a parsed request.
    pub fn of(request: &'a CheckRequest) -> Self {
        Self {
            resource_type: &request.resource.object_type,
            resource_id: &request.resource.object_id,
            permission: &request.permission,
            subject_type: &request.subject.object.object_type,
            subject_id: &request.subject.object.object_id,
            subject_relation: request.subject.relation.as_deref(),
        }
    }
}

/// The request context of a check: caveat parameter values by name (DESIGN §3).
pub type Context = serde_json::Map<String, serde_json::Value>;

/// The userset tree of `resource#permission`, one level or to the leaves
/// ([`super::Arbiter::expand`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpandRequest {
    pub resource: ObjectRef,
    /// A permission or relation of the resource's type.
    pub permission: String,
    pub depth: ExpandDepth,
}

impl ExpandRequest {
    pub fn new(resource: ObjectRef, permission: impl Into<String>, depth: ExpandDepth) -> Self {
        Self {
            resource,
            permission: permission.into(),
            depth,
        }
    }
}

/// The `resource_type` objects on which `subject` holds `permission`, one page of them
/// ([`super::Arbiter::lookup_resources`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupResourcesRequest {
    pub resource_type: String,
    pub permission: String,
    pub subject: SubjectRef,
    /// Caveat parameter values; ids that hold only under a caveat missing some are listed
    /// apart ([`ResourcePage::conditional`]).
    pub context: Option<Context>,
    /// The most ids of the page (0 = no limit).
    pub limit: usize,
    /// The `cursor` of the previous page (opaque; it pins that page's revision); `None`
    /// for the first page.
    pub cursor: Option<String>,
}

impl LookupResourcesRequest {
    /// Every id in one page, without a context.
    pub fn new(
        resource_type: impl Into<String>,
        permission: impl Into<String>,
        subject: SubjectRef,
    ) -> Self {
        Self {
            resource_type: resource_type.into(),
            permission: permission.into(),
            subject,
            context: None,
            limit: 0,
            cursor: None,
        }
    }
}

/// The `subject_type` objects that hold `permission` on `resource`, one page of them
/// ([`super::Arbiter::lookup_subjects`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupSubjectsRequest {
    pub resource: ObjectRef,
    pub permission: String,
    pub subject_type: String,
    /// Caveat parameter values; subjects that hold only under a caveat missing some are
    /// listed apart ([`SubjectsAnswer::conditional`]).
    pub context: Option<Context>,
    /// The most ids of the page (0 = no limit: every subject in one answer).
    pub limit: usize,
    /// The `cursor` of the previous page; `None` for the first page.
    pub cursor: Option<String>,
}

impl LookupSubjectsRequest {
    /// Every subject in one answer, without a context.
    pub fn new(
        resource: ObjectRef,
        permission: impl Into<String>,
        subject_type: impl Into<String>,
    ) -> Self {
        Self {
            resource,
            permission: permission.into(),
            subject_type: subject_type.into(),
            context: None,
            limit: 0,
            cursor: None,
        }
    }
}

/// The stored relationships matching `filter`, one page of them
/// ([`super::Arbiter::read`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRequest {
    pub filter: RelationshipFilter,
    /// The most relationships of the page (0 = no limit).
    pub limit: usize,
    /// The `cursor` of the previous page; `None` for the first page.
    pub cursor: Option<String>,
}

impl ReadRequest {
    /// Every matching relationship in one page.
    pub fn new(filter: RelationshipFilter) -> Self {
        Self {
            filter,
            limit: 0,
            cursor: None,
        }
    }
}

/// Delete the live relationships matching `filter`, within `options`
/// ([`super::Arbiter::delete`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteRequest {
    pub filter: RelationshipFilter,
    pub options: DeleteOptions,
}

impl DeleteRequest {
    /// With the default [`DeleteOptions`]: more than [`DEFAULT_DELETE_LIMIT`] matches is an
    /// error and nothing is deleted.
    pub fn new(filter: RelationshipFilter) -> Self {
        Self {
            filter,
            options: DeleteOptions::default(),
        }
    }
}

/// Whether a subject has a permission, three-valued (DESIGN §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permissionship {
    HasPermission,
    NoPermission,
    /// It depends on caveat parameters the request's context lacks.
    ConditionalPermission,
}

/// The three-valued answer to one check: `allowed` only for `HasPermission`; for
/// `ConditionalPermission`, the missing caveat parameters (sorted, each once).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct CheckAnswer {
    pub permissionship: Permissionship,
    pub missing_context: Vec<String>,
}

impl CheckAnswer {
    pub const HAS: Self = Self {
        permissionship: Permissionship::HasPermission,
        missing_context: Vec::new(),
    };
    pub const NO: Self = Self {
        permissionship: Permissionship::NoPermission,
        missing_context: Vec::new(),
    };

    /// The answer of a two-valued walk.
    pub fn from_bool(allowed: bool) -> Self {
        if allowed { Self::HAS } else { Self::NO }
    }

    /// Whether the permission is granted (a conditional answer is never allowed).
    pub fn allowed(&self) -> bool {
        self.permissionship == Permissionship::HasPermission
    }
}

/// The answer to one check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// `permissionship == HasPermission`.
    pub allowed: bool,
    pub permissionship: Permissionship,
    /// For a conditional answer: the caveat parameters the context lacks.
    pub missing_context: Vec<String>,
    /// The revision the answer was computed at.
    pub revision: Revision,
}

impl Decision {
    pub(crate) fn new(answer: CheckAnswer, revision: Revision) -> Self {
        Self {
            allowed: answer.allowed(),
            permissionship: answer.permissionship,
            missing_context: answer.missing_context,
            revision,
        }
    }
}

/// The answers to a bulk check, all computed at one revision.
#[derive(Debug)]
pub struct BulkDecision {
    /// One entry per request item, in order: the answer, or why the item failed.
    pub results: Vec<Result<CheckAnswer, EngineError>>,
    pub revision: Revision,
}

/// How far [`super::Arbiter::expand`] follows usersets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpandDepth {
    /// Expand the expression of the requested object only; subject sets and arrow targets
    /// on other objects appear as [`ExpandNode::Userset`] references.
    #[default]
    OneLevel,
    /// Follow every subject set and arrow to the leaves (bounded by the depth limit;
    /// a userset already being expanded higher up is left as a reference).
    Recursive,
}

/// The userset tree of `resource#relation`: why subjects have it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExpandTree {
    /// The object this node describes, in text form (`document:1`).
    pub resource: String,
    /// The relation or permission of that object this node describes.
    pub relation: String,
    #[serde(flatten)]
    pub node: ExpandNode,
}

/// One node of an [`ExpandTree`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExpandNode {
    /// The stored subjects of a relation, in text form: objects (`user:alice`), subject
    /// sets (`group:eng#member`) and wildcards (`user:*`).
    Leaf { subjects: Vec<String> },
    /// Every child's subjects.
    Union { children: Vec<ExpandTree> },
    /// The subjects every child has.
    Intersection { children: Vec<ExpandTree> },
    /// The first child's subjects minus the second's.
    Exclusion {
        base: Box<ExpandTree>,
        subtracted: Box<ExpandTree>,
    },
    /// An arrow `tupleset.computed`: the union of `computed` on every object related by
    /// `tupleset` (the children).
    Arrow {
        tupleset: String,
        computed: String,
        children: Vec<ExpandTree>,
        /// The tupleset relationships walked that carry a caveat or an expiration, in
        /// text form with their suffixes (`document:1#parent@folder:f[has_tier]`): the
        /// children they lead to hold only under that condition. Usually empty.
        conditions: Vec<String>,
    },
    /// `nil`: no subjects.
    Nil,
    /// A userset on another object that this expansion did not follow.
    Userset,
    /// A userset this answer already expanded: its subjects are those of the first node
    /// with the same `resource` and `relation`, which comes earlier in document order
    /// (depth first, children in order). A recursive expand expands each userset once, so
    /// shared subgroups (a diamond) cost one subtree, not one per path.
    Repeated,
}

/// The expansion of one userset at one revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Expansion {
    pub tree: ExpandTree,
    pub revision: Revision,
}

/// A lookup result that holds only under a caveat whose parameters the request's
/// context lacks (DESIGN §3): the id and the missing parameters (sorted, each once).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConditionalId {
    pub id: String,
    pub missing_context: Vec<String>,
}

/// One page of lookup resources: resource ids in walk order (not sorted).
///
/// Definite and conditional ids share one order and one cursor: a page holds the next
/// `limit` ids of either kind, split into `resources` and `conditional`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResourcePage {
    /// The ids on which the subject has the permission.
    pub resources: Vec<String>,
    /// The ids on which it holds only under caveats needing more context.
    pub conditional: Vec<ConditionalId>,
    /// Pass back to get the next page (opaque; it pins `revision`); `None` when this is the
    /// last page.
    pub cursor: Option<String>,
    pub revision: Revision,
}

/// The subjects of one type that hold a permission on a resource (one page of them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubjectsAnswer {
    /// Subject ids in walk order (not sorted); `*` when a wildcard grants the permission to
    /// every subject of the type (then the ids in `excluded` are the exceptions, and the
    /// ids are sorted by byte order, `*` first, as they are while caveated or expiring
    /// relationships exist).
    pub subjects: Vec<String>,
    /// The ids (and `*`) that hold the permission only under caveats needing more
    /// context; paged in one order with `subjects`.
    pub conditional: Vec<ConditionalId>,
    /// With `*`: known ids the wildcard grant does not reach (for example `user:* - banned`);
    /// empty without `*`. Sent in full with the first page only.
    pub excluded: Vec<String>,
    /// Pass back to get the next page (opaque; it pins `revision`); `None` when this is the
    /// last page.
    pub cursor: Option<String>,
    pub revision: Revision,
}

/// How much a delete by filter may remove (SpiceDB's `optional_limit` and
/// `optional_allow_partial_deletions`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteOptions {
    /// The most relationships one request deletes: [`DEFAULT_DELETE_LIMIT`] when `None`,
    /// at most [`MAX_DELETE_LIMIT`].
    pub limit: Option<usize>,
    /// When more relationships match than `limit`: delete `limit` of them (in key order)
    /// and report [`Deleted::partial`], instead of refusing the whole delete.
    pub allow_partial_deletions: bool,
}

/// The deletion limit when a request sets none.
pub const DEFAULT_DELETE_LIMIT: usize = 1_000;

/// The largest deletion limit a request may ask for: it bounds one revision's change set,
/// hence one watch event.
pub const MAX_DELETE_LIMIT: usize = 10_000;

/// Whether the store accepts writes, for `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StoreHealth {
    /// The last write (or recovery probe) succeeded.
    Ok,
    /// A write failed on I/O (a full disk, say) and recovery has not succeeded yet; every
    /// write first tries to recover, and succeeds once the cause is gone.
    Failing { reason: String },
}

/// Counters of the lookup walks since the engine opened (work, not time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LookupStats {
    /// Lookups begun from the start: a first page, or a page whose kept walk or result
    /// was gone (evicted) so that it walked again.
    pub walks: u64,
    /// Steps all lookups took (facts derived, candidates checked).
    pub steps: u64,
    /// Pages served by resuming a kept walk, or a slice of a kept result, at the cursor.
    pub resumed_pages: u64,
}

/// One page of a filtered relationship read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadPage {
    pub relationships: Vec<Relationship>,
    /// Pass back to resume after this page; `None` when there are no more.
    pub cursor: Option<String>,
    pub revision: Revision,
}

/// What a delete by filter did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Deleted {
    pub revision: Revision,
    /// How many live relationships it removed.
    pub deleted: usize,
    /// Whether more relationships matched than were deleted (only with
    /// [`DeleteOptions::allow_partial_deletions`]); repeat the request to delete more.
    pub partial: bool,
}

/// Check-cache counters since the engine opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Entries held now.
    pub entries: usize,
}
