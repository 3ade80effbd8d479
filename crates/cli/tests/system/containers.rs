//! The image as people run it (issue 12): the all-in-one container on a
//! volume (SIGKILL and start again, `podman stop` drains), one container
//! per service on the host network behind the gateway container (the
//! seed's zero-downtime drill), and the all-in-one Deployment played by
//! `podman kube play` (the seed's self-healing drill).
//!
//! Runs when HANWHA_TEST_PODMAN names the image to test; `.ci/run` builds
//! it with `deploy/podman/build-image` from the debug binary and points
//! CONTAINERS_CONF at `deploy/podman/containers.conf`. The distributed test
//! also needs HANWHA_TEST_NATS_URL, HANWHA_TEST_POSTGRES_URL and
//! HANWHA_TEST_MYSQL_URL, as the fleet tests do.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::scenario;
use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The image under test, or `None` (skipped) when none is named.
fn image() -> Option<String> {
    match std::env::var("HANWHA_TEST_PODMAN") {
        Ok(image) if !image.is_empty() => Some(image),
        _ => {
            eprintln!("HANWHA_TEST_PODMAN unset: skipping the container test");
            None
        }
    }
}

/// A short random tag that keeps this run's names apart from any other.
fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

fn podman_output(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .output()
        .expect("run podman")
}

/// Runs podman and returns its stdout, failing the test when it fails.
fn podman(args: &[&str]) -> String {
    let out = podman_output(args);
    assert!(
        out.status.success(),
        "podman {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The same off the runtime's threads, for calls made while load runs.
async fn podman_async(args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        podman(&args)
    })
    .await
    .expect("podman task")
}

fn inspect(name: &str, format: &str) -> String {
    podman(&["inspect", name, "--format", format])
}

/// A container removed with its anonymous volumes when the test ends,
/// whichever way it ends.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman_output(&["rm", "--force", "--volumes", "--time", "0", &self.0]);
    }
}

/// A named volume, removed when the test ends.
struct Volume(String);

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = podman_output(&["volume", "rm", "--force", &self.0]);
    }
}

/// A client that opens a new connection per request: a request that a
/// stopping server refuses is then told apart from one it dropped.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

fn api(base: &str, token: Option<String>) -> Api {
    Api {
        base: base.to_string(),
        http: client(),
        token,
    }
}

