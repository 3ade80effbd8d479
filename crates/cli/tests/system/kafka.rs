//! The distributed shape on Kafka (`fleet --transport kafka`), each fleet
//! on its own topic: the seed scenario through the gateway, the topic read
//! by a plain Kafka consumer as one written for the original system reads
//! it, and kill -9 of Payment mid-burst. Runs when HANWHA_TEST_KAFKA_BROKERS
//! names a Kafka-protocol broker (CI starts tansu).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::fleet_command::{signal_pid, LocalFleet};
use crate::support::scenario::{self, drive_to_confirmed};
use crate::support::*;

/// Logs in through the gateway.
async fn login(fleet: &LocalFleet, user: &str) -> Api {
    let mut api = Api {
        base: fleet.member("gateway").url.clone(),
        http: reqwest::Client::new(),
        token: None,
    };
    let ready = eventually("the gateway to log users in", || async {
        let r = api
            .post("/auth/login", json!({"username": user, "password": user}))
            .await;
        (r.status == StatusCode::OK).then_some(r.body)
    })
    .await;
    api.token = ready["token"].as_str().map(str::to_string);
    api
}

/// An admin's view of one member, on its own port.
fn admin_at(fleet: &LocalFleet, member: &str, admin: &Api) -> Api {
    Api {
        base: fleet.member(member).url.clone(),
        ..admin.clone()
    }
}

/// One message of the topic as a consumer of the original reads it.
struct Read {
    partition: i32,
    key: Option<String>,
    type_header: Option<String>,
    value: Value,
}

/// Every message of the topic, from the beginning, with a plain consumer
/// in a group of its own.
fn read_topic(brokers: &str, topic: &str) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("wire-check-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .create()
        .expect("a Kafka consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .expect("the topic's metadata");
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("offset");
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(5))
            .expect("watermarks");
        ends.insert(p, high);
    }
    consumer.assign(&assignment).expect("assign");
    let mut read = Vec::new();
    let mut next: HashMap<i32, i64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ends
        .iter()
        .any(|(p, high)| next.get(p).copied().unwrap_or(0) < *high)
    {
        assert!(
            Instant::now() < deadline,
            "the topic was not read to its end"
        );
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = msg.expect("a message");
        next.insert(msg.partition(), msg.offset() + 1);
        let type_header = msg.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == "type")
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        });
        read.push(Read {
            partition: msg.partition(),
            key: msg.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            type_header,
            value: serde_json::from_slice(msg.payload().unwrap_or_default())
                .expect("the value is JSON"),
        });
    }
    read
}

/// The original's event classes: the fields each carries beside
/// `eventType` and `timestamp` (AbstractEvent), by the aggregate that
/// publishes it (../shared/seed: Order, Payment, Store, Delivery).
fn original_fields(event_type: &str) -> &'static [&'static str] {
    const ORDER: &[&str] = &[
        "id",
        "menuName",
        "orderId",
        "address",
        "qty",
        "orderStatus",
        "price",
    ];
    const PAYMENT: &[&str] = &[
        "id",
        "orderId",
        "paymentStatus",
        "price",
        "qty",
        "menuName",
        "address",
    ];
    const STORE: &[&str] = &["id", "orderId", "menuName", "qty", "address", "cookStatus"];
    const DELIVERY: &[&str] = &["id", "orderId", "address", "deliveryStatus"];
    match event_type {
        "MenuOrdered" | "MenuCancelled" | "OrderConfirmed" | "OrderPaymentFailed" => ORDER,
        "PaymentAgreed" | "PaymentCancelled" => PAYMENT,
        "CookStarted" | "CookFinished" | "OrderRejected" | "StoreOrderCancelled" => STORE,
        "DeliveryStarted" | "DeliveryCompleted" => DELIVERY,
        other => panic!("an event type the system does not publish: {other}"),
    }
}

/// Checks one message as a consumer written for the original would read
/// it: filter on the `type` header, parse the JSON, find its fields.
fn assert_wire_compatible(read: &Read) {
    let v = &read.value;
    let event_type = v["eventType"].as_str().expect("eventType");
    assert_eq!(read.type_header.as_deref(), Some(event_type), "{v}");
    assert!(v["timestamp"].is_i64(), "timestamp: {v}");
    for field in original_fields(event_type) {
        let value = &v[*field];
        let typed = match *field {
            "id" | "orderId" | "qty" => value.is_i64(),
            "price" => value.is_number(),
            _ => value.is_string(),
        };
        assert!(typed, "{event_type} without a valid {field}: {v}");
    }
    // Keyed by order id: one order's events stay in one partition, in order.
    assert_eq!(
        read.key.as_deref(),
        Some(v["orderId"].to_string().as_str()),
        "{v}"
    );
}

