//! Order's HTTP API, the seed's paths: each handler extracts and parses,
//! calls placement, cancellation or storage, and answers; every
//! [`OrderError`] becomes problem+json in `problem`, and only there.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Extension, Json, Router};
use contracts::values::{Address, Card, Id, Qty};
use contracts::{OrderStatus, Role};
use platform::idempotency::IdempotencyKey;
use platform::list_query;
use platform::openapi::{
    BadBody, BadParams, Common, Conflict, Forbidden, NotFound, Problem, PROBLEM_JSON,
};
use platform::{ApiError, ApiPath, ApiQuery, JsonBody, Principal};
use serde::Deserialize;
use serde_json::json;

use crate::domain::{self, OrderAction};
use crate::error::OrderError;
use crate::placement::{self, MenuChoice};
use crate::storage::{self, Order};
use crate::{cancellation, OrderService};

/// Order's operations, as `/openapi.json` describes them.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(place, list, show, cancel, confirm),
    modifiers(&Common, &OneMenuItem),
    tags((name = "order", description = "Customers place, cancel and confirm orders"))
)]
pub struct OrderApi;

/// A new order names its item by `menuId` or by `menuName` (not null):
/// said in the schema as `allOf: [the fields, anyOf: [menuId, menuName]]`.
struct OneMenuItem;

impl utoipa::Modify for OneMenuItem {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema, Type};
        let Some(components) = doc.components.as_mut() else {
            return;
        };
        let Some(fields) = components.schemas.remove("PlaceOrder") else {
            return;
        };
        let named_by = |field: &str, kind: Type| {
            ObjectBuilder::new()
                .property(field, ObjectBuilder::new().schema_type(kind))
                .required(field)
        };
        let one_of_them = AnyOfBuilder::new()
            .item(named_by("menuId", Type::Integer))
            .item(named_by("menuName", Type::String));
        components.schemas.insert(
            "PlaceOrder".into(),
            utoipa::openapi::RefOr::T(Schema::AllOf(
                AllOfBuilder::new().item(fields).item(one_of_them).build(),
            )),
        );
    }
}

pub fn router(service: OrderService) -> Router {
    Router::new()
        .route("/orders", get(list).post(place))
        .route("/orders/{id}", get(show))
        .route("/orders/{id}/cancel", put(cancel))
        .route("/orders/{id}/confirm", put(confirm))
        .with_state(service)
}

/// A new order: one menu item, by id or by name.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"menuId": 1, "qty": 2, "address": "Seoul, Jung-gu 1", "card": "4111-1111-1111-1111"}))]
struct PlaceOrder {
    #[schema(value_type = Option<i64>, minimum = 1)]
    menu_id: Option<Id>,
    menu_name: Option<String>,
    #[schema(value_type = i64, minimum = 1, maximum = 100)]
    qty: Qty,
    /// Where to deliver; 1 to 200 characters.
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    address: Address,
    /// Card number, 12 to 19 digits with spaces or dashes between; none or
    /// blank for the demo card. `4000-0000-0000-0002` is always declined.
    #[schema(value_type = Option<String>, pattern = r"^\s*$|^\s*[ -]*(?:[0-9][ -]*){12,19}\s*$")]
    card: Option<Card>,
    /// Accepted for clients of the original system, and ignored: the price
    /// comes from the menu.
    #[allow(dead_code)]
    price: Option<serde_json::Value>,
    #[allow(dead_code)]
    order_status: Option<serde_json::Value>,
    #[allow(dead_code)]
    order_id: Option<serde_json::Value>,
}

/// The one mapping from Order's errors to problem+json.
fn problem(e: OrderError) -> ApiError {
    match e {
        OrderError::Invalid(detail) => ApiError::unprocessable(detail),
        OrderError::NotFound(id) => ApiError::not_found(format!("order {id} not found")),
        OrderError::Forbidden(why) => ApiError::forbidden(why),
        OrderError::Illegal(t) => ApiError::conflict(t.to_string(), t.current.as_str()),
        OrderError::StoreDecided(status) => ApiError::conflict(e.to_string(), status.as_str()),
        OrderError::StoreUnavailable(why) => {
            ApiError::dependency_unavailable("store", "the store is unavailable; try again shortly")
                .retry_after(1)
                .caused_by(why)
        }
        OrderError::CancelUnanswered(why) => ApiError::dependency_unavailable(
            "store",
            "the store did not answer the cancel; if it agreed, the order is cancelled and refunded automatically, so check the order before trying again",
        )
        .retry_after(1)
        .caused_by(why),
        OrderError::Declined {
            order_id,
            status,
            ref reason,
        } => ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "Payment declined",
            format!("the card was declined: {reason}"),
        )
        .with("orderId", json!(order_id))
        .with("currentStatus", json!(status)),
        OrderError::NotPlaced { order_id, why } => ApiError::dependency_unavailable(
            "payment",
            "payment did not answer in time: the order was not placed, and a charge that went through anyway is refunded automatically; try again",
        )
        .retry_after(1)
        .caused_by(why)
        .with("orderId", json!(order_id)),
        OrderError::Db(e) => e.into(),
        OrderError::Internal(detail) => ApiError::internal(detail),
    }
}

