//! Store service: stores and their menus, and each store's order list where
//! the owner accepts, rejects and finishes cooking. The store is where an
//! accept and a customer's cancel meet, so it decides which one wins.
//!
//! Its rooms, as in every service:
//! - [`domain`]: the rules, pure: the store order's state machine and the
//!   event of each action, the store's side of a cancel, who may handle an
//!   order or a menu, and what a menu item may be;
//! - [`storage`]: every SQL statement (store orders, menus, stores);
//! - [`http`]: the API, thin; [`error::StoreError`] becomes problem+json
//!   there, once;
//! - `events`: paid orders arriving in the list from `MenuOrdered`.
//!
//! [`SERVICE`] describes it to the shapes that run it (`platform::service`):
//! name, port, gateway paths, migrations, OpenAPI, events, and `start`.

pub mod domain;
pub mod error;
mod events;
pub mod http;
pub mod storage;

use platform::service::{
    ready, Seeding, ServiceDescription, StartError, Started, Starting, Supplies,
};
use platform::{Db, TokenKeys};
use utoipa::OpenApi as _;

pub use error::StoreError;
pub use events::StoreEvents;
pub use http::{router, StoreApi};
pub use storage::seed_demo;

platform::service_migrations!();

/// Store as the shapes run it (see `platform::service`).
pub const SERVICE: ServiceDescription =
    ServiceDescription::new("store", 8085, migrations, StoreApi::openapi, start)
        .owning(&["/stores", "/menus", "/storeOrders"])
        .with_outbox()
        .consuming_events()
        .taking_writes()
        .with_demo(seed_demo_stores);

fn seed_demo_stores(db: Db) -> Seeding {
    Box::pin(async move {
        seed_demo(&db)
            .await
            .map(|()| true)
            .map_err(|e| StartError::from(format!("seeding stores: {e}")))
    })
}

fn start(Supplies { db, keys, .. }: Supplies) -> Starting {
    let handler = std::sync::Arc::new(StoreEvents);
    ready(Started::serving(router(StoreService { db, keys })).consuming(handler))
}

#[derive(Clone)]
pub struct StoreService {
    pub db: Db,
    pub keys: TokenKeys,
}

platform::token_keys_in!(StoreService);

impl StoreService {
    pub async fn menu_by_id(&self, id: i64) -> Result<Option<storage::Menu>, sqlx::Error> {
        storage::menu_by_id(&self.db, id).await
    }

    pub async fn menu_by_name(&self, name: &str) -> Result<Option<storage::Menu>, sqlx::Error> {
        storage::menu_by_name(&self.db, name).await
    }

    /// The store's side of a cancel (see [`storage::cancel`]);
    /// [`StoreError::Decided`] names the owner's decision.
    pub async fn cancel(
        &self,
        facts: contracts::event::OrderFacts,
        actor: String,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |conn| Box::pin(async move { storage::cancel(conn, &facts, &actor).await }))
            .await
    }
}