/// The seed's scenario through the gateway of a Kafka fleet, a cancel
/// with refund, and every message of the topic read back as the original's
/// consumers read theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "issue 13 in progress: on a loaded machine an event reaches the topic twice (the relay resends after a slow acknowledgement) and Payment's consumer can miss the cancel's events; run with --ignored and HANWHA_TEST_KAFKA_BROKERS"]
async fn the_seed_scenario_runs_on_kafka_and_the_topic_reads_as_the_originals() {
    let _machine = exclusive().await;
    let Some(fleet) = LocalFleet::start_on_kafka() else {
        return;
    };
    let (brokers, topic) = fleet.kafka().expect("a fleet on Kafka");
    let (customer, owner, rider) = (
        login(&fleet, "customer").await,
        login(&fleet, "owner").await,
        login(&fleet, "rider").await,
    );
    let admin = login(&fleet, "admin").await;
    for member in ["order", "payment", "store", "delivery", "status"] {
        let ready = admin_at(&fleet, member, &admin)
            .get("/actuator/ready")
            .await;
        assert_eq!(ready.status, StatusCode::OK, "{member}: {}", ready.body);
    }

    let placed = customer
        .post(
            "/orders",
            json!({"menuName": "pizza", "qty": 10, "address": "suwon"}),
        )
        .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
    let order = id(&placed.body);
    drive_to_confirmed(&customer, &owner, &rider, order).await;
    let view = wait_history(&customer, order, 7).await;
    assert_eq!(view["status"], "Confirmed");

    let second = id(&place(&customer, "pizza", 1).await);
    scenario::cancel(&customer, second).await;
    scenario::wait_refunded(&customer, second).await;

    // The consumers' lag per partition is in /metrics and drains to 0.
    let payment = admin_at(&fleet, "payment", &admin);
    eventually("payment's lag per partition to reach 0", || async {
        let text = payment
            .request(reqwest::Method::GET, "/metrics")
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let lags: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("hanwha_consumer_partition_lag{"))
            .collect();
        (lags.len() == 3 && lags.iter().all(|l| l.ends_with(" 0"))).then_some(())
    })
    .await;
    assert_no_dead_letters_at(|member| admin_at(&fleet, member, &admin)).await;

    let messages = tokio::task::spawn_blocking(move || read_topic(&brokers, &topic))
        .await
        .expect("read the topic");
    let mut types_of_first = Vec::new();
    let mut partitions_of_first = HashSet::new();
    let mut ids = HashSet::new();
    for m in &messages {
        assert_wire_compatible(m);
        assert!(
            ids.insert(m.value["eventId"].to_string()),
            "an event twice on the topic: {}",
            m.value
        );
        if m.value["orderId"] == order {
            types_of_first.push(m.value["eventType"].as_str().unwrap_or_default());
            partitions_of_first.insert(m.partition);
        }
    }
    assert_eq!(partitions_of_first.len(), 1, "one order, one partition");
    assert_same_saga(
        &types_of_first,
        &[
            "MenuOrdered",
            "PaymentAgreed",
            "CookStarted",
            "CookFinished",
            "DeliveryStarted",
            "DeliveryCompleted",
            "OrderConfirmed",
        ],
        "the first order's events on the topic",
    );
    let types: HashSet<&str> = messages
        .iter()
        .filter_map(|m| m.value["eventType"].as_str())
        .collect();
    for t in ["MenuCancelled", "PaymentCancelled"] {
        assert!(types.contains(t), "no {t} on the topic: {types:?}");
    }
    eprintln!("{} messages on the topic, types {types:?}", messages.len());
    fleet.finish().await;
}

