//! The status view's rules, with no storage and no HTTP: which status an
//! event means, how the timeline moves forward when events arrive out of
//! order, what the payment column says, who may see which orders, and how
//! large a page is.

use contracts::{EventType, OrderStatus, Role};

/// The order status an event means, if it changes it.
pub fn status_after(event_type: EventType) -> Option<OrderStatus> {
    Some(match event_type {
        EventType::MenuOrdered => OrderStatus::Ordered,
        EventType::CookStarted => OrderStatus::Accepted,
        EventType::OrderRejected => OrderStatus::Rejected,
        EventType::CookFinished => OrderStatus::Cooked,
        EventType::DeliveryStarted => OrderStatus::PickedUp,
        EventType::DeliveryCompleted => OrderStatus::Delivered,
        EventType::OrderConfirmed => OrderStatus::Confirmed,
        EventType::MenuCancelled => OrderStatus::Cancelled,
        EventType::OrderPaymentFailed => OrderStatus::PaymentFailed,
        EventType::PaymentAgreed | EventType::PaymentCancelled | EventType::StoreOrderCancelled => {
            return None
        }
    })
}

/// How far along its life an order is. Events of different services can
/// reach the view in another order than they happened (redelivery, several
/// relays), so the view only ever moves an order forward; the endings rank
/// above every step.
pub fn rank(status: OrderStatus) -> u8 {
    match status {
        OrderStatus::PaymentPending => 0,
        OrderStatus::Ordered => 1,
        OrderStatus::Accepted => 2,
        OrderStatus::Cooked => 3,
        OrderStatus::PickedUp => 4,
        OrderStatus::Delivered => 5,
        OrderStatus::Confirmed => 6,
        OrderStatus::Rejected | OrderStatus::Cancelled | OrderStatus::PaymentFailed => 7,
    }
}

/// What the view says of an order's payment: it hears of it only from
/// Payment's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentState {
    Approved,
    Refunded,
}

impl PaymentState {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentState::Approved => "Approved",
            PaymentState::Refunded => "Refunded",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentState> {
        [PaymentState::Approved, PaymentState::Refunded]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// The payment state an event means, if it says anything of the payment.
pub fn payment_after(event_type: EventType) -> Option<PaymentState> {
    match event_type {
        EventType::PaymentAgreed => Some(PaymentState::Approved),
        EventType::PaymentCancelled => Some(PaymentState::Refunded),
        _ => None,
    }
}

/// What one event changes in an order's row and timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update {
    /// The order's new status; None keeps the stored one (or, for an order
    /// the view has not seen, starts it at PaymentPending: the payment can
    /// be approved before the order is placed).
    pub status: Option<OrderStatus>,
    pub payment: Option<PaymentState>,
    /// What the timeline's entry says: the status the event means, even
    /// when the order is already past it, else the payment's state.
    pub noted: Option<&'static str>,
}

/// The update for an event of `event_type` reaching an order the view has
/// at `current` (None: not seen yet).
pub fn update(current: Option<OrderStatus>, event_type: EventType) -> Update {
    let after = status_after(event_type);
    let payment = payment_after(event_type);
    let status = match (after, current) {
        (Some(new), Some(old)) if rank(new) <= rank(old) => None,
        (new, _) => new,
    };
    Update {
        status,
        payment,
        noted: after
            .map(OrderStatus::as_str)
            .or(payment.map(PaymentState::as_str)),
    }
}

/// Whose orders a caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Everyone,
    Customer(i64),
    Store(i64),
    Rider(i64),
}

/// An owner without a store sees none: -1 is no store's id.
pub fn scope(role: Role, user_id: i64, store_id: Option<i64>) -> Scope {
    match role {
        Role::Admin => Scope::Everyone,
        Role::Customer => Scope::Customer(user_id),
        Role::Owner => Scope::Store(store_id.unwrap_or(-1)),
        Role::Rider => Scope::Rider(user_id),
    }
}

/// Rows per page when the client names none, and the most it may ask for.
const PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

