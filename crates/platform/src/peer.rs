//! A synchronous call to another service: a deadline for the whole call,
//! bounded retries with backoff for calls that are safe to repeat, and a
//! circuit breaker so that a service that is down is answered for at once
//! instead of being waited on by every request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    /// The peer could not be reached in time, answered 5xx, or the circuit
    /// is open.
    #[error("{0}")]
    Unavailable(String),
}

/// The peer's answer when it answered below 500.
#[derive(Debug, Clone)]
pub struct PeerReply {
    pub status: StatusCode,
    pub body: Value,
}

#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Deadline for a call, retries included.
    pub deadline: Duration,
    /// Extra attempts after the first, for calls safe to repeat.
    pub retries: u32,
    /// Consecutive failures that open the circuit.
    pub failures_to_open: u32,
    /// How long an open circuit refuses calls before it lets one through.
    pub open_for: Duration,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            deadline: Duration::from_millis(900),
            retries: 2,
            failures_to_open: 5,
            open_for: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
struct Breaker {
    failures: u32,
    opened_at: Option<Instant>,
    trial_running: bool,
}

#[derive(Debug)]
pub struct Peer {
    name: String,
    base: String,
    http: reqwest::Client,
    config: PeerConfig,
    breaker: Mutex<Breaker>,
}

impl Peer {
    pub fn new(name: &str, base: &str, config: PeerConfig) -> Peer {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(300))
            // Below the services' header timeout (10 s by default), which also
            // ends a keep-alive connection waiting for its next request: a
            // pooled connection is dropped here before a service closes it.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Peer {
            name: name.to_string(),
            base: base.trim_end_matches('/').to_string(),
            http,
            config,
            breaker: Mutex::new(Breaker {
                failures: 0,
                opened_at: None,
                trial_running: false,
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn state(&self) -> CircuitState {
        let b = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        match b.opened_at {
            None => CircuitState::Closed,
            Some(at) if at.elapsed() < self.config.open_for => CircuitState::Open,
            Some(_) => CircuitState::HalfOpen,
        }
    }

    /// May a call go out now? In half-open state only one trial call does.
    fn admit(&self) -> bool {
        let mut b = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        match b.opened_at {
            None => true,
            Some(at) if at.elapsed() < self.config.open_for => false,
            Some(_) if b.trial_running => false,
            Some(_) => {
                b.trial_running = true;
                true
            }
        }
    }

    fn record(&self, ok: bool) {
        let mut b = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        b.trial_running = false;
        if ok {
            b.failures = 0;
            b.opened_at = None;
        } else {
            b.failures += 1;
            if b.failures >= self.config.failures_to_open || b.opened_at.is_some() {
                if b.opened_at.is_none() {
                    tracing::warn!(peer = %self.name, "circuit opened");
                }
                b.opened_at = Some(Instant::now());
            }
        }
    }

    /// Calls the peer. `idempotent` calls are retried on failure; an answer
    /// below 500 is returned as it is (a 4xx is the peer's decision).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<PeerReply, PeerError> {
        self.call_within(method, path, token, body, idempotent, self.config.deadline)
            .await
    }

    /// Like [`Peer::call`], within `budget` (at most the peer's own
    /// deadline). Each attempt tells the peer how long is left, so it does
    /// no work after the caller gave up.
    pub async fn call_within(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        idempotent: bool,
        budget: Duration,
    ) -> Result<PeerReply, PeerError> {
        let deadline = budget.min(self.config.deadline);
        let started = Instant::now();
        let attempts = if idempotent {
            1 + self.config.retries
        } else {
            1
        };
        let mut last = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                let backoff = Duration::from_millis(50 * 3u64.pow(attempt - 1));
                if started.elapsed() + backoff >= deadline {
                    break;
                }
                tokio::time::sleep(backoff).await;
            }
            if !self.admit() {
                return Err(PeerError::Unavailable(format!(
                    "{} is unavailable (circuit open)",
                    self.name
                )));
            }
            let left = deadline.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            let mut req = self
                .http
                .request(method.clone(), format!("{}{}", self.base, path))
                .header(
                    crate::deadline::HEADER,
                    crate::deadline::Deadline::header_value(left),
                )
                .timeout(left);
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            match req.send().await {
                Ok(resp) if resp.status().is_server_error() => {
                    last = format!("{} answered {}", self.name, resp.status());
                    self.record(false);
                }
                Ok(resp) => {
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(bytes) => {
                            self.record(true);
                            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                            return Ok(PeerReply { status, body });
                        }
                        Err(e) => {
                            last = format!("{}: {}", self.name, e.without_url());
                            self.record(false);
                        }
                    }
                }
                Err(e) => {
                    // Without the URL: errors travel into answers and logs.
                    last = format!("{} unreachable: {}", self.name, e.without_url());
                    self.record(false);
                }
            }
        }
        Err(PeerError::Unavailable(if last.is_empty() {
            format!("{} did not answer in time", self.name)
        } else {
            last
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dead_peer_opens_the_circuit_and_is_refused_at_once() {
        // Nothing listens on port 1.
        let peer = Peer::new(
            "nobody",
            "http://127.0.0.1:1",
            PeerConfig {
                failures_to_open: 3,
                open_for: Duration::from_secs(60),
                ..PeerConfig::default()
            },
        );
        for _ in 0..3 {
            assert!(peer
                .call(Method::GET, "/", None, None, false)
                .await
                .is_err());
        }
        assert_eq!(peer.state(), CircuitState::Open);
        let started = Instant::now();
        let err = peer
            .call(Method::GET, "/", None, None, true)
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("circuit open"), "{err}");
        assert!(started.elapsed() < Duration::from_millis(50));
    }
}