/// kill -9 of Payment in the middle of a burst of orders through the
/// gateway on a Kafka fleet, which restarts it: every accepted order
/// completes its saga, a refused one is charged nothing, and orders,
/// payments, store orders, deliveries and each order's events add up, with
/// nothing lost or handled twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "issue 13 in progress: timed out once in two runs on a loaded machine; run with --ignored and HANWHA_TEST_KAFKA_BROKERS"]
async fn kill_9_of_payment_mid_burst_on_kafka_loses_and_doubles_nothing() {
    let _machine = exclusive().await;
    let Some(fleet) = LocalFleet::start_on_kafka() else {
        return;
    };
    let (customer, owner, rider) = (
        login(&fleet, "customer").await,
        login(&fleet, "owner").await,
        login(&fleet, "rider").await,
    );
    let admin = login(&fleet, "admin").await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for worker in 0..3 {
        let (customer, stop, answers) = (customer.clone(), stop.clone(), answers.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let r = reply(
                    customer
                        .request(reqwest::Method::POST, "/orders")
                        .header("Idempotency-Key", format!("kafka-burst-{worker}-{n}"))
                        .json(&json!({"menuName": "pizza", "qty": 1, "address": "suwon"})),
                )
                .await;
                answers.lock().expect("answers").push((
                    r.status,
                    r.body["orderId"].as_i64(),
                    r.body.to_string(),
                ));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    let accepted_so_far = || {
        answers
            .lock()
            .expect("answers")
            .iter()
            .filter(|(s, _, _)| *s == StatusCode::CREATED)
            .count()
    };
    eventually("orders flowing before the kill", || async {
        (accepted_so_far() >= 5).then_some(())
    })
    .await;
    signal_pid(fleet.member("payment").pid, "-KILL");
    fleet
        .wait_for_line("the fleet restarting payment", |l| {
            l.starts_with("fleet ") && l.contains("payment restarted (pid ")
        })
        .await;
    let before = accepted_so_far();
    eventually("orders flowing after the restart", || async {
        (accepted_so_far() >= before + 5).then_some(())
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        w.await.expect("worker");
    }
    let answers = std::mem::take(&mut *answers.lock().expect("answers"));
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for (status, order, body) in &answers {
        match (*status, order) {
            (StatusCode::CREATED, Some(order)) => accepted.push(*order),
            (_, Some(order)) => refused.push(*order),
            (status, None) => assert!(
                status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::BAD_GATEWAY,
                "only unavailability may refuse an order: {status} {body}"
            ),
        }
    }
    let accepted_set: HashSet<i64> = accepted.iter().copied().collect();
    assert_eq!(
        accepted_set.len(),
        accepted.len(),
        "an order answered twice"
    );

    for chunk in accepted.chunks(8) {
        futures::future::join_all(
            chunk
                .iter()
                .map(|&order| drive_to_confirmed(&customer, &owner, &rider, order)),
        )
        .await;
    }
    let at = |member: &str| admin_at(&fleet, member, &admin);
    let orders = at("order").get("/orders?limit=1000").await.body;
    let orders = orders.as_array().expect("orders").clone();
    assert_eq!(orders.len(), accepted.len() + refused.len());
    for o in &orders {
        let id = o["id"].as_i64().expect("id");
        let expected = if accepted_set.contains(&id) {
            "Confirmed"
        } else {
            "PaymentFailed"
        };
        assert_eq!(o["status"], expected, "order {id}: {o}");
    }
    let payments = eventually("refused orders charged nothing", || async {
        let all = at("payment").get("/payments").await.body;
        let all = all.as_array()?.clone();
        all.iter()
            .all(|p| {
                let order = p["orderId"].as_i64().unwrap_or_default();
                accepted_set.contains(&order) == (p["paymentStatus"] == "Approved")
            })
            .then_some(all)
    })
    .await;
    let approved = payments
        .iter()
        .filter(|p| p["paymentStatus"] == "Approved")
        .count();
    assert_eq!(approved, accepted.len(), "one approved payment per order");
    let store_orders = at("store").get("/storeOrders").await.body;
    assert_eq!(
        store_orders.as_array().expect("store orders").len(),
        accepted.len()
    );
    let deliveries = at("delivery").get("/deliveries").await.body;
    assert_eq!(
        deliveries.as_array().expect("deliveries").len(),
        accepted.len()
    );
    for &order in &accepted {
        let view = wait_history(&customer, order, 7).await;
        let history = view["history"].as_array().expect("history");
        let ids: HashSet<String> = history.iter().map(|h| h["eventId"].to_string()).collect();
        assert_eq!(ids.len(), 7, "order {order}: {view}");
    }
    assert_no_dead_letters_at(|member| at(member)).await;
    eprintln!(
        "after kill -9 of payment on Kafka: {} orders ({} confirmed), {} payments ({approved} approved)",
        orders.len(),
        accepted.len(),
        payments.len()
    );
    fleet.finish().await;
}
