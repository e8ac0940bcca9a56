//! [`ApiError`]: every way an HTTP request can fail, and THE one [`IntoResponse`] impl that
//! turns it into a status and the body `{"error": {"code", "message", ...}}` of DESIGN §5.
//!
//! A 4xx tells the caller what they did wrong (with the offending field when known); a 5xx
//! is logged here and its details stay on the server. No error path carries `allowed`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::clip::{MAX_PROBLEMS, MAX_QUOTED, clip, truncate};
use crate::engine::{EngineError, SchemaProblem};
use crate::store::{StoreError, WriteRejection};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; `field` names the offending part of the body or query.
    #[error("invalid `{field}`: {message}")]
    BadRequest {
        field: &'static str,
        message: String,
    },
    /// The body is not JSON of the expected shape.
    #[error("{0}")]
    BadJson(String),
    /// `Authorization: Bearer` is missing or does not match the configured token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// A known key lacks the scope the route needs.
    #[error("key `{key}` lacks the `{scope}` scope")]
    Forbidden { key: String, scope: &'static str },
    /// The body is larger than the configured limit.
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// The request did not finish before the per-request deadline.
    #[error("request did not finish within {0} ms")]
    DeadlineExceeded(u128),
    /// No route has this path.
    #[error("no route for `{0}`")]
    NotFound(String),
    /// The body was not received within the body read timeout.
    #[error("request body not received within {0} ms")]
    BodyTimeout(u128),
    /// A query string carries a parameter this route does not know.
    #[error("unknown query parameter `{0}`")]
    UnknownQuery(String),
    /// An error answered by the HTTP layer itself (405 wrong method, 415, ...), given the
    /// JSON error shape by the router's last layer.
    #[error("{message}")]
    Protocol { status: StatusCode, message: String },
    /// A well-formed write was not applied (a failed precondition, an existing tuple).
    #[error(transparent)]
    Rejected(Box<WriteRejection>),
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A bug or a panicked task; details are logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON error body.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, for machines (`code`) and people (`message`).
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code, such as `invalid_argument` or `no_schema`.
    pub code: String,
    /// A lowercase, human-readable explanation.
    pub message: String,
    /// The request field at fault, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For an invalid schema: every problem with its line and column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ProblemBody>,
}

/// One schema problem, positioned.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ProblemBody {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(field: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            field,
            message: message.into(),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } | Self::BadJson(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::DeadlineExceeded(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::UnknownQuery(_) => StatusCode::BAD_REQUEST,
            Self::Protocol { status, .. } => *status,
            Self::Rejected(rejection) if matches!(**rejection, WriteRejection::Duplicate(_)) => {
                StatusCode::BAD_REQUEST
            }
            Self::Rejected(_) => StatusCode::CONFLICT,
            Self::Engine(err) => engine_status(err),
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "invalid_argument",
            Self::BadJson(_) => "invalid_json",
            Self::Unauthorized => "unauthenticated",
            Self::Forbidden { .. } => "permission_denied",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::DeadlineExceeded(_) => "deadline_exceeded",
            Self::NotFound(_) => "not_found",
            Self::BodyTimeout(_) => "request_timeout",
            Self::UnknownQuery(_) => "invalid_argument",
            Self::Protocol { status, .. } => protocol_code(*status),
            Self::Rejected(rejection) => match **rejection {
                WriteRejection::PreconditionFailed { .. } => "precondition_failed",
                WriteRejection::AlreadyExists(_) => "already_exists",
                WriteRejection::Duplicate(_) => "duplicate_relationship",
            },
            Self::Engine(EngineError::Store(StoreError::Io(_))) => "store_unavailable",
            Self::Engine(err) => err.code(),
            Self::Internal(_) => "internal",
        }
    }

    /// The body for this error: 5xx messages are generic, 4xx ones say what to fix.
    pub fn body(&self) -> ErrorBody {
        let status = self.status();
        let message = if status.is_server_error() && !self.is_safe_to_show() {
            "internal error; see the server log".to_string()
        } else if let Self::Engine(EngineError::InvalidSchema(problems)) = self {
            schema_summary(problems)
        } else {
            clip(&self.to_string())
        };
        let field = match self {
            Self::BadRequest { field, .. } => Some((*field).to_string()),
            Self::UnknownQuery(name) => Some(truncate(name, MAX_QUOTED)),
            Self::Engine(EngineError::InvalidInput { field, .. }) => Some((*field).to_string()),
            Self::Engine(EngineError::InvalidContext(_)) => Some("context".to_string()),
            Self::Engine(EngineError::InvalidSchema(_) | EngineError::SchemaOrphans { .. }) => {
                Some("schema".to_string())
            }
            Self::Engine(EngineError::InvalidRelationship(_)) => Some("updates".to_string()),
            _ => None,
        };
        let problems = match self {
            Self::Engine(EngineError::InvalidSchema(problems)) => problems
                .iter()
                .take(MAX_PROBLEMS)
                .map(|it| ProblemBody {
                    line: it.line,
                    column: it.column,
                    message: clip(&it.message),
                })
                .collect(),
            _ => Vec::new(),
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message,
                field,
                problems,
            },
        }
    }

    /// 5xx errors whose message reveals nothing internal.
    fn is_safe_to_show(&self) -> bool {
        matches!(
            self,
            Self::DeadlineExceeded(_)
                | Self::Engine(EngineError::NoSchema | EngineError::StoredSchemaInvalid(_))
        ) || matches!(self, Self::Protocol { status, .. } if *status == StatusCode::SERVICE_UNAVAILABLE)
    }
}

