//! [`EngineError`]: every way an engine call can fail, with a stable machine code per kind
//! so the HTTP layer maps each to one status without parsing messages.
//!
//! Expected outcomes are not errors: a denied check is a [`super::Decision`] with
//! `allowed: false`, and a failed write precondition is `Ok(Err(WriteRejection))`.

use crate::model::Revision;
use crate::schema::admit::AdmitError;
use crate::store::StoreError;

/// One problem in a schema text, positioned for `FILE:LINE:COL: message` output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaProblem {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    pub message: String,
}

impl std::fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// A request context value that does not convert to a caveat parameter's declared type.
#[derive(Debug, thiserror::Error)]
#[error(
    "key `{key}` must be a `{expected}` (a parameter of caveat `{caveat}`), given `{given}`: {reason}"
)]
pub struct ContextValueError {
    pub key: String,
    pub caveat: String,
    /// The declared type, as the schema spells it.
    pub expected: String,
    /// The value as sent (compact JSON, cut when long).
    pub given: String,
    /// Why it does not convert.
    pub reason: String,
}

/// Why an engine call failed. No variant ever stands for "allowed".
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Nothing can be checked or written before a schema is loaded (HTTP 503).
    #[error("no schema is loaded")]
    NoSchema,
    /// The schema stored in the database no longer compiles (it was accepted by an older
    /// version): nothing can be checked until a corrected schema is written (HTTP 503).
    #[error(
        "no schema is loaded: the stored schema no longer compiles ({0}); write a corrected schema"
    )]
    StoredSchemaInvalid(String),
    /// A request field is malformed or names something the schema lacks (HTTP 400).
    #[error("invalid `{field}`: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
    /// A relationship of a write does not fit the schema; nothing was written (HTTP 400).
    #[error(transparent)]
    InvalidRelationship(#[from] AdmitError),
    /// The schema text does not compile (HTTP 400). Never empty.
    #[error("invalid schema: {}", join_problems(.0))]
    InvalidSchema(Vec<SchemaProblem>),
    /// A new schema would orphan stored relationships (HTTP 400).
    #[error(
        "schema change refused: {what}, and {count} stored relationship(s) depend on it, for example `{example}`"
    )]
    SchemaOrphans {
        what: String,
        count: usize,
        example: String,
    },
    /// The walk went deeper than the configured limit (HTTP 400, like SpiceDB).
    #[error(
        "depth limit of {0} exceeded: the relationship graph is too deep or the schema recurses"
    )]
    DepthExceeded(u32),
    /// A caveat could not be evaluated (a runtime error, a stored relationship whose
    /// caveat the schema lost): the check has no answer, never `allowed`.
    #[error("{0}")]
    Caveat(String),
    /// A request context value does not convert to the type a caveat of the schema
    /// declares for its key; refused before any walk (HTTP 400, gRPC INVALID_ARGUMENT as
    /// SpiceDB answers; docs/CAVEATS.md). Boxed: it is rare, and keeps every result small.
    #[error("invalid `context`: {0}")]
    InvalidContext(Box<ContextValueError>),
    /// The request's deadline passed or it was cancelled; the walk stopped (HTTP 503).
    #[error("the request was cancelled: its deadline passed before the answer was complete")]
    DeadlineExceeded,
    /// An expand answer would hold more nodes than the limit (HTTP 400); no partial tree
    /// is returned.
    #[error(
        "expand answer too large: more than {limit} nodes; expand one level, or a narrower relation"
    )]
    ExpandTooLarge { limit: usize },
    /// A recursive expand whose tree would nest deeper than `limit` levels (HTTP 400): the
    /// answer stays shallow enough to print, serialize and drop on any thread's stack.
    #[error(
        "expand answer too deep: the tree would nest more than {limit} levels; expand one level, or a narrower relation"
    )]
    ExpandTooDeep { limit: usize },
    /// A delete by filter matches more relationships than its limit and partial deletion
    /// was not allowed; nothing was deleted (HTTP 400).
    #[error(
        "delete matches more than {limit} relationships: raise `limit` (at most {max}) or set `allow_partial_deletions`"
    )]
    DeleteTooLarge { limit: usize, max: usize },
    /// The store failed an earlier write and has not recovered yet (HTTP 503).
    #[error("the store is unavailable: {0}")]
    StoreUnavailable(String),
    /// The requested snapshot was garbage-collected (HTTP 400).
    #[error(
        "revision {requested} is no longer available: the oldest readable revision is {oldest}"
    )]
    SnapshotExpired {
        requested: Revision,
        oldest: Revision,
    },
    /// The requested snapshot is newer than anything committed (HTTP 400).
    #[error("revision {requested} is in the future: the newest revision is {head}")]
    SnapshotAhead { requested: Revision, head: Revision },
    /// The store failed (HTTP 500 or 503).
    #[error(transparent)]
    Store(StoreError),
}

impl EngineError {
    /// A stable, machine-readable code for this kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoSchema | Self::StoredSchemaInvalid(_) => "no_schema",
            Self::InvalidInput { .. } | Self::InvalidContext(_) => "invalid_argument",
            Self::InvalidRelationship(_) => "invalid_relationship",
            Self::InvalidSchema(_) => "invalid_schema",
            Self::SchemaOrphans { .. } => "schema_orphans",
            Self::DepthExceeded(_) => "depth_exceeded",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Caveat(_) => "caveat_error",
            Self::ExpandTooLarge { .. } | Self::ExpandTooDeep { .. } => "expand_too_large",
            Self::DeleteTooLarge { .. } => "delete_too_large",
            Self::StoreUnavailable(_) => "store_unavailable",
            Self::SnapshotExpired { .. } => "snapshot_expired",
            Self::SnapshotAhead { .. } => "snapshot_ahead",
            Self::Store(StoreError::InvalidCursor(_)) => "invalid_argument",
            Self::Store(StoreError::Model(_)) => "invalid_argument",
            Self::Store(StoreError::BatchTooLarge { .. }) => "invalid_argument",
            Self::Store(_) => "store_failure",
        }
    }

    /// Whether the caller caused the failure (a 4xx), as opposed to the server (5xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self.code(),
            "no_schema" | "store_failure" | "store_unavailable" | "deadline_exceeded"
        )
    }

    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            message: message.into(),
        }
    }
}

#[cfg(test)]
impl EngineError {
    /// A wrong-typed context value, for the tests of the layers that map errors.
    pub(crate) fn invalid_context_example() -> Self {
        Self::InvalidContext(Box::new(ContextValueError {
            key: "n2".into(),
            caveat: "cv_a".into(),
            expected: "uint".into(),
            given: r#"{"wrong":true}"#.into(),
            reason: "expected an integer (`uint`), found an object".into(),
        }))
    }
}

impl From<StoreError> for EngineError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::RevisionExpired { requested, oldest } => {
                Self::SnapshotExpired { requested, oldest }
            }
            StoreError::RevisionAhead { requested, head } => {
                Self::SnapshotAhead { requested, head }
            }
            other => Self::Store(other),
        }
    }
}

fn join_problems(problems: &[SchemaProblem]) -> String {
    let parts: Vec<String> = problems.iter().map(ToString::to_string).collect();
    parts.join("; ")
}
