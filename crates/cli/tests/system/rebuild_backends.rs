//! The rebuild's swap on every backend a view may live on: SQLite always;
//! PostgreSQL and MySQL/MariaDB when HANWHA_TEST_POSTGRES_URL /
//! HANWHA_TEST_MYSQL_URL name a server. Each run makes its own database and
//! drops it after.

use std::sync::Arc;

use contracts::event::OrderFacts;
use contracts::{Event, EventType};
use platform::consumer::{consume_once, EventHandler};
use platform::event_log::NewEvent;
use platform::sql::{self, Backend};
use platform::{Db, EventLog, Location};
use sqlx::migrate::MigrateDatabase;
use sqlx::Connection;

fn location(backend: Backend, dir: &std::path::Path) -> Option<Location> {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let server = |var: &str| match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(format!("{}/hanwha_t_{tag}", url.trim_end_matches('/'))),
        _ => {
            eprintln!("{var} unset: skipping the {backend} run");
            None
        }
    };
    match backend {
        Backend::Sqlite => Some(Location::Sqlite(dir.join("view.db"))),
        Backend::Postgres => server("HANWHA_TEST_POSTGRES_URL").map(Location::Postgres),
        Backend::MySql => server("HANWHA_TEST_MYSQL_URL")
            .map(|url| Location::MySql(url.replacen("mariadb://", "mysql://", 1))),
    }
}

async fn drop_database(location: &Location) {
    match location {
        Location::Postgres(url) => {
            let (server, name) = url.rsplit_once('/').expect("database name");
            let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
                .await
                .expect("connect");
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await
                .expect("drop");
        }
        Location::MySql(url) => sqlx::MySql::drop_database(url).await.expect("drop"),
        Location::Sqlite(_) => {}
    }
}

fn event(event_type: EventType, order_id: i64, timestamp: i64) -> NewEvent {
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
    let ev = Event::new(event_type, &facts, order_id, "customer:1", 1, timestamp);
    NewEvent {
        event_id: ev.event_id.to_string(),
        event_type: event_type.as_str().to_string(),
        order_id,
        payload: serde_json::to_string(&ev).expect("json"),
    }
}

async fn ids(db: &Db) -> Vec<(i64, String, String)> {
    sql::query("SELECT id, event_id, recipient FROM notifications ORDER BY id")
        .fetch_all(db)
        .await
        .expect("notifications")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn statuses(db: &Db) -> Vec<(i64, String, i64)> {
    sql::query("SELECT order_id, status, (SELECT COUNT(*) FROM status_history h WHERE h.order_id = c.order_id) FROM status_checks c ORDER BY order_id")
        .fetch_all(db)
        .await
        .expect("status")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn views_keep_their_rows_and_ids_across_a_rebuild(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(at) = location(backend, dir.path()) else {
        return;
    };
    let log = EventLog::open(&dir.path().join("events.db"))
        .await
        .expect("log");
    let notes = Db::open(&at, &notification::migrations())
        .await
        .expect("notification db");
    let notes_handler: Arc<dyn EventHandler> = Arc::new(
        notification::NotificationService::new(notes.clone(), platform::TokenKeys::ephemeral())
            .handler(),
    );
    // Each view has its own database, as in every shape of the platform.
    let status_at = match &at {
        Location::Sqlite(_) => Location::Sqlite(dir.path().join("status.db")),
        Location::Postgres(url) => Location::Postgres(format!("{url}_status")),
        Location::MySql(url) => Location::MySql(format!("{url}_status")),
    };
    let status_db = Db::open(&status_at, &status::migrations())
        .await
        .expect("status db");
    let status_handler: Arc<dyn EventHandler> = Arc::new(status::StatusEvents::served());

    log.append(
        "test",
        &[
            event(EventType::MenuOrdered, 1, 10),
            event(EventType::CookStarted, 1, 20),
            event(EventType::MenuOrdered, 2, 30),
        ],
    )
    .await
    .expect("append");
    for _ in 0..2 {
        consume_once(&notes_handler, &notes, &log)
            .await
            .expect("consume");
        consume_once(&status_handler, &status_db, &log)
            .await
            .expect("consume");
    }
    let before = ids(&notes).await;
    assert_eq!(before.len(), 5, "{before:?}");
    let view_before = statuses(&status_db).await;

    let done = notification::rebuild(&notes, &log)
        .await
        .expect("rebuild notifications");
    assert_eq!((done.replayed, done.position), (3, 3));
    assert_eq!(ids(&notes).await, before, "{backend}: ids kept");
    status::rebuild(&status_db, &log)
        .await
        .expect("rebuild status");
    assert_eq!(
        statuses(&status_db).await,
        view_before,
        "{backend}: status view"
    );

    // The consumers go on from where the rebuild left them, with new ids above.
    log.append("test", &[event(EventType::CookStarted, 2, 40)])
        .await
        .expect("append");
    consume_once(&notes_handler, &notes, &log)
        .await
        .expect("consume");
    consume_once(&status_handler, &status_db, &log)
        .await
        .expect("consume");
    let after = ids(&notes).await;
    assert_eq!(after.len(), 6);
    assert_eq!(after[..5], before[..]);
    assert!(after[5].0 > before[4].0);
    assert_eq!(statuses(&status_db).await[1].1, "Accepted");

    // The whole log folded into the snapshots and dropped: a rebuild from
    // the snapshots alone keeps every row and id.
    let (ids_now, view_now) = (ids(&notes).await, statuses(&status_db).await);
    let compaction = platform::retention::LogRetention {
        log: log.clone(),
        consumers: vec![
            ("notification", notes.clone()),
            ("status", status_db.clone()),
        ],
        outboxes: vec![notes.clone(), status_db.clone()],
        views: vec![
            (notification::rebuildable(), notes.clone()),
            (status::rebuildable(), status_db.clone()),
        ],
    };
    let periods = platform::retention::Periods {
        log: std::time::Duration::ZERO,
        batch: 2,
        ..Default::default()
    };
    let done = compaction
        .compact(&periods, platform::clock::now_ms() + 1)
        .await
        .expect("compact");
    assert_eq!((done.deleted, done.through), (4, 4), "{backend}: {done:?}");
    let rebuilt = notification::rebuild(&notes, &log)
        .await
        .expect("rebuild notifications from the snapshot");
    assert_eq!((rebuilt.snapshot, rebuilt.replayed), (4, 0), "{backend}");
    assert_eq!(
        ids(&notes).await,
        ids_now,
        "{backend}: ids from the snapshot"
    );
    status::rebuild(&status_db, &log)
        .await
        .expect("rebuild status from the snapshot");
    assert_eq!(
        statuses(&status_db).await,
        view_now,
        "{backend}: status view from the snapshot"
    );

    notes.close().await;
    status_db.close().await;
    log.close().await;
    drop_database(&at).await;
    drop_database(&status_at).await;
}

#[tokio::test]
async fn sqlite_views_keep_their_rows_and_ids_across_a_rebuild() {
    views_keep_their_rows_and_ids_across_a_rebuild(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_views_keep_their_rows_and_ids_across_a_rebuild() {
    views_keep_their_rows_and_ids_across_a_rebuild(Backend::Postgres).await;
}

#[tokio::test]
async fn mysql_views_keep_their_rows_and_ids_across_a_rebuild() {
    views_keep_their_rows_and_ids_across_a_rebuild(Backend::MySql).await;
}
