//! The order's state machine: which action may move an order from which
//! status, and where to. Everything else in the service asks this.

use contracts::OrderStatus;
use contracts::OrderStatus::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderAction {
    PaymentApproved,
    PaymentFailed,
    Cancel,
    StoreAccepted,
    StoreRejected,
    CookFinished,
    PickedUp,
    Delivered,
    Confirm,
}

impl OrderAction {
    pub const ALL: [OrderAction; 9] = [
        OrderAction::PaymentApproved,
        OrderAction::PaymentFailed,
        OrderAction::Cancel,
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
            OrderAction::Cancel => "cancel",
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The whole table, written out as the specification: every pair not
    /// listed must be refused.
    const ALLOWED: [(OrderStatus, OrderAction, OrderStatus); 9] = [
        (PaymentPending, OrderAction::PaymentApproved, Ordered),
        (PaymentPending, OrderAction::PaymentFailed, PaymentFailed),
        (Ordered, OrderAction::Cancel, Cancelled),
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
