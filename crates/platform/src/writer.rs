//! Group commit: one task runs every write of a database. Writes that queue
//! up while a commit is on its way to disk run together in the next
//! transaction, each in its own savepoint, and share one fsync. A write that
//! fails rolls back alone; a commit that fails fails every write in it.
//! Callers await the outcome, so an answer is sent only after its write is
//! durable.
//!
//! The task is not owned by any request, so a client that hangs up cannot
//! cancel a write half-way.

use std::borrow::Cow;
use std::panic::AssertUnwindSafe;

use futures::future::BoxFuture;
use futures::FutureExt;
use sqlx::error::{DatabaseError, ErrorKind};
use tokio::sync::{mpsc, oneshot};

use crate::db::{Conn, Fault, WritePool};
use crate::outbox::OutboxSignal;

/// Largest number of writes one transaction carries.
const MAX_BATCH: usize = 512;

/// A write that did not land because its batch did not: the transaction
/// could not begin, broke part-way or failed to commit. Every write of the
/// batch gets its own copy, classified like the error behind it, so a full
/// disk or a lost server reaches each caller as what it is.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct WriteFailed {
    message: String,
    fault: Option<Fault>,
}

impl WriteFailed {
    fn of(why: &str, cause: &sqlx::Error) -> WriteFailed {
        WriteFailed {
            message: format!("{why}: {cause}"),
            fault: Fault::of(cause),
        }
    }

    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    fn into_sqlx(self) -> sqlx::Error {
        sqlx::Error::Database(Box::new(self))
    }
}

impl DatabaseError for WriteFailed {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        None
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// Why a batch did not commit, told to each of its writes.
#[derive(Clone)]
struct BatchError {
    message: String,
    fault: Option<Fault>,
}

impl BatchError {
    fn new(why: &'static str, cause: &sqlx::Error) -> BatchError {
        let failed = WriteFailed::of(why, cause);
        BatchError {
            message: failed.message,
            fault: failed.fault,
        }
    }

    fn to_sqlx(&self) -> sqlx::Error {
        WriteFailed {
            message: self.message.clone(),
            fault: self.fault,
        }
        .into_sqlx()
    }
}

/// What a finished write does once its batch committed (`None`) or failed.
type Finish = Box<dyn FnOnce(Option<&BatchError>) + Send>;

/// A write that ran in the batch's transaction. `broke` says its savepoint
/// could not be released or rolled back: the transaction itself is gone
/// (SQLite rolls a whole transaction back on SQLITE_FULL or an I/O error; a
/// server connection may have dropped), so nothing more may run in it.
struct Ran {
    finish: Finish,
    broke: Option<sqlx::Error>,
}

/// A queued write: given the batch's connection it runs, given `None`
/// (the batch could not begin, or broke before its turn) it only reports.
type Job = Box<dyn for<'c> FnOnce(Option<&'c mut Conn>) -> BoxFuture<'c, Ran> + Send>;

enum Msg {
    Write(Job),
    /// Finish what is queued and stop.
    Stop(oneshot::Sender<()>),
}

#[derive(Clone, Debug)]
pub struct Writer {
    jobs: mpsc::Sender<Msg>,
}

impl Writer {
    /// `outbox` is rung after each commit that wrote an event, so no
    /// write can forget to wake the relay.
    pub(crate) fn start(pool: WritePool, outbox: OutboxSignal) -> Writer {
        let (jobs, rx) = mpsc::channel(4096);
        tokio::spawn(run(pool, outbox, rx));
        Writer { jobs }
    }

    /// Stops the task after the writes queued before this call.
    pub async fn stop(&self) {
        let (ack, stopped) = oneshot::channel();
        if self.jobs.send(Msg::Stop(ack)).await.is_ok() {
            let _ = stopped.await;
        }
    }

    /// Runs `work` in the next transaction and returns its result once that
    /// transaction committed. An `Err` from `work` undoes its changes only.
    pub async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        let (done, outcome) = oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let (result, broke) = match conn {
                    Some(conn) => in_savepoint(conn, work).await,
                    None => (Err(None), None),
                };
                let finish = Box::new(move |batch_error: Option<&BatchError>| {
                    let result = match (result, batch_error) {
                        (Ok(value), None) => Ok(value),
                        (Err(Some(e)), _) => Err(e),
                        (_, Some(e)) => Err(E::from(e.to_sqlx())),
                        // Unreachable: a write that did not run always
                        // belongs to a failed batch.
                        (Err(None), None) => {
                            Err(E::from(sqlx::Error::Protocol("a write was skipped".into())))
                        }
                    };
                    let _ = done.send(result);
                }) as Finish;
                Ran { finish, broke }
            })
        });
        let gone = |why: &str| E::from(sqlx::Error::Protocol(format!("database writer {why}")));
        self.jobs
            .send(Msg::Write(job))
            .await
            .map_err(|_| gone("stopped"))?;
        outcome.await.map_err(|_| gone("dropped the write"))?
    }
}

