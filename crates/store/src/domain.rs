//! The store order's state machine. The store is the arbiter between the
//! owner's decision and the customer's cancel: whichever commits first here
//! wins, and the other is refused with the status it ran into.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
pub enum StoreOrderStatus {
    /// In the list, waiting for the owner.
    Received,
    /// Accepted; cooking.
    Accepted,
    Rejected,
    Cooked,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreAction {
    Accept,
    Reject,
    Finish,
    Cancel,
}

impl StoreOrderStatus {
    pub const ALL: [StoreOrderStatus; 5] = [
        StoreOrderStatus::Received,
        StoreOrderStatus::Accepted,
        StoreOrderStatus::Rejected,
        StoreOrderStatus::Cooked,
        StoreOrderStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StoreOrderStatus::Received => "Received",
            StoreOrderStatus::Accepted => "Accepted",
            StoreOrderStatus::Rejected => "Rejected",
            StoreOrderStatus::Cooked => "Cooked",
            StoreOrderStatus::Cancelled => "Cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<StoreOrderStatus> {
        StoreOrderStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
    }

    /// What this status means for the order as the customer sees it.
    pub fn order_status(self) -> contracts::OrderStatus {
        use contracts::OrderStatus as O;
        match self {
            StoreOrderStatus::Received => O::Ordered,
            StoreOrderStatus::Accepted => O::Accepted,
            StoreOrderStatus::Rejected => O::Rejected,
            StoreOrderStatus::Cooked => O::Cooked,
            StoreOrderStatus::Cancelled => O::Cancelled,
        }
    }
}

impl StoreAction {
    pub const ALL: [StoreAction; 4] = [
        StoreAction::Accept,
        StoreAction::Reject,
        StoreAction::Finish,
        StoreAction::Cancel,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            StoreAction::Accept => "accept",
            StoreAction::Reject => "reject",
            StoreAction::Finish => "finish cooking",
            StoreAction::Cancel => "cancel",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} an order that is {}", .action.describe(), .current.as_str())]
pub struct IllegalStoreTransition {
    pub current: StoreOrderStatus,
    pub action: StoreAction,
}

pub fn next(
    current: StoreOrderStatus,
    action: StoreAction,
) -> Result<StoreOrderStatus, IllegalStoreTransition> {
    use StoreAction as A;
    use StoreOrderStatus as S;
    match (current, action) {
        (S::Received, A::Accept) => Ok(S::Accepted),
        (S::Received, A::Reject) => Ok(S::Rejected),
        (S::Received, A::Cancel) => Ok(S::Cancelled),
        (S::Accepted, A::Finish) => Ok(S::Cooked),
        _ => Err(IllegalStoreTransition { current, action }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StoreAction as A;
    use StoreOrderStatus as S;

    const ALLOWED: [(S, A, S); 4] = [
        (S::Received, A::Accept, S::Accepted),
        (S::Received, A::Reject, S::Rejected),
        (S::Received, A::Cancel, S::Cancelled),
        (S::Accepted, A::Finish, S::Cooked),
    ];

    #[test]
    fn every_status_action_pair_matches_the_table() {
        for status in S::ALL {
            for action in A::ALL {
                let want = ALLOWED
                    .iter()
                    .find(|(s, a, _)| *s == status && *a == action)
                    .map(|(_, _, to)| *to);
                assert_eq!(next(status, action).ok(), want, "{status:?} + {action:?}");
            }
        }
    }

    #[test]
    fn accept_and_cancel_exclude_each_other_in_either_order() {
        let accepted = next(S::Received, A::Accept).expect("accept");
        assert!(next(accepted, A::Cancel).is_err());
        let cancelled = next(S::Received, A::Cancel).expect("cancel");
        assert!(next(cancelled, A::Accept).is_err());
    }
}
