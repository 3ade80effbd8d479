//! What Order learns from the other services' events.

use async_trait::async_trait;
use contracts::{Event, EventType};
use platform::consumer::{EventHandler, HandlerError};
use platform::Conn;

use crate::domain::OrderAction;
use crate::storage::{self, ChangeError};

pub struct OrderEvents;

fn action_for(event_type: EventType) -> Option<OrderAction> {
    match event_type {
        EventType::CookStarted => Some(OrderAction::StoreAccepted),
        EventType::OrderRejected => Some(OrderAction::StoreRejected),
        EventType::CookFinished => Some(OrderAction::CookFinished),
        EventType::DeliveryStarted => Some(OrderAction::PickedUp),
        EventType::DeliveryCompleted => Some(OrderAction::Delivered),
        EventType::StoreOrderCancelled => Some(OrderAction::StoreCancelled),
        _ => None,
    }
}

#[async_trait]
impl EventHandler for OrderEvents {
    fn name(&self) -> &'static str {
        "order"
    }

    fn wants(&self, event_type: EventType) -> bool {
        action_for(event_type).is_some()
    }

    async fn handle(&self, conn: &mut Conn, event: &Event) -> Result<(), HandlerError> {
        let Some(action) = action_for(event.event_type) else {
            return Ok(());
        };
        match storage::follow(
            conn,
            event.order_id,
            action,
            &event.actor,
            event.reason.as_deref(),
        )
        .await
        {
            Ok(_) => Ok(()),
            Err(ChangeError::Db(e)) => Err(HandlerError::Db(e)),
            Err(e) => Err(HandlerError::Rejected(e.to_string())),
        }
    }
}
