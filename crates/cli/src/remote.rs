//! In the distributed shape, Order's synchronous calls go over HTTP through
//! [`platform::peer::Peer`]: deadline, retries (every call here is safe to
//! repeat: payment is idempotent by order id, cancel by order id) and a
//! circuit breaker. The calls that change state carry a service token of
//! order's own (60 s, addressed to the callee, with the one scope needed).

use std::sync::Arc;

use async_trait::async_trait;
use contracts::event::OrderFacts;
use contracts::OrderStatus;
use order::{
    ClientError, MenuItem, PaymentClient, PaymentOutcome, PaymentRequest, StoreCancel, StoreClient,
};
use platform::peer::{Peer, PeerError};
use platform::service_auth::{PAYMENT_CHARGE, STORE_ORDER_CANCEL};
use platform::ServiceSigner;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn unavailable(e: PeerError) -> ClientError {
    ClientError::Unavailable(e.to_string())
}

fn service_token(signer: &ServiceSigner, callee: &str, scope: &str) -> Result<String, ClientError> {
    signer
        .token(callee, scope)
        .map_err(|e| ClientError::Unavailable(e.detail))
}

pub struct HttpPayment {
    pub peer: Arc<Peer>,
    pub signer: ServiceSigner,
}

#[async_trait]
impl PaymentClient for HttpPayment {
    async fn pay(&self, request: PaymentRequest) -> Result<PaymentOutcome, ClientError> {
        let f = &request.facts;
        let body = json!({
            "orderId": f.order_id, "customerId": f.customer_id, "storeId": f.store_id,
            "price": f.price, "menuName": f.menu_name, "qty": f.qty, "address": f.address,
            "correlationId": f.correlation_id, "card": request.card,
        });
        let token = service_token(&self.signer, "payment", PAYMENT_CHARGE)?;
        let Some(budget) = request.deadline.left() else {
            return Err(ClientError::Unavailable("no deadline for a payment".into()));
        };
        let reply = self
            .peer
            .call_within(
                Method::POST,
                "/payments",
                Some(&token),
                Some(&body),
                true,
                budget,
            )
            .await
            .map_err(unavailable)?;
        if !reply.status.is_success() {
            return Err(ClientError::Unavailable(format!(
                "payment refused the call: {} {}",
                reply.status, reply.body
            )));
        }
        Ok(match reply.body["paymentStatus"].as_str() {
            Some("Approved") => PaymentOutcome::Approved {
                payment_id: reply.body["id"].as_i64().unwrap_or(0),
            },
            _ => PaymentOutcome::Declined {
                reason: reply.body["reason"]
                    .as_str()
                    .unwrap_or("declined")
                    .to_string(),
            },
        })
    }
}

pub struct HttpStore {
    pub peer: Arc<Peer>,
    pub signer: ServiceSigner,
}

fn menu_item(v: &Value) -> Option<MenuItem> {
    Some(MenuItem {
        id: v["id"].as_i64()?,
        store_id: v["storeId"].as_i64()?,
        name: v["name"].as_str()?.to_string(),
        price: v["price"].as_i64()?,
        available: v["available"].as_bool().unwrap_or(false),
    })
}

#[async_trait]
impl StoreClient for HttpStore {
    async fn menu_by_id(&self, id: i64) -> Result<Option<MenuItem>, ClientError> {
        let reply = self
            .peer
            .call(Method::GET, &format!("/menus/{id}"), None, None, true)
            .await
            .map_err(unavailable)?;
        Ok(if reply.status == StatusCode::OK {
            menu_item(&reply.body)
        } else {
            None
        })
    }

    async fn menu_by_name(&self, name: &str) -> Result<Option<MenuItem>, ClientError> {
        let path = format!("/menus?name={}", urlencode(name));
        let reply = self
            .peer
            .call(Method::GET, &path, None, None, true)
            .await
            .map_err(unavailable)?;
        Ok(reply
            .body
            .as_array()
            .and_then(|list| list.first())
            .and_then(menu_item))
    }

    async fn cancel(&self, facts: OrderFacts, actor: String) -> Result<StoreCancel, ClientError> {
        let body = json!({
            "storeId": facts.store_id, "customerId": facts.customer_id, "menuName": facts.menu_name,
            "qty": facts.qty, "price": facts.price, "address": facts.address,
            "correlationId": facts.correlation_id, "actor": actor,
        });
        let token = service_token(&self.signer, "store", STORE_ORDER_CANCEL)?;
        let path = format!("/storeOrders/{}/cancel", facts.order_id);
        let reply = self
            .peer
            .call(Method::PUT, &path, Some(&token), Some(&body), true)
            .await
            .map_err(unavailable)?;
        match reply.status {
            StatusCode::OK => Ok(StoreCancel::Cancelled),
            StatusCode::CONFLICT => {
                let status = reply.body["currentStatus"]
                    .as_str()
                    .and_then(OrderStatus::parse)
                    .unwrap_or(OrderStatus::Accepted);
                Ok(StoreCancel::TooLate { status })
            }
            other => Err(ClientError::Unavailable(format!(
                "store refused the cancel: {other} {}",
                reply.body
            ))),
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
