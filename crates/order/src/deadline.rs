//! Sweeps for orders nobody moved on: an order the store left unanswered
//! past the deadline is cancelled (and so refunded), and an order whose
//! payment call never settled (its process died mid-call) is failed, which
//! refunds a payment that went through anyway.

use std::time::Duration;

use contracts::OrderStatus;
use platform::shutdown::Shutdown;
use tokio::task::JoinHandle;

use crate::domain::OrderAction;
use crate::error::OrderError;
use crate::storage;
use crate::OrderService;

/// A `PaymentPending` order this much older than the payment timeout is
/// past any payment call: the process that made it died.
const PAYMENT_SETTLE_MARGIN: Duration = Duration::from_secs(1);

/// One sweep of both kinds; how many orders it moved on.
pub async fn sweep_once(svc: &OrderService) -> Result<usize, OrderError> {
    let now = platform::clock::now_ms();
    Ok(fail_unsettled_payments(svc, now).await? + cancel_unanswered(svc, now).await?)
}

/// Fails the orders whose payment call never settled (the process that
/// made it died); a payment that went through anyway is refunded.
async fn fail_unsettled_payments(svc: &OrderService, now: i64) -> Result<usize, OrderError> {
    let settle = svc.config.payment_timeout * 2 + PAYMENT_SETTLE_MARGIN;
    let stale_payment = now - settle.as_millis() as i64;
    let mut done = 0;
    for id in storage::stale_payments(&svc.db, stale_payment).await? {
        let failed = svc
            .db
            .write(move |tx| {
                Box::pin(async move {
                    let r = storage::change(
                        tx,
                        id,
                        OrderAction::PaymentFailed,
                        "system",
                        Some("payment did not settle"),
                    )
                    .await;
                    if r.is_ok() {
                        // Not placed: its key is free for a retry.
                        storage::release_key(tx, id).await?;
                    }
                    // Settled meanwhile by its own request: nothing to do.
                    Ok::<_, OrderError>(r.is_ok())
                })
            })
            .await?;
        if failed {
            tracing::warn!(
                order_id = id,
                "failed an order whose payment never settled (its process stopped mid-payment); a charge that went through is refunded"
            );
            done += 1;
        }
    }

    Ok(done)
}

/// Cancels (and so refunds) the orders the store left unanswered past the
/// deadline.
async fn cancel_unanswered(svc: &OrderService, now: i64) -> Result<usize, OrderError> {
    let mut done = 0;
    let deadline = now - svc.config.store_deadline.as_millis() as i64;
    for order in storage::unanswered(&svc.db, deadline).await? {
        debug_assert_eq!(order.status, OrderStatus::Ordered);
        let reason = format!(
            "the store did not answer within {} s",
            svc.config.store_deadline.as_secs()
        );
        match crate::cancellation::cancel(svc, order, "system", Some(&reason)).await {
            Ok(_) => done += 1,
            // The store accepted meanwhile, or is unreachable: next sweep.
            Err(e) => tracing::debug!(error = %e, "deadline cancel skipped"),
        }
    }
    Ok(done)
}

pub fn spawn(svc: OrderService, every: Duration, mut shutdown: Shutdown) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait() => break,
            }
            if let Err(e) = sweep_once(&svc).await {
                tracing::warn!(error = %e, "order sweep failed");
            }
        }
    })
}
