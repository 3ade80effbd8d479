use contracts::event::OrderFacts;
use contracts::{Event, EventType};
use platform::sql;
use platform::Conn;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{self, DeliveryAction, DeliveryStatus, IllegalDeliveryTransition};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub order_id: i64,
    pub store_id: i64,
    pub customer_id: i64,
    pub menu_name: String,
    pub qty: i64,
    pub price: i64,
    pub address: String,
    pub delivery_status: DeliveryStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rider_id: Option<i64>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(skip)]
    pub correlation_id: Uuid,
}

pub const COLUMNS: &str = "order_id, store_id, customer_id, menu_name, qty, price, address, status, rider_id, version, created_at, updated_at, correlation_id";

impl Delivery {
    /// A delivery as stored, read by column name; a status or correlation
    /// id this code cannot read is an error.
    pub fn from_row(r: &sql::Row) -> Result<Delivery, sqlx::Error> {
        let status: String = r.try_get("status")?;
        let correlation: String = r.try_get("correlation_id")?;
        Ok(Delivery {
            order_id: r.try_get("order_id")?,
            store_id: r.try_get("store_id")?,
            customer_id: r.try_get("customer_id")?,
            menu_name: r.try_get("menu_name")?,
            qty: r.try_get("qty")?,
            price: r.try_get("price")?,
            address: r.try_get("address")?,
            delivery_status: DeliveryStatus::parse(&status)
                .ok_or_else(|| sql::unknown_value("status", &status))?,
            rider_id: r.try_get("rider_id")?,
            version: r.try_get("version")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            correlation_id: Uuid::parse_str(&correlation)
                .map_err(|_| sql::unknown_value("correlation_id", &correlation))?,
        })
    }

    fn facts(&self) -> OrderFacts {
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

pub async fn load(conn: &mut Conn, order_id: i64) -> Result<Option<Delivery>, sqlx::Error> {
    let row = sql::query(format!(
        "SELECT {COLUMNS} FROM deliveries WHERE order_id = ?"
    ))
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(Delivery::from_row).transpose()
}

pub async fn open(conn: &mut Conn, facts: &OrderFacts) -> Result<(), sqlx::Error> {
    let now = platform::clock::now_ms();
    sql::query(sql::insert_ignoring_duplicates(
        conn.backend(),
        "INSERT INTO deliveries (order_id, store_id, customer_id, menu_name, qty, price, address, status, correlation_id, version, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, 'Ready', ?, 1, ?, ?)",
        "(order_id)",
    ))
    .bind(facts.order_id)
    .bind(facts.store_id)
    .bind(facts.customer_id)
    .bind(&facts.menu_name)
    .bind(facts.qty)
    .bind(facts.price)
    .bind(&facts.address)
    .bind(facts.correlation_id.to_string())
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("no delivery for order {0}")]
    NotFound(i64),
    #[error("order {0} is another rider's delivery")]
    NotYours(i64),
    #[error(transparent)]
    Illegal(#[from] IllegalDeliveryTransition),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// A rider picks up or completes; only the rider who picked up completes.
pub async fn change(
    conn: &mut Conn,
    order_id: i64,
    action: DeliveryAction,
    rider_id: i64,
    actor: &str,
) -> Result<Delivery, ChangeError> {
    let current = load(conn, order_id)
        .await?
        .ok_or(ChangeError::NotFound(order_id))?;
    if action == DeliveryAction::Complete && current.rider_id.is_some_and(|r| r != rider_id) {
        return Err(ChangeError::NotYours(order_id));
    }
    let to = domain::next(current.delivery_status, action)?;
    let now = platform::clock::now_ms();
    let rider = if action == DeliveryAction::PickUp {
        Some(rider_id)
    } else {
        current.rider_id
    };
    sql::query("UPDATE deliveries SET status = ?, rider_id = ?, version = version + 1, updated_at = ? WHERE order_id = ?")
        .bind(to.as_str())
        .bind(rider)
        .bind(now)
        .bind(order_id)
        .execute(&mut *conn)
        .await?;
    let changed = load(conn, order_id)
        .await?
        .ok_or(ChangeError::NotFound(order_id))?;
    let event_type = match action {
        DeliveryAction::PickUp => EventType::DeliveryStarted,
        DeliveryAction::Complete => EventType::DeliveryCompleted,
    };
    let mut ev = Event::new(
        event_type,
        &changed.facts(),
        changed.order_id,
        actor,
        changed.version,
        now,
    );
    ev.delivery_status = Some(to.as_str().to_string());
    ev.order_status = Some(match action {
        DeliveryAction::PickUp => "PickedUp".into(),
        DeliveryAction::Complete => "Delivered".into(),
    });
    ev.rider_id = changed.rider_id;
    platform::outbox::enqueue(conn, &ev).await?;
    Ok(changed)
}
