//! The seed's actuator endpoints: liveness, readiness, echo (which replica
//! answered) and `PUT /actuator/down` for failover drills.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Clone)]
pub struct Actuator {
    inner: Arc<ActuatorInner>,
}

struct ActuatorInner {
    service: String,
    instance_id: String,
    host: String,
    healthy: AtomicBool,
    ready: AtomicBool,
}

impl Actuator {
    pub fn new(service: &str) -> Actuator {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".to_string());
        Actuator {
            inner: Arc::new(ActuatorInner {
                service: service.to_string(),
                instance_id: uuid::Uuid::new_v4().to_string(),
                host,
                healthy: AtomicBool::new(true),
                ready: AtomicBool::new(false),
            }),
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/actuator/health", get(health))
            .route("/actuator/ready", get(ready))
            .route("/actuator/echo", get(echo))
            .route("/actuator/down", put(down))
            .route("/actuator/up", put(up))
            .with_state(self.clone())
    }
}

async fn health(State(a): State<Actuator>) -> (StatusCode, Json<Value>) {
    if a.inner.healthy.load(Ordering::SeqCst) {
        (StatusCode::OK, Json(json!({"status": "UP"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "DOWN"})),
        )
    }
}

async fn ready(State(a): State<Actuator>) -> (StatusCode, Json<Value>) {
    if a.is_ready() && a.inner.healthy.load(Ordering::SeqCst) {
        (StatusCode::OK, Json(json!({"status": "UP"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "OUT_OF_SERVICE"})),
        )
    }
}

async fn echo(State(a): State<Actuator>) -> Json<Value> {
    Json(json!({
        "service": a.inner.service,
        "host": a.inner.host,
        "instanceId": a.inner.instance_id,
    }))
}

async fn down(State(a): State<Actuator>) -> Json<Value> {
    a.inner.healthy.store(false, Ordering::SeqCst);
    Json(json!({"status": "DOWN"}))
}

async fn up(State(a): State<Actuator>) -> Json<Value> {
    a.inner.healthy.store(true, Ordering::SeqCst);
    Json(json!({"status": "UP"}))
}
