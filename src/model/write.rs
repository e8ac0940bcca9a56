//! The write vocabulary every backend and the engine share: what a write asks for
//! ([`Update`], [`Precondition`]), what a committed revision changed ([`ChangeSet`], the
//! unit of the change log that every server's index follows), and why a well-formed write
//! was not applied ([`WriteRejection`]). Plain data; `store` re-exports it.

use super::{Relationship, RelationshipFilter, Revision};

/// What a write does to one relationship.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateOp {
    /// Insert; the whole write is rejected if the tuple is already live.
    Create,
    /// Insert or keep (upsert).
    Touch,
    /// Remove if live; removing an absent tuple is not an error.
    Delete,
}

/// One update of a write batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    pub op: UpdateOp,
    pub relationship: Relationship,
}

/// A condition that must hold at the write's revision for the write to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreconditionOp {
    /// At least one live relationship matches the filter.
    MustExist,
    /// No live relationship matches the filter.
    MustNotExist,
}

/// One precondition of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Precondition {
    pub op: PreconditionOp,
    pub filter: RelationshipFilter,
}

/// What a committed write did to one relationship (the unit of the change log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    /// The relationship became live (create, or touch of an absent tuple).
    Touch,
    /// The relationship stopped being live.
    Delete,
}

/// One effective change of a committed revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub op: ChangeOp,
    pub relationship: Relationship,
}

/// Every effective change of one committed revision, in the order they were applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeSet {
    pub revision: Revision,
    pub changes: Vec<Change>,
}

/// Why a well-formed write was not applied: an expected outcome, not a store failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteRejection {
    #[error("precondition {index} failed: {reason}")]
    PreconditionFailed { index: usize, reason: String },
    #[error("relationship `{0}` already exists")]
    AlreadyExists(Relationship),
    /// The same relationship appears twice in one batch.
    #[error("relationship `{0}` appears more than once in the batch")]
    Duplicate(Relationship),
}
