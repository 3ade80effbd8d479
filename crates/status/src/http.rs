//! The status view's HTTP API: each handler extracts the caller and the
//! request, asks the domain whose orders they may see, reads storage, and
//! answers; every [`StatusError`] becomes problem+json in `problem`, and
//! only there.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use platform::openapi::{BadParams, Common, NotFound};
use platform::{ApiError, ApiPath, ApiQuery, Principal};
use serde::Deserialize;

use crate::domain::{self, Scope};
use crate::error::StatusError;
use crate::storage::{self, StatusCheck};
use crate::StatusService;

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

/// The one place a [`StatusError`] becomes an HTTP answer.
fn problem(e: StatusError) -> ApiError {
    match e {
        StatusError::NotFound(_) => ApiError::not_found(e.to_string()),
        StatusError::Db(e) => e.into(),
    }
}

fn scope_of(who: &Principal) -> Scope {
    domain::scope(who.role, who.user_id, who.store_id)
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
    let before = page.before.unwrap_or(i64::MAX);
    storage::page(
        &svc.db,
        scope_of(&who),
        before,
        domain::page_size(page.limit),
    )
    .await
    .map(Json)
    .map_err(|e| problem(e.into()))
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
    storage::with_history(&svc.db, scope_of(&who), order_id)
        .await
        .map_err(StatusError::from)
        .and_then(|found| found.ok_or(StatusError::NotFound(order_id)))
        .map(Json)
        .map_err(problem)
}
