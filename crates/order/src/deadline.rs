//! Sweeps for orders nobody moved on: an order the store left unanswered
//! past the deadline is cancelled (and so refunded), and an order whose
//! payment call never settled (its process died mid-call) is failed, which
//! refunds a payment that went through anyway.

use platform::sql;
use std::time::Duration;

use contracts::OrderStatus;
use platform::shutdown::Shutdown;
use tokio::task::JoinHandle;

use crate::domain::OrderAction;
use crate::record::{self, Order, COLUMNS};
use crate::OrderService;

/// A `PaymentPending` order this much older than the payment timeout is
/// past any payment call: the process that made it died.
const PAYMENT_SETTLE_MARGIN: Duration = Duration::from_secs(1);

pub async fn sweep_once(svc: &OrderService) -> Result<usize, platform::ApiError> {
    let now = platform::clock::now_ms();
    let mut done = 0;

    let settle = svc.config.payment_timeout * 2 + PAYMENT_SETTLE_MARGIN;
    let stale_payment = now - settle.as_millis() as i64;
    let ids: Vec<i64> = sql::query(
        "SELECT id FROM orders WHERE status = 'PaymentPending' AND created_at < ? LIMIT 100",
    )
    .bind(stale_payment)
    .fetch_all(&svc.db)
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    for id in ids {
        let failed = svc
            .db
            .write(move |tx| {
                Box::pin(async move {
                    let r = record::change(
                        tx,
                        id,
                        OrderAction::PaymentFailed,
                        "system",
                        Some("payment did not settle"),
                    )
                    .await;
                    if r.is_ok() {
                        // Not placed: its key is free for a retry.
                        record::release_key(tx, id).await?;
                    }
                    // Settled meanwhile by its own request: nothing to do.
                    Ok::<_, platform::ApiError>(r.is_ok())
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

    let deadline = now - svc.config.store_deadline.as_millis() as i64;
    let rows = sql::query(format!(
        "SELECT {COLUMNS} FROM orders WHERE status = 'Ordered' AND updated_at < ? ORDER BY id LIMIT 100"
    ))
    .bind(deadline)
    .fetch_all(&svc.db)
    .await?;
    for order in rows.iter().map(Order::from_row) {
        debug_assert_eq!(order.status, OrderStatus::Ordered);
        let reason = format!(
            "the store did not answer within {} s",
            svc.config.store_deadline.as_secs()
        );
        match crate::http::cancel_order(svc, order, "system", Some(&reason)).await {
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
