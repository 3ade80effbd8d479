//! The embedded durable event log of the all-in-one shape: a SQLite file
//! that relays append to and consumers read from by position. Old entries
//! every consumer has passed are folded into the views' snapshots and
//! dropped (see [`crate::retention`]); a rebuild starts from a snapshot and
//! replays the retained tail, so views can still be rebuilt at any time.

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

/// Why the log could not answer a read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("event log: {0}")]
    Db(#[from] sqlx::Error),
    /// The entries right after `after` were compacted: reading on would
    /// skip events, so the reader is told instead.
    #[error("the event log was compacted through position {through}; a reader at {after} would skip events (rebuild from the snapshot instead)")]
    Compacted { after: i64, through: i64 },
}

impl From<LogError> for crate::ApiError {
    fn from(err: LogError) -> crate::ApiError {
        crate::ApiError::internal(err.to_string())
    }
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
        // A log compacted to its very end has no rows; its tip is its start.
        let last: i64 = sql::query_scalar(
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events), 0), compacted_through) FROM log_start",
        )
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

    /// Up to `limit` events after position `after`, oldest first. Fails with
    /// [`LogError::Compacted`] rather than skip entries compaction removed.
    pub async fn read_after(&self, after: i64, limit: i64) -> Result<Vec<LoggedEvent>, LogError> {
        let rows = sql::query(
            "SELECT seq, event_id, event_type, order_id, payload FROM events
             WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        let events: Vec<LoggedEvent> = rows.iter().map(logged).collect();
        // The next entry right after `after` proves nothing was skipped (the
        // usual case); otherwise ask where the log starts. Asked after the
        // entries were read: compaction moves the start in the transaction
        // that deletes, so a deletion that touched this read shows here.
        if events.first().is_none_or(|e| e.seq != after + 1) {
            let through = self.compacted_through().await?;
            if after < through {
                return Err(LogError::Compacted { after, through });
            }
        }
        Ok(events)
    }

    /// The position through which entries may have been compacted away; the
    /// retained log starts after it (0: nothing was compacted).
    pub async fn compacted_through(&self) -> Result<i64, sqlx::Error> {
        sql::query_scalar("SELECT compacted_through FROM log_start WHERE id = 1")
            .fetch_one(&self.db)
            .await
    }

    /// Position and logging time of the oldest `limit` retained entries.
    pub async fn oldest(&self, limit: i64) -> Result<Vec<(i64, i64)>, sqlx::Error> {
        let rows = sql::query("SELECT seq, logged_at FROM events ORDER BY seq LIMIT ?")
            .bind(limit)
            .fetch_all(&self.db)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Deletes up to `batch` of the oldest entries at or before `through`
    /// in one transaction and moves the log's start past them. Returns how
    /// many went; the caller checked every reader and snapshot has them.
    pub async fn compact(&self, through: i64, batch: i64, now: i64) -> Result<u64, sqlx::Error> {
        self.db
            .write(move |conn| {
                Box::pin(async move {
                    let start: i64 =
                        sql::query_scalar("SELECT compacted_through FROM log_start WHERE id = 1")
                            .fetch_one(&mut *conn)
                            .await?;
                    let upto: Option<i64> = sql::query_scalar(
                        "SELECT MAX(seq) FROM (SELECT seq FROM events WHERE seq <= ? ORDER BY seq LIMIT ?)",
                    )
                    .bind(through)
                    .bind(batch)
                    .fetch_one(&mut *conn)
                    .await?;
                    let Some(upto) = upto else { return Ok(0) };
                    let done = sql::query("DELETE FROM events WHERE seq <= ?")
                        .bind(upto)
                        .execute(&mut *conn)
                        .await?;
                    sql::query(
                        "UPDATE log_start SET compacted_through = ?, compacted_at = ? WHERE id = 1",
                    )
                    .bind(upto.max(start))
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    Ok(done.rows_affected())
                })
            })
            .await
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
        Ok(rows.iter().map(logged).collect())
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

fn logged(r: &sql::Row) -> LoggedEvent {
    LoggedEvent {
        seq: r.get(0),
        event_id: r.get(1),
        event_type: r.get(2),
        order_id: r.get(3),
        payload: r.get(4),
    }
}
