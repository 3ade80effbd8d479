//! The distributed shape: each service in its own process, events on a real
//! NATS JetStream, Order calling Payment and Store over HTTP, each service
//! on its own database: SQLite, PostgreSQL or MariaDB. Runs when
//! HANWHA_TEST_NATS_URL names a NATS server, and the PostgreSQL/MariaDB
//! fleets when HANWHA_TEST_POSTGRES_URL / HANWHA_TEST_MYSQL_URL name those
//! servers (CI always sets all three).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::fleet_command::signal_pid;
use crate::support::scenario::{self, drive_to_confirmed};
use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;

struct Process {
    child: Child,
    base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which database each service of a test fleet uses.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Storage {
    /// One SQLite file per service, shared by its replicas.
    Sqlite,
    /// Every service on PostgreSQL, each in its own database.
    Postgres,
    /// Every service on MariaDB, each in its own database.
    MariaDb,
    /// Order, payment and notification on PostgreSQL; store, delivery and
    /// identity on MariaDB; status on SQLite.
    Polyglot,
}

/// Every service's name, from the composition list.
fn service_names() -> impl Iterator<Item = &'static str> {
    services::ALL.into_iter().map(|s| s.name)
}

fn server(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_string()),
        _ => {
            eprintln!("{var} unset: skipping this fleet test");
            None
        }
    }
}

impl Storage {
    /// Database URL per service (absent: SQLite), or `None` when a server
    /// the storage needs is not named.
    fn databases(self, tag: &str) -> Option<HashMap<&'static str, String>> {
        let name = |service: &str| format!("hanwha_t_{tag}_{service}");
        let mut urls = HashMap::new();
        match self {
            Storage::Sqlite => {}
            Storage::Postgres => {
                let pg = server("HANWHA_TEST_POSTGRES_URL")?;
                for service in service_names() {
                    urls.insert(service, format!("{pg}/{}", name(service)));
                }
            }
            Storage::MariaDb => {
                let my = server("HANWHA_TEST_MYSQL_URL")?;
                for service in service_names() {
                    urls.insert(service, format!("{my}/{}", name(service)));
                }
            }
            Storage::Polyglot => {
                let pg = server("HANWHA_TEST_POSTGRES_URL")?;
                let my = server("HANWHA_TEST_MYSQL_URL")?;
                for service in ["order", "payment", "notification"] {
                    urls.insert(service, format!("{pg}/{}", name(service)));
                }
                for service in ["store", "delivery", "identity"] {
                    urls.insert(service, format!("{my}/{}", name(service)));
                }
            }
        }
        Some(urls)
    }
}

/// The broker a test fleet's events travel on, each fleet in a stream
/// (topic) of its own on a shared server.
#[derive(Clone, Debug)]
pub(crate) enum Bus {
    Nats { url: String, stream: String },
    Kafka { brokers: String, topic: String },
}

impl Bus {
    pub(crate) fn nats(url: &str, tag: &str) -> Bus {
        Bus::Nats {
            url: url.to_string(),
            stream: format!("FLEET_{tag}"),
        }
    }

    pub(crate) fn kafka(brokers: &str, tag: &str) -> Bus {
        Bus::Kafka {
            brokers: brokers.to_string(),
            topic: format!("fleet-{tag}"),
        }
    }

    /// What `serve` reads to reach this bus.
    fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Bus::Nats { url, stream } => vec![
                ("HANWHA_TRANSPORT", "nats".into()),
                ("HANWHA_NATS_URL", url.clone()),
                ("HANWHA_STREAM", stream.clone()),
                (
                    "HANWHA_SUBJECT_PREFIX",
                    format!("{}.events", stream.to_lowercase()),
                ),
            ],
            Bus::Kafka { brokers, topic } => vec![
                ("HANWHA_TRANSPORT", "kafka".into()),
                ("HANWHA_KAFKA_BROKERS", brokers.clone()),
                ("HANWHA_KAFKA_TOPIC", topic.clone()),
                ("HANWHA_KAFKA_PARTITIONS", "3".into()),
            ],
        }
    }

    /// Distinct events the stream (topic) holds. On NATS a republished
    /// event is deduplicated by its id; on Kafka a relay that sends again
    /// after a lost acknowledgement writes a copy, which every consumer's
    /// inbox skips: the copies are counted apart.
    pub(crate) async fn events(&self) -> EventsOnBus {
        match self {
            Bus::Nats { url, stream } => EventsOnBus {
                distinct: nats_bus(url, stream)
                    .await
                    .messages()
                    .await
                    .expect("count the stream"),
                copies: 0,
            },
            Bus::Kafka { brokers, topic } => {
                let (brokers, topic) = (brokers.clone(), topic.clone());
                let read =
                    tokio::task::spawn_blocking(move || crate::kafka::read_topic(&brokers, &topic))
                        .await
                        .expect("read the topic");
                let ids: std::collections::HashSet<String> = read
                    .iter()
                    .map(|m| m.value["eventId"].to_string())
                    .collect();
                EventsOnBus {
                    distinct: ids.len() as u64,
                    copies: (read.len() - ids.len()) as u64,
                }
            }
        }
    }

    /// Deletes the fleet's stream (topic) from the shared server.
    async fn delete(&self) {
        match self {
            Bus::Nats { url, stream } => nats_bus(url, stream)
                .await
                .delete_stream()
                .await
                .expect("delete the test stream"),
            Bus::Kafka { brokers, topic } => {
                let bus = platform::kafka::KafkaBus::connect(platform::kafka::KafkaConfig {
                    brokers: brokers.clone(),
                    topic: topic.clone(),
                    partitions: 3,
                    replication: 1,
                })
                .await
                .expect("reach Kafka");
                bus.delete_topic().await.expect("delete the test topic");
            }
        }
    }
}

async fn nats_bus(url: &str, stream: &str) -> platform::nats::NatsBus {
    let prefix = format!("{}.events", stream.to_lowercase());
    platform::nats::NatsBus::connect(url, stream, &prefix)
        .await
        .expect("reach NATS")
}

pub(crate) struct EventsOnBus {
    pub(crate) distinct: u64,
    pub(crate) copies: u64,
}

pub(crate) struct Fleet {
    pub(crate) bus: Bus,
    dir: tempfile::TempDir,
    databases: HashMap<&'static str, String>,
    procs: HashMap<&'static str, Process>,
    /// Extra environment of every process (e.g. the gateway's timeouts).
    env: Vec<(String, String)>,
}

impl Fleet {
    /// A fleet on `storage`, or `None` (skipped) when a server it needs is
    /// not named by the environment.
    fn start(nats: &str, storage: Storage) -> Option<Fleet> {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        Fleet::start_on_bus(Bus::nats(nats, &tag), &tag, storage)
    }

    /// A fleet on `bus` and `storage`, or `None` (skipped) when a database
    /// server it needs is not named by the environment.
    pub(crate) fn start_on_bus(bus: Bus, tag: &str, storage: Storage) -> Option<Fleet> {
        let databases = storage.databases(&tag[..12])?;
        Some(Fleet::start_with_env(bus, databases, &[]))
    }

    fn start_on(nats: &str, tag: &str, databases: HashMap<&'static str, String>) -> Fleet {
        Fleet::start_with_env(Bus::nats(nats, tag), databases, &[])
    }