/// The message of an invalid schema: how many problems, and the first one. The problems
/// themselves go in `problems`, at most [`MAX_PROBLEMS`] of them.
fn schema_summary(problems: &[SchemaProblem]) -> String {
    let Some(first) = problems.first() else {
        return "invalid schema".to_string();
    };
    let listed = if problems.len() > MAX_PROBLEMS {
        format!(" (the first {MAX_PROBLEMS} are listed)")
    } else {
        String::new()
    };
    clip(&format!(
        "invalid schema: {} problem(s){listed}; the first, at {}:{}: {}",
        problems.len(),
        first.line,
        first.column,
        first.message
    ))
}

/// The stable code of an error the HTTP layer answered by itself.
fn protocol_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 422 => "invalid_json",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        431 => "headers_too_large",
        it if it >= 500 => "internal",
        _ => "invalid_request",
    }
}

fn engine_status(err: &EngineError) -> StatusCode {
    match err {
        EngineError::NoSchema
        | EngineError::StoredSchemaInvalid(_)
        | EngineError::Store(StoreError::Io(_))
        | EngineError::StoreUnavailable(_)
        | EngineError::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
        err if err.is_client_error() => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<WriteRejection> for ApiError {
    fn from(rejection: WriteRejection) -> Self {
        Self::Rejected(Box::new(rejection))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = self.code(), error = %self, "request failed");
        }
        (status, Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_design() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (
                ApiError::bad_request("resource", "x"),
                400,
                "invalid_argument",
            ),
            (ApiError::Unauthorized, 401, "unauthenticated"),
            (ApiError::PayloadTooLarge(10), 413, "payload_too_large"),
            (
                ApiError::from(WriteRejection::PreconditionFailed {
                    index: 0,
                    reason: "no match".into(),
                }),
                409,
                "precondition_failed",
            ),
            (EngineError::NoSchema.into(), 503, "no_schema"),
            (EngineError::DepthExceeded(50).into(), 400, "depth_exceeded"),
            (
                EngineError::invalid_context_example().into(),
                400,
                "invalid_argument",
            ),
            (
                EngineError::Store(StoreError::Corrupt("bad key".into())).into(),
                500,
                "store_failure",
            ),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status().as_u16(), status, "{err}");
            assert_eq!(err.code(), code, "{err}");
        }
    }

    #[test]
    fn server_errors_hide_details() {
        let err: ApiError = EngineError::Store(StoreError::Corrupt("key 0xdead".into())).into();
        let body = err.body();
        assert!(
            !body.error.message.contains("0xdead"),
            "{}",
            body.error.message
        );
        let err: ApiError = EngineError::NoSchema.into();
        assert_eq!(err.body().error.message, "no schema is loaded");
    }
}
