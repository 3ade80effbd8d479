//! The topic itself: made at start when missing, read from the beginning by
//! a plain consumer, and each consumer group's lag on it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::{broker, client_config, KafkaConfig, CALL_TIMEOUT};
use crate::transport::TransportError;

pub(super) fn read_lag(
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

/// Creates the topic unless it exists.
pub(super) async fn ensure_topic(config: &KafkaConfig) -> Result<(), TransportError> {
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
