//! Starts the real `hanwha-delivery` binary on a random port with its own
//! data directory, and talks to it over HTTP.

pub mod fleet_command;
pub mod ports;
pub mod scenario;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The machine, for a test that loads it or measures time: such a test
/// holds this for its whole run. The harness runs two tests of this one
/// binary at a time (one per core); two such tests together would each slow
/// the other down and fail for it. A test that neither loads the machine
/// nor times anything runs beside them.
static MACHINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub type Exclusive = tokio::sync::MutexGuard<'static, ()>;

/// Waits until no other load or timing test runs, and keeps them out while
/// the guard lives. (A Tokio mutex: it is held across awaits, and a test
/// that fails while holding it does not poison it for the others.)
pub async fn exclusive() -> Exclusive {
    MACHINE.lock().await
}

/// The same, for a test without a runtime.
pub fn exclusive_blocking() -> Exclusive {
    MACHINE.blocking_lock()
}

pub struct Server {
    pub base: String,
    pub data_dir: PathBuf,
    child: Child,
    args: Vec<String>,
    env: Vec<(String, String)>,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server on a fresh data directory.
    pub fn start(args: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("data");
        let mut server = Server::start_in(&dir, args);
        server._tmp = Some(tmp);
        server
    }

    /// Starts a server on an existing data directory.
    pub fn start_in(data_dir: &Path, args: &[&str]) -> Server {
        Server::start_with_env(data_dir, args, &[])
    }

    /// Starts a server on `data_dir` with extra environment variables (e.g.
    /// shorter periods); a restart keeps them.
    pub fn start_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (child, base) = spawn(data_dir, &args, &env);
        Server {
            base,
            data_dir: data_dir.to_path_buf(),
            child,
            args,
            env,
            _tmp: None,
        }
    }

    /// SIGKILL: no drain, no cleanup, as a crashed machine would stop.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// Starts the binary again on the same data directory.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, base) = spawn(&self.data_dir, &self.args, &self.env);
        self.child = child;
        self.base = base;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// False once the process has exited (crashed or was killed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(data_dir: &Path, args: &[String], env: &[(String, String)]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hanwha-delivery"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("HANWHA_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start hanwha-delivery");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = lines
        .next()
        .expect("server printed nothing")
        .expect("read stdout");
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, base)
}

/// An HTTP client acting for one user.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
}

pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
    /// The `Retry-After` header, if the answer had one.
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn problem(&self) -> bool {
        self.content_type.starts_with("application/problem+json")
    }
}

impl Api {
    pub fn anonymous(server: &Server) -> Api {
        Api {
            base: server.base.clone(),
            http: reqwest::Client::new(),
            token: None,
        }
    }

