//! The one error type of Order: every refusal and failure of placing,
//! cancelling and confirming. The HTTP layer maps it to problem+json in one
//! place (`http::problem`); nothing here knows about HTTP.

use contracts::OrderStatus;

use crate::domain::IllegalTransition;
use crate::storage::ChangeError;

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The request asks for something that cannot be ordered.
    #[error("{0}")]
    Invalid(String),
    #[error("order {0} not found")]
    NotFound(i64),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    /// The store decided before the cancel reached it.
    #[error("cannot cancel: the store has already {}", store_decision(*.0))]
    StoreDecided(OrderStatus),
    /// The store did not answer a menu lookup.
    #[error("the store is unavailable: {0}")]
    StoreUnavailable(String),
    /// The store did not answer a cancel: it may have agreed.
    #[error("the store did not answer the cancel: {0}")]
    CancelUnanswered(String),
    #[error("the card was declined: {reason}")]
    Declined {
        order_id: i64,
        status: OrderStatus,
        reason: String,
    },
    /// Payment did not answer in time; the order is not placed.
    #[error("payment did not answer in time: {why}")]
    NotPlaced { order_id: i64, why: String },
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Internal(String),
}

fn store_decision(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Rejected => "rejected the order",
        OrderStatus::Cancelled => "cancelled the order",
        _ => "accepted the order and is cooking",
    }
}

impl From<ChangeError> for OrderError {
    fn from(e: ChangeError) -> OrderError {
        match e {
            ChangeError::NotFound(id) => OrderError::NotFound(id),
            ChangeError::Illegal(t) => OrderError::Illegal(t),
            ChangeError::Db(e) => OrderError::Db(e),
        }
    }
}
