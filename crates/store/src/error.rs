//! The one error type of Store: every refusal and failure of its menus and
//! its order list. The HTTP layer maps it to problem+json in one place
//! (`http::problem`); nothing here knows about HTTP.

use crate::domain::{IllegalStoreTransition, MenuRefusal, StoreOrderStatus};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request asks for something that cannot be.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("menu {0} not found")]
    MenuNotFound(i64),
    /// The order is not in the list (`whose`: "a store's", "your store's",
    /// "the store's"), or not in the caller's, which is answered alike.
    #[error("order {order_id} is not in {whose} list")]
    NotInList { order_id: i64, whose: &'static str },
    #[error(transparent)]
    Illegal(#[from] IllegalStoreTransition),
    /// The owner decided before the customer's cancel arrived.
    #[error("the store already decided: {}", .0.as_str())]
    Decided(StoreOrderStatus),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Internal(&'static str),
}

impl From<MenuRefusal> for StoreError {
    fn from(refusal: MenuRefusal) -> StoreError {
        match refusal {
            MenuRefusal::Invalid(why) => StoreError::Invalid(why),
            MenuRefusal::Forbidden(why) => StoreError::Forbidden(why),
        }
    }
}
