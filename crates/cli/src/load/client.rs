//! The HTTP side of the load tool: one pooled client shared by every virtual
//! user, a bearer token per role, and errors sorted into kinds the report
//! can count.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

/// Why a request produced no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("connect")]
    Connect,
    #[error("timeout")]
    Timeout,
    #[error("transport: {0}")]
    Transport(String),
}

impl CallError {
    fn from_reqwest(e: reqwest::Error) -> CallError {
        if e.is_timeout() {
            CallError::Timeout
        } else if e.is_connect() {
            CallError::Connect
        } else {
            CallError::Transport(e.to_string())
        }
    }

    /// The short label the error table groups by.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Connect => "connect",
            CallError::Timeout => "timeout",
            CallError::Transport(_) => "transport",
        }
    }
}

/// Setup failures: the run cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("{what}: {source}")]
    Call {
        what: String,
        #[source]
        source: CallError,
    },
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    #[error("{what}: unexpected answer {body}")]
    Shape { what: String, body: String },
}

/// One answered request.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The raw body; parsed only by the steps that need a field from it.
    pub body: Vec<u8>,
    /// When the request left (after any wait for a free connection).
    pub sent: Instant,
    /// When the whole body had arrived.
    pub done: Instant,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn text(&self) -> String {
        let end = self.body.len().min(200);
        String::from_utf8_lossy(&self.body[..end]).into_owned()
    }
}

#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    pub fn new(base: &str, connections: usize, timeout: Duration) -> Result<Client, SetupError> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections.max(1))
            // Below the server's header timeout, which ends idle connections.
            .pool_idle_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .timeout(timeout)
            .build()
            .map_err(SetupError::Client)?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends one request and reads the whole answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, CallError> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(key) = idempotency_key {
            req = req.header("idempotency-key", key);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let sent = Instant::now();
        let resp = req.send().await.map_err(CallError::from_reqwest)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(CallError::from_reqwest)?;
        Ok(Answer {
            status,
            body: body.to_vec(),
            sent,
            done: Instant::now(),
        })
    }

    /// A setup call that must answer 2xx with JSON.
    pub async fn setup_json(
        &self,
        what: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, SetupError> {
        let answer = self
            .call(method, path, token, body, None)
            .await
            .map_err(|source| SetupError::Call {
                what: what.to_string(),
                source,
            })?;
        if !answer.ok() {
            return Err(SetupError::Status {
                what: what.to_string(),
                status: answer.status,
                body: answer.text(),
            });
        }
        answer.json().ok_or_else(|| SetupError::Shape {
            what: what.to_string(),
            body: answer.text(),
        })
    }

    /// Logs a demo user in and returns the bearer token.
    pub async fn login(&self, user: &str, password: &str) -> Result<String, SetupError> {
        let what = format!("login as {user}");
        let body = serde_json::json!({"username": user, "password": password});
        let v = self
            .setup_json(&what, Method::POST, "/auth/login", None, Some(&body))
            .await?;
        v["token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| SetupError::Shape {
                what,
                body: v.to_string(),
            })
    }
}
