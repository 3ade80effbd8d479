//! Who starts the next iteration, and when.
//!
//! Closed loop (no `--rate`): each of `concurrency` workers starts its next
//! iteration as soon as its last one ends; ramp-up staggers the workers'
//! first starts. This measures capacity, but a slow answer delays the
//! requests behind it, which hides queueing from the latencies
//! ("coordinated omission").
//!
//! Open loop (`--rate`): iteration `k` is due at a fixed time computed from
//! the target rate (rising linearly during ramp-up). Workers take the next
//! due ticket; when all of them are busy, tickets wait, and since latency is
//! measured from the due time, that wait shows in the percentiles.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// No iteration starts after this much time.
    After(Duration),
    /// Exactly this many iterations start.
    Count(u64),
}

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub concurrency: usize,
    pub stop: Stop,
    pub ramp_up: Duration,
    /// Iterations per second (open loop); `None` is closed loop.
    pub rate: Option<f64>,
}

impl Plan {
    /// When ticket `k` (from 0) is due in an open-loop run, as an offset
    /// from the start: the arrivals follow a rate rising linearly from 0 to
    /// `rate` over `ramp_up`, then flat.
    pub fn due(&self, k: u64, rate: f64) -> Duration {
        let k = k as f64;
        let ramp = self.ramp_up.as_secs_f64();
        let secs = if ramp <= 0.0 {
            k / rate
        } else {
            // Arrivals during the ramp: N(t) = rate * t^2 / (2 * ramp).
            let during_ramp = rate * ramp / 2.0;
            if k < during_ramp {
                (2.0 * k * ramp / rate).sqrt()
            } else {
                ramp + (k - during_ramp) / rate
            }
        };
        Duration::from_secs_f64(secs)
    }

    fn over(&self, k: u64, since_start: Duration) -> bool {
        match self.stop {
            Stop::Count(n) => k >= n,
            Stop::After(d) => since_start >= d,
        }
    }
}

/// Runs `job(ticket, due)` under the plan until it is over, then waits for
/// every iteration in flight. `due` is when the iteration should have
/// started: latency is measured from it.
pub async fn drive<F, Fut>(plan: Plan, start: Instant, job: F)
where
    F: Fn(u64, Instant) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicU64::new(0));
    let workers = plan.concurrency.max(1);
    let mut tasks = Vec::with_capacity(workers);
    for worker in 0..workers {
        let job = job.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            match plan.rate {
                Some(rate) if rate > 0.0 => loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let offset = plan.due(k, rate);
                    if plan.over(k, offset) {
                        break;
                    }
                    let due = start + offset;
                    tokio::time::sleep_until(due.into()).await;
                    job(k, due).await;
                },
                _ => {
                    let stagger = plan.ramp_up.mul_f64(worker as f64 / workers as f64);
                    tokio::time::sleep_until((start + stagger).into()).await;
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let now = Instant::now();
                        if plan.over(k, now.saturating_duration_since(start)) {
                            break;
                        }
                        job(k, now).await;
                    }
                }
            }
        }));
    }
    for task in tasks {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "load worker failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(ramp_ms: u64) -> Plan {
        Plan {
            concurrency: 1,
            stop: Stop::Count(10),
            ramp_up: Duration::from_millis(ramp_ms),
            rate: Some(100.0),
        }
    }

    #[test]
    fn without_ramp_tickets_are_evenly_spaced() {
        let p = plan(0);
        assert_eq!(p.due(0, 100.0), Duration::ZERO);
        assert_eq!(p.due(50, 100.0), Duration::from_millis(500));
    }

    #[test]
    fn a_ramp_starts_slow_and_then_runs_at_the_rate() {
        let p = plan(2000);
        // 100/s ramped over 2 s: 100 arrivals during the ramp.
        let at_ramp_end = p.due(100, 100.0).as_secs_f64();
        assert!((at_ramp_end - 2.0).abs() < 1e-9);
        let early_gap = p.due(2, 100.0) - p.due(1, 100.0);
        let late_gap = p.due(201, 100.0) - p.due(200, 100.0);
        assert!(early_gap > late_gap);
        assert!((late_gap.as_secs_f64() - 0.01).abs() < 1e-9);
    }

    #[tokio::test]
    async fn a_count_runs_exactly_that_many_iterations() {
        let done = Arc::new(AtomicU64::new(0));
        let seen = done.clone();
        let plan = Plan {
            concurrency: 4,
            stop: Stop::Count(25),
            ramp_up: Duration::ZERO,
            rate: None,
        };
        drive(plan, Instant::now(), move |_, _| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::Relaxed);
            }
        })
        .await;
        assert_eq!(done.load(Ordering::Relaxed), 25);
    }
}
