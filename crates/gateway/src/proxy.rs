//! The gateway of the distributed shape: routes the seed's paths to the
//! service that owns them, balances across a service's replicas, takes a
//! replica out while its health check fails or after consecutive failures
//! (outlier detection, like the seed's Istio DestinationRule) and brings it
//! back when its health check passes again, and bounds what a slow or
//! frozen replica costs a caller: a deadline per attempt and one for the
//! whole request, with reads resent to another replica when one is slow
//! (as Envoy's per-try timeout does).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::{Stream, StreamExt};
use platform::service::ServiceDescription;
use platform::ApiError;
use tokio::time::{timeout, timeout_at, Instant, MissedTickBehavior};

/// Which service owns which paths, and the names the gateway knows:
/// built from the services' descriptions (crate `services`), so the table
/// cannot drift from the services.
#[derive(Debug, Clone, Default)]
pub struct Routes(Arc<Vec<(&'static str, Vec<String>)>>);

impl Routes {
    pub fn of(services: &[&ServiceDescription]) -> Routes {
        Routes::new(
            services
                .iter()
                .map(|s| (s.name, s.gateway_prefixes()))
                .collect(),
        )
    }

    /// (service, the path prefixes it owns).
    pub fn new(table: Vec<(&'static str, Vec<String>)>) -> Routes {
        Routes(Arc::new(table))
    }

    /// The service that owns a path: a prefix that is the whole path or is
    /// followed by `/`.
    pub fn owner(&self, path: &str) -> Option<&'static str> {
        let owns = |prefix: &String| {
            path.strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        self.0
            .iter()
            .find(|(_, prefixes)| prefixes.iter().any(owns))
            .map(|(service, _)| *service)
    }

    fn named(&self, name: &str) -> Option<&'static str> {
        self.0.iter().map(|(s, _)| *s).find(|s| *s == name)
    }

    /// `GET /{service}/actuator/{health|ready|echo}` reaches a replica's own
    /// probe, as the seed reached `http://delivery:8080/actuator/echo`.
    /// Nothing else of a replica's actuator: marking it down or up is for
    /// operators, on its management port or with an admin's token, never
    /// through the public front door.
    fn actuator(&self, method: &Method, path: &str) -> Option<(&'static str, String)> {
        let mut parts = path.trim_start_matches('/').splitn(3, '/');
        let service = parts.next()?;
        if parts.next()? != "actuator" {
            return None;
        }
        let probe = parts.next().unwrap_or("");
        if !matches!(*method, Method::GET | Method::HEAD)
            || !matches!(probe, "health" | "ready" | "echo")
        {
            return None;
        }
        Some((self.named(service)?, format!("/actuator/{probe}")))
    }
}

/// `/{service}/actuator/...` that `Routes::actuator` does not route.
fn is_actuator(path: &str) -> bool {
    path.trim_start_matches('/').split('/').nth(1) == Some("actuator")
}

#[derive(Debug, Clone)]
pub struct OutlierConfig {
    /// Consecutive failures that eject a replica: no connection, no answer
    /// within its deadline, or a 5xx of its own (not one it relays from a
    /// dependency of its own, which says nothing about the replica).
    pub consecutive_errors: u32,
    /// How long an ejected replica gets no traffic, unless its health check
    /// fails and then passes again first.
    pub ejection_time: Duration,
    /// Share of a service's replicas that may be ejected at once, in percent.
    pub max_ejection_percent: u32,
    /// How often each replica's `/actuator/ready` is checked (not ready:
    /// marked down, draining for a restart, or its database gone).
    pub health_interval: Duration,
    /// How long one health check waits: a replica that does not answer in
    /// this time is out of rotation until it does.
    pub health_timeout: Duration,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_errors: 3,
            ejection_time: Duration::from_secs(10),
            max_ejection_percent: 100,
            health_interval: Duration::from_millis(500),
            health_timeout: Duration::from_millis(400),
        }
    }
}

