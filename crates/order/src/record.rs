//! The order as stored, and the writes that change it with their events.

use contracts::event::OrderFacts;
use contracts::{Event, EventType, OrderStatus};
use platform::sql;
use platform::Conn;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{self, Follow, IllegalTransition, OrderAction};

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

pub const COLUMNS: &str = "id, customer_id, store_id, menu_id, menu_name, qty, unit_price, price, address, status, reason, correlation_id, version, created_at, updated_at";

impl Order {
    pub fn from_row(r: &sql::Row) -> Order {
        let status: String = r.get(9);
        let status = OrderStatus::parse(&status).unwrap_or(OrderStatus::PaymentPending);
        let correlation: String = r.get(11);
        let id = r.get(0);
        Order {
            id,
            order_id: id,
            customer_id: r.get(1),
            store_id: r.get(2),
            menu_id: r.get(3),
            menu_name: r.get(4),
            qty: r.get(5),
            unit_price: r.get(6),
            price: r.get(7),
            address: r.get(8),
            status,
            order_status: status,
            reason: r.get(10),
            correlation_id: Uuid::parse_str(&correlation).unwrap_or_default(),
            version: r.get(12),
            created_at: r.get(13),
            updated_at: r.get(14),
        }
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
    Ok(row.as_ref().map(Order::from_row))
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
    Ok(row.as_ref().map(Order::from_row))
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

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("order {0} not found")]
    NotFound(i64),
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// The event an action publishes, if any.
fn event_for(action: OrderAction) -> Option<EventType> {
    match action {
        OrderAction::PaymentApproved => Some(EventType::MenuOrdered),
        OrderAction::PaymentFailed => Some(EventType::OrderPaymentFailed),
        OrderAction::Cancel | OrderAction::StoreCancelled => Some(EventType::MenuCancelled),
        OrderAction::Confirm => Some(EventType::OrderConfirmed),
        // The rest mirror another service's event; they publish nothing new.
        _ => None,
    }
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
    if let Some(event_type) = event_for(action) {
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
