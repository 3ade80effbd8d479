//! Refunds: an order that is cancelled, rejected by the store or that gave
//! up on its payment gets its money back.

use async_trait::async_trait;
use contracts::{Event, EventType};
use platform::consumer::{EventHandler, HandlerError};
use platform::Conn;

use crate::record::Refund;

pub struct PaymentEvents;

#[async_trait]
impl EventHandler for PaymentEvents {
    fn name(&self) -> &'static str {
        "payment"
    }

    fn wants(&self, event_type: EventType) -> bool {
        matches!(
            event_type,
            EventType::MenuCancelled | EventType::OrderRejected | EventType::OrderPaymentFailed
        )
    }

    async fn handle(&self, conn: &mut Conn, event: &Event) -> Result<(), HandlerError> {
        let reason = match event.event_type {
            EventType::MenuCancelled => "order cancelled",
            EventType::OrderRejected => "order rejected by the store",
            _ => "order gave up on its payment",
        };
        let refund = crate::record::refund(conn, &event.facts(), &event.actor, reason).await?;
        if refund == Refund::Refunded && event.event_type == EventType::OrderPaymentFailed {
            // Money moved for an order that was never placed: worth a look.
            tracing::warn!(
                order_id = event.order_id,
                amount = event.price,
                "refunded a payment approved after its order gave up on it"
            );
        }
        Ok(())
    }
}
