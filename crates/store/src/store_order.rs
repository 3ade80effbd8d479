//! The store's copy of an order, and the changes the owner (or a cancel)
//! makes to it, each with its event in the same transaction.

use contracts::event::OrderFacts;
use contracts::{Event, EventType};
use platform::sql;
use platform::Conn;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{self, IllegalStoreTransition, StoreAction, StoreOrderStatus};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreOrder {
    pub order_id: i64,
    pub store_id: i64,
    pub customer_id: i64,
    pub menu_name: String,
    pub qty: i64,
    pub price: i64,
    pub address: String,
    /// The seed's `cookStatus`.
    pub cook_status: StoreOrderStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub version: i64,
    pub received_at: i64,
    pub updated_at: i64,
    #[serde(skip)]
    pub correlation_id: Uuid,
}

pub const COLUMNS: &str = "order_id, store_id, customer_id, menu_name, qty, price, address, status, reason, version, received_at, updated_at, correlation_id";

impl StoreOrder {
    /// A store order as stored, read by column name; a status or
    /// correlation id this code cannot read is an error.
    pub fn from_row(r: &sql::Row) -> Result<StoreOrder, sqlx::Error> {
        let status: String = r.try_get("status")?;
        let correlation: String = r.try_get("correlation_id")?;
        Ok(StoreOrder {
            order_id: r.try_get("order_id")?,
            store_id: r.try_get("store_id")?,
            customer_id: r.try_get("customer_id")?,
            menu_name: r.try_get("menu_name")?,
            qty: r.try_get("qty")?,
            price: r.try_get("price")?,
            address: r.try_get("address")?,
            cook_status: StoreOrderStatus::parse(&status)
                .ok_or_else(|| sql::unknown_value("status", &status))?,
            reason: r.try_get("reason")?,
            version: r.try_get("version")?,
            received_at: r.try_get("received_at")?,
            updated_at: r.try_get("updated_at")?,
            correlation_id: Uuid::parse_str(&correlation)
                .map_err(|_| sql::unknown_value("correlation_id", &correlation))?,
        })
    }

    pub fn facts(&self) -> OrderFacts {
        OrderFacts {
            order_id: self.order_id,
            menu_name: self.menu_name.clone(),
            qty: self.qty,
            price: self.price,
            address: self.address.clone(),
            store_id: self.store_id,
            customer_id: self.customer_id,
            correlation_id: self.correlation_id,
        }
    }
}

pub async fn load(conn: &mut Conn, order_id: i64) -> Result<Option<StoreOrder>, sqlx::Error> {
    let row = sql::query(format!(
        "SELECT {COLUMNS} FROM store_orders WHERE order_id = ?"
    ))
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(StoreOrder::from_row).transpose()
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
    let done = sql::query(sql::insert_ignoring_duplicates(
        conn.backend(),
        "INSERT INTO store_orders (order_id, store_id, customer_id, menu_name, qty, price, address, status, reason, correlation_id, version, received_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
        "(order_id)",
    ))
    .bind(facts.order_id)
    .bind(facts.store_id)
    .bind(facts.customer_id)
    .bind(&facts.menu_name)
    .bind(facts.qty)
    .bind(facts.price)
    .bind(&facts.address)
    .bind(status.as_str())
    .bind(reason)
    .bind(facts.correlation_id.to_string())
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("order {0} is not in the store's list")]
    NotFound(i64),
    #[error(transparent)]
    Illegal(#[from] IllegalStoreTransition),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

fn event_for(action: StoreAction) -> Option<EventType> {
    match action {
        StoreAction::Accept => Some(EventType::CookStarted),
        StoreAction::Reject => Some(EventType::OrderRejected),
        StoreAction::Finish => Some(EventType::CookFinished),
        // Order follows it (and publishes MenuCancelled) even when the
        // answer to its cancel call was lost.
        StoreAction::Cancel => Some(EventType::StoreOrderCancelled),
    }
}

pub async fn change(
    conn: &mut Conn,
    order_id: i64,
    action: StoreAction,
    actor: &str,
    reason: Option<&str>,
) -> Result<StoreOrder, ChangeError> {
    let current = load(conn, order_id)
        .await?
        .ok_or(ChangeError::NotFound(order_id))?;
    let to = domain::next(current.cook_status, action)?;
    let now = platform::clock::now_ms();
    sql::query("UPDATE store_orders SET status = ?, reason = COALESCE(?, reason), version = version + 1, updated_at = ? WHERE order_id = ?")
        .bind(to.as_str())
        .bind(reason)
        .bind(now)
        .bind(order_id)
        .execute(&mut *conn)
        .await?;
    let changed = load(conn, order_id)
        .await?
        .ok_or(ChangeError::NotFound(order_id))?;
    if let Some(event_type) = event_for(action) {
        let mut ev = Event::new(
            event_type,
            &changed.facts(),
            changed.order_id,
            actor,
            changed.version,
            now,
        );
        ev.cook_status = Some(to.as_str().to_string());
        ev.reason = reason.map(str::to_string);
        platform::outbox::enqueue(conn, &ev).await?;
    }
    Ok(changed)
}

/// The store's side of a customer's cancel: succeeds while the owner has
/// not decided (also for an order not yet received: it is remembered as
/// cancelled), and is refused with the owner's decision otherwise.
pub async fn cancel(
    conn: &mut Conn,
    facts: &OrderFacts,
    actor: &str,
) -> Result<Result<(), StoreOrderStatus>, sqlx::Error> {
    match load(conn, facts.order_id).await? {
        None => {
            receive(
                conn,
                facts,
                StoreOrderStatus::Cancelled,
                Some("cancelled by the customer"),
            )
            .await?;
            let mut ev = Event::new(
                EventType::StoreOrderCancelled,
                facts,
                facts.order_id,
                actor,
                1,
                platform::clock::now_ms(),
            );
            ev.cook_status = Some(StoreOrderStatus::Cancelled.as_str().to_string());
            ev.reason = Some("cancelled by the customer".into());
            platform::outbox::enqueue(conn, &ev).await?;
            Ok(Ok(()))
        }
        Some(so) if so.cook_status == StoreOrderStatus::Cancelled => Ok(Ok(())),
        Some(so) => match change(
            conn,
            so.order_id,
            StoreAction::Cancel,
            actor,
            Some("cancelled by the customer"),
        )
        .await
        {
            Ok(_) => Ok(Ok(())),
            Err(ChangeError::Illegal(t)) => Ok(Err(t.current)),
            Err(ChangeError::Db(e)) => Err(e),
            Err(ChangeError::NotFound(_)) => Err(sqlx::Error::RowNotFound),
        },
    }
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
