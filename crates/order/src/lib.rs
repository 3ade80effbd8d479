//! Order service: places orders (price from the store's menu, payment by one
//! synchronous call), lets the customer cancel before the store accepts and
//! confirm receipt, and follows the rest of the saga from events.

pub mod clients;
pub mod deadline;
pub mod domain;
mod events;
pub mod http;
pub mod placement;
pub mod record;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use platform::{Db, TokenKeys};

pub use clients::{
    ClientError, MenuItem, PaymentClient, PaymentOutcome, PaymentRequest, StoreCancel, StoreClient,
};
pub use events::OrderEvents;
pub use http::{router, OrderApi};

pub fn migrations() -> platform::Migrations {
    platform::Migrations {
        sqlite: sqlx::migrate!("./migrations/sqlite"),
        postgres: sqlx::migrate!("./migrations/postgres"),
        mysql: sqlx::migrate!("./migrations/mysql"),
    }
}

#[derive(Debug, Clone)]
pub struct OrderConfig {
    /// How long `POST /orders` waits for Payment before answering 503.
    pub payment_timeout: Duration,
    /// How long the store may leave an order unanswered before it is
    /// cancelled and refunded.
    pub store_deadline: Duration,
}

impl Default for OrderConfig {
    fn default() -> Self {
        OrderConfig {
            payment_timeout: Duration::from_secs(3),
            store_deadline: Duration::from_secs(600),
        }
    }
}

#[derive(Clone)]
pub struct OrderService {
    pub db: Db,
    pub keys: TokenKeys,
    pub payment: Arc<dyn PaymentClient>,
    pub store: Arc<dyn StoreClient>,
    pub config: OrderConfig,
}

impl FromRef<OrderService> for TokenKeys {
    fn from_ref(s: &OrderService) -> TokenKeys {
        s.keys.clone()
    }
}