/// How long the gateway waits, and for what. A frozen process (stopped,
/// swapped out, a stalled VM) still accepts connections and requests (its
/// kernel does) but never answers; only these deadlines bound what it costs
/// a caller.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// Opening a connection to a replica.
    pub connect: Duration,
    /// One attempt of a request safe to resend (GET, HEAD): how long to wait
    /// for the answer's headers before trying another replica.
    pub try_read: Duration,
    /// How long a write waits for the answer's headers. A write that reached
    /// a replica is never resent (it may be taking effect), so a stalled
    /// replica costs a write this long, then 504.
    pub write: Duration,
    /// The whole request, resends and the answer's body included. An event
    /// stream (SSE) is exempt once its headers arrived: it is meant to stay
    /// open.
    pub overall: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_millis(300),
            try_read: Duration::from_secs(2),
            // Above the slowest write a healthy fleet answers (an order waits
            // for the store's menu and for Payment, each under a second).
            write: Duration::from_secs(5),
            overall: Duration::from_secs(10),
        }
    }
}

#[derive(Debug)]
struct Replica {
    url: String,
    /// `host:port`, how logs name the replica: never its URL, which may
    /// carry credentials.
    addr: String,
    healthy: AtomicBool,
    failures: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
}

impl Replica {
    fn new(url: &str) -> Replica {
        let url = url.trim_end_matches('/').to_string();
        let addr = reqwest::Url::parse(&url)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_string();
                Some(match u.port_or_known_default() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            })
            .unwrap_or_else(|| "(unparsable upstream URL)".to_string());
        Replica {
            url,
            addr,
            healthy: AtomicBool::new(true),
            failures: AtomicU32::new(0),
            ejected_until: Mutex::new(None),
        }
    }

    fn ejected(&self) -> bool {
        let until = self.ejected_until.lock().unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|t| Instant::now() < t)
    }

    /// Back in rotation: its health check failed and passes again, so
    /// whatever ejected it (a freeze, a restart) is over.
    fn reinstate(&self) {
        *self.ejected_until.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.failures.store(0, Ordering::Relaxed);
    }
}

/// What an attempt says about the replica that got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// It answered (below 500).
    Answered,
    /// It answered 5xx because a service it depends on is unavailable (the
    /// problem names the dependency): the replica itself is fine.
    Relayed,
    /// No connection, no answer in time, or a 5xx of its own.
    Failed,
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

    fn report(&self, i: usize, outcome: Outcome, config: &OutlierConfig) {
        let r = &self.replicas[i];
        match outcome {
            Outcome::Answered => {
                r.failures.store(0, Ordering::Relaxed);
                return;
            }
            Outcome::Relayed => return,
            Outcome::Failed => {}
        }
        let failures = r.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < config.consecutive_errors {
            return;
        }
        let ejected = self.replicas.iter().filter(|r| r.ejected()).count();
        let cap = (self.replicas.len() as u32 * config.max_ejection_percent / 100) as usize;
        if ejected < cap.max(1) {
            tracing::warn!(service = self.service, replica = %r.addr, failures, "replica ejected");
            *r.ejected_until.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Instant::now() + config.ejection_time);
            r.failures.store(0, Ordering::Relaxed);
        }
    }
}

#[derive(Clone)]
pub struct Proxy {
    routes: Routes,
    pools: Arc<Vec<Pool>>,
    http: reqwest::Client,
    config: OutlierConfig,
    timeouts: Timeouts,
}

impl Proxy {
    /// `upstreams`: (service, replica base URLs).
    pub fn new(
        routes: Routes,
        upstreams: Vec<(&'static str, Vec<String>)>,
        config: OutlierConfig,
        timeouts: Timeouts,
    ) -> Proxy {
        let pools = upstreams
            .into_iter()
            .map(|(service, urls)| Pool {
                service,
                replicas: urls.iter().map(|url| Replica::new(url)).collect(),
                next: AtomicUsize::new(0),
            })
            .collect();
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            // Below the services' header timeout (10 s by default), which also
            // ends a keep-alive connection waiting for its next request: a
            // pooled connection is dropped here before a service closes it.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Proxy {
            routes,
            pools: Arc::new(pools),
            http,
            config,
            timeouts,
        }
    }

