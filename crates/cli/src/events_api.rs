//! `GET /events`: the event log for admins, as the seed's
//! kafka-console-consumer showed it.

use axum::extract::{FromRef, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use contracts::Role;
use platform::{ApiError, EventLog, Principal, TokenKeys};
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

pub fn router(log: EventLog, keys: TokenKeys) -> Router {
    Router::new()
        .route("/events", get(list))
        .with_state(LogState { log, keys })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    after: Option<i64>,
    limit: Option<i64>,
    order_id: Option<i64>,
}

async fn list(
    State(s): State<LogState>,
    who: Principal,
    Query(q): Query<LogQuery>,
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
