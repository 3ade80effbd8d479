//! Delivery service: cooked orders become deliveries open to riders; a rider
//! picks one up (it is then theirs alone) and completes it.
//!
//! Its rooms, as in every service:
//! - [`domain`]: the rules, pure: the delivery's state machine and the
//!   event of each action, which rider may act, who sees which delivery;
//! - [`storage`]: every SQL statement;
//! - [`http`]: the API, thin; [`error::DeliveryError`] becomes
//!   problem+json there, once;
//! - `events`: `CookFinished` opens a delivery.
//!
//! [`SERVICE`] describes it to the shapes that run it (`platform::service`):
//! name, port, gateway paths, migrations, OpenAPI, events, and `start`.

pub mod domain;
pub mod error;
mod events;
pub mod http;
pub mod storage;

use platform::service::{ready, ServiceDescription, Started, Starting, Supplies};
use platform::{Db, TokenKeys};
use utoipa::OpenApi as _;

pub use error::DeliveryError;
pub use events::DeliveryEvents;
pub use http::{router, DeliveryApi};

platform::service_migrations!();

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

platform::token_keys_in!(DeliveryService);
