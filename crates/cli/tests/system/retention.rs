//! Retention on the real binary with periods of a second: after sagas ran,
//! the idempotency keys, inbox rows and the event log shrink to nothing
//! while orders, payments and the views stay; `rebuild status` and `rebuild
//! notification` then start from the snapshots and make the same views; and
//! an event published again after its inbox rows expired changes nothing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};

/// Every service's name, from the composition list.
fn service_names() -> impl Iterator<Item = &'static str> {
    services::ALL.into_iter().map(|s| s.name)
}

async fn open(data_dir: &Path, file: &str) -> SqliteConnection {
    let options = SqliteConnectOptions::new()
        .filename(data_dir.join(file))
        .busy_timeout(Duration::from_secs(10));
    SqliteConnection::connect_with(&options)
        .await
        .unwrap_or_else(|e| panic!("open {file}: {e}"))
}

async fn count(data_dir: &Path, file: &str, table: &str) -> i64 {
    let mut conn = open(data_dir, file).await;
    let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("count {file} {table}: {e}"));
    conn.close().await.ok();
    n
}

async fn total(data_dir: &Path, table: &str) -> i64 {
    let mut n = 0;
    for s in service_names() {
        n += count(data_dir, &format!("{s}.db"), table).await;
    }
    n
}

/// Every row of both views, as text, in a fixed order; row ids the swap
/// renumbers (status history) are left out, notification ids are kept.
async fn views(data_dir: &Path) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut status = open(data_dir, "status.db").await;
    let checks = sqlx::query(
        "SELECT order_id, status, COALESCE(payment_status, '-'), menu_name, qty, price, store_id, customer_id, COALESCE(rider_id, -1), updated_at
         FROM status_checks ORDER BY order_id",
    )
    .fetch_all(&mut status)
    .await
    .expect("checks")
    .iter()
    .map(|r| {
        format!(
            "{} {} {} {} {} {} {} {} {} {}",
            r.get::<i64, _>(0),
            r.get::<String, _>(1),
            r.get::<String, _>(2),
            r.get::<String, _>(3),
            r.get::<i64, _>(4),
            r.get::<i64, _>(5),
            r.get::<i64, _>(6),
            r.get::<i64, _>(7),
            r.get::<i64, _>(8),
            r.get::<i64, _>(9)
        )
    })
    .collect();
    let history = sqlx::query(
        "SELECT order_id, event_id, event_type, COALESCE(status, '-'), actor, at FROM status_history ORDER BY order_id, at, id",
    )
    .fetch_all(&mut status)
    .await
    .expect("history")
    .iter()
    .map(|r| {
        format!(
            "{} {} {} {} {} {}",
            r.get::<i64, _>(0),
            r.get::<String, _>(1),
            r.get::<String, _>(2),
            r.get::<String, _>(3),
            r.get::<String, _>(4),
            r.get::<i64, _>(5)
        )
    })
    .collect();
    let mut notes = open(data_dir, "notification.db").await;
    let notifications =
        sqlx::query("SELECT id, recipient, event_id, message FROM notifications ORDER BY id")
            .fetch_all(&mut notes)
            .await
            .expect("notifications")
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {}",
                    r.get::<i64, _>(0),
                    r.get::<String, _>(1),
                    r.get::<String, _>(2),
                    r.get::<String, _>(3)
                )
            })
            .collect();
    (checks, history, notifications)
}

fn run_tool(data_dir: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hanwha-delivery"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("HANWHA_LOG", "warn")
        .output()
        .expect("run the tool");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "{args:?}: {stdout}{stderr}");
    (stdout, stderr)
}

