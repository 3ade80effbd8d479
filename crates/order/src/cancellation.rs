//! Cancelling an order the store has not accepted: the customer's cancel
//! and the deadline sweep's both come here. The store decides first (so a
//! racing accept and cancel have one winner), then the order commits
//! `Cancelled` with `MenuCancelled`, which refunds the payment.

use crate::clients::StoreCancel;
use crate::domain::{self, OrderAction};
use crate::error::OrderError;
use crate::storage::{self, Order};
use crate::OrderService;

pub async fn cancel(
    svc: &OrderService,
    order: Order,
    actor: &str,
    reason: Option<&str>,
) -> Result<Order, OrderError> {
    domain::next(order.status, OrderAction::Cancel)?;
    match svc.store.cancel(order.facts(), actor.to_string()).await {
        Ok(StoreCancel::Cancelled) => {}
        Ok(StoreCancel::TooLate { status }) => return Err(OrderError::StoreDecided(status)),
        Err(e) => return Err(OrderError::CancelUnanswered(e.to_string())),
    }
    let (actor, reason, id) = (actor.to_string(), reason.map(str::to_string), order.id);
    let order = svc
        .db
        .write(move |tx| {
            Box::pin(async move {
                // The store's `StoreOrderCancelled` may have cancelled it
                // already, through Order's consumer: the same outcome.
                storage::follow(
                    tx,
                    id,
                    OrderAction::StoreCancelled,
                    &actor,
                    reason.as_deref(),
                )
                .await
                .map_err(OrderError::from)
            })
        })
        .await?;
    Ok(order)
}
