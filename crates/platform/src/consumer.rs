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
use crate::event_log::{EventLog, LogError, LoggedEvent};
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

    /// The table that records which events this handler's effects hold. A
    /// read model rebuilt beside the served one keeps its own, which
    /// replaces this one when the new copy is swapped in.
    fn inbox(&self) -> &'static str {
        "inbox"
    }
}

/// How often an event is tried before it becomes a dead letter.
pub const MAX_ATTEMPTS: u32 = 4;
const BATCH: i64 = 256;
const POLL: Duration = Duration::from_millis(500);

pub async fn position(db: &Db, consumer: &str) -> Result<i64, sqlx::Error> {
    let pos: Option<i64> =
        sql::query_scalar("SELECT position FROM consumer_cursor WHERE consumer = ?")
            .bind(consumer)
            .fetch_optional(db)
            .await?;
    Ok(pos.unwrap_or(0))
}

/// The position as the transaction on `conn` sees it.
pub(crate) async fn position_in(conn: &mut Conn, consumer: &str) -> Result<i64, sqlx::Error> {
    let pos: Option<i64> =
        sql::query_scalar("SELECT position FROM consumer_cursor WHERE consumer = ?")
            .bind(consumer)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(pos.unwrap_or(0))
}

pub(crate) async fn set_position(
    conn: &mut Conn,
    consumer: &str,
    pos: i64,
) -> Result<(), sqlx::Error> {
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

async fn already_handled(
    conn: &mut Conn,
    inbox: &str,
    event_id: &str,
) -> Result<bool, sqlx::Error> {
    let found: i64 = sql::query_scalar(format!("SELECT COUNT(*) FROM {inbox} WHERE event_id = ?"))
        .bind(event_id)
        .fetch_one(conn)
        .await?;
    Ok(found > 0)
}

async fn mark_handled(conn: &mut Conn, inbox: &str, event_id: &str) -> Result<(), sqlx::Error> {
    sql::query(format!(
        "INSERT INTO {inbox} (event_id, handled_at) VALUES (?, ?)"
    ))
    .bind(event_id)
    .bind(crate::clock::now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) enum Outcome {
    Applied,
    Skipped,
}

/// Applies one event in a savepoint of `conn`'s transaction: either the
/// effect and its inbox row both land, or neither.
pub(crate) async fn apply(
    handler: &dyn EventHandler,
    conn: &mut Conn,
    logged: &LoggedEvent,
) -> Result<Outcome, HandlerError> {
    let Some(event_type) = EventType::parse(&logged.event_type) else {
        // A newer service may publish types this build does not know; the
        // consumer moves past it once, so this is logged once.
        tracing::warn!(
            consumer = handler.name(),
            event_id = %logged.event_id,
            event_type = %logged.event_type,
            log_seq = logged.seq,
            "unknown event type skipped"
        );
        return Ok(Outcome::Skipped);
    };
    let inbox = handler.inbox();
    if !handler.wants(event_type) || already_handled(conn, inbox, &logged.event_id).await? {
        return Ok(Outcome::Skipped);
    }
    let event: Event = serde_json::from_str(&logged.payload)
        .map_err(|e| HandlerError::Rejected(format!("malformed event: {e}")))?;
    let mut savepoint = conn.savepoint().await?;
    handler.handle(&mut savepoint, &event).await?;
    mark_handled(&mut savepoint, inbox, &logged.event_id).await?;
    savepoint.commit().await?;
    Ok(Outcome::Applied)
}

/// How a batch read at one position ended.
enum Batch {
    /// Committed; `parked` when an event failed and waits for a retry.
    Done { applied: bool, parked: bool },
    /// The position is no longer where the batch was read (a rebuild swapped
    /// in its copy, or another replica moved on): nothing was committed.
    Overtaken,
}

/// Applies `batch`, read after position `from`, in one commit. The position
/// is compared and set inside the same transaction, so a batch read before
/// someone else moved the position lands nowhere. An event that fails is
/// parked for retries and the batch goes on past it.
async fn apply_batch(
    handler: &Arc<dyn EventHandler>,
    db: &Db,
    from: i64,
    batch: Vec<LoggedEvent>,
) -> Result<Batch, sqlx::Error> {
    let h = handler.clone();
    let outcome = db
        .write(move |conn| {
            Box::pin(async move {
                if position_in(conn, h.name()).await? != from {
                    return Ok(Batch::Overtaken);
                }
                let (mut applied, mut parked) = (false, false);
                let mut reached = from;
                for logged in batch {
                    match apply(h.as_ref(), conn, &logged).await {
                        Ok(Outcome::Applied) => applied = true,
                        Ok(Outcome::Skipped) => {}
                        Err(e) => {
                            park(conn, h.name(), &logged, &e.to_string()).await?;
                            parked = true;
                        }
                    }
                    reached = logged.seq;
                }
                set_position(conn, h.name(), reached).await?;
                Ok::<_, sqlx::Error>(Batch::Done { applied, parked })
            })
        })
        .await?;
    if let Batch::Done { applied: true, .. } = outcome {
        handler.committed();
    }
    Ok(outcome)
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

/// Applies events in order in one commit, without positions (a broker
/// that tracks them by committed offsets): an event that fails is parked
/// for retries beside the main path and the batch goes on past it, as on
/// the embedded log. A copy of an event already set aside is skipped, so a
/// redelivery never parks or buries it twice. Returns whether one was
/// parked.
pub(crate) async fn apply_parking(
    handler: &Arc<dyn EventHandler>,
    db: &Db,
    batch: Vec<LoggedEvent>,
) -> Result<bool, sqlx::Error> {
    let h = handler.clone();
    let (applied, parked) = db
        .write(move |conn| {
            Box::pin(async move {
                let (mut applied, mut parked) = (false, false);
                for logged in &batch {
                    if is_set_aside(conn, &logged.event_id).await? {
                        continue;
                    }
                    match apply(h.as_ref(), conn, logged).await {
                        Ok(Outcome::Applied) => applied = true,
                        Ok(Outcome::Skipped) => {}
                        Err(e) => {
                            park(conn, h.name(), logged, &e.to_string()).await?;
                            parked = true;
                        }
                    }
                }
                Ok::<_, sqlx::Error>((applied, parked))
            })
        })
        .await?;
    if applied {
        handler.committed();
    }
    Ok(parked)
}

async fn insert_dead_letter(
    conn: &mut Conn,
    logged: &LoggedEvent,
    error: &str,
    attempts: i64,
) -> Result<(), sqlx::Error> {
    sql::query(
        "INSERT INTO dead_letters (log_seq, event_id, event_type, order_id, payload, error, attempts, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(logged.seq)
    .bind(&logged.event_id)
    .bind(&logged.event_type)
    .bind(logged.order_id)
    .bind(&logged.payload)
    .bind(error)
    .bind(attempts)
    .bind(crate::clock::now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

fn log_buried(consumer: &str, logged: &LoggedEvent, error: &str) {
    tracing::error!(
        consumer,
        event_id = %logged.event_id,
        event_type = %logged.event_type,
        order_id = logged.order_id,
        %error,
        "event moved to dead letters"
    );
}

/// Parks an event in the consumer's dead letters.
pub(crate) async fn bury(
    consumer: &'static str,
    db: &Db,
    logged: &LoggedEvent,
    error: &str,
    attempts: i64,
) -> Result<(), sqlx::Error> {
    log_buried(consumer, logged, error);
    let (logged, error) = (logged.clone(), error.to_string());
    db.write(move |conn| {
        Box::pin(async move { insert_dead_letter(conn, &logged, &error, attempts).await })
    })
    .await
}

/// Parks an event in the dead letters inside the caller's transaction.
pub(crate) async fn bury_in(
    conn: &mut Conn,
    consumer: &str,
    logged: &LoggedEvent,
    error: &str,
    attempts: i64,
) -> Result<(), sqlx::Error> {
    log_buried(consumer, logged, error);
    insert_dead_letter(conn, logged, error, attempts).await
}

/// True when the event is a dead letter or waiting for a retry already.
pub(crate) async fn is_set_aside(conn: &mut Conn, event_id: &str) -> Result<bool, sqlx::Error> {
    let found: i64 = sql::query_scalar(
        "SELECT (SELECT COUNT(*) FROM dead_letters WHERE event_id = ?1)
              + (SELECT COUNT(*) FROM parked_events WHERE event_id = ?1)",
    )
    .bind(event_id)
    .fetch_one(conn)
    .await?;
    Ok(found > 0)
}

/// Sets aside an event that failed once, to be tried again after a pause
/// beside the main path, so the events behind it are not held up.
async fn park(
    conn: &mut Conn,
    consumer: &str,
    logged: &LoggedEvent,
    error: &str,
) -> Result<(), sqlx::Error> {
    tracing::warn!(
        consumer,
        event_id = %logged.event_id,
        event_type = %logged.event_type,
        order_id = logged.order_id,
        %error,
        "event failed; parked for a retry"
    );
    sql::query(sql::insert_ignoring_duplicates(
        conn.backend(),
        "INSERT INTO parked_events (log_seq, event_id, event_type, order_id, payload, error, attempts, retry_at)
         VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
        "(event_id)",
    ))
    .bind(logged.seq)
    .bind(&logged.event_id)
    .bind(&logged.event_type)
    .bind(logged.order_id)
    .bind(&logged.payload)
    .bind(error)
    .bind(crate::clock::now_ms() + retry_pause_ms(1))
    .execute(conn)
    .await?;
    Ok(())
}

/// How long a parked event waits after its `attempts`-th failure: 20 ms,
/// 80 ms, 320 ms, ...
pub fn retry_pause_ms(attempts: u32) -> i64 {
    20 * 4i64.pow(attempts.clamp(1, 8) - 1)
}

/// What a parked event's failed retry leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time (ms since the epoch).
    RetryAt(i64),
    /// Out of attempts: a dead letter for an admin.
    Bury,
}

/// The rule for a parked event that failed its `attempts`-th try at `now`.
pub fn after_failure(attempts: u32, now: i64) -> AfterFailure {
    if attempts >= MAX_ATTEMPTS {
        AfterFailure::Bury
    } else {
        AfterFailure::RetryAt(now + retry_pause_ms(attempts))
    }
}

/// Tries the parked events that are due once each. Returns when the next
/// one is due, if any is left.
pub(crate) async fn retry_parked(
    handler: &Arc<dyn EventHandler>,
    db: &Db,
) -> Result<Option<i64>, sqlx::Error> {
    let now = crate::clock::now_ms();
    let due = sql::query(
        "SELECT id, log_seq, event_id, event_type, order_id, payload, attempts FROM parked_events
         WHERE retry_at <= ? ORDER BY log_seq LIMIT 64",
    )
    .bind(now)
    .fetch_all(db)
    .await?;
    for row in due {
        let id: i64 = row.get(0);
        let attempts: i64 = row.get(6);
        let logged = LoggedEvent {
            seq: row.get(1),
            event_id: row.get(2),
            event_type: row.get(3),
            order_id: row.get(4),
            payload: row.get(5),
        };
        let h = handler.clone();
        let applied = db
            .write(move |conn| {
                Box::pin(async move {
                    let error = match apply(h.as_ref(), conn, &logged).await {
                        Ok(outcome) => {
                            sql::query("DELETE FROM parked_events WHERE id = ?")
                                .bind(id)
                                .execute(&mut *conn)
                                .await?;
                            return Ok::<_, sqlx::Error>(matches!(outcome, Outcome::Applied));
                        }
                        Err(e) => e.to_string(),
                    };
                    let attempts = attempts + 1;
                    match after_failure(attempts as u32, crate::clock::now_ms()) {
                        AfterFailure::RetryAt(at) => {
                            sql::query(
                                "UPDATE parked_events SET attempts = ?, error = ?, retry_at = ? WHERE id = ?",
                            )
                            .bind(attempts)
                            .bind(&error)
                            .bind(at)
                            .bind(id)
                            .execute(&mut *conn)
                            .await?;
                        }
                        AfterFailure::Bury => {
                            log_buried(h.name(), &logged, &error);
                            insert_dead_letter(conn, &logged, &error, attempts).await?;
                            sql::query("DELETE FROM parked_events WHERE id = ?")
                                .bind(id)
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                    Ok(false)
                })
            })
            .await?;
        if applied {
            handler.committed();
        }
    }
    sql::query_scalar("SELECT MIN(retry_at) FROM parked_events")
        .fetch_one(db)
        .await
}

/// What one pass over the log did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Consumed {
    /// Log entries read (0: the consumer is at the tip).
    pub read: usize,
    /// An event failed and was parked for a retry.
    pub parked: bool,
}

/// Reads everything after the consumer's position once.
pub async fn consume_once(
    handler: &Arc<dyn EventHandler>,
    db: &Db,
    log: &EventLog,
) -> Result<Consumed, LogError> {
    let from = position(db, handler.name()).await?;
    let batch = log.read_after(from, BATCH).await?;
    let read = batch.len();
    if read == 0 {
        return Ok(Consumed::default());
    }
    let parked = match apply_batch(handler, db, from, batch).await? {
        Batch::Done { parked, .. } => parked,
        Batch::Overtaken => {
            tracing::info!(
                consumer = handler.name(),
                from,
                "the position moved while the batch was read; reading again"
            );
            false
        }
    };
    Ok(Consumed { read, parked })
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
        let mut next_retry: Option<i64> = Some(0);
        loop {
            if shutdown.is_triggered() {
                break;
            }
            if next_retry.is_some_and(|at| at <= crate::clock::now_ms()) {
                match retry_parked(&handler, &db).await {
                    Ok(next) => next_retry = next,
                    Err(e) => {
                        tracing::warn!(consumer = handler.name(), error = %e, "retrying parked events failed");
                        next_retry = Some(crate::clock::now_ms() + 200);
                    }
                }
            }
            match consume_once(&handler, &db, &log).await {
                Ok(done) if done.read > 0 => {
                    if done.parked {
                        let first_retry = crate::clock::now_ms() + retry_pause_ms(1);
                        next_retry = Some(next_retry.map_or(first_retry, |at| at.min(first_retry)));
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(consumer = handler.name(), error = %e, "consumer failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            // Also poll: another process (a rebuild, a tool) may have
            // written the log or the position.
            let until_retry = next_retry
                .map(|at| Duration::from_millis((at - crate::clock::now_ms()).max(0) as u64))
                .unwrap_or(POLL)
                .min(POLL);
            tokio::select! {
                _ = tip.changed() => {}
                _ = tokio::time::sleep(until_retry) => {}
                _ = shutdown.wait() => {}
            }
        }
    })
}

/// A dead letter as an admin sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_event_waits_longer_after_each_failure_then_is_buried() {
        let now = 1_000;
        assert_eq!(after_failure(1, now), AfterFailure::RetryAt(now + 20));
        assert_eq!(after_failure(2, now), AfterFailure::RetryAt(now + 80));
        assert_eq!(after_failure(3, now), AfterFailure::RetryAt(now + 320));
        assert_eq!(after_failure(MAX_ATTEMPTS, now), AfterFailure::Bury);
        assert_eq!(after_failure(MAX_ATTEMPTS + 3, now), AfterFailure::Bury);
    }

    #[test]
    fn the_pause_before_a_retry_is_bounded() {
        assert_eq!(retry_pause_ms(0), 20);
        assert!(retry_pause_ms(u32::MAX) <= 20 * 4i64.pow(7));
    }
}
