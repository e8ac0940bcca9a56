//! The request and answer types of the engine's public API.
//!
//! These are plain data, serde-ready where the HTTP layer needs them (consistency, the
//! expand tree), so that the server can stay a thin translation layer over [`super::Arbiter`].

use serde::{Deserialize, Serialize};

use crate::model::{ObjectRef, Relationship, Revision, SubjectRef};

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
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CheckRequest {
    pub resource: ObjectRef,
    pub permission: String,
    pub subject: SubjectRef,
}

/// The answer to one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// The revision the answer was computed at.
    pub revision: Revision,
}

/// The answers to a bulk check, all computed at one revision.
#[derive(Debug)]
pub struct BulkDecision {
    /// One entry per request item, in order: allowed or not, or why the item failed.
    pub results: Vec<Result<bool, EngineError>>,
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
    },
    /// `nil`: no subjects.
    Nil,
    /// A userset on another object that this expansion did not follow.
    Userset,
}

/// The expansion of one userset at one revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Expansion {
    pub tree: ExpandTree,
    pub revision: Revision,
}

/// One page of lookup resources: resource ids sorted by byte order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResourcePage {
    pub resources: Vec<String>,
    /// Pass back to get the next page; `None` when this is the last page.
    pub cursor: Option<String>,
    pub revision: Revision,
}

/// The subjects of one type that hold a permission on a resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubjectsAnswer {
    /// Subject ids, sorted; `*` when a wildcard grants the permission to every subject of
    /// the type (then the ids in `excluded` are the exceptions).
    pub subjects: Vec<String>,
    /// With `*`: known ids the wildcard grant does not reach (for example `user:* - banned`);
    /// empty without `*`.
    pub excluded: Vec<String>,
    pub revision: Revision,
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
}

/// Check-cache counters since the engine opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Entries held now.
    pub entries: usize,
}
