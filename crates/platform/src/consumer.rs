//! Consumers: each service reads the event log from its own position and
//! applies the events it cares about. The effect, the record that the event
//! was handled (inbox) and the new position commit in one transaction, so a
//! redelivered event changes nothing. An event that keeps failing goes to the
//! service's dead letters after a bounded number of attempts, and the
//! consumer moves on: one bad event never holds up the others.

use std::sync::Arc;
use std::time::Duration;

use crate::sql;
use async_trait::async_trait;
use contracts::{Event, EventType};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::db::{Conn, Db};
use crate::event_log::{EventLog, LoggedEvent};
use crate::shutdown::Shutdown;

/// Why a handler could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Rejected(String),
}

#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Name of the consumer; its position and dead letters are kept under it.
    fn name(&self) -> &'static str;

    /// Event types this consumer applies; the rest it skips.
    fn wants(&self, event_type: EventType) -> bool;

    /// Applies one event inside the consumer's transaction.
    async fn handle(&self, conn: &mut Conn, event: &Event) -> Result<(), HandlerError>;

    /// Called after a transaction with applied events committed, e.g. to
    /// wake the outbox relay or push live notifications.
    fn committed(&self) {}
}

/// How often an event is tried before it becomes a dead letter.
pub const MAX_ATTEMPTS: u32 = 4;
const BATCH: i64 = 256;

pub async fn position(db: &Db, consumer: &str) -> Result<i64, sqlx::Error> {
    let pos: Option<i64> =
        sql::query_scalar("SELECT position FROM consumer_cursor WHERE consumer = ?")
            .bind(consumer)
            .fetch_optional(db)
            .await?;
    Ok(pos.unwrap_or(0))
}

async fn set_position(conn: &mut Conn, consumer: &str, pos: i64) -> Result<(), sqlx::Error> {
    let upsert = sql::upsert(
        conn.backend(),
        "INSERT INTO consumer_cursor (consumer, position) VALUES (?1, ?2)",
        "(consumer)",
        "position = ?2",
    );
    sql::query(upsert)
        .bind(consumer)
        .bind(pos)
        .execute(conn)
        .await?;
    Ok(())
}

async fn already_handled(conn: &mut Conn, event_id: &str) -> Result<bool, sqlx::Error> {
    let found: i64 = sql::query_scalar("SELECT COUNT(*) FROM inbox WHERE event_id = ?")
        .bind(event_id)
        .fetch_one(conn)
        .await?;
    Ok(found > 0)
}

async fn mark_handled(conn: &mut Conn, event_id: &str) -> Result<(), sqlx::Error> {
    sql::query("INSERT INTO inbox (event_id, handled_at) VALUES (?, ?)")
        .bind(event_id)
        .bind(crate::clock::now_ms())
        .execute(conn)
        .await?;
    Ok(())
}

enum Outcome {
    Applied,
    Skipped,
}

/// Applies one event in a savepoint of `conn`'s transaction: either the
/// effect and its inbox row both land, or neither.
async fn apply(
    handler: &dyn EventHandler,
    conn: &mut Conn,
    logged: &LoggedEvent,
) -> Result<Outcome, HandlerError> {
    let Some(event_type) = EventType::parse(&logged.event_type) else {
        return Ok(Outcome::Skipped);
    };
    if !handler.wants(event_type) || already_handled(conn, &logged.event_id).await? {
        return Ok(Outcome::Skipped);
    }
    let event: Event = serde_json::from_str(&logged.payload)
        .map_err(|e| HandlerError::Rejected(format!("malformed event: {e}")))?;
    let mut savepoint = conn.savepoint().await?;
    handler.handle(&mut savepoint, &event).await?;
    mark_handled(&mut savepoint, &logged.event_id).await?;
    savepoint.commit().await?;
    Ok(Outcome::Applied)
}

