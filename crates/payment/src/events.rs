//! What Payment learns from the other services' events: an order that is
//! cancelled, rejected by the store or that gave up on its payment gets its
//! money back.

use async_trait::async_trait;
use contracts::{Event, EventType};
use platform::consumer::{EventHandler, HandlerError};
use platform::Conn;

use crate::domain::{self, Refund};

pub struct PaymentEvents;

#[async_trait]
impl EventHandler for PaymentEvents {
    fn name(&self) -> &'static str {
        "payment"
    }

    fn wants(&self, event_type: EventType) -> bool {
        domain::refund_reason(event_type).is_some()
    }

    async fn handle(&self, conn: &mut Conn, event: &Event) -> Result<(), HandlerError> {
        let Some(reason) = domain::refund_reason(event.event_type) else {
            return Ok(());
        };
        let refund = crate::storage::refund(conn, &event.facts(), &event.actor, reason).await?;
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
