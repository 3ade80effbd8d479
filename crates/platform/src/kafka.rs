//! Kafka transport: one topic holds every event, as in the original system.
//! Each message is keyed by its order id (one order's events stay in order
//! within a partition), its value is the flat JSON event and its `type`
//! header the event type, as the original's producers wrote them, so a
//! consumer written for the original reads ours.
//!
//! The relay produces with an idempotent producer (`acks=all`) and returns
//! only once the broker acknowledged every message, so an outbox row is
//! deleted only after that. Each service reads in its own consumer group
//! (`hanwha-<service>`) and commits offsets only after the transaction that
//! applied the events committed; a redelivered event changes nothing
//! (inbox). An event that fails is parked for bounded retries beside the
//! partition, which moves on, and becomes a dead letter after
//! [`MAX_ATTEMPTS`](crate::consumer::MAX_ATTEMPTS), as on the embedded log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::consumer::{self as engine, retry_pause_ms, EventHandler};
use crate::db::Db;
use crate::event_log::{LoggedEvent, NewEvent};
use crate::shutdown::Shutdown;
use crate::transport::{EventSink, TransportError};

/// The original system's topic.
pub const DEFAULT_TOPIC: &str = "hanwhadeliverysystemteam";
const BATCH: usize = 256;
/// How long a produce may wait for the broker before the relay tries
/// again; the outbox keeps the events meanwhile.
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call to the broker made at start or for a gauge may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the bus checks that the broker answers.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Where the events are and how the topic is made when it is missing.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `HOST:PORT[,HOST:PORT...]`
    pub brokers: String,
    pub topic: String,
    pub partitions: i32,
    pub replication: i32,
}

struct Inner {
    config: KafkaConfig,
    /// Replaced after a fatal error (an idempotent producer whose state the
    /// broker lost, e.g. a broker restarted on storage that kept the
    /// messages but not the producer ids): the client is unusable then.
    producer: std::sync::Mutex<FutureProducer>,
    reachable: AtomicBool,
    partitions: i32,
    lags: Mutex<HashMap<String, Lag>>,
}

#[derive(Clone)]
pub struct KafkaBus {
    inner: Arc<Inner>,
}

fn broker<E: std::fmt::Display>(e: E) -> TransportError {
    TransportError::Broker(e.to_string())
}

fn client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("socket.connection.setup.timeout.ms", "5000")
        // librdkafka logs every failed connection; the broker's state is
        // reported by readiness and `hanwha_broker_connected` instead.
        .set("log_level", "3");
    config
}

impl KafkaBus {
    /// Connects, makes sure the topic exists (through the admin API) and
    /// learns how many partitions it has.
    pub async fn connect(config: KafkaConfig) -> Result<KafkaBus, TransportError> {
        ensure_topic(&config).await?;
        let producer = new_producer(&config.brokers)?;
        let partitions = {
            let (producer, topic) = (producer.clone(), config.topic.clone());
            tokio::task::spawn_blocking(move || {
                producer
                    .client()
                    .fetch_metadata(Some(&topic), CALL_TIMEOUT)
                    .map(|m| {
                        m.topics()
                            .iter()
                            .find(|t| t.name() == topic)
                            .map_or(0, |t| t.partitions().len() as i32)
                    })
            })
            .await
            .map_err(broker)?
            .map_err(broker)?
        };
        if partitions == 0 {
            return Err(broker(format!("topic {} has no partitions", config.topic)));
        }
        let inner = Arc::new(Inner {
            config,
            producer: std::sync::Mutex::new(producer),
            reachable: AtomicBool::new(true),
            partitions,
            lags: Mutex::new(HashMap::new()),
        });
        tokio::spawn(watch(Arc::downgrade(&inner)));
        Ok(KafkaBus { inner })
    }

    pub fn topic(&self) -> &str {
        &self.inner.config.topic
    }

    fn producer(&self) -> FutureProducer {
        self.inner.producer.lock().expect("producer").clone()
    }

    /// A producer in a fatal state is replaced; the relay's next try uses
    /// the new one.
    fn replace_if_fatal(&self, producer: &FutureProducer) {
        let Some((code, reason)) = producer.client().fatal_error() else {
            return;
        };
        tracing::warn!(%code, %reason, "the Kafka producer failed for good; starting a new one");
        match new_producer(&self.inner.config.brokers) {
            Ok(fresh) => *self.inner.producer.lock().expect("producer") = fresh,
            Err(e) => tracing::warn!(error = %e, "cannot start a new Kafka producer"),
        }
    }

    pub fn brokers(&self) -> &str {
        &self.inner.config.brokers
    }

