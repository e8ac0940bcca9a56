//! The bearer-token layer: with a configured token, every `/v1` request must carry
//! `Authorization: Bearer <token>`; anything else answers 401. The comparison takes the
//! same time wherever the first differing byte is (via `subtle`), so the token cannot be
//! guessed byte by byte from response times.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// Lets the request through when no token is configured or the bearer token matches.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(expected) = &state.config().token {
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if !matches(presented, expected) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(request).await)
}

/// Constant-time equality of the presented token with the expected one. Only the length
/// of the expected token can leak, which is not secret in practice.
pub(super) fn matches(presented: Option<&str>, expected: &str) -> bool {
    match presented {
        Some(presented) => bool::from(presented.trim().as_bytes().ct_eq(expected.as_bytes())),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(matches(Some("s3cret"), "s3cret"));
        assert!(!matches(Some("s3cres"), "s3cret"));
        assert!(!matches(Some("s3cre"), "s3cret"));
        assert!(!matches(Some(""), "s3cret"));
        assert!(!matches(None, "s3cret"));
    }
}