    pub async fn login(server: &Server, user: &str) -> Api {
        let mut api = Api::anonymous(server);
        let reply = api
            .send(
                Method::POST,
                "/auth/login",
                Some(serde_json::json!({"username": user, "password": user})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "login {user}: {}", reply.body);
        api.token = Some(reply.body["token"].as_str().expect("token").to_string());
        api
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        reply(req).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str) -> Reply {
        self.send(Method::PUT, path, None).await
    }
}

pub async fn reply(req: reqwest::RequestBuilder) -> Reply {
    try_reply(req).await.expect("request sent")
}

/// The same, for a test that counts a server that stopped answering
/// instead of panicking on it.
pub async fn try_reply(req: reqwest::RequestBuilder) -> Result<Reply, reqwest::Error> {
    let resp = req.send().await?;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = resp.bytes().await?;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Ok(Reply {
        status,
        content_type,
        body,
        retry_after,
    })
}

/// Polls until `check` returns `Some`, for effects that travel by events.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until the status view shows `status` for the order.
pub async fn wait_status(api: &Api, order_id: i64, status: &str) -> Value {
    eventually(
        &format!("order {order_id} to be {status} in the status view"),
        || async {
            let r = api.get(&format!("/statusChecks/{order_id}")).await;
            (r.status == StatusCode::OK && r.body["status"] == status).then_some(r.body)
        },
    )
    .await
}

/// Places an order and returns its body (asserting 201).
pub async fn place(customer: &Api, menu: &str, qty: i64) -> Value {
    let r = customer
        .post(
            "/orders",
            serde_json::json!({"menuName": menu, "qty": qty, "address": "suwon"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "place order: {}", r.body);
    r.body
}

/// Waits until the store's list holds the order (it travels by event).
pub async fn wait_in_store(owner: &Api, order_id: i64) {
    eventually(&format!("order {order_id} in the store list"), || async {
        (owner.get(&format!("/storeOrders/{order_id}")).await.status == StatusCode::OK)
            .then_some(())
    })
    .await
}

pub async fn wait_in_deliveries(rider: &Api, order_id: i64) {
    eventually(
        &format!("order {order_id} in the delivery list"),
        || async {
            (rider.get(&format!("/deliveries/{order_id}")).await.status == StatusCode::OK)
                .then_some(())
        },
    )
    .await
}

pub fn id(v: &Value) -> i64 {
    v["id"].as_i64().expect("id")
}

/// Checks a sequence of event types against the expected one. Payment
/// events, and the store's agreement to a cancel, come from another service
/// than the order's own events, so they have no fixed place relative to
/// them: they are compared as a set, the order's own steps in order.
pub fn assert_same_saga(got: &[&str], want: &[&str], what: &str) {
    let is_payment = |t: &&str| {
        matches!(
            *t,
            "PaymentAgreed" | "PaymentCancelled" | "Approved" | "Refunded" | "StoreOrderCancelled"
        )
    };
    let mut got_sorted = got.to_vec();
    let mut want_sorted = want.to_vec();
    got_sorted.sort_unstable();
    want_sorted.sort_unstable();
    assert_eq!(got_sorted, want_sorted, "{what}: {got:?}");
    let got_steps: Vec<&str> = got.iter().filter(|t| !is_payment(t)).copied().collect();
    let want_steps: Vec<&str> = want.iter().filter(|t| !is_payment(t)).copied().collect();
    assert_eq!(got_steps, want_steps, "{what}: {got:?}");
}

/// Waits until the status view holds `changes` entries for the order, i.e.
/// every event so far reached it (events of different services arrive in
/// no fixed order).
pub async fn wait_history(api: &Api, order_id: i64, changes: usize) -> Value {
    eventually(
        &format!("{changes} changes of order {order_id} in the status view"),
        || async {
            let r = api.get(&format!("/statusChecks/{order_id}")).await;
            let n = r.body["history"].as_array().map(Vec::len).unwrap_or(0);
            (r.status == StatusCode::OK && n == changes).then_some(r.body)
        },
    )
    .await
}

/// Asserts that no consumer parked an event.
pub async fn assert_no_dead_letters(admin: &Api) {
    assert_no_dead_letters_at(|_| admin.clone()).await;
}

/// The same, asking each service where `admin_of` says it runs (a fleet).
pub async fn assert_no_dead_letters_at(admin_of: impl Fn(&str) -> Api) {
    for consumer in [
        "order",
        "payment",
        "store",
        "delivery",
        "status",
        "notification",
    ] {
        let dead = admin_of(consumer)
            .get(&format!("/admin/deadLetters/{consumer}"))
            .await
            .body;
        assert!(
            dead.as_array().expect("dead letters").is_empty(),
            "{consumer}: {dead}"
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Winner {
    Cancel,
    Accept,
}

/// A customer's cancel and an owner's accept of one order at the same
/// time; panics unless exactly one of them wins.
pub async fn race(customer: &Api, owner: &Api, order: i64) -> Winner {
    let (cancel_path, accept_path) = (
        format!("/orders/{order}/cancel"),
        format!("/storeOrders/{order}/accept"),
    );
    let (cancel, accept) = tokio::join!(customer.put(&cancel_path), owner.put(&accept_path));
    // A cancel whose call to the store ran out of time answers 503 without
    // knowing the store's decision (a busy machine makes that happen); the
    // accept's answer then tells who won, and `wait_settled` checks that
    // every service ends that way.
    let unknown = |status: StatusCode| status == StatusCode::SERVICE_UNAVAILABLE;
    match (cancel.status, accept.status) {
        (StatusCode::OK, StatusCode::CONFLICT | StatusCode::NOT_FOUND) => Winner::Cancel,
        (c, StatusCode::CONFLICT) if unknown(c) => Winner::Cancel,
        (StatusCode::CONFLICT, StatusCode::OK) => Winner::Accept,
        (c, StatusCode::OK) if unknown(c) => Winner::Accept,
        (c, a) => panic!(
            "order {order}: cancel {c} {} / accept {a} {}",
            cancel.body, accept.body
        ),
    }
}

/// Waits until order, payment, store and status view all show `winner`'s
/// outcome of a cancel-vs-accept race.
pub async fn wait_settled(customer: &Api, owner: &Api, order: i64, winner: Winner) {
    let (status, payment, cook) = match winner {
        Winner::Cancel => ("Cancelled", "Refunded", "Cancelled"),
        Winner::Accept => ("Accepted", "Approved", "Accepted"),
    };
    eventually(&format!("order {order} settled as {status}"), || async {
        let o = customer.get(&format!("/orders/{order}")).await.body;
        let p = customer.get(&format!("/payments/{order}")).await.body;
        let s = owner.get(&format!("/storeOrders/{order}")).await.body;
        let v = customer.get(&format!("/statusChecks/{order}")).await.body;
        (o["status"] == status
            && p["paymentStatus"] == payment
            && s["cookStatus"] == cook
            && v["status"] == status)
            .then_some(())
    })
    .await;
}

/// The environment of every process of a test fleet: identity's token key
/// pair and order's service key pair (made once in `dir/keys`), and demo
/// data. Each service reads only the variables it needs.
pub fn fleet_env(dir: &Path) -> Vec<(&'static str, String)> {
    let keys = dir.join("keys");
    for name in ["token", "service"] {
        if !keys.join(format!("{name}.key")).exists() {
            platform::signing_keys::generate_pair(&keys, name).expect("generate a key pair");
        }
    }
    let file = |name: &str| keys.join(name).display().to_string();
    vec![
        ("HANWHA_TOKEN_KEY_FILE", file("token.key")),
        ("HANWHA_TOKEN_PUBLIC_KEYS", file("token.pub")),
        ("HANWHA_SERVICE_KEY_FILE", file("service.key")),
        ("HANWHA_SERVICE_PUBLIC_KEYS", file("service.pub")),
        ("HANWHA_DEMO", "1".to_string()),
    ]
}

/// A field of /proc/PID/status in KiB, e.g. `VmRSS` or `VmHWM` (peak).
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
