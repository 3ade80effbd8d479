//! A customer's cancel racing the owner's accept: in every service, exactly
//! one of them wins.

use crate::support::*;
use futures::stream::{self, StreamExt};
use serde_json::Value;

fn find<'a>(list: &'a Value, key: &str, order: i64) -> Option<&'a Value> {
    list.as_array()?.iter().find(|v| v[key] == order)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_cancels_racing_accepts_each_end_with_one_winner() {
    let _machine = exclusive().await;
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let owner = Api::login(&server, "owner").await;
    let admin = Api::login(&server, "admin").await;

    let mut orders = Vec::new();
    for _ in 0..100 {
        orders.push(id(&place(&customer, "pizza", 1).await));
    }
    // Half race while the order is already in the store's list, half while
    // it may still be on its way there.
    for order in orders.iter().step_by(2) {
        wait_in_store(&owner, *order).await;
    }
    let results: Vec<(i64, Winner)> = stream::iter(orders.clone())
        .map(|order| {
            let (customer, owner) = (customer.clone(), owner.clone());
            async move { (order, race(&customer, &owner, order).await) }
        })
        .buffer_unordered(10)
        .collect()
        .await;

    let cancelled = results.iter().filter(|(_, w)| *w == Winner::Cancel).count();
    eprintln!(
        "cancel won {cancelled}, accept won {}",
        results.len() - cancelled
    );

    // Every service settles on the same winner.
    for (order, winner) in &results {
        wait_settled(&customer, &owner, *order, *winner).await;
    }
    // Nothing reached delivery, no refund for an accepted order, one event
    // of each kind per order, and no consumer parked anything.
    let deliveries = admin.get("/deliveries").await.body;
    assert!(deliveries.as_array().expect("deliveries").is_empty());
    for (order, winner) in &results {
        let changes = if *winner == Winner::Cancel { 4 } else { 3 };
        wait_history(&customer, *order, changes).await;
    }
    let log = admin.get("/events?limit=5000").await.body;
    for (order, winner) in &results {
        let kinds: Vec<&str> = log
            .as_array()
            .expect("log")
            .iter()
            .filter(|e| e["orderId"] == *order)
            .map(|e| e["eventType"].as_str().expect("type"))
            .collect();
        let want: &[&str] = match winner {
            Winner::Cancel => &[
                "PaymentAgreed",
                "MenuOrdered",
                "MenuCancelled",
                "StoreOrderCancelled",
                "PaymentCancelled",
            ],
            Winner::Accept => &["PaymentAgreed", "MenuOrdered", "CookStarted"],
        };
        assert_same_saga(&kinds, want, &format!("order {order}"));
        let view = customer.get(&format!("/statusChecks/{order}")).await.body;
        // The view keeps what people see: not the store's agreement.
        let seen = want.iter().filter(|t| **t != "StoreOrderCancelled").count();
        assert_eq!(
            view["history"].as_array().expect("history").len(),
            seen,
            "order {order}: {view}"
        );
    }
    assert_no_dead_letters(&admin).await;
    assert!(find(&deliveries, "orderId", orders[0]).is_none());
}