pub fn page_size(asked: Option<i64>) -> i64 {
    asked.unwrap_or(PAGE).clamp(1, MAX_PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_holds_a_hundred_rows_unless_asked_and_never_more_than_a_thousand() {
        assert_eq!(page_size(None), 100);
        assert_eq!(page_size(Some(20)), 20);
        assert_eq!(page_size(Some(0)), 1);
        assert_eq!(page_size(Some(-5)), 1);
        assert_eq!(page_size(Some(50_000)), 1000);
    }

    #[test]
    fn the_view_moves_an_order_only_forward() {
        let steps = [
            OrderStatus::PaymentPending,
            OrderStatus::Ordered,
            OrderStatus::Accepted,
            OrderStatus::Cooked,
            OrderStatus::PickedUp,
            OrderStatus::Delivered,
            OrderStatus::Confirmed,
        ];
        for pair in steps.windows(2) {
            assert!(rank(pair[0]) < rank(pair[1]), "{pair:?}");
        }
        for end in [
            OrderStatus::Rejected,
            OrderStatus::Cancelled,
            OrderStatus::PaymentFailed,
        ] {
            assert!(steps.iter().all(|s| rank(*s) < rank(end)), "{end:?}");
        }
    }

    /// Given the status the view holds, when an event arrives, then the
    /// row's status, its payment and the timeline's entry.
    #[test]
    fn given_a_stored_status_when_an_event_arrives_then_the_update() {
        use EventType as E;
        use OrderStatus as S;
        let approved = Some(PaymentState::Approved);
        let table = [
            // A new order, in the order things happen.
            (None, E::PaymentAgreed, None, approved, Some("Approved")),
            (
                None,
                E::MenuOrdered,
                Some(S::Ordered),
                None,
                Some("Ordered"),
            ),
            (
                Some(S::Ordered),
                E::CookStarted,
                Some(S::Accepted),
                None,
                Some("Accepted"),
            ),
            (
                Some(S::Cooked),
                E::DeliveryStarted,
                Some(S::PickedUp),
                None,
                Some("PickedUp"),
            ),
            // A late event keeps the status but still enters the timeline.
            (
                Some(S::Delivered),
                E::CookFinished,
                None,
                None,
                Some("Cooked"),
            ),
            (
                Some(S::Accepted),
                E::MenuOrdered,
                None,
                None,
                Some("Ordered"),
            ),
            // The same event twice changes the status once.
            (
                Some(S::Ordered),
                E::MenuOrdered,
                None,
                None,
                Some("Ordered"),
            ),
            // An ending wins over any step, and nothing moves past it.
            (
                Some(S::Cooked),
                E::MenuCancelled,
                Some(S::Cancelled),
                None,
                Some("Cancelled"),
            ),
            (
                Some(S::Cancelled),
                E::DeliveryCompleted,
                None,
                None,
                Some("Delivered"),
            ),
            (
                Some(S::Cancelled),
                E::PaymentCancelled,
                None,
                Some(PaymentState::Refunded),
                Some("Refunded"),
            ),
        ];
        for (given, when, status, payment, noted) in table {
            assert_eq!(
                update(given, when),
                Update {
                    status,
                    payment,
                    noted
                },
                "{given:?} + {when}"
            );
        }
    }

    #[test]
    fn every_event_about_the_order_or_its_payment_enters_the_timeline() {
        for t in EventType::ALL {
            let noted = update(None, t).noted;
            assert_eq!(noted.is_none(), t == EventType::StoreOrderCancelled, "{t}");
        }
    }

    #[test]
    fn payment_states_read_back_as_written() {
        for p in [PaymentState::Approved, PaymentState::Refunded] {
            assert_eq!(PaymentState::parse(p.as_str()), Some(p));
        }
        assert_eq!(PaymentState::parse("Declined"), None);
    }

    #[test]
    fn callers_see_their_own_orders_and_admins_all() {
        assert_eq!(scope(Role::Admin, 5, None), Scope::Everyone);
        assert_eq!(scope(Role::Customer, 5, None), Scope::Customer(5));
        assert_eq!(scope(Role::Owner, 2, Some(1)), Scope::Store(1));
        assert_eq!(scope(Role::Owner, 2, None), Scope::Store(-1));
        assert_eq!(scope(Role::Rider, 4, None), Scope::Rider(4));
    }
}