/// Applies as much of `batch` as succeeds in one commit. Returns the event
/// that failed, if one did, with its error.
async fn apply_batch(
    handler: &Arc<dyn EventHandler>,
    db: &Db,
    batch: Vec<LoggedEvent>,
) -> Result<Option<(LoggedEvent, String)>, sqlx::Error> {
    let h = handler.clone();
    let (applied, failed) = db
        .write(move |conn| {
            Box::pin(async move {
                let mut reached = None;
                let mut failed = None;
                let mut applied = false;
                for logged in batch {
                    match apply(h.as_ref(), conn, &logged).await {
                        Ok(Outcome::Applied) => {
                            applied = true;
                            reached = Some(logged.seq);
                        }
                        Ok(Outcome::Skipped) => reached = Some(logged.seq),
                        Err(e) => {
                            let error = e.to_string();
                            failed = Some((logged, error));
                            break;
                        }
                    }
                }
                if let Some(seq) = reached {
                    set_position(conn, h.name(), seq).await?;
                }
                Ok::<_, sqlx::Error>((applied, failed))
            })
        })
        .await?;
    if applied {
        handler.committed();
    }
    Ok(failed)
}

/// Applies events in order in one commit, without positions (the broker
/// tracks those by acks). Returns the index of the first event that failed,
/// with its error; the events before it are applied.
pub(crate) async fn apply_all(
    handler: &Arc<dyn EventHandler>,
    db: &Db,
    batch: Vec<LoggedEvent>,
) -> Result<Option<(usize, String)>, sqlx::Error> {
    let h = handler.clone();
    let (applied, failed) = db
        .write(move |conn| {
            Box::pin(async move {
                let mut applied = false;
                for (i, logged) in batch.iter().enumerate() {
                    match apply(h.as_ref(), conn, logged).await {
                        Ok(Outcome::Applied) => applied = true,
                        Ok(Outcome::Skipped) => {}
                        Err(e) => return Ok::<_, sqlx::Error>((applied, Some((i, e.to_string())))),
                    }
                }
                Ok((applied, None))
            })
        })
        .await?;
    if applied {
        handler.committed();
    }
    Ok(failed)
}

/// Parks an event in the consumer's dead letters.
pub(crate) async fn bury(
    consumer: &'static str,
    db: &Db,
    logged: &LoggedEvent,
    error: &str,
    attempts: i64,
) -> Result<(), sqlx::Error> {
    tracing::error!(
        consumer,
        event_id = %logged.event_id,
        event_type = %logged.event_type,
        order_id = logged.order_id,
        %error,
        "event moved to dead letters"
    );
    let (logged, error) = (logged.clone(), error.to_string());
    db.write(move |conn| {
        Box::pin(async move {
            sql::query(
                "INSERT INTO dead_letters (log_seq, event_id, event_type, order_id, payload, error, attempts, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(logged.seq)
            .bind(&logged.event_id)
            .bind(&logged.event_type)
            .bind(logged.order_id)
            .bind(&logged.payload)
            .bind(&error)
            .bind(attempts)
            .bind(crate::clock::now_ms())
            .execute(conn)
            .await?;
            Ok(())
        })
    })
    .await
}

/// Retries one failing event alone, with backoff; after the last attempt it
/// becomes a dead letter. Either way the position moves past it.
async fn retry_or_bury(
    handler: &Arc<dyn EventHandler>,
    db: &Db,
    logged: LoggedEvent,
    first_error: String,
) -> Result<(), sqlx::Error> {
    let mut error = first_error;
    for attempt in 2..=MAX_ATTEMPTS {
        tokio::time::sleep(Duration::from_millis(20 * 4u64.pow(attempt - 2))).await;
        let (h, ev) = (handler.clone(), logged.clone());
        let result = db
            .write(move |conn| {
                Box::pin(async move {
                    apply(h.as_ref(), conn, &ev).await?;
                    set_position(conn, h.name(), ev.seq).await?;
                    Ok::<_, HandlerError>(())
                })
            })
            .await;
        match result {
            Ok(()) => {
                handler.committed();
                return Ok(());
            }
            Err(e) => error = e.to_string(),
        }
    }
    bury(handler.name(), db, &logged, &error, MAX_ATTEMPTS as i64).await?;
    let name = handler.name();
    let seq = logged.seq;
    db.write(move |conn| Box::pin(async move { set_position(conn, name, seq).await }))
        .await
}

/// Reads everything after the consumer's position once; returns how many
/// log entries it moved past.
pub async fn consume_once(
    handler: &Arc<dyn EventHandler>,
    db: &Db,
    log: &EventLog,
) -> Result<usize, sqlx::Error> {
    let from = position(db, handler.name()).await?;
    let batch = log.read_after(from, BATCH).await?;
    let moved = batch.len();
    if moved == 0 {
        return Ok(0);
    }
    if let Some((logged, error)) = apply_batch(handler, db, batch).await? {
        retry_or_bury(handler, db, logged, error).await?;
    }
    Ok(moved)
}

/// Runs a consumer until shutdown.
pub fn spawn_consumer(
    handler: Arc<dyn EventHandler>,
    db: Db,
    log: EventLog,
    mut shutdown: Shutdown,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tip = log.watch_tip();
        loop {
            if shutdown.is_triggered() {
                break;
            }
            match consume_once(&handler, &db, &log).await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(consumer = handler.name(), error = %e, "consumer failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            tokio::select! {
                _ = tip.changed() => {}
                // Also poll: a rebuild may have reset the position.
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.wait() => {}
            }
        }
    })
}

