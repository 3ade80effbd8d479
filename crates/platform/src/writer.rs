//! Group commit: one task runs every write of a database. Writes that queue
//! up while a commit is on its way to disk run together in the next
//! transaction, each in its own savepoint, and share one fsync. A write that
//! fails rolls back alone; a commit that fails fails every write in it.
//! Callers await the outcome, so an answer is sent only after its write is
//! durable.
//!
//! The task is not owned by any request, so a client that hangs up cannot
//! cancel a write half-way.

use std::panic::AssertUnwindSafe;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};

use crate::db::{Conn, WritePool};

/// Largest number of writes one transaction carries.
const MAX_BATCH: usize = 512;

/// What a finished write does once its batch committed (`None`) or failed.
type Finish = Box<dyn FnOnce(Option<String>) + Send>;
type Job = Box<dyn for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Finish> + Send>;

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
    pub(crate) fn start(pool: WritePool) -> Writer {
        let (jobs, rx) = mpsc::channel(4096);
        tokio::spawn(run(pool, rx));
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

async fn in_savepoint<T, E, F>(conn: &mut Conn, work: F) -> Result<T, E>
where
    E: From<sqlx::Error>,
    F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, E>>,
{
    let mut savepoint = conn.savepoint().await?;
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

async fn run(pool: WritePool, mut inbox: mpsc::Receiver<Msg>) {
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
        let mut conn = match pool.begin().await {
            Ok(conn) => conn,
            Err(e) => {
                // Run nothing; each caller learns the write was dropped.
                tracing::error!(error = %e, "cannot begin a write transaction");
                continue;
            }
        };
        let mut finishes = Vec::with_capacity(jobs.len());
        for job in jobs {
            finishes.push(job(&mut conn).await);
        }
        let error = match conn.finish("COMMIT").await {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                let _ = conn.finish("ROLLBACK").await;
                Some(e.to_string())
            }
        };
        drop(conn);
        for finish in finishes {
            finish(error.clone());
        }
    }
    for ack in stops {
        let _ = ack.send(());
    }
}
