//! Delivery service: cooked orders become deliveries open to riders; a rider
//! picks one up (it is then theirs alone) and completes it.

pub mod domain;
mod http;
pub mod record;

use async_trait::async_trait;
use axum::extract::FromRef;
use contracts::{Event, EventType};
use platform::consumer::{EventHandler, HandlerError};
use platform::Conn;
use platform::{Db, TokenKeys};

pub use http::{router, DeliveryApi};

pub fn migrations() -> platform::Migrations {
    platform::Migrations {
        sqlite: sqlx::migrate!("./migrations/sqlite"),
        postgres: sqlx::migrate!("./migrations/postgres"),
        mysql: sqlx::migrate!("./migrations/mysql"),
    }
}

#[derive(Clone)]
pub struct DeliveryService {
    pub db: Db,
    pub keys: TokenKeys,
}

impl FromRef<DeliveryService> for TokenKeys {
    fn from_ref(s: &DeliveryService) -> TokenKeys {
        s.keys.clone()
    }
}

/// `CookFinished` opens a delivery.
pub struct DeliveryEvents;

#[async_trait]
impl EventHandler for DeliveryEvents {
    fn name(&self) -> &'static str {
        "delivery"
    }

    fn wants(&self, event_type: EventType) -> bool {
        event_type == EventType::CookFinished
    }

    async fn handle(&self, conn: &mut Conn, event: &Event) -> Result<(), HandlerError> {
        record::open(conn, &event.facts()).await?;
        Ok(())
    }
}
