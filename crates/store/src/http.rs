//! Store's HTTP API: stores, menus, and the owner's order list. Each
//! handler extracts and parses, asks the domain and storage, and answers;
//! every [`StoreError`] becomes problem+json in `problem`, and only there.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use contracts::Role;
use platform::list_query;
use platform::openapi::{
    BadBody, BadParams, Common, Conflict, Forbidden, NotFound, Problem, PROBLEM_JSON,
};
use platform::{ApiError, ApiPath, ApiQuery, JsonBody, Principal};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::{self, StoreAction, StoreOrderStatus};
use crate::error::StoreError;
use crate::storage::{self, Menu, Store, StoreOrder};
use crate::StoreService;

/// Store's operations, as `/openapi.json` describes them.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(stores, menus, create_menu, show_menu, update_menu, list_orders, show_order, accept, reject, finish, cancel),
    modifiers(&Common),
    tags((name = "store", description = "Stores, their menus, and the orders their owners decide on"))
)]
pub struct StoreApi;

pub fn router(service: StoreService) -> Router {
    Router::new()
        .route("/stores", get(stores))
        .route("/menus", get(menus).post(create_menu))
        .route("/menus/{id}", get(show_menu).put(update_menu))
        .route("/storeOrders", get(list_orders))
        .route("/storeOrders/{orderId}", get(show_order))
        .route("/storeOrders/{orderId}/accept", put(accept))
        .route("/storeOrders/{orderId}/reject", put(reject))
        .route("/storeOrders/{orderId}/finish", put(finish))
        .route("/storeOrders/{orderId}/cancel", put(cancel))
        .with_state(service)
}

/// The one mapping from Store's errors to problem+json.
fn problem(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid(detail) => ApiError::unprocessable(detail),
        StoreError::Forbidden(why) => ApiError::forbidden(why),
        StoreError::MenuNotFound(_) | StoreError::NotInList { .. } => {
            ApiError::not_found(e.to_string())
        }
        StoreError::Illegal(t) => decided(t.to_string(), t.current),
        StoreError::Decided(status) => decided(e.to_string(), status),
        StoreError::Db(e) => e.into(),
        StoreError::Internal(detail) => ApiError::internal(detail),
    }
}

/// A 409 naming the order's status as the customer sees it and the
/// kitchen's own.
fn decided(detail: String, status: StoreOrderStatus) -> ApiError {
    ApiError::conflict(detail, status.order_status().as_str())
        .with("cookStatus", json!(status.as_str()))
}

#[utoipa::path(
    get,
    path = "/stores",
    tag = "store",
    summary = "Every store (public)",
    responses((status = 200, description = "The stores", body = Vec<Store>))
)]
async fn stores(State(svc): State<StoreService>) -> Result<Json<Vec<Store>>, ApiError> {
    Ok(Json(storage::stores(&svc.db).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct MenuQuery {
    /// Only this store's items.
    store_id: Option<i64>,
    /// Exact item name: the first available item so named (how an order by
    /// `menuName` finds its price).
    name: Option<String>,
}

/// Menus are public: customers browse before they log in.
#[utoipa::path(
    get,
    path = "/menus",
    tag = "store",
    summary = "Menu items (public)",
    params(MenuQuery),
    responses((status = 200, description = "The items", body = Vec<Menu>), BadParams)
)]
async fn menus(
    State(svc): State<StoreService>,
    ApiQuery(q): ApiQuery<MenuQuery>,
) -> Result<Json<Vec<Menu>>, ApiError> {
    if let Some(name) = q.name.as_deref() {
        let found = storage::menu_by_name(&svc.db, name.trim()).await?;
        return Ok(Json(found.into_iter().collect()));
    }
    Ok(Json(storage::menus(&svc.db, q.store_id).await?))
}

#[utoipa::path(
    get,
    path = "/menus/{id}",
    tag = "store",
    summary = "One menu item (public)",
    params(("id" = i64, Path, description = "The item's id")),
    responses((status = 200, description = "The item", body = Menu), BadParams, NotFound)
)]
async fn show_menu(
    State(svc): State<StoreService>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Menu>, ApiError> {
    storage::menu_by_id(&svc.db, id)
        .await?
        .map(Json)
        .ok_or_else(|| problem(StoreError::MenuNotFound(id)))
}

/// A new menu item.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "Bibimbap", "price": 9000, "available": true}))]
struct NewMenu {
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// KRW, 0 to 10,000,000.
    #[schema(minimum = 0, maximum = 10_000_000)]
    price: i64,
    /// Only an admin names the store; an owner adds to their own.
    store_id: Option<i64>,
    available: Option<bool>,
}

#[utoipa::path(
    post,
    path = "/menus",
    tag = "store",
    summary = "Add a menu item (an owner to their own store; an admin names the store)",
    security(("bearer" = ["owner", "admin"])),
    request_body = NewMenu,
    responses((status = 201, description = "The new item", body = Menu), BadBody, Forbidden)
)]
async fn create_menu(
    State(svc): State<StoreService>,
    who: Principal,
    body: JsonBody,
) -> Result<(StatusCode, Json<Menu>), ApiError> {
    who.require(&[Role::Owner, Role::Admin])?;
    let req: NewMenu = body.parse()?;
    domain::check_menu_fields(Some(&req.name), Some(req.price)).map_err(|e| problem(e.into()))?;
    let store_id =
        domain::menu_store(who.role, who.store_id, req.store_id).map_err(|e| problem(e.into()))?;
    if !storage::store_exists(&svc.db, store_id).await? {
        let missing = format!("store {store_id} does not exist");
        return Err(problem(StoreError::Invalid(missing)));
    }
    let available = req.available.unwrap_or(true);
    let id = svc
        .db
        .write(move |conn| {
            Box::pin(async move {
                storage::add_menu(conn, store_id, req.name.trim(), req.price, available).await
            })
        })
        .await?;
    let created = storage::menu_by_id(&svc.db, id)
        .await?
        .ok_or_else(|| problem(StoreError::Internal("menu vanished")))?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The fields of a menu item to change; the others stay.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"available": false}))]
