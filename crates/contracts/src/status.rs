use serde::{Deserialize, Serialize};

/// The customer-facing status of an order, as the original system named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum OrderStatus {
    PaymentPending,
    Ordered,
    Accepted,
    Rejected,
    Cooked,
    PickedUp,
    Delivered,
    Confirmed,
    Cancelled,
    PaymentFailed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 10] = [
        OrderStatus::PaymentPending,
        OrderStatus::Ordered,
        OrderStatus::Accepted,
        OrderStatus::Rejected,
        OrderStatus::Cooked,
        OrderStatus::PickedUp,
        OrderStatus::Delivered,
        OrderStatus::Confirmed,
        OrderStatus::Cancelled,
        OrderStatus::PaymentFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PaymentPending => "PaymentPending",
            OrderStatus::Ordered => "Ordered",
            OrderStatus::Accepted => "Accepted",
            OrderStatus::Rejected => "Rejected",
            OrderStatus::Cooked => "Cooked",
            OrderStatus::PickedUp => "PickedUp",
            OrderStatus::Delivered => "Delivered",
            OrderStatus::Confirmed => "Confirmed",
            OrderStatus::Cancelled => "Cancelled",
            OrderStatus::PaymentFailed => "PaymentFailed",
        }
    }

    pub fn parse(s: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// No further change can happen to an order in a final status.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Rejected
                | OrderStatus::Confirmed
                | OrderStatus::Cancelled
                | OrderStatus::PaymentFailed
        )
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_name() {
        for st in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(st.as_str()), Some(st));
            let json = serde_json::to_string(&st).expect("serialize");
            assert_eq!(json, format!("\"{}\"", st.as_str()));
        }
        assert_eq!(OrderStatus::parse("ordered"), None);
    }
}
