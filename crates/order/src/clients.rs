//! The two services Order calls synchronously, as interfaces: in the
//! all-in-one shape they are plain function calls, in the distributed shape
//! HTTP clients with timeout, retries and a circuit breaker.

mod over_http;

use async_trait::async_trait;
use contracts::event::OrderFacts;

pub use over_http::{HttpPayment, HttpStore};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The other service did not answer (down, timed out, circuit open).
    #[error("{0}")]
    Unavailable(String),
}

#[derive(Debug, Clone)]
pub struct MenuItem {
    pub id: i64,
    pub store_id: i64,
    pub name: String,
    pub price: i64,
    pub available: bool,
}

impl From<contracts::wire::Menu> for MenuItem {
    fn from(m: contracts::wire::Menu) -> MenuItem {
        MenuItem {
            id: m.id,
            store_id: m.store_id,
            name: m.name,
            price: m.price,
            available: m.available,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PaymentRequest {
    pub facts: OrderFacts,
    /// Card number as given by the customer, if any.
    pub card: Option<String>,
    pub actor: String,
    /// When Order stops waiting; Payment charges nothing after it.
    pub deadline: platform::deadline::Deadline,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    Approved { payment_id: i64 },
    Declined { reason: String },
}

/// The store's answer to a cancel request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreCancel {
    Cancelled,
    /// The store decided first; carries the order status that decision means.
    TooLate {
        status: contracts::OrderStatus,
    },
}

#[async_trait]
pub trait PaymentClient: Send + Sync {
    /// Pays for an order; idempotent by order id.
    async fn pay(&self, request: PaymentRequest) -> Result<PaymentOutcome, ClientError>;
}

#[async_trait]
pub trait StoreClient: Send + Sync {
    async fn menu_by_id(&self, id: i64) -> Result<Option<MenuItem>, ClientError>;
    async fn menu_by_name(&self, name: &str) -> Result<Option<MenuItem>, ClientError>;
    /// Asks the store to drop an order it has not accepted. The store is the
    /// one place where cancel and accept meet, so exactly one of them wins.
    async fn cancel(&self, facts: OrderFacts, actor: String) -> Result<StoreCancel, ClientError>;
}
