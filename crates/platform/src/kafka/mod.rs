//! Kafka transport: one topic holds every event, as in the original system.
//! Each message is keyed by its order id (one order's events stay in order
//! within a partition), its value is the flat JSON event and its `type`
//! header the event type, as the original's producers wrote them, so a
//! consumer written for the original reads ours.
//!
//! The relay produces with an idempotent producer (`acks=all`) and returns
//! only once the broker acknowledged every message, so an outbox row is
//! deleted only after that; one relay per database at a time (see
//! [`crate::outbox`]), and a batch sent again after a lost acknowledgement
//! stays on the topic as a copy, which every consumer's inbox skips. Each
//! service reads in its own consumer group
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
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use tokio::sync::Mutex;

use crate::event_log::NewEvent;
use crate::transport::{EventSink, TransportError};

mod consumer;
mod topic;

pub use consumer::spawn_consumer;
pub use topic::read_topic;
use topic::{ensure_topic, read_lag};

/// The original system's topic.
pub const DEFAULT_TOPIC: &str = "hanwhadeliverysystemteam";
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

/// How long after an event was handled a copy of it can still arrive while
/// the service runs: offsets are committed right after the transaction, so
/// a copy comes only when the commit was lost (a crash, a rebalance) and
/// the partition is read again from the previous commit, within a session
/// timeout plus a produce timeout (a relay's republish).
pub fn redelivery_window() -> Duration {
    Duration::from_secs(6) + PRODUCE_TIMEOUT * 2 + Duration::from_secs(60)
}
