//! What a run records: an HDR histogram per step (microseconds), the waits
//! for events, the event-to-view lags, errors by kind, and a per-second
//! timeline for the chart. One lock guards it all; at the rates two cores
//! can drive, an uncontended mutex costs far less than a request.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest value a histogram keeps, in microseconds (one minute); larger
/// values are clamped to it and still counted.
const MAX_US: u64 = 60_000_000;

pub fn histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (1 <= low, high >= 2 * low,
    // 3 significant digits): this cannot fail at run time.
    Histogram::new_with_bounds(1, MAX_US, 3).expect("constant histogram bounds are valid")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(MAX_US)
        .clamp(1, MAX_US)
}

/// One second of the run.
#[derive(Debug)]
pub struct Second {
    pub requests: u64,
    pub iterations: u64,
    pub errors: u64,
    pub latency: Histogram<u64>,
}

impl Second {
    fn new() -> Second {
        Second {
            requests: 0,
            iterations: 0,
            errors: 0,
            latency: histogram(),
        }
    }
}

#[derive(Debug)]
pub struct Inner {
    pub steps: BTreeMap<&'static str, Histogram<u64>>,
    pub waits: BTreeMap<&'static str, Histogram<u64>>,
    pub lags: BTreeMap<String, Histogram<u64>>,
    pub errors: BTreeMap<String, u64>,
    /// Every answered request, all steps together (the progress line's p99).
    pub all: Histogram<u64>,
    /// Whole iterations (a saga from its scheduled start to the confirm).
    pub iteration: Histogram<u64>,
    pub requests: u64,
    pub retries: u64,
    pub iterations_ok: u64,
    pub iterations_failed: u64,
    pub sagas: u64,
    pub timeline: Vec<Second>,
}

#[derive(Debug)]
pub struct Stats {
    pub start: Instant,
    inner: Mutex<Inner>,
}

impl Stats {
    pub fn new(start: Instant) -> Stats {
        Stats {
            start,
            inner: Mutex::new(Inner {
                steps: BTreeMap::new(),
                waits: BTreeMap::new(),
                lags: BTreeMap::new(),
                errors: BTreeMap::new(),
                all: histogram(),
                iteration: histogram(),
                requests: 0,
                retries: 0,
                iterations_ok: 0,
                iterations_failed: 0,
                sagas: 0,
                timeline: Vec::new(),
            }),
        }
    }

    /// The lock; a worker that panicked while holding it left only counters
    /// behind, so a poisoned lock is still safe to read.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn second(inner: &mut Inner, start: Instant, at: Instant) -> &mut Second {
        let i = at.saturating_duration_since(start).as_secs() as usize;
        while inner.timeline.len() <= i {
            inner.timeline.push(Second::new());
        }
        &mut inner.timeline[i]
    }

    /// A request that answered as expected; `latency` runs from its
    /// scheduled (open loop) or actual start to the last byte.
    pub fn request(&self, step: &'static str, at: Instant, latency: Duration) {
        let us = micros(latency);
        let mut g = self.lock();
        g.requests += 1;
        g.steps
            .entry(step)
            .or_insert_with(histogram)
            .saturating_record(us);
        g.all.saturating_record(us);
        let s = Self::second(&mut g, self.start, at);
        s.requests += 1;
        s.latency.saturating_record(us);
    }

    /// A request sent again because the event it depends on has not
    /// arrived yet (404/409): counted, not an error.
    pub fn retry(&self, at: Instant) {
        let mut g = self.lock();
        g.requests += 1;
        g.retries += 1;
        Self::second(&mut g, self.start, at).requests += 1;
    }

    pub fn wait(&self, what: &'static str, waited: Duration) {
        let us = micros(waited);
        self.lock()
            .waits
            .entry(what)
            .or_insert_with(histogram)
            .saturating_record(us);
    }

    pub fn lag(&self, what: String, lag: Duration) {
        let us = micros(lag);
        self.lock()
            .lags
            .entry(what)
            .or_insert_with(histogram)
            .saturating_record(us);
    }

    /// A failed request or step; `answered` says a request did reach the
    /// server and so counts as a request.
    pub fn error(&self, kind: String, at: Instant, answered: bool) {
        let mut g = self.lock();
        if answered {
            g.requests += 1;
        }
        *g.errors.entry(kind).or_insert(0) += 1;
        let s = Self::second(&mut g, self.start, at);
        s.errors += 1;
        if answered {
            s.requests += 1;
        }
    }

    pub fn iteration(&self, at: Instant, took: Duration, ok: bool, saga: bool) {
        let mut g = self.lock();
        if ok {
            g.iterations_ok += 1;
            if saga {
                g.sagas += 1;
            }
            g.iteration.saturating_record(micros(took));
            Self::second(&mut g, self.start, at).iterations += 1;
        } else {
            g.iterations_failed += 1;
        }
    }
}

/// Percentiles of one histogram, in milliseconds, as the table and the JSON
/// show them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub name: String,
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Summary {
    pub fn of(name: &str, h: &Histogram<u64>) -> Summary {
        Summary {
            name: name.to_string(),
            count: h.len(),
            mean_ms: (h.mean()).round() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_out_in_milliseconds() {
        let stats = Stats::new(Instant::now());
        for i in 1..=100u64 {
            stats.request("place", stats.start, Duration::from_millis(i));
        }
        let g = stats.lock();
        let s = Summary::of("place", &g.steps["place"]);
        assert_eq!(s.count, 100);
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p99_ms - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.max_ms - 100.0).abs() < 0.1, "{s:?}");
        assert_eq!(g.timeline.len(), 1);
        assert_eq!(g.timeline[0].requests, 100);
    }

    #[test]
    fn retries_count_as_requests_not_errors() {
        let stats = Stats::new(Instant::now());
        stats.retry(stats.start);
        let g = stats.lock();
        assert_eq!((g.requests, g.retries, g.errors.len()), (1, 1, 0));
    }
}
