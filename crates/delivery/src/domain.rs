//! The delivery's state machine.

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

#[cfg(test)]
mod tests {
    use super::*;

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
