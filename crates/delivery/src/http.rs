//! Delivery's HTTP API: the riders' list, pick up and complete.

use axum::extract::State;
use axum::routing::{get, put};
use axum::{Json, Router};
use contracts::Role;
use platform::openapi::{BadParams, Common, Conflict, Forbidden, NotFound};
use platform::sql;
use platform::{ApiError, ApiPath, Principal};

use crate::domain::DeliveryAction;
use crate::record::{self, ChangeError, Delivery, COLUMNS};
use crate::DeliveryService;

/// Delivery's operations, as `/openapi.json` describes them.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, show, pickup, complete),
    modifiers(&Common),
    tags((name = "delivery", description = "Riders pick up cooked orders and deliver them"))
)]
pub struct DeliveryApi;

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
#[utoipa::path(
    get,
    path = "/deliveries",
    tag = "delivery",
    summary = "Deliveries waiting for a rider and the caller's own (all for an admin)",
    security(("bearer" = ["rider", "admin"])),
    responses((status = 200, description = "Newest first", body = Vec<Delivery>), Forbidden)
)]
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
    let deliveries = rows
        .iter()
        .map(Delivery::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(deliveries))
}

#[utoipa::path(
    get,
    path = "/deliveries/{orderId}",
    tag = "delivery",
    summary = "The delivery of one order",
    security(("bearer" = ["rider", "admin"])),
    params(("orderId" = i64, Path, description = "The order's id")),
    responses((status = 200, description = "The delivery", body = Delivery), BadParams, Forbidden, NotFound)
)]
async fn show(
    State(svc): State<DeliveryService>,
    who: Principal,
    ApiPath(order_id): ApiPath<i64>,
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
    Ok(Json(d))
}

#[utoipa::path(
    put,
    path = "/deliveries/{orderId}/pickup",
    tag = "delivery",
    summary = "Pick up a cooked order",
    security(("bearer" = ["rider"])),
    params(("orderId" = i64, Path, description = "The order's id")),
    responses((status = 200, description = "The delivery", body = Delivery), BadParams, Forbidden, NotFound, Conflict)
)]
async fn pickup(
    State(svc): State<DeliveryService>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Delivery>, ApiError> {
    act(svc, who, id, DeliveryAction::PickUp).await
}

#[utoipa::path(
    put,
    path = "/deliveries/{orderId}/complete",
    tag = "delivery",
    summary = "Mark the caller's delivery delivered",
    security(("bearer" = ["rider"])),
    params(("orderId" = i64, Path, description = "The order's id")),
    responses((status = 200, description = "The delivery", body = Delivery), BadParams, Forbidden, NotFound, Conflict)
)]
async fn complete(
    State(svc): State<DeliveryService>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Delivery>, ApiError> {
    act(svc, who, id, DeliveryAction::Complete).await
}
