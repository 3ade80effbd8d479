//! The requests and answers of the synchronous calls between services:
//! Order charging through Payment (`POST /payments`), asking Store to cancel
//! (`PUT /storeOrders/{id}/cancel`) and reading its menu (`GET /menus...`).
//! Both sides use these types, so a renamed field fails to compile.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A charge the order service asks for: the amount is trusted.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PayRequest {
    pub order_id: i64,
    pub customer_id: i64,
    pub store_id: i64,
    #[schema(minimum = 0)]
    pub price: i64,
    pub menu_name: String,
    #[schema(minimum = 1)]
    pub qty: i64,
    pub address: String,
    pub correlation_id: Option<Uuid>,
    pub card: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum PaymentStatus {
    Approved,
    Declined,
    Refunded,
    /// The order gave up before any payment arrived; a late one is refused.
    Voided,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Approved => "Approved",
            PaymentStatus::Declined => "Declined",
            PaymentStatus::Refunded => "Refunded",
            PaymentStatus::Voided => "Voided",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentStatus> {
        match s {
            "Approved" => Some(PaymentStatus::Approved),
            "Declined" => Some(PaymentStatus::Declined),
            "Refunded" => Some(PaymentStatus::Refunded),
            "Voided" => Some(PaymentStatus::Voided),
            _ => None,
        }
    }
}

/// A payment: Payment's answer to a charge, and what its readers see.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub id: i64,
    pub order_id: i64,
    pub customer_id: i64,
    pub store_id: i64,
    /// Total in KRW; the seed called it `price`.
    pub price: i64,
    pub menu_name: String,
    pub qty: i64,
    pub address: String,
    pub payment_status: PaymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_last4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The order service's cancel of an order, with the order's facts.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreCancelRequest {
    pub store_id: i64,
    pub customer_id: i64,
    pub menu_name: String,
    pub qty: i64,
    pub price: i64,
    pub address: String,
    pub correlation_id: Uuid,
    pub actor: String,
}

/// A menu item, as Store answers `GET /menus/{id}` and `GET /menus`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Menu {
    pub id: i64,
    pub store_id: i64,
    pub store_name: String,
    pub name: String,
    /// KRW per item.
    pub price: i64,
    pub available: bool,
}
