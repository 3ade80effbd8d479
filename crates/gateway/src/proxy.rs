//! The gateway of the distributed shape: routes the seed's paths to the
//! service that owns them, balances across a service's replicas, takes a
//! replica out while its health check fails or after consecutive errors
//! (outlier detection, like the seed's Istio DestinationRule) and brings it
//! back later, and retries a request that is safe to repeat on another
//! replica.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::TryStreamExt;
use platform::ApiError;

/// Which service owns a path.
pub fn service_for(path: &str) -> Option<&'static str> {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    Some(match first {
        "auth" => "identity",
        "orders" => "order",
        "payments" => "payment",
        "stores" | "menus" | "storeOrders" => "store",
        "deliveries" => "delivery",
        "statusChecks" => "status",
        "notifications" => "notification",
        "admin" => {
            // /admin/deadLetters/{consumer}
            return match path.split('/').nth(3) {
                Some("order") => Some("order"),
                Some("payment") => Some("payment"),
                Some("store") => Some("store"),
                Some("delivery") => Some("delivery"),
                Some("status") => Some("status"),
                Some("notification") => Some("notification"),
                _ => None,
            };
        }
        _ => return None,
    })
}

/// `/{service}/actuator/...` reaches a replica's own actuator, as the seed
/// reached `http://delivery:8080/actuator/echo`.
fn actuator_route(path: &str) -> Option<(&'static str, String)> {
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let service = parts.next()?;
    if parts.next()? != "actuator" {
        return None;
    }
    let rest = parts.next().unwrap_or("");
    let service = SERVICES.iter().find(|s| **s == service)?;
    Some((service, format!("/actuator/{rest}")))
}

pub const SERVICES: [&str; 7] = [
    "identity",
    "order",
    "payment",
    "store",
    "delivery",
    "status",
    "notification",
];

#[derive(Debug, Clone)]
pub struct OutlierConfig {
    /// Consecutive failures (5xx or no connection) that eject a replica.
    pub consecutive_errors: u32,
    /// How long an ejected replica gets no traffic.
    pub ejection_time: Duration,
    /// Share of a service's replicas that may be ejected at once, in percent.
    pub max_ejection_percent: u32,
    /// How often each replica's `/actuator/ready` is checked (not ready:
    /// marked down, draining for a restart, or its database or broker gone).
    pub health_interval: Duration,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_errors: 3,
            ejection_time: Duration::from_secs(10),
            max_ejection_percent: 100,
            health_interval: Duration::from_millis(500),
        }
    }
}

#[derive(Debug)]
struct Replica {
    url: String,
    healthy: AtomicBool,
    failures: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
}

impl Replica {
    fn ejected(&self) -> bool {
        let until = self.ejected_until.lock().unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|t| Instant::now() < t)
    }
}

#[derive(Debug)]
struct Pool {
    service: &'static str,
    replicas: Vec<Replica>,
    next: AtomicUsize,
}

impl Pool {
    /// Round robin over replicas in service; if none is, over all of them
    /// (better a try than a certain failure).
    fn pick(&self, tried: &[usize]) -> Option<usize> {
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let candidates = (0..n)
            .map(|k| (start + k) % n)
            .filter(|i| !tried.contains(i));
        let mut fallback = None;
        for i in candidates {
            let r = &self.replicas[i];
            if r.healthy.load(Ordering::Relaxed) && !r.ejected() {
                return Some(i);
            }
            fallback.get_or_insert(i);
        }
        fallback
    }

    fn report(&self, i: usize, ok: bool, config: &OutlierConfig) {
        let r = &self.replicas[i];
        if ok {
            r.failures.store(0, Ordering::Relaxed);
            return;
        }
        let failures = r.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < config.consecutive_errors {
            return;
        }
        let ejected = self.replicas.iter().filter(|r| r.ejected()).count();
        let cap = (self.replicas.len() as u32 * config.max_ejection_percent / 100) as usize;
        if ejected < cap.max(1) {
            tracing::warn!(service = self.service, replica = %r.url, "replica ejected");
            *r.ejected_until.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Instant::now() + config.ejection_time);
            r.failures.store(0, Ordering::Relaxed);
        }
    }
}

#[derive(Clone)]
pub struct Proxy {
    pools: Arc<Vec<Pool>>,
    http: reqwest::Client,
    config: OutlierConfig,
}

impl Proxy {
    /// `upstreams`: (service, replica base URLs).
    pub fn new(upstreams: Vec<(&'static str, Vec<String>)>, config: OutlierConfig) -> Proxy {
        let pools = upstreams
            .into_iter()
            .map(|(service, urls)| Pool {
                service,
                replicas: urls
                    .into_iter()
                    .map(|url| Replica {
                        url: url.trim_end_matches('/').to_string(),
                        healthy: AtomicBool::new(true),
                        failures: AtomicU32::new(0),
                        ejected_until: Mutex::new(None),
                    })
                    .collect(),
                next: AtomicUsize::new(0),
            })
            .collect();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(300))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Proxy {
            pools: Arc::new(pools),
            http,
            config,
        }
    }

    fn pool(&self, service: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.service == service)
    }

    /// Checks every replica's health until the process ends.
    pub fn spawn_health_checks(&self) -> tokio::task::JoinHandle<()> {
        let proxy = self.clone();
        tokio::spawn(async move {
            loop {
                for pool in proxy.pools.iter() {
                    for r in &pool.replicas {
                        let up = proxy
                            .http
                            .get(format!("{}/actuator/ready", r.url))
                            .timeout(Duration::from_millis(500))
                            .send()
                            .await
                            .is_ok_and(|resp| resp.status().is_success());
                        if r.healthy.swap(up, Ordering::Relaxed) != up {
                            tracing::info!(service = pool.service, replica = %r.url, up, "replica health changed");
                        }
                    }
                }
                tokio::time::sleep(proxy.config.health_interval).await;
            }
        })
    }

    /// The routes the gateway forwards; mount beside the web UI.
    pub fn router(&self) -> Router {
        Router::new().fallback(forward).with_state(self.clone())
    }
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != "host" && name != "content-length" {
            to.append(name.clone(), value.clone());
        }
    }
}

