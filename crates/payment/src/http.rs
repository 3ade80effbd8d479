//! Payment's HTTP API: the customer's payments, and `POST /payments` for
//! the order service when it runs as its own process.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use contracts::event::OrderFacts;
use contracts::Role;
use platform::deadline::Deadline;
use platform::openapi::{BadBody, BadParams, Common, Forbidden, NotFound};
use platform::service_auth::PAYMENT_CHARGE;
use platform::sql;
use platform::{ApiError, ApiPath, JsonBody, Principal, ServiceCaller};
use uuid::Uuid;

use contracts::wire::PayRequest;

use crate::record::{Payment, COLUMNS};
use crate::PaymentService;

/// Payment's operations, as `/openapi.json` describes them.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(pay, list, show),
    modifiers(&Common),
    tags((name = "payment", description = "Charges and refunds of orders"))
)]
pub struct PaymentApi;

pub fn router(service: PaymentService) -> Router {
    Router::new()
        .route("/payments", get(list).post(pay))
        .route("/payments/{orderId}", get(show))
        .with_state(service)
}

/// Only the order service may charge (its service token with the
/// `payment:charge` scope): the amount here is trusted. A user's token, even
/// an admin's, is refused.
#[utoipa::path(
    post,
    path = "/payments",
    tag = "payment",
    summary = "Charge an order (the order service only, with its service token)",
    security(("bearer" = ["service:order payment:charge"])),
    request_body = PayRequest,
    responses((status = 201, description = "The payment, approved or declined", body = Payment), BadBody, Forbidden)
)]
async fn pay(
    State(svc): State<PaymentService>,
    caller: ServiceCaller,
    deadline: Deadline,
    body: JsonBody,
) -> Result<(StatusCode, Json<Payment>), ApiError> {
    caller.require(PAYMENT_CHARGE)?;
    let req: PayRequest = body.parse()?;
    if req.price < 0 || req.qty < 1 {
        return Err(ApiError::unprocessable("price must be >= 0 and qty >= 1"));
    }
    let facts = OrderFacts {
        order_id: req.order_id,
        menu_name: req.menu_name,
        qty: req.qty,
        price: req.price,
        address: req.address,
        store_id: req.store_id,
        customer_id: req.customer_id,
        correlation_id: req.correlation_id.unwrap_or_else(Uuid::now_v7),
    };
    let payment = svc
        .pay(facts, req.card, Principal::system().actor(), deadline)
        .await?;
    Ok((StatusCode::CREATED, Json(payment)))
}

#[utoipa::path(
    get,
    path = "/payments",
    tag = "payment",
    summary = "The caller's payments (a customer's own, an owner's store's, all for an admin)",
    security(("bearer" = ["customer", "owner", "admin"])),
    responses((status = 200, description = "Newest first", body = Vec<Payment>), Forbidden)
)]
async fn list(
    State(svc): State<PaymentService>,
    who: Principal,
) -> Result<Json<Vec<Payment>>, ApiError> {
    let (filter, id) = match who.role {
        Role::Customer => ("customer_id = ?", who.user_id),
        Role::Owner => ("store_id = ?", who.store_id.unwrap_or(-1)),
        Role::Admin => ("? = 0", 0),
        Role::Rider => return Err(ApiError::forbidden("riders see no payments")),
    };
    let rows = sql::query(format!(
        "SELECT {COLUMNS} FROM payments WHERE {filter} ORDER BY id DESC LIMIT 1000"
    ))
    .bind(id)
    .fetch_all(&svc.db)
    .await?;
    let payments = rows
        .iter()
        .map(crate::record::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(payments))
}

#[utoipa::path(
    get,
    path = "/payments/{orderId}",
    tag = "payment",
    summary = "The payment of one order",
    security(("bearer" = ["customer", "owner", "admin"])),
    params(("orderId" = i64, Path, description = "The order's id")),
    responses((status = 200, description = "The payment", body = Payment), BadParams, NotFound)
)]
async fn show(
    State(svc): State<PaymentService>,
    who: Principal,
    ApiPath(order_id): ApiPath<i64>,
) -> Result<Json<Payment>, ApiError> {
    let payment = svc
        .db
        .read(|conn| Box::pin(crate::record::by_order(conn, order_id)))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no payment for order {order_id}")))?;
    let mine = match who.role {
        Role::Admin => true,
        Role::Customer => payment.customer_id == who.user_id,
        Role::Owner => Some(payment.store_id) == who.store_id,
        Role::Rider => false,
    };
    if !mine {
        return Err(ApiError::not_found(format!(
            "no payment for order {order_id}"
        )));
    }
    Ok(Json(payment))
}
