//! NATS JetStream transport: one durable stream holds every event (subject
//! `<prefix>.<EventType>`), each service reads it through its own durable
//! pull consumer with explicit acks. The broker deduplicates republished
//! events by `Nats-Msg-Id` (the event id); the consumer's inbox makes a
//! redelivered event change nothing; an event that keeps failing becomes a
//! dead letter after [`MAX_ATTEMPTS`] deliveries and is acknowledged, so it
//! never holds up the rest.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream, AckKind};
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use tokio::task::JoinHandle;

use crate::consumer::{self as engine, EventHandler, MAX_ATTEMPTS};
use crate::db::Db;
use crate::event_log::{LoggedEvent, NewEvent};
use crate::shutdown::Shutdown;
use crate::transport::{EventSink, TransportError};

const BATCH: usize = 256;
/// How long the broker keeps an event id to drop republished duplicates.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

#[derive(Clone)]
pub struct NatsBus {
    js: jetstream::Context,
    stream: String,
    prefix: String,
}

fn broker<E: std::fmt::Display>(e: E) -> TransportError {
    TransportError::Broker(e.to_string())
}

impl NatsBus {
    /// Connects and makes sure the stream exists.
    pub async fn connect(
        url: &str,
        stream_name: &str,
        prefix: &str,
    ) -> Result<NatsBus, TransportError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(broker)?;
        let js = jetstream::new(client);
        js.get_or_create_stream(stream::Config {
            name: stream_name.to_string(),
            subjects: vec![format!("{prefix}.>")],
            storage: stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await
        .map_err(broker)?;
        Ok(NatsBus {
            js,
            stream: stream_name.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// Deletes the stream and every event in it (tests, teardown).
    pub async fn delete_stream(&self) -> Result<(), TransportError> {
        self.js.delete_stream(&self.stream).await.map_err(broker)?;
        Ok(())
    }

    /// Events in the stream the consumer has not acknowledged yet.
    pub async fn pending(&self, consumer: &str) -> Result<u64, TransportError> {
        let mut c = self.consumer(consumer).await?;
        let info = c.info().await.map_err(broker)?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }

    /// Events the stream holds.
    pub async fn messages(&self) -> Result<u64, TransportError> {
        let mut stream = self.js.get_stream(&self.stream).await.map_err(broker)?;
        Ok(stream.info().await.map_err(broker)?.state.messages)
    }

    /// True while the client holds a connection to the broker. Answers at
    /// once, without a round trip that would wait for a broker that is gone.
    pub fn connected(&self) -> bool {
        matches!(
            self.js.client().connection_state(),
            async_nats::connection::State::Connected
        )
    }

    async fn consumer(&self, name: &str) -> Result<consumer::PullConsumer, TransportError> {
        let stream = self.js.get_stream(&self.stream).await.map_err(broker)?;
        stream
            .get_or_create_consumer(
                name,
                consumer::pull::Config {
                    durable_name: Some(name.to_string()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    // How soon events a consumer took but never answered
                    // (its process was killed) go to another replica. A
                    // batch that runs longer is delivered twice at worst,
                    // which the inbox makes harmless.
                    ack_wait: ACK_WAIT,
                    filter_subject: format!("{}.>", self.prefix),
                    ..Default::default()
                },
            )
            .await
            .map_err(broker)
    }
}

#[async_trait]
impl EventSink for NatsBus {
    async fn publish(&self, _source: &str, events: &[NewEvent]) -> Result<(), TransportError> {
        // Send them all, then wait for every ack: one round trip per batch.
        let mut acks = Vec::with_capacity(events.len());
        for ev in events {
            let publish = jetstream::message::PublishMessage::build()
                .payload(ev.payload.clone().into())
                .message_id(ev.event_id.as_str());
            let ack = self
                .js
                .send_publish(format!("{}.{}", self.prefix, ev.event_type), publish)
                .await
                .map_err(broker)?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(broker)?;
        }
        Ok(())
    }
}

fn as_logged(msg: &jetstream::Message, prefix: &str) -> Result<LoggedEvent, TransportError> {
    let info = msg.info().map_err(broker)?;
    let event_type = msg
        .subject
        .as_str()
        .strip_prefix(prefix)
        .and_then(|s| s.strip_prefix('.'))
        .unwrap_or("")
        .to_string();
    let payload = String::from_utf8_lossy(&msg.payload).into_owned();
    let parsed: serde_json::Value =
        serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null);
    Ok(LoggedEvent {
        seq: info.stream_sequence as i64,
        event_id: parsed["eventId"].as_str().unwrap_or("").to_string(),
        event_type,
        order_id: parsed["orderId"].as_i64().unwrap_or(0),
        payload,
    })
}

const ACK_WAIT: Duration = Duration::from_secs(5);
/// The longest pause between two failed deliveries (see `consume_batch`).
const MAX_BACKOFF: Duration = Duration::from_millis(20 * 4u64.pow(5));

/// How long after an event was handled a copy of it can still arrive from
/// the broker while the service runs: a republish after the duplicate window
/// is a new message (the relay republishes only until the broker's ack is
/// recorded, within seconds), an unanswered delivery comes back after the
/// ack wait, a failed one after its backoff, at most `MAX_ATTEMPTS` times.
/// The stream itself keeps messages with no age limit, so an event a
/// service never acknowledged waits for it as long as it is down; its own
/// inbox retention does not run meanwhile.
pub fn redelivery_window() -> Duration {
    DUPLICATE_WINDOW + (ACK_WAIT + MAX_BACKOFF) * MAX_ATTEMPTS
}

/// Handles the events that are there: waits for one, then takes those
/// already delivered behind it, up to a batch. Returns how many it took.
async fn consume_batch(
    handler: &Arc<dyn EventHandler>,
    db: &Db,
    bus: &NatsBus,
    stream: &mut consumer::pull::Stream,
) -> Result<usize, TransportError> {
    let first = match stream.next().await {
        Some(msg) => msg.map_err(broker)?,
        None => return Err(broker("the broker closed the consumer's stream")),
    };
    let mut messages = vec![first];
    while messages.len() < BATCH {
        match stream.next().now_or_never() {
            Some(Some(msg)) => messages.push(msg.map_err(broker)?),
            _ => break,
        }
    }
    if messages.is_empty() {
        return Ok(0);
    }
    let mut logged = Vec::with_capacity(messages.len());
    for msg in &messages {
        logged.push(as_logged(msg, &bus.prefix)?);
    }
    let failed = engine::apply_all(handler, db, logged.clone()).await?;
    let done = failed.as_ref().map(|(i, _)| *i).unwrap_or(messages.len());
    for msg in &messages[..done] {
        msg.ack().await.map_err(broker)?;
    }
    if let Some((index, error)) = failed {
        let msg = &messages[index];
        let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
        if delivered >= MAX_ATTEMPTS as i64 {
            engine::bury(handler.name(), db, &logged[index], &error, delivered).await?;
            msg.ack_with(AckKind::Term).await.map_err(broker)?;
        } else {
            let backoff = Duration::from_millis(20 * 4u64.pow(delivered.clamp(1, 6) as u32 - 1));
            msg.ack_with(AckKind::Nak(Some(backoff)))
                .await
                .map_err(broker)?;
        }
        // The rest of the batch comes again; the inbox skips what was done.
        for msg in &messages[index + 1..] {
            msg.ack_with(AckKind::Nak(None)).await.map_err(broker)?;
        }
    }
    Ok(messages.len())
}

async fn subscribe(bus: &NatsBus, name: &str) -> Result<consumer::pull::Stream, TransportError> {
    bus.consumer(name)
        .await?
        .stream()
        .max_messages_per_batch(BATCH)
        .messages()
        .await
        .map_err(broker)
}

/// Runs a service's consumer on the broker until shutdown.
pub fn spawn_consumer(
    handler: Arc<dyn EventHandler>,
    db: Db,
    bus: NatsBus,
    mut shutdown: Shutdown,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // A continuous pull: the client keeps a request open and events
        // arrive as soon as they are stored, with no poll interval.
        let mut messages = None;
        while !shutdown.is_triggered() {
            if messages.is_none() {
                match subscribe(&bus, handler.name()).await {
                    Ok(m) => messages = Some(m),
                    Err(e) => {
                        tracing::warn!(consumer = handler.name(), error = %e, "cannot reach the broker; retrying");
                        shutdown.pause(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            let Some(m) = messages.as_mut() else { continue };
            tokio::select! {
                result = consume_batch(&handler, &db, &bus, m) => {
                    if let Err(e) = result {
                        tracing::warn!(consumer = handler.name(), error = %e, "broker consumer failed; reconnecting");
                        messages = None;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                _ = shutdown.wait() => {}
            }
        }
    })
}
