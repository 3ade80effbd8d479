//! New paid orders arrive in the store's list from `MenuOrdered`.

use async_trait::async_trait;
use contracts::{Event, EventType};
use platform::consumer::{EventHandler, HandlerError};
use platform::Conn;

use crate::domain::StoreOrderStatus;

pub struct StoreEvents;

#[async_trait]
impl EventHandler for StoreEvents {
    fn name(&self) -> &'static str {
        "store"
    }

    fn wants(&self, event_type: EventType) -> bool {
        event_type == EventType::MenuOrdered
    }

    async fn handle(&self, conn: &mut Conn, event: &Event) -> Result<(), HandlerError> {
        crate::storage::receive(conn, &event.facts(), StoreOrderStatus::Received, None).await?;
        Ok(())
    }
}
