//! Delivery's storage: every SQL statement of the service. Rows are read
//! by column name, and a stored value this code does not know is an error,
//! never a silent default. Each change commits with its event in the
//! outbox of the same transaction.

use contracts::event::OrderFacts;
use contracts::Event;
use platform::order_copy::{self, Column};
use platform::sql::{self, Row};
use platform::{Conn, Db};

use crate::domain::{self, DeliveryAction, DeliveryStatus};
use crate::error::DeliveryError;

platform::order_copy! {
    /// A delivery: the delivery service's copy of a cooked order.
    pub struct Delivery {
        pub delivery_status: DeliveryStatus = "status",
        #[serde(skip_serializing_if = "Option::is_none")]
        pub rider_id: Option<i64> = "rider_id",
        pub version: i64 = "version",
        pub created_at: i64 = "created_at",
        pub updated_at: i64 = "updated_at",
    }
}

impl Column for DeliveryStatus {
    fn read(row: &Row, column: &str) -> Result<Self, sqlx::Error> {
        order_copy::named(row, column, DeliveryStatus::parse)
    }
}

pub async fn load(conn: &mut Conn, order_id: i64) -> Result<Option<Delivery>, sqlx::Error> {
    let row = sql::query(format!(
        "SELECT {} FROM deliveries WHERE order_id = ?",
        Delivery::COLUMNS
    ))
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(Delivery::from_row).transpose()
}

/// The deliveries waiting for a rider and those of `rider` (every one for
/// `None`), newest first.
pub async fn list(db: &Db, rider: Option<i64>) -> Result<Vec<Delivery>, sqlx::Error> {
    sql::query(format!(
        "SELECT {} FROM deliveries WHERE ?1 IS NULL OR status = 'Ready' OR rider_id = ?1 ORDER BY order_id DESC LIMIT 1000",
        Delivery::COLUMNS
    ))
    .bind(rider)
    .fetch_all(db)
    .await?
    .iter()
    .map(Delivery::from_row)
    .collect()
}

/// Opens a delivery for a cooked order, once.
pub async fn open(conn: &mut Conn, facts: &OrderFacts) -> Result<(), sqlx::Error> {
    let now = platform::clock::now_ms();
    let insert = sql::insert_ignoring_duplicates(
        conn.backend(),
        &format!(
            "INSERT INTO deliveries ({}, status, version, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'Ready', 1, ?, ?)",
            order_copy::FACT_COLUMNS
        ),
        "(order_id)",
    );
    order_copy::bind_facts(sql::query(insert), facts)
        .bind(now)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// A rider picks up or completes (see [`domain::act`]), with its event.
pub async fn change(
    conn: &mut Conn,
    order_id: i64,
    action: DeliveryAction,
    rider_id: i64,
    actor: &str,
) -> Result<Delivery, DeliveryError> {
    let current = load(conn, order_id)
        .await?
        .ok_or(DeliveryError::NotFound(order_id))?;
    let (to, rider) = domain::act(current.delivery_status, current.rider_id, action, rider_id)
        .map_err(|refusal| DeliveryError::refused(order_id, refusal))?;
    let now = platform::clock::now_ms();
    sql::query("UPDATE deliveries SET status = ?, rider_id = ?, version = version + 1, updated_at = ? WHERE order_id = ?")
        .bind(to.as_str())
        .bind(rider)
        .bind(now)
        .bind(order_id)
        .execute(&mut *conn)
        .await?;
    let changed = load(conn, order_id)
        .await?
        .ok_or(DeliveryError::NotFound(order_id))?;
    let (event_type, order_status) = domain::event_for(action);
    let facts = changed.facts();
    let mut event = Event::new(event_type, &facts, order_id, actor, changed.version, now);
    event.delivery_status = Some(to.as_str().to_string());
    event.order_status = Some(order_status.as_str().to_string());
    event.rider_id = changed.rider_id;
    platform::outbox::enqueue(conn, &event).await?;
    Ok(changed)
}
