//! Order's HTTP API: the seed's paths.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Extension, Json, Router};
use contracts::event::OrderFacts;
use contracts::{OrderStatus, Role};
use platform::openapi::{
    BadBody, BadParams, Common, Conflict, Forbidden, NotFound, Problem, PROBLEM_JSON,
};
use platform::sql;
use platform::{ApiError, ApiPath, ApiQuery, JsonBody, Principal};
use serde::Deserialize;
use serde_json::json;

use crate::clients::{ClientError, StoreCancel};
use crate::domain::OrderAction;
use crate::placement::{self, NewOrder, Placed};
use crate::record::{self, ChangeError, Order, COLUMNS};
use crate::OrderService;
use platform::idempotency::IdempotencyKey;

/// The largest quantity one order line may carry.
pub const MAX_QTY: i64 = 100;
pub const MAX_ADDRESS_LEN: usize = 200;

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
    menu_id: Option<i64>,
    menu_name: Option<String>,
    #[schema(minimum = 1, maximum = 100)]
    qty: i64,
    /// Where to deliver; 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    address: String,
    /// Card number, 12 to 19 digits with spaces or dashes between; none or
    /// blank for the demo card. `4000-0000-0000-0002` is always declined.
    #[schema(pattern = r"^\s*$|^\s*[ -]*(?:[0-9][ -]*){12,19}\s*$")]
    card: Option<String>,
    /// Accepted for clients of the original system, and ignored: the price
    /// comes from the menu.
    #[allow(dead_code)]
    price: Option<serde_json::Value>,
    #[allow(dead_code)]
    order_status: Option<serde_json::Value>,
    #[allow(dead_code)]
    order_id: Option<serde_json::Value>,
}

fn change_error(e: ChangeError) -> ApiError {
    match e {
        ChangeError::NotFound(id) => ApiError::not_found(format!("order {id} not found")),
        ChangeError::Illegal(t) => ApiError::conflict(t.to_string(), t.current.as_str()),
        ChangeError::Db(e) => e.into(),
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
    if req.qty < 1 || req.qty > MAX_QTY {
        return Err(ApiError::unprocessable(format!(
            "qty must be between 1 and {MAX_QTY}"
        )));
    }
    let address = req.address.trim().to_string();
    if address.is_empty() {
        return Err(ApiError::unprocessable("address is required"));
    }
    if address.chars().count() > MAX_ADDRESS_LEN {
        return Err(ApiError::unprocessable(format!(
            "address is longer than {MAX_ADDRESS_LEN} characters"
        )));
    }
    let card = match req.card.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => {
            let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
            if !(12..=19).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(ApiError::unprocessable("card must be 12 to 19 digits"));
            }
            Some(digits)
        }
    };
    let unavailable = |e: ClientError| {
        ApiError::dependency_unavailable("store", "the store is unavailable; try again shortly")
            .retry_after(1)
            .caused_by(e)
    };
    let menu = match (req.menu_id, req.menu_name.as_deref()) {
        (Some(id), _) => svc.store.menu_by_id(id).await.map_err(unavailable)?,
        (None, Some(name)) => svc
            .store
            .menu_by_name(name.trim())
            .await
            .map_err(unavailable)?,
        (None, None) => return Err(ApiError::unprocessable("menuId or menuName is required")),
    };
    let Some(menu) = menu else {
        return Err(ApiError::unprocessable("no such menu item"));
    };
    if !menu.available {
        return Err(ApiError::unprocessable(format!(
            "{} is sold out",
            menu.name
        )));
    }
    let price = menu
        .price
        .checked_mul(req.qty)
        .ok_or_else(|| ApiError::unprocessable("order total is too large"))?;
    let new = NewOrder {
        customer_id: who.user_id,
        menu,
        qty: req.qty,
        price,
        address,
        card,
        actor: who.actor(),
        idempotency_key: key.map(|Extension(IdempotencyKey(k))| k),
    };
    match placement::place(&svc, new).await? {
        Placed::Paid(order) | Placed::AsItStands(order) => Ok((StatusCode::CREATED, Json(order))),
        Placed::Declined { order, reason } => Err(ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "Payment declined",
            format!("the card was declined: {reason}"),
        )
        .with("orderId", json!(order.id))
        .with("currentStatus", json!(order.status))),
        Placed::NotPlaced { order, why } => Err(ApiError::dependency_unavailable(
            "payment",
            "payment did not answer in time: the order was not placed, and a charge that went through anyway is refunded automatically; try again",
        )
        .retry_after(1)
        .caused_by(why)
        .with("orderId", json!(order.id))),
    }
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
    let (filter, owner_id) = match who.role {
        Role::Customer => ("customer_id = ?", who.user_id),
        Role::Owner => ("store_id = ?", who.store_id.unwrap_or(-1)),
        Role::Admin => ("?1 = ?1", 0),
        Role::Rider => return Err(ApiError::forbidden("riders see deliveries, not orders")),
    };
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            OrderStatus::parse(s)
                .ok_or_else(|| ApiError::bad_request(format!("unknown status {s}")))?,
        ),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let offset = q.offset.unwrap_or(0).max(0);
    let sql = format!(
        "SELECT {COLUMNS} FROM orders WHERE {filter} AND (?2 IS NULL OR status = ?2) ORDER BY id DESC LIMIT ?3 OFFSET ?4"
    );
    let rows = sql::query(&sql)
        .bind(owner_id)
        .bind(status.map(|s| s.as_str()))
        .bind(limit)
        .bind(offset)
        .fetch_all(&svc.db)
        .await?;
    Ok(Json(rows.iter().map(Order::from_row).collect()))
}

