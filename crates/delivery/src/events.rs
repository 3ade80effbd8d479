//! What Delivery learns from the other services' events: `CookFinished`
//! opens a delivery.

use async_trait::async_trait;
use contracts::{Event, EventType};
use platform::consumer::{EventHandler, HandlerError};
use platform::Conn;

pub struct DeliveryEvents;

#[async_trait]
impl EventHandler for DeliveryEvents {
    fn name(&self) -> &'static str {
        "delivery"
    }

    fn wants(&self, event_type: EventType) -> bool {
        event_type == EventType::CookFinished
    }

    async fn handle(&self, conn: &mut Conn, event: &Event) -> Result<(), HandlerError> {
        crate::storage::open(conn, &event.facts()).await?;
        Ok(())
    }
}
