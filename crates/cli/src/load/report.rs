//! The end of a run: one `Report` (what `--json` writes) and the table
//! printed from it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::ceilings::Ceilings;
use super::scenario::Scenario;
use super::stats::{Stats, Summary};

/// One second of the run, for the chart.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub t_s: u64,
    pub requests: u64,
    pub iterations: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The server's memory from `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    pub pid: u32,
    /// Resident set before the first request.
    pub rss_before_kb: u64,
    /// Peak resident set of the process's life so far (VmHWM) before the run.
    pub hwm_before_kb: u64,
    /// Largest resident set sampled during the run (once a second).
    pub rss_max_kb: u64,
    /// VmHWM after the run: the true peak, however short.
    pub hwm_after_kb: u64,
}

/// Results over the same machine's ceilings (see `ceilings`).
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    /// requests/s of this run over the bare axum hello-world's.
    pub requests_to_hello: f64,
    /// Orders placed per second over SQLite insert+commit per second (one
    /// commit each, synchronous=FULL).
    pub places_to_sqlite_commit_each: Option<f64>,
    /// The same over batched commits.
    pub places_to_sqlite_batched: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub target: String,
    pub concurrency: usize,
    /// Target iterations per second (open loop), or none (closed loop).
    pub rate: Option<f64>,
    pub ramp_up_s: f64,
    /// From the first scheduled start to the last iteration's end.
    pub elapsed_s: f64,
    pub iterations_ok: u64,
    pub iterations_failed: u64,
    pub iterations_per_s: f64,
    /// Full sagas completed (confirm answered).
    pub sagas: u64,
    pub sagas_per_s: f64,
    /// Requests answered, retries included.
    pub requests: u64,
    pub requests_per_s: f64,
    /// Requests repeated because the event they depend on had not arrived.
    pub retries: u64,
    /// A whole iteration, from its scheduled start.
    pub iteration: Summary,
    pub steps: Vec<Summary>,
    /// From the answer that caused an event until the step that needs it
    /// first succeeded.
    pub event_waits: Vec<Summary>,
    /// From an action's answer until the view showed it.
    pub lag: Vec<Summary>,
    /// Actions whose customer notification had not arrived when the run
    /// ended.
    pub notifications_unseen: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    pub error_total: u64,
    pub timeline: Vec<Point>,
    pub server_memory: Option<Memory>,
    pub ceilings: Option<Ceilings>,
    pub ratios: Option<Ratios>,
}

pub struct RunInfo {
    pub scenario: Scenario,
    pub target: String,
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub ramp_up: Duration,
    pub elapsed: Duration,
}

fn per_s(n: u64, elapsed: f64) -> f64 {
    if elapsed > 0.0 {
        (n as f64 / elapsed * 10.0).round() / 10.0
    } else {
        0.0
    }
}

impl Report {
    pub fn build(
        info: RunInfo,
        stats: &Stats,
        unseen: BTreeMap<String, u64>,
        server_memory: Option<Memory>,
    ) -> Report {
        let g = stats.lock();
        let elapsed = info.elapsed.as_secs_f64();
        let order = |name: &str| {
            super::lag::ACTIONS
                .iter()
                .position(|(a, _, _)| *a == name)
                .unwrap_or(usize::MAX)
        };
        let mut steps: Vec<Summary> = g.steps.iter().map(|(n, h)| Summary::of(n, h)).collect();
        steps.sort_by_key(|s| (order(&s.name), s.name.clone()));
        let mut lag: Vec<Summary> = g.lags.iter().map(|(n, h)| Summary::of(n, h)).collect();
        lag.sort_by_key(|s| {
            let action = s.name.split(": ").nth(1).unwrap_or("");
            (
                !s.name.ends_with("(all)"),
                s.name.starts_with("status"),
                order(action),
            )
        });
        let timeline = g
            .timeline
            .iter()
            .enumerate()
            .map(|(t, s)| Point {
                t_s: t as u64,
                requests: s.requests,
                iterations: s.iterations,
                errors: s.errors,
                p50_ms: super::stats::ms(s.latency.value_at_quantile(0.5)),
                p99_ms: super::stats::ms(s.latency.value_at_quantile(0.99)),
            })
            .collect();
        Report {
            scenario: info.scenario,
            target: info.target,
            concurrency: info.concurrency,
            rate: info.rate,
            ramp_up_s: info.ramp_up.as_secs_f64(),
            elapsed_s: (elapsed * 1000.0).round() / 1000.0,
            iterations_ok: g.iterations_ok,
            iterations_failed: g.iterations_failed,
            iterations_per_s: per_s(g.iterations_ok, elapsed),
            sagas: g.sagas,
            sagas_per_s: per_s(g.sagas, elapsed),
            requests: g.requests,
            requests_per_s: per_s(g.requests, elapsed),
            retries: g.retries,
            iteration: Summary::of("iteration", &g.iteration),
            steps,
            event_waits: g.waits.iter().map(|(n, h)| Summary::of(n, h)).collect(),
            lag,
            notifications_unseen: unseen,
            error_total: g.errors.values().sum(),
            errors: g.errors.clone(),
            timeline,
            server_memory,
            ceilings: None,
            ratios: None,
        }
    }