    fn pool(&self, service: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.service == service)
    }

    /// Checks every replica's health until the process ends. Each replica
    /// has its own loop, so a replica that does not answer delays no other
    /// replica's check: a frozen one is out within an interval and a
    /// timeout, a recovered one back within an interval.
    pub fn spawn_health_checks(&self) -> tokio::task::JoinHandle<()> {
        let proxy = self.clone();
        tokio::spawn(async move {
            let watches = proxy
                .pools
                .iter()
                .flat_map(|pool| pool.replicas.iter().map(move |r| (pool.service, r)))
                .map(|(service, replica)| proxy.watch(service, replica));
            futures::future::join_all(watches).await;
        })
    }

    async fn watch(&self, service: &'static str, r: &Replica) {
        let mut every = tokio::time::interval(self.config.health_interval);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let ready = format!("{}/actuator/ready", r.url);
        loop {
            every.tick().await;
            let up = matches!(
                timeout(self.config.health_timeout, self.http.get(&ready).send()).await,
                Ok(Ok(resp)) if resp.status().is_success()
            );
            if r.healthy.swap(up, Ordering::Relaxed) != up {
                if up {
                    r.reinstate();
                }
                tracing::info!(service, replica = %r.addr, up, "replica health changed");
            }
        }
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

/// `X-Forwarded-For` as the gateway saw the client: its own peer address,
/// replacing whatever the client sent, so that a service throttling by
/// address (logins) sees the client, and a client cannot pose as another
/// address through the gateway.
fn forwarded_for(extensions: &axum::http::Extensions, headers: &mut HeaderMap) {
    headers.remove(FORWARDED_FOR);
    let peer = extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
    if let Some(Ok(ip)) = peer.map(|p| HeaderValue::from_str(&p.0.ip().to_string())) {
        headers.insert(FORWARDED_FOR, ip);
    }
}

const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// What one attempt met, for the log line of a request that failed.
enum Met {
    TimedOut(Duration),
    Unreachable(String),
    Answered(StatusCode),
}

impl Met {
    fn describe(&self, replica: &Replica) -> String {
        let addr = &replica.addr;
        match self {
            Met::TimedOut(wait) => format!("{addr} gave no answer within {} ms", wait.as_millis()),
            Met::Unreachable(cause) => format!("{addr} unreachable: {cause}"),
            Met::Answered(status) => format!("{addr} answered {status}"),
        }
    }
}

/// Why a request could not be sent, without the URL reqwest would print:
/// a query string may carry a token (the SSE stream's `access_token`).
fn cause(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        cause.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    cause
}

/// A problem answered by the gateway itself. The caller logs it, once,
/// with what each attempt met; the body says only what a client can act on.
fn problem(status: StatusCode, title: &'static str, detail: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        ApiError::new(status, title, detail).body().to_string(),
    )
        .into_response()
}

/// Reads a 5xx answer's body, which is small (a problem), up to the
/// platform's body limit.
async fn small_body(mut resp: reqwest::Response) -> Option<Bytes> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.ok()? {
        if out.len() + chunk.len() > platform::idempotency::BODY_LIMIT {
            return None;
        }
        out.extend_from_slice(&chunk);
    }
    Some(out.into())
}

/// The dependency a 5xx problem says it relays (`"dependency": "payment"`).
fn relayed_dependency(body: &[u8]) -> Option<String> {
    let problem: serde_json::Value = serde_json::from_slice(body).ok()?;
    problem
        .get(platform::problem::DEPENDENCY)?
        .as_str()
        .map(str::to_string)
}

/// The answer's body, ended with an error if it still flows at the
/// deadline: the client then sees an aborted answer, never a cut one that
/// looks whole.
fn until_deadline(
    body: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    deadline: Instant,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let state = Some((Box::pin(body), Box::pin(tokio::time::sleep_until(deadline))));
    futures::stream::unfold(state, |state| async move {
        let (mut body, mut expiry) = state?;
        tokio::select! {
            item = body.next() => {
                let item = item?.map_err(std::io::Error::other);
                Some((item, Some((body, expiry))))
            }
            () = &mut expiry => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the answer outlasted the gateway's deadline",
                )),
                None,
            )),
        }
    })
}

