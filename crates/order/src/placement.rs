//! Placing an order: record it (with the customer's Idempotency-Key), pay
//! for it, and settle it as paid, declined or not placed. Runs to its end
//! in a task of its own, so a customer who hangs up mid-payment leaves no
//! order waiting for a sweep; and a retry with the same key finds the order
//! the first attempt recorded and resumes it instead of charging again.

use contracts::OrderStatus;
use platform::deadline::Deadline;
use platform::{sql, ApiError};
use uuid::Uuid;

use crate::clients::{ClientError, MenuItem, PaymentOutcome, PaymentRequest};
use crate::domain::OrderAction;
use crate::record::{self, ChangeError, Order};
use crate::OrderService;

/// An order as the customer asked for it, checked and priced.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub customer_id: i64,
    pub menu: MenuItem,
    pub qty: i64,
    pub price: i64,
    pub address: String,
    pub card: Option<String>,
    pub actor: String,
    pub idempotency_key: Option<String>,
}

/// How placing ended.
#[derive(Debug)]
pub enum Placed {
    Paid(Order),
    Declined {
        order: Order,
        reason: String,
    },
    /// Payment did not answer in time: the order is not placed and its key
    /// is free for a retry.
    NotPlaced {
        order: Order,
        why: String,
    },
    /// A retry found an order already past payment: answered as it stands.
    AsItStands(Order),
}

/// Places the order in a task no client can cancel.
pub async fn place(svc: &OrderService, new: NewOrder) -> Result<Placed, ApiError> {
    let svc = svc.clone();
    tokio::spawn(async move { run(&svc, new).await })
        .await
        .map_err(|e| ApiError::internal(format!("placing the order stopped: {e}")))?
}

async fn run(svc: &OrderService, new: NewOrder) -> Result<Placed, ApiError> {
    let (order, resumed) = record_or_find(svc, &new).await?;
    if order.status != OrderStatus::PaymentPending {
        return Ok(match order.status {
            OrderStatus::PaymentFailed => Placed::Declined {
                reason: order.reason.clone().unwrap_or_else(|| "declined".into()),
                order,
            },
            _ => Placed::AsItStands(order),
        });
    }
    if resumed {
        tracing::warn!(
            order_id = order.id,
            "resuming an order whose payment never settled, for a retried Idempotency-Key"
        );
    }
    let timeout = svc.config.payment_timeout;
    let request = PaymentRequest {
        facts: order.facts(),
        card: new.card.clone(),
        actor: new.actor.clone(),
        deadline: Deadline::within(timeout),
    };
    let outcome = match tokio::time::timeout(timeout, svc.payment.pay(request)).await {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(ClientError::Unavailable(e))) => Err(e),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    };
    let settled = settle(svc, order.id, &new.actor, outcome.clone()).await?;
    // The answer follows the order as committed: a sweep (or a concurrent
    // retry) may have settled it first.
    Ok(match (settled.status, outcome) {
        (OrderStatus::PaymentFailed, Ok(PaymentOutcome::Declined { reason })) => Placed::Declined {
            order: settled,
            reason,
        },
        (OrderStatus::PaymentFailed, outcome) => {
            let why = match outcome {
                Err(why) => why,
                Ok(_) => "payment did not settle in time".to_string(),
            };
            tracing::warn!(
                order_id = settled.id,
                why = %why,
                "order not placed: payment did not answer in time; a charge that went through anyway is refunded"
            );
            Placed::NotPlaced {
                order: settled,
                why,
            }
        }
        _ => Placed::Paid(settled),
    })
}

/// The order this key already made, or a new one: the key lands in the
/// same commit as the order, so the two cannot disagree.
async fn record_or_find(svc: &OrderService, new: &NewOrder) -> Result<(Order, bool), ApiError> {
    let new = new.clone();
    let now = platform::clock::now_ms();
    svc.db
        .write(move |tx| {
            Box::pin(async move {
                if let Some(key) = &new.idempotency_key {
                    if let Some(order) = record::by_key(tx, new.customer_id, key).await? {
                        return Ok((order, true));
                    }
                }
                let id: i64 = sql::query(
                    "INSERT INTO orders (customer_id, store_id, menu_id, menu_name, qty, unit_price, price, address, status, correlation_id, version, created_at, updated_at, idempotency_key)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'PaymentPending', ?, 1, ?, ?, ?) RETURNING id",
                )
                .bind(new.customer_id)
                .bind(new.menu.store_id)
                .bind(new.menu.id)
                .bind(&new.menu.name)
                .bind(new.qty)
                .bind(new.menu.price)
                .bind(new.price)
                .bind(&new.address)
                .bind(Uuid::now_v7().to_string())
                .bind(now)
                .bind(now)
                .bind(new.idempotency_key.as_deref())
                .fetch_one(&mut *tx)
                .await?
                .get(0);
                let order = record::load(tx, id)
                    .await?
                    .ok_or_else(|| ApiError::internal("order vanished"))?;
                Ok((order, false))
            })
        })
        .await
}

async fn settle(
    svc: &OrderService,
    id: i64,
    actor: &str,
    outcome: Result<PaymentOutcome, String>,
) -> Result<Order, ApiError> {
    let actor = actor.to_string();
    svc.db
        .write(move |tx| {
            Box::pin(async move {
                let result = match &outcome {
                    Ok(PaymentOutcome::Approved { payment_id }) => {
                        sql::query("UPDATE orders SET payment_id = ? WHERE id = ?")
                            .bind(payment_id)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                        record::change(tx, id, OrderAction::PaymentApproved, &actor, None).await
                    }
                    Ok(PaymentOutcome::Declined { reason }) => {
                        record::change(tx, id, OrderAction::PaymentFailed, &actor, Some(reason))
                            .await
                    }
                    Err(e) => {
                        // Not placed: a retry with the same key places anew.
                        record::release_key(tx, id).await?;
                        let reason = format!("payment unavailable: {e}");
                        record::change(tx, id, OrderAction::PaymentFailed, "system", Some(&reason))
                            .await
                    }
                };
                match result {
                    Ok(order) => Ok(order),
                    // Settled meanwhile (the stuck-payment sweep, or a retry
                    // that resumed it): the order as it stands is the answer.
                    Err(ChangeError::Illegal(_)) => record::load(tx, id)
                        .await?
                        .ok_or_else(|| ApiError::internal("order vanished")),
                    Err(ChangeError::NotFound(id)) => {
                        Err(ApiError::internal(format!("order {id} vanished")))
                    }
                    Err(ChangeError::Db(e)) => Err(e.into()),
                }
            })
        })
        .await
}
