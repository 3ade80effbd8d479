//! A full disk under load: the all-in-one's data directory is a small
//! tmpfs, a filler file takes the free space while sagas run, and is then
//! deleted. Counts what was acknowledged, lost and doubled, the 503s, and
//! how long the server took to take orders again.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Connection;

/// A tmpfs mounted for the test, unmounted when dropped (also when the test
/// panics), so a failed run leaves no mount behind.
struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_mb: u32) -> Tmpfs {
        let parent = tempfile::tempdir().expect("temp dir");
        let dir = parent.path().join("data");
        std::fs::create_dir_all(&dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs to mount a tmpfs (run as root, or in a container allowed to mount): \
             mount -t tmpfs -o size={size_mb}m tmpfs {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs {
            dir,
            _parent: parent,
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let out = Command::new("umount").arg(&self.dir).output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            // Something still holds a file open: detach it anyway.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).output();
        }
    }
}

/// Takes every free byte of the file system but `leave`, so the next few
/// commits find it full.
fn fill(path: &Path, leave: u64) -> u64 {
    let mut file = std::fs::File::create(path).expect("filler");
    let mut written = 0u64;
    for chunk in [1 << 20, 4096] {
        let block = vec![0xa5u8; chunk];
        while file.write_all(&block).is_ok() {
            written += chunk as u64;
        }
    }
    let _ = file.sync_all();
    let kept = written.saturating_sub(leave);
    file.set_len(kept).expect("shrink filler");
    kept
}

/// Bytes an unprivileged writer could still take on the file system.
fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("stat")
        .args(["-f", "-c", "%a %S"])
        .arg(dir)
        .output()
        .expect("run stat");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .split_whitespace()
        .map(|n| n.parse::<u64>().unwrap_or(0));
    parts.next().unwrap_or(0) * parts.next().unwrap_or(0)
}

#[derive(Default)]
struct Tally {
    /// Orders answered 201, by the key they were placed with.
    placed: HashMap<String, i64>,
    /// The last step each order was acknowledged for (200 or found done).
    reached: HashMap<i64, &'static str>,
    acknowledged: usize,
    unavailable: usize,
    /// 503s without Retry-After, or with internal text, or not problem+json.
    bad_unavailable: Vec<String>,
    /// Answers no fault should produce (500s and the like).
    unexpected: Vec<String>,
    /// When each 201 arrived.
    placed_at: Vec<Instant>,
    sagas_done: usize,
}

struct Load {
    customer: Api,
    owner: Api,
    rider: Api,
    tally: Mutex<Tally>,
}

/// How long the server may take to place orders again once the space is
/// back, on a machine as busy as it may be.
const RECOVERY: Duration = Duration::from_secs(30);

const STEPS: [(&str, &str, &str); 5] = [
    ("owner", "/storeOrders/{}/accept", "Accepted"),
    ("owner", "/storeOrders/{}/finish", "Cooked"),
    ("rider", "/deliveries/{}/pickup", "PickedUp"),
    ("rider", "/deliveries/{}/complete", "Delivered"),
    ("customer", "/orders/{}/confirm", "Confirmed"),
];

/// An answer, or a stand-in for a server that did not answer at all.
async fn send(req: reqwest::RequestBuilder) -> Reply {
    match try_reply(req).await {
        Ok(r) => r,
        Err(e) => Reply {
            status: StatusCode::BAD_GATEWAY,
            content_type: String::new(),
            body: json!(format!("no answer: {e}")),
            retry_after: None,
        },
    }
}

impl Load {
    fn api(&self, who: &str) -> &Api {
        match who {
            "owner" => &self.owner,
            "rider" => &self.rider,
            _ => &self.customer,
        }
    }

    /// Notes a 503 and checks its shape; returns how long to wait.
    fn unavailable(&self, what: &str, r: &Reply) -> Duration {
        let mut t = self.tally.lock().expect("tally");
        t.unavailable += 1;
        let detail = r.body["detail"].as_str().unwrap_or("").to_lowercase();
        let leaks = ["sqlite", "database", "error returned", "code:", "disk"]
            .iter()
            .any(|w| detail.contains(w));
        if !r.problem() || r.retry_after.is_none() || leaks {
            t.bad_unavailable.push(format!(
                "{what}: retry-after {:?}, content-type {}, {}",
                r.retry_after, r.content_type, r.body
            ));
        }
        // Honour Retry-After in spirit, but poll faster so the test is short.
        Duration::from_millis(100)
    }

