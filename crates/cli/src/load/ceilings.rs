//! This machine's ceilings, measured in the same run as the load so that
//! results can be given as ratios (absolute numbers drift on a shared
//! machine; ratios hold):
//!
//! - a bare axum hello-world, served in-process on a random port and driven
//!   by the same load engine (so it shares the cores with the load
//!   generator exactly as the platform does);
//! - SQLite insert (order row + outbox row) and commit in a loop through
//!   sqlx, WAL, `synchronous=FULL`: one commit per insert, and batched.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use axum::routing::get;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

use super::scenario::Scenario;
use super::scheduler::{Plan, Stop};
use super::stats::{histogram, ms};
use super::{execute, LoadError, Settings};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HelloCeiling {
    pub concurrency: usize,
    pub seconds: f64,
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SqliteCeiling {
    /// Inserts per transaction.
    pub batch: u64,
    pub seconds: f64,
    pub inserts_per_s: f64,
    pub commits_per_s: f64,
    /// One transaction, begin to commit.
    pub commit_p50_ms: f64,
    pub commit_p99_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ceilings {
    pub cores: usize,
    pub hello: HelloCeiling,
    pub sqlite_commit_each: SqliteCeiling,
    pub sqlite_batched: SqliteCeiling,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CeilingArgs {
    /// How long each measurement runs (e.g. 5s).
    #[arg(long, value_parser = super::parse_duration, default_value = "5s")]
    pub ceiling_duration: Duration,
    /// Connections driving the hello-world.
    #[arg(long, default_value_t = 20)]
    pub ceiling_concurrency: usize,
    /// Inserts per transaction in the batched SQLite loop.
    #[arg(long, default_value_t = 100)]
    pub batch: u64,
    /// Where the SQLite file goes (a temporary directory inside it); the
    /// same disk as the data directory makes the fsync figure relevant.
    #[arg(long, default_value = ".")]
    pub sqlite_dir: PathBuf,
}

/// Measures all ceilings, one after the other.
pub async fn measure(args: &CeilingArgs, progress: bool) -> Result<Ceilings, LoadError> {
    let hello = hello(args, progress).await?;
    let each = sqlite(args, 1).await?;
    let batched = sqlite(args, args.batch.max(1)).await?;
    Ok(Ceilings {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        hello,
        sqlite_commit_each: each,
        sqlite_batched: batched,
    })
}

async fn hello(args: &CeilingArgs, progress: bool) -> Result<HelloCeiling, LoadError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(LoadError::Hello)?;
    let addr = listener.local_addr().map_err(LoadError::Hello)?;
    let app = axum::Router::new().route("/", get(|| async { "Hello, World!" }));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let settings = Settings {
        target: format!("http://{addr}"),
        scenario: Scenario::Hello,
        plan: Plan {
            concurrency: args.ceiling_concurrency,
            stop: Stop::After(args.ceiling_duration),
            ramp_up: Duration::ZERO,
            rate: None,
        },
        progress,
        ..Settings::default()
    };
    let report = execute(&settings).await;
    server.abort();
    let report = report?;
    let step = report.steps.iter().find(|s| s.name == "GET /");
    Ok(HelloCeiling {
        concurrency: args.ceiling_concurrency,
        seconds: report.elapsed_s,
        requests_per_s: report.requests_per_s,
        p50_ms: step.map_or(0.0, |s| s.p50_ms),
        p99_ms: step.map_or(0.0, |s| s.p99_ms),
    })
}

async fn sqlite(args: &CeilingArgs, batch: u64) -> Result<SqliteCeiling, LoadError> {
    let dir = tempfile::Builder::new()
        .prefix("hanwha-ceiling-")
        .tempdir_in(&args.sqlite_dir)
        .map_err(|source| LoadError::Io {
            path: args.sqlite_dir.clone(),
            source,
        })?;
    let path = dir.path().join("ceiling.db");
    let url = format!("sqlite://{}", path.display());
    let mut conn = SqliteConnectOptions::from_str(&url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .connect()
        .await?;
    sqlx::query(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL,
         menu_name TEXT NOT NULL, qty INTEGER NOT NULL, price INTEGER NOT NULL,
         address TEXT NOT NULL, status TEXT NOT NULL, created_at INTEGER NOT NULL)",
    )
    .execute(&mut conn)
    .await?;
    sqlx::query(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE,
         payload TEXT NOT NULL, created_at INTEGER NOT NULL)",
    )
    .execute(&mut conn)
    .await?;

    let mut latency = histogram();
    let start = Instant::now();
    let mut inserts = 0u64;
    let mut commits = 0u64;
    while start.elapsed() < args.ceiling_duration {
        let began = Instant::now();
        let mut tx = conn.begin().await?;
        for _ in 0..batch {
            inserts += 1;
            sqlx::query(
                "INSERT INTO orders (customer_id, menu_name, qty, price, address, status, created_at)
                 VALUES (1, 'pizza', 1, 1000, 'load test', 'Ordered', ?)",
            )
            .bind(inserts as i64)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO outbox (event_id, payload, created_at) VALUES (?, ?, ?)")
                .bind(format!("ev-{inserts}"))
                .bind(r#"{"eventType":"MenuOrdered","orderId":1,"menuName":"pizza","qty":1}"#)
                .bind(inserts as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        commits += 1;
        let us = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
        latency.saturating_record(us.max(1));
    }
    let seconds = start.elapsed().as_secs_f64();
    conn.close().await?;
    Ok(SqliteCeiling {
        batch,
        seconds: (seconds * 1000.0).round() / 1000.0,
        inserts_per_s: (inserts as f64 / seconds).round(),
        commits_per_s: (commits as f64 / seconds).round(),
        commit_p50_ms: ms(latency.value_at_quantile(0.5)),
        commit_p99_ms: ms(latency.value_at_quantile(0.99)),
    })
}

pub fn table(c: &Ceilings) -> String {
    let s = |x: &SqliteCeiling| {
        format!(
            "SQLite insert order+outbox, {} per commit (WAL, synchronous=FULL): {:.0} inserts/s, {:.0} commits/s, commit p50 {:.2} ms p99 {:.2} ms ({:.1} s)\n",
            x.batch, x.inserts_per_s, x.commits_per_s, x.commit_p50_ms, x.commit_p99_ms, x.seconds
        )
    };
    format!(
        "\nceilings on {} cores\nbare axum hello-world, concurrency {}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms ({:.1} s)\n{}{}",
        c.cores,
        c.hello.concurrency,
        c.hello.requests_per_s,
        c.hello.p50_ms,
        c.hello.p99_ms,
        c.hello.seconds,
        s(&c.sqlite_commit_each),
        s(&c.sqlite_batched)
    )
}