    fn start_with_env(
        bus: Bus,
        databases: HashMap<&'static str, String>,
        env: &[(&str, &str)],
    ) -> Fleet {
        let mut fleet = Fleet {
            bus,
            dir: tempfile::tempdir().expect("temp dir"),
            databases,
            procs: HashMap::new(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        for service in [
            "payment",
            "store",
            "identity",
            "delivery",
            "status",
            "notification",
        ] {
            fleet.launch(service, "127.0.0.1:0");
        }
        fleet.launch_as("delivery-2", "delivery", "127.0.0.1:0", &[]);
        fleet.launch_as("delivery-3", "delivery", "127.0.0.1:0", &[]);
        fleet.launch("order", "127.0.0.1:0");
        fleet.launch_as("order-2", "order", "127.0.0.1:0", &[]);
        let mut upstreams = Vec::new();
        for service in ["identity", "payment", "store", "status", "notification"] {
            upstreams.push("--upstream".to_string());
            upstreams.push(format!("{service}={}", fleet.base(service)));
        }
        upstreams.push("--upstream".to_string());
        upstreams.push(format!(
            "order={},{}",
            fleet.base("order"),
            fleet.base("order-2")
        ));
        upstreams.push("--upstream".to_string());
        upstreams.push(format!(
            "delivery={},{},{}",
            fleet.base("delivery"),
            fleet.base("delivery-2"),
            fleet.base("delivery-3")
        ));
        let upstreams: Vec<&str> = upstreams.iter().map(String::as_str).collect();
        fleet.launch_as("gateway", "gateway", "127.0.0.1:0", &upstreams);
        fleet
    }

    fn launch(&mut self, service: &'static str, addr: &str) {
        self.launch_as(service, service, addr, &[]);
    }

    fn launch_as(&mut self, key: &'static str, service: &str, addr: &str, extra: &[&str]) {
        let payment = self
            .procs
            .get("payment")
            .map(|p| p.base.clone())
            .unwrap_or_default();
        let store = self
            .procs
            .get("store")
            .map(|p| p.base.clone())
            .unwrap_or_default();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hanwha-delivery"))
            .args(["serve", service, "--addr", addr, "--data-dir"])
            .arg(self.dir.path())
            .args(extra)
            .envs(crate::support::fleet_env(self.dir.path()))
            // Those started after identity learn of disabled accounts.
            .envs(
                self.procs
                    .get("identity")
                    .map(|p| ("HANWHA_IDENTITY_URL", p.base.clone())),
            )
            .envs(self.bus.env())
            .envs(
                self.databases
                    .get(service)
                    .map(|url| ("HANWHA_DATABASE_URL", url.as_str())),
            )
            .env("HANWHA_PAYMENT_URL", payment)
            .env("HANWHA_STORE_URL", store)
            .env("HANWHA_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a service");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = lines
            .next()
            .expect("the service printed nothing")
            .expect("read");
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        if let Some(url) = self.databases.get(service) {
            let name = url.rsplit('/').next().unwrap_or_default();
            assert!(line.contains(name), "{service} is not on {url}: {line}");
        }
        std::thread::spawn(move || for _ in lines {});
        self.procs.insert(key, Process { child, base });
    }

    fn base(&self, service: &str) -> String {
        self.procs[service].base.clone()
    }

    pub(crate) fn api(&self, service: &str, token: &Option<String>) -> Api {
        Api {
            base: self.base(service),
            http: reqwest::Client::new(),
            token: token.clone(),
        }
    }

    /// Stops every process, then deletes the test's stream (topic) from
    /// the broker and its databases from the shared database servers.
    pub(crate) async fn finish(mut self) {
        self.procs.clear();
        self.bus.delete().await;
        let databases = std::mem::take(&mut self.databases);
        for url in databases.values() {
            drop_database(url).await;
        }
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Fleet {
    /// A test that failed before `finish` still leaves no database behind
    /// on the shared servers.
    fn drop(&mut self) {
        self.procs.clear();
        let databases = std::mem::take(&mut self.databases);
        if databases.is_empty() {
            return;
        }
        // Its own thread and runtime: a destructor cannot await, and this
        // one may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                for url in databases.values() {
                    drop_database(url).await;
                }
            });
        })
        .join();
    }
}

async fn drop_database(url: &str) {
    use sqlx::Connection;
    let (server, name) = url.rsplit_once('/').expect("database name");
    if url.starts_with("postgres") {
        // FORCE: the server may not have reaped the killed processes'
        // sessions yet.
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
            .await
            .expect("connect to PostgreSQL");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .expect("drop the test database");
    } else {
        let mut admin = sqlx::MySqlConnection::connect(server)
            .await
            .expect("connect to MariaDB");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .await
            .expect("drop the test database");
    }
}

