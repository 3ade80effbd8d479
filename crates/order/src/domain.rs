//! Order's rules, with no storage and no HTTP: the state machine (which
//! action may move an order from which status, and where to), the event
//! each action emits, what an order costs, and who may see it. Everything
//! else in the service asks this.

use contracts::values::{Krw, Qty};
use contracts::EventType;
use contracts::OrderStatus;
use contracts::OrderStatus::*;

use crate::clients::MenuItem;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderAction {
    PaymentApproved,
    PaymentFailed,
    Cancel,
    /// The store agreed to a cancel (its answer may have been lost).
    StoreCancelled,
    StoreAccepted,
    StoreRejected,
    CookFinished,
    PickedUp,
    Delivered,
    Confirm,
}

impl OrderAction {
    pub const ALL: [OrderAction; 10] = [
        OrderAction::PaymentApproved,
        OrderAction::PaymentFailed,
        OrderAction::Cancel,
        OrderAction::StoreCancelled,
        OrderAction::StoreAccepted,
        OrderAction::StoreRejected,
        OrderAction::CookFinished,
        OrderAction::PickedUp,
        OrderAction::Delivered,
        OrderAction::Confirm,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            OrderAction::PaymentApproved => "complete payment",
            OrderAction::PaymentFailed => "fail payment",
            OrderAction::Cancel | OrderAction::StoreCancelled => "cancel",
            OrderAction::StoreAccepted => "accept",
            OrderAction::StoreRejected => "reject",
            OrderAction::CookFinished => "finish cooking",
            OrderAction::PickedUp => "pick up",
            OrderAction::Delivered => "deliver",
            OrderAction::Confirm => "confirm",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} an order that is {}", .action.describe(), .current)]
pub struct IllegalTransition {
    pub current: OrderStatus,
    pub action: OrderAction,
}

/// The status after `action`, or why it is not allowed now.
pub fn next(current: OrderStatus, action: OrderAction) -> Result<OrderStatus, IllegalTransition> {
    use OrderAction as A;
    let to = match (current, action) {
        (PaymentPending, A::PaymentApproved) => Ordered,
        (PaymentPending, A::PaymentFailed) => PaymentFailed,
        // Cancel only before the store accepts (the seed's rule, enforced).
        (Ordered, A::Cancel) => Cancelled,
        (Ordered, A::StoreCancelled) => Cancelled,
        (Ordered, A::StoreAccepted) => Accepted,
        (Ordered, A::StoreRejected) => Rejected,
        (Accepted, A::CookFinished) => Cooked,
        (Cooked, A::PickedUp) => PickedUp,
        (PickedUp, A::Delivered) => Delivered,
        (Delivered, A::Confirm) => Confirmed,
        _ => return Err(IllegalTransition { current, action }),
    };
    Ok(to)
}

/// Where an order stands on the way from the kitchen to the customer.
fn fulfilment_step(status: OrderStatus) -> Option<u8> {
    match status {
        Ordered => Some(0),
        Accepted => Some(1),
        Cooked => Some(2),
        PickedUp => Some(3),
        Delivered => Some(4),
        Confirmed => Some(5),
        _ => None,
    }
}

/// What a fact reported by the store or the delivery service does to an
/// order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Move to this status.
    Advance(OrderStatus),
    /// The order is already at or past what the fact reports: it arrived
    /// after a later one, and changes nothing.
    AlreadyPast,
}

/// Applies a fact from another service. Events from different services
/// can arrive out of order (replicas consume in parallel, a redelivered
/// event comes late), so a fact further along the kitchen-to-door path
/// moves the order there at once, since it implies the steps before it, and a
/// fact the order is already past is a no-op. Facts never move an order
/// that left the path (failed, cancelled, rejected). The customer's own
/// actions still go through [`next`].
pub fn follow(current: OrderStatus, action: OrderAction) -> Result<Follow, IllegalTransition> {
    let reported = match action {
        OrderAction::StoreAccepted => Accepted,
        OrderAction::CookFinished => Cooked,
        OrderAction::PickedUp => PickedUp,
        OrderAction::Delivered => Delivered,
        // The cancel committed already through the store's answer.
        OrderAction::StoreCancelled if current == Cancelled => return Ok(Follow::AlreadyPast),
        _ => return next(current, action).map(Follow::Advance),
    };
    match (fulfilment_step(current), fulfilment_step(reported)) {
        (Some(now), Some(then)) if then > now => Ok(Follow::Advance(reported)),
        (Some(_), Some(_)) => Ok(Follow::AlreadyPast),
        _ => Err(IllegalTransition { current, action }),
    }
}