/// The order if `who` may see it; someone else's order is answered 404, as
/// if it did not exist, so ids reveal nothing.
async fn visible(svc: &OrderService, who: &Principal, id: i64) -> Result<Order, ApiError> {
    let order = svc
        .db
        .read(|conn| Box::pin(record::load(conn, id)))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("order {id} not found")))?;
    let mine = match who.role {
        Role::Admin => true,
        Role::Customer => order.customer_id == who.user_id,
        Role::Owner => Some(order.store_id) == who.store_id,
        Role::Rider => false,
    };
    if mine {
        Ok(order)
    } else {
        Err(ApiError::not_found(format!("order {id} not found")))
    }
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
    Ok(Json(cancel_order(&svc, order, &who.actor(), None).await?))
}

/// Cancels an order the store has not accepted: the store decides first
/// (so a racing accept and cancel have one winner), then the order commits
/// `Cancelled` with `MenuCancelled`, which refunds the payment.
pub async fn cancel_order(
    svc: &OrderService,
    order: Order,
    actor: &str,
    reason: Option<&str>,
) -> Result<Order, ApiError> {
    if order.status != OrderStatus::Ordered {
        let t = crate::domain::next(order.status, OrderAction::Cancel).err();
        let detail = t
            .map(|t| t.to_string())
            .unwrap_or_else(|| "cannot cancel".into());
        return Err(ApiError::conflict(detail, order.status.as_str()));
    }
    let facts: OrderFacts = order.facts();
    match svc.store.cancel(facts, actor.to_string()).await {
        Ok(StoreCancel::Cancelled) => {}
        Ok(StoreCancel::TooLate { status }) => {
            return Err(ApiError::conflict(
                format!(
                    "cannot cancel: the store has already {}",
                    describe_store_decision(status)
                ),
                status.as_str(),
            ))
        }
        Err(e) => {
            return Err(ApiError::dependency_unavailable(
                "store",
                "the store did not answer the cancel; if it agreed, the order is cancelled and refunded automatically, so check the order before trying again",
            )
            .retry_after(1)
            .caused_by(e))
        }
    }
    let (svc, actor, reason, id) = (
        svc.clone(),
        actor.to_string(),
        reason.map(str::to_string),
        order.id,
    );
    let order = svc
        .db
        .write(move |tx| {
            Box::pin(async move {
                // The store's `StoreOrderCancelled` may have cancelled it
                // already, through Order's consumer: the same outcome.
                record::follow(
                    tx,
                    id,
                    OrderAction::StoreCancelled,
                    &actor,
                    reason.as_deref(),
                )
                .await
                .map_err(change_error)
            })
        })
        .await?;
    Ok(order)
}

fn describe_store_decision(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Rejected => "rejected the order",
        OrderStatus::Cancelled => "cancelled the order",
        _ => "accepted the order and is cooking",
    }
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
                record::change(tx, id, OrderAction::Confirm, &actor, None)
                    .await
                    .map_err(change_error)
            })
        })
        .await?;
    Ok(Json(order))
}