pub(crate) async fn token(fleet: &Fleet, user: &str) -> Option<String> {
    let identity = fleet.api("gateway", &None);
    let r = identity
        .post("/auth/login", json!({"username": user, "password": user}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["token"].as_str().map(str::to_string)
}

fn nats_url() -> Option<String> {
    match std::env::var("HANWHA_TEST_NATS_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            eprintln!("HANWHA_TEST_NATS_URL unset: skipping the fleet test");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_scenario_runs_through_the_gateway_on_postgres_and_nats() {
    let _machine = exclusive().await;
    seed_scenario_on(Storage::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_scenario_runs_through_the_gateway_on_mariadb_and_nats() {
    let _machine = exclusive().await;
    seed_scenario_on(Storage::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_scenario_runs_on_a_polyglot_fleet() {
    let _machine = exclusive().await;
    seed_scenario_on(Storage::Polyglot).await;
}

async fn seed_scenario_on(storage: Storage) {
    let Some(nats) = nats_url() else { return };
    let Some(fleet) = Fleet::start(&nats, storage) else {
        return;
    };
    seed_scenario(&fleet).await;
    fleet.finish().await;
}

/// The seed's scenario through the gateway, then a cancel with refund:
/// the confirmed order and the cancelled one.
pub(crate) async fn seed_scenario(fleet: &Fleet) -> (i64, i64) {
    for service in [
        "order",
        "payment",
        "store",
        "delivery",
        "status",
        "notification",
        "gateway",
    ] {
        let ready = fleet.api(service, &None).get("/actuator/ready").await;
        assert_eq!(ready.status, StatusCode::OK, "{service}: {}", ready.body);
    }
    let (c, o, r) = (
        token(fleet, "customer").await,
        token(fleet, "owner").await,
        token(fleet, "rider").await,
    );
    // Everything through the gateway, as a client of the fleet sees it.
    let orders = fleet.api("gateway", &c);
    let store = fleet.api("gateway", &o);
    let delivery = fleet.api("gateway", &r);
    let status = fleet.api("gateway", &c);
    let payments = fleet.api("gateway", &c);
    let notifications = fleet.api("gateway", &c);

    let placed = orders
        .post(
            "/orders",
            json!({"menuName": "pizza", "qty": 10, "address": "suwon"}),
        )
        .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
    assert_eq!(placed.body["price"], 10_000);
    let order = id(&placed.body);
    assert_eq!(
        payments.get(&format!("/payments/{order}")).await.body["paymentStatus"],
        "Approved"
    );

    drive_to_confirmed(&orders, &store, &delivery, order).await;
    let view = wait_history(&status, order, 7).await;
    assert_eq!(view["status"], "Confirmed");
    scenario::wait_notifications(&notifications, order, 7).await;

    // Cancel before the store accepts: refund and store cancellation across processes.
    let second = id(&orders
        .post(
            "/orders",
            json!({"menuName": "pizza", "qty": 1, "address": "suwon"}),
        )
        .await
        .body);
    scenario::cancel(&orders, second).await;
    scenario::wait_refunded(&payments, second).await;
    let too_late = store.put(&format!("/storeOrders/{second}/accept")).await;
    assert!(
        matches!(
            too_late.status,
            StatusCode::CONFLICT | StatusCode::NOT_FOUND
        ),
        "{}",
        too_late.body
    );
    eventually("store order cancelled", || async {
        (store.get(&format!("/storeOrders/{second}")).await.body["cookStatus"] == "Cancelled")
            .then_some(())
    })
    .await;
    let _ = fleet.data_dir();
    (order, second)
}

/// Order's call to Payment gives up after this (the binary's default).
const PAYMENT_TIMEOUT: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_down_answers_503_fast_charges_nothing_and_recovers_without_restart() {
    let _machine = exclusive().await;
    let Some(nats) = nats_url() else { return };
    let Some(mut fleet) = Fleet::start(&nats, Storage::Sqlite) else {
        return;
    };
    let c = token(&fleet, "customer").await;
    let orders = fleet.api("order", &c);
    let payment_addr = fleet
        .base("payment")
        .trim_start_matches("http://")
        .to_string();

    // Payment goes away.
    fleet.procs.remove("payment");
    for _ in 0..8 {
        let started = Instant::now();
        let r = orders
            .post(
                "/orders",
                json!({"menuName": "pizza", "qty": 1, "address": "suwon"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
        assert!(r.problem());
        // Fast: sooner than the payment timeout, so it did not wait for
        // the missing peer (a busy machine may take a good part of it).
        assert!(
            started.elapsed() < PAYMENT_TIMEOUT,
            "took {:?}",
            started.elapsed()
        );
        let order = r.body["orderId"].as_i64().expect("orderId");
        assert_eq!(
            orders.get(&format!("/orders/{order}")).await.body["status"],
            "PaymentFailed"
        );
    }

    // The order service reports the open circuit (metrics are for an
    // admin's token on the public listener, or the management listener).
    let metrics = fleet
        .api("order", &token(&fleet, "admin").await)
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("hanwha_circuit_state{")
                && l.contains(r#"peer="payment""#)
                && !l.ends_with(" 0")),
        "{metrics}"
    );

    // Payment comes back on the same address; orders succeed again once the
    // circuit lets a trial call through, without restarting Order.
    fleet.launch("payment", &payment_addr);
    let placed = eventually("orders succeed again", || async {
        let r = orders
            .post(
                "/orders",
                json!({"menuName": "pizza", "qty": 1, "address": "suwon"}),
            )
            .await;
        (r.status == StatusCode::CREATED).then_some(r.body)
    })
    .await;
    let payments = fleet.api("payment", &c);
    assert_eq!(
        payments
            .get(&format!("/payments/{}", id(&placed)))
            .await
            .body["paymentStatus"],
        "Approved"
    );
    // Nothing was charged for the orders that failed: only the new one is paid.
    let all = payments.get("/payments").await.body;
    let approved = all
        .as_array()
        .expect("payments")
        .iter()
        .filter(|p| p["paymentStatus"] == "Approved")
        .count();
    assert_eq!(approved, 1, "{all}");
    fleet.finish().await;
}

/// The seed's circuit-breaker drill: three delivery replicas, one marked
/// down with `PUT /actuator/down` (an admin's token on the replica itself;
/// never through the gateway); 100 requests through the gateway, none
/// fails and none reaches the down replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_marked_down_gets_no_traffic_and_nothing_fails() {
    let _machine = exclusive().await;
    let Some(nats) = nats_url() else { return };
    let Some(fleet) = Fleet::start(&nats, Storage::Sqlite) else {
        return;
    };
    let r = token(&fleet, "rider").await;
    let down = fleet.api("delivery-2", &token(&fleet, "admin").await);
    let down_id = down.get("/actuator/echo").await.body["instanceId"].clone();
    assert!(down_id.is_string());
    let gateway = fleet.api("gateway", &token(&fleet, "admin").await);
    assert_eq!(
        gateway.put("/delivery/actuator/down").await.status,
        StatusCode::NOT_FOUND,
        "the gateway routes no replica's down"
    );
    assert_eq!(
        fleet
            .api("delivery-2", &r)
            .put("/actuator/down")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(down.put("/actuator/down").await.status, StatusCode::OK);
    assert_eq!(
        down.get("/actuator/health").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let gateway = fleet.api("gateway", &r);
    // The gateway's health check takes it out within its interval.
    eventually("the down replica out of rotation", || async {
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(gateway.get("/delivery/actuator/echo").await.body["instanceId"].clone());
        }
        (!seen.contains(&down_id)).then_some(())
    })
    .await;
    let mut instances = std::collections::HashSet::new();
    for _ in 0..100 {
        let echo = gateway.get("/delivery/actuator/echo").await;
        assert_eq!(echo.status, StatusCode::OK, "{}", echo.body);
        assert_ne!(
            echo.body["instanceId"], down_id,
            "a request reached the down replica"
        );
        instances.insert(echo.body["instanceId"].to_string());
        let list = gateway.get("/deliveries").await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    }
    assert_eq!(
        instances.len(),
        2,
        "the two healthy replicas share the load"
    );
    fleet.finish().await;
}

/// The seed's zero-downtime drill: steady load through the gateway while the
/// two order replicas are restarted one after the other (SIGTERM: each stops
/// being ready, finishes what it has, exits). Every request succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_order_replicas_one_by_one_drops_no_request() {
    let _machine = exclusive().await;
    let Some(nats) = nats_url() else { return };
    // Both order replicas share one PostgreSQL database.
    let Some(fleet) = Fleet::start(&nats, Storage::Postgres) else {
        return;
    };
    zero_downtime_drill(fleet).await;
}

/// Steady keyed orders and reads through the gateway while the two order
/// replicas are restarted with SIGTERM one after the other: every request
/// succeeds.
pub(crate) async fn zero_downtime_drill(mut fleet: Fleet) {
    let c = token(&fleet, "customer").await;
    let gateway = fleet.api("gateway", &c);
    // The gateway balances over both replicas, so a restart of one leaves
    // the other serving.
    let mut instances = std::collections::HashSet::new();
    for _ in 0..6 {
        instances.insert(gateway.get("/order/actuator/echo").await.body["instanceId"].to_string());
    }
    assert_eq!(instances.len(), 2, "{instances:?}");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (gateway, stop) = (gateway.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed, mut n) = (0u32, Vec::new(), 0u32);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                // Writes carry an Idempotency-Key, which makes them safe to
                // send again to the other replica.
                let placed = reply(
                    gateway
                        .request(reqwest::Method::POST, "/orders")
                        .header("Idempotency-Key", format!("drill-{n}"))
                        .json(&json!({"menuName": "pizza", "qty": 1, "address": "suwon"})),
                )
                .await;
                let listed = gateway.get("/orders?limit=5").await;
                for r in [placed, listed] {
                    if r.status.is_success() {
                        ok += 1;
                    } else {
                        failed.push(format!("{} {}", r.status, r.body));
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, failed)
        })
    };
    for replica in ["order", "order-2"] {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let addr = fleet
            .base(replica)
            .trim_start_matches("http://")
            .to_string();
        let mut old = fleet.procs.remove(replica).expect("replica");
        let pid = old.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success());
        let deadline = Instant::now() + Duration::from_secs(15);
        while old.child.try_wait().expect("wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "{replica} did not stop after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        fleet.launch_as(replica, "order", &addr, &[]);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed) = load.await.expect("load");
    assert!(ok > 20, "too little load: {ok}");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        failed
    );
    fleet.finish().await;
}

/// A nats-server of the test's own, so that killing it hurts no other test.
struct OwnNats {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl OwnNats {
    /// Started on a port of `support::ports`, another one if it is taken.
    fn start() -> OwnNats {
        let mut nats = OwnNats {
            child: None,
            port: 0,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        for _ in 0..ports::TRIES {
            nats.port = ports::random();
            match nats.try_start() {
                Ok(()) => return nats,
                Err(e) => eprintln!("{e}\ntrying another port"),
            }
        }
        panic!("nats-server found no free port in {} tries", ports::TRIES);
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server on the same port and store directory.
    fn restart(&mut self) {
        self.try_start().unwrap_or_else(|e| panic!("{e}"));
    }

    fn try_start(&mut self) -> Result<(), String> {
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("nats-server");
        let log = self.dir.path().join("nats.log");
        let mut child = Command::new(binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("nats-server log"))
            .spawn()
            .expect("start nats-server (Debian package nats-server)");
        ports::wait_ready(&mut child, &log, "Server is ready", "nats-server")?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the burst of orders saw.
#[derive(Default)]
struct Burst {
    accepted: Vec<i64>,
    /// Orders created but answered with an error (payment unreachable).
    refused: Vec<i64>,
    /// Answers without an order (e.g. the store unreachable for the price).
    errors: Vec<String>,
}

/// kill -9 of Payment, then of Store, then of the NATS server, each in the
/// middle of a burst of orders through the gateway, each restarted after a
/// moment. Every order that was accepted completes its saga; every order
/// that was refused is charged nothing; and orders, payments, store orders,
/// deliveries, the status view and the events in the stream add up, with
/// nothing lost or duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_payment_store_and_nats_mid_burst_loses_and_duplicates_nothing() {
    let _machine = exclusive().await;
    if nats_url().is_none() {
        return;
    }
    let mut nats = OwnNats::start();
    kill_9_drill(&mut nats).await;
}

/// A broker of the test's own, to kill and start again on its storage.
pub(crate) trait OwnBroker {
    fn bus(&self, tag: &str) -> Bus;
    fn kill(&mut self);
    fn restart(&mut self);
}

impl OwnBroker for OwnNats {
    fn bus(&self, tag: &str) -> Bus {
        Bus::nats(&self.url(), tag)
    }
    fn kill(&mut self) {
        OwnNats::kill(self);
    }
    fn restart(&mut self) {
        OwnNats::restart(self);
    }
}

/// The kill -9 drill on a polyglot fleet whose events travel on `broker`:
/// Payment, then Store, then the broker, each killed mid-burst and started
/// again; everything is counted afterwards.
pub(crate) async fn kill_9_drill(broker: &mut dyn OwnBroker) {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let Some(mut fleet) = Fleet::start_on_bus(broker.bus(&tag), &tag, Storage::Polyglot) else {
        return;
    };
    let (c, o, r, a) = (
        token(&fleet, "customer").await,
        token(&fleet, "owner").await,
        token(&fleet, "rider").await,
        token(&fleet, "admin").await,
    );
    let gateway = fleet.api("gateway", &c);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let burst = std::sync::Arc::new(std::sync::Mutex::new(Burst::default()));
    let mut workers = Vec::new();
    for worker in 0..3 {
        let (gateway, stop, burst) = (gateway.clone(), stop.clone(), burst.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let r = reply(
                    gateway
                        .request(reqwest::Method::POST, "/orders")
                        .header("Idempotency-Key", format!("burst-{worker}-{n}"))
                        .json(&json!({"menuName": "pizza", "qty": 1, "address": "suwon"})),
                )
                .await;
                {
                    let mut b = burst.lock().expect("burst");
                    match (r.status, r.body["orderId"].as_i64()) {
                        (StatusCode::CREATED, Some(order)) => b.accepted.push(order),
                        (_, Some(order)) => b.refused.push(order),
                        (status, None) => b.errors.push(format!("{status} {}", r.body)),
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }

    let accepted_so_far =
        |burst: &std::sync::Mutex<Burst>| burst.lock().expect("burst").accepted.len();
    for victim in ["payment", "store", "broker"] {
        // Mid-burst: orders are flowing when the victim dies.
        let before = accepted_so_far(&burst);
        eventually("orders flowing before the kill", || async {
            (accepted_so_far(&burst) >= before + 5).then_some(())
        })
        .await;
        match victim {
            "broker" => broker.kill(),
            service => {
                // Dropping the process sends SIGKILL.
                let addr = fleet
                    .base(service)
                    .trim_start_matches("http://")
                    .to_string();
                fleet.procs.remove(service);
                tokio::time::sleep(Duration::from_millis(600)).await;
                fleet.launch(
                    if service == "payment" {
                        "payment"
                    } else {
                        "store"
                    },
                    &addr,
                );
                continue;
            }
        }
        // Ready all the same, and saying which dependency is missing.
        let payment = fleet.api("payment", &None);
        eventually("payment's readiness to name the broker", || async {
            let ready = payment.get("/actuator/ready").await;
            assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
            (ready.body["degraded"] == json!(["broker"])).then_some(())
        })
        .await;
        broker.restart();
    }
    let before = accepted_so_far(&burst);
    eventually("orders flowing after the last restart", || async {
        (accepted_so_far(&burst) >= before + 5).then_some(())
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        w.await.expect("worker");
    }
    let burst = std::mem::take(&mut *burst.lock().expect("burst"));
    eprintln!(
        "burst: {} accepted, {} refused with an order, {} refused without one",
        burst.accepted.len(),
        burst.refused.len(),
        burst.errors.len()
    );
    for e in &burst.errors {
        assert!(
            e.starts_with("503") || e.starts_with("502"),
            "only unavailability may refuse an order: {e}"
        );
    }

    // Every accepted order completes its saga on the restarted fleet.
    let (owner, rider, customer) = (
        fleet.api("gateway", &o),
        fleet.api("gateway", &r),
        fleet.api("gateway", &c),
    );
    for chunk in burst.accepted.chunks(8) {
        futures::future::join_all(
            chunk
                .iter()
                .map(|&order| drive_to_confirmed(&customer, &owner, &rider, order)),
        )
        .await;
    }

    // Count everything, per service, as the admin sees it.
    let admin = |service: &str| fleet.api(service, &a);
    let accepted: std::collections::HashSet<i64> = burst.accepted.iter().copied().collect();
    assert_eq!(
        accepted.len(),
        burst.accepted.len(),
        "an order id was answered twice"
    );
    let orders = admin("order").get("/orders?limit=1000").await.body;
    let orders = orders.as_array().expect("orders");
    for o in orders {
        let id = o["id"].as_i64().expect("id");
        let expected = if accepted.contains(&id) {
            "Confirmed"
        } else {
            "PaymentFailed"
        };
        assert_eq!(o["status"], expected, "order {id}: {o}");
    }
    assert_eq!(
        orders.len(),
        accepted.len() + burst.refused.len(),
        "orders stored vs orders answered"
    );
    let payments = eventually("refused orders charged nothing", || async {
        let all = admin("payment").get("/payments").await.body;
        let all = all.as_array()?.clone();
        all.iter()
            .all(|p| {
                let order = p["orderId"].as_i64().unwrap_or_default();
                accepted.contains(&order) == (p["paymentStatus"] == "Approved")
            })
            .then_some(all)
    })
    .await;
    let approved = payments
        .iter()
        .filter(|p| p["paymentStatus"] == "Approved")
        .count();
    assert_eq!(
        approved,
        accepted.len(),
        "one approved payment per accepted order"
    );
    let store_orders = admin("store").get("/storeOrders").await.body;
    let store_orders = store_orders.as_array().expect("store orders");
    assert_eq!(store_orders.len(), accepted.len(), "{store_orders:?}");
    assert!(
        store_orders.iter().all(|s| s["cookStatus"] == "Cooked"),
        "{store_orders:?}"
    );
    let deliveries = admin("delivery").get("/deliveries").await.body;
    let deliveries = deliveries.as_array().expect("deliveries");
    assert_eq!(deliveries.len(), accepted.len());
    assert!(
        deliveries
            .iter()
            .all(|d| d["deliveryStatus"] == "Delivered"),
        "{deliveries:?}"
    );

    // Events: each accepted order's seven in the status view and in the
    // customer's notifications, and the stream holds exactly the events
    // the view recorded, all orders together: none lost, none twice.
    let status = admin("status");
    let mut recorded = 0;
    for o in orders {
        let id = o["id"].as_i64().expect("id");
        let view = if accepted.contains(&id) {
            wait_history(&status, id, 7).await
        } else {
            wait_status(&status, id, "PaymentFailed").await
        };
        let history = view["history"].as_array().expect("history");
        let ids: std::collections::HashSet<_> =
            history.iter().map(|h| h["eventId"].clone()).collect();
        assert_eq!(
            ids.len(),
            history.len(),
            "an event twice in order {id}'s history"
        );
        recorded += history.len() as u64;
    }
    eventually("seven notifications per accepted order", || async {
        let notifications = customer.get("/notifications?limit=5000").await.body;
        let mut per_order: HashMap<i64, usize> = HashMap::new();
        for n in notifications.as_array()? {
            *per_order.entry(n["orderId"].as_i64()?).or_default() += 1;
        }
        for &order in &accepted {
            let n = per_order.get(&order).copied().unwrap_or(0);
            assert!(n <= 7, "order {order} has {n} notifications");
            if n < 7 {
                return None;
            }
        }
        Some(())
    })
    .await;
    let on_bus = eventually("the stream to hold what the view recorded", || async {
        let on_bus = fleet.bus.events().await;
        (on_bus.distinct == recorded).then_some(on_bus)
    })
    .await;
    assert_no_dead_letters_at(|service| admin(service)).await;
    eprintln!(
        "after kill -9 of payment, store and the broker ({:?}): {} orders ({} confirmed, {} payment failed), \
         {} payments ({approved} approved), {} store orders, {} deliveries, {} events (and {} copies on the bus)",
        fleet.bus,
        orders.len(),
        accepted.len(),
        orders.len() - accepted.len(),
        payments.len(),
        store_orders.len(),
        deliveries.len(),
        on_bus.distinct,
        on_bus.copies,
    );
    fleet.finish().await;
}

/// Cancel racing accept across processes: two store replicas share one
/// PostgreSQL database; the accepts go to one replica, the cancels through
/// the gateway to the order replicas, which ask the other store replica.
/// Each order still has exactly one winner, in every service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_racing_accepts_on_two_store_replicas_each_end_with_one_winner() {
    let _machine = exclusive().await;
    use futures::stream::{self, StreamExt};
    let Some(nats) = nats_url() else { return };
    let Some(mut fleet) = Fleet::start(&nats, Storage::Postgres) else {
        return;
    };
    fleet.launch_as("store-2", "store", "127.0.0.1:0", &[]);
    let (c, o) = (
        token(&fleet, "customer").await,
        token(&fleet, "owner").await,
    );
    let customer = fleet.api("gateway", &c);
    let owner_elsewhere = fleet.api("store-2", &o);
    let mut orders = Vec::new();
    for _ in 0..40 {
        let placed = customer
            .post(
                "/orders",
                json!({"menuName": "pizza", "qty": 1, "address": "suwon"}),
            )
            .await;
        assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
        orders.push(id(&placed.body));
    }
    for &order in &orders {
        wait_in_store(&owner_elsewhere, order).await;
    }
    let results: Vec<(i64, Winner)> = stream::iter(orders.clone())
        .map(|order| {
            let (customer, owner) = (customer.clone(), owner_elsewhere.clone());
            async move { (order, race(&customer, &owner, order).await) }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let cancelled = results.iter().filter(|(_, w)| *w == Winner::Cancel).count();
    eprintln!(
        "two store replicas on one PostgreSQL database: cancel won {cancelled}, accept won {}",
        results.len() - cancelled
    );
    let owner = fleet.api("gateway", &o);
    for (order, winner) in &results {
        wait_settled(&customer, &owner, *order, *winner).await;
    }
    fleet.finish().await;
}

/// Sends `kill -<sig>` to a fleet member. STOP freezes it as a stalled VM,
/// a GC pause or a swapped-out process would: the kernel still accepts its
/// connections and takes requests in, nothing answers. CONT resumes it.
fn signal(fleet: &Fleet, member: &str, sig: &str) {
    let pid = fleet.procs[member].child.id().to_string();
    assert!(Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("kill")
        .success());
}

/// One answer the freeze drill saw: what was asked, the status, how long it
/// took and, for orders, the order id.
#[derive(Debug, Clone)]
struct Seen {
    what: String,
    status: StatusCode,
    took: Duration,
    order: Option<i64>,
    body: String,
}

/// The gateway's timeouts in the freeze drill, set through the environment
/// as an operator would (12-factor).
const TRY_TIMEOUT: Duration = Duration::from_millis(1000);
const WRITE_TIMEOUT: Duration = Duration::from_millis(1500);
/// What scheduling on a small machine running a dozen processes may add.
const MARGIN: Duration = Duration::from_millis(1000);

/// A frozen process (SIGSTOP) is the fault a connect timeout cannot see:
/// its kernel accepts connections and requests, nothing answers. One of the
/// two order replicas and the only store replica freeze for 5 s under steady
/// reads, keyed orders and owners' accepts through the gateway. Reads of
/// orders never fail and take at most the per-try timeout (plus margin): the
/// other replica answers them. Accepts, which cannot be resent, answer
/// 504/503 within the write timeout instead of hanging for the freeze. After
/// SIGCONT both replicas serve again within seconds, and every answered
/// order and accept is there: a timed-out keyed order resent with its key
/// gets the first answer, never a second order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_order_replica_and_store_cost_callers_at_most_a_timeout_and_lose_nothing() {
    let _machine = exclusive().await;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let Some(nats) = nats_url() else { return };
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let try_ms = TRY_TIMEOUT.as_millis().to_string();
    let write_ms = WRITE_TIMEOUT.as_millis().to_string();
    let fleet = Fleet::start_with_env(
        Bus::nats(&nats, &tag),
        HashMap::new(),
        &[
            ("HANWHA_GATEWAY_TRY_TIMEOUT_MS", &try_ms),
            ("HANWHA_GATEWAY_WRITE_TIMEOUT_MS", &write_ms),
        ],
    );
    let (c, o, a) = (
        token(&fleet, "customer").await,
        token(&fleet, "owner").await,
        token(&fleet, "admin").await,
    );
    let customer = fleet.api("gateway", &c);
    let owner = fleet.api("gateway", &o);
    // Orders for the owner to accept while the store is frozen.
    let mut waiting = Vec::new();
    for _ in 0..12 {
        waiting.push(id(&place(&customer, "pizza", 1).await));
    }
    for &order in &waiting {
        wait_in_store(&owner, order).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let record = |seen: &Mutex<Vec<Seen>>, what: String, r: Reply, took: Duration| {
        seen.lock().expect("seen").push(Seen {
            what,
            status: r.status,
            took,
            order: r.body["id"].as_i64().or(r.body["orderId"].as_i64()),
            body: r.body.to_string(),
        });
    };
    let mut load = Vec::new();
    {
        let (api, stop, seen) = (customer.clone(), stop.clone(), seen.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                let r = api.get("/orders?limit=5").await;
                record(&seen, "read".into(), r, t.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    {
        let (api, stop, seen) = (customer.clone(), stop.clone(), seen.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let t = Instant::now();
                let r = reply(
                    api.request(reqwest::Method::POST, "/orders")
                        .header("Idempotency-Key", format!("freeze-{n}"))
                        .json(&json!({"menuName": "pizza", "qty": 1, "address": "suwon"})),
                )
                .await;
                record(&seen, format!("place freeze-{n}"), r, t.elapsed());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    {
        let (api, stop, seen, orders) =
            (owner.clone(), stop.clone(), seen.clone(), waiting.clone());
        load.push(tokio::spawn(async move {
            // The first accepts before the freeze, the rest during it.
            for order in orders {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let t = Instant::now();
                let r = api.put(&format!("/storeOrders/{order}/accept")).await;
                record(&seen, format!("accept {order}"), r, t.elapsed());
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(800)).await;
    signal(&fleet, "order-2", "-STOP");
    signal(&fleet, "store", "-STOP");
    // Keyed orders at the moment of the freeze, before any health check can
    // notice it: some reach the frozen replica, which takes them in. They
    // are collected after SIGCONT, so a gateway that waits for the
    // replica shows as slow answers, not as a test that never ends.
    let at_freeze: Vec<_> = (0..4)
        .map(|n| {
            let api = customer.clone();
            tokio::spawn(async move {
                let key = format!("at-freeze-{n}");
                let t = Instant::now();
                let r = reply(
                    api.request(reqwest::Method::POST, "/orders")
                        .header("Idempotency-Key", &key)
                        .json(&json!({"menuName": "pizza", "qty": 1, "address": "suwon"})),
                )
                .await;
                (format!("place {key}"), r, t.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    signal(&fleet, "order-2", "-CONT");
    signal(&fleet, "store", "-CONT");
    let resumed = Instant::now();
    let mut reached_frozen = 0;
    for task in at_freeze {
        let (what, r, took) = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("a keyed order at the freeze got no answer 20 s after SIGCONT")
            .expect("order task");
        reached_frozen += usize::from(r.status == StatusCode::GATEWAY_TIMEOUT);
        record(&seen, what, r, took);
    }
    // The resumed replica is back in rotation within about a health check
    // interval, not after a fixed ejection time.
    let echo = fleet.api("gateway", &None);
    let mut instances = std::collections::HashSet::new();
    while instances.len() < 2 {
        assert!(
            resumed.elapsed() < Duration::from_secs(4),
            "the resumed order replica was not back within 4 s"
        );
        let r = echo.get("/order/actuator/echo").await;
        if r.status == StatusCode::OK {
            instances.insert(r.body["instanceId"].to_string());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let back_after = resumed.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.expect("load");
    }
    let seen = std::mem::take(&mut *seen.lock().expect("seen"));

    let slowest = |kind: &str| {
        seen.iter()
            .filter(|s| s.what.starts_with(kind))
            .map(|s| s.took)
            .max()
            .unwrap_or_default()
    };
    let count = |kind: &str, ok: fn(StatusCode) -> bool| {
        seen.iter()
            .filter(|s| s.what.starts_with(kind) && ok(s.status))
            .count()
    };
    eprintln!(
        "freeze drill: reads {} ({} ok, slowest {:?}); orders {} ({} placed, slowest {:?}); \
         accepts {} ({} ok, slowest {:?}); order-2 back {back_after:?} after SIGCONT",
        count("read", |_| true),
        count("read", |s| s.is_success()),
        slowest("read"),
        count("place", |_| true),
        count("place", |s| s == StatusCode::CREATED),
        slowest("place"),
        count("accept", |_| true),
        count("accept", |s| s.is_success()),
        slowest("accept"),
    );
    let failed: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.what == "read" && !s.status.is_success())
        .collect();
    assert!(failed.is_empty(), "reads failed: {failed:?}");
    assert!(
        slowest("read") <= TRY_TIMEOUT + MARGIN,
        "a read took {:?}",
        slowest("read")
    );
    for s in seen.iter().filter(|s| !s.what.starts_with("read")) {
        assert!(
            s.took <= WRITE_TIMEOUT + MARGIN,
            "{} hung for {:?} ({} {})",
            s.what,
            s.took,
            s.status,
            s.body
        );
        assert!(
            matches!(
                s.status,
                StatusCode::OK
                    | StatusCode::CREATED
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ),
            "{}: {} {}",
            s.what,
            s.status,
            s.body
        );
    }
    assert!(
        count("accept", |s| !s.is_success()) > 0,
        "no accept met the frozen store"
    );
    assert!(reached_frozen > 0, "no keyed order met the frozen replica");

    // Everything recovers. An accept that timed out may have happened when
    // the store resumed: sent again, it is accepted now or was already.
    eventually("the store to answer again", || async {
        (owner.get("/menus").await.status == StatusCode::OK).then_some(())
    })
    .await;
    for &order in &waiting {
        let accepted_before = seen
            .iter()
            .any(|s| s.what == format!("accept {order}") && s.status == StatusCode::OK);
        if accepted_before {
            continue;
        }
        let r = owner.put(&format!("/storeOrders/{order}/accept")).await;
        assert!(
            r.status == StatusCode::OK
                || (r.status == StatusCode::CONFLICT && r.body["currentStatus"] == "Accepted"),
            "accept {order} after the freeze: {} {}",
            r.status,
            r.body
        );
    }
    for &order in &waiting {
        eventually(&format!("order {order} Accepted"), || async {
            (customer.get(&format!("/orders/{order}")).await.body["status"] == "Accepted")
                .then_some(())
        })
        .await;
    }
    // A keyed order that got no answer, sent again with its key, gets the
    // first answer if it was placed after all, or is placed now: once.
    let mut placed: std::collections::HashSet<i64> = seen
        .iter()
        .filter(|s| s.what.starts_with("place") && s.status == StatusCode::CREATED)
        .filter_map(|s| s.order)
        .collect();
    for s in seen
        .iter()
        .filter(|s| s.what.starts_with("place") && s.status == StatusCode::GATEWAY_TIMEOUT)
    {
        let key = s.what.trim_start_matches("place ").to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        let order = loop {
            let r = reply(
                customer
                    .request(reqwest::Method::POST, "/orders")
                    .header("Idempotency-Key", &key)
                    .json(&json!({"menuName": "pizza", "qty": 1, "address": "suwon"})),
            )
            .await;
            if r.status == StatusCode::CREATED {
                break id(&r.body);
            }
            assert!(
                Instant::now() < deadline,
                "{key} sent again: {} {}",
                r.status,
                r.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        placed.insert(order);
    }
    // Every answered order is stored and paid, once. An order no one was
    // told about (its request timed out, then failed when the replica
    // resumed, and its resend placed a new one) is PaymentFailed and
    // charged nothing.
    let admin = fleet.api("gateway", &a);
    let all = admin.get("/orders?limit=1000").await.body;
    let all = all.as_array().expect("orders");
    let answered: std::collections::HashSet<i64> =
        waiting.iter().chain(placed.iter()).copied().collect();
    assert_eq!(answered.len(), waiting.len() + placed.len());
    let stored: std::collections::HashSet<i64> = all.iter().map(id).collect();
    assert!(
        answered.is_subset(&stored),
        "answered orders missing: {:?}",
        answered.difference(&stored)
    );
    for o in all.iter().filter(|o| !answered.contains(&id(o))) {
        assert_eq!(
            o["status"], "PaymentFailed",
            "an order no one was told of: {o}"
        );
    }
    for o in all {
        let order = id(o);
        if answered.contains(&order) {
            let r = admin.get(&format!("/payments/{order}")).await;
            assert_eq!(
                r.body["paymentStatus"], "Approved",
                "order {order}: {}",
                r.body
            );
        } else {
            // A late approval is refunded automatically.
            eventually(&format!("order {order} charged nothing"), || async {
                let r = admin.get(&format!("/payments/{order}")).await;
                (r.body["paymentStatus"] != "Approved").then_some(())
            })
            .await;
        }
    }
    fleet.finish().await;
}

/// A broker outage is not a reason to take every endpoint away: ordering
/// works while NATS is down (the outbox keeps the events). Every process
/// stays ready, reports the broker down in /actuator/health and /metrics,
/// `POST /orders` answers 201, and the events reach the store once the
/// broker is back.
/// Sooner than the NATS client's 5 s connection timeout: an answer this
/// fast did not wait on the missing broker (a busy machine may take some
/// of it).
const BROKER_WAIT: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_keeps_every_process_ready_and_orders_placed() {
    let _machine = exclusive().await;
    if nats_url().is_none() {
        return;
    }
    let mut nats = OwnNats::start();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let fleet = Fleet::start_on(&nats.url(), &tag, HashMap::new());
    let (c, o) = (
        token(&fleet, "customer").await,
        token(&fleet, "owner").await,
    );
    let admin = token(&fleet, "admin").await;
    let customer = fleet.api("gateway", &c);
    let owner = fleet.api("gateway", &o);
    let before = id(&place(&customer, "pizza", 1).await);
    wait_in_store(&owner, before).await;

    nats.kill();
    let members = [
        "identity",
        "order",
        "order-2",
        "payment",
        "store",
        "delivery",
        "delivery-2",
        "delivery-3",
        "status",
        "notification",
        "gateway",
    ];
    // Ready throughout: sampled for two seconds from the kill on.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        for member in members {
            let t = Instant::now();
            let ready = fleet.api(member, &None).get("/actuator/ready").await;
            assert_eq!(
                ready.status,
                StatusCode::OK,
                "{member} not ready while the broker is down: {}",
                ready.body
            );
            assert!(t.elapsed() < BROKER_WAIT, "{member}: {:?}", t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The outage shows where operators look: health details and a gauge.
    for member in members.into_iter().filter(|m| *m != "gateway") {
        let api = fleet.api(member, &None);
        let health = eventually(&format!("{member} to report the broker down"), || async {
            let h = api.get("/actuator/health").await;
            (h.body["components"]["broker"]["status"] == "DOWN").then_some(h)
        })
        .await;
        assert_eq!(health.status, StatusCode::OK, "{member}: {}", health.body);
        let metrics = fleet
            .api(member, &admin)
            .request(reqwest::Method::GET, "/metrics")
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("hanwha_broker_connected{") && l.ends_with(" 0")),
            "{member}: {metrics}"
        );
    }
    let mut during = Vec::new();
    for _ in 0..6 {
        let t = Instant::now();
        during.push(id(&place(&customer, "pizza", 1).await));
        assert!(t.elapsed() < BROKER_WAIT, "{:?}", t.elapsed());
    }

    nats.restart();
    for &order in &during {
        wait_in_store(&owner, order).await;
    }
    let order = fleet.api("order", &None);
    eventually("order to report the broker up", || async {
        (order.get("/actuator/health").await.body["components"]["broker"]["status"] == "UP")
            .then_some(())
    })
    .await;
    fleet.finish().await;
}

/// A cancel whose call to a frozen store times out (503) while the store,
/// once resumed, applies it: Order follows the store's `StoreOrderCancelled`
/// event, so every order ends consistent: cancelled in Order and Store and
/// refunded, or untouched everywhere. Before that event, an order could
/// stay `Ordered` with its money held while the store had cancelled it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_lost_to_a_frozen_store_still_end_cancelled_and_refunded() {
    let _machine = exclusive().await;
    let Some(nats) = nats_url() else { return };
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let fleet = Fleet::start_on(&nats, &tag, HashMap::new());
    let (c, o) = (
        token(&fleet, "customer").await,
        token(&fleet, "owner").await,
    );
    let customer = fleet.api("gateway", &c);
    let owner = fleet.api("gateway", &o);
    // Whether the resumed store still handles a call its caller gave up on
    // depends on when it notices the closed connection; rounds repeat until
    // some did, and every round must end consistent.
    let mut cancelled = 0;
    for round in 0..5 {
        let mut orders = Vec::new();
        for _ in 0..6 {
            orders.push(id(&place(&customer, "pizza", 1).await));
        }
        for &order in &orders {
            wait_in_store(&owner, order).await;
        }
        signal(&fleet, "store", "-STOP");
        let mut unanswered = 0;
        for &order in &orders {
            let r = customer.put(&format!("/orders/{order}/cancel")).await;
            match r.status {
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => unanswered += 1,
                other => panic!(
                    "cancel of {order} during the freeze answered {other}: {}",
                    r.body
                ),
            }
        }
        signal(&fleet, "store", "-CONT");
        eprintln!(
            "round {round}: {unanswered} of {} cancels got no answer from the frozen store",
            orders.len()
        );
        for &order in &orders {
            let (state, store, payment) =
                eventually(&format!("order {order} consistent"), || async {
                    let state =
                        customer.get(&format!("/orders/{order}")).await.body["status"].clone();
                    let store = owner.get(&format!("/storeOrders/{order}")).await.body
                        ["cookStatus"]
                        .clone();
                    let payment = customer.get(&format!("/payments/{order}")).await.body
                        ["paymentStatus"]
                        .clone();
                    let consistent =
                        (state == "Cancelled" && store == "Cancelled" && payment == "Refunded")
                            || (state == "Ordered" && store == "Received" && payment == "Approved");
                    consistent.then_some((state, store, payment))
                })
                .await;
            eprintln!("order {order}: {state} / store {store} / payment {payment}");
            if state == "Cancelled" {
                cancelled += 1;
            }
        }
        if cancelled > 0 {
            break;
        }
    }
    assert!(
        cancelled > 0,
        "no cancel reached the store after it resumed; the drill showed nothing"
    );
    fleet.finish().await;
}

/// Orders placed while Payment is frozen are refused (503, "not placed");
/// when Payment resumes it finds their calls in its socket, past the
/// deadline Order sent with them, and charges nothing. Before the deadline
/// travelled with the call, Payment charged some of them and refunded them
/// later: "nothing was charged" was not true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_refused_while_payment_is_frozen_are_never_charged() {
    let _machine = exclusive().await;
    let Some(nats) = nats_url() else { return };
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let fleet = Fleet::start_on(&nats, &tag, HashMap::new());
    let c = token(&fleet, "customer").await;
    let customer = fleet.api("gateway", &c);
    id(&place(&customer, "pizza", 1).await);

    signal(&fleet, "payment", "-STOP");
    let mut refused = Vec::new();
    for _ in 0..8 {
        let r = customer
            .post(
                "/orders",
                json!({"menuName": "pizza", "qty": 1, "address": "suwon"}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "an order while payment is frozen: {}",
            r.body
        );
        refused.push(r.body["orderId"].as_i64().expect("the refused order's id"));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    signal(&fleet, "payment", "-CONT");

    // Payment has handled what waited in its socket once it answers again.
    let placed = id(&place(&customer, "pizza", 1).await);
    eventually(&format!("payment for order {placed}"), || async {
        (customer.get(&format!("/payments/{placed}")).await.status == StatusCode::OK).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut charged = Vec::new();
    for &order in &refused {
        let state = customer.get(&format!("/orders/{order}")).await.body["status"].clone();
        assert_eq!(state, "PaymentFailed", "refused order {order}");
        let p = customer.get(&format!("/payments/{order}")).await;
        let status = p.body["paymentStatus"]
            .as_str()
            .unwrap_or("none")
            .to_string();
        eprintln!("refused order {order}: payment {}", status);
        if p.status == StatusCode::OK && matches!(status.as_str(), "Approved" | "Refunded") {
            charged.push((order, status));
        }
    }
    assert!(
        charged.is_empty(),
        "orders refused with 'not placed' were charged: {charged:?}"
    );
    fleet.finish().await;
}

/// The gateway frozen while customers place keyed orders: their clients
/// give up, the resumed gateway passes on (or drops) what waited in its
/// socket, and each customer's retry with the same key ends with exactly
/// one paid order: nothing lost, nothing doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_gateway_loses_and_doubles_no_keyed_order() {
    let _machine = exclusive().await;
    let Some(nats) = nats_url() else { return };
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let fleet = Fleet::start_on(&nats, &tag, HashMap::new());
    let (c, a) = (
        token(&fleet, "customer").await,
        token(&fleet, "admin").await,
    );
    let customer = fleet.api("gateway", &c);
    let admin = fleet.api("gateway", &a);
    let body = json!({"menuName": "pizza", "qty": 1, "address": "suwon"});

    signal(&fleet, "gateway", "-STOP");
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .expect("client");
    let keys: Vec<String> = (0..10)
        .map(|i| format!("{tag}-frozen-gateway-{i}"))
        .collect();
    let sent: Vec<_> = keys
        .iter()
        .map(|key| {
            let req = impatient
                .post(format!("{}/orders", fleet.base("gateway")))
                .bearer_auth(c.clone().expect("token"))
                .header("idempotency-key", key)
                .json(&body);
            tokio::spawn(async move { req.send().await.is_err() })
        })
        .collect();
    let mut gave_up = 0;
    for s in sent {
        if s.await.expect("join") {
            gave_up += 1;
        }
    }
    signal(&fleet, "gateway", "-CONT");
    eprintln!(
        "{gave_up} of {} clients gave up on the frozen gateway",
        keys.len()
    );
    assert_eq!(
        gave_up,
        keys.len(),
        "a client was answered by a frozen gateway"
    );

    let mut answered = std::collections::HashSet::new();
    for key in &keys {
        let started = Instant::now();
        let order = loop {
            let r = reply(
                customer
                    .request(reqwest::Method::POST, "/orders")
                    .header("idempotency-key", key)
                    .json(&body),
            )
            .await;
            if r.status == StatusCode::CREATED {
                break id(&r.body);
            }
            assert!(
                r.status == StatusCode::CONFLICT && started.elapsed() < Duration::from_secs(25),
                "retry of {key}: {} {}",
                r.status,
                r.body
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert!(
            answered.insert(order),
            "two keys answered with order {order}"
        );
    }
    let orders = admin.get("/orders?limit=1000").await.body;
    let orders = orders.as_array().expect("orders");
    assert_eq!(orders.len(), keys.len(), "orders: {orders:?}");
    let payments = eventually("a payment per order", || async {
        let p = admin.get("/payments").await.body;
        (p.as_array()?.len() == keys.len()).then_some(p)
    })
    .await;
    assert!(payments
        .as_array()
        .expect("payments")
        .iter()
        .all(|p| p["paymentStatus"] == "Approved"));
    fleet.finish().await;
}

/// `hanwha-delivery fleet` itself: a member killed is restarted and says
/// so, every line a member writes carries its name, and killing the fleet
/// with SIGKILL leaves no member running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_command_restarts_a_killed_member_and_takes_its_members_with_it() {
    let _machine = exclusive().await;
    use crate::support::fleet_command::{running, LocalFleet};
    let Some(mut fleet) = LocalFleet::start() else {
        return;
    };
    let gateway = fleet.member("gateway").clone();
    assert_eq!(gateway.url, format!("http://127.0.0.1:{}", fleet.base + 8));
    let order = fleet.member("order");
    assert!(
        order.database.ends_with("/order.db") && fleet.member("order-2").database == order.database,
        "the banner names the replicas' one database: {:?}",
        fleet.members
    );
    fleet
        .wait_for_line("the gateway's relayed banner", |l| {
            l.starts_with("gateway ") && l.contains("| hanwha-delivery management on")
        })
        .await;

    signal_pid(gateway.pid, "-KILL");
    let exited = fleet
        .wait_for_line("the fleet saying the gateway exited", |l| {
            l.starts_with("fleet ") && l.contains("gateway exited")
        })
        .await;
    assert!(exited.contains("SIGKILL"), "{exited}");
    let restarted = fleet
        .wait_for_line("the fleet saying it restarted the gateway", |l| {
            l.starts_with("fleet ") && l.contains("gateway restarted (pid ")
        })
        .await;
    let new_pid: u32 = restarted
        .rsplit_once("(pid ")
        .and_then(|(_, rest)| rest.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no pid in {restarted}"));
    let http = reqwest::Client::new();
    eventually("the restarted gateway to log a customer in", || {
        let http = http.clone();
        let url = format!("{}/auth/login", gateway.url);
        async move {
            let r = http
                .post(url)
                .json(&json!({"username": "customer", "password": "customer"}))
                .send()
                .await
                .ok()?;
            (r.status() == StatusCode::OK).then_some(())
        }
    })
    .await;

    let mut pids: Vec<u32> = fleet.members.iter().map(|m| m.pid).collect();
    pids.retain(|pid| *pid != gateway.pid);
    pids.push(new_pid);
    assert!(pids.iter().all(|pid| running(*pid)), "{pids:?}");
    fleet.kill9();
    eventually("every member to end with the fleet", || {
        let left: Vec<u32> = pids.iter().copied().filter(|pid| running(*pid)).collect();
        async move { left.is_empty().then_some(()) }
    })
    .await;
    fleet.finish().await;
}

/// Two fleets on one host: their own ports, streams and subjects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fleets_run_side_by_side_on_their_own_ports_and_streams() {
    let _machine = exclusive().await;
    use crate::support::fleet_command::LocalFleet;
    let Some(one) = LocalFleet::start() else {
        return;
    };
    let two = LocalFleet::start().expect("the second fleet");
    assert_ne!(one.base, two.base);
    assert_ne!(one.stream, two.stream);
    for fleet in [&one, &two] {
        let gateway = Api {
            base: fleet.member("gateway").url.clone(),
            http: reqwest::Client::new(),
            token: None,
        };
        let r = gateway
            .post(
                "/auth/login",
                json!({"username": "customer", "password": "customer"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let customer = Api {
            token: r.body["token"].as_str().map(str::to_string),
            ..gateway
        };
        let order = place(&customer, "pizza", 1).await;
        wait_status(&customer, id(&order), "Ordered").await;
    }
    // Each fleet's events went to its own stream: deleting both succeeds.
    one.finish().await;
    two.finish().await;
}
