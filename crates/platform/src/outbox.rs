//! Transactional outbox: a service writes its events into its own database
//! in the same transaction as the change that causes them; the relay moves
//! them to the event log afterwards. A crash at any point loses nothing: an
//! event is deleted from the outbox only after the log holds it, and the log
//! ignores an event id it already has.

use std::sync::Arc;
use std::time::Duration;

use crate::shutdown::Shutdown;
use crate::sql;
use contracts::Event;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::db::{Conn, Db};
use crate::event_log::NewEvent;
use crate::transport::{EventSink, TransportError};

/// Writes an event into the outbox of the transaction it belongs to; the
/// relay is woken when that transaction commits.
pub async fn enqueue(conn: &mut Conn, event: &Event) -> Result<(), sqlx::Error> {
    let payload = serde_json::to_string(event)
        .map_err(|e| sqlx::Error::Protocol(format!("cannot encode event: {e}")))?;
    sql::query(
        "INSERT INTO outbox (event_id, event_type, order_id, payload, created_at)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(event.event_id.to_string())
    .bind(event.event_type.as_str())
    .bind(event.order_id)
    .bind(payload)
    .bind(crate::clock::now_ms())
    .execute(&mut *conn)
    .await?;
    conn.wrote_outbox = true;
    Ok(())
}

/// Wakes a database's relay; rung by its writer after a commit that wrote
/// to the outbox (see [`enqueue`]), never by a service.
#[derive(Clone, Default)]
pub(crate) struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    pub(crate) fn notify(&self) {
        self.0.notify_one();
    }

    async fn notified(&self) {
        self.0.notified().await
    }
}

const RELAY_BATCH: i64 = 500;

/// How long a relay's claim on its database's outbox lasts. Replicas that
/// share a database each run a relay; on a broker that keeps copies
/// (Kafka) one at a time publishes, so each event goes out once and in the
/// order it was written, instead of once per replica. Past this, the claim
/// of a relay that died or froze mid-batch is taken over; a publish is cut
/// off well before it.
const CLAIM_MS: i64 = 15_000;
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(12);

/// The oldest events of the outbox, in the order they were written.
struct Batch {
    last_seq: i64,
    events: Vec<NewEvent>,
}

async fn read_batch(conn: &mut Conn) -> Result<Batch, sqlx::Error> {
    let rows = sql::query(
        "SELECT seq, event_id, event_type, order_id, payload FROM outbox ORDER BY seq LIMIT ?",
    )
    .bind(RELAY_BATCH)
    .fetch_all(conn)
    .await?;
    Ok(Batch {
        last_seq: rows.last().map(|r| r.get("seq")).unwrap_or(0),
        events: rows
            .iter()
            .map(|r| NewEvent {
                event_id: r.get("event_id"),
                event_type: r.get("event_type"),
                order_id: r.get("order_id"),
                payload: r.get("payload"),
            })
            .collect(),
    })
}

/// Takes the claim (unless another relay holds it) and the oldest events;
/// an empty outbox gives the claim back in the same transaction.
async fn claim_batch(db: &Db, relay: &str) -> Result<Option<Batch>, sqlx::Error> {
    let relay = relay.to_string();
    db.write(move |conn| {
        Box::pin(async move {
            let now = crate::clock::now_ms();
            sql::query(
                "UPDATE outbox_relay SET holder = ?, until_ms = ?
                 WHERE id = 1 AND (holder IS NULL OR holder = ? OR until_ms < ?)",
            )
            .bind(&relay)
            .bind(now + CLAIM_MS)
            .bind(&relay)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            let holder: Option<String> =
                sql::query_scalar("SELECT holder FROM outbox_relay WHERE id = 1")
                    .fetch_one(&mut *conn)
                    .await?;
            if holder.as_deref() != Some(relay.as_str()) {
                return Ok(None);
            }
            let batch = read_batch(conn).await?;
            if batch.events.is_empty() {
                release(conn, &relay).await?;
            }
            Ok(Some(batch))
        })
    })
    .await
}