/// A dead letter as an admin sees it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub id: i64,
    pub consumer: String,
    pub log_seq: i64,
    pub event_id: String,
    pub event_type: String,
    pub order_id: i64,
    pub event: serde_json::Value,
    pub error: String,
    pub attempts: i64,
    pub created_at: i64,
}

pub async fn dead_letters(db: &Db, consumer: &str) -> Result<Vec<DeadLetter>, sqlx::Error> {
    let rows = sql::query(
        "SELECT id, log_seq, event_id, event_type, order_id, payload, error, attempts, created_at
         FROM dead_letters ORDER BY id",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let payload: String = r.get(5);
            DeadLetter {
                id: r.get(0),
                consumer: consumer.to_string(),
                log_seq: r.get(1),
                event_id: r.get(2),
                event_type: r.get(3),
                order_id: r.get(4),
                event: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
                error: r.get(6),
                attempts: r.get(7),
                created_at: r.get(8),
            }
        })
        .collect())
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no dead letter {0}")]
    NotFound(i64),
    #[error("the event failed again: {0}")]
    FailedAgain(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Applies a dead letter again; on success it leaves the list, on failure it
/// stays with its attempt count raised.
pub async fn replay(handler: &Arc<dyn EventHandler>, db: &Db, id: i64) -> Result<(), ReplayError> {
    let h = handler.clone();
    let result = db
        .write(move |conn| {
            Box::pin(async move {
                let row = sql::query(
                    "SELECT log_seq, event_id, event_type, order_id, payload FROM dead_letters WHERE id = ?",
                )
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or(ReplayError::NotFound(id))?;
                let logged = LoggedEvent {
                    seq: row.get(0),
                    event_id: row.get(1),
                    event_type: row.get(2),
                    order_id: row.get(3),
                    payload: row.get(4),
                };
                apply(h.as_ref(), conn, &logged)
                    .await
                    .map_err(|e| ReplayError::FailedAgain(e.to_string()))?;
                sql::query("DELETE FROM dead_letters WHERE id = ?")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                Ok::<_, ReplayError>(())
            })
        })
        .await;
    match result {
        Ok(()) => {
            handler.committed();
            Ok(())
        }
        Err(ReplayError::FailedAgain(error)) => {
            let message = error.clone();
            db.write(move |conn| {
                Box::pin(async move {
                    sql::query(
                        "UPDATE dead_letters SET attempts = attempts + 1, error = ? WHERE id = ?",
                    )
                    .bind(message)
                    .bind(id)
                    .execute(conn)
                    .await
                })
            })
            .await?;
            Err(ReplayError::FailedAgain(error))
        }
        Err(e) => Err(e),
    }
}

/// Drops a dead letter for good (an admin decided it needs no effect).
pub async fn discard(db: &Db, id: i64) -> Result<bool, sqlx::Error> {
    db.write(move |conn| {
        Box::pin(async move {
            let done = sql::query("DELETE FROM dead_letters WHERE id = ?")
                .bind(id)
                .execute(conn)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    })
    .await
}

/// Forgets what the consumer handled so that it reads the whole log again;
/// the caller clears its read model in the same transaction.
pub async fn reset(conn: &mut Conn, consumer: &str) -> Result<(), sqlx::Error> {
    sql::query("DELETE FROM inbox").execute(&mut *conn).await?;
    sql::query("DELETE FROM dead_letters")
        .execute(&mut *conn)
        .await?;
    set_position(conn, consumer, 0).await
}