    /// Partitions of the topic, as found at start.
    pub fn partitions(&self) -> i32 {
        self.inner.partitions
    }

    /// True while the broker answered its last check (every second).
    /// Answers at once, without waiting for a broker that is gone.
    pub fn connected(&self) -> bool {
        self.inner.reachable.load(Ordering::Relaxed)
    }

    /// Events of the topic the consumer group has not committed yet, per
    /// partition (index = partition). Read at most every 200 ms per group,
    /// so a scrape of every partition's gauge asks the broker once.
    pub async fn lag(&self, consumer: &str) -> Result<Vec<i64>, TransportError> {
        let mut lags = self.inner.lags.lock().await;
        if let Some(lag) = lags.get(consumer) {
            if lag.read.elapsed() < Duration::from_millis(200) {
                return Ok(lag.per_partition.clone());
            }
        }
        let client = match lags.get(consumer) {
            Some(lag) => lag.client.clone(),
            None => Arc::new(
                client_config(&self.inner.config.brokers)
                    .set("group.id", group(consumer))
                    .set("enable.auto.commit", "false")
                    .create::<BaseConsumer>()
                    .map_err(broker)?,
            ),
        };
        let (topic, partitions) = (self.inner.config.topic.clone(), self.inner.partitions);
        let probe = client.clone();
        let per_partition = tokio::task::spawn_blocking(move || {
            read_lag(&probe, &topic, partitions, Duration::from_millis(400))
        })
        .await
        .map_err(broker)??;
        lags.insert(
            consumer.to_string(),
            Lag {
                client,
                read: Instant::now(),
                per_partition: per_partition.clone(),
            },
        );
        Ok(per_partition)
    }

    /// Deletes the topic and every event in it (tests, teardown).
    pub async fn delete_topic(&self) -> Result<(), TransportError> {
        let admin: AdminClient<DefaultClientContext> = client_config(&self.inner.config.brokers)
            .create()
            .map_err(broker)?;
        let results = admin
            .delete_topics(
                &[self.inner.config.topic.as_str()],
                &AdminOptions::new().request_timeout(Some(CALL_TIMEOUT)),
            )
            .await
            .map_err(broker)?;
        for result in results {
            result.map_err(|(topic, code)| broker(format!("deleting {topic}: {code}")))?;
        }
        Ok(())
    }
}

struct Lag {
    client: Arc<BaseConsumer>,
    read: Instant,
    per_partition: Vec<i64>,
}

/// The consumer group of a service's consumer.
pub fn group(consumer: &str) -> String {
    format!("hanwha-{consumer}")
}

fn read_lag(
    client: &BaseConsumer,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<Vec<i64>, TransportError> {
    let mut all = TopicPartitionList::new();
    all.add_partition_range(topic, 0, partitions - 1);
    let committed = client.committed_offsets(all, timeout).map_err(broker)?;
    let mut out = Vec::with_capacity(partitions as usize);
    for partition in 0..partitions {
        let (low, high) = client
            .fetch_watermarks(topic, partition, timeout)
            .map_err(broker)?;
        let done = committed
            .find_partition(topic, partition)
            .and_then(|e| e.offset().to_raw())
            .filter(|o| *o >= 0)
            .unwrap_or(low);
        out.push((high - done).max(0));
    }
    Ok(out)
}

fn new_producer(brokers: &str) -> Result<FutureProducer, TransportError> {
    client_config(brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set(
            "message.timeout.ms",
            PRODUCE_TIMEOUT.as_millis().to_string(),
        )
        .create()
        .map_err(broker)
}

/// Creates the topic unless it exists.
async fn ensure_topic(config: &KafkaConfig) -> Result<(), TransportError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(&config.brokers).create().map_err(broker)?;
    let topic = NewTopic::new(
        &config.topic,
        config.partitions,
        TopicReplication::Fixed(config.replication),
    );
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().request_timeout(Some(CALL_TIMEOUT)),
        )
        .await
        .map_err(broker)?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(broker(format!("creating topic {topic}: {code}")));
            }
        }
    }
    Ok(())
}

/// Checks every second that the broker answers, until the bus is dropped.
async fn watch(bus: Weak<Inner>) {
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let Some(inner) = bus.upgrade() else { return };
        let producer = inner.producer.lock().expect("producer").clone();
        let topic = inner.config.topic.clone();
        let answered = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), WATCH_EVERY)
                .is_ok()
        })
        .await
        .unwrap_or(false);
        inner.reachable.store(answered, Ordering::Relaxed);
    }
}

/// The header the original's producers set to the event type.
pub const TYPE_HEADER: &str = "type";

