//! `hanwha-delivery load` and `hanwha-delivery ceilings`: drive a running
//! system with virtual customers, owners and riders and report honest
//! figures (HDR percentiles per step, open-loop scheduling so coordinated
//! omission is not hidden, event-to-view lag), and measure this machine's
//! ceilings in the same run so results read as ratios.
//!
//! - `scenario`: what one iteration does (saga, place, browse, ...)
//! - `scheduler`: closed and open loop, ramp-up, stop by duration or count
//! - `stats`: HDR histograms, errors by kind, the per-second timeline
//! - `lag`: notification stream and status-view probes
//! - `report` and `chart`: the table, `--json` and `--chart`
//! - `ceilings`: bare axum hello-world and SQLite insert+commit

mod ceilings;
mod chart;
mod client;
mod lag;
mod report;
mod scenario;
mod scheduler;
mod stats;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;

pub use ceilings::CeilingArgs;
use ceilings::Ceilings;
use client::{Client, SetupError};
use lag::Lag;
use report::{Memory, Report, RunInfo};
use scenario::{Ctx, Scenario};
use scheduler::{Plan, Stop};
use stats::Stats;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the hello-world server: {0}")]
    Hello(#[source] std::io::Error),
    #[error("SQLite ceiling: {0}")]
    Sqlite(#[from] sqlx::Error),
    #[error("menu {0:?} is not on sale at the target")]
    NoMenu(String),
    #[error("{0}")]
    Usage(String),
}

/// Parses `500ms`, `10s`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration like 500ms, 10s or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base URL of the system under load (the all-in-one, or a fleet's gateway).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    #[arg(long, value_enum, default_value = "saga")]
    pub scenario: Scenario,
    /// Iterations in flight at most (virtual users).
    #[arg(long, default_value_t = 20)]
    pub concurrency: usize,
    /// How long to start new iterations (e.g. 20s); default 10s unless --count.
    #[arg(long, value_parser = parse_duration, conflicts_with = "count")]
    pub duration: Option<Duration>,
    /// Run exactly this many iterations.
    #[arg(long)]
    pub count: Option<u64>,
    /// Closed loop: workers start spread over this time. Open loop: the
    /// rate rises linearly to --rate over this time.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub ramp_up: Duration,
    /// Open loop: start this many iterations per second whatever the
    /// answers, measuring latency from each one's scheduled start.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Write the whole report as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an SVG chart of throughput and latency over time.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Ceilings measured earlier (`hanwha-delivery ceilings --json`), for ratios.
    #[arg(long, conflicts_with = "run_ceilings")]
    pub ceilings: Option<PathBuf>,
    /// Measure the ceilings in this run, before the load.
    #[arg(long)]
    pub run_ceilings: bool,
    #[command(flatten)]
    pub ceiling: CeilingArgs,
    /// The server's process id: its memory (/proc/PID/status) is reported.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Demo users (password = name).
    #[arg(long, default_value = "customer")]
    pub customer: String,
    #[arg(long, default_value = "owner")]
    pub owner: String,
    #[arg(long, default_value = "rider")]
    pub rider: String,
    /// Menu the customer orders; the owner's store must sell it.
    #[arg(long, default_value = "pizza")]
    pub menu: String,
    /// Probe the status view on every Nth saga or order (0: never); the
    /// notification lag is measured for every action.
    #[arg(long, default_value_t = 10)]
    pub status_every: u64,
    /// Per-request timeout.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// How long a step waits for the event it depends on.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub event_timeout: Duration,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
}

/// One run, as the engine needs it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub target: String,
    pub scenario: Scenario,
    pub plan: Plan,
    pub progress: bool,
    pub server_pid: Option<u32>,
    pub customer: String,
    pub owner: String,
    pub rider: String,
    pub menu: String,
    pub status_every: u64,
    pub timeout: Duration,
    pub event_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            target: "http://127.0.0.1:8080".into(),
            scenario: Scenario::Saga,
            plan: Plan {
                concurrency: 20,
                stop: Stop::After(Duration::from_secs(10)),
                ramp_up: Duration::ZERO,
                rate: None,
            },
            progress: true,
            server_pid: None,
            customer: "customer".into(),
            owner: "owner".into(),
            rider: "rider".into(),
            menu: "pizza".into(),
            status_every: 10,
            timeout: Duration::from_secs(10),
            event_timeout: Duration::from_secs(30),
        }
    }
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memory_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Prints the live line once a second: rate, errors, p99 so far.
async fn progress(stats: Arc<Stats>, pid: Option<u32>, rss_max: Arc<AtomicU64>, show: bool) {
    let tty = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut last_req, mut last_it) = (0u64, 0u64);
    let mut last_at = Instant::now();
    loop {
        tick.tick().await;
        if let Some((rss, _)) = pid.and_then(memory_of) {
            rss_max.fetch_max(rss, Ordering::Relaxed);
        }
        if !show {
            continue;
        }
        let (req, it, errors, p99) = {
            let g = stats.lock();
            let errors: u64 = g.errors.values().sum();
            (
                g.requests,
                g.iterations_ok,
                errors,
                stats::ms(g.all.value_at_quantile(0.99)),
            )
        };
        let secs = last_at.elapsed().as_secs_f64().max(1e-3);
        let line = format!(
            "[{:>4.0}s] {:>8.0} req/s {:>7.0} it/s  done {:>7}  errors {:>5}  p99 so far {:>8.2} ms",
            stats.start.elapsed().as_secs_f64(),
            (req - last_req) as f64 / secs,
            (it - last_it) as f64 / secs,
            it,
            errors,
            p99
        );
        if tty {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
        (last_req, last_it, last_at) = (req, it, Instant::now());
    }
}

