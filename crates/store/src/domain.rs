//! Store's rules, with no storage and no HTTP: the store order's state
//! machine and the event each action emits, the store's side of a cancel,
//! whose orders and menus an owner may touch, and what a menu item may be.
//! The store is the arbiter between the owner's decision and the
//! customer's cancel: whichever commits first wins, and the other is
//! refused with the status it ran into.

use contracts::{EventType, Role};
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

/// The event an action publishes.
pub fn event_for(action: StoreAction) -> EventType {
    match action {
        StoreAction::Accept => EventType::CookStarted,
        StoreAction::Reject => EventType::OrderRejected,
        StoreAction::Finish => EventType::CookFinished,
        // Order follows it (and publishes MenuCancelled) even when the
        // answer to its cancel call was lost.
        StoreAction::Cancel => EventType::StoreOrderCancelled,
    }
}

/// What the store does with a customer's cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelStep {
    /// The paid order has not arrived yet: remember it as cancelled, so it
    /// stays cancelled when it arrives.
    Remember,
    /// Cancel the order in the list.
    Cancel,
    /// Cancelled already (a retried call): nothing to do.
    AlreadyCancelled,
}

/// The store's side of a cancel, given the order in its list (if any):
/// the cancel wins while the owner has not decided, and is refused with
/// the owner's decision otherwise.
pub fn cancel_step(current: Option<StoreOrderStatus>) -> Result<CancelStep, StoreOrderStatus> {
    match current {
        None => Ok(CancelStep::Remember),
        Some(StoreOrderStatus::Cancelled) => Ok(CancelStep::AlreadyCancelled),
        Some(status) => next(status, StoreAction::Cancel)
            .map(|_| CancelStep::Cancel)
            .map_err(|t| t.current),
    }
}

/// The reason a store order is cancelled for by the customer.
pub const CANCELLED_BY_THE_CUSTOMER: &str = "cancelled by the customer";

/// The reason recorded for a rejection: the owner's words (trimmed, at
/// most 200 characters) or a default.
pub fn rejection_reason(said: Option<&str>) -> String {
    said.map(|r| r.trim().chars().take(200).collect::<String>())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "rejected by the store".into())
}

/// The kitchen whose orders someone's list shows: an owner their store's
/// (none without a store), an admin every store's (`None`).
pub fn kitchen_of(role: Role, store_id: Option<i64>) -> Option<i64> {
    match role {
        Role::Admin => None,
        _ => Some(store_id.unwrap_or(-1)),
    }
}

/// Whether someone may see and decide on an order of `order_store`: its
/// owner or an admin.
pub fn may_handle(role: Role, store_id: Option<i64>, order_store: i64) -> bool {
    role == Role::Admin || (role == Role::Owner && store_id == Some(order_store))
}

/// The most a menu item may cost, in KRW.
pub const MAX_PRICE: i64 = 10_000_000;

/// Why a menu change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MenuRefusal {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(&'static str),
}

/// A menu item's name and price, when given, must be 1 to 100 characters
/// and 0 to [`MAX_PRICE`].
pub fn check_menu_fields(name: Option<&str>, price: Option<i64>) -> Result<(), MenuRefusal> {
    if let Some(name) = name {
        let len = name.trim().chars().count();
        if len == 0 || len > 100 {
            return Err(MenuRefusal::Invalid(
                "name must be 1 to 100 characters".into(),
            ));
        }
    }
    if let Some(price) = price {
        if !(0..=MAX_PRICE).contains(&price) {
            return Err(MenuRefusal::Invalid(format!(
                "price must be between 0 and {MAX_PRICE} KRW"
            )));
        }
    }
    Ok(())
}

