//! The NATS JetStream transport against a real nats-server. Runs when
//! HANWHA_TEST_NATS_URL names one (CI always sets it) and fails if it
//! cannot reach it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use contracts::event::OrderFacts;
use contracts::{Event, EventType};
use platform::consumer::{EventHandler, HandlerError};
use platform::event_log::NewEvent;
use platform::nats::{self, NatsBus};
use platform::shutdown::shutdown_pair;
use platform::sql;
use platform::transport::EventSink;
use platform::{Conn, Db, Location, Migrations};

/// Records each event it sees; refuses every event of order 13.
struct Recorder;

#[async_trait]
impl EventHandler for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn wants(&self, _: EventType) -> bool {
        true
    }

    async fn handle(&self, conn: &mut Conn, event: &Event) -> Result<(), HandlerError> {
        if event.order_id == 13 {
            return Err(HandlerError::Rejected("order 13 is cursed".into()));
        }
        sql::query("INSERT INTO seen (event_id, order_id) VALUES (?, ?)")
            .bind(event.event_id.to_string())
            .bind(event.order_id)
            .execute(conn)
            .await?;
        Ok(())
    }
}

fn event(order_id: i64) -> NewEvent {
    let facts = OrderFacts {
        order_id,
        menu_name: "pizza".into(),
        qty: 1,
        price: 1000,
        address: "suwon".into(),
        store_id: 1,
        customer_id: 1,
        correlation_id: uuid::Uuid::nil(),
    };
    let ev = Event::new(EventType::MenuOrdered, &facts, order_id, "customer:1", 1, 0);
    NewEvent {
        event_id: ev.event_id.to_string(),
        event_type: ev.event_type.as_str().to_string(),
        order_id,
        payload: serde_json::to_string(&ev).expect("encode"),
    }
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count(db: &Db, sql: &str) -> i64 {
    sql::query_scalar(sql).fetch_one(db).await.expect("count")
}

#[tokio::test]
async fn events_are_applied_once_and_a_failing_one_becomes_a_dead_letter() {
    let Ok(url) = std::env::var("HANWHA_TEST_NATS_URL") else {
        eprintln!("HANWHA_TEST_NATS_URL unset: skipping the NATS transport test");
        return;
    };
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let bus = NatsBus::connect(&url, &format!("TEST_{tag}"), &format!("test{tag}"))
        .await
        .expect("reach the NATS server named by HANWHA_TEST_NATS_URL");

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("m")).expect("dir");
    std::fs::write(
        dir.path().join("m/100_seen.sql"),
        "CREATE TABLE seen (event_id TEXT PRIMARY KEY, order_id INTEGER NOT NULL);",
    )
    .expect("migration");
    let migrator = || sqlx::migrate::Migrator::new(dir.path().join("m"));
    let migrations = Migrations {
        sqlite: migrator().await.expect("migrator"),
        postgres: migrator().await.expect("migrator"),
        mysql: migrator().await.expect("migrator"),
    };
    let location = Location::Sqlite(dir.path().join("recorder.db"));
    let db = Db::open(&location, &migrations).await.expect("db");

    // Twenty events, published twice: the broker keeps one of each.
    let events: Vec<NewEvent> = (1..=20).map(event).collect();
    bus.publish("test", &events).await.expect("publish");
    bus.publish("test", &events).await.expect("publish again");

    let handler: Arc<dyn EventHandler> = Arc::new(Recorder);
    let (stop, shutdown) = shutdown_pair();
    let task = nats::spawn_consumer(handler.clone(), db.clone(), bus.clone(), shutdown);
    wait_for("19 events applied and one dead letter", async || {
        count(&db, "SELECT COUNT(*) FROM seen").await == 19
            && count(&db, "SELECT COUNT(*) FROM dead_letters").await == 1
    })
    .await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM seen WHERE order_id = 13").await,
        0
    );
    let attempts = count(&db, "SELECT attempts FROM dead_letters").await;
    assert_eq!(attempts, platform::consumer::MAX_ATTEMPTS as i64);
    stop.trigger();
    task.await.expect("consumer stops");

    // A restarted consumer resumes after what it acknowledged.
    let more: Vec<NewEvent> = (21..=25).map(event).collect();
    bus.publish("test", &more).await.expect("publish more");
    let (stop, shutdown) = shutdown_pair();
    let task = nats::spawn_consumer(handler, db.clone(), bus.clone(), shutdown);
    wait_for("the new events", async || {
        count(&db, "SELECT COUNT(*) FROM seen").await == 24
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM seen").await, 24);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM dead_letters").await, 1);
    stop.trigger();
    task.await.expect("consumer stops");
    bus.delete_stream().await.expect("clean up the test stream");
}