/// Orders placed before an `order` run, for it to read.
const ORDERS_TO_READ: usize = 5;

/// The accounts and orders a run starts from.
struct Prepared {
    customer: String,
    owner: String,
    rider: String,
    order_ids: Vec<i64>,
}

/// Logs in, checks the menu is on sale and places the orders an `order`
/// run reads, before the clock starts.
async fn prepare(client: &Client, s: &Settings) -> Result<Prepared, LoadError> {
    let (customer, owner, rider) = if s.scenario.needs_users() {
        (
            client.login(&s.customer, &s.customer).await?,
            client.login(&s.owner, &s.owner).await?,
            client.login(&s.rider, &s.rider).await?,
        )
    } else {
        Default::default()
    };
    if s.scenario.places_orders() || s.scenario == Scenario::Order {
        let menus = client
            .setup_json("reading menus", Method::GET, "/menus", None, None)
            .await?;
        let on_sale = menus
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["name"] == s.menu.as_str()));
        if !on_sale {
            return Err(LoadError::NoMenu(s.menu.clone()));
        }
    }
    let mut order_ids = Vec::new();
    if s.scenario == Scenario::Order {
        let body = serde_json::json!({"menuName": s.menu, "qty": 1, "address": "load test"});
        for _ in 0..ORDERS_TO_READ {
            let v = client
                .setup_json(
                    "placing an order to read",
                    Method::POST,
                    "/orders",
                    Some(&customer),
                    Some(&body),
                )
                .await?;
            order_ids.extend(v["id"].as_i64());
        }
    }
    Ok(Prepared {
        customer,
        owner,
        rider,
        order_ids,
    })
}

/// Opens the customer's notification stream so each placed order's events
/// are timed as they arrive; returns the lag tally and the follower task.
async fn follow_lag(
    client: &Client,
    customer: &str,
    stats: &Arc<Stats>,
) -> Result<(Arc<Lag>, tokio::task::JoinHandle<()>), LoadError> {
    let after = lag::latest_notification(client, customer).await?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let lag = Arc::new(Lag::new(stats.clone()));
    let follower = tokio::spawn(lag::follow_notifications(
        client.base().to_string(),
        customer.to_string(),
        after,
        lag.clone(),
        ready_tx,
    ));
    // Until the stream is open, notifications would arrive late and
    // inflate the lag; give it a few seconds at most.
    let _ = tokio::time::timeout(Duration::from_secs(5), ready_rx).await;
    Ok((lag, follower))
}

