//! The middleware a product puts in front of its API: it maps the caller's API key to a
//! tier (the product's own data, here `keys.json`), maps the request to an operation
//! (`GET` → read, `POST`/`PUT`/`PATCH` → write, `DELETE` → delete) and asks arbiter whether
//! the tier may invoke it. It fails closed: an unknown key is 401, a tier arbiter does not
//! grant (including a tier it has never heard of) is 403, and arbiter being unreachable or
//! answering anything but a clear `allowed: true` is 503 or 403, never a pass.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// A class of API calls, as arbiter's `operation` objects name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
    Delete,
}

impl Operation {
    pub fn of(method: &Method) -> Self {
        match *method {
            Method::GET | Method::HEAD | Method::OPTIONS => Self::Read,
            Method::DELETE => Self::Delete,
            // Anything else changes data; an unusual verb is treated as a write.
            _ => Self::Write,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Delete => "delete",
        }
    }
}

/// Why a request was stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No API key, or one the product does not know.
    UnknownKey,
    /// The key's tier may not invoke the operation.
    Denied { tier: String, operation: Operation },
    /// arbiter could not be asked or gave no clear answer.
    Unavailable(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::UnknownKey => (StatusCode::UNAUTHORIZED, "unknown api key\n".to_string()),
            Self::Denied { tier, operation } => (
                StatusCode::FORBIDDEN,
                format!("tier `{tier}` may not {}\n", operation.name()),
            ),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "authorization is unavailable\n".to_string(),
            ),
        }
        .into_response()
    }
}

/// The API keys (key → tier) and the arbiter to ask.
pub struct Tiers {
    keys: HashMap<String, String>,
    arbiter: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Tiers {
    /// `keys_json` maps each API key to its tier.
    pub fn new(keys_json: &str, arbiter: &str, token: Option<String>) -> Result<Self, String> {
        let keys =
            serde_json::from_str(keys_json).map_err(|err| format!("invalid keys json: {err}"))?;
        Ok(Self {
            keys,
            arbiter: arbiter.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        })
    }

    /// May the holder of `api_key` do `operation`?
    pub async fn authorize(
        &self,
        api_key: Option<&str>,
        operation: Operation,
    ) -> Result<(), Refusal> {
        let tier = api_key
            .and_then(|key| self.keys.get(key))
            .ok_or(Refusal::UnknownKey)?;
        let body = serde_json::json!({
            "resource": format!("operation:{}", operation.name()),
            "permission": "invoke",
            "subject": format!("tier:{tier}"),
        });
        let mut request = self
            .http
            .post(format!("{}/v1/check", self.arbiter))
            .json(&body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|err| Refusal::Unavailable(err.to_string()))?;
        let status = response.status();
        let answer: serde_json::Value = response
            .json()
            .await
            .map_err(|err| Refusal::Unavailable(err.to_string()))?;
        if status.is_server_error() {
            return Err(Refusal::Unavailable(answer.to_string()));
        }
        // Only an explicit `allowed: true` lets the request through; a 4xx (a tier name
        // arbiter cannot parse, say) or any other shape is a denial.
        if status.is_success() && answer["allowed"] == serde_json::Value::Bool(true) {
            Ok(())
        } else {
            Err(Refusal::Denied {
                tier: tier.clone(),
                operation,
            })
        }
    }
}

/// The middleware: `X-Api-Key` → tier → arbiter.
pub async fn require_tier(
    State(tiers): State<Arc<Tiers>>,
    request: Request,
    next: Next,
) -> Response {
    let api_key = request
        .headers()
        .get("x-api-key")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let operation = Operation::of(request.method());
    match tiers.authorize(api_key.as_deref(), operation).await {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// A stand-in for the product's API, behind the middleware.
pub fn app(tiers: Arc<Tiers>) -> Router {
    Router::new()
        .route(
            "/documents/{id}",
            get(|| async { "the document\n" })
                .put(|| async { "saved\n" })
                .delete(|| async { "deleted\n" }),
        )
        .layer(axum::middleware::from_fn_with_state(tiers, require_tier))
}
