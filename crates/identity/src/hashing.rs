//! Password hashing is the costliest thing a request can ask for (argon2:
//! ~19 MiB and tens of milliseconds of a core each). A bounded number run at
//! once, a bounded number wait for their turn, and the rest are refused at
//! once (503 at the HTTP edge), so a burst of logins cannot exhaust memory or starve every
//! other request of the blocking pool.
//!
//! The hashes run on a few threads of their own, not on the runtime's
//! blocking pool: the allocator keeps a freed 19 MiB block in the arena of
//! the thread that used it, so hashes spread over the pool's many threads
//! left hundreds of MiB behind; on a fixed set of threads each block is
//! reused.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::error::IdentityError;

/// Longest wait for a turn before the request is refused.
const WAIT: Duration = Duration::from_secs(5);

type Job = Box<dyn FnOnce() + Send>;

#[derive(Clone)]
pub struct Hashing {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    jobs: SyncSender<Job>,
}

/// `count` threads that run the jobs sent to them, until every sender is
/// gone.
fn spawn_workers(count: usize) -> SyncSender<Job> {
    let (jobs, queue) = sync_channel::<Job>(count);
    let queue: Arc<Mutex<Receiver<Job>>> = Arc::new(Mutex::new(queue));
    for n in 0..count {
        let queue = queue.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("password-hashing-{n}"))
            .spawn(move || loop {
                let job = {
                    let queue = queue.lock().unwrap_or_else(|e| e.into_inner());
                    queue.recv()
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a password hashing thread");
        }
    }
    jobs
}

impl Hashing {
    /// `at_once` hashes run together (about one per core); `waiting` more
    /// may queue behind them.
    pub fn new(at_once: usize, waiting: usize) -> Hashing {
        let at_once = at_once.max(1);
        Hashing {
            running: Arc::new(Semaphore::new(at_once)),
            admitted: Arc::new(Semaphore::new(at_once + waiting)),
            jobs: spawn_workers(at_once),
        }
    }

    /// One per core, up to four, and eight waiting per running hash.
    pub fn for_this_machine() -> Hashing {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let at_once = cores.clamp(1, 4);
        Hashing::new(at_once, at_once * 8)
    }

    /// Runs `work` on a hashing thread when a turn is free.
    pub async fn run<T, F>(&self, work: F) -> Result<T, IdentityError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let Ok(_admitted) = self.admitted.clone().try_acquire_owned() else {
            return Err(IdentityError::HashingBusy);
        };
        let _turn = tokio::time::timeout(WAIT, self.running.clone().acquire_owned())
            .await
            .map_err(|_| IdentityError::HashingBusy)?
            .map_err(|_| IdentityError::HashingBusy)?;
        // Held by the job itself: a client that hangs up frees its place
        // only when the hash it started is done. A turn guarantees a free
        // thread, so the send does not wait.
        let turn = (_admitted, _turn);
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
            drop(turn);
        });
        self.jobs
            .send(job)
            .map_err(|_| IdentityError::Internal("password hashing stopped".into()))?;
        result
            .await
            .map_err(|_| IdentityError::Internal("password hashing stopped".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_the_running_and_waiting_bound_requests_are_refused_at_once() {
        let hashing = Hashing::new(1, 1);
        let (release, hold) = tokio::sync::oneshot::channel::<()>();
        let hold = Arc::new(std::sync::Mutex::new(Some(hold)));
        let first = {
            let (hashing, hold) = (hashing.clone(), hold.clone());
            tokio::spawn(async move {
                hashing
                    .run(move || {
                        let rx = hold.lock().expect("lock").take().expect("once");
                        let _ = rx.blocking_recv();
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = {
            let hashing = hashing.clone();
            tokio::spawn(async move { hashing.run(|| 2).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let third = hashing.run(|| 3).await;
        assert!(matches!(third, Err(IdentityError::HashingBusy)));
        release.send(()).expect("release");
        assert!(first.await.expect("join").is_ok());
        assert_eq!(second.await.expect("join").expect("ran"), 2);
        assert_eq!(hashing.run(|| 4).await.expect("ran"), 4);
    }
}
