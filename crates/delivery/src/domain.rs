//! Delivery's rules, with no storage and no HTTP: the delivery's state
//! machine and the event each action emits, which rider may act on a
//! delivery, and who sees which.

use contracts::{EventType, OrderStatus, Role};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
pub enum DeliveryStatus {
    /// Cooked, waiting for a rider.
    Ready,
    PickedUp,
    Delivered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryAction {
    PickUp,
    Complete,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 3] = [
        DeliveryStatus::Ready,
        DeliveryStatus::PickedUp,
        DeliveryStatus::Delivered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Ready => "Ready",
            DeliveryStatus::PickedUp => "PickedUp",
            DeliveryStatus::Delivered => "Delivered",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} a delivery that is {}", match .action { DeliveryAction::PickUp => "pick up", DeliveryAction::Complete => "complete" }, .current.as_str())]
pub struct IllegalDeliveryTransition {
    pub current: DeliveryStatus,
    pub action: DeliveryAction,
}

pub fn next(
    current: DeliveryStatus,
    action: DeliveryAction,
) -> Result<DeliveryStatus, IllegalDeliveryTransition> {
    match (current, action) {
        (DeliveryStatus::Ready, DeliveryAction::PickUp) => Ok(DeliveryStatus::PickedUp),
        (DeliveryStatus::PickedUp, DeliveryAction::Complete) => Ok(DeliveryStatus::Delivered),
        _ => Err(IllegalDeliveryTransition { current, action }),
    }
}

/// The event an action publishes, and the order status it reports.
pub fn event_for(action: DeliveryAction) -> (EventType, OrderStatus) {
    match action {
        DeliveryAction::PickUp => (EventType::DeliveryStarted, OrderStatus::PickedUp),
        DeliveryAction::Complete => (EventType::DeliveryCompleted, OrderStatus::Delivered),
    }
}

/// Why a rider may not act on a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Another rider picked it up: only they complete it.
    NotYours,
    Illegal(IllegalDeliveryTransition),
}

/// What `rider` doing `action` to a delivery in `current`, picked up by
/// `picked_by`, leads to: its new status and rider. Any rider picks up a
/// ready delivery, and it is then theirs alone.
pub fn act(
    current: DeliveryStatus,
    picked_by: Option<i64>,
    action: DeliveryAction,
    rider: i64,
) -> Result<(DeliveryStatus, Option<i64>), Refusal> {
    if action == DeliveryAction::Complete && picked_by.is_some_and(|r| r != rider) {
        return Err(Refusal::NotYours);
    }
    let to = next(current, action).map_err(Refusal::Illegal)?;
    let rider = match action {
        DeliveryAction::PickUp => Some(rider),
        DeliveryAction::Complete => picked_by,
    };
    Ok((to, rider))
}

/// Whose deliveries someone's list shows besides those waiting for a
/// rider: a rider's own, an admin's every one (`None`).
pub fn listed_for(role: Role, user_id: i64) -> Option<i64> {
    match role {
        Role::Admin => None,
        _ => Some(user_id),
    }
}

/// Whether someone sees a delivery: an admin every one, a rider those
/// still open and their own.
pub fn may_see(role: Role, user_id: i64, picked_by: Option<i64>) -> bool {
    match role {
        Role::Admin => true,
        Role::Rider => picked_by.is_none() || picked_by == Some(user_id),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Given a delivery in `given` picked up by `picked_by`, when rider 7
    /// does `when`, then it is in `then`, with `rider`, and `emits` is
    /// published.
    #[test]
    fn given_a_delivery_when_a_rider_acts_then_a_status_a_rider_and_an_event() {
        use DeliveryAction as A;
        use DeliveryStatus as S;
        let table = [
            (
                S::Ready,
                None,
                A::PickUp,
                S::PickedUp,
                Some(7),
                EventType::DeliveryStarted,
            ),
            (
                S::PickedUp,
                Some(7),
                A::Complete,
                S::Delivered,
                Some(7),
                EventType::DeliveryCompleted,
            ),
        ];
        for (given, picked_by, when, then, rider, emits) in table {
            assert_eq!(act(given, picked_by, when, 7), Ok((then, rider)));
            assert_eq!(event_for(when).0, emits);
        }
        assert_eq!(event_for(A::PickUp).1, OrderStatus::PickedUp);
        assert_eq!(event_for(A::Complete).1, OrderStatus::Delivered);
    }

    #[test]
    fn a_rider_picks_up_only_a_ready_delivery_and_completes_only_their_own() {
        use DeliveryAction as A;
        use DeliveryStatus as S;
        assert_eq!(
            act(S::PickedUp, Some(8), A::Complete, 7),
            Err(Refusal::NotYours)
        );
        for status in [S::PickedUp, S::Delivered] {
            assert!(matches!(
                act(status, Some(7), A::PickUp, 7),
                Err(Refusal::Illegal(_))
            ));
        }
        let refused = act(S::Ready, None, A::Complete, 7);
        assert!(
            matches!(refused, Err(Refusal::Illegal(t)) if t.to_string() == "cannot complete a delivery that is Ready")
        );
    }

    #[test]
    fn riders_see_open_deliveries_and_their_own() {
        assert!(may_see(Role::Rider, 7, None));
        assert!(may_see(Role::Rider, 7, Some(7)));
        assert!(!may_see(Role::Rider, 7, Some(8)));
        assert!(may_see(Role::Admin, 1, Some(8)));
        assert!(!may_see(Role::Customer, 7, None));
        assert_eq!(listed_for(Role::Rider, 7), Some(7));
        assert_eq!(listed_for(Role::Admin, 1), None);
    }

    #[test]
    fn every_status_action_pair_matches_the_table() {
        use DeliveryAction as A;
        use DeliveryStatus as S;
        let allowed = [
            (S::Ready, A::PickUp, S::PickedUp),
            (S::PickedUp, A::Complete, S::Delivered),
        ];
        for s in S::ALL {
            for a in [A::PickUp, A::Complete] {
                let want = allowed
                    .iter()
                    .find(|(x, y, _)| *x == s && *y == a)
                    .map(|t| t.2);
                assert_eq!(next(s, a).ok(), want, "{s:?} + {a:?}");
            }
        }
    }
}