#[utoipa::path(
    post,
    path = "/orders",
    tag = "order",
    summary = "Place an order and pay for it",
    security(("bearer" = ["customer"])),
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 191,
        pattern = r"^[\x21-\x7E](?:[\x20-\x7E]*[\x21-\x7E])?$",
        description = "Makes a retry safe: the same key and body answer the first answer again (1 to 191 visible characters)")),
    request_body = PlaceOrder,
    responses(
        (status = 201, description = "Placed and paid", body = Order),
        (status = 402, description = "The card was declined; the body names the order", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "A request with this Idempotency-Key is still running", body = Problem, content_type = PROBLEM_JSON),
        BadBody, Forbidden
    )
)]
async fn place(
    State(svc): State<OrderService>,
    who: Principal,
    key: Option<Extension<IdempotencyKey>>,
    body: JsonBody,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    who.require(&[Role::Customer])?;
    let req: PlaceOrder = body.parse()?;
    let menu = match (req.menu_id, req.menu_name) {
        (Some(id), _) => MenuChoice::Id(id),
        (None, Some(name)) => MenuChoice::Name(name),
        (None, None) => return Err(ApiError::unprocessable("menuId or menuName is required")),
    };
    let request = placement::Request {
        customer_id: who.user_id,
        actor: who.actor(),
        menu,
        qty: req.qty,
        address: req.address,
        card: req.card,
        idempotency_key: key.map(|Extension(IdempotencyKey(k))| k),
    };
    let order = placement::place(&svc, request).await.map_err(problem)?;
    Ok((StatusCode::CREATED, Json(order)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only orders in this status.
    #[param(value_type = Option<OrderStatus>)]
    status: Option<String>,
    /// At most this many (1 to 1000, default 100).
    limit: Option<i64>,
    /// Skip this many, newest first.
    offset: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/orders",
    tag = "order",
    summary = "The caller's orders (a customer's own, an owner's store's, all for an admin)",
    security(("bearer" = ["customer", "owner", "admin"])),
    params(ListQuery),
    responses((status = 200, description = "Newest first", body = Vec<Order>), BadParams, Forbidden)
)]
async fn list(
    State(svc): State<OrderService>,
    who: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Order>>, ApiError> {
    let owner = domain::listed_for(who.role, who.user_id, who.store_id)
        .ok_or_else(|| problem(OrderError::Forbidden("riders see deliveries, not orders")))?;
    let status = list_query::status_filter(q.status.as_deref(), OrderStatus::parse)?;
    let page = list_query::Page::of(q.limit, q.offset);
    let orders = storage::list(&svc.db, owner, status, page.limit, page.offset)
        .await
        .map_err(|e| problem(e.into()))?;
    Ok(Json(orders))
}

/// The order if `who` may see it; someone else's order is answered 404, as
/// if it did not exist, so ids reveal nothing.
async fn visible(svc: &OrderService, who: &Principal, id: i64) -> Result<Order, ApiError> {
    let order = svc
        .db
        .read(|conn| Box::pin(storage::load(conn, id)))
        .await?
        .filter(|o| {
            domain::may_see(
                who.role,
                who.user_id,
                who.store_id,
                o.customer_id,
                o.store_id,
            )
        });
    order.ok_or_else(|| problem(OrderError::NotFound(id)))
}

#[utoipa::path(
    get,
    path = "/orders/{id}",
    tag = "order",
    summary = "One order",
    security(("bearer" = ["customer", "owner", "admin"])),
    params(("id" = i64, Path, description = "The order's id")),
    responses((status = 200, description = "The order", body = Order), BadParams, NotFound)
)]
async fn show(
    State(svc): State<OrderService>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Order>, ApiError> {
    Ok(Json(visible(&svc, &who, id).await?))
}

#[utoipa::path(
    put,
    path = "/orders/{id}/cancel",
    tag = "order",
    summary = "Cancel an order the store has not accepted; the payment is refunded",
    security(("bearer" = ["customer", "admin"])),
    params(("id" = i64, Path, description = "The order's id")),
    responses((status = 200, description = "The order", body = Order), BadParams, Forbidden, NotFound, Conflict)
)]
async fn cancel(
    State(svc): State<OrderService>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Order>, ApiError> {
    who.require(&[Role::Customer, Role::Admin])?;
    let order = visible(&svc, &who, id).await?;
    let order = cancellation::cancel(&svc, order, &who.actor(), None)
        .await
        .map_err(problem)?;
    Ok(Json(order))
}

#[utoipa::path(
    put,
    path = "/orders/{id}/confirm",
    tag = "order",
    summary = "Confirm a delivered order was received",
    security(("bearer" = ["customer"])),
    params(("id" = i64, Path, description = "The order's id")),
    responses((status = 200, description = "The order", body = Order), BadParams, Forbidden, NotFound, Conflict)
)]
async fn confirm(
    State(svc): State<OrderService>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Order>, ApiError> {
    who.require(&[Role::Customer])?;
    visible(&svc, &who, id).await?;
    let actor = who.actor();
    let order = svc
        .db
        .write(move |tx| {
            Box::pin(async move {
                storage::change(tx, id, OrderAction::Confirm, &actor, None)
                    .await
                    .map_err(OrderError::from)
            })
        })
        .await
        .map_err(problem)?;
    Ok(Json(order))
}
