//! The seed's actuator endpoints: liveness, readiness, echo (which replica
//! answered), open to every prober, and `PUT /actuator/down|up` for
//! failover drills, which change the process's state and are mounted only
//! where an operator reaches them (see `management`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::openapi::Common;

/// The actuator's operations, as `/openapi.json` describes them.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(health, ready, echo, down, up),
    modifiers(&Common),
    tags((name = "actuator", description = "Probes for load balancers and operators"))
)]
pub struct ActuatorApi;

/// Liveness, with each dependency's state.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only described: `health` writes the same members.
struct Health {
    /// `UP`, or `DOWN` once marked down.
    #[schema(pattern = "^(UP|DOWN)$")]
    status: String,
    /// Each dependency by name: `{"status": "UP"}` or `{"status": "DOWN"}`.
    components: std::collections::BTreeMap<String, ComponentHealth>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ComponentHealth {
    #[schema(pattern = "^(UP|DOWN)$")]
    status: String,
}

/// Readiness: `UP`, or `OUT_OF_SERVICE` with what is unreachable.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only described: `ready` writes the same members.
struct Readiness {
    #[schema(pattern = "^(UP|OUT_OF_SERVICE)$")]
    status: String,
    /// Dependencies it needs that do not answer (when not ready).
    unreachable: Option<Vec<String>>,
    /// Dependencies it serves without for a while that do not answer now
    /// (the broker: events wait in the outbox); ready all the same.
    degraded: Option<Vec<String>>,
}

/// Which process answered.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Echo {
    service: String,
    instance_id: String,
}

/// The liveness state after a `down` or `up`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Marked {
    #[schema(pattern = "^(UP|DOWN)$")]
    status: String,
}

#[derive(Clone)]
pub struct Actuator {
    inner: Arc<ActuatorInner>,
}

/// Answers whether a dependency (a database, the broker) is reachable now.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

/// A dependency: its name, its check, and whether readiness needs it.
#[derive(Clone)]
struct Dependency {
    name: String,
    check: Check,
    /// Without it the process cannot serve requests (its database). A
    /// dependency it can do without for a while (the broker: the outbox
    /// keeps events) is only reported, in `/actuator/health` and metrics:
    /// were readiness to fail with it, a broker outage would take every
    /// endpoint out of every load balancer.
    needed_to_serve: bool,
}

/// How long one check may take: probes (Kubernetes waits 1 s by default)
/// must answer in time even when a dependency hangs rather than refuses.
const CHECK_DEADLINE: Duration = Duration::from_millis(500);

impl Dependency {
    async fn up(&self) -> bool {
        tokio::time::timeout(CHECK_DEADLINE, (self.check)())
            .await
            .unwrap_or(false)
    }
}

/// Runs the checks side by side, so one that hangs costs one deadline.
async fn check_all(dependencies: Vec<Dependency>) -> Vec<(Dependency, bool)> {
    let results = futures::future::join_all(dependencies.iter().map(Dependency::up)).await;
    dependencies.into_iter().zip(results).collect()
}

struct ActuatorInner {
    service: String,
    instance_id: String,
    healthy: AtomicBool,
    ready: AtomicBool,
    dependencies: Mutex<Vec<Dependency>>,
}

impl Actuator {
    pub fn new(service: &str) -> Actuator {
        Actuator {
            inner: Arc::new(ActuatorInner {
                service: service.to_string(),
                instance_id: uuid::Uuid::new_v4().to_string(),
                healthy: AtomicBool::new(true),
                ready: AtomicBool::new(false),
                dependencies: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Readiness also requires this dependency to answer: without it the
    /// process cannot serve requests.
    pub fn depends_on(&self, name: &str, check: Check) {
        self.add(name, check, true);
    }

    /// Reports this dependency in `/actuator/health` without making
    /// readiness wait for it: the process serves requests without it.
    pub fn reports(&self, name: &str, check: Check) {
        self.add(name, check, false);
    }

    fn add(&self, name: &str, check: Check, needed_to_serve: bool) {
        self.inner
            .dependencies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Dependency {
                name: name.to_string(),
                check,
                needed_to_serve,
            });
    }

    fn dependencies(&self) -> Vec<Dependency> {
        self.inner
            .dependencies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::SeqCst);
    }

    /// False while marked down.
    pub fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::SeqCst)
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    /// The probes: health, readiness and echo, open to anyone.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/actuator/health", get(health))
            .route("/actuator/ready", get(ready))
            .route("/actuator/echo", get(echo))
            .with_state(self.clone())
    }

    /// `PUT /actuator/down` and `PUT /actuator/up`: they take the process
    /// out of every load balancer and back, so only an operator may.
    pub fn operations(&self) -> Router {
        Router::new()
            .route("/actuator/down", put(down))
            .route("/actuator/up", put(up))
            .with_state(self.clone())
    }
}