/// Lets the last notifications and status probes land, for at most 5 s.
async fn wait_for_stragglers(lag: Option<&Lag>, probes: &AtomicU64) {
    let grace = Instant::now() + Duration::from_secs(5);
    while Instant::now() < grace {
        let unseen = lag.map_or(0, |l| l.unseen().values().sum::<u64>());
        if unseen == 0 && probes.load(Ordering::Relaxed) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The server's memory around the run, from its /proc status.
fn memory_around(pid: u32, before: Option<(u64, u64)>, rss_max: &AtomicU64) -> Memory {
    let after = memory_of(pid);
    let rss_now = after.map_or(0, |a| a.0);
    Memory {
        pid,
        rss_before_kb: before.map_or(0, |b| b.0),
        hwm_before_kb: before.map_or(0, |b| b.1),
        rss_max_kb: rss_max.load(Ordering::Relaxed).max(rss_now),
        hwm_after_kb: after.map_or(0, |a| a.1),
    }
}

/// A name no earlier run used, for the Idempotency-Keys of this one.
fn run_id() -> String {
    format!(
        "load-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    )
}

/// Runs one load and returns its report.
pub async fn execute(s: &Settings) -> Result<Report, LoadError> {
    let client = Client::new(&s.target, s.plan.concurrency + 8, s.timeout)?;
    let prepared = prepare(&client, s).await?;
    let stats = Arc::new(Stats::new(Instant::now()));
    let (lag, follower) = if s.scenario.places_orders() {
        let (lag, follower) = follow_lag(&client, &prepared.customer, &stats).await?;
        (Some(lag), Some(follower))
    } else {
        (None, None)
    };

    let before = s.server_pid.and_then(memory_of);
    let rss_max = Arc::new(AtomicU64::new(before.map_or(0, |b| b.0)));
    // Scheduled starts count from here (the stream above may have taken a
    // moment to open).
    let start = Instant::now();
    let ticker = tokio::spawn(progress(
        stats.clone(),
        s.server_pid,
        rss_max.clone(),
        s.progress,
    ));

    let probes = Arc::new(AtomicU64::new(0));
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        stats: stats.clone(),
        lag: lag.clone(),
        customer: prepared.customer.into(),
        owner: prepared.owner.into(),
        rider: prepared.rider.into(),
        menu: s.menu.clone(),
        run_id: run_id(),
        order_ids: prepared.order_ids,
        status_every: s.status_every,
        event_timeout: s.event_timeout,
        probes: probes.clone(),
    });
    let scenario = s.scenario;
    scheduler::drive(s.plan, start, move |k, due| {
        let ctx = ctx.clone();
        async move { ctx.iterate(scenario, k, due).await }
    })
    .await;
    let elapsed = start.elapsed();

    wait_for_stragglers(lag.as_deref(), &probes).await;
    ticker.abort();
    if let Some(f) = follower {
        f.abort();
    }
    if s.progress && std::io::stderr().is_terminal() {
        eprintln!();
    }

    let memory = s.server_pid.map(|pid| memory_around(pid, before, &rss_max));
    let unseen: BTreeMap<String, u64> = lag
        .map(|l| {
            l.unseen()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect()
        })
        .unwrap_or_default();
    Ok(Report::build(
        RunInfo {
            scenario: s.scenario,
            target: s.target.clone(),
            concurrency: s.plan.concurrency,
            rate: s.plan.rate,
            ramp_up: s.plan.ramp_up,
            elapsed,
        },
        &stats,
        unseen,
        memory,
    ))
}

fn write(path: &Path, text: &str) -> Result<(), LoadError> {
    std::fs::write(path, text).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn to_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<String, LoadError> {
    serde_json::to_string_pretty(value).map_err(|source| LoadError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// `hanwha-delivery load`.
pub async fn run(args: Args) -> Result<(), LoadError> {
    if args.concurrency == 0 {
        return Err(LoadError::Usage("--concurrency must be at least 1".into()));
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(LoadError::Usage("--rate must be a positive number".into()));
    }
    let ceilings: Option<Ceilings> = if let Some(path) = &args.ceilings {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.clone(),
            source,
        })?;
        Some(
            serde_json::from_str(&text).map_err(|source| LoadError::Json {
                path: path.clone(),
                source,
            })?,
        )
    } else if args.run_ceilings {
        let c = ceilings::measure(&args.ceiling, !args.quiet).await?;
        print!("{}", ceilings::table(&c));
        Some(c)
    } else {
        None
    };
    let stop = match (args.count, args.duration) {
        (Some(n), _) => Stop::Count(n),
        (None, Some(d)) => Stop::After(d),
        (None, None) => Stop::After(Duration::from_secs(10)),
    };
    let settings = Settings {
        target: args.target,
        scenario: args.scenario,
        plan: Plan {
            concurrency: args.concurrency,
            stop,
            ramp_up: args.ramp_up,
            rate: args.rate,
        },
        progress: !args.quiet,
        server_pid: args.server_pid,
        customer: args.customer,
        owner: args.owner,
        rider: args.rider,
        menu: args.menu,
        status_every: args.status_every,
        timeout: args.timeout,
        event_timeout: args.event_timeout,
    };
    let mut report = execute(&settings).await?;
    if let Some(c) = ceilings {
        report = report.with_ceilings(c);
    }
    print!("{}", report.table());
    if let Some(path) = &args.json {
        write(path, &to_json(path, &report)?)?;
    }
    if let Some(path) = &args.chart {
        write(path, &chart::svg(&report))?;
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct CeilingsCommand {
    #[command(flatten)]
    pub ceiling: CeilingArgs,
    /// Write the ceilings as JSON (for `load --ceilings FILE`).
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[arg(long)]
    pub quiet: bool,
}

/// `hanwha-delivery ceilings`.
pub async fn run_ceilings(args: CeilingsCommand) -> Result<(), LoadError> {
    let c = ceilings::measure(&args.ceiling, !args.quiet).await?;
    print!("{}", ceilings::table(&c));
    if let Some(path) = &args.json {
        write(path, &to_json(path, &c)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("fast").is_err());
    }
}
