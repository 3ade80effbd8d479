//! Notification's rules, with no storage and no HTTP: who hears about each
//! event and in which words, which recipients a user reads, and how many
//! notifications one answer holds.

use contracts::{Event, EventType, Role};

fn won(amount: i64) -> String {
    let digits = amount.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if amount < 0 {
        out.insert(0, '-');
    }
    format!("{out} KRW")
}

/// `(recipient, message)` pairs for one event. Recipients are
/// `customer:{id}`, `store:{id}`, `riders` (every rider) and `rider:{id}`.
pub fn recipients_and_message(ev: &Event) -> Vec<(String, String)> {
    let customer = format!("customer:{}", ev.customer_id);
    let store = format!("store:{}", ev.store_id);
    let what = format!("order #{} ({} x{})", ev.order_id, ev.menu_name, ev.qty);
    let reason = ev
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    let mut out = Vec::new();
    match ev.event_type {
        EventType::MenuOrdered => {
            out.push((
                customer,
                format!("Your {what} is placed, {} paid.", won(ev.price)),
            ));
            out.push((store, format!("New {what} to {}.", ev.address)));
        }
        EventType::PaymentAgreed => out.push((
            customer,
            format!(
                "Payment of {} approved for order #{}.",
                won(ev.price),
                ev.order_id
            ),
        )),
        EventType::OrderPaymentFailed => {
            out.push((customer, format!("Payment failed for {what}{reason}.")))
        }
        EventType::CookStarted => out.push((
            customer,
            format!("The store accepted your {what}; cooking started."),
        )),
        EventType::OrderRejected => {
            out.push((
                customer,
                format!("The store could not take your {what}{reason}. You will be refunded."),
            ));
            out.push((store, format!("You rejected {what}.")));
        }
        EventType::CookFinished => {
            out.push((
                customer,
                format!("Your {what} is cooked and waits for a rider."),
            ));
            out.push((
                "riders".into(),
                format!("{what} is ready for pick-up; deliver to {}.", ev.address),
            ));
        }
        EventType::DeliveryStarted => {
            out.push((customer, format!("A rider picked up your {what}.")));
            out.push((store, format!("A rider picked up {what}.")));
            if let Some(rider) = ev.rider_id {
                out.push((
                    format!("rider:{rider}"),
                    format!("You picked up {what}; deliver to {}.", ev.address),
                ));
            }
        }
        EventType::DeliveryCompleted => {
            out.push((
                customer,
                format!("Your {what} was delivered. Please confirm receipt."),
            ));
            if let Some(rider) = ev.rider_id {
                out.push((format!("rider:{rider}"), format!("You delivered {what}.")));
            }
        }
        EventType::OrderConfirmed => {
            out.push((customer, format!("You confirmed receipt of {what}. Enjoy!")));
            out.push((store, format!("The customer confirmed receipt of {what}.")));
        }
        EventType::MenuCancelled => {
            out.push((customer, format!("Your {what} is cancelled{reason}.")));
            out.push((store, format!("{what} was cancelled{reason}.")));
        }
        EventType::PaymentCancelled => out.push((
            customer,
            format!("{} refunded for order #{}.", won(ev.price), ev.order_id),
        )),
        // Between Store and Order; everyone hears of it as MenuCancelled.
        EventType::StoreOrderCancelled => {}
    }
    out
}

/// The recipient names a user reads: their own, their store's, and for
/// riders the open-to-all-riders channel; None for an admin, who reads all.
/// An owner without a store reads none: -1 is no store's id.
pub fn inboxes(role: Role, user_id: i64, store_id: Option<i64>) -> Option<Vec<String>> {
    match role {
        Role::Admin => None,
        Role::Customer => Some(vec![format!("customer:{user_id}")]),
        Role::Owner => Some(vec![format!("store:{}", store_id.unwrap_or(-1))]),
        Role::Rider => Some(vec!["riders".into(), format!("rider:{user_id}")]),
    }
}