    fn unexpected(&self, what: &str, r: &Reply) {
        self.tally
            .lock()
            .expect("tally")
            .unexpected
            .push(format!("{what}: {} {}", r.status, r.body));
    }

    /// Places one order with a key, retrying with the same key until 201.
    async fn place(&self, key: &str, until: Instant) -> Option<i64> {
        while Instant::now() < until {
            let r = send(
                self.customer
                    .request(Method::POST, "/orders")
                    .header("Idempotency-Key", key)
                    .json(&json!({"menuName": "pizza", "qty": 1, "address": "suwon"})),
            )
            .await;
            match r.status {
                StatusCode::CREATED => {
                    let id = r.body["id"].as_i64().expect("id");
                    let mut t = self.tally.lock().expect("tally");
                    t.acknowledged += 1;
                    t.placed.insert(key.to_string(), id);
                    t.reached.insert(id, "Ordered");
                    t.placed_at.push(Instant::now());
                    return Some(id);
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    let wait = self.unavailable("place", &r);
                    tokio::time::sleep(wait).await;
                }
                // The key's first attempt could not record its answer:
                // the key is held for its lease.
                StatusCode::CONFLICT if r.retry_after.is_some() => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => {
                    self.unexpected("place", &r);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        None
    }

    /// Takes an order through one step; retries until the step is
    /// acknowledged or the order is seen past it.
    async fn step(&self, id: i64, step: usize, until: Instant) -> bool {
        let (who, path, target) = STEPS[step];
        let path = path.replace("{}", &id.to_string());
        while Instant::now() < until {
            let r = send(self.api(who).request(Method::PUT, &path)).await;
            match r.status {
                StatusCode::OK => {
                    let mut t = self.tally.lock().expect("tally");
                    t.acknowledged += 1;
                    t.reached.insert(id, target);
                    return true;
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    let wait = self.unavailable(&path, &r);
                    tokio::time::sleep(wait).await;
                }
                // Not there yet (events travel) or already done by an
                // attempt whose answer was lost.
                StatusCode::NOT_FOUND | StatusCode::CONFLICT => {
                    let o =
                        send(self.customer.request(Method::GET, &format!("/orders/{id}"))).await;
                    if o.body["status"] == target {
                        self.tally.lock().expect("tally").reached.insert(id, target);
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
                _ => {
                    self.unexpected(&path, &r);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        false
    }

    /// Runs sagas one after the other until `stop_new`; finishes the one in
    /// hand by `give_up`.
    async fn worker(self: Arc<Self>, n: usize, stop_new: Arc<Mutex<Instant>>, give_up: Instant) {
        let mut i = 0;
        while Instant::now() < *stop_new.lock().expect("tally") {
            i += 1;
            let key = format!("disk-{n}-{i}");
            let Some(id) = self.place(&key, give_up).await else {
                return;
            };
            for step in 0..STEPS.len() {
                if !self.step(id, step, give_up).await {
                    return;
                }
            }
            self.tally.lock().expect("tally").sagas_done += 1;
        }
    }
}

async fn integrity_check(db: &Path) -> String {
    let url = format!("sqlite://{}", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("integrity_check {}: {e}", db.display()));
    let _ = conn.close().await;
    rows.join("; ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_answers_503_loses_nothing_and_recovers_without_restart() {
    let _machine = exclusive().await;
    // Declared first so that it is dropped last, after the server stopped.
    let disk = Tmpfs::mount(48);
    let data = disk.dir.join("data");
    let mut server = Server::start_in(&data, &[]);
    let load = Arc::new(Load {
        customer: Api::login(&server, "customer").await,
        owner: Api::login(&server, "owner").await,
        rider: Api::login(&server, "rider").await,
        tally: Mutex::new(Tally::default()),
    });
    let admin = Api::login(&server, "admin").await;

    let started = Instant::now();
    // Room for 20 s of full disk and the recovery after it.
    let give_up = started + Duration::from_secs(90);
    let stop_new = Arc::new(Mutex::new(give_up));
    let workers: Vec<_> = (0..6)
        .map(|n| tokio::spawn(load.clone().worker(n, stop_new.clone(), give_up)))
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_full = load.tally.lock().expect("tally").acknowledged;
    let filler = disk.dir.join("filler");
    let filled = fill(&filler, 256 * 1024);
    let full_at = Instant::now();
    eprintln!(
        "disk: filler of {} MiB leaves 256 KiB; {before_full} acknowledged before",
        filled >> 20
    );

    // Full for a while: the server must keep answering (503), not die.
    // SQLite reuses the blocks its WAL already holds, so how soon a commit
    // needs a new block depends on the write rate: stay full for at least
    // 5 s and until the first 503 (at most 20 s).
    let mut saw_full = None;
    while full_at.elapsed() < Duration::from_secs(5)
        || (saw_full.is_none() && full_at.elapsed() < Duration::from_secs(20))
    {
        if saw_full.is_none() && load.tally.lock().expect("tally").unavailable > 0 {
            saw_full = Some(full_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let free_while_full = free_bytes(&disk.dir);
    let alive_while_full = server.is_running();
    let health = send(admin.request(Method::GET, "/actuator/health")).await;
    eprintln!(
        "while full: process alive {alive_while_full}, health {}, {free_while_full} bytes free",
        health.status
    );

    std::fs::remove_file(&filler).expect("free the space");
    let freed_at = Instant::now();
    // Run on for a few seconds after the space is back and until an order
    // is placed again (how soon depends on the machine's speed: the time
    // is printed, the deadline is generous), then let every worker finish
    // the saga in hand.
    loop {
        let placed_again = load
            .tally
            .lock()
            .expect("tally")
            .placed_at
            .iter()
            .any(|at| *at > freed_at);
        let ran_on = freed_at.elapsed() >= Duration::from_secs(4);
        if (placed_again && ran_on) || freed_at.elapsed() > RECOVERY {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    *stop_new.lock().expect("tally") = Instant::now();
    for w in workers {
        w.await.expect("worker");
    }
    assert!(alive_while_full, "the server died on a full disk");
    assert!(server.is_running(), "the server died");

    // The workers are done: the tally is final.
    let t = std::mem::take(&mut *load.tally.lock().expect("tally"));
    let recovered = t
        .placed_at
        .iter()
        .filter(|at| **at > freed_at)
        .min()
        .map(|at| at.duration_since(freed_at));

    // An order answered 503 may have been charged before its own commit
    // failed; the payment sweep must refund it, or the customer pays for an
    // order they were told was not placed.
    let acked_now: HashSet<i64> = t.placed.values().copied().collect();
    let kept = || async {
        let orders = admin.get("/orders?limit=1000").await.body;
        let payments = admin.get("/payments").await.body;
        let unsettled = orders
            .as_array()
            .expect("orders")
            .iter()
            .filter(|o| o["status"] == "PaymentPending")
            .count();
        let kept: Vec<i64> = payments
            .as_array()
            .expect("payments")
            .iter()
            .filter(|p| p["paymentStatus"] == "Approved")
            .filter_map(|p| p["orderId"].as_i64())
            .filter(|id| !acked_now.contains(id))
            .collect();
        (unsettled, kept)
    };
    let settle_deadline = Instant::now() + Duration::from_secs(15);
    let (unsettled, kept_charges) = loop {
        let (unsettled, kept) = kept().await;
        if (unsettled == 0 && kept.is_empty()) || Instant::now() > settle_deadline {
            break (unsettled, kept);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Every acknowledged order, as the services hold it now.
    let orders = admin.get("/orders?limit=1000").await.body;
    let orders = orders.as_array().expect("orders");
    let payments = admin.get("/payments").await.body;
    let payments = payments.as_array().expect("payments");
    let mut payments_per_order: HashMap<i64, usize> = HashMap::new();
    for p in payments {
        *payments_per_order
            .entry(p["orderId"].as_i64().expect("orderId"))
            .or_default() += 1;
    }
    let acked: HashSet<i64> = t.placed.values().copied().collect();
    let mut lost = Vec::new();
    for (&id, &reached) in &t.reached {
        let o = orders.iter().find(|o| o["id"] == id);
        let status = o.map(|o| o["status"].as_str().unwrap_or("").to_string());
        let rank = |s: &str| {
            [
                "Ordered",
                "Accepted",
                "Cooked",
                "PickedUp",
                "Delivered",
                "Confirmed",
            ]
            .iter()
            .position(|x| *x == s)
        };
        let ok = match &status {
            Some(s) => rank(s) >= rank(reached) && rank(s).is_some(),
            None => false,
        };
        if !ok {
            lost.push(format!(
                "order {id}: acknowledged {reached}, now {status:?}"
            ));
        }
    }
    // A paid order nobody was told about, or a second charge, is a double.
    let mut duplicated = Vec::new();
    for o in orders {
        let id = o["id"].as_i64().expect("id");
        let status = o["status"].as_str().unwrap_or("");
        if !acked.contains(&id) && !matches!(status, "PaymentFailed" | "PaymentPending") {
            duplicated.push(format!("order {id} is {status} but was never acknowledged"));
        }
        if payments_per_order.get(&id).copied().unwrap_or(0) > 1 {
            duplicated.push(format!("order {id} has several payments"));
        }
    }
    for id in &kept_charges {
        duplicated.push(format!("order {id} was not placed but its charge was kept"));
    }
    for id in &acked {
        if payments_per_order.get(id).copied().unwrap_or(0) != 1 {
            lost.push(format!("order {id}: no payment"));
        }
    }
    // Every acknowledged order ran its saga to the end, in every view.
    let mut unfinished = Vec::new();
    for id in &acked {
        let v = admin.get(&format!("/statusChecks/{id}")).await;
        if v.body["status"] != "Confirmed" {
            unfinished.push(format!("order {id}: status view {}", v.body["status"]));
        }
    }

    eprintln!(
        "full disk: acknowledged {} ({} orders, {} sagas finished), lost {}, duplicated {}, \
         503s {} (first {:?} after the disk filled), other failures {}, \
         first order placed {:?} after the space was freed; {} orders in all, {} left unsettled",
        t.acknowledged,
        acked.len(),
        t.sagas_done,
        lost.len(),
        duplicated.len(),
        t.unavailable,
        saw_full,
        t.unexpected.len(),
        recovered,
        orders.len(),
        unsettled,
    );
    assert!(
        t.unexpected.is_empty(),
        "unexpected answers ({}), the first: {:#?}",
        t.unexpected.len(),
        &t.unexpected[..t.unexpected.len().min(5)]
    );
    assert!(
        t.unavailable > 0,
        "the disk never filled up: no 503 ({} MiB filler, {free_while_full} bytes free after 20 s)",
        filled >> 20
    );
    assert!(
        t.bad_unavailable.is_empty(),
        "503s without Retry-After or with internal text: {:#?}",
        &t.bad_unavailable[..t.bad_unavailable.len().min(5)]
    );
    assert!(lost.is_empty(), "lost: {lost:#?}");
    assert!(duplicated.is_empty(), "duplicated: {duplicated:#?}");
    assert!(unfinished.is_empty(), "unfinished sagas: {unfinished:#?}");
    assert_eq!(unsettled, 0, "orders left waiting for a payment");
    // Orders are taken again without a restart.
    let recovered = recovered.expect("no order was placed after the space was freed");
    assert!(
        recovered < RECOVERY,
        "took {recovered:?} to take orders again"
    );

    server.kill9();
    let mut checked = 0;
    for entry in std::fs::read_dir(&data).expect("data dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "db") {
            let verdict = integrity_check(&path).await;
            assert_eq!(verdict, "ok", "{}", path.display());
            checked += 1;
        }
    }
    eprintln!("integrity_check ok on {checked} SQLite files");
    assert!(
        checked >= 7,
        "expected every service's file, checked {checked}"
    );
}
