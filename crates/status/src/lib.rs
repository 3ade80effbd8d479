//! The status view (the original's "management"): a read model built only
//! from events, one row per order with the timeline of every change, its
//! time and its actor. It can be dropped and rebuilt from the log.
//!
//! [`SERVICE`] describes it to the shapes that run it (`platform::service`):
//! name, port, gateway paths, migrations, OpenAPI, events, and `start`.

use platform::service::{ready, ServiceDescription, Started, Starting, Supplies};
use std::sync::Arc;
use utoipa::OpenApi as _;

use async_trait::async_trait;
use axum::extract::{FromRef, State};
use axum::routing::get;
use axum::{Json, Router};
use contracts::{Event, EventType, OrderStatus, Role};
use platform::consumer::{EventHandler, HandlerError};
use platform::openapi::{BadParams, Common, NotFound};
use platform::rebuild::{RebuildError, RebuildableView, Rebuilt};
use platform::sql;
use platform::Conn;
use platform::{ApiError, ApiPath, ApiQuery, Db, EventLog, Principal, TokenKeys};
use serde::{Deserialize, Serialize};

pub fn migrations() -> platform::Migrations {
    platform::migrations!()
}

/// The status view as the shapes run it (see `platform::service`).
pub const SERVICE: ServiceDescription =
    ServiceDescription::new("status", 8083, migrations, StatusApi::openapi, start)
        .owning(&["/statusChecks"])
        .consuming_events()
        .with_view(rebuildable);

fn start(Supplies { db, keys, .. }: Supplies) -> Starting {
    let handler = Arc::new(StatusEvents::served());
    ready(Started::serving(router(StatusService { db, keys })).consuming(handler))
}

pub const CONSUMER: &str = "status";

#[derive(Clone)]
pub struct StatusService {
    pub db: Db,
    pub keys: TokenKeys,
}

impl FromRef<StatusService> for TokenKeys {
    fn from_ref(s: &StatusService) -> TokenKeys {
        s.keys.clone()
    }
}

/// The order status an event means, if it changes it.
pub fn status_after(event_type: EventType) -> Option<OrderStatus> {
    Some(match event_type {
        EventType::MenuOrdered => OrderStatus::Ordered,
        EventType::CookStarted => OrderStatus::Accepted,
        EventType::OrderRejected => OrderStatus::Rejected,
        EventType::CookFinished => OrderStatus::Cooked,
        EventType::DeliveryStarted => OrderStatus::PickedUp,
        EventType::DeliveryCompleted => OrderStatus::Delivered,
        EventType::OrderConfirmed => OrderStatus::Confirmed,
        EventType::MenuCancelled => OrderStatus::Cancelled,
        EventType::OrderPaymentFailed => OrderStatus::PaymentFailed,
        EventType::PaymentAgreed | EventType::PaymentCancelled | EventType::StoreOrderCancelled => {
            return None
        }
    })
}

/// How far along its life an order is. Events of different services can
/// reach the view in another order than they happened (redelivery, several
/// relays), so the view only ever moves an order forward; the endings rank
/// above every step.
pub fn rank(status: OrderStatus) -> u8 {
    match status {
        OrderStatus::PaymentPending => 0,
        OrderStatus::Ordered => 1,
        OrderStatus::Accepted => 2,
        OrderStatus::Cooked => 3,
        OrderStatus::PickedUp => 4,
        OrderStatus::Delivered => 5,
        OrderStatus::Confirmed => 6,
        OrderStatus::Rejected | OrderStatus::Cancelled | OrderStatus::PaymentFailed => 7,
    }
}

/// The tables one copy of the view lives in.
#[derive(Debug, Clone, Copy)]
struct Tables {
    checks: &'static str,
    history: &'static str,
}

/// The copy readers are served.
const SERVED: Tables = Tables {
    checks: "status_checks",
    history: "status_history",
};

/// The copy a rebuild fills beside the served one.
const REBUILDING: Tables = Tables {
    checks: "status_checks_rebuild",
    history: "status_history_rebuild",
};

/// The snapshot the log's compaction folds old events into.
const SNAPSHOT: Tables = Tables {
    checks: "status_checks_snapshot",
    history: "status_history_snapshot",
};

/// Applies events to one copy of the view.
pub struct StatusEvents {
    tables: Tables,
    name: &'static str,
    inbox: &'static str,
}

impl StatusEvents {
    /// The consumer that keeps the served view.
    pub fn served() -> StatusEvents {
        StatusEvents {
            tables: SERVED,
            name: CONSUMER,
            inbox: "inbox",
        }
    }

    fn rebuilding() -> StatusEvents {
        StatusEvents {
            tables: REBUILDING,
            name: "status.rebuild",
            inbox: "inbox_rebuild",
        }
    }

    fn snapshot() -> StatusEvents {
        StatusEvents {
            tables: SNAPSHOT,
            name: "status.snapshot",
            inbox: "inbox_snapshot",
        }
    }
}

