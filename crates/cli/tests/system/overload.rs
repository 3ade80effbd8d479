//! Overload: far more requests at once than a route admits. The excess is
//! refused at once with 503 and Retry-After, before it changes anything;
//! what is admitted completes; health keeps answering.

use std::time::{Duration, Instant};

use crate::support::*;
use futures::stream::{self, StreamExt};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_orders_is_refused_at_once_beyond_capacity_and_nothing_refused_is_placed() {
    let _machine = exclusive().await;
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let admin = Api::login(&server, "admin").await;
    let health = Api::anonymous(&server);
    let flood = stream::iter(0..600)
        .map(|_| {
            let customer = customer.clone();
            async move {
                let started = Instant::now();
                let resp = customer
                    .request(reqwest::Method::POST, "/orders")
                    .json(&json!({"menuName": "pizza", "qty": 1, "address": "suwon"}))
                    .send()
                    .await
                    .expect("sent");
                let status = resp.status();
                let retry_after = resp.headers().get("retry-after").is_some();
                let problem = resp
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
                (status, retry_after, problem, started.elapsed())
            }
        })
        .buffer_unordered(200)
        .collect::<Vec<_>>();
    let probe = async {
        // Health answers during the flood, and fast.
        let mut slowest = Duration::ZERO;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let started = Instant::now();
            let r = health.get("/actuator/health").await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "health during the flood: {}",
                r.body
            );
            slowest = slowest.max(started.elapsed());
        }
        slowest
    };
    let (answers, slowest_health) = tokio::join!(flood, probe);
    let placed = answers
        .iter()
        .filter(|(s, ..)| *s == StatusCode::CREATED)
        .count();
    let refused: Vec<_> = answers
        .iter()
        .filter(|(s, ..)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    let slowest_refusal = refused.iter().map(|r| r.3).max().unwrap_or_default();
    eprintln!(
        "600 orders at 200 at once: {placed} placed, {} refused (slowest refusal {slowest_refusal:?}), health at worst {slowest_health:?}",
        refused.len()
    );
    assert_eq!(
        placed + refused.len(),
        answers.len(),
        "answers other than 201 and 503"
    );
    assert!(placed > 0, "nothing was admitted");
    assert!(!refused.is_empty(), "nothing was refused at 200 at once");
    assert!(
        refused.iter().all(|r| r.1 && r.2),
        "a refusal without Retry-After or problem+json"
    );
    // Refused requests changed nothing: the orders are exactly the placed.
    let orders = admin.get("/orders?limit=1000").await.body;
    let orders = orders.as_array().expect("orders");
    assert_eq!(orders.len(), placed, "orders exist for refused requests");
    assert!(orders.iter().all(|o| o["status"] == "Ordered"));
}
