//! A service's consumer on the topic: its own group, a batch applied in one
//! transaction, offsets committed after it, poison parked beside the
//! partition.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::task::JoinHandle;

use super::{broker, client_config, group, KafkaBus, TYPE_HEADER};
use crate::consumer::{self as engine, retry_pause_ms, EventHandler};
use crate::db::Db;
use crate::event_log::LoggedEvent;
use crate::shutdown::Shutdown;
use crate::transport::TransportError;

/// Messages applied in one transaction at most.
const BATCH: usize = 256;

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
                        shutdown.pause(Duration::from_millis(500)).await;
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