struct MenuChange {
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
    #[schema(minimum = 0, maximum = 10_000_000)]
    price: Option<i64>,
    available: Option<bool>,
}

#[utoipa::path(
    put,
    path = "/menus/{id}",
    tag = "store",
    summary = "Change a menu item of the caller's store (any store for an admin)",
    security(("bearer" = ["owner", "admin"])),
    params(("id" = i64, Path, description = "The item's id")),
    request_body = MenuChange,
    responses((status = 200, description = "The item as changed", body = Menu), BadParams, BadBody, Forbidden, NotFound)
)]
async fn update_menu(
    State(svc): State<StoreService>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
    body: JsonBody,
) -> Result<Json<Menu>, ApiError> {
    who.require(&[Role::Owner, Role::Admin])?;
    let req: MenuChange = body.parse()?;
    domain::check_menu_fields(req.name.as_deref(), req.price).map_err(|e| problem(e.into()))?;
    let current = storage::menu_by_id(&svc.db, id).await?;
    // Another store's item is answered as missing, so ids reveal nothing.
    if !current.is_some_and(|m| domain::may_handle(who.role, who.store_id, m.store_id)) {
        return Err(problem(StoreError::MenuNotFound(id)));
    }
    svc.db
        .write(move |conn| {
            Box::pin(async move {
                let name = req.name.as_deref().map(str::trim);
                storage::change_menu(conn, id, name, req.price, req.available).await
            })
        })
        .await?;
    storage::menu_by_id(&svc.db, id)
        .await?
        .map(Json)
        .ok_or_else(|| problem(StoreError::MenuNotFound(id)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct OrderQuery {
    /// Only orders in this kitchen status.
    #[param(value_type = Option<StoreOrderStatus>)]
    status: Option<String>,
}

#[utoipa::path(
    get,
    path = "/storeOrders",
    tag = "store",
    summary = "The orders of the caller's store (all for an admin)",
    security(("bearer" = ["owner", "admin"])),
    params(OrderQuery),
    responses((status = 200, description = "Newest first", body = Vec<StoreOrder>), BadParams, Forbidden)
)]
async fn list_orders(
    State(svc): State<StoreService>,
    who: Principal,
    ApiQuery(q): ApiQuery<OrderQuery>,
) -> Result<Json<Vec<StoreOrder>>, ApiError> {
    who.require(&[Role::Owner, Role::Admin])?;
    let status = list_query::status_filter(q.status.as_deref(), StoreOrderStatus::parse)?;
    let store = domain::kitchen_of(who.role, who.store_id);
    Ok(Json(storage::list(&svc.db, store, status).await?))
}

/// The order if `who` may handle it; another store's order is answered
/// 404, as if it were not in any list, so ids reveal nothing.
async fn visible(
    svc: &StoreService,
    who: &Principal,
    order_id: i64,
) -> Result<StoreOrder, ApiError> {
    who.require(&[Role::Owner, Role::Admin])?;
    let so = svc
        .db
        .read(|conn| Box::pin(storage::load(conn, order_id)))
        .await?;
    let whose = match so {
        Some(so) if domain::may_handle(who.role, who.store_id, so.store_id) => return Ok(so),
        Some(_) => "your store's",
        None => "a store's",
    };
    Err(problem(StoreError::NotInList { order_id, whose }))
}

#[utoipa::path(
    get,
    path = "/storeOrders/{orderId}",
    tag = "store",
    summary = "One order of the caller's store",
    security(("bearer" = ["owner", "admin"])),
    params(("orderId" = i64, Path, description = "The order's id")),
    responses((status = 200, description = "The store's order", body = StoreOrder), BadParams, Forbidden, NotFound)
)]
async fn show_order(
    State(svc): State<StoreService>,
    who: Principal,
    ApiPath(order_id): ApiPath<i64>,
) -> Result<Json<StoreOrder>, ApiError> {
    Ok(Json(visible(&svc, &who, order_id).await?))
}