#[async_trait]
impl EventHandler for StatusEvents {
    fn name(&self) -> &'static str {
        self.name
    }

    fn inbox(&self) -> &'static str {
        self.inbox
    }

    fn wants(&self, event_type: EventType) -> bool {
        // Between Store and Order only: the order's own `MenuCancelled`
        // is what people see.
        event_type != EventType::StoreOrderCancelled
    }

    async fn handle(&self, conn: &mut Conn, ev: &Event) -> Result<(), HandlerError> {
        let Tables { checks, history } = self.tables;
        let current: Option<String> =
            sql::query_scalar(format!("SELECT status FROM {checks} WHERE order_id = ?"))
                .bind(ev.order_id)
                .fetch_optional(&mut *conn)
                .await?;
        let current = current.as_deref().and_then(OrderStatus::parse);
        let after = status_after(ev.event_type);
        let status = match (after, current) {
            (Some(new), Some(old)) if rank(new) <= rank(old) => None,
            (new, _) => new,
        };
        let payment_status = match ev.event_type {
            EventType::PaymentAgreed => Some("Approved"),
            EventType::PaymentCancelled => Some("Refunded"),
            _ => None,
        };
        // The payment can be approved before the order is placed, so the
        // first event seen may leave the status at PaymentPending.
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
        .bind(status.map(|s| s.as_str()))
        .bind(payment_status)
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
            &format!("INSERT INTO {history} (order_id, event_id, event_type, status, actor, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)"),
            "(event_id)",
        ))
        .bind(ev.order_id)
        .bind(ev.event_id.to_string())
        .bind(ev.event_type.as_str())
        .bind(after.map(|s| s.as_str()).or(payment_status))
        .bind(&ev.actor)
        .bind(&ev.reason)
        .bind(ev.timestamp)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// The status view as a rebuild sees it: the new copy is filled beside the
/// served one, which readers keep getting, current, until the swap.
struct StatusView;

const HISTORY_COLUMNS: &str = "order_id, event_id, event_type, status, actor, reason, at";

#[async_trait]
impl RebuildableView for StatusView {
    fn served(&self) -> &'static str {
        CONSUMER
    }

    fn rebuilding(&self) -> Arc<dyn EventHandler> {
        Arc::new(StatusEvents::rebuilding())
    }

    fn snapshot(&self) -> Arc<dyn EventHandler> {
        Arc::new(StatusEvents::snapshot())
    }

    async fn seed(&self, conn: &mut Conn) -> Result<(), sqlx::Error> {
        for (snapshot, rebuilt, columns, order) in [
            (
                SNAPSHOT.history,
                REBUILDING.history,
                HISTORY_COLUMNS,
                "ORDER BY id",
            ),
            (SNAPSHOT.checks, REBUILDING.checks, COLUMNS, ""),
        ] {
            sql::query(format!(
                "INSERT INTO {rebuilt} ({columns}) SELECT {columns} FROM {snapshot} {order}"
            ))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn clear(&self, conn: &mut Conn) -> Result<(), sqlx::Error> {
        for table in [REBUILDING.history, REBUILDING.checks] {
            sql::query(format!("DELETE FROM {table}"))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    async fn swap(&self, conn: &mut Conn) -> Result<(), sqlx::Error> {
        for (served, rebuilt, columns, order) in [
            (
                SERVED.history,
                REBUILDING.history,
                HISTORY_COLUMNS,
                "ORDER BY id",
            ),
            (SERVED.checks, REBUILDING.checks, COLUMNS, ""),
        ] {
            sql::query(format!("DELETE FROM {served}"))
                .execute(&mut *conn)
                .await?;
            sql::query(format!(
                "INSERT INTO {served} ({columns}) SELECT {columns} FROM {rebuilt} {order}"
            ))
            .execute(&mut *conn)
            .await?;
        }
        self.clear(conn).await
    }
}

/// The view as the log's compaction and rebuilds see it.
pub fn rebuildable() -> Arc<dyn RebuildableView> {
    Arc::new(StatusView)
}

/// Rebuilds the view from the log while it is served; returns once the new
/// copy has caught up and replaced the old one.
pub async fn rebuild(db: &Db, log: &EventLog) -> Result<Rebuilt, RebuildError> {
    platform::rebuild::rebuild(Arc::new(StatusView), db, log).await
}

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

fn from_row(r: &sql::Row) -> StatusCheck {
    StatusCheck {
        order_id: r.get(0),
        status: r.get(1),
        payment_status: r.get(2),
        menu_name: r.get(3),
        qty: r.get(4),
        price: r.get(5),
        address: r.get(6),
        store_id: r.get(7),
        customer_id: r.get(8),
        rider_id: r.get(9),
        updated_at: r.get(10),
        history: None,
    }
}

/// The status view's operations, as `/openapi.json` describes them.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, show),
    modifiers(&Common),
    tags((name = "status", description = "Every order's status and timeline, built from events"))
)]
pub struct StatusApi;

pub fn router(service: StatusService) -> Router {
    Router::new()
        .route("/statusChecks", get(list))
        .route("/statusChecks/{orderId}", get(show))
        .with_state(service)
}

/// The condition that limits rows to what `who` may see.
fn scope(who: &Principal) -> (&'static str, i64) {
    match who.role {
        Role::Admin => ("?1 = ?1", 0),
        Role::Customer => ("customer_id = ?1", who.user_id),
        Role::Owner => ("store_id = ?1", who.store_id.unwrap_or(-1)),
        Role::Rider => ("rider_id = ?1", who.user_id),
    }
}

/// A page of `/statusChecks`, newest order first.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// Only orders with a smaller id: the last `orderId` of the page before.
    before: Option<i64>,
    /// Rows per page (1 to 1000, default 100).
    limit: Option<i64>,
}

