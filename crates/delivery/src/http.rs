//! Delivery's HTTP API: the riders' list, pick up and complete. Each
//! handler extracts, asks the domain and storage, and answers; every
//! [`DeliveryError`] becomes problem+json in `problem`, and only there.

use axum::extract::State;
use axum::routing::{get, put};
use axum::{Json, Router};
use contracts::Role;
use platform::openapi::{BadParams, Common, Conflict, Forbidden, NotFound};
use platform::{ApiError, ApiPath, Principal};

use crate::domain::{self, DeliveryAction};
use crate::error::DeliveryError;
use crate::storage::{self, Delivery};
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

/// The one mapping from Delivery's errors to problem+json. Another
/// rider's delivery is answered 404, as if it did not exist.
fn problem(e: DeliveryError) -> ApiError {
    match e {
        DeliveryError::NotFound(_) | DeliveryError::NotYours(_) => {
            ApiError::not_found(e.to_string())
        }
        DeliveryError::Illegal(t) => ApiError::conflict(t.to_string(), t.current.as_str()),
        DeliveryError::Db(e) => e.into(),
    }
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
    let rider = domain::listed_for(who.role, who.user_id);
    Ok(Json(storage::list(&svc.db, rider).await?))
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
    let delivery = svc
        .db
        .read(|conn| Box::pin(storage::load(conn, order_id)))
        .await?
        .filter(|d| domain::may_see(who.role, who.user_id, d.rider_id));
    delivery
        .map(Json)
        .ok_or_else(|| problem(DeliveryError::NotFound(order_id)))
}

/// A rider acts on the delivery of an order.
async fn act(
    svc: DeliveryService,
    who: Principal,
    order_id: i64,
    action: DeliveryAction,
) -> Result<Json<Delivery>, ApiError> {
    who.require(&[Role::Rider])?;
    let actor = who.actor();
    let rider = who.user_id;
    let delivery = svc
        .db
        .write(move |tx| {
            Box::pin(async move { storage::change(tx, order_id, action, rider, &actor).await })
        })
        .await
        .map_err(problem)?;
    Ok(Json(delivery))
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
