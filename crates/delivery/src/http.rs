//! Delivery's HTTP API: the riders' list, pick up and complete.

use axum::extract::{Path, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use contracts::Role;
use platform::sql;
use platform::{ApiError, Principal};

use crate::domain::DeliveryAction;
use crate::record::{self, ChangeError, Delivery, COLUMNS};
use crate::DeliveryService;

pub fn router(service: DeliveryService) -> Router {
    Router::new()
        .route("/deliveries", get(list))
        .route("/deliveries/{orderId}", get(show))
        .route("/deliveries/{orderId}/pickup", put(pickup))
        .route("/deliveries/{orderId}/complete", put(complete))
        .with_state(service)
}

/// A rider sees deliveries waiting for any rider and their own; an admin
/// sees all.
async fn list(
    State(svc): State<DeliveryService>,
    who: Principal,
) -> Result<Json<Vec<Delivery>>, ApiError> {
    who.require(&[Role::Rider, Role::Admin])?;
    let rider = if who.is_admin() {
        None
    } else {
        Some(who.user_id)
    };
    let rows = sql::query(format!(
        "SELECT {COLUMNS} FROM deliveries WHERE ?1 IS NULL OR status = 'Ready' OR rider_id = ?1 ORDER BY order_id DESC LIMIT 1000"
    ))
    .bind(rider)
    .fetch_all(&svc.db)
    .await?;
    Ok(Json(rows.iter().map(Delivery::from_row).collect()))
}

async fn show(
    State(svc): State<DeliveryService>,
    who: Principal,
    Path(order_id): Path<i64>,
) -> Result<Json<Delivery>, ApiError> {
    who.require(&[Role::Rider, Role::Admin])?;
    let d = svc
        .db
        .read(|conn| Box::pin(record::load(conn, order_id)))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no delivery for order {order_id}")))?;
    let open_or_mine = d.rider_id.is_none() || d.rider_id == Some(who.user_id);
    if who.is_admin() || open_or_mine {
        Ok(Json(d))
    } else {
        Err(ApiError::not_found(format!(
            "no delivery for order {order_id}"
        )))
    }
}

async fn act(
    svc: DeliveryService,
    who: Principal,
    order_id: i64,
    action: DeliveryAction,
) -> Result<Json<Delivery>, ApiError> {
    who.require(&[Role::Rider])?;
    let actor = who.actor();
    let rider = who.user_id;
    let d = svc
        .db
        .write(move |tx| {
            Box::pin(async move {
                record::change(tx, order_id, action, rider, &actor)
                    .await
                    .map_err(|e| match e {
                        ChangeError::NotFound(_) | ChangeError::NotYours(_) => {
                            ApiError::not_found(e.to_string())
                        }
                        ChangeError::Illegal(t) => {
                            ApiError::conflict(t.to_string(), t.current.as_str())
                        }
                        ChangeError::Db(e) => e.into(),
                    })
            })
        })
        .await?;
    svc.outbox.notify();
    Ok(Json(d))
}

async fn pickup(
    State(svc): State<DeliveryService>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Delivery>, ApiError> {
    act(svc, who, id, DeliveryAction::PickUp).await
}

async fn complete(
    State(svc): State<DeliveryService>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Delivery>, ApiError> {
    act(svc, who, id, DeliveryAction::Complete).await
}
