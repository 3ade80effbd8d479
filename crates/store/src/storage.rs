//! Store's storage: every SQL statement of the service. Rows are read by
//! column name, and a stored value this code does not know is an error,
//! never a silent default. Each change to a store order commits with its
//! event in the outbox of the same transaction.

use contracts::event::OrderFacts;
use contracts::Event;
use platform::order_copy::{self, Column};
use platform::sql::{self, Row};
use platform::{Conn, Db};
use serde::Serialize;

use crate::domain::{self, CancelStep, StoreAction, StoreOrderStatus};
use crate::error::StoreError;

pub use contracts::wire::Menu;

platform::order_copy! {
    /// The store's copy of an order, in its list.
    pub struct StoreOrder {
        /// The seed's `cookStatus`.
        pub cook_status: StoreOrderStatus = "status",
        #[serde(skip_serializing_if = "Option::is_none")]
        pub reason: Option<String> = "reason",
        pub version: i64 = "version",
        pub received_at: i64 = "received_at",
        pub updated_at: i64 = "updated_at",
    }
}

impl Column for StoreOrderStatus {
    fn read(row: &Row, column: &str) -> Result<Self, sqlx::Error> {
        order_copy::named(row, column, StoreOrderStatus::parse)
    }
}

pub async fn load(conn: &mut Conn, order_id: i64) -> Result<Option<StoreOrder>, sqlx::Error> {
    let row = sql::query(format!(
        "SELECT {} FROM store_orders WHERE order_id = ?",
        StoreOrder::COLUMNS
    ))
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(StoreOrder::from_row).transpose()
}

/// The orders of one store (every store's for `None`), newest first.
pub async fn list(
    db: &Db,
    store: Option<i64>,
    status: Option<StoreOrderStatus>,
) -> Result<Vec<StoreOrder>, sqlx::Error> {
    sql::query(format!(
        "SELECT {} FROM store_orders WHERE (?1 IS NULL OR store_id = ?1) AND (?2 IS NULL OR status = ?2) ORDER BY order_id DESC LIMIT 1000",
        StoreOrder::COLUMNS
    ))
    .bind(store)
    .bind(status.map(|s| s.as_str()))
    .fetch_all(db)
    .await?
    .iter()
    .map(StoreOrder::from_row)
    .collect()
}

