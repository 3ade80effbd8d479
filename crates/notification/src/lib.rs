//! Notifications: every status change tells the people concerned (the
//! customer, the store's owner, the riders) in words, kept as a list and
//! pushed live over Server-Sent Events. Built only from events, so it can be
//! rebuilt from the log.
//!
//! [`SERVICE`] describes it to the shapes that run it (`platform::service`):
//! name, port, gateway paths, migrations, OpenAPI, events, and `start`.

mod message;

use platform::service::{ready, ServiceDescription, Started, Starting, Supplies};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use utoipa::OpenApi as _;

use async_trait::async_trait;
use axum::extract::{FromRef, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use contracts::{Event, EventType, Role};
use futures::Stream;
use platform::consumer::{EventHandler, HandlerError};
use platform::live_streams::LiveStreams;
use platform::openapi::{BadParams, Common, TooMany};
use platform::rebuild::{RebuildError, RebuildableView, Rebuilt};
use platform::sql;
use platform::Conn;
use platform::{ApiError, ApiQuery, Db, EventLog, Principal, TokenKeys};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use message::recipients_and_message;

pub fn migrations() -> platform::Migrations {
    platform::migrations!()
}

/// Notifications as the shapes run it (see `platform::service`).
pub const SERVICE: ServiceDescription = ServiceDescription::new(
    "notification",
    8086,
    migrations,
    NotificationApi::openapi,
    start,
)
.owning(&["/notifications"])
.consuming_events()
.with_view(rebuildable);

fn start(Supplies { db, keys, .. }: Supplies) -> Starting {
    let svc = NotificationService::new(db, keys);
    let handler = Arc::new(svc.handler());
    ready(Started::serving(router(svc)).consuming(handler))
}

pub const CONSUMER: &str = "notification";

#[derive(Clone)]
pub struct NotificationService {
    pub db: Db,
    pub keys: TokenKeys,
    /// Bumped after each commit that added notifications; live streams
    /// wake on it and read what is new from the database.
    pub added: watch::Sender<u64>,
    /// Caps the live streams open at once, per user and in all.
    pub streams: LiveStreams,
}

impl NotificationService {
    pub fn new(db: Db, keys: TokenKeys) -> NotificationService {
        NotificationService {
            db,
            keys,
            added: watch::channel(0).0,
            streams: LiveStreams::from_env(),
        }
    }

    pub fn handler(&self) -> NotificationEvents {
        NotificationEvents {
            added: self.added.clone(),
            table: SERVED,
            name: CONSUMER,
            inbox: "inbox",
        }
    }
}

impl FromRef<NotificationService> for TokenKeys {
    fn from_ref(s: &NotificationService) -> TokenKeys {
        s.keys.clone()
    }
}

/// The table readers are served, and the one a rebuild fills beside it.
const SERVED: &str = "notifications";
const REBUILDING: &str = "notifications_rebuild";
/// The snapshot the log's compaction folds old events into.
const SNAPSHOT: &str = "notifications_snapshot";

pub struct NotificationEvents {
    added: watch::Sender<u64>,
    table: &'static str,
    name: &'static str,
    inbox: &'static str,
}

#[async_trait]
impl EventHandler for NotificationEvents {
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
        for (recipient, text) in recipients_and_message(ev) {
            sql::query(sql::insert_ignoring_duplicates(
                conn.backend(),
                &format!(
                    "INSERT INTO {} (recipient, order_id, event_id, event_type, message, created_at)
                     VALUES (?, ?, ?, ?, ?, ?)",
                    self.table
                ),
                "(event_id, recipient)",
            ))
            .bind(recipient)
            .bind(ev.order_id)
            .bind(ev.event_id.to_string())
            .bind(ev.event_type.as_str())
            .bind(text)
            .bind(ev.timestamp)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    fn committed(&self) {
        self.added.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The notifications as a rebuild sees them: the new copy is filled beside
/// the served one, which pages keep reading, current, until the swap.
struct NotificationView;

/// Matches a row of the served table with the new copy's row for the same
/// event and recipient.
const SAME_NOTIFICATION: &str =
    "r.event_id = notifications.event_id AND r.recipient = notifications.recipient";

#[async_trait]
impl RebuildableView for NotificationView {
    fn served(&self) -> &'static str {
        CONSUMER
    }

    fn rebuilding(&self) -> Arc<dyn EventHandler> {
        Arc::new(NotificationEvents {
            added: watch::channel(0).0,
            table: REBUILDING,
            name: "notification.rebuild",
            inbox: "inbox_rebuild",
        })
    }

    fn snapshot(&self) -> Arc<dyn EventHandler> {
        Arc::new(NotificationEvents {
            added: watch::channel(0).0,
            table: SNAPSHOT,
            name: "notification.snapshot",
            inbox: "inbox_snapshot",
        })
    }

    async fn seed(&self, conn: &mut Conn) -> Result<(), sqlx::Error> {
        sql::query(format!(
            "INSERT INTO {REBUILDING} (recipient, order_id, event_id, event_type, message, created_at)
             SELECT recipient, order_id, event_id, event_type, message, created_at FROM {SNAPSHOT} ORDER BY id"
        ))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn clear(&self, conn: &mut Conn) -> Result<(), sqlx::Error> {
        sql::query(format!("DELETE FROM {REBUILDING}"))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Ids are the SSE stream's `Last-Event-ID`: a notification in both
    /// copies keeps its served id (with the new copy's words), so no page
    /// is told it again; only notifications new to the served copy get new
    /// ids, above every id a page has seen.
    async fn swap(&self, conn: &mut Conn) -> Result<(), sqlx::Error> {
        for statement in [
            format!("DELETE FROM {SERVED} WHERE NOT EXISTS (SELECT 1 FROM {REBUILDING} r WHERE {SAME_NOTIFICATION})"),
            format!(
                "UPDATE {SERVED} SET message = (SELECT r.message FROM {REBUILDING} r WHERE {SAME_NOTIFICATION})
                 WHERE EXISTS (SELECT 1 FROM {REBUILDING} r WHERE {SAME_NOTIFICATION} AND r.message <> notifications.message)"
            ),
            format!(
                "INSERT INTO {SERVED} (recipient, order_id, event_id, event_type, message, created_at)
                 SELECT r.recipient, r.order_id, r.event_id, r.event_type, r.message, r.created_at FROM {REBUILDING} r
                 WHERE NOT EXISTS (SELECT 1 FROM {SERVED} n WHERE n.event_id = r.event_id AND n.recipient = r.recipient)
                 ORDER BY r.id"
            ),
        ] {
            sql::query(statement).execute(&mut *conn).await?;
        }
        self.clear(conn).await
    }
}

/// The notifications as the log's compaction and rebuilds see them.
pub fn rebuildable() -> Arc<dyn RebuildableView> {
    Arc::new(NotificationView)
}

/// Rebuilds the notifications from the log while they are served; returns
/// once the new copy has caught up and replaced the old one.
pub async fn rebuild(db: &Db, log: &EventLog) -> Result<Rebuilt, RebuildError> {
    platform::rebuild::rebuild(Arc::new(NotificationView), db, log).await
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub id: i64,
    pub recipient: String,
    pub order_id: i64,
    pub event_id: String,
    pub event_type: String,
    pub message: String,
    pub created_at: i64,
}

/// The recipient names a user reads: their own, their store's, and for
/// riders the open-to-all-riders channel.
fn inboxes(who: &Principal) -> Option<Vec<String>> {
    match who.role {
        Role::Admin => None,
        Role::Customer => Some(vec![format!("customer:{}", who.user_id)]),
        Role::Owner => Some(vec![format!("store:{}", who.store_id.unwrap_or(-1))]),
        Role::Rider => Some(vec!["riders".into(), format!("rider:{}", who.user_id)]),
    }
}

async fn fetch(
    db: &Db,
    who: &Principal,
    after: i64,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    let boxes = inboxes(who);
    let (a, b) = match &boxes {
        None => (None, None),
        Some(v) => (
            v.first().cloned(),
            v.get(1).cloned().or_else(|| v.first().cloned()),
        ),
    };
    let rows = sql::query(
        "SELECT id, recipient, order_id, event_id, event_type, message, created_at FROM notifications
         WHERE id > ?1 AND (?2 IS NULL OR recipient = ?2 OR recipient = ?3) ORDER BY id LIMIT ?4",
    )
    .bind(after)
    .bind(a)
    .bind(b)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Notification {
            id: r.get(0),
            recipient: r.get(1),
            order_id: r.get(2),
            event_id: r.get(3),
            event_type: r.get(4),
            message: r.get(5),
            created_at: r.get(6),
        })
        .collect())
}

/// Notification's operations, as `/openapi.json` describes them.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, stream),
    modifiers(&Common),
    tags((name = "notification", description = "What happened to the caller's orders, in words"))
)]
pub struct NotificationApi;

pub fn router(service: NotificationService) -> Router {
    Router::new()
        .route("/notifications", get(list))
        .route("/notifications/stream", get(stream))
        .with_state(service)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct After {
    /// Only notifications with a larger id.
    after: Option<i64>,
    /// At most this many (1 to 5000, default 500).
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/notifications",
    tag = "notification",
    summary = "The caller's notifications, oldest first",
    security(("bearer" = ["customer", "owner", "rider", "admin"])),
    params(After),
    responses((status = 200, description = "Oldest first", body = Vec<Notification>), BadParams)
)]
async fn list(
    State(svc): State<NotificationService>,
    who: Principal,
    ApiQuery(q): ApiQuery<After>,
) -> Result<Json<Vec<Notification>>, ApiError> {
    let limit = q.limit.unwrap_or(500).clamp(1, 5000);
    Ok(Json(
        fetch(&svc.db, &who, q.after.unwrap_or(0), limit).await?,
    ))
}

/// Live notifications. A client that reconnects sends `Last-Event-ID` (or
/// `?after=`) and first gets everything it missed.
#[utoipa::path(
    get,
    path = "/notifications/stream",
    tag = "notification",
    summary = "The caller's notifications live, as Server-Sent Events (`event: notification`, `id`, `data`: one Notification as JSON); it stays open",
    security(("bearer" = ["customer", "owner", "rider", "admin"])),
    params(
        After,
        ("Last-Event-ID" = Option<i64>, Header, description = "The last id seen: resume after it"),
    ),
    responses((status = 200, description = "An endless event stream", content_type = "text/event-stream", body = String), BadParams, TooMany)
)]
async fn stream(
    State(svc): State<NotificationService>,
    who: Principal,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<After>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let place = svc.streams.open(&who)?;
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .or(q.after)
        .unwrap_or(0);
    let mut added = svc.added.subscribe();
    let stream = async_stream(move |tx| async move {
        let _place = place;
        let mut last = last_seen;
        loop {
            match fetch(&svc.db, &who, last, 200).await {
                Ok(batch) => {
                    let full = batch.len() == 200;
                    for n in batch {
                        last = n.id;
                        let ev = SseEvent::default()
                            .event("notification")
                            .id(n.id.to_string())
                            .json_data(&n)
                            .unwrap_or_else(|_| SseEvent::default().comment("unencodable"));
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                    if full {
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "notification stream read failed"),
            }
            tokio::select! {
                changed = added.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// A stream fed by a task, which ends when the client goes away.
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<SseEvent, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<SseEvent, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