/// Notifications per `GET /notifications` when the client names no limit,
/// and the most it may ask for.
const PAGE: i64 = 500;
const MAX_PAGE: i64 = 5000;

pub fn page_size(asked: Option<i64>) -> i64 {
    asked.unwrap_or(PAGE).clamp(1, MAX_PAGE)
}

/// Notifications a live stream reads at once; a full batch means more are
/// waiting, so it reads again before it sleeps.
pub const STREAM_BATCH: i64 = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_read_their_own_inboxes_and_admins_all() {
        assert_eq!(inboxes(Role::Admin, 5, None), None);
        assert_eq!(
            inboxes(Role::Customer, 1, None),
            Some(vec!["customer:1".to_string()])
        );
        assert_eq!(
            inboxes(Role::Owner, 2, Some(7)),
            Some(vec!["store:7".to_string()])
        );
        assert_eq!(
            inboxes(Role::Owner, 2, None),
            Some(vec!["store:-1".to_string()])
        );
        assert_eq!(
            inboxes(Role::Rider, 4, None),
            Some(vec!["riders".to_string(), "rider:4".to_string()])
        );
    }

    #[test]
    fn an_answer_holds_five_hundred_unless_asked_and_never_more_than_five_thousand() {
        assert_eq!(page_size(None), 500);
        assert_eq!(page_size(Some(0)), 1);
        assert_eq!(page_size(Some(20)), 20);
        assert_eq!(page_size(Some(99_999)), 5000);
    }

    /// Given an event, when it is told, then who hears it.
    #[test]
    fn given_an_event_then_the_people_concerned_hear_it() {
        let facts = contracts::event::OrderFacts {
            order_id: 7,
            menu_name: "pizza".into(),
            qty: 2,
            price: 18000,
            address: "suwon".into(),
            store_id: 3,
            customer_id: 1,
            correlation_id: uuid::Uuid::nil(),
        };
        let told = |t: EventType, rider: Option<i64>| {
            let mut ev = Event::new(t, &facts, 7, "system", 1, 0);
            ev.rider_id = rider;
            recipients_and_message(&ev)
                .into_iter()
                .map(|(r, _)| r)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            told(EventType::MenuOrdered, None),
            ["customer:1", "store:3"]
        );
        assert_eq!(
            told(EventType::CookFinished, None),
            ["customer:1", "riders"]
        );
        assert_eq!(
            told(EventType::DeliveryStarted, Some(4)),
            ["customer:1", "store:3", "rider:4"]
        );
        assert_eq!(
            told(EventType::DeliveryStarted, None),
            ["customer:1", "store:3"]
        );
        assert!(told(EventType::StoreOrderCancelled, None).is_empty());
        let words = recipients_and_message(&Event::new(
            EventType::MenuOrdered,
            &facts,
            7,
            "system",
            1,
            0,
        ));
        assert_eq!(
            words[0].1,
            "Your order #7 (pizza x2) is placed, 18,000 KRW paid."
        );
    }

    #[test]
    fn amounts_read_like_money() {
        assert_eq!(won(1000), "1,000 KRW");
        assert_eq!(won(18000000), "18,000,000 KRW");
        assert_eq!(won(999), "999 KRW");
    }

    #[test]
    fn every_event_type_tells_the_customer() {
        let facts = contracts::event::OrderFacts {
            order_id: 7,
            menu_name: "pizza".into(),
            qty: 2,
            price: 2000,
            address: "suwon".into(),
            store_id: 1,
            customer_id: 1,
            correlation_id: uuid::Uuid::nil(),
        };
        for t in EventType::ALL
            .into_iter()
            .filter(|t| *t != EventType::StoreOrderCancelled)
        {
            let ev = Event::new(t, &facts, 1, "system", 1, 0);
            let out = recipients_and_message(&ev);
            assert!(
                out.iter().any(|(r, _)| r == "customer:1"),
                "{t} tells the customer nothing"
            );
        }
    }
}
