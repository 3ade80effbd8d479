//! Live feeds: the notification stream (SSE) with catch-up after a dropped
//! connection, and `hanwha-delivery events --follow`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::scenario;
use crate::support::*;
use reqwest::StatusCode;
use serde_json::Value;

/// Reads SSE frames from a response until `want` notifications arrived.
async fn read_notifications(resp: &mut reqwest::Response, want: usize) -> Vec<(i64, Value)> {
    let mut got = Vec::new();
    let mut buf = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got.len() < want {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("notifications in time")
            .expect("stream read")
            .expect("stream open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let mut id = None;
            let mut data = None;
            let mut event = None;
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse::<i64>().ok();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = serde_json::from_str::<Value>(v.trim()).ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_string());
                }
            }
            if let (Some(id), Some(data), Some("notification")) = (id, data, event.as_deref()) {
                got.push((id, data));
            }
        }
    }
    got
}

#[tokio::test]
async fn notifications_arrive_live_and_a_reconnect_catches_up() {
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let owner = Api::login(&server, "owner").await;
    let token = customer.token.clone().expect("token");

    let mut stream = customer
        .http
        .get(server.url(&format!("/notifications/stream?access_token={token}")))
        .send()
        .await
        .expect("connect");
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/event-stream"));

    let order = id(&place(&customer, "pizza", 1).await);
    let first = read_notifications(&mut stream, 2).await;
    let kinds: Vec<&str> = first
        .iter()
        .map(|(_, n)| n["eventType"].as_str().expect("type"))
        .collect();
    assert_same_saga(
        &kinds,
        &["PaymentAgreed", "MenuOrdered"],
        "live notifications",
    );
    assert!(first.iter().all(|(_, n)| n["orderId"] == order));
    let last_seen = first.last().expect("last").0;
    drop(stream);

    // While the customer is away, the store accepts.
    wait_in_store(&owner, order).await;
    scenario::accept(&owner, order).await;
    wait_status(&customer, order, "Accepted").await;

    let mut again = customer
        .request(reqwest::Method::GET, "/notifications/stream")
        .header("Last-Event-ID", last_seen.to_string())
        .send()
        .await
        .expect("reconnect");
    let missed = read_notifications(&mut again, 1).await;
    assert_eq!(missed[0].1["eventType"], "CookStarted");
    assert!(missed[0].0 > last_seen);

    // No token, no stream.
    let anonymous = reqwest::get(server.url("/notifications/stream"))
        .await
        .expect("get");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a line in time")
        .expect("follower alive");
    serde_json::from_str::<Value>(&line).expect("JSON line")
}

#[tokio::test]
async fn events_follow_prints_new_events_as_they_happen() {
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let owner = Api::login(&server, "owner").await;
    let mut follower = Command::new(env!("CARGO_BIN_EXE_hanwha-delivery"))
        .args(["events", "--follow", "--data-dir"])
        .arg(&server.data_dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("events --follow");
    let stdout = follower.stdout.take().expect("stdout");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let order = id(&place(&customer, "pizza", 1).await);
    let first = next(&mut rx).await;
    let second = next(&mut rx).await;
    let types = [
        first["eventType"].as_str().expect("type"),
        second["eventType"].as_str().expect("type"),
    ];
    assert_same_saga(&types, &["PaymentAgreed", "MenuOrdered"], "followed events");
    wait_in_store(&owner, order).await;
    owner.put(&format!("/storeOrders/{order}/accept")).await;
    let accepted = next(&mut rx).await;
    assert_eq!(accepted["eventType"], "CookStarted");
    assert_eq!(accepted["orderId"], order);
    follower.kill().expect("stop follower");
    let _ = follower.wait();
}

#[tokio::test]
async fn metrics_count_requests_per_route_and_show_backlog_and_lag() {
    let server = Server::start(&[]);
    let customer = Api::login(&server, "customer").await;
    let order = id(&place(&customer, "pizza", 1).await);
    wait_history(&customer, order, 2).await;
    // Metrics are for operators: an admin's token on the public listener.
    let admin = Api::login(&server, "admin").await;
    let text = admin
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    let line = |prefix: &str, parts: &[&str]| {
        text.lines()
            .find(|l| l.starts_with(prefix) && parts.iter().all(|p| l.contains(p)))
            .map(str::to_string)
    };
    let placed = line(
        "hanwha_http_requests_total{",
        &[r#"route="/orders""#, r#"status="201""#, r#"method="POST""#],
    )
    .unwrap_or_else(|| panic!("no request count for POST /orders in\n{text}"));
    assert!(placed.ends_with(" 1"), "{placed}");
    assert!(line(
        "hanwha_http_request_duration_seconds_bucket{",
        &[r#"route="/orders""#]
    )
    .is_some());
    for outbox in ["order", "payment", "store", "delivery"] {
        let l = line(
            "hanwha_outbox_backlog{",
            &[&format!(r#"outbox="{outbox}""#)],
        )
        .unwrap_or_else(|| panic!("no backlog for {outbox}"));
        assert!(!l.ends_with(" -1"), "{l}");
    }
    for consumer in [
        "order",
        "payment",
        "store",
        "delivery",
        "status",
        "notification",
    ] {
        let l = line(
            "hanwha_consumer_lag{",
            &[&format!(r#"consumer="{consumer}""#)],
        )
        .unwrap_or_else(|| panic!("no lag for {consumer}"));
        assert!(!l.ends_with(" -1"), "{l}");
    }
}

/// Invented HTTP methods must not each become a metric series kept forever.
#[tokio::test]
async fn invented_methods_do_not_grow_the_metrics() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    for i in 0..150 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{i}").as_bytes()).expect("token");
        let _ = http.request(method, server.url("/orders")).send().await;
    }
    let admin = Api::login(&server, "admin").await;
    let text = admin
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    assert!(
        !text.contains("INVENTED"),
        "a made-up method became a label"
    );
    assert!(
        text.contains(r#"method="OTHER""#),
        "no OTHER method in\n{text}"
    );
}