async fn keyed(api: &Api, method: Method, path: &str, key: &str, body: Option<Value>) -> Reply {
    let mut req = api.request(method, path).header("Idempotency-Key", key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    reply(req).await
}

/// A whole saga with an `Idempotency-Key` on every write.
async fn saga(customer: &Api, owner: &Api, rider: &Api, n: usize) -> i64 {
    let r = keyed(
        customer,
        Method::POST,
        "/orders",
        &format!("place-{n}"),
        Some(json!({"menuName": "pizza", "qty": 1, "address": "suwon"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let order = id(&r.body);
    wait_in_store(owner, order).await;
    for step in ["accept", "finish"] {
        let r = keyed(
            owner,
            Method::PUT,
            &format!("/storeOrders/{order}/{step}"),
            &format!("{step}-{n}"),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{step}: {}", r.body);
    }
    wait_in_deliveries(rider, order).await;
    for step in ["pickup", "complete"] {
        let r = keyed(
            rider,
            Method::PUT,
            &format!("/deliveries/{order}/{step}"),
            &format!("{step}-{n}"),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{step}: {}", r.body);
    }
    wait_status(customer, order, "Delivered").await;
    let r = keyed(
        customer,
        Method::PUT,
        &format!("/orders/{order}/confirm"),
        &format!("confirm-{n}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "confirm: {}", r.body);
    wait_status(customer, order, "Confirmed").await;
    order
}

/// Polls a condition on the data directory for up to 30 s.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_shrinks_the_tables_and_rebuilds_still_make_the_same_views() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    let short = [
        ("HANWHA_RETENTION_FIRST_SECS", "1"),
        ("HANWHA_RETENTION_EVERY_SECS", "1"),
        ("HANWHA_RETENTION_INBOX_SECS", "1"),
        ("HANWHA_RETENTION_LOG_SECS", "1"),
        ("HANWHA_RETENTION_BATCH", "7"),
    ];
    let server = Server::start_with_env(&dir, &[], &short);
    let (customer, owner, rider, admin) = (
        Api::login(&server, "customer").await,
        Api::login(&server, "owner").await,
        Api::login(&server, "rider").await,
        Api::login(&server, "admin").await,
    );
    let mut orders = Vec::new();
    for n in 0..6 {
        orders.push(saga(&customer, &owner, &rider, n).await);
    }
    // A cancel (refund) and a declined card: the other endings.
    let cancelled = id(&place(&customer, "pizza", 2).await);
    wait_in_store(&owner, cancelled).await;
    let r = keyed(
        &customer,
        Method::PUT,
        &format!("/orders/{cancelled}/cancel"),
        "cancel",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "cancel: {}", r.body);
    wait_status(&customer, cancelled, "Cancelled").await;
    let r = customer
        .post("/orders", json!({"menuName": "pizza", "qty": 1, "address": "suwon", "card": "4000-0000-0000-0002"}))
        .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{}", r.body);

    let keys_before = total(&dir, "idempotency_keys").await;
    assert_eq!(keys_before, 6 * 6 + 1, "{keys_before} idempotency keys");
    // The keys' TTL is at least an hour; make them two days old instead
    // of waiting.
    for s in service_names() {
        let mut conn = open(&dir, &format!("{s}.db")).await;
        sqlx::query("UPDATE idempotency_keys SET created_at = created_at - 172800000")
            .execute(&mut conn)
            .await
            .expect("age the keys");
    }

    until(
        "expired keys, inbox rows and log entries to go",
        async || {
            total(&dir, "idempotency_keys").await == 0
                && total(&dir, "inbox").await == 0
                && count(&dir, "events.db", "events").await == 0
        },
    )
    .await;
    let mut log = open(&dir, "events.db").await;
    let through: i64 = sqlx::query_scalar("SELECT compacted_through FROM log_start")
        .fetch_one(&mut log)
        .await
        .expect("log start");
    log.close().await.ok();
    assert!(through > 6 * 7, "compacted through {through}");
    // Business rows stay.
    assert_eq!(count(&dir, "order.db", "orders").await, 8);
    assert_eq!(count(&dir, "status.db", "status_checks").await, 8);
    assert_eq!(
        count(&dir, "status.db", "status_checks_snapshot").await,
        8,
        "the snapshot holds every order"
    );
    for order in &orders {
        let r = customer.get(&format!("/statusChecks/{order}")).await;
        assert_eq!(r.body["status"], "Confirmed");
        assert_eq!(
            r.body["history"].as_array().map(Vec::len),
            Some(7),
            "{}",
            r.body
        );
    }
    eprintln!(
        "retention: {keys_before} idempotency keys -> 0, log compacted through {through} -> 0 entries"
    );

    // `events` prints what is retained and says where it starts.
    let (out, err) = run_tool(&dir, &["events"]);
    assert!(out.trim().is_empty(), "{out}");
    assert!(
        err.contains(&format!("the retained log starts after position {through}")),
        "{err}"
    );
    let listed = admin.get("/events").await;
    assert_eq!(
        listed.body.as_array().map(Vec::len),
        Some(0),
        "{}",
        listed.body
    );

    let before = views(&dir).await;
    for view in ["status", "notification"] {
        let (out, _) = run_tool(&dir, &["rebuild", view]);
        assert!(out.contains("from the snapshot at position"), "{out}");
    }
    let after = views(&dir).await;
    assert_eq!(after.0, before.0, "status checks after the rebuild");
    assert_eq!(after.1, before.1, "status history after the rebuild");
    assert_eq!(after.2, before.2, "notifications after the rebuild");
    eprintln!(
        "rebuilt from the snapshots: {} orders, {} history rows, {} notifications, identical",
        after.0.len(),
        after.1.len(),
        after.2.len()
    );
    assert_no_dead_letters(&admin).await;
    drop(server);

    // Again with a log kept for an hour: inbox rows expire after a second,
    // and an event the order service publishes again (a crash between
    // publishing and deleting its outbox row) is dropped by the log, which
    // still holds the first copy.
    let hour = [
        ("HANWHA_RETENTION_FIRST_SECS", "1"),
        ("HANWHA_RETENTION_EVERY_SECS", "1"),
        ("HANWHA_RETENTION_INBOX_SECS", "1"),
        ("HANWHA_RETENTION_LOG_SECS", "3600"),
    ];
    let server = Server::start_with_env(&dir, &[], &hour);
    let (customer, owner, rider) = (
        Api::login(&server, "customer").await,
        Api::login(&server, "owner").await,
        Api::login(&server, "rider").await,
    );
    let last = saga(&customer, &owner, &rider, 99).await;
    until("the new saga's inbox rows to expire", async || {
        total(&dir, "inbox").await == 0
    })
    .await;
    let logged = count(&dir, "events.db", "events").await;
    assert!(logged >= 7, "{logged} entries retained");
    let before = views(&dir).await;
    let mut events = open(&dir, "events.db").await;
    let first = sqlx::query(
        "SELECT event_id, event_type, order_id, payload FROM events WHERE order_id = ? ORDER BY seq",
    )
    .bind(last)
    .fetch_all(&mut events)
    .await
    .expect("the saga's events");
    events.close().await.ok();
    let mut order_db = open(&dir, "order.db").await;
    for e in &first {
        sqlx::query("INSERT INTO outbox (event_id, event_type, order_id, payload, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(e.get::<String, _>(0))
            .bind(e.get::<String, _>(1))
            .bind(e.get::<i64, _>(2))
            .bind(e.get::<String, _>(3))
            .bind(0_i64)
            .execute(&mut order_db)
            .await
            .expect("publish again");
    }
    order_db.close().await.ok();
    until("the relay to publish them again", async || {
        count(&dir, "order.db", "outbox").await == 0
    })
    .await;
    // Consumers poll at least every 500 ms.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        count(&dir, "events.db", "events").await,
        logged,
        "no second copy logged"
    );
    assert_eq!(views(&dir).await, before, "the views did not change");
    eprintln!(
        "{} events of order {last} published again after their inbox rows expired: {logged} log entries before and after, views unchanged",
        first.len()
    );
}
