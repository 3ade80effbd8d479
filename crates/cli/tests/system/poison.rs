//! Events no consumer can apply are retried beside the main path: the
//! healthy events behind them reach the views without waiting.

use std::time::{Duration, Instant};

use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn ten_poison_events_do_not_hold_up_the_order_behind_them() {
    let _machine = exclusive().await;
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let admin = Api::login(&server, "admin").await;

    let log = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        server.data_dir.join("events.db").display()
    ))
    .await
    .expect("open the log");
    for _ in 0..10 {
        let event_id = uuid::Uuid::now_v7().to_string();
        let payload = json!({"eventType": "MenuOrdered", "eventId": event_id, "broken": true});
        sqlx::query("INSERT INTO events (event_id, event_type, order_id, payload, source, logged_at) VALUES (?, 'MenuOrdered', 999999, ?, 'test', 0)")
            .bind(&event_id)
            .bind(payload.to_string())
            .execute(&log)
            .await
            .expect("inject");
    }
    log.close().await;
    // The consumers find events written by another process within a poll.
    let poll = Duration::from_millis(600);
    tokio::time::sleep(poll).await;

    let placed = Instant::now();
    let order = id(&place(&customer, "pizza", 1).await);
    wait_status(&customer, order, "Ordered").await;
    let lag = placed.elapsed();

    let buried = eventually("ten dead letters in status", || async {
        let dead = admin.get("/admin/deadLetters/status").await;
        assert_eq!(dead.status, StatusCode::OK);
        let dead = dead.body.as_array()?.clone();
        (dead.len() == 10).then_some(dead)
    })
    .await;
    eprintln!("order in the status view {lag:?} after it was placed, behind 10 poison events");
    assert!(buried.iter().all(|d| d["attempts"] == 4), "{buried:?}");
    // Waiting behind the poison events would cost at least their retry
    // pauses one after the other (each event's pauses between its
    // attempts, ten times, less the pause slept above); anything shorter
    // shows the order went past them, whatever the machine's speed.
    let pauses: Duration = (1..platform::consumer::MAX_ATTEMPTS)
        .map(|attempt| Duration::from_millis(platform::consumer::retry_pause_ms(attempt) as u64))
        .sum();
    let held_up = pauses * 10 - poll;
    assert!(
        lag < held_up,
        "the order waited {lag:?} behind the poison events (held up would be {held_up:?})"
    );
}
