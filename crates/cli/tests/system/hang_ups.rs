//! Clients that go away: hang-ups at random moments on reads and on keyed
//! writes, and a crash with keyed orders in flight. Counts what was
//! acknowledged, lost and doubled.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::support::*;
use futures::stream::{self, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A client that gives up after `patience`, as a phone losing signal or a
/// load tool ending its run does: the connection is dropped mid-request.
fn impatient(patience: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(patience)
        .build()
        .expect("client")
}

/// Patience spread from 0.2 ms to `spread`, so that clients leave at
/// every stage: before the request is read, while it runs, while its answer
/// is written.
fn jitter(i: u64, spread: Duration) -> Duration {
    let spread = spread.as_micros().max(1_000) as u64;
    // A multiplicative hash scatters even the first few `i` over the window.
    Duration::from_micros((i + 1).wrapping_mul(2_654_435_761) % spread + 200)
}

/// How long `concurrency` requests at once take on this machine (the 90th
/// percentile), so the hang-ups land mid-request on a fast or slow build.
async fn calibrate<F, Fut>(concurrency: usize, send: F) -> Duration
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut took: Vec<Duration> = stream::iter(0..concurrency * 2)
        .map(|i| {
            let sent = send(i);
            async move {
                let started = Instant::now();
                sent.await;
                started.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    took.sort();
    let p90 = took[took.len() * 9 / 10];
    eprintln!("calibration: p90 {p90:?} at concurrency {concurrency}");
    p90
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_hanging_up_on_reads_leave_every_later_read_working() {
    let _machine = exclusive().await;
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(id(&place(&customer, "pizza", 1).await));
    }
    let token = customer.token.clone().expect("token");
    let spread = calibrate(40, |i| {
        let api = customer.clone();
        let path = format!("/orders/{}", orders[i % orders.len()]);
        async move {
            api.get(&path).await;
        }
    })
    .await
        * 2;
    let (answered, hung_up, failed) = stream::iter(0..2_000u64)
        .map(|i| {
            let url = server.url(&format!("/orders/{}", orders[i as usize % orders.len()]));
            let token = token.clone();
            async move {
                match impatient(jitter(i, spread))
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                {
                    Ok(resp) if resp.status().is_server_error() => (0, 0, 1),
                    Ok(_) => (1, 0, 0),
                    Err(_) => (0, 1, 0),
                }
            }
        })
        .buffer_unordered(40)
        .fold((0, 0, 0), |acc, r| async move {
            (acc.0 + r.0, acc.1 + r.1, acc.2 + r.2)
        })
        .await;
    eprintln!("storm: {answered} answered, {hung_up} hung up, {failed} server errors");
    assert!(
        hung_up > 100,
        "too few hang-ups to mean anything: {hung_up}"
    );
    assert_eq!(failed, 0, "answers during the storm were server errors");
    let mut errors = Vec::new();
    for i in 0..300 {
        let r = customer
            .get(&format!("/orders/{}", orders[i % orders.len()]))
            .await;
        if r.status != StatusCode::OK {
            errors.push(format!("{} {}", r.status, r.body));
        }
    }
    assert!(
        errors.is_empty(),
        "{} of 300 reads after the hang-ups failed, e.g. {:?}",
        errors.len(),
        errors.first()
    );
}

/// One keyed order of a calibration round; its key is replayed later.
async fn calibration_order(customer: Api, i: usize) {
    let r = reply(
        customer
            .request(reqwest::Method::POST, "/orders")
            .header("idempotency-key", format!("calibrate-{i}"))
            .json(&json!({"menuName": "pizza", "qty": 1, "address": "suwon"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// Retries a keyed order until it is not "still in progress".
async fn retry_until_settled(customer: &Api, key: &str, body: &Value) -> (StatusCode, Value) {
    let started = Instant::now();
    loop {
        let r = reply(
            customer
                .request(reqwest::Method::POST, "/orders")
                .header("idempotency-key", key)
                .json(body),
        )
        .await;
        if r.status != StatusCode::CONFLICT {
            return (r.status, r.body);
        }
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "key {key} still in progress after {:?}: {}",
            started.elapsed(),
            r.body
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the server holds for this customer: orders by status and payments
/// by status, once nothing is pending any more.
async fn settled_books(admin: &Api) -> (Vec<Value>, Vec<Value>) {
    let orders = eventually("no order left PaymentPending", || async {
        let orders = admin.get("/orders?limit=1000").await.body;
        let pending = orders
            .as_array()?
            .iter()
            .any(|o| o["status"] == "PaymentPending");
        (!pending).then_some(orders)
    })
    .await;
    let orders = orders.as_array().expect("orders").clone();
    let payments = eventually("no money kept for an order that was not placed", || async {
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
        let kept = orders.iter().any(|o| {
            o["status"] == "PaymentFailed"
                && by_order.get(&id(o)).map(String::as_str) == Some("Approved")
        });
        (!kept).then_some(payments)
    })
    .await;
    (orders, payments.as_array().expect("payments").clone())
}

/// Each key's answers all name one order, and the books hold exactly one
/// paid order and one kept payment per key.
fn assert_one_paid_order_per_key(
    answers: &HashMap<String, i64>,
    orders: &[Value],
    payments: &[Value],
) {
    let distinct: HashSet<i64> = answers.values().copied().collect();
    assert_eq!(
        distinct.len(),
        answers.len(),
        "two keys answered with one order"
    );
    let paid: HashSet<i64> = orders
        .iter()
        .filter(|o| o["status"] == "Ordered")
        .map(id)
        .collect();
    assert_eq!(
        paid, distinct,
        "paid orders are not exactly the ones the keys were answered with"
    );
    let kept: Vec<i64> = payments
        .iter()
        .filter(|p| p["paymentStatus"] == "Approved")
        .map(|p| p["orderId"].as_i64().unwrap_or(0))
        .collect();
    let kept_set: HashSet<i64> = kept.iter().copied().collect();
    assert_eq!(kept.len(), kept_set.len(), "an order was charged twice");
    assert_eq!(kept_set, distinct, "charges kept are not one per key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keyed_order_whose_client_hangs_up_is_placed_once() {
    let _machine = exclusive().await;
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let admin = Api::login(&server, "admin").await;
    let token = customer.token.clone().expect("token");
    let body = json!({"menuName": "pizza", "qty": 1, "address": "suwon"});
    let spread = calibrate(20, |i| calibration_order(customer.clone(), i)).await * 2;
    // Rounds of 40 keyed orders, each round's clients more impatient, until
    // enough hung up mid-request: the machine's speed varies under load.
    let mut keys: Vec<String> = Vec::new();
    let (mut hung_up, mut spread) = (0, spread);
    for round in 0..5 {
        let batch: Vec<String> = (0..40).map(|i| format!("hang-up-{round}-{i}")).collect();
        hung_up += stream::iter(batch.iter().enumerate())
            .map(|(i, key)| {
                let (url, token, body) = (server.url("/orders"), token.clone(), body.clone());
                async move {
                    impatient(jitter(i as u64, spread))
                        .post(url)
                        .bearer_auth(token)
                        .header("idempotency-key", key)
                        .json(&body)
                        .send()
                        .await
                        .is_err()
                }
            })
            .buffer_unordered(20)
            .filter(|gone| futures::future::ready(*gone))
            .count()
            .await;
        keys.extend(batch);
        if hung_up >= 10 {
            break;
        }
        spread /= 2;
    }
    let reached = admin.get("/orders?limit=1000").await.body;
    let reached = reached.as_array().expect("orders").len() - 40;
    eprintln!(
        "{hung_up} of {} keyed orders hung up; {reached} reached the server",
        keys.len()
    );
    assert!(
        hung_up >= 10,
        "too few hang-ups to mean anything: {hung_up}"
    );
    assert!(reached >= 5, "too few reached the server to mean anything");
    let mut answers = HashMap::new();
    // The calibration's own keys replay their orders.
    let calibration = (0..40).map(|i| format!("calibrate-{i}"));
    for key in keys.iter().cloned().chain(calibration) {
        let (status, order) = retry_until_settled(&customer, &key, &body).await;
        assert_eq!(status, StatusCode::CREATED, "retry of {key}: {order}");
        answers.insert(key, id(&order));
    }
    let (orders, payments) = settled_books(&admin).await;
    assert_eq!(orders.len(), answers.len(), "orders placed: {orders:?}");
    assert_one_paid_order_per_key(&answers, &orders, &payments);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_with_keyed_orders_in_flight_then_retries_place_each_once() {
    let _machine = exclusive().await;
    let mut server = Server::start(&["--sweep-ms", "100"]);
    let customer = Api::login(&server, "customer").await;
    let token = customer.token.clone().expect("token");
    let body = json!({"menuName": "pizza", "qty": 1, "address": "suwon"});
    let took = calibrate(40, |i| calibration_order(customer.clone(), i)).await;
    let keys: Vec<String> = (0..40).map(|i| format!("crash-{i}")).collect();
    let in_flight: Vec<_> = keys
        .iter()
        .map(|key| {
            let (url, token, body, key) = (
                server.url("/orders"),
                token.clone(),
                body.clone(),
                key.clone(),
            );
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .bearer_auth(token)
                    .header("idempotency-key", key)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    // Mid-burst: some answered, some half-way, some not yet read.
    tokio::time::sleep(took / 4).await;
    server.kill9();
    let mut acknowledged = 0;
    for f in in_flight {
        if let Ok(Ok(StatusCode::CREATED)) = f.await {
            acknowledged += 1;
        }
    }
    eprintln!(
        "{acknowledged} of {} keyed orders acknowledged before kill -9",
        keys.len()
    );

    server.restart();
    let customer = Api::login(&server, "customer").await;
    let admin = Api::login(&server, "admin").await;
    let before = admin.get("/orders?limit=1000").await.body;
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for o in before.as_array().expect("orders") {
        *by_status
            .entry(o["status"].as_str().unwrap_or("").into())
            .or_default() += 1;
    }
    eprintln!("after the restart, before any retry: {by_status:?}");
    let mut answers = HashMap::new();
    let calibration = (0..80).map(|i| format!("calibrate-{i}"));
    for key in keys.iter().cloned().chain(calibration) {
        let (status, order) = retry_until_settled(&customer, &key, &body).await;
        assert_eq!(status, StatusCode::CREATED, "retry of {key}: {order}");
        answers.insert(key, id(&order));
    }
    let (orders, payments) = settled_books(&admin).await;
    eprintln!("{} orders exist after the retries", orders.len());
    assert_one_paid_order_per_key(&answers, &orders, &payments);
}

/// One step of the saga, as its actor sends it.
struct Step {
    name: &'static str,
    user: &'static str,
    path: fn(i64) -> String,
    /// The order's status once this step took effect.
    reached: &'static str,
}

const STEPS: [Step; 5] = [
    Step {
        name: "accept",
        user: "owner",
        path: |id| format!("/storeOrders/{id}/accept"),
        reached: "Accepted",
    },
    Step {
        name: "finish",
        user: "owner",
        path: |id| format!("/storeOrders/{id}/finish"),
        reached: "Cooked",
    },
    Step {
        name: "pickup",
        user: "rider",
        path: |id| format!("/deliveries/{id}/pickup"),
        reached: "PickedUp",
    },
    Step {
        name: "complete",
        user: "rider",
        path: |id| format!("/deliveries/{id}/complete"),
        reached: "Delivered",
    },
    Step {
        name: "confirm",
        user: "customer",
        path: |id| format!("/orders/{id}/confirm"),
        reached: "Confirmed",
    },
];

/// The status view's history of a whole saga (the payment's entry names
/// the payment's status).
const SAGA_STATUSES: [&str; 7] = [
    "Approved",
    "Ordered",
    "Accepted",
    "Cooked",
    "PickedUp",
    "Delivered",
    "Confirmed",
];

/// Each step of 16 orders is sent with a key, half by clients that hang up
/// at random moments; mid-step the server is killed (SIGKILL) and started
/// again, and every key is retried until it has an answer. Every order ends
/// Confirmed with each change in its history exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_saga_step_survives_hang_ups_and_kill_9_with_keyed_retries() {
    let _machine = exclusive().await;
    let mut server = Server::start(&["--sweep-ms", "100"]);
    let customer = Api::login(&server, "customer").await;
    let mut orders = Vec::new();
    for _ in 0..16 {
        orders.push(id(&place(&customer, "pizza", 1).await));
    }
    let mut refused_as_done = 0;
    for step in &STEPS {
        let actor = Api::login(&server, step.user).await;
        let customer = Api::login(&server, "customer").await;
        // Ready for this step: the event that enables it has arrived.
        for &order in &orders {
            let before = match step.name {
                "accept" => "Ordered",
                "finish" => "Accepted",
                "pickup" => "Cooked",
                "complete" => "PickedUp",
                _ => "Delivered",
            };
            eventually(&format!("order {order} {before}"), || async {
                (customer.get(&format!("/orders/{order}")).await.body["status"] == before)
                    .then_some(())
            })
            .await;
            if step.name == "pickup" {
                wait_in_deliveries(&actor, order).await;
            }
        }
        let token = actor.token.clone().expect("token");
        let sent: Vec<_> = orders
            .iter()
            .enumerate()
            .map(|(i, &order)| {
                let url = server.url(&(step.path)(order));
                let (token, key) = (token.clone(), format!("{}-{order}", step.name));
                tokio::spawn(async move {
                    let client = if i % 2 == 0 {
                        impatient(jitter(i as u64, Duration::from_millis(80)))
                    } else {
                        reqwest::Client::new()
                    };
                    client
                        .put(url)
                        .bearer_auth(token)
                        .header("idempotency-key", key)
                        .send()
                        .await
                        .map(|r| r.status())
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(30)).await;
        server.kill9();
        let mut acknowledged = 0;
        for s in sent {
            if let Ok(Ok(status)) = s.await {
                if status.is_success() {
                    acknowledged += 1;
                }
            }
        }
        server.restart();
        let actor = Api::login(&server, step.user).await;
        for &order in &orders {
            let key = format!("{}-{order}", step.name);
            let started = Instant::now();
            loop {
                let r = reply(
                    actor
                        .request(reqwest::Method::PUT, &(step.path)(order))
                        .header("idempotency-key", &key),
                )
                .await;
                let in_progress =
                    r.status == StatusCode::CONFLICT && r.body["currentStatus"].is_null();
                if in_progress {
                    assert!(
                        started.elapsed() < Duration::from_secs(25),
                        "{key} in progress for {:?}",
                        started.elapsed()
                    );
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
                if r.status == StatusCode::CONFLICT {
                    // The step took effect but the process died before its
                    // answer was kept: the rerun names where the order is.
                    refused_as_done += 1;
                    eprintln!("{key}: answered 409 as it stands: {}", r.body["detail"]);
                } else {
                    assert_eq!(r.status, StatusCode::OK, "{key}: {}", r.body);
                }
                break;
            }
        }
        eprintln!(
            "{}: {acknowledged} of {} acknowledged before kill -9",
            step.name,
            orders.len()
        );
        let customer = Api::login(&server, "customer").await;
        for &order in &orders {
            eventually(&format!("order {order} {}", step.reached), || async {
                let status = customer.get(&format!("/orders/{order}")).await.body["status"].clone();
                (status == step.reached).then_some(())
            })
            .await;
        }
    }
    eprintln!("{refused_as_done} retries answered 409 naming the status reached");
    let customer = Api::login(&server, "customer").await;
    let admin = Api::login(&server, "admin").await;
    for &order in &orders {
        let view = wait_history(&customer, order, SAGA_STATUSES.len()).await;
        let mut got: Vec<&str> = view["history"]
            .as_array()
            .expect("history")
            .iter()
            .filter_map(|c| c["status"].as_str())
            .collect();
        got.sort_unstable();
        let mut want = SAGA_STATUSES.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "order {order}: each change exactly once");
    }
    let payments = admin.get("/payments").await.body;
    let payments = payments.as_array().expect("payments");
    assert_eq!(payments.len(), orders.len(), "one payment per order");
    assert!(payments.iter().all(|p| p["paymentStatus"] == "Approved"));
    assert_no_dead_letters(&admin).await;
}