async fn forward(State(proxy): State<Proxy>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let (service, upstream_path) = match actuator_route(&path) {
        Some((service, rest)) => (service, rest),
        None => match service_for(&path) {
            Some(service) => (service, path.clone()),
            None => return ApiError::not_found("no such resource").into_response(),
        },
    };
    let Some(pool) = proxy.pool(service) else {
        return ApiError::unavailable(format!("no replicas of {service} are configured"))
            .into_response();
    };
    let (parts, body) = req.into_parts();
    let body = match to_bytes(body, platform::idempotency::BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Payload too large",
                "request body too large",
            )
            .into_response()
        }
    };
    // Safe to send again: reads, and writes that carry an Idempotency-Key.
    let read = matches!(parts.method, Method::GET | Method::HEAD);
    let repeatable = read || parts.headers.contains_key(platform::idempotency::HEADER);
    // Each replica twice and one more: during a rolling restart a pick may
    // be the replica going away, or a fresh process reached through a pooled
    // connection that went stale; a short, growing pause lets it come up.
    let attempts = if repeatable {
        (2 * pool.replicas.len() + 1).min(5)
    } else {
        1
    };
    let mut tried = Vec::new();
    // What each attempt met, for the 502's detail.
    let mut failures: Vec<String> = Vec::new();
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(25 * attempt as u64)).await;
        }
        let Some(i) = pool.pick(&tried).or_else(|| pool.pick(&[])) else {
            break;
        };
        tried.push(i);
        let url = format!("{}{}{}", pool.replicas[i].url, upstream_path, query);
        let mut headers = HeaderMap::new();
        copy_headers(&parts.headers, &mut headers);
        let sent = proxy
            .http
            .request(parts.method.clone(), &url)
            .headers(headers)
            .body(body.clone())
            .send()
            .await;
        match sent {
            // A write that got an answer is not sent again, even a 5xx:
            // the service did its part (e.g. recorded a failed payment),
            // and the key of a failed write is free, so another attempt
            // would be a second write. Only a write that never arrived
            // (below) goes to another replica.
            Ok(resp) if resp.status().is_server_error() && read && attempt + 1 < attempts => {
                pool.report(i, false, &proxy.config);
                failures.push(format!(
                    "{} answered {}",
                    pool.replicas[i].url,
                    resp.status()
                ));
            }
            Ok(resp) => {
                pool.report(i, !resp.status().is_server_error(), &proxy.config);
                let mut out = Response::builder().status(resp.status());
                if let Some(h) = out.headers_mut() {
                    copy_headers(resp.headers(), h);
                    h.insert(
                        HeaderName::from_static("x-upstream"),
                        axum::http::HeaderValue::from_static(service),
                    );
                }
                let stream = resp.bytes_stream().map_err(std::io::Error::other);
                return out
                    .body(Body::from_stream(stream))
                    .unwrap_or_else(|e| ApiError::internal(e.to_string()).into_response());
            }
            Err(e) => {
                // Unreachable: out of rotation until its readiness check
                // answers again.
                pool.replicas[i].healthy.store(false, Ordering::Relaxed);
                pool.report(i, false, &proxy.config);
                let mut cause = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(inner) = source {
                    cause.push_str(&format!(": {inner}"));
                    source = inner.source();
                }
                failures.push(format!("{} unreachable: {cause}", pool.replicas[i].url));
            }
        }
    }
    let detail = if failures.is_empty() {
        format!("no replica of {service} answered")
    } else {
        format!("{service}: {}", failures.join("; "))
    };
    ApiError::new(StatusCode::BAD_GATEWAY, "Bad gateway", detail).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_paths_go_to_their_services() {
        assert_eq!(service_for("/orders/1/cancel"), Some("order"));
        assert_eq!(service_for("/menus"), Some("store"));
        assert_eq!(service_for("/storeOrders/3/accept"), Some("store"));
        assert_eq!(service_for("/deliveries"), Some("delivery"));
        assert_eq!(service_for("/statusChecks/1"), Some("status"));
        assert_eq!(service_for("/notifications/stream"), Some("notification"));
        assert_eq!(service_for("/auth/login"), Some("identity"));
        assert_eq!(service_for("/admin/deadLetters/payment"), Some("payment"));
        assert_eq!(service_for("/app.js"), None);
        assert_eq!(
            actuator_route("/delivery/actuator/echo"),
            Some(("delivery", "/actuator/echo".into()))
        );
        assert_eq!(actuator_route("/delivery/echo"), None);
    }

    #[test]
    fn an_ejected_or_unhealthy_replica_gets_no_traffic_until_all_are_out() {
        let proxy = Proxy::new(
            vec![(
                "delivery",
                vec!["http://a".into(), "http://b".into(), "http://c".into()],
            )],
            OutlierConfig {
                consecutive_errors: 2,
                ..OutlierConfig::default()
            },
        );
        let pool = proxy.pool("delivery").expect("pool");
        pool.replicas[1].healthy.store(false, Ordering::Relaxed);
        pool.report(2, false, &proxy.config);
        pool.report(2, false, &proxy.config);
        for _ in 0..30 {
            assert_eq!(pool.pick(&[]), Some(0));
        }
        // With every replica out, the gateway still tries one.
        pool.replicas[0].healthy.store(false, Ordering::Relaxed);
        assert!(pool.pick(&[]).is_some());
    }
}