async fn login(base: &str, user: &str) -> Api {
    let r = api(base, None)
        .post("/auth/login", json!({"username": user, "password": user}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "login {user}: {}", r.body);
    api(base, r.body["token"].as_str().map(str::to_string))
}

/// Waits until `base` answers its readiness probe (a container starts in
/// well under a second; a busy machine gets 60), or fails with the end of
/// `container`'s log.
async fn wait_ready(base: &str, container: &str) {
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{base}/actuator/ready")).send().await {
            if r.status() == StatusCode::OK {
                return;
            }
        }
        if Instant::now() > deadline {
            let logs = podman_output(&["logs", "--tail", "20", container]);
            panic!(
                "{container} never became ready at {base}:\n{}{}",
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The seed's scenario: order, accept, cook, pick up, deliver, confirm,
/// with the status view's seven changes and the customer's seven
/// notifications. Returns the confirmed order's id.
async fn seed_scenario(base: &str) -> i64 {
    let (customer, owner, rider) = (
        login(base, "customer").await,
        login(base, "owner").await,
        login(base, "rider").await,
    );
    let placed = place(&customer, "pizza", 10).await;
    assert_eq!(placed["price"], 10_000);
    let order = id(&placed);
    let paid = customer.get(&format!("/payments/{order}")).await.body;
    assert_eq!(paid["paymentStatus"], "Approved", "{paid}");
    scenario::drive_to_confirmed(&customer, &owner, &rider, order).await;
    assert_eq!(
        wait_history(&customer, order, 7).await["status"],
        "Confirmed"
    );
    scenario::wait_notifications(&customer, order, 7).await;
    order
}

/// The host's view of a container's process: its uid.
fn uid_of(container: &str) -> u32 {
    let pid: u32 = inspect(container, "{{.State.Pid}}").parse().expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("Uid")
}

/// Keyed orders, one after another, until `stop`: the ids of those
/// answered 201 (acknowledged), and every other outcome in words. A
/// connection refused is `refused` (the server was gone before the
/// request reached it). A request sent whose answer never came (the
/// connection closed under it: a kill, or a keep-alive connection the
/// draining server closed as the request went out, which no HTTP/1.1
/// server can rule out) is `unanswered`: its key, which the client
/// sends again once the server is back, as a real client would. Any
/// answer other than 201 is a failure.
struct Burst {
    acknowledged: Vec<i64>,
    refused: u32,
    unanswered: Vec<String>,
    failures: Vec<String>,
}

async fn burst(customer: Api, key: String, stop: Arc<AtomicBool>) -> Burst {
    let mut out = Burst {
        acknowledged: Vec::new(),
        refused: 0,
        unanswered: Vec::new(),
        failures: Vec::new(),
    };
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let key = format!("{key}-{n}");
        match try_reply(keyed_order(&customer, &key)).await {
            Ok(r) if r.status == StatusCode::CREATED => out.acknowledged.push(id(&r.body)),
            Ok(r) => out.failures.push(format!("{} {}", r.status, r.body)),
            Err(e) if e.is_connect() => {
                out.refused += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => out.unanswered.push(key),
        }
    }
    out
}

fn keyed_order(customer: &Api, key: &str) -> reqwest::RequestBuilder {
    customer
        .request(Method::POST, "/orders")
        .header("Idempotency-Key", key)
        .json(&json!({"menuName": "pizza", "qty": 1, "address": "suwon"}))
}

/// Sends each unanswered key again, twice, on the server that is back:
/// each names exactly one order, whether the first attempt had reached
/// it or not. A key the killed process had claimed answers 409 with
/// `Retry-After` until its lease ends; the client waits as told.
async fn resend_unanswered(customer: &Api, keys: &[String]) {
    for key in keys {
        let deadline = Instant::now() + Duration::from_secs(30);
        let first = loop {
            let r = try_reply(keyed_order(customer, key)).await.expect("resend");
            if r.status != StatusCode::CONFLICT || Instant::now() > deadline {
                break r;
            }
            let wait: u64 = r
                .retry_after
                .as_deref()
                .and_then(|s| s.parse().ok())
                .expect("409 with Retry-After");
            tokio::time::sleep(Duration::from_secs(wait)).await;
        };
        assert_eq!(first.status, StatusCode::CREATED, "{key}: {}", first.body);
        let again = try_reply(keyed_order(customer, key)).await.expect("resend");
        assert_eq!(again.status, StatusCode::CREATED, "{key}: {}", again.body);
        assert_eq!(id(&first.body), id(&again.body), "{key} made two orders");
    }
}

/// The all-in-one image on a named volume: the seed scenario over HTTP;
/// SIGKILL in the middle of a burst of orders and a start on the same
/// volume keep every acknowledged order (and the signing key: tokens from
/// before still work); `podman stop` drains and exits 0 well within its
/// grace period, refusing new connections and dropping none it took;
/// a keyed order whose answer never came, sent again, is one order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_all_in_one_container_keeps_acknowledged_orders_across_sigkill_and_drains_on_stop() {
    let _machine = exclusive().await;
    let Some(image) = image() else { return };
    let tag = tag();
    let volume = Volume(podman(&["volume", "create", &format!("hanwha-t-{tag}")]));
    let name = format!("hanwha-t-{tag}");
    let mount = format!("{}:/data", volume.0);
    podman(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--stop-timeout",
        "30",
        "--publish",
        "127.0.0.1::8080",
        "--volume",
        &mount,
        "--env",
        "HANWHA_DEMO=1",
        &image,
    ]);
    let container = Container(name);
    let base = format!("http://{}", podman(&["port", &container.0, "8080"]));
    wait_ready(&base, &container.0).await;

    // Non-root, its files its own and private, and the image's HEALTHCHECK
    // runs without a shell.
    assert_eq!(uid_of(&container.0), 65532, "the process runs as root");
    let data = PathBuf::from(podman(&[
        "volume",
        "inspect",
        &volume.0,
        "--format",
        "{{.Mountpoint}}",
    ]));
    {
        use std::os::unix::fs::MetadataExt;
        let key = std::fs::metadata(data.join("token.key")).expect("token.key on the volume");
        assert_eq!((key.uid(), key.mode() & 0o777), (65532, 0o600));
        let dir = std::fs::metadata(&data).expect("volume");
        assert_eq!((dir.uid(), dir.mode() & 0o777), (65532, 0o700));
    }
    podman(&["healthcheck", "run", &container.0]);

    let confirmed = seed_scenario(&base).await;

    // SIGKILL while orders are being placed.
    let customer = login(&base, "customer").await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(burst(customer.clone(), format!("kill-{tag}"), stop.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    podman_async(vec![
        "kill".into(),
        "--signal".into(),
        "KILL".into(),
        container.0.clone(),
    ])
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let before = load.await.expect("burst");
    assert!(
        before.acknowledged.len() >= 3,
        "too few orders before the kill: {}",
        before.acknowledged.len()
    );
    assert_eq!(inspect(&container.0, "{{.State.ExitCode}}"), "137");

    podman(&["start", &container.0]);
    let base = format!("http://{}", podman(&["port", &container.0, "8080"]));
    wait_ready(&base, &container.0).await;
    // The same key signs: the customer's token from before is accepted.
    let customer = api(&base, customer.token.clone());
    resend_unanswered(&customer, &before.unanswered).await;
    for order in &before.acknowledged {
        let r = customer.get(&format!("/orders/{order}")).await;
        assert_eq!(r.status, StatusCode::OK, "order {order} lost: {}", r.body);
        assert_ne!(
            r.body["status"], "PaymentPending",
            "order {order}: {}",
            r.body
        );
    }
    assert_eq!(
        customer.get(&format!("/orders/{confirmed}")).await.body["status"],
        "Confirmed"
    );
    let owner = login(&base, "owner").await;
    let last = *before.acknowledged.last().expect("an order");
    wait_in_store(&owner, last).await;
    println!(
        "SIGKILL mid-burst: {} orders acknowledged, all there after the start; {} requests refused while down, {} unanswered and sent again, {} other outcomes: {:?}",
        before.acknowledged.len(),
        before.refused,
        before.unanswered.len(),
        before.failures.len(),
        before.failures
    );

    // `podman stop` under load: SIGTERM, the drain, exit 0 by itself.
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(burst(customer.clone(), format!("stop-{tag}"), stop.clone()));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let started = Instant::now();
    podman_async(vec!["stop".into(), container.0.clone()]).await;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let during = load.await.expect("burst");
    assert_eq!(
        inspect(&container.0, "{{.State.ExitCode}}"),
        "0",
        "podman stop had to kill it"
    );
    assert!(
        took < Duration::from_secs(15),
        "the drain took {took:?} (grace 30 s)"
    );
    assert!(
        during.failures.is_empty(),
        "requests the stopping server took and did not answer: {:?}",
        during.failures
    );
    let logs = podman_output(&["logs", &container.0]);
    assert!(
        String::from_utf8_lossy(&logs.stderr).contains("draining in-flight requests"),
        "no drain in the logs"
    );
    podman(&["start", &container.0]);
    let base = format!("http://{}", podman(&["port", &container.0, "8080"]));
    wait_ready(&base, &container.0).await;
    let customer = api(&base, customer.token.clone());
    resend_unanswered(&customer, &during.unanswered).await;
    for order in &during.acknowledged {
        let r = customer.get(&format!("/orders/{order}")).await;
        assert_eq!(r.status, StatusCode::OK, "order {order} lost: {}", r.body);
    }
    println!(
        "podman stop drained in {took:?}: {} orders acknowledged during the stop, {} refused after it, {} unanswered and sent again",
        during.acknowledged.len(),
        during.refused,
        during.unanswered.len()
    );
}

/// Without HANWHA_DEMO the image starts empty (it listens where others
/// reach it) and says how to make the first admin; `users add` run in the
/// container, with the password on stdin, makes one who can log in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_starts_empty_and_users_add_in_the_container_makes_the_first_admin() {
    let _machine = exclusive().await;
    use std::io::Write;
    let Some(image) = image() else { return };
    let name = format!("hanwha-t-{}", tag());
    podman(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--publish",
        "127.0.0.1::8080",
        &image,
    ]);
    let container = Container(name);
    let base = format!("http://{}", podman(&["port", &container.0, "8080"]));
    wait_ready(&base, &container.0).await;
    let refused = api(&base, None)
        .post(
            "/auth/login",
            json!({"username": "admin", "password": "admin"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    let logs = podman_output(&["logs", &container.0]);
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("users add --role admin"),
        "the start does not say how to make the first admin"
    );

    let mut add = Command::new("podman")
        .args(["exec", "--interactive", &container.0])
        .args(["hanwha-delivery", "users", "add", "--role", "admin", "boss"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("podman exec");
    add.stdin
        .take()
        .expect("stdin")
        .write_all(b"a long first password\n")
        .expect("write the password");
    assert!(add.wait().expect("users add").success());
    let boss = api(&base, None)
        .post(
            "/auth/login",
            json!({"username": "boss", "password": "a long first password"}),
        )
        .await;
    assert_eq!(boss.status, StatusCode::OK, "{}", boss.body);
    assert_eq!(boss.body["role"], "admin");
}

/// A block of free ports below the ephemeral range (so no `:0` bind of
/// another test lands in it), one per member.
fn free_ports(n: u16) -> Vec<u16> {
    for _ in 0..20 {
        let random = uuid::Uuid::new_v4().as_u128();
        let base = 10_000 + (random % 1_100) as u16 * 20;
        let ports: Vec<u16> = (base..base + n).collect();
        if ports
            .iter()
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        {
            return ports;
        }
    }
    panic!("no block of {n} free ports");
}

fn backend(var: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is needed with HANWHA_TEST_PODMAN"))
        .trim_end_matches('/')
        .to_string()
}

/// Removes this run's databases from the shared servers (FORCE: the
/// sessions of containers just removed may linger on PostgreSQL).
async fn drop_databases(urls: Vec<String>) {
    use sqlx::Connection;
    for url in urls {
        let (server, name) = url.rsplit_once('/').expect("database name");
        let dropped = if url.starts_with("postgres") {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            match sqlx::PgConnection::connect(&format!("{server}/postgres")).await {
                Ok(mut admin) => sqlx::query(&sql).execute(&mut admin).await.map(drop),
                Err(e) => Err(e),
            }
        } else {
            let sql = format!("DROP DATABASE IF EXISTS {name}");
            match sqlx::MySqlConnection::connect(server).await {
                Ok(mut admin) => sqlx::query(&sql).execute(&mut admin).await.map(drop),
                Err(e) => Err(e),
            }
        };
        if let Err(e) = dropped {
            eprintln!("could not drop the test database {name}: {e}");
        }
    }
}

/// The containers of the distributed shape, in the order they start: the
/// services, two order replicas, the gateway.
const MEMBERS: [&str; 9] = [
    "identity",
    "payment",
    "store",
    "delivery",
    "status",
    "notification",
    "order-1",
    "order-2",
    "gateway",
];

/// The distributed shape as containers on the host network: what each
/// member needs, and the containers that run it.
struct ContainerFleet {
    image: String,
    tag: String,
    keys: tempfile::TempDir,
    nats: String,
    stream: String,
    databases: HashMap<&'static str, String>,
    addrs: HashMap<&'static str, String>,
    running: HashMap<&'static str, Container>,
}

impl ContainerFleet {
    fn new(image: String) -> ContainerFleet {
        let tag = tag();
        let keys = tempfile::tempdir().expect("temp dir");
        for name in ["token", "service"] {
            platform::signing_keys::generate_pair(keys.path(), name).expect("a key pair");
        }
        // The image's user reads them; they stay private to it.
        for entry in std::fs::read_dir(keys.path()).expect("keys") {
            let path = entry.expect("key").path();
            std::os::unix::fs::chown(&path, Some(65532), Some(65532)).expect("chown");
        }
        std::os::unix::fs::chown(keys.path(), Some(65532), Some(65532)).expect("chown");
        let (pg, my) = (
            backend("HANWHA_TEST_POSTGRES_URL"),
            backend("HANWHA_TEST_MYSQL_URL"),
        );
        // Polyglot: both servers the machine has, order's two replicas on
        // one PostgreSQL database.
        let mut databases = HashMap::new();
        for service in ["order", "payment", "status", "notification"] {
            databases.insert(service, format!("{pg}/hanwha_c_{tag}_{service}"));
        }
        for service in ["store", "delivery", "identity"] {
            databases.insert(service, format!("{my}/hanwha_c_{tag}_{service}"));
        }
        let addrs = MEMBERS
            .into_iter()
            .zip(free_ports(MEMBERS.len() as u16))
            .map(|(m, p)| (m, format!("127.0.0.1:{p}")))
            .collect();
        ContainerFleet {
            image,
            stream: format!("CONTAINERS_{tag}"),
            tag,
            keys,
            nats: backend("HANWHA_TEST_NATS_URL"),
            databases,
            addrs,
            running: HashMap::new(),
        }
    }

    fn url(&self, member: &str) -> String {
        format!("http://{}", self.addrs[member])
    }

    /// Starts `member` (`order-1` runs `serve order`) in a container of
    /// its own, named with `generation` so a replacement gets a new one.
    fn run(&mut self, member: &'static str, generation: u32) {
        let service = member.split('-').next().expect("service");
        let name = format!("hanwha-t-{}-{member}-{generation}", self.tag);
        let upstreams = MEMBERS[..6]
            .iter()
            .map(|s| format!("{s}={}", self.url(s)))
            .chain([format!(
                "order={},{}",
                self.url("order-1"),
                self.url("order-2")
            )])
            .collect::<Vec<_>>()
            .join(";");
        let mut env = vec![
            format!("HANWHA_SERVICE_ADDR={}", self.addrs[member]),
            format!("HANWHA_NATS_URL={}", self.nats),
            format!("HANWHA_STREAM={}", self.stream),
            format!(
                "HANWHA_SUBJECT_PREFIX={}.events",
                self.stream.to_lowercase()
            ),
            "HANWHA_TOKEN_KEY_FILE=/keys/token.key".to_string(),
            "HANWHA_TOKEN_PUBLIC_KEYS=/keys/token.pub".to_string(),
            "HANWHA_SERVICE_KEY_FILE=/keys/service.key".to_string(),
            "HANWHA_SERVICE_PUBLIC_KEYS=/keys/service.pub".to_string(),
            format!("HANWHA_IDENTITY_URL={}", self.url("identity")),
            format!("HANWHA_PAYMENT_URL={}", self.url("payment")),
            format!("HANWHA_STORE_URL={}", self.url("store")),
            format!("HANWHA_UPSTREAMS={upstreams}"),
            "HANWHA_TRUSTED_PROXIES=127.0.0.1".to_string(),
            "HANWHA_DEMO=1".to_string(),
            "HANWHA_LOG=warn".to_string(),
        ];
        if let Some(url) = self.databases.get(service) {
            env.push(format!("HANWHA_DATABASE_URL={url}"));
        }
        let keys = format!("{}:/keys:ro", self.keys.path().display());
        let mut args = vec![
            "run",
            "--detach",
            "--name",
            &name,
            "--network",
            "host",
            "--stop-timeout",
            "30",
            "--volume",
            &keys,
        ];
        for e in &env {
            args.extend(["--env", e.as_str()]);
        }
        args.extend([self.image.as_str(), "serve", service]);
        podman(&args);
        self.running.insert(member, Container(name));
    }
}

impl Drop for ContainerFleet {
    /// Removes the containers, then the run's stream and databases from
    /// the shared servers, however the test ended.
    fn drop(&mut self) {
        self.running.clear();
        let (nats, stream) = (self.nats.clone(), self.stream.clone());
        let databases: Vec<String> = self.databases.drain().map(|(_, url)| url).collect();
        // Its own thread and runtime: a destructor cannot await.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let prefix = format!("{}.events", stream.to_lowercase());
                if let Ok(bus) = platform::nats::NatsBus::connect(&nats, &stream, &prefix).await {
                    let _ = bus.delete_stream().await;
                }
                drop_databases(databases).await;
            });
        })
        .join();
    }
}

/// One container per service on the host network, against the machine's
/// PostgreSQL, MariaDB and NATS; the seed scenario through the gateway
/// container; then the seed's zero-downtime drill: steady keyed orders and
/// reads through the gateway while the two order containers are replaced
/// one after the other (`podman stop`: SIGTERM, the drain; then a new
/// container on the same address). Every request succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_distributed_shape_runs_one_container_per_service_and_replaces_order_without_a_failed_request(
) {
    let _machine = exclusive().await;
    let Some(image) = image() else { return };
    let mut fleet = ContainerFleet::new(image);
    for member in MEMBERS {
        fleet.run(member, 1);
    }
    for member in MEMBERS {
        wait_ready(&fleet.url(member), &fleet.running[member].0).await;
    }
    let gateway = fleet.url("gateway");
    seed_scenario(&gateway).await;

    let customer = login(&gateway, "customer").await;
    let mut instances = std::collections::HashSet::new();
    for _ in 0..6 {
        instances.insert(customer.get("/order/actuator/echo").await.body["instanceId"].to_string());
    }
    assert_eq!(
        instances.len(),
        2,
        "the gateway balances over both: {instances:?}"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (customer, stop, tag) = (customer.clone(), stop.clone(), fleet.tag.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed, mut n) = (0u32, Vec::new(), 0u32);
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let placed = try_reply(
                    customer
                        .request(Method::POST, "/orders")
                        .header("Idempotency-Key", format!("drill-{tag}-{n}"))
                        .json(&json!({"menuName": "pizza", "qty": 1, "address": "suwon"})),
                )
                .await;
                let listed = try_reply(customer.request(Method::GET, "/orders?limit=5")).await;
                for r in [placed, listed] {
                    match r {
                        Ok(r) if r.status.is_success() => ok += 1,
                        Ok(r) => failed.push(format!("{} {}", r.status, r.body)),
                        Err(e) => failed.push(format!("{e:?}")),
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, failed)
        })
    };
    for replica in ["order-1", "order-2"] {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let old = fleet.running.remove(replica).expect("replica");
        let started = Instant::now();
        podman_async(vec!["stop".into(), old.0.clone()]).await;
        assert_eq!(
            inspect(&old.0, "{{.State.ExitCode}}"),
            "0",
            "{replica} was killed, not drained"
        );
        println!("{replica}: stopped (drained) in {:?}", started.elapsed());
        drop(old);
        fleet.run(replica, 2);
        wait_ready(&fleet.url(replica), &fleet.running[replica].0).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = load.await.expect("load");
    println!(
        "zero-downtime drill in containers: {ok} requests succeeded, {} failed",
        failed.len()
    );
    assert!(ok > 20, "too little load: {ok}");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        ok as usize + failed.len()
    );
}

