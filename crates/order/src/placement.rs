//! Placing an order: price it from the store's menu, record it (with the
//! customer's Idempotency-Key), pay for it, and settle it as paid, declined
//! or not placed. Runs to its end in a task of its own, so a customer who
//! hangs up mid-payment leaves no order waiting for a sweep; and a retry
//! with the same key finds the order the first attempt recorded and resumes
//! it instead of charging again.

use contracts::values::{Address, Card, Id, Krw, Qty};
use contracts::OrderStatus;
use platform::deadline::Deadline;

use crate::clients::{ClientError, MenuItem, PaymentOutcome, PaymentRequest};
use crate::domain::{self, OrderAction};
use crate::error::OrderError;
use crate::storage::{self, ChangeError, Order};
use crate::OrderService;

/// Which menu item the customer names.
#[derive(Debug, Clone)]
pub enum MenuChoice {
    Id(Id),
    Name(String),
}

/// What a customer asks for, its values already parsed.
#[derive(Debug, Clone)]
pub struct Request {
    pub customer_id: i64,
    pub actor: String,
    pub menu: MenuChoice,
    pub qty: Qty,
    pub address: Address,
    /// `None` (or a blank card) for the demo card.
    pub card: Option<Card>,
    pub idempotency_key: Option<String>,
}

/// An order as the customer asked for it, priced from the menu.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub customer_id: i64,
    pub menu: MenuItem,
    pub qty: Qty,
    pub price: Krw,
    pub address: Address,
    pub card: Option<String>,
    pub actor: String,
    pub idempotency_key: Option<String>,
}

/// How placing ended, when it ended with an order to show.
#[derive(Debug)]
enum Ending {
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

/// Prices the order from the store's menu, then places it in a task no
/// client can cancel. A declined card and a payment that did not answer
/// are errors that name the order.
pub async fn place(svc: &OrderService, request: Request) -> Result<Order, OrderError> {
    let new = priced(svc, request).await?;
    let svc = svc.clone();
    let placed = tokio::spawn(async move { run(&svc, new).await })
        .await
        .map_err(|e| OrderError::Internal(format!("placing the order stopped: {e}")))??;
    match placed {
        Ending::Paid(order) | Ending::AsItStands(order) => Ok(order),
        Ending::Declined { order, reason } => Err(OrderError::Declined {
            order_id: order.id,
            status: order.status,
            reason,
        }),
        Ending::NotPlaced { order, why } => Err(OrderError::NotPlaced {
            order_id: order.id,
            why,
        }),
    }
}

async fn priced(svc: &OrderService, request: Request) -> Result<NewOrder, OrderError> {
    let unavailable = |e: ClientError| OrderError::StoreUnavailable(e.to_string());
    let menu = match &request.menu {
        MenuChoice::Id(id) => svc.store.menu_by_id(id.get()).await,
        MenuChoice::Name(name) => svc.store.menu_by_name(name.trim()).await,
    }
    .map_err(unavailable)?
    .ok_or_else(|| OrderError::Invalid("no such menu item".into()))?;
    let price = domain::total(&menu, request.qty).map_err(OrderError::Invalid)?;
    Ok(NewOrder {
        customer_id: request.customer_id,
        menu,
        qty: request.qty,
        price,
        address: request.address,
        card: request.card.and_then(Card::digits),
        actor: request.actor,
        idempotency_key: request.idempotency_key,
    })
}

async fn run(svc: &OrderService, new: NewOrder) -> Result<Ending, OrderError> {
    let (order, resumed) = record_or_find(svc, &new).await?;
    if order.status != OrderStatus::PaymentPending {
        return Ok(match order.status {
            OrderStatus::PaymentFailed => Ending::Declined {
                reason: order.reason.clone().unwrap_or_else(|| "declined".into()),
                order,
            },
            _ => Ending::AsItStands(order),
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
        (OrderStatus::PaymentFailed, Ok(PaymentOutcome::Declined { reason })) => Ending::Declined {
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
            Ending::NotPlaced {
                order: settled,
                why,
            }
        }
        _ => Ending::Paid(settled),
    })
}

/// The order this key already made, or a new one: the key lands in the
/// same commit as the order, so the two cannot disagree.
async fn record_or_find(svc: &OrderService, new: &NewOrder) -> Result<(Order, bool), OrderError> {
    let new = new.clone();
    svc.db
        .write(move |tx| {
            Box::pin(async move {
                if let Some(key) = &new.idempotency_key {
                    if let Some(order) = storage::by_key(tx, new.customer_id, key).await? {
                        return Ok((order, true));
                    }
                }
                let id = storage::insert(tx, &new).await?;
                let order = storage::load(tx, id)
                    .await?
                    .ok_or_else(|| OrderError::Internal("order vanished".into()))?;
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
) -> Result<Order, OrderError> {
    let actor = actor.to_string();
    svc.db
        .write(move |tx| {
            Box::pin(async move {
                let result = match &outcome {
                    Ok(PaymentOutcome::Approved { payment_id }) => {
                        storage::set_payment(tx, id, *payment_id).await?;
                        storage::change(tx, id, OrderAction::PaymentApproved, &actor, None).await
                    }
                    Ok(PaymentOutcome::Declined { reason }) => {
                        storage::change(tx, id, OrderAction::PaymentFailed, &actor, Some(reason))
                            .await
                    }
                    Err(e) => {
                        // Not placed: a retry with the same key places anew.
                        storage::release_key(tx, id).await?;
                        let reason = format!("payment unavailable: {e}");
                        storage::change(tx, id, OrderAction::PaymentFailed, "system", Some(&reason))
                            .await
                    }
                };
                match result {
                    Ok(order) => Ok(order),
                    // Settled meanwhile (the stuck-payment sweep, or a retry
                    // that resumed it): the order as it stands is the answer.
                    Err(ChangeError::Illegal(_)) => storage::load(tx, id)
                        .await?
                        .ok_or_else(|| OrderError::Internal("order vanished".into())),
                    Err(ChangeError::NotFound(id)) => {
                        Err(OrderError::Internal(format!("order {id} vanished")))
                    }
                    Err(ChangeError::Db(e)) => Err(e.into()),
                }
            })
        })
        .await
}
