//! Who hears about each event, and in which words.

use contracts::{Event, EventType};

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

#[cfg(test)]
mod tests {
    use super::*;

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
