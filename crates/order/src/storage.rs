//! Order's storage: every SQL statement of the service. Rows are read by
//! column name, and a stored value this code does not know is an error,
//! never a silent default.

use contracts::event::OrderFacts;
use contracts::{Event, OrderStatus};
use platform::sql;
use platform::{Conn, Db};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{self, Follow, IllegalTransition, OrderAction, Owner};
use crate::placement::NewOrder;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: i64,
    /// The seed called it `orderId`; kept for its clients.
    pub order_id: i64,
    pub customer_id: i64,
    pub store_id: i64,
    pub menu_id: i64,
    pub menu_name: String,
    pub qty: i64,
    pub unit_price: i64,
    pub price: i64,
    pub address: String,
    pub status: OrderStatus,
    /// The seed's field name for the same status.
    pub order_status: OrderStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub correlation_id: Uuid,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, customer_id, store_id, menu_id, menu_name, qty, unit_price, price, address, status, reason, correlation_id, version, created_at, updated_at";

impl Order {
    pub fn from_row(r: &sql::Row) -> Result<Order, sqlx::Error> {
        let status: String = r.try_get("status")?;
        let status =
            OrderStatus::parse(&status).ok_or_else(|| sql::unknown_value("status", &status))?;
        let correlation: String = r.try_get("correlation_id")?;
        let correlation_id = Uuid::parse_str(&correlation)
            .map_err(|_| sql::unknown_value("correlation_id", &correlation))?;
        let id = r.try_get("id")?;
        Ok(Order {
            id,
            order_id: id,
            customer_id: r.try_get("customer_id")?,
            store_id: r.try_get("store_id")?,
            menu_id: r.try_get("menu_id")?,
            menu_name: r.try_get("menu_name")?,
            qty: r.try_get("qty")?,
            unit_price: r.try_get("unit_price")?,
            price: r.try_get("price")?,
            address: r.try_get("address")?,
            status,
            order_status: status,
            reason: r.try_get("reason")?,
            correlation_id,
            version: r.try_get("version")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }

    pub fn facts(&self) -> OrderFacts {
        OrderFacts {
            order_id: self.id,
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

pub async fn load(conn: &mut Conn, id: i64) -> Result<Option<Order>, sqlx::Error> {
    let row = sql::query(format!("SELECT {COLUMNS} FROM orders WHERE id = ?"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(Order::from_row).transpose()
}

/// The order a customer placed with this Idempotency-Key, if any.
pub async fn by_key(
    conn: &mut Conn,
    customer_id: i64,
    key: &str,
) -> Result<Option<Order>, sqlx::Error> {
    let row = sql::query(format!(
        "SELECT {COLUMNS} FROM orders WHERE customer_id = ? AND idempotency_key = ?"
    ))
    .bind(customer_id)
    .bind(key)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(Order::from_row).transpose()
}

/// Frees the key of an order that was not placed, so that a retry with it
/// places a new one.
pub async fn release_key(conn: &mut Conn, id: i64) -> Result<(), sqlx::Error> {
    sql::query("UPDATE orders SET idempotency_key = NULL WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Why a change to a stored order did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("order {0} not found")]
    NotFound(i64),
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Applies `action` to order `id` in the caller's transaction, with its
/// event in the outbox of the same transaction.
pub async fn change(
    conn: &mut Conn,
    id: i64,
    action: OrderAction,
    actor: &str,
    reason: Option<&str>,
) -> Result<Order, ChangeError> {
    let order = load(conn, id).await?.ok_or(ChangeError::NotFound(id))?;
    let to = domain::next(order.status, action)?;
    move_to(conn, id, to, action, actor, reason).await
}

/// Applies a fact another service reported (see [`domain::follow`]): a
/// late fact the order is already past changes nothing.
pub async fn follow(
    conn: &mut Conn,
    id: i64,
    action: OrderAction,
    actor: &str,
    reason: Option<&str>,
) -> Result<Order, ChangeError> {
    let order = load(conn, id).await?.ok_or(ChangeError::NotFound(id))?;
    match domain::follow(order.status, action)? {
        Follow::Advance(to) => move_to(conn, id, to, action, actor, reason).await,
        Follow::AlreadyPast => Ok(order),
    }
}

async fn move_to(
    conn: &mut Conn,
    id: i64,
    to: OrderStatus,
    action: OrderAction,
    actor: &str,
    reason: Option<&str>,
) -> Result<Order, ChangeError> {
    let now = platform::clock::now_ms();
    sql::query(
        "UPDATE orders SET status = ?, reason = COALESCE(?, reason), version = version + 1, updated_at = ? WHERE id = ?",
    )
    .bind(to.as_str())
    .bind(reason)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    let changed = load(conn, id).await?.ok_or(ChangeError::NotFound(id))?;
    if let Some(event_type) = domain::event_for(action) {
        let mut event = Event::new(
            event_type,
            &changed.facts(),
            changed.id,
            actor,
            changed.version,
            now,
        );
        event.order_status = Some(to.as_str().to_string());
        event.reason = reason.map(str::to_string);
        platform::outbox::enqueue(conn, &event).await?;
    }
    Ok(changed)
}

/// Records a new order awaiting payment, with the customer's
/// Idempotency-Key in the same commit; its id.
pub async fn insert(conn: &mut Conn, new: &NewOrder) -> Result<i64, sqlx::Error> {
    let now = platform::clock::now_ms();
    sql::query_scalar(
        "INSERT INTO orders (customer_id, store_id, menu_id, menu_name, qty, unit_price, price, address, status, correlation_id, version, created_at, updated_at, idempotency_key)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'PaymentPending', ?, 1, ?, ?, ?) RETURNING id",
    )
    .bind(new.customer_id)
    .bind(new.menu.store_id)
    .bind(new.menu.id)
    .bind(&new.menu.name)
    .bind(new.qty.get())
    .bind(new.menu.price)
    .bind(new.price.get())
    .bind(new.address.as_str())
    .bind(Uuid::now_v7().to_string())
    .bind(now)
    .bind(now)
    .bind(new.idempotency_key.as_deref())
    .fetch_one(conn)
    .await
}

/// Notes the payment that paid for order `id`.
pub async fn set_payment(conn: &mut Conn, id: i64, payment_id: i64) -> Result<(), sqlx::Error> {
    sql::query("UPDATE orders SET payment_id = ? WHERE id = ?")
        .bind(payment_id)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A page of orders, newest first.
pub async fn list(
    db: &Db,
    owner: Owner,
    status: Option<OrderStatus>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Order>, sqlx::Error> {
    let (filter, owner_id) = match owner {
        Owner::Customer(id) => ("customer_id = ?", id),
        Owner::Store(id) => ("store_id = ?", id),
        Owner::Everyone => ("?1 = ?1", 0),
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM orders WHERE {filter} AND (?2 IS NULL OR status = ?2) ORDER BY id DESC LIMIT ?3 OFFSET ?4"
    );
    sql::query(&sql)
        .bind(owner_id)
        .bind(status.map(|s| s.as_str()))
        .bind(limit)
        .bind(offset)
        .fetch_all(db)
        .await?
        .iter()
        .map(Order::from_row)
        .collect()
}

/// Orders still waiting for a payment that began before `before`.
pub async fn stale_payments(db: &Db, before: i64) -> Result<Vec<i64>, sqlx::Error> {
    sql::query_scalar(
        "SELECT id FROM orders WHERE status = 'PaymentPending' AND created_at < ? LIMIT 100",
    )
    .bind(before)
    .fetch_all(db)
    .await
}

/// Orders the store has left unanswered since before `before`.
pub async fn unanswered(db: &Db, before: i64) -> Result<Vec<Order>, sqlx::Error> {
    sql::query(format!(
        "SELECT {COLUMNS} FROM orders WHERE status = 'Ordered' AND updated_at < ? ORDER BY id LIMIT 100"
    ))
    .bind(before)
    .fetch_all(db)
    .await?
    .iter()
    .map(Order::from_row)
    .collect()
}
