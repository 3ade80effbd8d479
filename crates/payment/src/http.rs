//! Payment's HTTP API: the customer's payments, and `POST /payments` for
//! the order service when it runs as its own process. Each handler
//! extracts, asks the domain and storage, and answers; every
//! [`PaymentError`] becomes problem+json in `problem`, and only there.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use contracts::event::OrderFacts;
use contracts::order_access;
use contracts::wire::PayRequest;
use platform::deadline::Deadline;
use platform::openapi::{BadBody, BadParams, Common, Forbidden, NotFound};
use platform::service_auth::PAYMENT_CHARGE;
use platform::{ApiError, ApiPath, JsonBody, Principal, ServiceCaller};
use uuid::Uuid;

use crate::domain;
use crate::error::PaymentError;
use crate::storage::{self, Payment};
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

/// The one mapping from Payment's errors to problem+json.
fn problem(e: PaymentError) -> ApiError {
    match e {
        PaymentError::Invalid(detail) => ApiError::unprocessable(detail),
        PaymentError::NotFound(_) => ApiError::not_found(e.to_string()),
        PaymentError::Forbidden(why) => ApiError::forbidden(why),
        PaymentError::DeadlinePassed => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Deadline passed",
            e.to_string(),
        ),
        PaymentError::Db(e) => e.into(),
    }
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
    domain::check_charge(req.price, req.qty).map_err(|why| problem(PaymentError::Invalid(why)))?;
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
        .await
        .map_err(problem)?;
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
    let owner = order_access::listed_for(who.role, who.user_id, who.store_id)
        .ok_or_else(|| problem(PaymentError::Forbidden("riders see no payments")))?;
    Ok(Json(storage::list(&svc.db, owner).await?))
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
    // Someone else's payment is answered 404, as if it did not exist.
    let payment = svc
        .db
        .read(|conn| Box::pin(storage::by_order(conn, order_id)))
        .await?
        .filter(|p| {
            order_access::may_see(
                who.role,
                who.user_id,
                who.store_id,
                p.customer_id,
                p.store_id,
            )
        });
    payment
        .map(Json)
        .ok_or_else(|| problem(PaymentError::NotFound(order_id)))
}
