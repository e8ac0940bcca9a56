//! THE mapping from engine failures to gRPC statuses, with the codes SpiceDB uses for the
//! same mistakes (recorded in `docs/CLIENTS.md`, learned from a real SpiceDB).
//!
//! Malformed input (a bad id, a missing field) is refused as INVALID_ARGUMENT at the gRPC
//! edge before the engine sees it, so an [`EngineError::InvalidInput`] reaching this
//! mapping names something the schema lacks: SpiceDB answers FAILED_PRECONDITION for that.
//! A server-side failure is logged here and its details stay on the server.

use tonic::Status;

use crate::engine::EngineError;
use crate::schema::admit::AdmitError;
use crate::store::{StoreError, WriteRejection};

/// The status of an engine failure.
pub fn engine_status(err: EngineError) -> Status {
    match err {
        EngineError::InvalidInput { .. } | EngineError::NoSchema => {
            Status::failed_precondition(err.to_string())
        }
        EngineError::InvalidRelationship(ref admit) => match admit {
            AdmitError::Malformed { .. }
            | AdmitError::SubjectNotAllowed { .. }
            | AdmitError::UnknownCaveat { .. }
            | AdmitError::InvalidContext { .. }
            | AdmitError::CaveatNotAllowed { .. }
            | AdmitError::ExpirationNotAllowed { .. } => Status::invalid_argument(err.to_string()),
            AdmitError::UnknownType { .. }
            | AdmitError::UnknownRelation { .. }
            | AdmitError::Permission { .. } => Status::failed_precondition(err.to_string()),
        },
        EngineError::InvalidSchema(_) | EngineError::SchemaOrphans { .. } => {
            Status::invalid_argument(err.to_string())
        }
        EngineError::DepthExceeded(_) => Status::failed_precondition(err.to_string()),
        // SpiceDB answers a wrong-typed context value with INVALID_ARGUMENT (docs/CAVEATS.md).
        EngineError::Caveat(_) | EngineError::InvalidContext(_) => {
            Status::invalid_argument(err.to_string())
        }
        EngineError::DeadlineExceeded => Status::deadline_exceeded(err.to_string()),
        EngineError::ExpandTooLarge { .. } | EngineError::ExpandTooDeep { .. } => {
            Status::resource_exhausted(err.to_string())
        }
        EngineError::DeleteTooLarge { .. } => Status::invalid_argument(err.to_string()),
        EngineError::StoredSchemaInvalid(_) => Status::failed_precondition(err.to_string()),
        EngineError::StoreUnavailable(_) => {
            tracing::error!(error = %err, "grpc call failed: store unavailable");
            Status::unavailable("store unavailable; see the server log")
        }
        EngineError::SnapshotExpired { .. } => Status::failed_precondition(err.to_string()),
        EngineError::SnapshotAhead { .. } => Status::invalid_argument(err.to_string()),
        EngineError::Store(
            StoreError::InvalidCursor(_) | StoreError::Model(_) | StoreError::BatchTooLarge { .. },
        ) => Status::invalid_argument(err.to_string()),
        EngineError::Store(StoreError::Io(_)) => {
            tracing::error!(error = %err, "grpc call failed: store unavailable");
            Status::unavailable("store unavailable; see the server log")
        }
        other => internal(&other),
    }
}

/// The status of a write the store refused as a whole.
pub fn rejection_status(rejection: WriteRejection) -> Status {
    match rejection {
        WriteRejection::PreconditionFailed { .. } => {
            Status::failed_precondition(rejection.to_string())
        }
        WriteRejection::AlreadyExists(_) => Status::already_exists(rejection.to_string()),
        WriteRejection::Duplicate(_) => Status::invalid_argument(rejection.to_string()),
    }
}

/// A bug or a panicked task: logged, and answered without details.
pub fn internal(err: &dyn std::fmt::Display) -> Status {
    tracing::error!(error = %err, "grpc call failed");
    Status::internal("internal error; see the server log")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn engine_errors_map_to_spicedb_codes() {
        let cases: Vec<(EngineError, Code)> = vec![
            (
                EngineError::InvalidInput {
                    field: "resource",
                    message: "unknown type `nope`".into(),
                },
                Code::FailedPrecondition,
            ),
            (EngineError::NoSchema, Code::FailedPrecondition),
            (EngineError::DepthExceeded(50), Code::FailedPrecondition),
            (
                EngineError::invalid_context_example(),
                Code::InvalidArgument,
            ),
            (
                EngineError::SchemaOrphans {
                    what: "x".into(),
                    count: 1,
                    example: "y".into(),
                },
                Code::InvalidArgument,
            ),
            (
                EngineError::Store(StoreError::Io("disk".into())),
                Code::Unavailable,
            ),
            (
                EngineError::Store(StoreError::Corrupt("key 0xdead".into())),
                Code::Internal,
            ),
        ];
        for (err, code) in cases {
            let status = engine_status(err);
            assert_eq!(status.code(), code, "{}", status.message());
            assert!(!status.message().contains("0xdead"));
        }
    }
}
