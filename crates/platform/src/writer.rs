//! Group commit: one task owns a database's only write connection and runs
//! every write submitted to it. Writes that queue up while a commit is on
//! its way to disk run together in the next transaction, each in its own
//! savepoint, and share one fsync. A write that fails rolls back alone; a
//! commit that fails fails every write in it. Callers await the outcome, so
//! an answer is sent only after its write is durable.
//!
//! The task is not owned by any request, so a client that hangs up cannot
//! cancel a write half-way (a dropped SQLite transaction on the single write
//! connection would otherwise leave it stuck).

use std::panic::AssertUnwindSafe;

use futures::future::BoxFuture;
use futures::FutureExt;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

/// Largest number of writes one transaction carries.
const MAX_BATCH: usize = 512;

/// What a finished write does once its batch committed (`None`) or failed.
type Finish = Box<dyn FnOnce(Option<String>) + Send>;
type Job = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Finish> + Send>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WriterGone(String);

enum Msg {
    Write(Job),
    /// Finish what is queued, give the connection back and stop.
    Stop(oneshot::Sender<()>),
}

#[derive(Clone, Debug)]
pub struct Writer {
    jobs: mpsc::Sender<Msg>,
}

impl Writer {
    /// Takes the write connection for good and starts the task.
    pub fn start(conn: PoolConnection<Sqlite>) -> Writer {
        let (jobs, rx) = mpsc::channel(4096);
        tokio::spawn(run(conn, rx));
        Writer { jobs }
    }

    /// Stops the task after the writes queued before this call, and returns
    /// the connection to its pool.
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
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        let (done, outcome) = oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = in_savepoint(conn, work).await;
                Box::new(move |commit_error: Option<String>| {
                    let result = match (result, commit_error) {
                        (Ok(value), None) => Ok(value),
                        (Ok(_), Some(e)) => Err(E::from(sqlx::Error::Protocol(format!(
                            "commit failed: {e}"
                        )))),
                        (Err(e), _) => Err(e),
                    };
                    let _ = done.send(result);
                }) as Finish
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

async fn in_savepoint<T, E, F>(conn: &mut SqliteConnection, work: F) -> Result<T, E>
where
    E: From<sqlx::Error>,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, E>>,
{
    let mut savepoint = conn.begin().await?;
    let result = AssertUnwindSafe(work(&mut savepoint)).catch_unwind().await;
    match result {
        Ok(Ok(value)) => {
            savepoint.commit().await?;
            Ok(value)
        }
        Ok(Err(e)) => {
            savepoint.rollback().await?;
            Err(e)
        }
        Err(_) => {
            savepoint.rollback().await?;
            Err(E::from(sqlx::Error::Protocol("a write panicked".into())))
        }
    }
}

async fn run(mut conn: PoolConnection<Sqlite>, mut inbox: mpsc::Receiver<Msg>) {
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
        // IMMEDIATE: take the write lock up front. Replicas of a service
        // may share a database file; a deferred transaction that must later
        // upgrade to a writer fails at once instead of waiting its turn.
        let mut tx = match conn.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => tx,
            Err(e) => {
                // Run nothing; each caller learns the write was dropped.
                tracing::error!(error = %e, "cannot begin a write transaction");
                continue;
            }
        };
        let mut finishes = Vec::with_capacity(jobs.len());
        for job in jobs {
            finishes.push(job(&mut tx).await);
        }
        let error = match tx.commit().await {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                Some(e.to_string())
            }
        };
        for finish in finishes {
            finish(error.clone());
        }
    }
    drop(conn);
    for ack in stops {
        let _ = ack.send(());
    }
}
