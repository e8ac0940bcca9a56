//! Two router-wide guards on the shape of requests and answers, applied by
//! `observe::Edge`:
//! - [`unknown_query`]: a query string on a route that takes none is a 400 naming the
//!   parameter, never silently ignored (routes with a query, `/v1/watch`, refuse unknown
//!   parameters in their own extractor);
//! - [`json_errors`]: an error the HTTP layer answered by itself (405 wrong method, 415,
//!   a plain-text rejection) gets the `{"error": {code, message}}` body every other error
//!   has, so a client never sees an empty or plain-text error.

use axum::extract::{MatchedPath, Request};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The routes that read a query string; every other route refuses one.
const ROUTES_WITH_QUERY: &[&str] = &["/v1/watch"];

/// The most bytes of a plain-text error body read back to build the JSON message.
const MAX_PLAIN_ERROR: usize = 4_096;

/// The 400 answer to a non-empty query string on a route that does not read one; `None`
/// when the request may go on.
pub fn unknown_query(request: &Request) -> Option<Response> {
    let route = request.extensions().get::<MatchedPath>()?;
    let query = request.uri().query().unwrap_or("");
    if query.is_empty() || ROUTES_WITH_QUERY.contains(&route.as_str()) {
        return None;
    }
    let name = query
        .split('&')
        .next()
        .and_then(|pair| pair.split('=').next())
        .unwrap_or(query);
    Some(ApiError::UnknownQuery(name.to_string()).into_response())
}

/// Gives an error answer without a JSON body the JSON error shape.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|it| it.to_str().ok())
        .unwrap_or("");
    // JSON errors are already shaped; gRPC answers carry their status in trailers.
    if content_type.starts_with("application/json") || content_type.starts_with("application/grpc")
    {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), MAX_PLAIN_ERROR).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase()
    } else {
        lowercase_first(&text)
    };
    ApiError::Protocol { status, message }.into_response()
}

/// axum's rejection texts start with a capital letter; our messages do not.
pub fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
