//! The event every service publishes and consumes: one flat JSON object, as
//! in the original system, so its consumers can read ours.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    /// Order placed and paid (the seed's name).
    MenuOrdered,
    /// Payment approved.
    PaymentAgreed,
    /// The customer (or the store's silence) cancelled the order.
    MenuCancelled,
    /// Payment refunded.
    PaymentCancelled,
    /// The store accepted the order and started cooking.
    CookStarted,
    /// The store rejected the order (sold out, closed).
    OrderRejected,
    CookFinished,
    /// A rider picked the order up.
    DeliveryStarted,
    DeliveryCompleted,
    /// The customer confirmed receipt.
    OrderConfirmed,
    /// The order gave up on its payment (declined, timed out, unreachable);
    /// a payment that was approved anyway must be refunded.
    OrderPaymentFailed,
    /// The store agreed to a cancel. Order follows it, so a cancel whose
    /// answer was lost on the way (a timeout) still ends cancelled and
    /// refunded; the customer hears of it through `MenuCancelled`.
    StoreOrderCancelled,
}

impl EventType {
    pub const ALL: [EventType; 12] = [
        EventType::MenuOrdered,
        EventType::PaymentAgreed,
        EventType::MenuCancelled,
        EventType::PaymentCancelled,
        EventType::CookStarted,
        EventType::OrderRejected,
        EventType::CookFinished,
        EventType::DeliveryStarted,
        EventType::DeliveryCompleted,
        EventType::OrderConfirmed,
        EventType::OrderPaymentFailed,
        EventType::StoreOrderCancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MenuOrdered => "MenuOrdered",
            EventType::PaymentAgreed => "PaymentAgreed",
            EventType::MenuCancelled => "MenuCancelled",
            EventType::PaymentCancelled => "PaymentCancelled",
            EventType::CookStarted => "CookStarted",
            EventType::OrderRejected => "OrderRejected",
            EventType::CookFinished => "CookFinished",
            EventType::DeliveryStarted => "DeliveryStarted",
            EventType::DeliveryCompleted => "DeliveryCompleted",
            EventType::OrderConfirmed => "OrderConfirmed",
            EventType::OrderPaymentFailed => "OrderPaymentFailed",
            EventType::StoreOrderCancelled => "StoreOrderCancelled",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event. The seed's fields keep their names; ours are added beside
/// them. Fields a given event type does not carry are left out of the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event_type: EventType,
    pub event_id: Uuid,
    /// Epoch milliseconds when the change committed.
    pub timestamp: i64,
    pub order_id: i64,
    /// Row id in the emitting service (the seed's `id`).
    pub id: i64,
    pub menu_name: String,
    pub qty: i64,
    /// Total price in KRW (integer won; never floating point).
    pub price: i64,
    pub address: String,
    pub store_id: i64,
    pub customer_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cook_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rider_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Ties together every event of one order's saga.
    pub correlation_id: Uuid,
    /// Who caused the change: `customer:1`, `owner:2`, `rider:4`, `system`.
    pub actor: String,
    /// Version of the emitting record after this change (1 for its first).
    pub version: i64,
}

/// What every event about an order repeats, so that each consumer can act on
/// an event without asking the emitting service for more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderFacts {
    pub order_id: i64,
    pub menu_name: String,
    pub qty: i64,
    pub price: i64,
    pub address: String,
    pub store_id: i64,
    pub customer_id: i64,
    pub correlation_id: Uuid,
}

impl Event {
    /// A new event about an order; the caller sets the status field that
    /// belongs to its service.
    pub fn new(
        event_type: EventType,
        facts: &OrderFacts,
        id: i64,
        actor: &str,
        version: i64,
        timestamp: i64,
    ) -> Event {
        Event {
            event_type,
            event_id: Uuid::now_v7(),
            timestamp,
            order_id: facts.order_id,
            id,
            menu_name: facts.menu_name.clone(),
            qty: facts.qty,
            price: facts.price,
            address: facts.address.clone(),
            store_id: facts.store_id,
            customer_id: facts.customer_id,
            order_status: None,
            payment_status: None,
            cook_status: None,
            delivery_status: None,
            rider_id: None,
            reason: None,
            correlation_id: facts.correlation_id,
            actor: actor.to_string(),
            version,
        }
    }

    pub fn facts(&self) -> OrderFacts {
        OrderFacts {
            order_id: self.order_id,
            menu_name: self.menu_name.clone(),
            qty: self.qty,
            price: self.price,
            address: self.address.clone(),
            store_id: self.store_id,
            customer_id: self.customer_id,
            correlation_id: self.correlation_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> OrderFacts {
        OrderFacts {
            order_id: 1,
            menu_name: "pizza".into(),
            qty: 10,
            price: 10_000,
            address: "suwon".into(),
            store_id: 1,
            customer_id: 1,
            correlation_id: Uuid::nil(),
        }
    }

    #[test]
    fn event_json_is_flat_and_keeps_the_seed_field_names() {
        let mut ev = Event::new(
            EventType::MenuOrdered,
            &facts(),
            2,
            "customer:1",
            1,
            1658881581353,
        );
        ev.order_status = Some("Ordered".into());
        let json = serde_json::to_value(&ev).expect("serialize");
        for key in [
            "eventType",
            "eventId",
            "timestamp",
            "id",
            "menuName",
            "orderId",
            "address",
            "qty",
            "orderStatus",
            "price",
            "correlationId",
            "actor",
            "version",
        ] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
        assert_eq!(json["eventType"], "MenuOrdered");
        assert!(json.get("cookStatus").is_none());
        let back: Event = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, ev);
    }

    #[test]
    fn every_event_type_round_trips_through_its_name() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
    }
}
