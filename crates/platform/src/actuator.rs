//! The seed's actuator endpoints: liveness, readiness, echo (which replica
//! answered) and `PUT /actuator/down` for failover drills.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Clone)]
pub struct Actuator {
    inner: Arc<ActuatorInner>,
}

/// A dependency readiness waits for (a database, the broker): its name and
/// a check that answers whether it is reachable now.
pub type Dependency = (
    String,
    Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>,
);

struct ActuatorInner {
    service: String,
    instance_id: String,
    host: String,
    healthy: AtomicBool,
    ready: AtomicBool,
    dependencies: Mutex<Vec<Dependency>>,
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
                dependencies: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Readiness also requires this dependency to answer.
    pub fn depends_on(
        &self,
        name: &str,
        check: Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>,
    ) {
        self.inner
            .dependencies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.to_string(), check));
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

/// Ready: started, not draining, not marked down, and every dependency
/// (database, broker) answers; the body names what is missing.
async fn ready(State(a): State<Actuator>) -> (StatusCode, Json<Value>) {
    let dependencies: Vec<Dependency> = a
        .inner
        .dependencies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut down = Vec::new();
    for (name, check) in dependencies {
        if !check().await {
            down.push(name);
        }
    }
    if a.is_ready() && a.inner.healthy.load(Ordering::SeqCst) && down.is_empty() {
        (StatusCode::OK, Json(json!({"status": "UP"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "OUT_OF_SERVICE", "unreachable": down})),
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn probe(a: &Actuator, path: &str) -> (StatusCode, Value) {
        let resp = a
            .router()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("answer");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 4096)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn ready_waits_for_start_and_for_every_dependency() {
        let a = Actuator::new("test");
        assert_eq!(
            probe(&a, "/actuator/ready").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        a.set_ready(true);
        assert_eq!(probe(&a, "/actuator/ready").await.0, StatusCode::OK);
        let up = Arc::new(AtomicBool::new(false));
        let flag = up.clone();
        a.depends_on(
            "broker",
            Arc::new(move || {
                let v = flag.load(Ordering::SeqCst);
                Box::pin(async move { v })
            }),
        );
        let (status, body) = probe(&a, "/actuator/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["unreachable"], json!(["broker"]));
        up.store(true, Ordering::SeqCst);
        assert_eq!(probe(&a, "/actuator/ready").await.0, StatusCode::OK);
        // Liveness is separate: marked down, health fails and so does ready.
        a.inner.healthy.store(false, Ordering::SeqCst);
        assert_eq!(
            probe(&a, "/actuator/health").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            probe(&a, "/actuator/ready").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