#[async_trait]
impl EventSink for KafkaBus {
    async fn publish(&self, _source: &str, events: &[NewEvent]) -> Result<(), TransportError> {
        let producer = self.producer();
        let sent = send_all(&producer, &self.inner.config.topic, events).await;
        if sent.is_err() {
            self.replace_if_fatal(&producer);
        }
        sent
    }

    fn keeps_copies(&self) -> bool {
        true
    }
}

/// Queues the events in order, then waits for every acknowledgement: the
/// idempotent producer keeps the order and writes each once.
async fn send_all(
    producer: &FutureProducer,
    topic: &str,
    events: &[NewEvent],
) -> Result<(), TransportError> {
    let mut acks = Vec::with_capacity(events.len());
    for ev in events {
        let key = ev.order_id.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: TYPE_HEADER,
                value: Some(ev.event_type.as_str()),
            })
            .insert(Header {
                key: "contentType",
                value: Some("application/json"),
            });
        let record = FutureRecord::to(topic)
            .key(&key)
            .payload(&ev.payload)
            .headers(headers);
        match producer.send_result(record) {
            Ok(ack) => acks.push(ack),
            Err((e, _)) => return Err(broker(e)),
        }
    }
    for ack in acks {
        match ack.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(broker(e)),
            Err(_) => return Err(broker("the producer was dropped")),
        }
    }
    Ok(())
}

/// A message as the consumer engine reads it; its offset stands in for the
/// log position (only to order parked events).
fn as_logged(msg: &OwnedMessage) -> LoggedEvent {
    let payload = msg
        .payload()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let parsed: serde_json::Value =
        serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null);
    let header = msg.headers().and_then(|headers| {
        headers
            .iter()
            .find(|h| h.key == TYPE_HEADER)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    });
    LoggedEvent {
        seq: msg.offset(),
        event_id: parsed["eventId"].as_str().unwrap_or("").to_string(),
        event_type: header
            .or_else(|| parsed["eventType"].as_str().map(str::to_string))
            .unwrap_or_default(),
        order_id: parsed["orderId"].as_i64().unwrap_or(0),
        payload,
    }
}

/// Where to resume each partition: one past its last message handled.
fn offsets_after(topic: &str, messages: &[OwnedMessage]) -> TopicPartitionList {
    let mut next: HashMap<i32, i64> = HashMap::new();
    for msg in messages {
        let e = next.entry(msg.partition()).or_insert(0);
        *e = (*e).max(msg.offset() + 1);
    }
    let mut tpl = TopicPartitionList::new();
    for (partition, offset) in next {
        // Only fails for an offset that is not a position, which these are not.
        let _ = tpl.add_partition_offset(topic, partition, Offset::Offset(offset));
    }
    tpl
}

fn group_consumer(bus: &KafkaBus, consumer: &str) -> Result<StreamConsumer, TransportError> {
    let consumer: StreamConsumer = client_config(bus.brokers())
        .set("group.id", group(consumer))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // A replica that was killed gives its partitions up after this.
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        // A subscription made while the topic was new learns of its
        // partitions within seconds, not the default five minutes.
        .set("topic.metadata.refresh.interval.ms", "2000")
        // An event waits for the next fetch at most this long.
        .set("fetch.wait.max.ms", "50")
        .create()
        .map_err(broker)?;
    consumer.subscribe(&[bus.topic()]).map_err(broker)?;
    Ok(consumer)
}

/// Takes the messages that are there: waits for one, then those already
/// fetched behind it, up to a batch.
async fn next_batch(consumer: &StreamConsumer) -> Result<Vec<OwnedMessage>, TransportError> {
    let first = consumer.recv().await.map_err(broker)?.detach();
    let mut messages = vec![first];
    while messages.len() < BATCH {
        match consumer.recv().now_or_never() {
            Some(Ok(msg)) => messages.push(msg.detach()),
            Some(Err(e)) => return Err(broker(e)),
            None => break,
        }
    }
    Ok(messages)
}