/// Puts a paid order into its store's list; an order cancelled before it
/// arrived stays cancelled.
pub async fn receive(
    conn: &mut Conn,
    facts: &OrderFacts,
    status: StoreOrderStatus,
    reason: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let now = platform::clock::now_ms();
    let insert = sql::insert_ignoring_duplicates(
        conn.backend(),
        &format!(
            "INSERT INTO store_orders ({}, status, reason, version, received_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
            order_copy::FACT_COLUMNS
        ),
        "(order_id)",
    );
    let done = order_copy::bind_facts(sql::query(insert), facts)
        .bind(status.as_str())
        .bind(reason)
        .bind(now)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Applies `action` to the store order, with its event.
pub async fn change(
    conn: &mut Conn,
    order_id: i64,
    action: StoreAction,
    actor: &str,
    reason: Option<&str>,
) -> Result<StoreOrder, StoreError> {
    let vanished = StoreError::NotInList {
        order_id,
        whose: "the store's",
    };
    let Some(current) = load(conn, order_id).await? else {
        return Err(vanished);
    };
    let to = domain::next(current.cook_status, action)?;
    let now = platform::clock::now_ms();
    sql::query("UPDATE store_orders SET status = ?, reason = COALESCE(?, reason), version = version + 1, updated_at = ? WHERE order_id = ?")
        .bind(to.as_str())
        .bind(reason)
        .bind(now)
        .bind(order_id)
        .execute(&mut *conn)
        .await?;
    let changed = load(conn, order_id).await?.ok_or(vanished)?;
    let facts = changed.facts();
    let mut event = Event::new(
        domain::event_for(action),
        &facts,
        order_id,
        actor,
        changed.version,
        now,
    );
    event.cook_status = Some(to.as_str().to_string());
    event.reason = reason.map(str::to_string);
    platform::outbox::enqueue(conn, &event).await?;
    Ok(changed)
}

/// The store's side of a customer's cancel (see [`domain::cancel_step`]):
/// `Err(StoreError::Decided)` names the owner's decision.
pub async fn cancel(conn: &mut Conn, facts: &OrderFacts, actor: &str) -> Result<(), StoreError> {
    let reason = Some(domain::CANCELLED_BY_THE_CUSTOMER);
    let current = load(conn, facts.order_id).await?;
    match domain::cancel_step(current.map(|so| so.cook_status)).map_err(StoreError::Decided)? {
        CancelStep::AlreadyCancelled => Ok(()),
        CancelStep::Cancel => {
            change(conn, facts.order_id, StoreAction::Cancel, actor, reason).await?;
            Ok(())
        }
        CancelStep::Remember => {
            let cancelled = StoreOrderStatus::Cancelled;
            receive(conn, facts, cancelled, reason).await?;
            let event_type = domain::event_for(StoreAction::Cancel);
            let mut event = Event::new(
                event_type,
                facts,
                facts.order_id,
                actor,
                1,
                platform::clock::now_ms(),
            );
            event.cook_status = Some(cancelled.as_str().to_string());
            event.reason = reason.map(str::to_string);
            platform::outbox::enqueue(conn, &event).await?;
            Ok(())
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Store {
    pub id: i64,
    pub name: String,
    pub owner_id: i64,
    pub address: String,
}

pub async fn stores(db: &Db) -> Result<Vec<Store>, sqlx::Error> {
    sql::query("SELECT id, name, owner_id, address FROM stores ORDER BY id")
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| {
            Ok(Store {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                owner_id: r.try_get("owner_id")?,
                address: r.try_get("address")?,
            })
        })
        .collect()
}

pub async fn store_exists(db: &Db, id: i64) -> Result<bool, sqlx::Error> {
    let found: Option<i64> = sql::query_scalar("SELECT id FROM stores WHERE id = ?")
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(found.is_some())
}

const MENU_SELECT: &str = "SELECT m.id AS id, m.store_id AS store_id, s.name AS store_name, m.name AS name, m.price AS price, m.available AS available FROM menus m JOIN stores s ON s.id = m.store_id";

fn menu_from_row(r: &Row) -> Result<Menu, sqlx::Error> {
    Ok(Menu {
        id: r.try_get("id")?,
        store_id: r.try_get("store_id")?,
        store_name: r.try_get("store_name")?,
        name: r.try_get("name")?,
        price: r.try_get("price")?,
        available: r.try_get("available")?,
    })
}

pub async fn menus(db: &Db, store_id: Option<i64>) -> Result<Vec<Menu>, sqlx::Error> {
    sql::query(format!(
        "{MENU_SELECT} WHERE (?1 IS NULL OR m.store_id = ?1) ORDER BY m.store_id, m.id"
    ))
    .bind(store_id)
    .fetch_all(db)
    .await?
    .iter()
    .map(menu_from_row)
    .collect()
}

pub async fn menu_by_id(db: &Db, id: i64) -> Result<Option<Menu>, sqlx::Error> {
    let row = sql::query(format!("{MENU_SELECT} WHERE m.id = ?"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(menu_from_row).transpose()
}

/// The first available item with this name (the seed ordered by name).
pub async fn menu_by_name(db: &Db, name: &str) -> Result<Option<Menu>, sqlx::Error> {
    let row = sql::query(format!(
        "{MENU_SELECT} WHERE m.name = ? ORDER BY m.available DESC, m.id LIMIT 1"
    ))
    .bind(name)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(menu_from_row).transpose()
}

/// Adds a menu item; its id.
pub async fn add_menu(
    conn: &mut Conn,
    store_id: i64,
    name: &str,
    price: i64,
    available: bool,
) -> Result<i64, sqlx::Error> {
    let now = platform::clock::now_ms();
    sql::query_scalar(
        "INSERT INTO menus (store_id, name, price, available, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(store_id)
    .bind(name)
    .bind(price)
    .bind(available)
    .bind(now)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// Changes the given fields of a menu item; the others stay.
pub async fn change_menu(
    conn: &mut Conn,
    id: i64,
    name: Option<&str>,
    price: Option<i64>,
    available: Option<bool>,
) -> Result<(), sqlx::Error> {
    sql::query(
        "UPDATE menus SET name = COALESCE(?, name), price = COALESCE(?, price), available = COALESCE(?, available), updated_at = ? WHERE id = ?",
    )
    .bind(name)
    .bind(price)
    .bind(available)
    .bind(platform::clock::now_ms())
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
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
                add_menu(conn, store, name, price, true).await?;
            }
            Ok(())
        })
    })
    .await
}
#[cfg(test)]
mod tests {
    use platform::{Db, Location};

    use super::*;

    /// A kitchen status this code does not know must not read as a new
    /// order waiting to be accepted.
    #[tokio::test]
    async fn an_unknown_stored_status_is_an_error_not_a_received_order() {
        let dir = tempfile::tempdir().expect("dir");
        let location = Location::Sqlite(dir.path().join("store.db"));
        let db = Db::open(&location, &crate::migrations())
            .await
            .expect("database");
        let stored = |status: &'static str| {
            let db = db.clone();
            async move {
                db.write(move |conn| {
                    Box::pin(async move {
                        sql::query("DELETE FROM store_orders").execute(&mut *conn).await?;
                        sql::query(
                            "INSERT INTO store_orders (order_id, store_id, customer_id, menu_name, qty, price, address, status, correlation_id, version, received_at, updated_at)
                             VALUES (7, 1, 1, 'pizza', 1, 1000, 'suwon', ?, '01a23279-4609-76fc-80e1-bc0ea8b4dead', 1, 0, 0)",
                        )
                        .bind(status)
                        .execute(&mut *conn)
                        .await?;
                        load(conn, 7).await
                    })
                })
                .await
            }
        };
        let received = stored("Received").await.expect("read").expect("stored");
        assert_eq!(received.cook_status, StoreOrderStatus::Received);
        let error = stored("Mystery").await.expect_err("an unknown status");
        assert!(error.to_string().contains("Mystery"), "{error}");
    }
}
