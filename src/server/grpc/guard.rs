//! What every gRPC call passes before a service sees it: the bearer token, and the
//! caller's deadline.
//!
//! The token is checked as SpiceDB checks its preshared key: no `authorization: Bearer …`
//! metadata is UNAUTHENTICATED, a wrong token PERMISSION_DENIED. Keys and their scopes are
//! the JSON API's (`server::keys`, the same route → scope table): a known key without the
//! method's scope is PERMISSION_DENIED naming the scope. A `grpc-timeout` bounds the call (DEADLINE_EXCEEDED when
//! it passes before the response starts); a streaming response (Watch) is not cut off
//! once it has started, by this deadline or by the HTTP request timeout.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tonic::Status;

use super::super::AppState;
use super::super::keys::{self, AuthError};

/// Checks the token and applies the deadline, answering gRPC statuses.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !super::is_grpc(&request) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    // gRPC clients send the scheme in either case.
    let secret = presented.map(|value| {
        value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or("")
            .trim()
    });
    let scope = keys::scope_of("POST", request.uri().path());
    match state.keys().authorize_secret(secret, scope) {
        Ok(key) => {
            let mut response = run_with_deadline(request, next).await;
            if super::super::observe::details_wanted() {
                response.extensions_mut().insert(key);
            }
            response
        }
        Err(AuthError::Unauthenticated) if presented.is_none() => reply(Status::unauthenticated(
            "missing `authorization` metadata: send `authorization: Bearer <token>`",
        )),
        Err(AuthError::Unauthenticated) => reply(Status::permission_denied("invalid bearer token")),
        Err(err @ AuthError::Forbidden { .. }) => reply(Status::permission_denied(err.to_string())),
    }
}

/// Runs the call under its `grpc-timeout`, if it sent one.
async fn run_with_deadline(request: Request, next: Next) -> Response {
    let deadline = match request.headers().get("grpc-timeout").map(parse_timeout) {
        None => None,
        Some(Some(deadline)) => Some(deadline),
        Some(None) => return reply(Status::invalid_argument("malformed `grpc-timeout` header")),
    };
    match deadline {
        Some(deadline) => match tokio::time::timeout(deadline, next.run(request)).await {
            Ok(response) => response,
            Err(_) => reply(Status::deadline_exceeded(format!(
                "call did not finish within its deadline of {} ms",
                deadline.as_millis()
            ))),
        },
        None => next.run(request).await,
    }
}

fn reply(status: Status) -> Response {
    status.into_http::<axum::body::Body>().into_response()
}

/// A `grpc-timeout` value: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn parse_timeout(value: &axum::http::HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn grpc_timeouts_parse() {
        let cases = [
            ("5S", Some(Duration::from_secs(5))),
            ("100m", Some(Duration::from_millis(100))),
            ("2H", Some(Duration::from_secs(7200))),
            ("99999999u", Some(Duration::from_micros(99_999_999))),
            ("123456789S", None),
            ("S", None),
            ("", None),
            ("10x", None),
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse_timeout(&HeaderValue::from_static(text)),
                expected,
                "{text}"
            );
        }
    }
}
