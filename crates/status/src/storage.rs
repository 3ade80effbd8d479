//! The status view's storage: every SQL statement of the service, for each
//! of the view's copies (served, rebuilding, snapshot). Rows are read by
//! column name, and a stored status this code does not know is an error,
//! never a silent default.

use contracts::{Event, OrderStatus};
use platform::read_model::{CopiedTable, Copy};
use platform::sql;
use platform::{Conn, Db};
use serde::Serialize;

use crate::domain::{PaymentState, Scope, Update};

/// One order as the view shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusCheck {
    pub order_id: i64,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_status: Option<String>,
    pub menu_name: String,
    pub qty: i64,
    pub price: i64,
    pub address: String,
    pub store_id: i64,
    pub customer_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rider_id: Option<i64>,
    pub updated_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<Change>>,
}

/// One entry of an order's timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = StatusChange)]
pub struct Change {
    pub event_type: String,
    pub event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at: i64,
}

const COLUMNS: &str = "order_id, status, payment_status, menu_name, qty, price, address, store_id, customer_id, rider_id, updated_at";
const HISTORY_COLUMNS: &str = "order_id, event_id, event_type, status, actor, reason, at";

/// One row per order, in each copy of the view.
pub const CHECKS: CopiedTable = CopiedTable {
    served: "status_checks",
    rebuilding: "status_checks_rebuild",
    snapshot: "status_checks_snapshot",
    columns: COLUMNS,
    order: "",
};

/// Every order's timeline, in each copy of the view; copied in the order
/// it was written.
pub const HISTORY: CopiedTable = CopiedTable {
    served: "status_history",
    rebuilding: "status_history_rebuild",
    snapshot: "status_history_snapshot",
    columns: HISTORY_COLUMNS,
    order: "ORDER BY id",
};

/// A stored order status, known to this code.
fn order_status(value: &str) -> Result<OrderStatus, sqlx::Error> {
    OrderStatus::parse(value).ok_or_else(|| sql::unknown_value("status", value))
}

fn check_from_row(r: &sql::Row) -> Result<StatusCheck, sqlx::Error> {
    let status: String = r.try_get("status")?;
    order_status(&status)?;
    let payment_status: Option<String> = r.try_get("payment_status")?;
    if let Some(p) = &payment_status {
        PaymentState::parse(p).ok_or_else(|| sql::unknown_value("payment_status", p))?;
    }
    Ok(platform::from_columns!(r => StatusCheck {
            order_id, menu_name, qty, price, address, store_id, customer_id, rider_id, updated_at
        },
        status: status,
        payment_status: payment_status,
        history: None,
    ))
}

fn change_from_row(r: &sql::Row) -> Result<Change, sqlx::Error> {
    // A timeline entry notes an order status or a payment state.
    let status: Option<String> = r.try_get("status")?;
    if let Some(s) = &status {
        if OrderStatus::parse(s).is_none() && PaymentState::parse(s).is_none() {
            return Err(sql::unknown_value("status", s));
        }
    }
    Ok(
        platform::from_columns!(r => Change { event_type, event_id, actor, reason, at },
            status: status,
        ),
    )
}

/// The status `copy` holds for an order, if it has seen the order.
pub async fn current(
    conn: &mut Conn,
    copy: Copy,
    order_id: i64,
) -> Result<Option<OrderStatus>, sqlx::Error> {
    let checks = CHECKS.of(copy);
    let stored: Option<String> =
        sql::query_scalar(format!("SELECT status FROM {checks} WHERE order_id = ?"))
            .bind(order_id)
            .fetch_optional(conn)
            .await?;
    stored.as_deref().map(order_status).transpose()
}

/// Writes one event's `update` into `copy`: the order's row (created at
/// PaymentPending if the view has not seen the order) and the timeline's
/// entry, once per event.
pub async fn record(
    conn: &mut Conn,
    copy: Copy,
    ev: &Event,
    update: Update,
) -> Result<(), sqlx::Error> {
    let (checks, history) = (CHECKS.of(copy), HISTORY.of(copy));
    sql::query(sql::upsert(
        conn.backend(),
        &format!("INSERT INTO {checks} (order_id, status, payment_status, menu_name, qty, price, address, store_id, customer_id, rider_id, updated_at)
         VALUES (?1, COALESCE(?2, 'PaymentPending'), ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
        "(order_id)",
        &format!("status = COALESCE(?2, {checks}.status),
           payment_status = COALESCE(?3, {checks}.payment_status),
           rider_id = COALESCE(?10, {checks}.rider_id),
           updated_at = ?11"),
    ))
    .bind(ev.order_id)
    .bind(update.status.map(OrderStatus::as_str))
    .bind(update.payment.map(PaymentState::as_str))
    .bind(&ev.menu_name)
    .bind(ev.qty)
    .bind(ev.price)
    .bind(&ev.address)
    .bind(ev.store_id)
    .bind(ev.customer_id)
    .bind(ev.rider_id)
    .bind(ev.timestamp)
    .execute(&mut *conn)
    .await?;
    sql::query(sql::insert_ignoring_duplicates(
        conn.backend(),
        &format!("INSERT INTO {history} ({HISTORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"),
        "(event_id)",
    ))
    .bind(ev.order_id)
    .bind(ev.event_id.to_string())
    .bind(ev.event_type.as_str())
    .bind(update.noted)
    .bind(&ev.actor)
    .bind(&ev.reason)
    .bind(ev.timestamp)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The condition that limits rows to a scope, with its one value as `?1`.
fn filter(scope: Scope) -> (&'static str, i64) {
    match scope {
        Scope::Everyone => ("?1 = ?1", 0),
        Scope::Customer(id) => ("customer_id = ?1", id),
        Scope::Store(id) => ("store_id = ?1", id),
        Scope::Rider(id) => ("rider_id = ?1", id),
    }
}

/// A page of the served view, newest order first, below order `before`.
pub async fn page(
    db: &Db,
    scope: Scope,
    before: i64,
    limit: i64,
) -> Result<Vec<StatusCheck>, sqlx::Error> {
    let (filter, id) = filter(scope);
    sql::query(format!(
        "SELECT {COLUMNS} FROM status_checks WHERE {filter} AND order_id < ?2 ORDER BY order_id DESC LIMIT ?3"
    ))
    .bind(id)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?
    .iter()
    .map(check_from_row)
    .collect()
}

/// One order of the served view with its timeline, if `scope` may see it.
pub async fn with_history(
    db: &Db,
    scope: Scope,
    order_id: i64,
) -> Result<Option<StatusCheck>, sqlx::Error> {
    let (filter, id) = filter(scope);
    let one = format!("SELECT {COLUMNS} FROM status_checks WHERE order_id = ?2 AND {filter}");
    // The row and its history from one snapshot, so that a change
    // committed between the two reads cannot show a status older than its
    // own history.
    let (row, history) = db
        .read(move |conn| {
            Box::pin(async move {
                let row = sql::query(one)
                    .bind(id)
                    .bind(order_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                let history = sql::query(format!(
                    "SELECT {HISTORY_COLUMNS} FROM status_history WHERE order_id = ? ORDER BY at, id"
                ))
                .bind(order_id)
                .fetch_all(&mut *conn)
                .await?;
                Ok::<_, sqlx::Error>((row, history))
            })
        })
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut check = check_from_row(&row)?;
    check.history = Some(
        history
            .iter()
            .map(change_from_row)
            .collect::<Result<_, _>>()?,
    );
    Ok(Some(check))
}
