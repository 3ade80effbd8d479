//! Admission control: each route lets a bounded number of requests run at
//! once and answers the rest 503 with `Retry-After` at once. Past capacity,
//! queueing only makes every answer late (clients time out and retry, and
//! the work done for them is wasted) and grows memory; refusing the excess
//! keeps the accepted requests fast and the goodput near capacity.
//!
//! Health, readiness and metrics are never refused (a load balancer must
//! see an overloaded process as alive), nor live streams, which stay open by
//! design and are bounded as connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::problem::ApiError;

/// Requests one route runs at once, unless the environment says otherwise.
pub const DEFAULT_WRITES: usize = 64;
pub const DEFAULT_READS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Per route, for POST, PUT, PATCH and DELETE.
    pub writes: usize,
    /// Per route, for every other method.
    pub reads: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            writes: DEFAULT_WRITES,
            reads: DEFAULT_READS,
        }
    }
}

impl Limits {
    /// `HANWHA_MAX_INFLIGHT_WRITES` and `HANWHA_MAX_INFLIGHT_READS`, each at
    /// least 1.
    pub fn from_env() -> Limits {
        let read = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .map(|n| n.max(1))
                .unwrap_or(default)
        };
        Limits {
            writes: read("HANWHA_MAX_INFLIGHT_WRITES", DEFAULT_WRITES),
            reads: read("HANWHA_MAX_INFLIGHT_READS", DEFAULT_READS),
        }
    }
}

/// Whether a route is limited, and in which class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Class {
    Exempt,
    Write,
    Read,
}

fn classify(method: &Method, route: &str) -> Class {
    if route.starts_with("/actuator/") || route == "/metrics" || route.ends_with("/stream") {
        return Class::Exempt;
    }
    match *method {
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => Class::Write,
        _ => Class::Read,
    }
}

/// A route as the router matched it: its class and path template. Not the
/// raw method: a client may invent any method, and each would add a gate.
type Route = (Class, String);

/// One gate per route actually called; the routes are the application's,
/// so the map is bounded by them (unmatched paths share one gate).
#[derive(Clone)]
pub struct Admission {
    limits: Limits,
    gates: Arc<Mutex<HashMap<Route, Arc<Semaphore>>>>,
}

impl Admission {
    pub fn new(limits: Limits) -> Admission {
        Admission {
            limits,
            gates: Arc::default(),
        }
    }

    fn gate(&self, route: &str, class: Class) -> Arc<Semaphore> {
        let size = match class {
            Class::Write => self.limits.writes,
            _ => self.limits.reads,
        };
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates
            .entry((class, route.to_string()))
            .or_insert_with(|| Arc::new(Semaphore::new(size)))
            .clone()
    }
}

pub async fn layer(State(admission): State<Admission>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "(unmatched)".to_string());
    let class = classify(req.method(), &route);
    if class == Class::Exempt {
        return next.run(req).await;
    }
    let gate = admission.gate(&route, class);
    let Ok(permit) = gate.try_acquire_owned() else {
        tracing::debug!(route = %route, "refused: the route is at its limit of requests in flight");
        return busy();
    };
    if class == Class::Read {
        // A dropped read stops its work, and frees its place with it.
        return next.run(req).await;
    }
    // A write runs to its end whether or not its client stays (the work
    // behind it does not stop either), so its place is held until then:
    // clients that hang up at once cannot slip more work past the gate.
    let run = tokio::spawn(async move {
        let resp = next.run(req).await;
        drop(permit);
        resp
    });
    match run.await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error = %e, "a write panicked");
            ApiError::internal("the request failed").into_response()
        }
    }
}

fn busy() -> Response {
    let mut resp =
        ApiError::unavailable("the server is at capacity; retry in a moment").into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_metrics_and_streams_are_never_refused() {
        for route in [
            "/actuator/health",
            "/actuator/ready",
            "/metrics",
            "/notifications/stream",
        ] {
            assert_eq!(classify(&Method::GET, route), Class::Exempt, "{route}");
        }
        assert_eq!(classify(&Method::POST, "/orders"), Class::Write);
        assert_eq!(classify(&Method::PUT, "/orders/{id}/cancel"), Class::Write);
        assert_eq!(classify(&Method::GET, "/orders/{id}"), Class::Read);
    }

    #[tokio::test]
    async fn a_full_route_refuses_at_once_and_admits_again_when_one_ends() {
        let admission = Admission::new(Limits {
            writes: 2,
            reads: 5,
        });
        let gate = admission.gate("/orders", Class::Write);
        let a = gate.clone().try_acquire_owned().expect("first");
        let _b = gate.clone().try_acquire_owned().expect("second");
        assert!(gate.clone().try_acquire_owned().is_err());
        // Another route has its own gate.
        let other = admission.gate("/orders/{id}/confirm", Class::Write);
        assert!(other.try_acquire_owned().is_ok());
        drop(a);
        assert!(gate.try_acquire_owned().is_ok());
    }
}
