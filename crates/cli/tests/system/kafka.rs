//! The distributed shape on Kafka (`--transport kafka`), each fleet on its
//! own topic: the seed scenario through the gateway of a polyglot fleet with
//! the topic read by a plain Kafka consumer as one written for the original
//! system reads it; the kill -9 drill (Payment, Store, then the broker on
//! its durable storage); the zero-downtime drill; and the `fleet` command
//! on Kafka. Runs when HANWHA_TEST_KAFKA_BROKERS names a Kafka-protocol
//! broker (CI starts tansu); the broker-kill drill starts a tansu of its own
//! from HANWHA_TEST_TANSU (CI sets both).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::fleet::{self, Bus, Fleet, OwnBroker, Storage};
use crate::support::fleet_command::LocalFleet;
use crate::support::scenario::drive_to_confirmed;
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

/// The shared broker CI starts, or `None` (skipped) when unnamed.
fn brokers() -> Option<String> {
    match std::env::var("HANWHA_TEST_KAFKA_BROKERS") {
        Ok(brokers) if !brokers.is_empty() => Some(brokers),
        _ => {
            eprintln!("HANWHA_TEST_KAFKA_BROKERS unset: skipping the Kafka test");
            None
        }
    }
}

fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// One message of the topic as a consumer of the original reads it.
pub(crate) struct Read {
    partition: i32,
    key: Option<String>,
    type_header: Option<String>,
    pub(crate) value: Value,
}

/// Every message of the topic, from the beginning, with a plain consumer
/// in a group of its own.
pub(crate) fn read_topic(brokers: &str, topic: &str) -> Vec<Read> {
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

/// The seed's scenario and a cancel with refund through the gateway of a
/// polyglot fleet on Kafka; the consumers' lag per partition drains to 0;
/// and every message of the topic reads as the original's consumers read
/// theirs, each event once, one order's events in one partition in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_scenario_runs_on_a_polyglot_kafka_fleet_and_the_topic_reads_as_the_originals() {
    let _machine = exclusive().await;
    let Some(brokers) = brokers() else { return };
    let tag = tag();
    let Some(fleet) = Fleet::start_on_bus(Bus::kafka(&brokers, &tag), &tag, Storage::Polyglot)
    else {
        return;
    };
    let (order, cancelled) = fleet::seed_scenario(&fleet).await;

    let admin = fleet::token(&fleet, "admin").await;
    let payment = fleet.api("payment", &admin);
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
    assert_no_dead_letters_at(|member| fleet.api(member, &admin)).await;

    let Bus::Kafka { brokers, topic } = fleet.bus.clone() else {
        unreachable!("a fleet on Kafka");
    };
    let messages = {
        let (brokers, topic) = (brokers.clone(), topic.clone());
        tokio::task::spawn_blocking(move || read_topic(&brokers, &topic))
            .await
            .expect("read the topic")
    };
    // `events` prints the same topic, one JSON event per line.
    let printed = Command::new(env!("CARGO_BIN_EXE_hanwha-delivery"))
        .args([
            "events",
            "--kafka-brokers",
            &brokers,
            "--kafka-topic",
            &topic,
        ])
        .output()
        .expect("hanwha-delivery events");
    assert!(printed.status.success(), "{printed:?}");
    let printed: Vec<Value> = String::from_utf8_lossy(&printed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(printed.len(), messages.len());
    // `--follow` prints them too, then waits for more until stopped.
    let mut follower = Command::new(env!("CARGO_BIN_EXE_hanwha-delivery"))
        .args(["events", "--follow", "--kafka-brokers", &brokers])
        .args(["--kafka-topic", &topic])
        .stdout(Stdio::piped())
        .spawn()
        .expect("hanwha-delivery events --follow");
    let stdout = follower.stdout.take().expect("stdout");
    let expected = messages.len();
    let followed = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .take(expected)
            .count()
    });
    let followed = tokio::time::timeout(Duration::from_secs(20), followed).await;
    let still_running = follower.try_wait().expect("wait").is_none();
    let _ = follower.kill();
    let _ = follower.wait();
    let followed = followed
        .expect("events --follow printed the topic")
        .expect("read");
    assert_eq!(followed, printed.len());
    assert!(still_running, "--follow stopped at the end of the topic");
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
    let types_of_cancelled: HashSet<&str> = messages
        .iter()
        .filter(|m| m.value["orderId"] == cancelled)
        .filter_map(|m| m.value["eventType"].as_str())
        .collect();
    for t in ["MenuCancelled", "PaymentCancelled", "StoreOrderCancelled"] {
        assert!(
            types_of_cancelled.contains(t),
            "no {t} of order {cancelled} on the topic: {types_of_cancelled:?}"
        );
    }
    eprintln!("{} messages on the topic", messages.len());
    fleet.finish().await;
}