/// Applies a batch until its transaction commits (a database that is away
/// is waited for: the messages must not be skipped), then commits their
/// offsets. Returns whether an event was parked.
async fn handle_batch(
    handler: &Arc<dyn EventHandler>,
    db: &Db,
    consumer: &Arc<StreamConsumer>,
    topic: &str,
    messages: Vec<OwnedMessage>,
    shutdown: &Shutdown,
) -> Option<bool> {
    let logged: Vec<LoggedEvent> = messages.iter().map(as_logged).collect();
    let parked = loop {
        match engine::apply_parking(handler, db, logged.clone()).await {
            Ok(parked) => break parked,
            Err(e) => {
                tracing::warn!(consumer = handler.name(), error = %e, "applying events failed; retrying");
                if shutdown.is_triggered() {
                    // Not committed: the broker delivers them again.
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let offsets = offsets_after(topic, &messages);
    let committer = consumer.clone();
    let committed =
        tokio::task::spawn_blocking(move || committer.commit(&offsets, CommitMode::Sync))
            .await
            .map_err(broker)
            .and_then(|r| r.map_err(broker));
    if let Err(e) = committed {
        // The partitions moved to another replica meanwhile, or the broker
        // is away: the messages come again and the inbox skips them.
        tracing::warn!(consumer = handler.name(), error = %e, "committing offsets failed");
    }
    Some(parked)
}

/// Runs a service's consumer on the topic until shutdown.
pub fn spawn_consumer(
    handler: Arc<dyn EventHandler>,
    db: Db,
    bus: KafkaBus,
    mut shutdown: Shutdown,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut consumer: Option<Arc<StreamConsumer>> = None;
        let mut next_retry: Option<i64> = Some(0);
        while !shutdown.is_triggered() {
            if next_retry.is_some_and(|at| at <= crate::clock::now_ms()) {
                match engine::retry_parked(&handler, &db).await {
                    Ok(next) => next_retry = next,
                    Err(e) => {
                        tracing::warn!(consumer = handler.name(), error = %e, "retrying parked events failed");
                        next_retry = Some(crate::clock::now_ms() + 200);
                    }
                }
            }
            let Some(c) = consumer.as_ref() else {
                match group_consumer(&bus, handler.name()) {
                    Ok(c) => consumer = Some(Arc::new(c)),
                    Err(e) => {
                        tracing::warn!(consumer = handler.name(), error = %e, "cannot reach the broker; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                            _ = shutdown.wait() => {}
                        }
                    }
                }
                continue;
            };
            let until_retry = next_retry
                .map(|at| Duration::from_millis((at - crate::clock::now_ms()).max(0) as u64))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            tokio::select! {
                batch = next_batch(c) => match batch {
                    Ok(messages) => {
                        let handled = handle_batch(&handler, &db, c, bus.topic(), messages, &shutdown).await;
                        if handled == Some(true) {
                            let first = crate::clock::now_ms() + retry_pause_ms(1);
                            next_retry = Some(next_retry.map_or(first, |at| at.min(first)));
                        }
                    }
                    Err(e) => {
                        // Errors the client recovers from by itself (a
                        // broker that went away); the consumer keeps going.
                        tracing::warn!(consumer = handler.name(), error = %e, "broker consumer error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
                _ = tokio::time::sleep(until_retry) => {}
                _ = shutdown.wait() => {}
            }
        }
    })
}

/// How long after an event was handled a copy of it can still arrive while
/// the service runs: offsets are committed right after the transaction, so
/// a copy comes only when the commit was lost (a crash, a rebalance) and
/// the partition is read again from the previous commit, within a session
/// timeout plus a produce timeout (a relay's republish).
pub fn redelivery_window() -> Duration {
    Duration::from_secs(6) + PRODUCE_TIMEOUT * 2 + Duration::from_secs(60)
}

/// Reads the topic from the beginning as a plain consumer (no group, no
/// commits), giving each message's value to `each`, partition by partition
/// in order; stops at the end the topic had when reading began, or, with
/// `follow`, when `stop` is set.
pub fn read_topic(
    brokers: &str,
    topic: &str,
    follow: bool,
    stop: &AtomicBool,
    mut each: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), TransportError> {
    let consumer: BaseConsumer = client_config(brokers)
        // Required by the client; nothing joins or commits under it.
        .set(
            "group.id",
            format!("hanwha-reader-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(broker)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), CALL_TIMEOUT)
        .map_err(broker)?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len() as i32);
    if partitions == 0 {
        return Err(broker(format!("no topic {topic} at {brokers}")));
    }
    let mut assignment = TopicPartitionList::new();
    let mut remaining = HashMap::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(broker)?;
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, CALL_TIMEOUT)
            .map_err(broker)?;
        if high > low {
            remaining.insert(partition, high);
        }
    }
    consumer.assign(&assignment).map_err(broker)?;
    while (follow || !remaining.is_empty()) && !stop.load(Ordering::Relaxed) {
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = msg.map_err(broker)?;
        each(msg.payload().unwrap_or_default()).map_err(broker)?;
        if remaining
            .get(&msg.partition())
            .is_some_and(|end| msg.offset() + 1 >= *end)
        {
            remaining.remove(&msg.partition());
        }
    }
    Ok(())
}