/// Liveness: fails only when marked down. The body details each
/// dependency (`components`), which a dependency's outage does not make
/// the process fail: restarting it would not bring the dependency back.
#[utoipa::path(
    get,
    path = "/actuator/health",
    tag = "actuator",
    summary = "Liveness: 503 only when marked down",
    responses(
        (status = 200, description = "Alive", body = Health),
        (status = 503, description = "Marked down", body = Health),
    )
)]
async fn health(State(a): State<Actuator>) -> (StatusCode, Json<Value>) {
    let components: serde_json::Map<String, Value> = check_all(a.dependencies())
        .await
        .into_iter()
        .map(|(d, up)| (d.name, json!({"status": if up { "UP" } else { "DOWN" }})))
        .collect();
    if a.inner.healthy.load(Ordering::SeqCst) {
        (
            StatusCode::OK,
            Json(json!({"status": "UP", "components": components})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "DOWN", "components": components})),
        )
    }
}

/// Ready: started, not draining, not marked down, and every dependency it
/// needs to serve requests (its database) answers; the body names what is
/// missing, and, ready or not, a dependency it can do without that does
/// not answer (`degraded`: the broker).
#[utoipa::path(
    get,
    path = "/actuator/ready",
    tag = "actuator",
    summary = "Readiness: started, not draining, not marked down, and its database answers",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready", body = Readiness),
    )
)]
async fn ready(State(a): State<Actuator>) -> (StatusCode, Json<Value>) {
    let (mut unreachable, mut degraded) = (Vec::new(), Vec::new());
    for (dependency, up) in check_all(a.dependencies()).await {
        match (up, dependency.needed_to_serve) {
            (true, _) => {}
            (false, true) => unreachable.push(dependency.name),
            (false, false) => degraded.push(dependency.name),
        }
    }
    let mut body =
        if a.is_ready() && a.inner.healthy.load(Ordering::SeqCst) && unreachable.is_empty() {
            json!({"status": "UP"})
        } else {
            json!({"status": "OUT_OF_SERVICE", "unreachable": unreachable})
        };
    if !degraded.is_empty() {
        body["degraded"] = json!(degraded);
    }
    let status = if body["status"] == "UP" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Which replica answered: its service and a random id, enough to tell
/// replicas apart in a drill; not its host name, which tells a stranger
/// about the inside.
#[utoipa::path(
    get,
    path = "/actuator/echo",
    tag = "actuator",
    summary = "Which process answered",
    responses((status = 200, description = "This process", body = Echo))
)]
async fn echo(State(a): State<Actuator>) -> Json<Echo> {
    Json(Echo {
        service: a.inner.service.clone(),
        instance_id: a.inner.instance_id.clone(),
    })
}

#[utoipa::path(
    put,
    path = "/actuator/down",
    tag = "actuator",
    summary = "Mark this process down, for failover drills (an admin, or the management listener without a token)",
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "Marked down", body = Marked), crate::openapi::Forbidden)
)]
async fn down(State(a): State<Actuator>) -> Json<Value> {
    a.inner.healthy.store(false, Ordering::SeqCst);
    Json(json!({"status": "DOWN"}))
}

#[utoipa::path(
    put,
    path = "/actuator/up",
    tag = "actuator",
    summary = "Mark this process up again (an admin, or the management listener without a token)",
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "Marked up", body = Marked), crate::openapi::Forbidden)
)]
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

    #[tokio::test]
    async fn the_probes_change_nothing_and_echo_names_no_host() {
        let a = Actuator::new("test");
        a.set_ready(true);
        let (status, body) = probe(&a, "/actuator/echo").await;
        assert_eq!(status, StatusCode::OK);
        let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["instanceId", "service"], "{body}");
        let put = Request::put("/actuator/down")
            .body(Body::empty())
            .expect("request");
        let resp = a.router().oneshot(put).await.expect("answer");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(probe(&a, "/actuator/health").await.0, StatusCode::OK);
        let put = Request::put("/actuator/down")
            .body(Body::empty())
            .expect("request");
        let resp = a.operations().oneshot(put).await.expect("answer");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            probe(&a, "/actuator/health").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn a_broker_outage_shows_in_health_and_leaves_readiness_alone() {
        let a = Actuator::new("test");
        a.set_ready(true);
        a.reports("broker", Arc::new(|| Box::pin(async { false })));
        let (status, body) = probe(&a, "/actuator/ready").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["degraded"], json!(["broker"]), "named, still ready");
        let (status, body) = probe(&a, "/actuator/health").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["components"]["broker"]["status"], "DOWN");
        // A database that hangs rather than refuses costs one deadline.
        a.depends_on("database", Arc::new(|| Box::pin(std::future::pending())));
        let started = std::time::Instant::now();
        let (status, body) = probe(&a, "/actuator/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["unreachable"], json!(["database"]));
        assert!(
            started.elapsed() < CHECK_DEADLINE * 2,
            "{:?}",
            started.elapsed()
        );
    }
}