/// A played Kubernetes YAML, taken down (with its claim's volume) when the
/// test ends.
struct Played {
    file: PathBuf,
    volume: String,
}

impl Drop for Played {
    fn drop(&mut self) {
        let file = self.file.display().to_string();
        let _ = podman_output(&["kube", "down", &file]);
        let _ = podman_output(&["volume", "rm", "--force", &self.volume]);
    }
}

/// The container healthcheck Podman made of the liveness probe.
struct Probe {
    url: String,
    period: Duration,
    timeout: Duration,
    failure_threshold: u32,
}

impl Probe {
    fn of(container: &str) -> Probe {
        let config: Value =
            serde_json::from_str(&inspect(container, "{{json .Config.Healthcheck}}"))
                .expect("healthcheck json");
        let nanos = |field: &str| Duration::from_nanos(config[field].as_u64().expect(field));
        Probe {
            url: config["Test"]
                .as_array()
                .expect("Test")
                .iter()
                .filter_map(Value::as_str)
                .find(|w| w.starts_with("http"))
                .unwrap_or_else(|| panic!("no URL in {config}"))
                .to_string(),
            period: nanos("Interval"),
            timeout: nanos("Timeout"),
            failure_threshold: config["Retries"].as_u64().expect("Retries") as u32,
        }
    }

