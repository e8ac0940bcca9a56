//! What every gRPC call passes before a service sees it: the bearer token, and the
//! caller's deadline.
//!
//! The token is checked as SpiceDB checks its preshared key: no `authorization: Bearer …`
//! metadata is UNAUTHENTICATED, a wrong token PERMISSION_DENIED. Keys and their scopes are
//! the JSON API's (`server::keys`, the same route → scope table): a known key without the
//! method's scope is PERMISSION_DENIED naming the scope. A `grpc-timeout` bounds the call (DEADLINE_EXCEEDED when
//! it passes before the response starts); a streaming response (Watch) is not cut off
//! once it has started, by this deadline or by the HTTP request timeout.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::extract::Request;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use tonic::Status;
use tower::Service;

use super::super::AppState;
use super::super::keys::{self, AuthError, KeyName};
use super::super::layer::{Around, ResponseFuture, StateLayer};

/// A call's deadline header, looked up as a constant: a name given as text is parsed on
/// every lookup.
const GRPC_TIMEOUT: axum::http::HeaderName = axum::http::HeaderName::from_static("grpc-timeout");

/// The layer of every gRPC route but CheckPermission's lean one (`unary`, which calls
/// `admit` and `finish` itself): checks the token and applies the deadline, answering
/// gRPC statuses; a request that is not a gRPC call passes untouched. A `server::layer`
/// layer: the inner service is called in place, one future boxed.
pub type Guard = StateLayer<GuardAround>;

/// What [`Guard`] does around each gRPC route.
pub struct GuardAround;

impl Around for GuardAround {
    fn call<S>(state: &AppState, inner: &mut S, request: Request) -> ResponseFuture
    where
        S: Service<Request, Response = Response, Error = Infallible>,
        S::Future: Send + 'static,
    {
        if !super::is_grpc(&request) {
            return Box::pin(inner.call(request));
        }
        let admitted = match admit(state, &request) {
            Ok(admitted) => admitted,
            Err(status) => return refused(status),
        };
        let inner = inner.call(request);
        Box::pin(async move {
            let inner = std::pin::pin!(inner);
            Ok(finish(admitted, inner).await)
        })
    }
}

/// A gRPC call let through: the key that makes it and the caller's deadline.
pub(super) struct Admitted {
    key: KeyName,
    deadline: Option<Duration>,
}

/// The guard's decision on a gRPC call before its service sees it: its token, then its
/// `grpc-timeout`.
pub(super) fn admit(state: &AppState, request: &Request) -> Result<Admitted, Status> {
    admit_head(state, request.headers(), request.uri().path())
}

/// [`admit`] from a call's headers and path alone.
pub(super) fn admit_head(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    path: &str,
) -> Result<Admitted, Status> {
    let key = authorize(state, headers, path)?;
    let deadline = match headers.get(GRPC_TIMEOUT).map(parse_timeout) {
        None => None,
        Some(Some(deadline)) => Some(deadline),
        Some(None) => return Err(Status::invalid_argument("malformed `grpc-timeout` header")),
    };
    Ok(Admitted { key, deadline })
}

/// An admitted call's answer, within its deadline (DEADLINE_EXCEEDED after it).
pub(super) async fn finish(
    admitted: Admitted,
    // Borrowed, not owned: the call's future (a kilobyte or more) stays where its caller
    // pinned it instead of being copied into this one, and into the timeout.
    mut answer: Pin<&mut impl Future<Output = Result<Response, Infallible>>>,
) -> Response {
    let Admitted { key, deadline } = admitted;
    let mut response = match deadline {
        None => {
            let Ok(response) = answer.as_mut().await;
            response
        }
        Some(deadline) => match tokio::time::timeout(deadline, answer.as_mut()).await {
            Ok(Ok(response)) => response,
            Err(_) => reply(Status::deadline_exceeded(format!(
                "call did not finish within its deadline of {} ms",
                deadline.as_millis()
            ))),
        },
    };
    if super::super::observe::details_wanted() {
        response.extensions_mut().insert(key);
    }
    response
}

/// The key that may make this call, or the status refusing it: no `authorization` metadata
/// is UNAUTHENTICATED; a wrong token, or a key without the method's scope,
/// PERMISSION_DENIED.
fn authorize(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    path: &str,
) -> Result<KeyName, Status> {
    let presented = headers
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
    let scope = || keys::scope_of("POST", path);
    state
        .keys()
        .authorize_secret(secret, scope)
        .map_err(|err| match err {
            AuthError::Unauthenticated if presented.is_none() => Status::unauthenticated(
                "missing `authorization` metadata: send `authorization: Bearer <token>`",
            ),
            AuthError::Unauthenticated => Status::permission_denied("invalid bearer token"),
            err @ AuthError::Forbidden { .. } => Status::permission_denied(err.to_string()),
        })
}

/// A call refused before its service saw it.
fn refused(status: Status) -> ResponseFuture {
    Box::pin(std::future::ready(Ok(reply(status))))
}

pub(super) fn reply(status: Status) -> Response {
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
