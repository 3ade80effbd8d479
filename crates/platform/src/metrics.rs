//! `/metrics` in Prometheus text format: request counts and latencies per
//! route, and gauges read when scraped (outbox backlog, consumer lag,
//! circuit breaker state).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::future::BoxFuture;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::openapi::Common;

/// A gauge read at scrape time.
pub type Probe = Arc<dyn Fn() -> BoxFuture<'static, i64> + Send + Sync>;

#[derive(Clone, Copy, Debug)]
pub enum Gauge {
    /// Events written but not yet published, by service.
    OutboxBacklog,
    /// Events published but not yet handled, by consumer.
    ConsumerLag,
    /// 0 closed, 1 open, 2 half-open, by peer.
    CircuitState,
    /// 1 while connected to the broker, 0 while not, by broker.
    BrokerConnected,
    /// Events of a partition not yet handled, by consumer and partition
    /// (Kafka; the partitions are the topic's, so the set is bounded).
    ConsumerPartitionLag,
}

/// How long one gauge may take to read: a scrape must answer even while a
/// gauge's source (the broker) hangs; such a gauge reads -1.
const PROBE_DEADLINE: Duration = Duration::from_millis(500);

struct Inner {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    gauges: [IntGaugeVec; 5],
    probes: Mutex<Vec<(Gauge, Vec<String>, Probe)>>,
}

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Metrics {
    pub fn new(service: &str) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(
            Some("hanwha".into()),
            Some([("service".to_string(), service.to_string())].into()),
        )?;
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["method", "route"],
        )?;
        let gauges = [
            IntGaugeVec::new(
                Opts::new("outbox_backlog", "events written but not yet published"),
                &["outbox"],
            )?,
            IntGaugeVec::new(
                Opts::new("consumer_lag", "events published but not yet handled"),
                &["consumer"],
            )?,
            IntGaugeVec::new(
                Opts::new(
                    "circuit_state",
                    "circuit breaker: 0 closed, 1 open, 2 half-open",
                ),
                &["peer"],
            )?,
            IntGaugeVec::new(
                Opts::new(
                    "broker_connected",
                    "1 while connected to the event broker, 0 while not",
                ),
                &["broker"],
            )?,
            IntGaugeVec::new(
                Opts::new(
                    "consumer_partition_lag",
                    "events of a partition published but not yet handled",
                ),
                &["consumer", "partition"],
            )?,
        ];
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        for g in &gauges {
            registry.register(Box::new(g.clone()))?;
        }
        Ok(Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                latency,
                gauges,
                probes: Mutex::new(Vec::new()),
            }),
        })
    }

    pub fn probe(&self, gauge: Gauge, label: &str, probe: Probe) {
        self.probe_labelled(gauge, &[label], probe);
    }

    /// A gauge with more than one label, in the order the gauge names them.
    pub fn probe_labelled(&self, gauge: Gauge, labels: &[&str], probe: Probe) {
        self.inner
            .probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((gauge, labels.iter().map(|l| l.to_string()).collect(), probe));
    }

    pub async fn render(&self) -> String {
        let probes: Vec<(Gauge, Vec<String>, Probe)> = self
            .inner
            .probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let values = futures::future::join_all(probes.iter().map(|(_, _, probe)| async {
            tokio::time::timeout(PROBE_DEADLINE, probe())
                .await
                .unwrap_or(-1)
        }))
        .await;
        for ((gauge, labels, _), value) in probes.iter().zip(values) {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            self.inner.gauges[*gauge as usize]
                .with_label_values(&labels)
                .set(value);
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.inner.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/metrics", get(scrape))
            .with_state(self.clone())
    }
}

/// `/metrics`, as `/openapi.json` describes it.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(scrape),
    modifiers(&Common),
    tags((name = "metrics", description = "Prometheus metrics"))
)]
pub struct MetricsApi;

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "metrics",
    summary = "Request counts and latencies per route, outbox backlog, consumer lag, circuit states (an admin, or the management listener without a token)",
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"), crate::openapi::Forbidden)
)]
async fn scrape(State(m): State<Metrics>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render().await,
    )
        .into_response()
}

/// The method as a label: a client may send any token as a method, and
/// each new label value is a new series kept for the process's life, so
/// only the standard ones are named.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Middleware: counts and times every request by its route template.
pub async fn track(State(m): State<Metrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    m.inner
        .requests
        .with_label_values(&[method, route.as_str(), status.as_str()])
        .inc();
    m.inner
        .latency
        .with_label_values(&[method, route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod method_label_tests {
    use super::method_label;
    use axum::http::Method;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        for m in ["FOO", "BREW", "X-RANDOM-123"] {
            let method = Method::from_bytes(m.as_bytes()).expect("a token");
            assert_eq!(method_label(&method), "OTHER");
        }
    }
}

#[cfg(test)]
mod route_label_tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt;

    #[tokio::test]
    async fn routes_are_labelled_by_template_and_unmatched_paths_share_one_label() {
        let m = Metrics::new("test").expect("metrics");
        let app = Router::new()
            .route("/orders/{id}", get(|| async { "ok" }))
            .fallback(|| async { StatusCode::NOT_FOUND })
            .layer(axum::middleware::from_fn_with_state(m.clone(), track));
        for path in [
            "/orders/1",
            "/orders/2?access_token=x",
            "/no/such/1",
            "/no/such/2",
            "/random-8c1f",
            "/%2e%2e/secret",
        ] {
            let req = axum::http::Request::get(path)
                .body(Body::empty())
                .expect("request");
            app.clone().oneshot(req).await.expect("answer");
        }
        let text = m.render().await;
        let mut routes: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("hanwha_http_requests_total{"))
            .filter_map(|l| l.split("route=\"").nth(1)?.split('"').next())
            .collect();
        routes.sort_unstable();
        routes.dedup();
        assert_eq!(routes, ["/orders/{id}", "unmatched"], "{text}");
    }
}