/// Rows per page when the client names none, and the most it may ask for.
const PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

fn page_size(asked: Option<i64>) -> i64 {
    asked.unwrap_or(PAGE).clamp(1, MAX_PAGE)
}

#[utoipa::path(
    get,
    path = "/statusChecks",
    tag = "status",
    summary = "The orders the caller may see, newest first, a page at a time",
    security(("bearer" = ["customer", "owner", "rider", "admin"])),
    params(Page),
    responses((status = 200, description = "One page", body = Vec<StatusCheck>), BadParams)
)]
async fn list(
    State(svc): State<StatusService>,
    who: Principal,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Vec<StatusCheck>>, ApiError> {
    let (filter, id) = scope(&who);
    let rows = sql::query(format!(
        "SELECT {COLUMNS} FROM status_checks WHERE {filter} AND order_id < ?2 ORDER BY order_id DESC LIMIT ?3"
    ))
    .bind(id)
    .bind(page.before.unwrap_or(i64::MAX))
    .bind(page_size(page.limit))
    .fetch_all(&svc.db)
    .await?;
    Ok(Json(rows.iter().map(from_row).collect()))
}

#[utoipa::path(
    get,
    path = "/statusChecks/{orderId}",
    tag = "status",
    summary = "One order's status with its timeline",
    security(("bearer" = ["customer", "owner", "rider", "admin"])),
    params(("orderId" = i64, Path, description = "The order's id")),
    responses((status = 200, description = "The order's status and history", body = StatusCheck), BadParams, NotFound)
)]
async fn show(
    State(svc): State<StatusService>,
    who: Principal,
    ApiPath(order_id): ApiPath<i64>,
) -> Result<Json<StatusCheck>, ApiError> {
    let (filter, id) = scope(&who);
    // The row and its history from one snapshot, so that a change
    // committed between the two reads cannot show a status older than its
    // own history.
    let one = format!("SELECT {COLUMNS} FROM status_checks WHERE order_id = ?2 AND {filter}");
    let (row, history) = svc
        .db
        .read(move |conn| {
            Box::pin(async move {
                let row = sql::query(one)
                    .bind(id)
                    .bind(order_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                let history = sql::query("SELECT event_type, event_id, status, actor, reason, at FROM status_history WHERE order_id = ? ORDER BY at, id")
                    .bind(order_id)
                    .fetch_all(&mut *conn)
                    .await?;
                Ok::<_, sqlx::Error>((row, history))
            })
        })
        .await?;
    let row = row.ok_or_else(|| ApiError::not_found(format!("no status for order {order_id}")))?;
    let mut check = from_row(&row);
    check.history = Some(
        history
            .iter()
            .map(|r| Change {
                event_type: r.get(0),
                event_id: r.get(1),
                status: r.get(2),
                actor: r.get(3),
                reason: r.get(4),
                at: r.get(5),
            })
            .collect(),
    );
    Ok(Json(check))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_holds_a_hundred_rows_unless_asked_and_never_more_than_a_thousand() {
        assert_eq!(page_size(None), 100);
        assert_eq!(page_size(Some(20)), 20);
        assert_eq!(page_size(Some(0)), 1);
        assert_eq!(page_size(Some(-5)), 1);
        assert_eq!(page_size(Some(50_000)), 1000);
    }

    #[test]
    fn the_view_moves_an_order_only_forward() {
        let steps = [
            OrderStatus::PaymentPending,
            OrderStatus::Ordered,
            OrderStatus::Accepted,
            OrderStatus::Cooked,
            OrderStatus::PickedUp,
            OrderStatus::Delivered,
            OrderStatus::Confirmed,
        ];
        for pair in steps.windows(2) {
            assert!(rank(pair[0]) < rank(pair[1]), "{pair:?}");
        }
        for end in [
            OrderStatus::Rejected,
            OrderStatus::Cancelled,
            OrderStatus::PaymentFailed,
        ] {
            assert!(steps.iter().all(|s| rank(*s) < rank(end)), "{end:?}");
        }
        // Every status some event leads to has a rank.
        for t in EventType::ALL {
            if let Some(s) = status_after(t) {
                let _ = rank(s);
            }
        }
    }
}