/// The store a new menu item goes to: an admin names it, an owner adds to
/// their own (naming another is refused).
pub fn menu_store(
    role: Role,
    own_store: Option<i64>,
    named: Option<i64>,
) -> Result<i64, MenuRefusal> {
    if role == Role::Admin {
        return named.ok_or_else(|| MenuRefusal::Invalid("storeId is required".into()));
    }
    let own = own_store.ok_or(MenuRefusal::Forbidden("you run no store"))?;
    if named.is_some_and(|s| s != own) {
        return Err(MenuRefusal::Forbidden(
            "you may add menus only to your own store",
        ));
    }
    Ok(own)
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

    /// Given a store order in `given`, when the owner (or a cancel) does
    /// `when`, then it is in `then` and `emits` is published.
    #[test]
    fn given_a_status_when_an_action_then_a_status_and_its_event() {
        use EventType as E;
        let table = [
            (S::Received, A::Accept, S::Accepted, E::CookStarted),
            (S::Received, A::Reject, S::Rejected, E::OrderRejected),
            (S::Received, A::Cancel, S::Cancelled, E::StoreOrderCancelled),
            (S::Accepted, A::Finish, S::Cooked, E::CookFinished),
        ];
        for (given, when, then, emits) in table {
            assert_eq!(next(given, when), Ok(then), "{given:?} + {when:?}");
            assert_eq!(event_for(when), emits, "{when:?}");
        }
        let refused = next(S::Cooked, A::Accept).expect_err("refused");
        assert_eq!(refused.to_string(), "cannot accept an order that is Cooked");
    }

    #[test]
    fn a_cancel_wins_until_the_owner_decides() {
        assert_eq!(cancel_step(None), Ok(CancelStep::Remember));
        assert_eq!(cancel_step(Some(S::Received)), Ok(CancelStep::Cancel));
        assert_eq!(
            cancel_step(Some(S::Cancelled)),
            Ok(CancelStep::AlreadyCancelled)
        );
        for decided in [S::Accepted, S::Rejected, S::Cooked] {
            assert_eq!(cancel_step(Some(decided)), Err(decided));
        }
    }

    #[test]
    fn only_the_owner_of_the_store_or_an_admin_handles_its_orders() {
        assert!(may_handle(Role::Owner, Some(1), 1));
        assert!(!may_handle(Role::Owner, Some(2), 1));
        assert!(!may_handle(Role::Owner, None, 1));
        assert!(may_handle(Role::Admin, None, 1));
        assert!(!may_handle(Role::Customer, Some(1), 1));
        assert!(!may_handle(Role::Rider, Some(1), 1));
        assert_eq!(kitchen_of(Role::Owner, Some(3)), Some(3));
        assert_eq!(kitchen_of(Role::Owner, None), Some(-1));
        assert_eq!(kitchen_of(Role::Admin, Some(3)), None);
    }

    #[test]
    fn a_rejection_keeps_the_owners_words_or_says_why() {
        assert_eq!(rejection_reason(Some("  sold out ")), "sold out");
        assert_eq!(rejection_reason(Some("   ")), "rejected by the store");
        assert_eq!(rejection_reason(None), "rejected by the store");
        assert_eq!(rejection_reason(Some(&"x".repeat(300))).len(), 200);
    }

    #[test]
    fn a_menu_item_has_a_name_and_a_price_in_bounds() {
        assert_eq!(check_menu_fields(Some("Bibimbap"), Some(9000)), Ok(()));
        assert_eq!(check_menu_fields(None, None), Ok(()));
        assert!(check_menu_fields(Some("  "), None).is_err());
        assert!(check_menu_fields(Some(&"x".repeat(101)), None).is_err());
        assert!(check_menu_fields(None, Some(-1)).is_err());
        assert!(check_menu_fields(None, Some(MAX_PRICE + 1)).is_err());
        assert_eq!(check_menu_fields(None, Some(MAX_PRICE)), Ok(()));
    }

    #[test]
    fn an_owner_adds_menus_to_their_own_store_and_an_admin_names_one() {
        assert_eq!(menu_store(Role::Owner, Some(1), None), Ok(1));
        assert_eq!(menu_store(Role::Owner, Some(1), Some(1)), Ok(1));
        assert_eq!(
            menu_store(Role::Owner, Some(1), Some(2)),
            Err(MenuRefusal::Forbidden(
                "you may add menus only to your own store"
            ))
        );
        assert_eq!(
            menu_store(Role::Owner, None, Some(1)),
            Err(MenuRefusal::Forbidden("you run no store"))
        );
        assert_eq!(menu_store(Role::Admin, None, Some(2)), Ok(2));
        assert!(matches!(
            menu_store(Role::Admin, Some(1), None),
            Err(MenuRefusal::Invalid(_))
        ));
    }

    #[test]
    fn accept_and_cancel_exclude_each_other_in_either_order() {
        let accepted = next(S::Received, A::Accept).expect("accept");
        assert!(next(accepted, A::Cancel).is_err());
        let cancelled = next(S::Received, A::Cancel).expect("cancel");
        assert!(next(cancelled, A::Accept).is_err());
    }
}