/// Why the store rejects an order.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RejectReason, example = json!({"reason": "sold out"}))]
struct Reason {
    reason: Option<String>,
}

async fn decide(
    svc: StoreService,
    who: Principal,
    order_id: i64,
    action: StoreAction,
    reason: Option<String>,
) -> Result<Json<StoreOrder>, ApiError> {
    visible(&svc, &who, order_id).await?;
    let actor = who.actor();
    let changed = svc
        .db
        .write(move |conn| {
            Box::pin(async move {
                storage::change(conn, order_id, action, &actor, reason.as_deref()).await
            })
        })
        .await
        .map_err(problem)?;
    Ok(Json(changed))
}

#[utoipa::path(
    put,
    path = "/storeOrders/{orderId}/accept",
    tag = "store",
    summary = "Accept an order and start cooking",
    security(("bearer" = ["owner", "admin"])),
    params(("orderId" = i64, Path, description = "The order's id")),
    responses((status = 200, description = "The store's order", body = StoreOrder), BadParams, Forbidden, NotFound, Conflict)
)]
async fn accept(
    State(svc): State<StoreService>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<StoreOrder>, ApiError> {
    decide(svc, who, id, StoreAction::Accept, None).await
}

#[utoipa::path(
    put,
    path = "/storeOrders/{orderId}/finish",
    tag = "store",
    summary = "Mark an accepted order cooked",
    security(("bearer" = ["owner", "admin"])),
    params(("orderId" = i64, Path, description = "The order's id")),
    responses((status = 200, description = "The store's order", body = StoreOrder), BadParams, Forbidden, NotFound, Conflict)
)]
async fn finish(
    State(svc): State<StoreService>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<StoreOrder>, ApiError> {
    decide(svc, who, id, StoreAction::Finish, None).await
}

/// Reject takes an optional JSON body `{"reason": "sold out"}` (or `null`).
#[utoipa::path(
    put,
    path = "/storeOrders/{orderId}/reject",
    tag = "store",
    summary = "Reject an order; the payment is refunded",
    security(("bearer" = ["owner", "admin"])),
    params(("orderId" = i64, Path, description = "The order's id")),
    request_body(content = Option<Reason>, description = "Optional: why", content_type = "application/json"),
    responses((status = 200, description = "The store's order", body = StoreOrder), BadParams, BadBody, Forbidden, NotFound, Conflict)
)]
async fn reject(
    State(svc): State<StoreService>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
    body: axum::body::Bytes,
) -> Result<Json<StoreOrder>, ApiError> {
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        Reason::default()
    } else {
        serde_json::from_slice::<Option<Reason>>(&body)
            .map_err(|e| {
                if e.is_syntax() || e.is_eof() {
                    ApiError::bad_request(format!("malformed JSON: {e}"))
                } else {
                    ApiError::unprocessable(e.to_string())
                }
            })?
            .unwrap_or_default()
    };
    let reason = domain::rejection_reason(reason.reason.as_deref());
    decide(svc, who, id, StoreAction::Reject, Some(reason)).await
}

/// The store agreed to a cancel.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreCancelled {
    order_id: i64,
    /// Always `Cancelled`.
    cook_status: StoreOrderStatus,
}

/// The order service's cancel, when it runs as its own process: the store
/// decides whether the cancel or the owner's decision came first. Only the
/// order service may call it (its service token with the
/// `store-order:cancel` scope); a user's token, even an admin's, is refused.
#[utoipa::path(
    put,
    path = "/storeOrders/{orderId}/cancel",
    tag = "store",
    summary = "Cancel an order before the store decided (the order service only, with its service token)",
    security(("bearer" = ["service:order store-order:cancel"])),
    params(("orderId" = i64, Path, description = "The order's id")),
    request_body = contracts::wire::StoreCancelRequest,
    responses(
        (status = 200, description = "Cancelled", body = StoreCancelled),
        (status = 409, description = "The store decided first; the body names its decision", body = Problem, content_type = PROBLEM_JSON),
        BadParams, BadBody, Forbidden
    )
)]
async fn cancel(
    State(svc): State<StoreService>,
    caller: platform::ServiceCaller,
    ApiPath(order_id): ApiPath<i64>,
    body: platform::JsonBody,
) -> Result<Json<StoreCancelled>, ApiError> {
    caller.require(platform::service_auth::STORE_ORDER_CANCEL)?;
    let req: contracts::wire::StoreCancelRequest = body.parse()?;
    let facts = contracts::event::OrderFacts {
        order_id,
        menu_name: req.menu_name,
        qty: req.qty,
        price: req.price,
        address: req.address,
        store_id: req.store_id,
        customer_id: req.customer_id,
        correlation_id: req.correlation_id,
    };
    svc.cancel(facts, req.actor).await.map_err(problem)?;
    Ok(Json(StoreCancelled {
        order_id,
        cook_status: StoreOrderStatus::Cancelled,
    }))
}
