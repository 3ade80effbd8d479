//! `GET /events`: the event log for admins, as the seed's
//! kafka-console-consumer showed it.

use axum::extract::{FromRef, State};
use axum::routing::get;
use axum::{Json, Router};
use contracts::Role;
use platform::openapi::{BadParams, Common, Forbidden};
use platform::{ApiError, ApiQuery, EventLog, Principal, TokenKeys};
use serde::Deserialize;
use serde_json::Value;

#[derive(Clone)]
struct LogState {
    log: EventLog,
    keys: TokenKeys,
}

impl FromRef<LogState> for TokenKeys {
    fn from_ref(s: &LogState) -> TokenKeys {
        s.keys.clone()
    }
}

/// `GET /events`, as `/openapi.json` describes it.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list),
    modifiers(&Common),
    tags((name = "events", description = "The event log"))
)]
pub struct EventsApi;

/// An event as the log holds it, with its position.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only described: `list` adds `seq` to the stored JSON.
struct LoggedEvent {
    #[serde(flatten)]
    event: contracts::Event,
    /// Its position in the log.
    seq: i64,
}

pub fn router(log: EventLog, keys: TokenKeys) -> Router {
    Router::new()
        .route("/events", get(list))
        .with_state(LogState { log, keys })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct LogQuery {
    /// Only events after this position.
    after: Option<i64>,
    /// At most this many (1 to 5000, default 500).
    limit: Option<i64>,
    /// Only this order's events (then `after` and `limit` do not apply).
    order_id: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    summary = "The event log, oldest first",
    security(("bearer" = ["admin"])),
    params(LogQuery),
    responses((status = 200, description = "Events in log order", body = Vec<LoggedEvent>), BadParams, Forbidden)
)]
async fn list(
    State(s): State<LogState>,
    who: Principal,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Json<Vec<Value>>, ApiError> {
    who.require(&[Role::Admin])?;
    let events = match q.order_id {
        Some(id) => s.log.for_order(id).await?,
        None => {
            // Entries before the retained log's start were compacted: the
            // list starts where the log does.
            let start = s.log.compacted_through().await?;
            s.log
                .read_after(
                    q.after.unwrap_or(0).max(start),
                    q.limit.unwrap_or(500).clamp(1, 5000),
                )
                .await?
        }
    };
    Ok(Json(
        events
            .into_iter()
            .map(|e| {
                let mut v: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut v {
                    map.insert("seq".into(), Value::from(e.seq));
                }
                v
            })
            .collect(),
    ))
}
