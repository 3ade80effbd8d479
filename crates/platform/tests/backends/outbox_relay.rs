//! Replicas that share a database each run a relay; one at a time holds
//! the outbox, so every event is published once, and each writer's events
//! in the order it wrote them, on every backend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use contracts::event::OrderFacts;
use contracts::{Event, EventType};
use platform::event_log::NewEvent;
use platform::outbox::{enqueue, relay_once};
use platform::sql::Backend;
use platform::transport::{EventSink, TransportError};

/// A broker without deduplication: it keeps every publish, copies too.
#[derive(Default)]
struct Recorder(Mutex<Vec<NewEvent>>);

#[async_trait]
impl EventSink for Recorder {
    async fn publish(&self, _source: &str, events: &[NewEvent]) -> Result<(), TransportError> {
        // A broker's round trip: long enough for the other relay to try.
        tokio::time::sleep(Duration::from_millis(3)).await;
        self.0.lock().expect("recorder").extend_from_slice(events);
        Ok(())
    }

    fn keeps_copies(&self) -> bool {
        true
    }
}

fn event(writer: i64, n: i64) -> Event {
    let facts = OrderFacts {
        order_id: writer,
        menu_name: format!("menu-{n}"),
        qty: 1,
        price: 1000,
        address: "suwon".into(),
        store_id: 1,
        customer_id: 2,
        correlation_id: uuid::Uuid::now_v7(),
    };
    Event::new(EventType::MenuOrdered, &facts, writer, "test", 1, 0)
}

async fn relays_publish_each_event_once_in_order(backend: Backend) {
    let Some(test) = crate::common::TestDb::new(backend) else {
        return;
    };
    let replicas = [test.open_with(None).await, test.open_with(None).await];
    let sink = Arc::new(Recorder::default());
    let writers_done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    const WRITERS: i64 = 4;
    const EACH: i64 = 60;

    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let db = replicas[writer as usize % 2].clone();
        let done = writers_done.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..EACH {
                let ev = event(writer, n);
                db.write(move |conn| Box::pin(async move { enqueue(conn, &ev).await }))
                    .await
                    .expect("enqueue");
            }
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
    }
    let mut relays = Vec::new();
    for (i, db) in replicas.iter().enumerate() {
        let (db, sink, done) = (db.clone(), sink.clone(), writers_done.clone());
        relays.push(tokio::spawn(async move {
            let relay = format!("relay-{i}");
            loop {
                let writing = done.load(std::sync::atomic::Ordering::SeqCst) < WRITERS as usize;
                let moved = relay_once("test", &relay, &db, sink.as_ref())
                    .await
                    .expect("relay");
                if moved == 0 {
                    if !writing && platform::outbox::backlog(&db).await.expect("backlog") == 0 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }));
    }
    for t in tasks.into_iter().chain(relays) {
        t.await.expect("task");
    }

    let published = sink.0.lock().expect("recorder").clone();
    let mut per_writer: HashMap<i64, Vec<String>> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for ev in &published {
        assert!(
            seen.insert(ev.event_id.clone()),
            "{} published twice",
            ev.event_id
        );
        let payload: serde_json::Value = serde_json::from_str(&ev.payload).expect("json");
        per_writer
            .entry(ev.order_id)
            .or_default()
            .push(payload["menuName"].as_str().expect("menuName").to_string());
    }
    assert_eq!(published.len() as i64, WRITERS * EACH);
    for (writer, menus) in per_writer {
        let written: Vec<String> = (0..EACH).map(|n| format!("menu-{n}")).collect();
        assert_eq!(menus, written, "writer {writer}'s events out of order");
    }
    for db in replicas {
        db.close().await;
    }
    test.drop_database().await;
}

#[tokio::test]
async fn sqlite_relays_publish_each_event_once_in_order() {
    relays_publish_each_event_once_in_order(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_relays_publish_each_event_once_in_order() {
    relays_publish_each_event_once_in_order(Backend::Postgres).await;
}

#[tokio::test]
async fn mysql_relays_publish_each_event_once_in_order() {
    relays_publish_each_event_once_in_order(Backend::MySql).await;
}
