//! Delivery service: cooked orders become deliveries open to riders; a rider
//! picks one up (it is then theirs alone) and completes it.
//!
//! [`SERVICE`] describes it to the shapes that run it (`platform::service`):
//! name, port, gateway paths, migrations, OpenAPI, events, and `start`.

pub mod domain;
mod http;
pub mod record;

use async_trait::async_trait;
use axum::extract::FromRef;
use contracts::{Event, EventType};
use platform::consumer::{EventHandler, HandlerError};
use platform::service::{ready, ServiceDescription, Started, Starting, Supplies};
use platform::Conn;
use platform::{Db, TokenKeys};
use utoipa::OpenApi as _;

pub use http::{router, DeliveryApi};

pub fn migrations() -> platform::Migrations {
    platform::migrations!()
}

/// Delivery as the shapes run it (see `platform::service`).
pub const SERVICE: ServiceDescription =
    ServiceDescription::new("delivery", 8082, migrations, DeliveryApi::openapi, start)
        .owning(&["/deliveries"])
        .with_outbox()
        .consuming_events()
        .taking_writes();

fn start(Supplies { db, keys, .. }: Supplies) -> Starting {
    let handler = std::sync::Arc::new(DeliveryEvents);
    ready(Started::serving(router(DeliveryService { db, keys })).consuming(handler))
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