async fn release(conn: &mut Conn, relay: &str) -> Result<(), sqlx::Error> {
    sql::query("UPDATE outbox_relay SET holder = NULL, until_ms = 0 WHERE id = 1 AND holder = ?")
        .bind(relay)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Publishes one batch; returns how many events moved. On a sink that
/// keeps copies, only while this relay (`relay`, unique per process)
/// holds or can take the claim: another relay's claim gives 0, and that
/// relay reads the outbox again after its batch, so it also takes what was
/// written meanwhile.
pub async fn relay_once(
    source: &str,
    relay: &str,
    db: &Db,
    sink: &dyn EventSink,
) -> Result<usize, TransportError> {
    let claimed = sink.keeps_copies();
    let batch = if claimed {
        // An idle relay only reads; the claim is a write.
        if backlog(db).await? == 0 {
            return Ok(0);
        }
        match claim_batch(db, relay).await? {
            Some(batch) => batch,
            None => return Ok(0),
        }
    } else {
        db.read(|conn| Box::pin(read_batch(conn))).await?
    };
    if batch.events.is_empty() {
        return Ok(0);
    }
    let published = tokio::time::timeout(PUBLISH_TIMEOUT, sink.publish(source, &batch.events))
        .await
        .unwrap_or_else(|_| Err(TransportError::Broker("publishing timed out".into())));
    let (relay, last_seq) = (relay.to_string(), batch.last_seq);
    if let Err(e) = published {
        if claimed {
            // The claim goes back at once; the events stay for the next try.
            db.write(move |conn| Box::pin(async move { release(conn, &relay).await }))
                .await?;
        }
        return Err(e);
    }
    db.write(move |conn| {
        Box::pin(async move {
            sql::query("DELETE FROM outbox WHERE seq <= ?")
                .bind(last_seq)
                .execute(&mut *conn)
                .await?;
            if claimed {
                release(conn, &relay).await?;
            }
            Ok::<_, sqlx::Error>(())
        })
    })
    .await?;
    Ok(batch.events.len())
}

/// Number of events written but not yet in the log.
pub async fn backlog(db: &Db) -> Result<i64, sqlx::Error> {
    sql::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(db)
        .await
}

/// Runs the relay until shutdown, then drains what is left. It wakes when a
/// write to `db` enqueued an event, and polls every second besides (for
/// events another replica wrote to a shared database).
pub fn spawn_relay(
    source: &'static str,
    db: Db,
    sink: Arc<dyn EventSink>,
    mut shutdown: Shutdown,
) -> JoinHandle<()> {
    let relay = uuid::Uuid::new_v4().to_string();
    tokio::spawn(async move {
        let signal = db.outbox_signal().clone();
        loop {
            match relay_once(source, &relay, &db, sink.as_ref()).await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(service = source, error = %e, "outbox relay failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            if shutdown.is_triggered() {
                break;
            }
            tokio::select! {
                _ = signal.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.wait() => {}
            }
        }
        // Drain: publish what the last requests wrote before exiting.
        for _ in 0..20 {
            match relay_once(source, &relay, &db, sink.as_ref()).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(service = source, error = %e, "outbox drain failed");
                    break;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Migrations;
    use crate::Location;
    use futures::FutureExt;

    async fn outbox_db(dir: &tempfile::TempDir) -> Db {
        let location = Location::Sqlite(dir.path().join("outbox.db"));
        Db::open_with(&location, &[&Migrations::platform()])
            .await
            .expect("open")
    }

    #[tokio::test]
    async fn a_write_that_enqueues_an_event_wakes_the_relay_by_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = outbox_db(&dir).await;
        let signal = db.outbox_signal().clone();
        let facts = contracts::event::OrderFacts {
            order_id: 7,
            menu_name: "bibimbap".into(),
            qty: 1,
            price: 9000,
            address: "Seoul".into(),
            store_id: 1,
            customer_id: 2,
            correlation_id: uuid::Uuid::now_v7(),
        };
        let event = Event::new(contracts::EventType::MenuOrdered, &facts, 7, "test", 1, 0);
        db.write(move |conn| Box::pin(async move { enqueue(conn, &event).await }))
            .await
            .expect("write");
        // Rung before the write was answered: the wake-up is waiting.
        assert!(signal.notified().now_or_never().is_some());

        // A write that enqueues nothing wakes nobody.
        db.write(|conn| {
            Box::pin(async move { sql::query("DELETE FROM outbox").execute(conn).await })
        })
        .await
        .expect("write");
        assert!(signal.notified().now_or_never().is_none());
        db.close().await;
    }
}
