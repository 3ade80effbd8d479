//! The seed's scenario end to end over HTTP against the real binary.

use crate::support::scenario;
use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn statuses(history: &Value) -> Vec<String> {
    history["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|c| c["status"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn order_pay_accept_cook_pick_up_deliver_confirm() {
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let owner = Api::login(&server, "owner").await;
    let rider = Api::login(&server, "rider").await;
    let admin = Api::login(&server, "admin").await;

    let menus = Api::anonymous(&server).get("/menus").await;
    let pizza = menus
        .body
        .as_array()
        .expect("menus")
        .iter()
        .find(|m| m["name"] == "pizza")
        .expect("pizza")
        .clone();
    assert_eq!(pizza["price"], 1000);

    // The client's price is ignored: it comes from the menu.
    let r = customer
        .post(
            "/orders",
            json!({"menuId": pizza["id"], "qty": 10, "address": "suwon", "price": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["status"], "Ordered");
    assert_eq!(r.body["price"], 10_000);
    let order = id(&r.body);

    let payment = customer.get(&format!("/payments/{order}")).await;
    assert_eq!(payment.body["paymentStatus"], "Approved");
    assert_eq!(payment.body["price"], 10_000);

    wait_in_store(&owner, order).await;
    scenario::accept(&owner, order).await;
    wait_status(&customer, order, "Accepted").await;
    scenario::finish(&owner, order).await;
    wait_status(&customer, order, "Cooked").await;

    wait_in_deliveries(&rider, order).await;
    let open = rider.get("/deliveries").await;
    assert!(open
        .body
        .as_array()
        .expect("list")
        .iter()
        .any(|d| d["orderId"] == order && d["deliveryStatus"] == "Ready"));
    // Confirming before delivery is refused with the current status.
    let early = customer.put(&format!("/orders/{order}/confirm")).await;
    assert_eq!(early.status, StatusCode::CONFLICT);
    assert!(early.problem());
    assert_eq!(early.body["currentStatus"], "Cooked");

    scenario::pick_up(&rider, order).await;
    wait_status(&customer, order, "PickedUp").await;
    scenario::complete(&rider, order).await;
    scenario::wait_order(&customer, order, "Delivered").await;
    let confirmed = scenario::confirm(&customer, order).await;
    assert_eq!(confirmed["status"], "Confirmed");

    wait_status(&customer, order, "Confirmed").await;
    let view = wait_history(&customer, order, 7).await;
    let got = statuses(&view);
    let got: Vec<&str> = got.iter().map(String::as_str).collect();
    assert_same_saga(
        &got,
        &[
            "Approved",
            "Ordered",
            "Accepted",
            "Cooked",
            "PickedUp",
            "Delivered",
            "Confirmed",
        ],
        &view.to_string(),
    );
    let actors: Vec<&str> = view["history"]
        .as_array()
        .expect("h")
        .iter()
        .map(|c| c["actor"].as_str().expect("actor"))
        .collect();
    assert_eq!(
        actors,
        [
            "customer:1",
            "customer:1",
            "owner:2",
            "owner:2",
            "rider:4",
            "rider:4",
            "customer:1"
        ]
    );
    assert!(view["history"]
        .as_array()
        .expect("h")
        .iter()
        .all(|c| c["at"].as_i64().expect("at") > 0));

    // Notifications reached each person concerned.
    let seen = |api: Api, kinds: Vec<&'static str>| async move {
        eventually("notifications", || {
            let api = api.clone();
            let kinds = kinds.clone();
            async move {
                let list = api.get("/notifications").await.body;
                let got: Vec<String> = list
                    .as_array()?
                    .iter()
                    .filter(|n| n["orderId"] == order)
                    .map(|n| n["eventType"].as_str().unwrap_or("").to_string())
                    .collect();
                kinds
                    .iter()
                    .all(|k| got.iter().any(|g| g == k))
                    .then_some(got)
            }
        })
        .await
    };
    seen(
        customer.clone(),
        vec![
            "PaymentAgreed",
            "MenuOrdered",
            "CookStarted",
            "CookFinished",
            "DeliveryStarted",
            "DeliveryCompleted",
            "OrderConfirmed",
        ],
    )
    .await;
    seen(
        owner.clone(),
        vec!["MenuOrdered", "DeliveryStarted", "OrderConfirmed"],
    )
    .await;
    seen(
        rider.clone(),
        vec!["CookFinished", "DeliveryStarted", "DeliveryCompleted"],
    )
    .await;

    // The status board shows the order to the admin; the log holds each event once.
    let board = admin.get("/statusChecks").await;
    assert!(board
        .body
        .as_array()
        .expect("board")
        .iter()
        .any(|s| s["orderId"] == order && s["status"] == "Confirmed"));
    let log = admin.get(&format!("/events?orderId={order}")).await.body;
    let types: Vec<&str> = log
        .as_array()
        .expect("log")
        .iter()
        .map(|e| e["eventType"].as_str().expect("t"))
        .collect();
    assert_same_saga(
        &types,
        &[
            "PaymentAgreed",
            "MenuOrdered",
            "CookStarted",
            "CookFinished",
            "DeliveryStarted",
            "DeliveryCompleted",
            "OrderConfirmed",
        ],
        "the log",
    );
    let menu_ordered = log
        .as_array()
        .expect("log")
        .iter()
        .find(|e| e["eventType"] == "MenuOrdered")
        .expect("MenuOrdered");
    for key in [
        "eventId",
        "timestamp",
        "orderId",
        "menuName",
        "qty",
        "price",
        "address",
        "orderStatus",
        "correlationId",
        "actor",
        "version",
    ] {
        assert!(
            menu_ordered.get(key).is_some(),
            "MenuOrdered lacks {key}: {menu_ordered}"
        );
    }
}

#[tokio::test]
async fn cancel_refunds_and_cancels_the_store_order() {
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let owner = Api::login(&server, "owner").await;
    let order = id(&place(&customer, "pizza", 2).await);
    wait_in_store(&owner, order).await;

    let cancelled = scenario::cancel(&customer, order).await;
    assert_eq!(cancelled["status"], "Cancelled");

    scenario::wait_refunded(&customer, order).await;
    assert_eq!(
        owner.get(&format!("/storeOrders/{order}")).await.body["cookStatus"],
        "Cancelled"
    );
    // The refund is a later event than the cancel: wait for both in the view.
    eventually("the view to show the refund", || async {
        let v = customer.get(&format!("/statusChecks/{order}")).await.body;
        (v["status"] == "Cancelled" && v["paymentStatus"] == "Refunded").then_some(())
    })
    .await;
    // The kitchen can no longer take it, and a second cancel is refused.
    let accept = owner.put(&format!("/storeOrders/{order}/accept")).await;
    assert_eq!(accept.status, StatusCode::CONFLICT);
    assert_eq!(accept.body["currentStatus"], "Cancelled");
    let again = customer.put(&format!("/orders/{order}/cancel")).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["currentStatus"], "Cancelled");
}

#[tokio::test]
async fn cancel_after_the_store_accepted_is_refused() {
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let owner = Api::login(&server, "owner").await;
    let order = id(&place(&customer, "pizza", 1).await);
    wait_in_store(&owner, order).await;
    scenario::accept(&owner, order).await;
    // Even before the order service has heard of the accept, the store's
    // decision stands.
    let r = customer.put(&format!("/orders/{order}/cancel")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["currentStatus"], "Accepted");
    wait_status(&customer, order, "Accepted").await;
    assert_eq!(
        customer.get(&format!("/payments/{order}")).await.body["paymentStatus"],
        "Approved"
    );
}

#[tokio::test]
async fn a_declined_card_gives_402_and_payment_failed() {
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let r = customer
        .post("/orders", json!({"menuName": "pizza", "qty": 1, "address": "suwon", "card": "4000-0000-0000-0002"}))
        .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{}", r.body);
    assert!(r.problem());
    let order = r.body["orderId"].as_i64().expect("orderId");
    assert_eq!(
        customer.get(&format!("/orders/{order}")).await.body["status"],
        "PaymentFailed"
    );
    assert_eq!(
        customer.get(&format!("/payments/{order}")).await.body["paymentStatus"],
        "Declined"
    );
    wait_status(&customer, order, "PaymentFailed").await;
    // A good card works.
    let ok = customer
        .post("/orders", json!({"menuName": "pizza", "qty": 1, "address": "suwon", "card": "4242 4242 4242 4242"}))
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
}

#[tokio::test]
async fn the_owner_rejects_and_the_customer_is_refunded() {
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let owner = Api::login(&server, "owner").await;
    let order = id(&place(&customer, "pizza", 3).await);
    wait_in_store(&owner, order).await;
    let r = owner
        .request(Method::PUT, &format!("/storeOrders/{order}/reject"))
        .json(&json!({"reason": "sold out"}))
        .send()
        .await
        .expect("reject");
    assert_eq!(r.status(), StatusCode::OK);
    let view = wait_status(&customer, order, "Rejected").await;
    assert!(view["history"]
        .as_array()
        .expect("h")
        .iter()
        .any(|c| c["reason"] == "sold out"));
    scenario::wait_refunded(&customer, order).await;
    scenario::wait_order(&customer, order, "Rejected").await;
}

#[tokio::test]
async fn an_order_the_store_leaves_unanswered_is_cancelled_and_refunded() {
    let server = Server::start(&["--store-deadline-secs", "1", "--sweep-ms", "100"]);
    let customer = Api::login(&server, "customer").await;
    let owner = Api::login(&server, "owner").await;
    let order = id(&place(&customer, "pizza", 1).await);
    let view = wait_status(&customer, order, "Cancelled").await;
    let cancel = view["history"]
        .as_array()
        .expect("h")
        .iter()
        .find(|c| c["status"] == "Cancelled")
        .expect("cancel")
        .clone();
    assert_eq!(cancel["actor"], "system");
    assert!(cancel["reason"]
        .as_str()
        .expect("reason")
        .contains("did not answer"));
    scenario::wait_refunded(&customer, order).await;
    let late = owner.put(&format!("/storeOrders/{order}/accept")).await;
    assert_eq!(late.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_retried_request_with_the_same_idempotency_key_changes_nothing_more() {
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let body = json!({"menuName": "pizza", "qty": 1, "address": "suwon"});
    let first = reply(
        customer
            .request(Method::POST, "/orders")
            .header("Idempotency-Key", "k-1")
            .json(&body),
    )
    .await;
    let second = reply(
        customer
            .request(Method::POST, "/orders")
            .header("Idempotency-Key", "k-1")
            .json(&body),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(first.body, second.body);
    let orders = customer.get("/orders").await.body;
    assert_eq!(orders.as_array().expect("orders").len(), 1);
    // The same key for a different request is refused.
    let other = reply(
        customer
            .request(Method::POST, "/orders")
            .header("Idempotency-Key", "k-1")
            .json(&json!({"menuName": "pizza", "qty": 2, "address": "suwon"})),
    )
    .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    // PUT too: a retried cancel answers as the first one did.
    let order = id(&first.body);
    let owner = Api::login(&server, "owner").await;
    wait_in_store(&owner, order).await;
    let c1 = reply(
        customer
            .request(Method::PUT, &format!("/orders/{order}/cancel"))
            .header("Idempotency-Key", "c-1"),
    )
    .await;
    let c2 = reply(
        customer
            .request(Method::PUT, &format!("/orders/{order}/cancel"))
            .header("Idempotency-Key", "c-1"),
    )
    .await;
    assert_eq!(c1.status, StatusCode::OK);
    assert_eq!(c2.status, StatusCode::OK);
    assert_eq!(c1.body, c2.body);
}

#[tokio::test]
async fn data_survives_a_restart_and_the_demo_is_seeded_once() {
    let mut server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let order = id(&place(&customer, "pizza", 4).await);
    wait_status(&customer, order, "Ordered").await;
    server.restart();
    let customer = Api::login(&server, "customer").await;
    let r = customer.get(&format!("/orders/{order}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "Ordered");
    assert_eq!(
        Api::anonymous(&server)
            .get("/stores")
            .await
            .body
            .as_array()
            .expect("stores")
            .len(),
        2
    );
    let again = id(&place(&customer, "pizza", 1).await);
    assert!(again > order);
}

#[tokio::test]
async fn the_status_view_and_notifications_rebuild_from_the_log() {
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let order = id(&place(&customer, "pizza", 1).await);
    let before = wait_history(&customer, order, 2).await;
    let notes_before = customer
        .get("/notifications")
        .await
        .body
        .as_array()
        .expect("n")
        .len();
    for view in ["status", "notification"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hanwha-delivery"))
            .args(["rebuild", view, "--data-dir"])
            .arg(&server.data_dir)
            .output()
            .expect("rebuild");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let after = wait_history(&customer, order, 2).await;
    assert_eq!(before["history"], after["history"]);
    eventually("notifications rebuilt", || async {
        (customer.get("/notifications").await.body.as_array()?.len() == notes_before).then_some(())
    })
    .await;
}

#[tokio::test]
async fn events_follow_prints_the_log_as_json_lines() {
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let order = id(&place(&customer, "pizza", 1).await);
    wait_history(&customer, order, 2).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hanwha-delivery"))
        .args(["events", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .expect("events");
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2);
    let types: Vec<&str> = lines
        .iter()
        .map(|l| l["eventType"].as_str().expect("type"))
        .collect();
    assert_same_saga(&types, &["PaymentAgreed", "MenuOrdered"], "events");
}