    /// Runs the probe once inside the container, as its healthcheck would
    /// (the image's own binary instead of `sh -c 'curl ...'`).
    fn passes(&self, container: &str) -> bool {
        let timeout_ms = self.timeout.as_millis().to_string();
        podman_output(&[
            "exec",
            container,
            "/usr/local/bin/hanwha-delivery",
            "health",
            "--url",
            &self.url,
            "--timeout-ms",
            &timeout_ms,
        ])
        .status
        .success()
    }
}

fn signal_pid(pid: &str, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

fn kube_yaml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/podman/all-in-one.yaml")
}

/// deploy/podman/all-in-one.yaml (Deployment, ConfigMap, claim) played by
/// `podman kube play`: the seed scenario through its published port; then
/// the seed's self-healing drill. The process freezes (SIGSTOP: it answers
/// nothing, as the seed's memory leak made it); the liveness probe, with
/// the period, timeout and threshold Podman read from the YAML, fails that
/// many times in a row; the container is killed, Podman restarts it
/// (restartPolicy: Always; its restart count goes from 0 to 1), and it
/// serves again with the claim's data.
///
/// Who does what: Podman plays the YAML, turns the probe into the
/// container's healthcheck and restarts the killed container. Podman
/// 4.3 without systemd runs no healthcheck by itself and restarts nothing
/// for a failed one, and its healthcheck (`sh -c 'curl ...'`) cannot run
/// in this image (no shell, no curl), so the test is the kubelet: it runs
/// the probe (the image's `health` command with the probe's URL and
/// timeout, inside the container) and kills the container after the
/// threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_all_in_one_deployment_plays_with_podman_and_heals_when_its_liveness_probe_fails() {
    let _machine = exclusive().await;
    let Some(image) = image() else { return };
    let tag = tag();
    let port = free_ports(1)[0];
    let name = format!("hanwha-aio-{tag}");
    let yaml = std::fs::read_to_string(kube_yaml()).expect("deploy/podman/all-in-one.yaml");
    for expected in [
        "image: localhost/hanwha-delivery:latest",
        "hostPort: 8080",
        "HANWHA_DEMO: \"0\"",
    ] {
        assert!(yaml.contains(expected), "the YAML has no {expected:?}");
    }
    // This run's names, port and image; the demo users for the scenario.
    let yaml = yaml
        .replace("hanwha-aio", &name)
        .replace(
            "image: localhost/hanwha-delivery:latest",
            &format!("image: {image}"),
        )
        .replace("hostPort: 8080", &format!("hostPort: {port}"))
        .replace("HANWHA_DEMO: \"0\"", "HANWHA_DEMO: \"1\"");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("all-in-one.yaml");
    std::fs::write(&file, yaml).expect("write the YAML");
    let played = Played {
        file,
        volume: format!("{name}-data"),
    };
    podman(&["kube", "play", &played.file.display().to_string()]);
    let container = format!("{name}-pod-0-hanwha-delivery");
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, &container).await;
    assert_eq!(uid_of(&container), 65532, "the process runs as root");
    let confirmed = seed_scenario(&base).await;

    let probe = Probe::of(&container);
    assert!(
        probe.url.ends_with("/actuator/health"),
        "the liveness probe is {}",
        probe.url
    );
    assert!(probe.passes(&container), "the probe fails before the fault");
    assert_eq!(inspect(&container, "{{.RestartCount}}"), "0");

    let frozen = inspect(&container, "{{.State.Pid}}");
    signal_pid(&frozen, "STOP");
    let detected = Instant::now();
    let mut failures = 0;
    while failures < probe.failure_threshold {
        tokio::time::sleep(probe.period).await;
        if probe.passes(&container) {
            failures = 0;
        } else {
            failures += 1;
        }
        assert!(
            detected.elapsed() < probe.period * (probe.failure_threshold + 3),
            "the probe keeps passing on a frozen process"
        );
    }
    println!(
        "liveness: {failures} failures in a row after {:?} (period {:?}, timeout {:?}); killing the container",
        detected.elapsed(),
        probe.period,
        probe.timeout
    );
    signal_pid(&frozen, "KILL");
    let restarted = Instant::now();
    eventually("Podman to restart the container", || async {
        let count = inspect(&container, "{{.RestartCount}}");
        let pid = inspect(&container, "{{.State.Pid}}");
        (count == "1" && pid != "0" && pid != frozen).then_some(())
    })
    .await;
    wait_ready(&base, &container).await;
    assert!(
        probe.passes(&container),
        "the probe fails after the restart"
    );
    println!(
        "self-healing: restarted by Podman (restart count 0 -> 1), serving again {:?} after the kill",
        restarted.elapsed()
    );
    // Service resumes with the claim's data.
    let customer = login(&base, "customer").await;
    assert_eq!(
        customer.get(&format!("/orders/{confirmed}")).await.body["status"],
        "Confirmed"
    );
    let owner = login(&base, "owner").await;
    let again = place(&customer, "pizza", 1).await;
    wait_in_store(&owner, id(&again)).await;
}

/// compose.yaml makes the keys in a one-shot container on every `up`:
/// `keys generate --if-missing` keeps the pair of the first (tokens signed
/// before stay valid) and succeeds; without the flag an existing key is
/// still an error.
#[test]
fn keys_generate_if_missing_keeps_the_first_pair() {
    let dir = tempfile::tempdir().expect("temp dir");
    let generate = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hanwha-delivery"))
            .args(["keys", "generate", "--out"])
            .arg(dir.path())
            .args(extra)
            .output()
            .expect("run keys generate")
    };
    assert!(generate(&["--if-missing"]).status.success());
    let first = std::fs::read(dir.path().join("token.key")).expect("token.key");
    let again = generate(&["--if-missing"]);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        std::fs::read(dir.path().join("token.key")).expect("token.key"),
        first,
        "the key was replaced"
    );
    assert!(
        !generate(&[]).status.success(),
        "an existing key was overwritten"
    );
}
