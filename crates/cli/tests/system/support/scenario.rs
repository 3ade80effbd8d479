//! The seed's scenario, one step at a time, written once: place, the owner
//! accepts and finishes cooking, the rider picks up and completes, the
//! customer confirms; or a cancel and its refund. Each step asserts that it
//! was accepted; a test with a variation of its own spells that step out.

use reqwest::StatusCode;
use serde_json::Value;

use super::{eventually, wait_in_deliveries, wait_in_store, Api};

/// A `PUT` of one step of an order, which must answer 200.
async fn step(api: &Api, what: &str, path: String) -> Value {
    let r = api.put(&path).await;
    assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.body);
    r.body
}

pub async fn accept(owner: &Api, order: i64) -> Value {
    step(
        owner,
        &format!("accept {order}"),
        format!("/storeOrders/{order}/accept"),
    )
    .await
}

pub async fn finish(owner: &Api, order: i64) -> Value {
    step(
        owner,
        &format!("finish {order}"),
        format!("/storeOrders/{order}/finish"),
    )
    .await
}

pub async fn pick_up(rider: &Api, order: i64) -> Value {
    step(
        rider,
        &format!("pickup {order}"),
        format!("/deliveries/{order}/pickup"),
    )
    .await
}

pub async fn complete(rider: &Api, order: i64) -> Value {
    step(
        rider,
        &format!("complete {order}"),
        format!("/deliveries/{order}/complete"),
    )
    .await
}

pub async fn confirm(customer: &Api, order: i64) -> Value {
    step(
        customer,
        &format!("confirm {order}"),
        format!("/orders/{order}/confirm"),
    )
    .await
}

pub async fn cancel(customer: &Api, order: i64) -> Value {
    step(
        customer,
        &format!("cancel {order}"),
        format!("/orders/{order}/cancel"),
    )
    .await
}

/// Waits until the order itself (not a view) has `status`.
pub async fn wait_order(customer: &Api, order: i64, status: &str) {
    eventually(&format!("order {order} {status}"), || async {
        (customer.get(&format!("/orders/{order}")).await.body["status"] == status).then_some(())
    })
    .await;
}

/// Waits until the order's payment is refunded.
pub async fn wait_refunded(customer: &Api, order: i64) {
    eventually(&format!("the refund of order {order}"), || async {
        (customer.get(&format!("/payments/{order}")).await.body["paymentStatus"] == "Refunded")
            .then_some(())
    })
    .await;
}

/// The kitchen's part: once the store has the order, accept and finish it.
pub async fn cook(owner: &Api, order: i64) {
    wait_in_store(owner, order).await;
    accept(owner, order).await;
    finish(owner, order).await;
}

/// The rider's part: once the delivery exists, pick up and complete it,
/// until the order itself is Delivered.
pub async fn deliver(rider: &Api, customer: &Api, order: i64) {
    wait_in_deliveries(rider, order).await;
    pick_up(rider, order).await;
    complete(rider, order).await;
    wait_order(customer, order, "Delivered").await;
}

/// A placed order through every step to Confirmed.
pub async fn drive_to_confirmed(customer: &Api, owner: &Api, rider: &Api, order: i64) {
    cook(owner, order).await;
    deliver(rider, customer, order).await;
    confirm(customer, order).await;
}

/// Waits until `reader` sees `count` notifications about the order.
pub async fn wait_notifications(reader: &Api, order: i64, count: usize) {
    eventually(
        &format!("{count} notifications of order {order}"),
        || async {
            let n = reader.get("/notifications").await.body;
            (n.as_array()?
                .iter()
                .filter(|x| x["orderId"] == order)
                .count()
                == count)
                .then_some(())
        },
    )
    .await;
}