fn upstream_header(headers: &mut HeaderMap, service: &'static str) {
    headers.insert(
        HeaderName::from_static("x-upstream"),
        HeaderValue::from_static(service),
    );
}

/// Passes an answer on as it streams in.
fn pass_on(resp: reqwest::Response, service: &'static str, deadline: Instant) -> Response {
    let sse = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut out = Response::new(Body::empty());
    *out.status_mut() = resp.status();
    copy_headers(resp.headers(), out.headers_mut());
    upstream_header(out.headers_mut(), service);
    let stream = resp.bytes_stream();
    *out.body_mut() = if sse {
        Body::from_stream(stream.map(|item| item.map_err(std::io::Error::other)))
    } else {
        Body::from_stream(until_deadline(stream, deadline))
    };
    out
}

/// The request as the gateway forwards it.
struct Forwarded {
    service: &'static str,
    method: Method,
    /// The path alone, for logs (the query may carry a token).
    path: String,
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
    /// GET or HEAD: safe to send again, even to another replica.
    read: bool,
    /// A write with an Idempotency-Key: safe to send again while it never
    /// reached a replica.
    keyed: bool,
}

async fn forward(State(proxy): State<Proxy>, req: Request) -> Response {
    let started = Instant::now();
    let deadline = started + proxy.timeouts.overall;
    let path = req.uri().path().to_string();
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let (service, upstream_path) = match proxy.routes.actuator(req.method(), &path) {
        Some((service, rest)) => (service, rest),
        None if is_actuator(&path) => {
            return ApiError::not_found("no such resource").into_response()
        }
        None => match proxy.routes.owner(&path) {
            Some(service) => (service, path.clone()),
            None => return ApiError::not_found("no such resource").into_response(),
        },
    };
    let Some(pool) = proxy.pool(service) else {
        return ApiError::unavailable(format!("no replicas of {service} are configured"))
            .into_response();
    };
    let (parts, body) = req.into_parts();
    let body = match timeout_at(deadline, to_bytes(body, platform::idempotency::BODY_LIMIT)).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return platform::problem::unreadable_body(&e).into_response(),
        Err(_) => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "Request timeout",
                "the request body did not arrive in time",
            )
            .into_response()
        }
    };
    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers);
    forwarded_for(&parts.extensions, &mut headers);
    let read = matches!(parts.method, Method::GET | Method::HEAD);
    let request = Forwarded {
        service,
        keyed: !read && parts.headers.contains_key(platform::idempotency::HEADER),
        read,
        method: parts.method,
        path: upstream_path.clone(),
        path_and_query: format!("{upstream_path}{query}"),
        headers,
        body,
    };
    let (response, met) = exchange(&proxy, pool, &request, deadline).await;
    let status = response.status();
    if status.is_server_error() {
        let attempts: Vec<String> = met
            .iter()
            .map(|(i, m)| m.describe(&pool.replicas[*i]))
            .collect();
        let attempts = attempts.join("; ");
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let (method, path) = (&request.method, &request.path);
        if response.headers().contains_key("x-upstream") {
            // The service's own answer, which it logged with its cause.
            tracing::warn!(service, %method, %path, status = status.as_u16(), elapsed_ms, %attempts, "passed on a 5xx");
        } else {
            tracing::error!(service, %method, %path, status = status.as_u16(), elapsed_ms, %attempts, "gateway answered {status}");
        }
    }
    response
}

/// What one attempt at one replica came to.
enum Attempt {
    /// An answer to pass on to the client.
    Answered(Response),
    /// Worth asking again (another replica, or this one after a pause).
    Retry,
    /// Asking again could make the write take effect twice.
    Stop,
}

