//! The blocking HTTP client of the client commands: one server URL and token, JSON in
//! and out, and the server's `{"error": …}` body decoded into [`ClientError::Api`].

use clap::Args;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::server::ErrorBody;

/// Where the server is and how to talk to it; shared by every client command.
#[derive(Clone, Debug, Args)]
pub struct Connection {
    /// URL of the arbiter server.
    #[arg(long, env = "ARBITER_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Bearer token of the server.
    #[arg(long, env = "ARBITER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the server's JSON answer instead of human output.
    #[arg(long)]
    pub json: bool,
}

/// A failed client call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the server at `{url}`: {message}")]
    Transport { url: String, message: String },
    #[error("{} ({})", .0.error.message, .0.error.code)]
    Api(ErrorBody),
    #[error("the server answered status {status} with an unexpected body: {message}")]
    Decode { status: u16, message: String },
    #[error("{0}")]
    Usage(String),
}

/// A blocking HTTP client bound to one server and token.
pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(connection: &Connection) -> Self {
        Self {
            http: reqwest::blocking::Client::new(),
            base: connection.server.trim_end_matches('/').to_string(),
            token: connection.token.clone(),
        }
    }

    /// POSTs `body` to `path` and decodes the answer (or the JSON error).
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let request = self.http.post(self.url(path)).json(body);
        self.send(request)
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.http.get(self.url(path)))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send<T: DeserializeOwned>(
        &self,
        mut request: reqwest::blocking::RequestBuilder,
    ) -> Result<T, ClientError> {
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().map_err(|err| ClientError::Transport {
            url: self.base.clone(),
            message: err.to_string(),
        })?;
        let status = response.status();
        let bytes = response.bytes().map_err(|err| ClientError::Transport {
            url: self.base.clone(),
            message: err.to_string(),
        })?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => ClientError::Api(body),
                Err(err) => ClientError::Decode {
                    status: status.as_u16(),
                    message: err.to_string(),
                },
            });
        }
        serde_json::from_slice(&bytes).map_err(|err| ClientError::Decode {
            status: status.as_u16(),
            message: err.to_string(),
        })
    }
}
