//! The embedded durable event log of the all-in-one shape: a SQLite file
//! that relays append to and consumers read from by position. It keeps every
//! event, so read models can be rebuilt from it at any time.

use std::path::Path;

use crate::sql;
use tokio::sync::watch;

use crate::db::{Db, DbError};

/// An event as stored in the log, with its position.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    pub seq: i64,
    pub event_id: String,
    pub event_type: String,
    pub order_id: i64,
    pub payload: String,
}

/// An event on its way into the log.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: String,
    pub event_type: String,
    pub order_id: i64,
    pub payload: String,
}

#[derive(Clone)]
pub struct EventLog {
    db: Db,
    tip: watch::Sender<i64>,
}

impl EventLog {
    pub async fn open(path: &Path) -> Result<EventLog, DbError> {
        let migrator = sqlx::migrate!("./log_migrations");
        let db = Db::open_sqlite(path, &migrator).await?;
        let last: i64 = sql::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&db)
            .await?;
        let (tip, _) = watch::channel(last);
        Ok(EventLog { db, tip })
    }

    /// Appends in order; an event id already in the log is skipped.
    pub async fn append(&self, source: &str, events: &[NewEvent]) -> Result<(), sqlx::Error> {
        if events.is_empty() {
            return Ok(());
        }
        let now = crate::clock::now_ms();
        let source = source.to_string();
        let events = events.to_vec();
        let last = self
            .db
            .write(move |conn| {
                Box::pin(async move {
                    for ev in &events {
                        sql::query(
                            "INSERT INTO events (event_id, event_type, order_id, payload, source, logged_at)
                             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
                        )
                        .bind(&ev.event_id)
                        .bind(&ev.event_type)
                        .bind(ev.order_id)
                        .bind(&ev.payload)
                        .bind(&source)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                    }
                    sql::query_scalar::<i64>("SELECT COALESCE(MAX(seq), 0) FROM events")
                        .fetch_one(&mut *conn)
                        .await
                })
            })
            .await?;
        self.tip.send_replace(last);
        Ok(())
    }

    /// Up to `limit` events after position `after`, oldest first.
    pub async fn read_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LoggedEvent>, sqlx::Error> {
        let rows = sql::query(
            "SELECT seq, event_id, event_type, order_id, payload FROM events
             WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| LoggedEvent {
                seq: r.get(0),
                event_id: r.get(1),
                event_type: r.get(2),
                order_id: r.get(3),
                payload: r.get(4),
            })
            .collect())
    }

    /// Every event of one order, oldest first.
    pub async fn for_order(&self, order_id: i64) -> Result<Vec<LoggedEvent>, sqlx::Error> {
        let rows = sql::query(
            "SELECT seq, event_id, event_type, order_id, payload FROM events
             WHERE order_id = ? ORDER BY seq",
        )
        .bind(order_id)
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| LoggedEvent {
                seq: r.get(0),
                event_id: r.get(1),
                event_type: r.get(2),
                order_id: r.get(3),
                payload: r.get(4),
            })
            .collect())
    }

    /// Position of the newest event; changes whenever events are appended.
    pub fn watch_tip(&self) -> watch::Receiver<i64> {
        self.tip.subscribe()
    }

    pub fn tip(&self) -> i64 {
        *self.tip.borrow()
    }

    pub async fn close(&self) {
        self.db.close().await;
    }
}
