//! A database server restarted under load: Order and Payment run as their
//! own processes on a private PostgreSQL or MariaDB that the test starts on
//! its own port (the shared servers are left alone), the rest of the fleet
//! on SQLite, events on NATS, orders through the gateway. The private
//! server stops for ~3 s mid-stream and starts again. Counts what was
//! acknowledged, lost and doubled, the 503s, the slowest answer during the
//! outage and how long the services took to recover.
//!
//! Runs when the server's binaries are installed; fails if they are but the
//! server cannot start; skips (saying why) only when they are absent.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

fn run(cmd: &mut Command, what: &str) {
    try_run(cmd, what).unwrap_or_else(|e| panic!("{e}"));
}

fn try_run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Starts a new server on a port of `support::ports`, on another one if
/// `try_start` fails (its port was taken).
fn start_on_some_port<S: Private>(server: &mut S, set_port: impl Fn(&mut S, u16)) {
    for _ in 0..ports::TRIES {
        set_port(server, ports::random());
        match server.try_start() {
            Ok(()) => return,
            Err(e) => eprintln!("{e}\ntrying another port"),
        }
    }
    panic!(
        "no free port for the private server in {} tries",
        ports::TRIES
    );
}

/// A database server of the test's own.
trait Private: Send {
    fn url(&self) -> String;
    fn stop(&mut self);
    /// Starts it on its port; `Err` when it could not (e.g. the port was
    /// taken).
    fn try_start(&mut self) -> Result<(), String>;

    /// Starts it again on the same port (no one else takes ports below the
    /// ephemeral range).
    fn start(&mut self) {
        self.try_start().unwrap_or_else(|e| panic!("{e}"));
    }
}

struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl Postgres {
    fn find() -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("postgres").exists() && bin.join("initdb").exists())
            .collect();
        found.sort();
        found.pop()
    }

    /// initdb refuses root: the server runs as `postgres` when we are root.
    fn as_postgres(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    fn new(bin: PathBuf) -> Postgres {
        let dir = tempfile::tempdir().expect("temp dir");
        if is_root() {
            run(
                Command::new("chown").arg("postgres").arg(dir.path()),
                "chown the PostgreSQL directory",
            );
        }
        let mut pg = Postgres { bin, dir, port: 0 };
        let data = pg.dir.path().join("data");
        run(
            pg.as_postgres("initdb").arg("-D").arg(&data).args([
                "-A",
                "trust",
                "-U",
                "root",
                "--no-sync",
            ]),
            "initdb",
        );
        start_on_some_port(&mut pg, |pg, port| pg.port = port);
        pg
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Private for Postgres {
    fn url(&self) -> String {
        format!("postgres://root@127.0.0.1:{}", self.port)
    }

    fn try_start(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            dir.display()
        );
        try_run(
            self.as_postgres("pg_ctl")
                .arg("-D")
                .arg(dir.join("data"))
                .arg("-l")
                .arg(dir.join("log"))
                .args(["-o", &options, "-w", "start"]),
            "start the private PostgreSQL",
        )
        .map_err(|e| {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            format!("{e}\n{log}")
        })
    }

    /// A fast shutdown: sessions are cut, as on a real restart.
    fn stop(&mut self) {
        run(
            self.as_postgres("pg_ctl")
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .args(["-m", "fast", "-w", "stop"]),
            "stop the private PostgreSQL",
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

struct MariaDb {
    server: &'static str,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl MariaDb {
    fn find() -> Option<(&'static str, &'static str)> {
        let on_path = |p: &str| {
            Command::new("sh")
                .args(["-c", &format!("command -v {p}")])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let server = ["mariadbd", "mysqld"].into_iter().find(|p| on_path(p))?;
        let install = ["mariadb-install-db", "mysql_install_db"]
            .into_iter()
            .find(|p| on_path(p))?;
        Some((server, install))
    }

    fn new(server: &'static str, install: &str) -> MariaDb {
        let dir = tempfile::tempdir().expect("temp dir");
        run(
            Command::new(install)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", dir.path().join("data").display()))
                .args([
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    "--user=root",
                ]),
            "mariadb-install-db",
        );
        let mut db = MariaDb {
            server,
            dir,
            port: 0,
            child: None,
        };
        start_on_some_port(&mut db, |db, port| db.port = port);
        db
    }
}

impl Private for MariaDb {
    fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    fn try_start(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        let log = dir.join("log");
        let mut child = Command::new(self.server)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--socket={}", dir.join("sock").display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .args([
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-log-bin",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=32M",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start mariadbd");
        ports::wait_ready(
            &mut child,
            &log,
            "ready for connections",
            "the private MariaDB",
        )?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGTERM: the server closes its sessions and shuts down cleanly.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            run(
                Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string()),
                "stop the private MariaDB",
            );
            child.wait().expect("reap mariadbd");
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

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

/// Order and Payment on the private server, the rest on SQLite, a gateway
/// in front.
struct Fleet {
    nats: String,
    stream: String,
    dir: tempfile::TempDir,
    procs: HashMap<&'static str, Process>,
}

impl Fleet {
    fn start(server: &str) -> Fleet {
        let nats = std::env::var("HANWHA_TEST_NATS_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let mut fleet = Fleet {
            nats,
            stream: format!("RESTART_{}", &tag[..12]),
            dir: tempfile::tempdir().expect("temp dir"),
            procs: HashMap::new(),
        };
        let on_server = |service: &str| Some(format!("{server}/hanwha_{service}"));
        for service in [
            "payment",
            "store",
            "identity",
            "delivery",
            "status",
            "notification",
            "order",
        ] {
            let db = match service {
                "order" | "payment" => on_server(service),
                _ => None,
            };
            fleet.launch(service, db, &[]);
        }
        let mut upstreams = Vec::new();
        for service in [
            "identity",
            "payment",
            "store",
            "status",
            "notification",
            "order",
            "delivery",
        ] {
            upstreams.push("--upstream".to_string());
            upstreams.push(format!("{service}={}", fleet.base(service)));
        }
        let upstreams: Vec<&str> = upstreams.iter().map(String::as_str).collect();
        fleet.launch("gateway", None, &upstreams);
        fleet
    }

    fn launch(&mut self, service: &'static str, database: Option<String>, extra: &[&str]) {
        let peer = |s: &str| {
            self.procs
                .get(s)
                .map(|p| p.base.clone())
                .unwrap_or_default()
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_hanwha-delivery"))
            .args(["serve", service, "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(self.dir.path())
            .args(extra)
            .envs(crate::support::fleet_env(self.dir.path()))
            // Those started after identity learn of disabled accounts.
            .envs(
                self.procs
                    .get("identity")
                    .map(|p| ("HANWHA_IDENTITY_URL", p.base.clone())),
            )
            .env("HANWHA_NATS_URL", &self.nats)
            .env("HANWHA_STREAM", &self.stream)
            .env(
                "HANWHA_SUBJECT_PREFIX",
                format!("{}.events", self.stream.to_lowercase()),
            )
            .envs(database.map(|url| ("HANWHA_DATABASE_URL", url)))
            .env("HANWHA_PAYMENT_URL", peer("payment"))
            .env("HANWHA_STORE_URL", peer("store"))
            .env("HANWHA_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a service");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("{service} printed nothing"))
            .expect("read");
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        std::thread::spawn(move || for _ in lines {});
        self.procs.insert(service, Process { child, base });
    }

    fn base(&self, service: &str) -> String {
        self.procs[service].base.clone()
    }

    fn running(&mut self) -> Vec<&'static str> {
        self.procs
            .iter_mut()
            .filter_map(|(s, p)| (!matches!(p.child.try_wait(), Ok(None))).then_some(*s))
            .collect()
    }

    async fn ready(&self, service: &str) -> bool {
        let url = format!("{}/actuator/ready", self.base(service));
        matches!(
            reqwest::Client::new()
                .get(url)
                .timeout(Duration::from_secs(2))
                .send()
                .await,
            Ok(r) if r.status() == StatusCode::OK
        )
    }

    /// Stops the processes and deletes the test's stream from the shared
    /// NATS server.
    async fn finish(mut self) {
        self.procs.clear();
        let prefix = format!("{}.events", self.stream.to_lowercase());
        if let Ok(bus) = platform::nats::NatsBus::connect(&self.nats, &self.stream, &prefix).await {
            let _ = bus.delete_stream().await;
        }
    }
}

/// Longer than the payment timeout and the pool's wait together, well
/// short of the client's 30 s timeout.
const FAIL_FAST: Duration = Duration::from_secs(15);

/// How long the services may take to serve again once the database is back.
const RECOVERY: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Tally {
    placed: HashMap<String, i64>,
    acknowledged: usize,
    unavailable: usize,
    /// 503s without Retry-After or showing internal text.
    bad_unavailable: Vec<String>,
    /// Other failures: 500s, gateway timeouts, no answer.
    unexpected: Vec<String>,
    /// The slowest answer, and when each answer came.
    slowest: Duration,
    answers: Vec<(Instant, StatusCode, Duration)>,
}

async fn worker(customer: Api, n: usize, tally: Arc<Mutex<Tally>>, stop: Instant) {
    let mut i = 0;
    while Instant::now() < stop {
        i += 1;
        let key = format!("restart-{n}-{i}");
        // The same key until it is placed: a retry must never place twice.
        loop {
            let sent = Instant::now();
            let r = try_reply(
                customer
                    .request(Method::POST, "/orders")
                    .header("Idempotency-Key", &key)
                    .timeout(Duration::from_secs(30))
                    .json(&json!({"menuName": "pizza", "qty": 1, "address": "suwon"})),
            )
            .await;
            let took = sent.elapsed();
            let stop_retrying = Instant::now() > stop + Duration::from_secs(40);
            {
                let mut t = tally.lock().expect("tally");
                t.slowest = t.slowest.max(took);
                let status = r
                    .as_ref()
                    .map(|r| r.status)
                    .unwrap_or(StatusCode::BAD_GATEWAY);
                t.answers.push((Instant::now(), status, took));
                match r {
                    Ok(r) if r.status == StatusCode::CREATED => {
                        t.acknowledged += 1;
                        t.placed
                            .insert(key.clone(), r.body["id"].as_i64().expect("id"));
                        break;
                    }
                    Ok(r) if r.status == StatusCode::SERVICE_UNAVAILABLE => {
                        t.unavailable += 1;
                        let detail = r.body["detail"].as_str().unwrap_or("").to_lowercase();
                        let leaks = ["sqlx", "error returned", "pool", "connection", "http://"]
                            .iter()
                            .any(|w| detail.contains(w));
                        if r.retry_after.is_none() || !r.problem() || leaks {
                            t.bad_unavailable
                                .push(format!("{:?} {} {}", r.retry_after, r.content_type, r.body));
                        }
                    }
                    // The key's first attempt is still running, or could not
                    // store its answer: its lease holds the key a while.
                    Ok(r) if r.status == StatusCode::CONFLICT && r.retry_after.is_some() => {}
                    Ok(r) => t.unexpected.push(format!("{} {}", r.status, r.body)),
                    Err(e) => t.unexpected.push(format!("no answer: {e}")),
                }
            }
            if stop_retrying {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn restart_under_load(db: &mut dyn Private, backend: &str) {
    let server = db.url();
    let mut fleet = Fleet::start(&server);
    let gateway = fleet.base("gateway");
    let login = |user: &'static str| {
        let gateway = gateway.clone();
        async move {
            let http = reqwest::Client::new();
            let r = reply(
                http.post(format!("{gateway}/auth/login"))
                    .json(&json!({"username": user, "password": user})),
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "login {user}: {}", r.body);
            Api {
                base: gateway.clone(),
                http,
                token: Some(r.body["token"].as_str().expect("token").to_string()),
            }
        }
    };
    let customer = login("customer").await;
    let admin = login("admin").await;
    // The first order also waits for the menu to reach the store.
    let first = eventually("a first order", || async {
        let r = customer
            .post(
                "/orders",
                json!({"menuName": "pizza", "qty": 1, "address": "suwon"}),
            )
            .await;
        (r.status == StatusCode::CREATED).then(|| r.body["id"].as_i64().expect("id"))
    })
    .await;

    let tally = Arc::new(Mutex::new(Tally::default()));
    tally
        .lock()
        .expect("tally")
        .placed
        .insert("first".into(), first);
    let stop = Instant::now() + Duration::from_secs(12);
    let workers: Vec<_> = (0..4)
        .map(|n| tokio::spawn(worker(customer.clone(), n, tally.clone(), stop)))
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let down_at = Instant::now();
    db.stop();
    eprintln!("{backend}: stopped at {:?}", down_at.elapsed());
    tokio::time::sleep(Duration::from_secs(3)).await;
    db.start();
    let up_at = Instant::now();
    eprintln!("{backend}: up again after {:?}", up_at - down_at);

    let ready_after = {
        let deadline = up_at + RECOVERY;
        loop {
            if fleet.ready("order").await && fleet.ready("payment").await {
                break Some(up_at.elapsed());
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    for w in workers {
        w.await.expect("worker");
    }
    let dead = fleet.running();
    assert!(dead.is_empty(), "services exited: {dead:?}");

    // The workers are done: the tally is final.
    let t = std::mem::take(&mut *tally.lock().expect("tally"));
    let first_201_after_up = t
        .answers
        .iter()
        .filter(|(at, status, _)| *at > up_at && *status == StatusCode::CREATED)
        .map(|(at, _, took)| (*at - *took).max(up_at) - up_at + *took)
        .min();
    let outage_slowest = t
        .answers
        .iter()
        .filter(|(at, _, took)| *at > down_at && *at - *took < up_at)
        .map(|(_, _, took)| *took)
        .max();

    // What the services hold now: every 201 once, with one payment; no
    // order charged that nobody was told about (after the sweep settled the
    // ones cut off mid-payment).
    let acked: HashSet<i64> = t.placed.values().copied().collect();
    let settle = Instant::now() + Duration::from_secs(15);
    let (orders, payments) = loop {
        let orders = admin.get("/orders?limit=1000").await;
        let payments = admin.get("/payments").await;
        let orders = orders.body.as_array().cloned().unwrap_or_default();
        let payments = payments.body.as_array().cloned().unwrap_or_default();
        let pending = orders.iter().any(|o| o["status"] == "PaymentPending");
        if !pending || Instant::now() > settle {
            break (orders, payments);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut payments_of: HashMap<i64, Vec<String>> = HashMap::new();
    for p in &payments {
        payments_of
            .entry(p["orderId"].as_i64().expect("orderId"))
            .or_default()
            .push(p["paymentStatus"].as_str().unwrap_or("").to_string());
    }
    let mut lost = Vec::new();
    let mut duplicated = Vec::new();
    for id in &acked {
        let found: Vec<&str> = orders
            .iter()
            .filter(|o| o["id"] == *id)
            .map(|o| o["status"].as_str().unwrap_or(""))
            .collect();
        // Nobody accepts these orders: a placed one stays Ordered.
        if found != ["Ordered"] {
            lost.push(format!("order {id}: found {found:?}"));
        }
        if payments_of.get(id).map(Vec::len) != Some(1) {
            lost.push(format!("order {id}: payments {:?}", payments_of.get(id)));
        }
    }
    for o in &orders {
        let id = o["id"].as_i64().expect("id");
        if acked.contains(&id) {
            continue;
        }
        let status = o["status"].as_str().unwrap_or("");
        if status != "PaymentFailed" {
            duplicated.push(format!("order {id} is {status} but was never acknowledged"));
        }
        if payments_of
            .get(&id)
            .is_some_and(|p| p.iter().any(|s| s == "Approved"))
        {
            duplicated.push(format!("order {id} was not placed but its charge was kept"));
        }
    }
    for (id, p) in &payments_of {
        if p.len() > 1 {
            duplicated.push(format!("order {id} has {} payments", p.len()));
        }
    }

    eprintln!(
        "{backend} restart: acknowledged {}, lost {}, duplicated {}, 503s {}, other failures {}, \
         slowest answer during the outage {:?} (slowest overall {:?}), ready again {:?} and \
         first order placed {:?} after the server was back; {} orders in all",
        t.acknowledged,
        lost.len(),
        duplicated.len(),
        t.unavailable,
        t.unexpected.len(),
        outage_slowest,
        t.slowest,
        ready_after,
        first_201_after_up,
        orders.len(),
    );
    assert!(
        t.unexpected.is_empty(),
        "{} unexpected answers, the first: {:#?}",
        t.unexpected.len(),
        &t.unexpected[..t.unexpected.len().min(5)]
    );
    assert!(
        t.bad_unavailable.is_empty(),
        "503s without Retry-After or with internal text: {:#?}",
        &t.bad_unavailable[..t.bad_unavailable.len().min(5)]
    );
    assert!(lost.is_empty(), "lost: {lost:#?}");
    assert!(duplicated.is_empty(), "duplicated: {duplicated:#?}");
    assert!(t.unavailable > 0, "the outage was never seen");
    // Fail fast: an answer during the outage comes after the payment
    // timeout (3 s) and the pool's wait for a connection at worst, never
    // after the client's own 30 s; the bound leaves a busy machine room.
    assert!(
        outage_slowest.is_some_and(|d| d < FAIL_FAST),
        "an answer during the outage took {outage_slowest:?}"
    );
    // Recovery by itself, without a restart of any service: within a
    // deadline a busy machine keeps (the time it took is printed above).
    let ready_after = ready_after.expect("order and payment never became ready again");
    assert!(ready_after < RECOVERY, "ready after {ready_after:?}");
    let first = first_201_after_up.expect("no order placed after the server was back");
    assert!(first < RECOVERY, "first order after {first:?}");
    fleet.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_under_load_loses_nothing_and_recovers_by_itself() {
    let _machine = exclusive().await;
    let Some(bin) = Postgres::find() else {
        eprintln!("no /usr/lib/postgresql/*/bin/postgres: skipping the PostgreSQL restart test");
        return;
    };
    let mut pg = Postgres::new(bin);
    restart_under_load(&mut pg, "PostgreSQL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_restarted_under_load_loses_nothing_and_recovers_by_itself() {
    let _machine = exclusive().await;
    let Some((server, install)) = MariaDb::find() else {
        eprintln!("no mariadbd/mysqld and mariadb-install-db: skipping the MariaDB restart test");
        return;
    };
    let mut db = MariaDb::new(server, install);
    restart_under_load(&mut db, "MariaDB").await;
}
