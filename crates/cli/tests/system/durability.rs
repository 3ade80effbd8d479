//! Crashes lose nothing: kill -9 the real binary in the middle of a burst of
//! orders, start it again, and every order that got 201 finishes its saga
//! with one payment and each event handled once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::support::scenario::{self, drive_to_confirmed};
use crate::support::*;
use futures::stream::{self, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};

const SAGA: [&str; 7] = [
    "PaymentAgreed",
    "MenuOrdered",
    "CookStarted",
    "CookFinished",
    "DeliveryStarted",
    "DeliveryCompleted",
    "OrderConfirmed",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_in_the_middle_of_a_burst_loses_and_duplicates_nothing() {
    let _machine = exclusive().await;
    let mut server = Server::start(&["--payment-timeout-ms", "500", "--sweep-ms", "100"]);
    let customer = Api::login(&server, "customer").await;

    let placed: Arc<Mutex<Vec<i64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (customer, placed, stop) = (customer.clone(), placed.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = 0;
            while !stop.load(Ordering::SeqCst) {
                let sent = customer
                    .request(reqwest::Method::POST, "/orders")
                    .json(&json!({"menuName": "pizza", "qty": 1, "address": "suwon"}))
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status() == StatusCode::CREATED => {
                        // Only an order whose 201 fully arrived counts as acknowledged.
                        if let Ok(body) = resp.json::<Value>().await {
                            placed.lock().expect("lock").push(id(&body));
                        }
                    }
                    Ok(resp) => panic!("unexpected answer {}", resp.status()),
                    Err(_) => failures += 1,
                }
            }
            failures
        }));
    }
    eventually("a burst under way", || async {
        (placed.lock().expect("lock").len() >= 60).then_some(())
    })
    .await;
    server.kill9();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.expect("worker");
    }
    let acknowledged: Vec<i64> = placed.lock().expect("lock").clone();
    eprintln!("{} orders acknowledged before kill -9", acknowledged.len());

    server.restart();
    let customer = Api::login(&server, "customer").await;
    let owner = Api::login(&server, "owner").await;
    let rider = Api::login(&server, "rider").await;
    let admin = Api::login(&server, "admin").await;

    stream::iter(acknowledged.clone())
        .for_each_concurrent(8, |order| {
            let (customer, owner, rider) = (customer.clone(), owner.clone(), rider.clone());
            async move { drive_to_confirmed(&customer, &owner, &rider, order).await }
        })
        .await;

    // Orders the client never heard back about settle too: placed or failed
    // with nothing charged.
    let acked: HashSet<i64> = acknowledged.iter().copied().collect();
    let all_orders = eventually("no order left PaymentPending", || async {
        let orders = admin.get("/orders?limit=1000").await.body;
        let pending = orders
            .as_array()?
            .iter()
            .any(|o| o["status"] == "PaymentPending");
        (!pending).then_some(orders)
    })
    .await;
    let total = all_orders.as_array().expect("orders").len();
    eprintln!(
        "{total} orders exist after restart, {} acknowledged",
        acknowledged.len()
    );
    assert!(total >= acknowledged.len());
    let payments = eventually("no money kept for a failed order", || async {
        let payments = admin.get("/payments").await.body;
        let by_order: HashMap<i64, String> = payments
            .as_array()?
            .iter()
            .map(|p| {
                (
                    p["orderId"].as_i64().unwrap_or(0),
                    p["paymentStatus"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let kept_for_failed = all_orders.as_array()?.iter().any(|o| {
            o["status"] == "PaymentFailed"
                && by_order
                    .get(&o["id"].as_i64().unwrap_or(0))
                    .map(String::as_str)
                    == Some("Approved")
        });
        (!kept_for_failed).then_some(payments)
    })
    .await;
    let payment_orders: Vec<i64> = payments
        .as_array()
        .expect("payments")
        .iter()
        .map(|p| p["orderId"].as_i64().expect("orderId"))
        .collect();
    let distinct: HashSet<i64> = payment_orders.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        payment_orders.len(),
        "a payment was taken twice"
    );

    // The last confirmations travel to the log and the views by events:
    // wait until every acknowledged order shows its whole saga there.
    for order in &acknowledged {
        wait_history(&customer, *order, SAGA.len()).await;
    }
    let log = admin.get("/events?limit=5000").await.body;
    let log = log.as_array().expect("log");
    let ids: HashSet<&str> = log
        .iter()
        .map(|e| e["eventId"].as_str().expect("eventId"))
        .collect();
    assert_eq!(ids.len(), log.len(), "an event is in the log twice");
    for order in &acknowledged {
        let o = customer.get(&format!("/orders/{order}")).await.body;
        assert_eq!(o["status"], "Confirmed", "order {order}");
        let p = customer.get(&format!("/payments/{order}")).await.body;
        assert_eq!(p["paymentStatus"], "Approved", "order {order}");
        let kinds: Vec<&str> = log
            .iter()
            .filter(|e| e["orderId"] == *order)
            .map(|e| e["eventType"].as_str().expect("type"))
            .collect();
        assert_same_saga(&kinds, &SAGA, &format!("order {order}"));
        let view = wait_status(&customer, *order, "Confirmed").await;
        assert_eq!(
            view["history"].as_array().expect("history").len(),
            SAGA.len(),
            "order {order} handled twice: {view}"
        );
    }
    let notes = eventually("every notification", || async {
        let notes = customer.get("/notifications?limit=5000").await.body;
        let count = notes
            .as_array()?
            .iter()
            .filter(|n| acked.contains(&n["orderId"].as_i64().unwrap_or(0)))
            .count();
        (count >= acknowledged.len() * SAGA.len()).then_some(notes)
    })
    .await;
    let mut per_event: HashMap<&str, usize> = HashMap::new();
    for n in notes.as_array().expect("notes") {
        *per_event
            .entry(n["eventId"].as_str().expect("eventId"))
            .or_default() += 1;
    }
    assert!(
        per_event.values().all(|&n| n == 1),
        "a notification was sent twice"
    );
    assert_no_dead_letters(&admin).await;
}

/// An event a consumer cannot apply is retried, then parked as a dead
/// letter without holding up other orders; an admin can replay it once it
/// can succeed, or discard it.
#[tokio::test]
async fn a_failing_event_becomes_a_dead_letter_that_an_admin_replays_or_discards() {
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let owner = Api::login(&server, "owner").await;
    let rider = Api::login(&server, "rider").await;
    let admin = Api::login(&server, "admin").await;
    let order = id(&place(&customer, "pizza", 1).await);
    wait_status(&customer, order, "Ordered").await;

    // Two events the order service cannot apply now: a delivery completed for
    // the next order, not placed yet (as if its events overtook its
    // placement), and an acceptance for an order that will never exist.
    let next = order + 1;
    let log = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        server.data_dir.join("events.db").display()
    ))
    .await
    .expect("open the log");
    let premature = json!({
        "eventType": "DeliveryCompleted", "eventId": uuid::Uuid::now_v7(), "timestamp": 1, "orderId": next,
        "id": 1, "menuName": "pizza", "qty": 1, "price": 1000, "address": "suwon", "storeId": 1, "customerId": 1,
        "deliveryStatus": "Delivered", "correlationId": uuid::Uuid::nil(), "actor": "rider:4", "version": 9
    });
    let mut ghost = premature.clone();
    ghost["eventType"] = json!("CookStarted");
    ghost["eventId"] = json!(uuid::Uuid::now_v7());
    ghost["orderId"] = json!(999_999);
    for ev in [&premature, &ghost] {
        sqlx::query("INSERT INTO events (event_id, event_type, order_id, payload, source, logged_at) VALUES (?, ?, ?, ?, 'test', 0)")
            .bind(ev["eventId"].as_str().expect("id"))
            .bind(ev["eventType"].as_str().expect("type"))
            .bind(ev["orderId"].as_i64().expect("order"))
            .bind(ev.to_string())
            .execute(&log)
            .await
            .expect("inject");
    }
    log.close().await;

    let dead = eventually("two dead letters", || async {
        let dead = admin.get("/admin/deadLetters/order").await.body;
        (dead.as_array()?.len() == 2).then_some(dead)
    })
    .await;
    let dead = dead.as_array().expect("dead");
    assert_eq!(dead[0]["attempts"], 4);
    assert!(
        dead[0]["error"]
            .as_str()
            .expect("error")
            .contains("not found"),
        "{}",
        dead[0]
    );
    let (premature_id, ghost_id) = (
        dead[0]["id"].as_i64().expect("id"),
        dead[1]["id"].as_i64().expect("id"),
    );

    // Other orders go on meanwhile: the real saga of this order completes up to pick-up.
    scenario::cook(&owner, order).await;
    wait_in_deliveries(&rider, order).await;
    scenario::pick_up(&rider, order).await;
    scenario::wait_order(&customer, order, "PickedUp").await;

    // The ghost still fails on replay and stays; the premature one applies
    // once its order exists, and brings it to what it reports.
    let second = id(&place(&customer, "pizza", 1).await);
    assert_eq!(second, next);
    let again = admin
        .send(
            reqwest::Method::POST,
            &format!("/admin/deadLetters/order/{ghost_id}/replay"),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    let replayed = admin
        .send(
            reqwest::Method::POST,
            &format!("/admin/deadLetters/order/{premature_id}/replay"),
            None,
        )
        .await;
    assert_eq!(replayed.status, StatusCode::NO_CONTENT, "{}", replayed.body);
    assert_eq!(
        customer.get(&format!("/orders/{next}")).await.body["status"],
        "Delivered"
    );
    let left = admin.get("/admin/deadLetters/order").await.body;
    assert_eq!(left.as_array().expect("left").len(), 1);
    assert_eq!(left[0]["attempts"], 5);
    let gone = admin
        .send(
            reqwest::Method::DELETE,
            &format!("/admin/deadLetters/order/{ghost_id}"),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert!(admin
        .get("/admin/deadLetters/order")
        .await
        .body
        .as_array()
        .expect("none")
        .is_empty());
}