/// A tansu broker of the test's own on durable storage (SQLite), to kill
/// and start again with every message it acknowledged.
struct OwnTansu {
    binary: PathBuf,
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl OwnTansu {
    /// `None` (skipped) when HANWHA_TEST_TANSU does not name the binary.
    fn start() -> Option<OwnTansu> {
        let binary = match std::env::var("HANWHA_TEST_TANSU") {
            Ok(path) if !path.is_empty() => PathBuf::from(path),
            _ => {
                eprintln!("HANWHA_TEST_TANSU unset: skipping the broker-kill drill on Kafka");
                return None;
            }
        };
        let mut tansu = OwnTansu {
            binary,
            child: None,
            port: 0,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        for _ in 0..ports::TRIES {
            tansu.port = ports::random();
            match tansu.try_start() {
                Ok(()) => return Some(tansu),
                Err(e) => eprintln!("{e}\ntrying another port"),
            }
        }
        panic!("tansu found no free port in {} tries", ports::TRIES);
    }

    fn try_start(&mut self) -> Result<(), String> {
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let log = self.dir.path().join("tansu.log");
        // tansu takes a sqlite:// path relative to its working directory.
        let mut child = Command::new(&self.binary)
            .current_dir(self.dir.path())
            .args(["broker", "--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("tansu log"))
            .spawn()
            .expect("start tansu (HANWHA_TEST_TANSU)");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("tansu exited ({status}):\n{text}"));
            }
            assert!(Instant::now() < deadline, "tansu did not listen in 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl OwnBroker for OwnTansu {
    fn bus(&self, tag: &str) -> Bus {
        Bus::kafka(&format!("127.0.0.1:{}", self.port), tag)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.try_start().unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for OwnTansu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// kill -9 of Payment, then Store, then the broker (tansu on SQLite), each
/// mid-burst, each started again: every accepted order completes, nothing
/// is lost or handled twice, counted across orders, payments, store orders,
/// deliveries and events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_payment_store_and_the_broker_mid_burst_on_kafka_loses_and_doubles_nothing() {
    let _machine = exclusive().await;
    if brokers().is_none() {
        return;
    }
    let Some(mut tansu) = OwnTansu::start() else {
        return;
    };
    fleet::kill_9_drill(&mut tansu).await;
}

/// The zero-downtime drill on Kafka: the two order replicas (one
/// PostgreSQL database) restarted one after the other under load; every
/// request succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_order_replicas_one_by_one_on_kafka_drops_no_request() {
    let _machine = exclusive().await;
    let Some(brokers) = brokers() else { return };
    let tag = tag();
    let Some(fleet) = Fleet::start_on_bus(Bus::kafka(&brokers, &tag), &tag, Storage::Postgres)
    else {
        return;
    };
    fleet::zero_downtime_drill(fleet).await;
}

/// `hanwha-delivery fleet --transport kafka`: the fleet command passes the
/// transport to every member; an order runs its saga to Confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_command_runs_on_kafka() {
    let _machine = exclusive().await;
    let Some(fleet) = LocalFleet::start_on_kafka() else {
        return;
    };
    let (customer, owner, rider) = (
        login(&fleet, "customer").await,
        login(&fleet, "owner").await,
        login(&fleet, "rider").await,
    );
    let order = id(&place(&customer, "pizza", 2).await);
    // The members' own words if the first hop does not happen.
    let deadline = Instant::now() + Duration::from_secs(20);
    while owner
        .get("/storeOrders")
        .await
        .body
        .as_array()
        .is_none_or(|a| a.is_empty())
    {
        assert!(
            Instant::now() < deadline,
            "order {order} never reached the store; the fleet said:\n{}",
            fleet.output().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drive_to_confirmed(&customer, &owner, &rider, order).await;
    let view = wait_history(&customer, order, 7).await;
    assert_eq!(view["status"], "Confirmed");
    fleet.finish().await;
}

/// Poison on the topic: messages that look like the original's
/// `MenuOrdered` but that no handler can apply, one on each partition,
/// written by a plain producer. Each is retried beside its partition and
/// becomes a dead letter after the bounded attempts; an order placed after
/// them runs its saga to the end meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_on_the_topic_becomes_dead_letters_and_the_partitions_move_on() {
    let _machine = exclusive().await;
    let Some(brokers) = brokers() else { return };
    let tag = tag();
    let Some(fleet) = Fleet::start_on_bus(Bus::kafka(&brokers, &tag), &tag, Storage::Sqlite) else {
        return;
    };
    let Bus::Kafka { topic, .. } = fleet.bus.clone() else {
        unreachable!("a fleet on Kafka");
    };
    let (c, o, r, a) = (
        fleet::token(&fleet, "customer").await,
        fleet::token(&fleet, "owner").await,
        fleet::token(&fleet, "rider").await,
        fleet::token(&fleet, "admin").await,
    );
    let producer: rdkafka::producer::FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("a Kafka producer");
    const PARTITIONS: i32 = 3;
    for partition in 0..PARTITIONS {
        let event_id = uuid::Uuid::now_v7().to_string();
        let value = json!({"eventType": "MenuOrdered", "eventId": event_id, "orderId": 999_999, "broken": true})
            .to_string();
        let record = rdkafka::producer::FutureRecord::to(&topic)
            .partition(partition)
            .key("999999")
            .payload(&value)
            .headers(
                rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
                    key: "type",
                    value: Some("MenuOrdered"),
                }),
            );
        producer
            .send(record, Duration::from_secs(5))
            .await
            .expect("produce the poison");
    }

    let (customer, owner, rider) = (
        fleet.api("gateway", &c),
        fleet.api("gateway", &o),
        fleet.api("gateway", &r),
    );
    let order = id(&place(&customer, "pizza", 1).await);
    drive_to_confirmed(&customer, &owner, &rider, order).await;
    assert_eq!(
        wait_history(&customer, order, 7).await["status"],
        "Confirmed"
    );
    for consumer in ["store", "status", "notification"] {
        let admin = fleet.api(consumer, &a);
        let buried = eventually(&format!("{consumer}'s dead letters"), || async {
            let dead = admin.get(&format!("/admin/deadLetters/{consumer}")).await;
            assert_eq!(dead.status, StatusCode::OK, "{}", dead.body);
            let dead = dead.body.as_array()?.clone();
            (dead.len() == PARTITIONS as usize).then_some(dead)
        })
        .await;
        assert!(
            buried
                .iter()
                .all(|d| d["attempts"] == platform::consumer::MAX_ATTEMPTS),
            "{consumer}: {buried:?}"
        );
    }
    fleet.finish().await;
}
