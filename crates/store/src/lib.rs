//! Store service: stores and their menus, and each store's order list where
//! the owner accepts, rejects and finishes cooking. The store is where an
//! accept and a customer's cancel meet, so it decides which one wins.
//!
//! [`SERVICE`] describes it to the shapes that run it (`platform::service`):
//! name, port, gateway paths, migrations, OpenAPI, events, and `start`.

pub mod domain;
mod events;
mod http;
pub mod menu;
pub mod store_order;

use axum::extract::FromRef;
use platform::service::{
    ready, Seeding, ServiceDescription, StartError, Started, Starting, Supplies,
};
use platform::sql;
use platform::{Db, TokenKeys};
use utoipa::OpenApi as _;

pub use events::StoreEvents;
pub use http::{router, StoreApi};

pub fn migrations() -> platform::Migrations {
    platform::migrations!()
}

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

impl FromRef<StoreService> for TokenKeys {
    fn from_ref(s: &StoreService) -> TokenKeys {
        s.keys.clone()
    }
}

/// Creates the demo stores and menus unless stores exist already. Store 1
/// (owner 2) sells pizza at 1000 KRW, as in the original scenario.
pub async fn seed_demo(db: &Db) -> Result<(), sqlx::Error> {
    let count: i64 = sql::query_scalar("SELECT COUNT(*) FROM stores")
        .fetch_one(db)
        .await?;
    if count > 0 {
        return Ok(());
    }
    db.write(move |conn| {
        Box::pin(async move {
            let now = platform::clock::now_ms();
            for (id, name, owner, address) in [
                (1, "Hanwha Pizza", 2, "Suwon, Paldal-gu 1"),
                (2, "Seoul Chicken", 3, "Seoul, Jung-gu 24"),
            ] {
                sql::query("INSERT INTO stores (id, name, owner_id, address) VALUES (?, ?, ?, ?)")
                    .bind(id)
                    .bind(name)
                    .bind(owner)
                    .bind(address)
                    .execute(&mut *conn)
                    .await?;
            }
            for (store, name, price) in [
                (1, "pizza", 1000),
                (1, "pasta", 8000),
                (1, "cola", 1500),
                (2, "fried chicken", 18000),
                (2, "spicy chicken", 19000),
                (2, "tteokbokki", 6000),
            ] {
                sql::query("INSERT INTO menus (store_id, name, price, available, created_at, updated_at) VALUES (?, ?, ?, TRUE, ?, ?)")
                    .bind(store)
                    .bind(name)
                    .bind(price)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        })
    })
    .await
}

impl StoreService {
    pub async fn menu_by_id(&self, id: i64) -> Result<Option<menu::Menu>, sqlx::Error> {
        menu::by_id(&self.db, id).await
    }

    pub async fn menu_by_name(&self, name: &str) -> Result<Option<menu::Menu>, sqlx::Error> {
        menu::by_name(&self.db, name).await
    }

    /// The store's side of a cancel (see [`store_order::cancel`]); `Err`
    /// carries the status the owner's decision left the order in.
    pub async fn cancel(
        &self,
        facts: contracts::event::OrderFacts,
        actor: String,
    ) -> Result<Result<(), domain::StoreOrderStatus>, platform::ApiError> {
        self.db
            .write(move |conn| {
                Box::pin(async move { Ok(store_order::cancel(conn, &facts, &actor).await?) })
            })
            .await
    }
}
