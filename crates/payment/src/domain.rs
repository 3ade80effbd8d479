//! Payment's rules, with no storage and no HTTP: what a charge comes to
//! (the documented test card is declined), what a refund does to the
//! payment an order has, the event of each, and what a charge request must
//! hold. Who sees a payment is the rule of its order
//! (`contracts::order_access`).

use contracts::EventType;

pub use contracts::wire::PaymentStatus;

/// The documented test card that is always declined.
pub const DECLINED_TEST_CARD: &str = "4000000000000002";

/// What a charge comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub status: PaymentStatus,
    /// The card's last four digits, kept to show; never the card.
    pub card_last4: Option<String>,
    pub reason: Option<&'static str>,
}

/// Charges `card` (`None` for the demo card): approved, except the
/// documented test card.
pub fn charge(card: Option<&str>) -> Charge {
    let card_last4 = card.map(|c| c[c.len().saturating_sub(4)..].to_string());
    if card == Some(DECLINED_TEST_CARD) {
        return Charge {
            status: PaymentStatus::Declined,
            card_last4,
            reason: Some("card declined by issuer (test card)"),
        };
    }
    Charge {
        status: PaymentStatus::Approved,
        card_last4,
        reason: None,
    }
}

/// The event a new payment publishes: only money taken is news.
pub fn charge_event(status: PaymentStatus) -> Option<EventType> {
    (status == PaymentStatus::Approved).then_some(EventType::PaymentAgreed)
}

/// The event a refund publishes.
pub const REFUND_EVENT: EventType = EventType::PaymentCancelled;

/// A charge request must ask for a price of at least 0 and one item.
pub fn check_charge(price: i64, qty: i64) -> Result<(), &'static str> {
    if price < 0 || qty < 1 {
        return Err("price must be >= 0 and qty >= 1");
    }
    Ok(())
}

/// What a refund found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refund {
    /// An approved payment was refunded.
    Refunded,
    /// Nothing was paid yet; a late payment will be refused.
    Voided,
    /// Declined, refunded or voided before: nothing to give back.
    NothingKept,
}

/// What a refund does to the order's payment, if it has one.
pub fn refund(current: Option<PaymentStatus>) -> Refund {
    match current {
        None => Refund::Voided,
        Some(PaymentStatus::Approved) => Refund::Refunded,
        Some(_) => Refund::NothingKept,
    }
}

/// Why an order's money goes back, for the events that give it back.
pub fn refund_reason(event_type: EventType) -> Option<&'static str> {
    match event_type {
        EventType::MenuCancelled => Some("order cancelled"),
        EventType::OrderRejected => Some("order rejected by the store"),
        EventType::OrderPaymentFailed => Some("order gave up on its payment"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PaymentStatus as P;

    /// Given a card, when it is charged, then the payment is in `then`,
    /// keeps `last4` and publishes `emits`.
    #[test]
    fn given_a_card_when_charged_then_a_status_and_its_event() {
        let table = [
            (None, P::Approved, None, Some(EventType::PaymentAgreed)),
            (
                Some("4111111111111111"),
                P::Approved,
                Some("1111"),
                Some(EventType::PaymentAgreed),
            ),
            (Some(DECLINED_TEST_CARD), P::Declined, Some("0002"), None),
        ];
        for (card, then, last4, emits) in table {
            let charged = charge(card);
            assert_eq!(charged.status, then, "{card:?}");
            assert_eq!(charged.card_last4.as_deref(), last4, "{card:?}");
            assert_eq!(charge_event(charged.status), emits, "{card:?}");
        }
        assert_eq!(
            charge(Some(DECLINED_TEST_CARD)).reason,
            Some("card declined by issuer (test card)")
        );
    }

    /// Given the order's payment, when a refund comes, then only money
    /// taken goes back, and an order not yet paid refuses a late payment.
    #[test]
    fn given_a_payment_when_refunded_then_only_money_taken_goes_back() {
        assert_eq!(refund(None), Refund::Voided);
        assert_eq!(refund(Some(P::Approved)), Refund::Refunded);
        for kept_nothing in [P::Declined, P::Refunded, P::Voided] {
            assert_eq!(refund(Some(kept_nothing)), Refund::NothingKept);
        }
    }

    #[test]
    fn cancelled_rejected_and_given_up_orders_are_refunded() {
        assert_eq!(
            refund_reason(EventType::MenuCancelled),
            Some("order cancelled")
        );
        assert_eq!(
            refund_reason(EventType::OrderRejected),
            Some("order rejected by the store")
        );
        assert_eq!(
            refund_reason(EventType::OrderPaymentFailed),
            Some("order gave up on its payment")
        );
        assert_eq!(refund_reason(EventType::MenuOrdered), None);
    }

    #[test]
    fn a_charge_is_for_one_item_or_more_at_no_negative_price() {
        assert_eq!(check_charge(0, 1), Ok(()));
        assert!(check_charge(-1, 1).is_err());
        assert!(check_charge(1000, 0).is_err());
    }
}
