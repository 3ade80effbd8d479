//! Where relays publish events: the embedded log in the all-in-one shape, a
//! broker (NATS JetStream) in the distributed one. Services never see which.

use async_trait::async_trait;

use crate::event_log::{EventLog, NewEvent};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("event log: {0}")]
    Log(#[from] sqlx::Error),
    #[error("broker: {0}")]
    Broker(String),
}

#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Publishes in order; returns once the transport holds every event
    /// durably. An event id published again (a relay that lost the
    /// acknowledgement) must not be handled twice: the embedded log and
    /// NATS drop the copy, Kafka keeps it and every consumer's inbox skips
    /// it.
    async fn publish(&self, source: &str, events: &[NewEvent]) -> Result<(), TransportError>;

    /// Whether an event published again is kept as a copy (Kafka): then
    /// replicas sharing a database take turns publishing its outbox (see
    /// `platform::outbox`), so they do not each send it.
    fn keeps_copies(&self) -> bool {
        false
    }
}

#[async_trait]
impl EventSink for EventLog {
    async fn publish(&self, source: &str, events: &[NewEvent]) -> Result<(), TransportError> {
        Ok(self.append(source, events).await?)
    }
}
