//! `hanwha-delivery rebuild status|notification` while sagas run: the
//! rebuilt views hold every order and every notification, the views keep
//! answering while they are rebuilt, a live page is told nothing twice, and
//! the dead letters stay.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::scenario::drive_to_confirmed;
use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn saga(customer: &Api, owner: &Api, rider: &Api) -> i64 {
    let order = id(&place(customer, "pizza", 1).await);
    drive_to_confirmed(customer, owner, rider, order).await;
    order
}

/// Runs the real binary's `rebuild` subcommand against the data directory,
/// as an operator would while the server runs.
async fn rebuild(data_dir: &Path, view: &'static str) -> Duration {
    let data_dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_hanwha-delivery"))
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["rebuild", view])
            .env("HANWHA_LOG", "warn")
            .output()
            .expect("run rebuild");
        assert!(
            out.status.success(),
            "rebuild {view}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        started.elapsed()
    })
    .await
    .expect("rebuild task")
}

/// What one SSE client was told: notification id and `(eventId, recipient)`.
type Told = Vec<(i64, String)>;

/// Follows the customer's live stream, reconnecting with `Last-Event-ID`
/// whenever `reconnect` is raised, until `stop` is raised and a quiet second
/// passed.
async fn follow(
    customer: Api,
    told: Arc<Mutex<Told>>,
    reconnect: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let mut last: Option<i64> = None;
    loop {
        let mut req = customer.request(reqwest::Method::GET, "/notifications/stream");
        if let Some(last) = last {
            req = req.header("Last-Event-ID", last.to_string());
        }
        let mut resp = req.send().await.expect("stream");
        assert_eq!(resp.status(), StatusCode::OK);
        let mut buf = String::new();
        loop {
            if reconnect.swap(false, Ordering::SeqCst) {
                break;
            }
            match tokio::time::timeout(Duration::from_millis(1000), resp.chunk()).await {
                Ok(chunk) => {
                    let Some(chunk) = chunk.expect("stream read") else {
                        break;
                    };
                    buf.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = buf.find("\n\n") {
                        let frame: String = buf.drain(..end + 2).collect();
                        let id = frame
                            .lines()
                            .find_map(|l| l.strip_prefix("id:"))
                            .and_then(|v| v.trim().parse::<i64>().ok());
                        let data = frame
                            .lines()
                            .find_map(|l| l.strip_prefix("data:"))
                            .and_then(|v| serde_json::from_str::<Value>(v.trim()).ok());
                        if let (Some(id), Some(n)) = (id, data) {
                            last = Some(id);
                            let key = format!(
                                "{}/{}",
                                n["eventId"].as_str().unwrap_or(""),
                                n["recipient"]
                            );
                            told.lock().expect("told").push((id, key));
                        }
                    }
                }
                Err(_) => {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                }
            }
        }
    }
}

/// Every notification as the admin lists it, paging by id.
async fn all_notifications(admin: &Api) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = admin
            .get(&format!("/notifications?after={after}&limit=5000"))
            .await
            .body;
        let page = page.as_array().expect("notifications").clone();
        let Some(last) = page.last() else { return out };
        after = last["id"].as_i64().expect("id");
        out.extend(page);
    }
}

/// The notifications the log calls for, by recipient: computed from every
/// event in `events.db` with the service's own rule.
async fn expected_notifications(data_dir: &Path) -> HashMap<String, HashSet<String>> {
    let log = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        data_dir.join("events.db").display()
    ))
    .await
    .expect("open the log");
    let payloads: Vec<String> = sqlx::query_scalar("SELECT payload FROM events ORDER BY seq")
        .fetch_all(&log)
        .await
        .expect("read the log");
    log.close().await;
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for payload in payloads {
        let Ok(ev) = serde_json::from_str::<contracts::Event>(&payload) else {
            continue;
        };
        for (recipient, _) in notification::recipients_and_message(&ev) {
            out.entry(recipient)
                .or_default()
                .insert(ev.event_id.to_string());
        }
    }
    out
}

/// Appends an event no consumer can read to the log.
async fn inject_poison(data_dir: &Path) -> String {
    let log = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        data_dir.join("events.db").display()
    ))
    .await
    .expect("open the log");
    let event_id = uuid::Uuid::now_v7().to_string();
    let payload = json!({"eventType": "MenuOrdered", "eventId": event_id, "orderId": 999_999, "broken": true});
    sqlx::query("INSERT INTO events (event_id, event_type, order_id, payload, source, logged_at) VALUES (?, 'MenuOrdered', 999999, ?, 'test', 0)")
        .bind(&event_id)
        .bind(payload.to_string())
        .execute(&log)
        .await
        .expect("inject");
    log.close().await;
    event_id
}

