//! The one error type of Delivery: every refusal and failure of picking up
//! and completing. The HTTP layer maps it to problem+json in one place
//! (`http::problem`); nothing here knows about HTTP.

use crate::domain::{IllegalDeliveryTransition, Refusal};

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("no delivery for order {0}")]
    NotFound(i64),
    #[error("order {0} is another rider's delivery")]
    NotYours(i64),
    #[error(transparent)]
    Illegal(#[from] IllegalDeliveryTransition),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl DeliveryError {
    pub fn refused(order_id: i64, refusal: Refusal) -> DeliveryError {
        match refusal {
            Refusal::NotYours => DeliveryError::NotYours(order_id),
            Refusal::Illegal(t) => DeliveryError::Illegal(t),
        }
    }
}