/// Sends the request to one replica after another until one answers, a
/// resend would not be safe, or time is up. Returns the answer and what
/// each attempt met.
async fn exchange(
    proxy: &Proxy,
    pool: &Pool,
    req: &Forwarded,
    deadline: Instant,
) -> (Response, Vec<(usize, Met)>) {
    let per_try = if req.read {
        proxy.timeouts.try_read
    } else {
        proxy.timeouts.write
    };
    // Each replica twice and one more: during a rolling restart a pick may
    // be the replica going away, or a fresh process reached through a pooled
    // connection that went stale; a short, growing pause lets it come up.
    let attempts = if req.read || req.keyed {
        (2 * pool.replicas.len() + 1).min(5)
    } else {
        1
    };
    let mut tried = Vec::new();
    let mut met: Vec<(usize, Met)> = Vec::new();
    for attempt in 0..attempts {
        if attempt > 0 {
            let pause = Duration::from_millis(25 * attempt as u64);
            if Instant::now() + pause >= deadline {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        // After a timeout only a replica not tried yet: one that stalled will
        // not answer sooner for being asked again. After a refused
        // connection the same one may do: a restarting replica is back soon.
        let stalled = matches!(met.last(), Some((_, Met::TimedOut(_))));
        let pick = if stalled {
            pool.pick(&tried)
        } else {
            pool.pick(&tried).or_else(|| pool.pick(&[]))
        };
        let Some(i) = pick else { break };
        let wait = per_try.min(deadline.saturating_duration_since(Instant::now()));
        if wait.is_zero() {
            break;
        }
        tried.push(i);
        let turn = Turn {
            replica: i,
            wait,
            deadline,
            last: attempt + 1 == attempts,
        };
        match try_replica(proxy, pool, req, &turn, &mut met).await {
            Attempt::Answered(response) => return (response, met),
            Attempt::Retry => {}
            Attempt::Stop => break,
        }
    }
    (no_answer(req, &met, per_try), met)
}

/// One replica's turn at a request.
struct Turn {
    replica: usize,
    /// How long this try may take.
    wait: Duration,
    /// When the whole request must be answered.
    deadline: Instant,
    /// No other try follows.
    last: bool,
}

/// Sends the request to the turn's replica and judges what came back,
/// noting it in `met` and in the replica's health.
async fn try_replica(
    proxy: &Proxy,
    pool: &Pool,
    req: &Forwarded,
    turn: &Turn,
    met: &mut Vec<(usize, Met)>,
) -> Attempt {
    let (i, wait) = (turn.replica, turn.wait);
    let send = proxy
        .http
        .request(
            req.method.clone(),
            format!("{}{}", pool.replicas[i].url, req.path_and_query),
        )
        .headers(req.headers.clone())
        .body(req.body.clone())
        .send();
    match timeout(wait, send).await {
        Err(_) => {
            pool.report(i, Outcome::Failed, &proxy.config);
            met.push((i, Met::TimedOut(wait)));
            if req.read {
                Attempt::Retry
            } else {
                // It reached the replica and may be taking effect there;
                // sent again it could take effect twice.
                Attempt::Stop
            }
        }
        Ok(Err(e)) => {
            // No answer at all: out of rotation until its readiness
            // check answers again. A keyed write met a refused or broken
            // connection, not a replica at work on it; should it have
            // arrived after all, its key makes the resend harmless.
            pool.replicas[i].healthy.store(false, Ordering::Relaxed);
            pool.report(i, Outcome::Failed, &proxy.config);
            met.push((i, Met::Unreachable(cause(e))));
            Attempt::Retry
        }
        Ok(Ok(resp)) if resp.status().is_server_error() => {
            server_error(proxy, pool, req, turn, resp, met).await
        }
        Ok(Ok(resp)) => {
            pool.report(i, Outcome::Answered, &proxy.config);
            Attempt::Answered(pass_on(resp, req.service, turn.deadline))
        }
    }
}

/// A replica answered 5xx: a read may ask another replica, unless the
/// answer relays a dependency's failure, which every replica would relay.
async fn server_error(
    proxy: &Proxy,
    pool: &Pool,
    req: &Forwarded,
    turn: &Turn,
    resp: reqwest::Response,
    met: &mut Vec<(usize, Met)>,
) -> Attempt {
    let i = turn.replica;
    let status = resp.status();
    let mut headers = HeaderMap::new();
    copy_headers(resp.headers(), &mut headers);
    met.push((i, Met::Answered(status)));
    let Ok(Some(bytes)) = timeout_at(turn.deadline, small_body(resp)).await else {
        pool.report(i, Outcome::Failed, &proxy.config);
        return Attempt::Retry;
    };
    let relayed = relayed_dependency(&bytes).is_some();
    let outcome = if relayed {
        Outcome::Relayed
    } else {
        Outcome::Failed
    };
    pool.report(i, outcome, &proxy.config);
    // A write that got an answer is not sent again, even a 5xx: the service
    // did its part (e.g. recorded a failed payment).
    if req.read && !relayed && !turn.last {
        return Attempt::Retry;
    }
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    upstream_header(out.headers_mut(), req.service);
    Attempt::Answered(out)
}

/// The gateway's own answer when no replica gave one it could pass on,
/// after what the last attempt met.
fn no_answer(req: &Forwarded, met: &[(usize, Met)], per_try: Duration) -> Response {
    let service = req.service;
    match met.last() {
        Some((_, Met::Unreachable(_))) => {
            return problem(
                StatusCode::BAD_GATEWAY,
                "Bad gateway",
                format!("no replica of {service} could be reached"),
            )
        }
        Some((_, Met::Answered(_))) => {
            return problem(
                StatusCode::BAD_GATEWAY,
                "Bad gateway",
                format!("{service} failed to answer the request"),
            )
        }
        Some((_, Met::TimedOut(_))) | None => {}
    }
    let detail = if req.read {
        format!("{service} did not answer in time")
    } else if req.keyed {
        format!(
            "{service} did not answer within {} ms; the request may still take effect: \
             send it again with the same Idempotency-Key to learn its outcome",
            per_try.as_millis()
        )
    } else {
        format!(
            "{service} did not answer within {} ms; the request may still take effect: \
             check its outcome before sending it again",
            per_try.as_millis()
        )
    };
    problem(StatusCode::GATEWAY_TIMEOUT, "Gateway timeout", detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table like the services' (theirs is tested in crate `services`).
    fn test_routes() -> Routes {
        Routes::new(vec![
            (
                "order",
                vec!["/orders".into(), "/admin/deadLetters/order".into()],
            ),
            ("store", vec!["/menus".into(), "/storeOrders".into()]),
            ("delivery", vec!["/deliveries".into()]),
            ("payment", vec!["/payments".into()]),
            ("notification", vec!["/notifications".into()]),
            ("status", vec!["/statusChecks".into()]),
        ])
    }

    #[test]
    fn a_path_goes_to_the_service_that_owns_its_prefix() {
        let routes = test_routes();
        assert_eq!(routes.owner("/orders/1/cancel"), Some("order"));
        assert_eq!(routes.owner("/orders"), Some("order"));
        assert_eq!(routes.owner("/ordersX"), None);
        assert_eq!(routes.owner("/menus"), Some("store"));
        assert_eq!(routes.owner("/storeOrders/3/accept"), Some("store"));
        assert_eq!(routes.owner("/admin/deadLetters/order/7"), Some("order"));
        assert_eq!(routes.owner("/admin/deadLetters/delivery"), None);
        assert_eq!(routes.owner("/app.js"), None);
        assert_eq!(
            routes.actuator(&Method::GET, "/delivery/actuator/echo"),
            Some(("delivery", "/actuator/echo".into()))
        );
        assert_eq!(routes.actuator(&Method::GET, "/delivery/echo"), None);
        assert_eq!(
            routes.actuator(&Method::GET, "/kitchen/actuator/echo"),
            None
        );
    }

    #[test]
    fn only_the_probes_of_a_replica_are_routed() {
        let routes = test_routes();
        for probe in ["health", "ready", "echo"] {
            let path = format!("/order/actuator/{probe}");
            assert!(routes.actuator(&Method::GET, &path).is_some(), "{path}");
            assert!(routes.actuator(&Method::PUT, &path).is_none(), "PUT {path}");
        }
        for path in [
            "/order/actuator/down",
            "/order/actuator/up",
            "/order/actuator/metrics",
            "/order/actuator/health/x",
            "/order/actuator/",
        ] {
            assert!(routes.actuator(&Method::PUT, path).is_none(), "{path}");
            assert!(routes.actuator(&Method::GET, path).is_none(), "{path}");
            assert!(is_actuator(path), "{path}");
        }
        assert_eq!(routes.owner("/metrics"), None);
    }

    #[test]
    fn an_ejected_or_unhealthy_replica_gets_no_traffic_until_all_are_out() {
        let proxy = Proxy::new(
            test_routes(),
            vec![(
                "delivery",
                vec!["http://a".into(), "http://b".into(), "http://c".into()],
            )],
            OutlierConfig {
                consecutive_errors: 2,
                ..OutlierConfig::default()
            },
            Timeouts::default(),
        );
        let pool = proxy.pool("delivery").expect("pool");
        pool.replicas[1].healthy.store(false, Ordering::Relaxed);
        pool.report(2, Outcome::Failed, &proxy.config);
        pool.report(2, Outcome::Failed, &proxy.config);
        for _ in 0..30 {
            assert_eq!(pool.pick(&[]), Some(0));
        }
        // With every replica out, the gateway still tries one.
        pool.replicas[0].healthy.store(false, Ordering::Relaxed);
        assert!(pool.pick(&[]).is_some());
    }

    /// Starts `app` on a free port as an upstream replica.
    async fn replica(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// A replica that takes requests in and never answers, as a frozen
    /// process does; counts what it took.
    fn stalled(taken: Arc<AtomicUsize>) -> Router {
        Router::new().fallback(move || {
            taken.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<&'static str>()
        })
    }

    fn answering(taken: Arc<AtomicUsize>) -> Router {
        Router::new().fallback(move || {
            taken.fetch_add(1, Ordering::SeqCst);
            async { "fine" }
        })
    }

    async fn send(proxy: &Proxy, req: axum::http::Request<Body>) -> (StatusCode, String) {
        use tower::ServiceExt;
        let resp = proxy.router().oneshot(req).await.expect("answer");
        let status = resp.status();
        let body = to_bytes(resp.into_body(), 1 << 16).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    const TRY: Duration = Duration::from_millis(200);
    const SLACK: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn a_stalled_replica_costs_a_read_one_try_timeout_and_another_replica_answers() {
        let (frozen, fine) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let urls = vec![
            replica(stalled(frozen.clone())).await,
            replica(answering(fine.clone())).await,
        ];
        let proxy = Proxy::new(
            test_routes(),
            vec![("order", urls)],
            OutlierConfig::default(),
            Timeouts {
                try_read: TRY,
                ..Timeouts::default()
            },
        );
        for _ in 0..6 {
            let started = Instant::now();
            let req = axum::http::Request::get("/orders?access_token=secret")
                .body(Body::empty())
                .expect("request");
            let (status, body) = send(&proxy, req).await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "fine"));
            assert!(started.elapsed() < TRY + SLACK, "{:?}", started.elapsed());
        }
        // Three timeouts in a row took it out: it stopped costing anything.
        let pool = proxy.pool("order").expect("pool");
        assert_eq!(frozen.load(Ordering::SeqCst), 3);
        assert!(pool.replicas[0].ejected());
        assert_eq!(fine.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn the_client_address_is_forwarded_and_a_claimed_one_is_dropped() {
        let echo = Router::new().fallback(|headers: HeaderMap| async move {
            headers
                .get_all(FORWARDED_FOR)
                .iter()
                .map(|v| v.to_str().unwrap_or("?").to_string())
                .collect::<Vec<_>>()
                .join(",")
        });
        let proxy = Proxy::new(
            test_routes(),
            vec![("order", vec![replica(echo).await])],
            OutlierConfig::default(),
            Timeouts::default(),
        );
        let peer: std::net::SocketAddr = "203.0.113.7:5555".parse().expect("addr");
        let mut req = axum::http::Request::get("/orders")
            .header(FORWARDED_FOR, "10.0.0.1")
            .body(Body::empty())
            .expect("request");
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        assert_eq!(
            send(&proxy, req).await,
            (StatusCode::OK, "203.0.113.7".into())
        );
        let req = axum::http::Request::get("/orders")
            .header(FORWARDED_FOR, "10.0.0.1")
            .body(Body::empty())
            .expect("request");
        assert_eq!(send(&proxy, req).await, (StatusCode::OK, String::new()));
    }

    #[tokio::test]
    async fn a_write_that_reached_a_stalled_replica_is_not_resent_and_answers_504() {
        let (frozen, fine) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let urls = vec![
            replica(stalled(frozen.clone())).await,
            replica(answering(fine.clone())).await,
        ];
        let proxy = Proxy::new(
            test_routes(),
            vec![("store", urls)],
            OutlierConfig::default(),
            Timeouts {
                write: TRY,
                ..Timeouts::default()
            },
        );
        let started = Instant::now();
        let req = axum::http::Request::put("/storeOrders/1/accept?token=secret")
            .header(platform::idempotency::HEADER, "k1")
            .body(Body::empty())
            .expect("request");
        let (status, body) = send(&proxy, req).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
        assert!(started.elapsed() < TRY + SLACK, "{:?}", started.elapsed());
        assert!(body.contains("Idempotency-Key"), "{body}");
        assert!(
            !body.contains("127.0.0.1") && !body.contains("secret"),
            "{body}"
        );
        assert_eq!(
            (frozen.load(Ordering::SeqCst), fine.load(Ordering::SeqCst)),
            (1, 0)
        );
    }

    #[tokio::test]
    async fn a_503_relayed_from_a_dependency_does_not_eject_but_its_own_503_does() {
        let relaying = Router::new().fallback(|| async {
            ApiError::dependency_unavailable("payment", "payment is unavailable")
        });
        let failing = Router::new().fallback(|| async { ApiError::unavailable("cannot serve") });
        let proxy = Proxy::new(
            test_routes(),
            vec![
                ("order", vec![replica(relaying).await]),
                ("payment", vec![replica(failing).await]),
            ],
            OutlierConfig::default(),
            Timeouts::default(),
        );
        for path in ["/orders", "/payments"] {
            for _ in 0..5 {
                let req = axum::http::Request::post(path)
                    .body(Body::empty())
                    .expect("request");
                let (status, _) = send(&proxy, req).await;
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            }
        }
        assert!(!proxy.pool("order").expect("order").replicas[0].ejected());
        assert!(proxy.pool("payment").expect("payment").replicas[0].ejected());
    }

    #[tokio::test]
    async fn the_overall_deadline_cuts_a_slow_body_but_not_an_event_stream() {
        fn trickle(content_type: &'static str) -> Router {
            Router::new().fallback(move || async move {
                let ticks = futures::stream::unfold(0, |n| async move {
                    (n < 8).then_some(())?;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Some((Ok::<_, std::io::Error>(Bytes::from("data: x\n\n")), n + 1))
                });
                (
                    [(header::CONTENT_TYPE, content_type)],
                    Body::from_stream(ticks),
                )
            })
        }
        let proxy = Proxy::new(
            test_routes(),
            vec![
                (
                    "notification",
                    vec![replica(trickle("text/event-stream")).await],
                ),
                ("status", vec![replica(trickle("application/json")).await]),
            ],
            OutlierConfig::default(),
            Timeouts {
                overall: Duration::from_millis(200),
                ..Timeouts::default()
            },
        );
        use tower::ServiceExt;
        let get = |path: &str| {
            axum::http::Request::get(path)
                .body(Body::empty())
                .expect("request")
        };
        let sse = proxy.router().oneshot(get("/notifications/stream")).await;
        let sse = to_bytes(sse.expect("answer").into_body(), 1 << 16).await;
        assert_eq!(sse.expect("the whole stream").len(), 8 * 9);
        let slow = proxy.router().oneshot(get("/statusChecks")).await;
        let slow = to_bytes(slow.expect("answer").into_body(), 1 << 16).await;
        assert!(
            slow.is_err(),
            "a body past the deadline must end in an error"
        );
    }
}