async fn dead_letter_ids(admin: &Api, consumer: &str) -> Vec<String> {
    admin
        .get(&format!("/admin/deadLetters/{consumer}"))
        .await
        .body
        .as_array()
        .expect("dead letters")
        .iter()
        .map(|d| d["eventId"].as_str().expect("eventId").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_under_load_keeps_every_order_and_notification_and_tells_nobody_twice() {
    let _machine = exclusive().await;
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let owner = Api::login(&server, "owner").await;
    let rider = Api::login(&server, "rider").await;
    let admin = Api::login(&server, "admin").await;

    let poison = inject_poison(&server.data_dir).await;
    for consumer in ["status", "notification"] {
        eventually(
            &format!("the poison in {consumer}'s dead letters"),
            || async {
                dead_letter_ids(&admin, consumer)
                    .await
                    .contains(&poison)
                    .then_some(())
            },
        )
        .await;
    }

    let told = Arc::new(Mutex::new(Told::new()));
    let reconnect = Arc::new(AtomicBool::new(false));
    let stop_following = Arc::new(AtomicBool::new(false));
    let follower = tokio::spawn(follow(
        customer.clone(),
        told.clone(),
        reconnect.clone(),
        stop_following.clone(),
    ));

    // Sagas run throughout, each worker one order at a time to Confirmed.
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..6 {
        let (c, o, r, stop) = (customer.clone(), owner.clone(), rider.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut orders = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                orders.push(saga(&c, &o, &r).await);
            }
            orders
        }));
    }
    // An order confirmed before the rebuilds, watched while they run: the
    // view must keep answering it as Confirmed, never 404 or older.
    let watched = saga(&customer, &owner, &rider).await;
    wait_status(&customer, watched, "Confirmed").await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let rebuilding = Arc::new(AtomicBool::new(true));
    let (wrong_answers, probes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let watcher = {
        let (c, rebuilding, wrong, probes) = (
            customer.clone(),
            rebuilding.clone(),
            wrong_answers.clone(),
            probes.clone(),
        );
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while rebuilding.load(Ordering::SeqCst) {
                let r = c.get(&format!("/statusChecks/{watched}")).await;
                probes.fetch_add(1, Ordering::SeqCst);
                if r.status != StatusCode::OK || r.body["status"] != "Confirmed" {
                    wrong.fetch_add(1, Ordering::SeqCst);
                    seen.push(format!("{} {}", r.status, r.body["status"]));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };
    let status_took = rebuild(&server.data_dir, "status").await;
    let notification_took = rebuild(&server.data_dir, "notification").await;
    rebuilding.store(false, Ordering::SeqCst);
    let seen_wrong = watcher.await.expect("watcher");
    // The page drops its connection and comes back with Last-Event-ID.
    reconnect.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let mut orders = vec![watched];
    for w in workers {
        orders.extend(w.await.expect("worker"));
    }
    eprintln!(
        "{} orders; rebuild status took {status_took:?}, notification {notification_took:?}; {} probes",
        orders.len(),
        probes.load(Ordering::SeqCst)
    );

    // Let the views settle, then compare every order with the order service.
    let newest = *orders.iter().max().expect("orders");
    let settle = Instant::now() + Duration::from_secs(20);
    while Instant::now() < settle {
        let r = customer.get(&format!("/statusChecks/{newest}")).await;
        if r.body["status"] == "Confirmed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut missing = Vec::new();
    let mut differ = Vec::new();
    for &order in &orders {
        let o = customer.get(&format!("/orders/{order}")).await.body;
        let v = customer.get(&format!("/statusChecks/{order}")).await;
        if v.status == StatusCode::NOT_FOUND {
            missing.push(order);
        } else if v.body["status"] != o["status"] {
            differ.push((order, o["status"].clone(), v.body["status"].clone()));
        }
    }

    let expected = expected_notifications(&server.data_dir).await;
    let expected_total: usize = expected.values().map(HashSet::len).sum();
    let listed = all_notifications(&admin).await;
    let mut by_recipient: HashMap<String, HashSet<String>> = HashMap::new();
    for n in &listed {
        by_recipient
            .entry(n["recipient"].as_str().expect("recipient").to_string())
            .or_default()
            .insert(n["eventId"].as_str().expect("eventId").to_string());
    }
    let listed_total: usize = by_recipient.values().map(HashSet::len).sum();

    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_following.store(true, Ordering::SeqCst);
    follower.await.expect("follower");
    let told = told.lock().expect("told").clone();
    let mut times_told: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, key) in &told {
        *times_told.entry(key.as_str()).or_default() += 1;
    }
    let told_twice = times_told.values().filter(|n| **n > 1).count();
    let ids: HashSet<i64> = told.iter().map(|(id, _)| *id).collect();
    let customer_box = format!("customer:{}", customer.get("/auth/me").await.body["userId"]);
    let customer_expected = expected.get(&customer_box).map(HashSet::len).unwrap_or(0);

    let status_dead = dead_letter_ids(&admin, "status").await;
    let notification_dead = dead_letter_ids(&admin, "notification").await;

    eprintln!(
        "{} of {} orders missing from the status view, {} with another status; \
         {listed_total} of {expected_total} notifications listed; the live page was told \
         {} notifications, {told_twice} of them more than once, under {} ids \
         ({customer_expected} expected for {customer_box}); {} wrong answers while rebuilding; \
         poison in dead letters: status {}, notification {}",
        missing.len(),
        orders.len(),
        differ.len(),
        told.len(),
        ids.len(),
        wrong_answers.load(Ordering::SeqCst),
        status_dead.contains(&poison),
        notification_dead.contains(&poison),
    );
    assert!(
        missing.is_empty(),
        "orders missing from the view: {missing:?}"
    );
    assert!(differ.is_empty(), "orders with another status: {differ:?}");
    assert_eq!(listed_total, expected_total, "notifications listed");
    assert_eq!(by_recipient, expected, "notifications by recipient");
    assert_eq!(listed.len(), listed_total, "a notification listed twice");
    assert_eq!(told_twice, 0, "the live page was told these again");
    assert_eq!(ids.len(), told.len(), "an id delivered twice");
    assert_eq!(
        times_told.len(),
        customer_expected,
        "the live page missed some"
    );
    assert!(
        seen_wrong.is_empty(),
        "answers while rebuilding: {seen_wrong:?}"
    );
    assert!(
        status_dead.contains(&poison),
        "status dead letters: {status_dead:?}"
    );
    assert!(
        notification_dead.contains(&poison),
        "notification dead letters: {notification_dead:?}"
    );
}