/// Runs `work` in a savepoint. Returns its result (`Err(None)` never comes
/// from here) and the error that broke the transaction, if one did.
async fn in_savepoint<T, E, F>(
    conn: &mut Conn,
    work: F,
) -> (Result<T, Option<E>>, Option<sqlx::Error>)
where
    E: From<sqlx::Error>,
    F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, E>>,
{
    let mut savepoint = match conn.savepoint().await {
        Ok(savepoint) => savepoint,
        Err(e) => {
            let broke = WriteFailed::of("cannot open a savepoint", &e).into_sqlx();
            return (Err(Some(E::from(e))), Some(broke));
        }
    };
    let result = AssertUnwindSafe(work(&mut savepoint)).catch_unwind().await;
    match result {
        Ok(Ok(value)) => match savepoint.commit().await {
            Ok(()) => (Ok(value), None),
            Err(e) => {
                let broke = WriteFailed::of("the transaction broke", &e).into_sqlx();
                (Err(Some(E::from(e))), Some(broke))
            }
        },
        Ok(Err(e)) => match savepoint.rollback().await {
            Ok(()) => (Err(Some(e)), None),
            Err(broke) => (Err(Some(e)), Some(broke)),
        },
        Err(_) => {
            let panicked = || E::from(sqlx::Error::Protocol("a write panicked".into()));
            match savepoint.rollback().await {
                Ok(()) => (Err(Some(panicked())), None),
                Err(broke) => (Err(Some(panicked())), Some(broke)),
            }
        }
    }
}

async fn run(pool: WritePool, outbox: OutboxSignal, mut inbox: mpsc::Receiver<Msg>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stops = Vec::new();
    while stops.is_empty() && inbox.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut jobs = Vec::with_capacity(batch.len());
        for msg in batch.drain(..) {
            match msg {
                Msg::Write(job) => jobs.push(job),
                Msg::Stop(ack) => stops.push(ack),
            }
        }
        if jobs.is_empty() {
            continue;
        }
        commit_batch(&pool, &outbox, jobs).await;
    }
    for ack in stops {
        let _ = ack.send(());
    }
}

/// Runs one batch to its end: every write is answered, and the connection
/// leaves with no transaction open (or is closed).
async fn commit_batch(pool: &WritePool, outbox: &OutboxSignal, jobs: Vec<Job>) {
    let mut finishes = Vec::with_capacity(jobs.len());
    let mut conn = match pool.begin().await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::error!(error = %e, "cannot begin a write transaction");
            let error = BatchError::new("cannot begin a write transaction", &e);
            for job in jobs {
                (job(None).await.finish)(Some(&error));
            }
            return;
        }
    };
    let mut broken: Option<BatchError> = None;
    for job in jobs {
        let ran = match broken {
            Some(_) => job(None).await,
            None => job(Some(&mut conn)).await,
        };
        if let (None, Some(e)) = (&broken, &ran.broke) {
            tracing::error!(error = %e, "a write transaction broke; failing its batch");
            broken = Some(BatchError::new("the write transaction broke", e));
        }
        finishes.push(ran.finish);
    }
    let error = match broken {
        Some(error) => {
            // Whatever is left of the transaction goes; a connection that
            // cannot even roll back is closed on drop (see `Conn`).
            let _ = conn.finish("ROLLBACK").await;
            Some(error)
        }
        None => match conn.finish("COMMIT").await {
            Ok(()) => {
                // Before the writers hear back: whoever waits on a write
                // that enqueued an event finds the relay already woken. A
                // write rolled back to its savepoint may still have rung
                // it; the relay then finds nothing, which is harmless.
                if conn.wrote_outbox {
                    outbox.notify();
                }
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                let _ = conn.finish("ROLLBACK").await;
                Some(BatchError::new("commit failed", &e))
            }
        },
    };
    drop(conn);
    for finish in finishes {
        finish(error.as_ref());
    }
}