/// The event an action publishes, if any.
pub fn event_for(action: OrderAction) -> Option<EventType> {
    match action {
        OrderAction::PaymentApproved => Some(EventType::MenuOrdered),
        OrderAction::PaymentFailed => Some(EventType::OrderPaymentFailed),
        OrderAction::Cancel | OrderAction::StoreCancelled => Some(EventType::MenuCancelled),
        OrderAction::Confirm => Some(EventType::OrderConfirmed),
        // The rest mirror another service's event; they publish nothing new.
        _ => None,
    }
}

/// What `qty` of a menu item costs; the price comes from the menu, never
/// from the customer.
pub fn total(item: &MenuItem, qty: Qty) -> Result<Krw, String> {
    if !item.available {
        return Err(format!("{} is sold out", item.name));
    }
    Krw::parse(item.price)
        .ok()
        .and_then(|price| price.times(qty))
        .ok_or_else(|| "order total is too large".to_string())
}

// Who sees an order is Payment's rule too: it lives in `contracts`.
pub use contracts::order_access::{listed_for, may_see, Owner};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Given an order in `given`, when `action` happens, then it moves to
    /// `then` and emits `emits`: the service's rules as one table.
    #[test]
    fn given_a_status_when_an_action_then_a_status_and_its_event() {
        use EventType as E;
        use OrderAction as A;
        let table = [
            (
                PaymentPending,
                A::PaymentApproved,
                Ordered,
                Some(E::MenuOrdered),
            ),
            (
                PaymentPending,
                A::PaymentFailed,
                PaymentFailed,
                Some(E::OrderPaymentFailed),
            ),
            (Ordered, A::Cancel, Cancelled, Some(E::MenuCancelled)),
            (
                Ordered,
                A::StoreCancelled,
                Cancelled,
                Some(E::MenuCancelled),
            ),
            (Ordered, A::StoreAccepted, Accepted, None),
            (Ordered, A::StoreRejected, Rejected, None),
            (Accepted, A::CookFinished, Cooked, None),
            (Cooked, A::PickedUp, PickedUp, None),
            (PickedUp, A::Delivered, Delivered, None),
            (Delivered, A::Confirm, Confirmed, Some(E::OrderConfirmed)),
        ];
        for (given, when, then, emits) in table {
            assert_eq!(next(given, when), Ok(then), "{given:?} + {when:?}");
            assert_eq!(event_for(when), emits, "{when:?}");
        }
        assert!(next(Accepted, A::Cancel).is_err());
        assert!(next(Ordered, A::Confirm).is_err());
    }

    fn item(price: i64, available: bool) -> MenuItem {
        MenuItem {
            id: 1,
            store_id: 1,
            name: "Bibimbap".into(),
            price,
            available,
        }
    }

    #[test]
    fn an_order_costs_the_menu_price_times_the_quantity() {
        let two = Qty::parse(2).expect("qty");
        assert_eq!(total(&item(9000, true), two).map(Krw::get), Ok(18000));
        assert_eq!(
            total(&item(9000, false), two),
            Err("Bibimbap is sold out".into())
        );
        assert!(total(&item(i64::MAX, true), two).is_err());
    }

    #[test]
    fn facts_in_any_order_bring_the_order_to_the_latest() {
        use OrderAction as A;
        let facts = [A::StoreAccepted, A::CookFinished, A::PickedUp, A::Delivered];
        // Every permutation of the four facts ends Delivered.
        let mut orders = vec![vec![]];
        for _ in 0..facts.len() {
            orders = orders
                .into_iter()
                .flat_map(|seen: Vec<A>| {
                    facts
                        .iter()
                        .filter(|f| !seen.contains(f))
                        .map(|f| {
                            let mut next = seen.clone();
                            next.push(*f);
                            next
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
        }
        assert_eq!(orders.len(), 24);
        for sequence in orders {
            let mut s = Ordered;
            for f in &sequence {
                if let Follow::Advance(to) = follow(s, *f).expect("legal") {
                    s = to;
                }
            }
            assert_eq!(s, Delivered, "{sequence:?}");
        }
    }

    #[test]
    fn facts_never_move_an_order_off_the_path_or_back() {
        use OrderAction as A;
        for status in [PaymentPending, PaymentFailed, Cancelled, Rejected] {
            for f in [A::StoreAccepted, A::CookFinished, A::PickedUp, A::Delivered] {
                assert!(follow(status, f).is_err(), "{status:?} + {f:?}");
            }
        }
        assert_eq!(follow(Delivered, A::CookFinished), Ok(Follow::AlreadyPast));
        assert_eq!(follow(Confirmed, A::Delivered), Ok(Follow::AlreadyPast));
        assert_eq!(
            follow(Ordered, A::StoreRejected),
            Ok(Follow::Advance(Rejected))
        );
        assert!(follow(Accepted, A::StoreRejected).is_err());
    }

    #[test]
    fn the_store_agreeing_to_a_cancel_cancels_once() {
        use OrderAction as A;
        // The cancel's answer was lost: the store's event finishes it.
        assert_eq!(
            follow(Ordered, A::StoreCancelled),
            Ok(Follow::Advance(Cancelled))
        );
        // The answer arrived first: the event changes nothing.
        assert_eq!(
            follow(Cancelled, A::StoreCancelled),
            Ok(Follow::AlreadyPast)
        );
        for status in [PaymentPending, Accepted, Rejected, PaymentFailed, Confirmed] {
            assert!(follow(status, A::StoreCancelled).is_err(), "{status:?}");
        }
    }

    /// The whole table, written out as the specification: every pair not
    /// listed must be refused.
    const ALLOWED: [(OrderStatus, OrderAction, OrderStatus); 10] = [
        (PaymentPending, OrderAction::PaymentApproved, Ordered),
        (PaymentPending, OrderAction::PaymentFailed, PaymentFailed),
        (Ordered, OrderAction::Cancel, Cancelled),
        (Ordered, OrderAction::StoreCancelled, Cancelled),
        (Ordered, OrderAction::StoreAccepted, Accepted),
        (Ordered, OrderAction::StoreRejected, Rejected),
        (Accepted, OrderAction::CookFinished, Cooked),
        (Cooked, OrderAction::PickedUp, PickedUp),
        (PickedUp, OrderAction::Delivered, Delivered),
        (Delivered, OrderAction::Confirm, Confirmed),
    ];

    #[test]
    fn every_status_action_pair_matches_the_table() {
        for status in OrderStatus::ALL {
            for action in OrderAction::ALL {
                let expected = ALLOWED
                    .iter()
                    .find(|(s, a, _)| *s == status && *a == action)
                    .map(|(_, _, to)| *to);
                match (next(status, action), expected) {
                    (Ok(to), Some(want)) => assert_eq!(to, want, "{status:?} + {action:?}"),
                    (Err(e), None) => {
                        assert_eq!(e.current, status);
                        assert_eq!(e.action, action);
                    }
                    (got, want) => panic!("{status:?} + {action:?}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn the_refusal_names_the_current_status() {
        let err = next(Accepted, OrderAction::Cancel).expect_err("refused");
        assert_eq!(err.to_string(), "cannot cancel an order that is Accepted");
    }

    fn status() -> impl Strategy<Value = OrderStatus> {
        proptest::sample::select(OrderStatus::ALL.to_vec())
    }

    fn action() -> impl Strategy<Value = OrderAction> {
        proptest::sample::select(OrderAction::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn final_statuses_never_change(s in status(), a in action()) {
            if s.is_final() {
                prop_assert!(next(s, a).is_err());
            }
        }

        #[test]
        fn any_sequence_of_actions_ends_in_a_reachable_status(actions in proptest::collection::vec(action(), 0..20)) {
            let mut s = PaymentPending;
            let mut changes = 0;
            for a in actions {
                if let Ok(to) = next(s, a) {
                    prop_assert_ne!(to, s);
                    s = to;
                    changes += 1;
                }
            }
            // The longest path is PaymentPending -> ... -> Confirmed: 6 steps.
            prop_assert!(changes <= 6);
            // Cancelled is reached only from Ordered, so never after the kitchen accepted.
            if s == Cancelled { prop_assert!(changes == 2); }
        }
    }
}
