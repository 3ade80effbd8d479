//! Who sees an order and what came of it (its payment): a customer their
//! own, an owner their store's, an admin all; riders see deliveries, not
//! orders. Order and Payment answer by the same rule, so it is written once.

use crate::Role;

/// Whose orders a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Customer(i64),
    Store(i64),
    Everyone,
}

/// Whose orders someone's list shows (an owner without a store sees
/// none); `None` for a rider.
pub fn listed_for(role: Role, user_id: i64, store_id: Option<i64>) -> Option<Owner> {
    match role {
        Role::Customer => Some(Owner::Customer(user_id)),
        Role::Owner => Some(Owner::Store(store_id.unwrap_or(-1))),
        Role::Admin => Some(Owner::Everyone),
        Role::Rider => None,
    }
}

/// Whether someone may see an order of `customer_id` at `order_store`.
pub fn may_see(
    role: Role,
    user_id: i64,
    store_id: Option<i64>,
    customer_id: i64,
    order_store: i64,
) -> bool {
    match role {
        Role::Admin => true,
        Role::Customer => customer_id == user_id,
        Role::Owner => Some(order_store) == store_id,
        Role::Rider => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_sees_its_own_orders() {
        assert!(may_see(Role::Customer, 7, None, 7, 1));
        assert!(!may_see(Role::Customer, 8, None, 7, 1));
        assert!(may_see(Role::Owner, 2, Some(1), 7, 1));
        assert!(!may_see(Role::Owner, 2, Some(3), 7, 1));
        assert!(may_see(Role::Admin, 1, None, 7, 1));
        assert!(!may_see(Role::Rider, 7, None, 7, 1));
        assert_eq!(
            listed_for(Role::Customer, 7, None),
            Some(Owner::Customer(7))
        );
        assert_eq!(listed_for(Role::Owner, 2, Some(1)), Some(Owner::Store(1)));
        assert_eq!(listed_for(Role::Owner, 2, None), Some(Owner::Store(-1)));
        assert_eq!(listed_for(Role::Admin, 1, None), Some(Owner::Everyone));
        assert_eq!(listed_for(Role::Rider, 7, None), None);
    }
}