    /// Sets the ceilings and the ratios to them.
    pub fn with_ceilings(mut self, ceilings: Ceilings) -> Report {
        let ratio = |a: f64, b: f64| (b > 0.0).then(|| (a / b * 1000.0).round() / 1000.0);
        let places = self
            .steps
            .iter()
            .find(|s| s.name == "place")
            .map(|s| per_s(s.count, self.elapsed_s));
        self.ratios = Some(Ratios {
            requests_to_hello: ratio(self.requests_per_s, ceilings.hello.requests_per_s)
                .unwrap_or(0.0),
            places_to_sqlite_commit_each: places
                .and_then(|p| ratio(p, ceilings.sqlite_commit_each.inserts_per_s)),
            places_to_sqlite_batched: places
                .and_then(|p| ratio(p, ceilings.sqlite_batched.inserts_per_s)),
        });
        self.ceilings = Some(ceilings);
        self
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let rate = self
            .rate
            .map(|r| format!("open loop at {r}/s"))
            .unwrap_or_else(|| "closed loop".into());
        let _ = writeln!(
            out,
            "\n{:?} against {}: concurrency {}, {}, {:.1} s",
            self.scenario, self.target, self.concurrency, rate, self.elapsed_s
        );
        let _ = writeln!(
            out,
            "iterations {} ok, {} failed ({:.1}/s); sagas {} ({:.1}/s); requests {} ({:.1}/s, {} event retries)",
            self.iterations_ok,
            self.iterations_failed,
            self.iterations_per_s,
            self.sagas,
            self.sagas_per_s,
            self.requests,
            self.requests_per_s,
            self.retries
        );
        section(
            &mut out,
            "step",
            std::slice::from_ref(&self.iteration)
                .iter()
                .chain(&self.steps),
        );
        if !self.event_waits.is_empty() {
            section(&mut out, "event wait", self.event_waits.iter());
        }
        if !self.lag.is_empty() {
            section(&mut out, "event-to-view lag", self.lag.iter());
        }
        for (action, n) in &self.notifications_unseen {
            let _ = writeln!(out, "notification never seen for {n} x {action}");
        }
        if self.errors.is_empty() {
            let _ = writeln!(out, "errors: none");
        } else {
            let _ = writeln!(out, "errors: {}", self.error_total);
            for (kind, n) in &self.errors {
                let _ = writeln!(out, "  {n:>8}  {kind}");
            }
        }
        if let Some(m) = &self.server_memory {
            let _ = writeln!(
                out,
                "server pid {}: RSS before {:.1} MB, max sampled {:.1} MB, VmHWM {:.1} MB",
                m.pid,
                m.rss_before_kb as f64 / 1024.0,
                m.rss_max_kb as f64 / 1024.0,
                m.hwm_after_kb as f64 / 1024.0
            );
        }
        if let (Some(c), Some(r)) = (&self.ceilings, &self.ratios) {
            let _ = writeln!(
                out,
                "ceilings: hello {:.0} req/s; SQLite insert+commit {:.0}/s each, {:.0}/s batched",
                c.hello.requests_per_s,
                c.sqlite_commit_each.inserts_per_s,
                c.sqlite_batched.inserts_per_s
            );
            let _ = write!(
                out,
                "ratios: requests/s to hello {:.3}",
                r.requests_to_hello
            );
            if let Some(x) = r.places_to_sqlite_commit_each {
                let _ = write!(out, "; places/s to SQLite commit-each {x:.3}");
            }
            if let Some(x) = r.places_to_sqlite_batched {
                let _ = write!(out, "; to batched {x:.3}");
            }
            let _ = writeln!(out);
        }
        out
    }
}

fn section<'a>(out: &mut String, title: &str, rows: impl Iterator<Item = &'a Summary>) {
    let _ = writeln!(
        out,
        "{:<40} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        title, "count", "p50 ms", "p95 ms", "p99 ms", "max ms", "mean ms"
    );
    for s in rows {
        if s.count == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "  {:<38} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            s.name, s.count, s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms, s.mean_ms
        );
    }
}
