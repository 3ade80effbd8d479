//! Notification's HTTP API: the caller's notifications as a list and live
//! as Server-Sent Events. Each handler asks the domain which inboxes the
//! caller reads and how many to read, and reads storage; a database error
//! becomes problem+json through platform's `ApiError`, as in every service.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use futures::Stream;
use platform::openapi::{BadParams, Common, TooMany};
use platform::{ApiError, ApiQuery, Principal};
use serde::Deserialize;

use crate::domain::{self, STREAM_BATCH};
use crate::storage::{self, Notification};
use crate::NotificationService;

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

/// The caller's notifications after `after`.
async fn read(
    svc: &NotificationService,
    who: &Principal,
    after: i64,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    let inboxes = domain::inboxes(who.role, who.user_id, who.store_id);
    storage::after(&svc.db, inboxes.as_deref(), after, limit).await
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
    let limit = domain::page_size(q.limit);
    Ok(Json(read(&svc, &who, q.after.unwrap_or(0), limit).await?))
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
            match read(&svc, &who, last, STREAM_BATCH).await {
                Ok(batch) => {
                    let full = batch.len() as i64 == STREAM_BATCH;
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
