//! Refunds: an order that is cancelled, rejected by the store or that gave
//! up on its payment gets its money back.

use async_trait::async_trait;
use contracts::{Event, EventType};
use platform::consumer::{EventHandler, HandlerError};
use platform::outbox::OutboxSignal;
use platform::Conn;

pub struct PaymentEvents {
    pub outbox: OutboxSignal,
}

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
        crate::record::refund(conn, &event.facts(), &event.actor, reason).await?;
        Ok(())
    }

    fn committed(&self) {
        self.outbox.notify();
    }
}
