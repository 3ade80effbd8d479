//! Retention: what the platform keeps only for as long as a guarantee needs
//! it, deleted by a background task in small batches on a schedule.
//!
//! - Idempotency keys: a key older than the idempotency TTL already counts
//!   as new ([`crate::idempotency`]), so its row has no use left.
//! - Inbox rows: they make a redelivered event change nothing, so they stay
//!   longer than any redelivery can come (see [`Periods::inbox`]).
//! - Dead letters: an admin can replay or discard one for the whole period
//!   after it was set aside; then it goes, payload and all.
//! - Outbox rows: the relay deletes each once the log or the broker holds
//!   it, so none are kept.
//! - The embedded event log: entries every consumer has passed, older than
//!   the log period, are folded into each view's snapshot and deleted
//!   (snapshot plus tail, see [`crate::rebuild`]).
//!
//! Business rows (orders, payments, store orders, deliveries, the status
//! view with its history, notifications) are never touched.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::db::Db;
use crate::event_log::{EventLog, LogError};
use crate::rebuild::{self, RebuildError, RebuildableView};
use crate::shutdown::Shutdown;
use crate::sql;

const DAY: u64 = 24 * 3600;

/// How long each kind of row is kept, and when retention runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periods {
    /// Between two runs.
    pub every: Duration,
    /// Before the first run after start: after the consumers have taken
    /// what the broker redelivers to a restarted service.
    pub first_after: Duration,
    /// Idempotency keys; never less than the TTL that answers retries.
    pub idempotency: Duration,
    /// Inbox rows, counted from when the event was handled.
    pub inbox: Duration,
    /// Dead letters, counted from when the event was set aside.
    pub dead_letters: Duration,
    /// Event log entries, counted from when they were logged.
    pub log: Duration,
    /// Rows deleted (or log entries folded) per transaction, so the
    /// group-commit writer is never held long.
    pub batch: i64,
}

impl Default for Periods {
    fn default() -> Periods {
        Periods {
            every: Duration::from_secs(600),
            first_after: Duration::from_secs(60),
            idempotency: crate::idempotency::DEFAULT_TTL,
            inbox: Duration::from_secs(7 * DAY),
            dead_letters: Duration::from_secs(30 * DAY),
            log: Duration::from_secs(7 * DAY),
            batch: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeriodsError {
    #[error("{var}={value:?}: expected a whole number of {unit}")]
    NotANumber {
        var: &'static str,
        value: String,
        unit: &'static str,
    },
    #[error("{var} must be at least 1")]
    Zero { var: &'static str },
}

impl Periods {
    /// Reads `HANWHA_RETENTION_*` (seconds; the batch in rows) over the
    /// defaults, with the idempotency TTL from its own variable.
    pub fn from_env() -> Result<Periods, PeriodsError> {
        Periods::from_lookup(
            |var| std::env::var(var).ok(),
            crate::idempotency::ttl_from_env(),
        )
    }

    /// [`Periods::from_env`] over any source of variables.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        idempotency_ttl: Duration,
    ) -> Result<Periods, PeriodsError> {
        let d = Periods::default();
        let number = |var: &'static str, unit: &'static str, default: u64| match get(var)
            .map(|v| v.trim().to_string())
        {
            None => Ok(default),
            Some(v) if v.is_empty() => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(0) => Err(PeriodsError::Zero { var }),
                Ok(n) => Ok(n),
                Err(_) => Err(PeriodsError::NotANumber {
                    var,
                    value: v,
                    unit,
                }),
            },
        };
        let secs = |var, default: Duration| {
            number(var, "seconds", default.as_secs()).map(Duration::from_secs)
        };
        Ok(Periods {
            every: secs("HANWHA_RETENTION_EVERY_SECS", d.every)?,
            first_after: secs("HANWHA_RETENTION_FIRST_SECS", d.first_after)?,
            idempotency: keys_period(idempotency_ttl),
            inbox: secs("HANWHA_RETENTION_INBOX_SECS", d.inbox)?,
            dead_letters: secs("HANWHA_RETENTION_DEAD_LETTERS_SECS", d.dead_letters)?,
            log: secs("HANWHA_RETENTION_LOG_SECS", d.log)?,
            batch: number("HANWHA_RETENTION_BATCH", "rows", d.batch as u64)?.min(100_000) as i64,
        })
    }

    /// The periods for a service reading a broker: an inbox row outlives
    /// every redelivery by a wide margin, whatever was configured.
    pub fn for_broker(self, redelivery_window: Duration) -> Periods {
        Periods {
            inbox: inbox_period_for_broker(self.inbox, redelivery_window),
            ..self
        }
    }
}

/// Idempotency keys are kept exactly as long as the TTL that answers a
/// retry from them: purging one sooner would place a retried order twice.
pub fn keys_period(ttl: Duration) -> Duration {
    ttl
}

/// How many redelivery windows an inbox row outlives at least, on a broker.
pub const BROKER_MARGIN: u32 = 10;

/// On a broker a copy of a handled event can arrive up to the redelivery
/// window later; an inbox row is kept at least [`BROKER_MARGIN`] windows.
pub fn inbox_period_for_broker(configured: Duration, redelivery_window: Duration) -> Duration {
    configured.max(redelivery_window * BROKER_MARGIN)
}

/// Rows stamped before this instant (ms) are older than `keep` at `now`.
pub fn cutoff(now: i64, keep: Duration) -> i64 {
    now.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX))
}

/// Log entries logged before this instant may be compacted: older than the
/// log period, and older than every event still waiting in an outbox (one
/// the relay may publish again after a crash; the log drops it as a
/// duplicate only while it holds the first copy).
pub fn log_cutoff(now: i64, keep: Duration, oldest_unpublished: Option<i64>) -> i64 {
    let by_age = cutoff(now, keep);
    oldest_unpublished.map_or(by_age, |t| by_age.min(t))
}

/// The name a read model's rebuild copy keeps its position under. A rebuild
/// is not waited for: when the log is compacted past it, it starts again
/// from the newer snapshot (see [`crate::rebuild::rebuild`]).
fn is_rebuild_copy(consumer: &str) -> bool {
    consumer.ends_with(".rebuild")
}

/// The position every reader of the log has passed: the lowest of every
/// cursor row and of every consumer that must read the log (one with no row
/// yet stands at 0). Rebuild copies are left out.
pub fn readers_floor(cursors: &[(String, i64)], consumers: &[&str]) -> i64 {
    let rows = cursors
        .iter()
        .filter(|(name, _)| !is_rebuild_copy(name))
        .map(|(_, pos)| *pos);
    let missing = consumers
        .iter()
        .filter(|c| !cursors.iter().any(|(name, _)| name == *c))
        .map(|_| 0);
    rows.chain(missing).min().unwrap_or(0)
}

/// How far the log may be compacted, given its oldest entries `(seq,
/// logged_at)` in order: through the last of the leading entries that are
/// older than `cutoff` and that every reader has passed. `None`: nothing.
pub fn compaction_point(oldest: &[(i64, i64)], cutoff: i64, floor: i64) -> Option<i64> {
    oldest
        .iter()
        .take_while(|(seq, logged_at)| *logged_at < cutoff && *seq <= floor)
        .last()
        .map(|(seq, _)| *seq)
}

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("snapshot: {0}")]
    Snapshot(#[from] RebuildError),
}

/// What a run removed from one service's database.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub idempotency_keys: u64,
    pub inbox: u64,
    pub dead_letters: u64,
}

impl Purged {
    pub fn total(&self) -> u64 {
        self.idempotency_keys + self.inbox + self.dead_letters
    }
}

/// Deletes up to `batch` rows of `table` stamped before `before`, oldest
/// first, in one transaction; returns how many went. The inner derived
/// table is what lets MariaDB take a LIMIT and read the table it deletes
/// from.
async fn delete_batch(
    db: &Db,
    table: &'static str,
    key: &'static str,
    stamp: &'static str,
    before: i64,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    db.write(move |conn| {
        Box::pin(async move {
            let done = sql::query(format!(
                "DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM (SELECT {key} FROM {table}
                 WHERE {stamp} < ? ORDER BY {stamp} LIMIT ?) expired)"
            ))
            .bind(before)
            .bind(batch)
            .execute(conn)
            .await?;
            Ok(done.rows_affected())
        })
    })
    .await
}

async fn delete_all(
    db: &Db,
    table: &'static str,
    key: &'static str,
    stamp: &'static str,
    before: i64,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let n = delete_batch(db, table, key, stamp, before, batch).await?;
        total += n;
        if n < batch as u64 {
            return Ok(total);
        }
    }
}

/// Deletes a service's expired idempotency keys, inbox rows and dead
/// letters as of `now` (ms).
pub async fn purge(db: &Db, periods: &Periods, now: i64) -> Result<Purged, sqlx::Error> {
    let batch = periods.batch.max(1);
    Ok(Purged {
        idempotency_keys: delete_all(
            db,
            "idempotency_keys",
            "principal, idem_key",
            "created_at",
            cutoff(now, periods.idempotency),
            batch,
        )
        .await?,
        inbox: delete_all(
            db,
            "inbox",
            "event_id",
            "handled_at",
            cutoff(now, periods.inbox),
            batch,
        )
        .await?,
        dead_letters: delete_all(
            db,
            "dead_letters",
            "id",
            "created_at",
            cutoff(now, periods.dead_letters),
            batch,
        )
        .await?,
    })
}

/// The embedded log and everything its compaction must respect.
#[derive(Clone)]
pub struct LogRetention {
    pub log: EventLog,
    /// Each consumer of the log with the database its position is kept in.
    pub consumers: Vec<(&'static str, Db)>,
    /// Databases whose outbox the relays publish into the log.
    pub outboxes: Vec<Db>,
    /// Views rebuilt from the log, each with its database; their snapshots
    /// take in what the log drops.
    pub views: Vec<(Arc<dyn RebuildableView>, Db)>,
}

/// What a compaction of the log did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// Entries folded into the views' snapshots (over all views).
    pub folded: usize,
    /// Entries deleted from the log.
    pub deleted: u64,
    /// The position the retained log starts after.
    pub through: i64,
}

impl LogRetention {
    /// Folds the entries that may go into every view's snapshot, then
    /// deletes them, `batch` at a time.
    pub async fn compact(&self, periods: &Periods, now: i64) -> Result<Compaction, RetentionError> {
        let batch = periods.batch.max(1);
        let mut cursors = Vec::new();
        let mut seen: Vec<&Db> = Vec::new();
        for (_, db) in &self.consumers {
            if seen.iter().any(|d| d.same(db)) {
                continue;
            }
            seen.push(db);
            let rows = sql::query("SELECT consumer, position FROM consumer_cursor")
                .fetch_all(db)
                .await?;
            cursors.extend(
                rows.iter()
                    .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1))),
            );
        }
        let names: Vec<&str> = self.consumers.iter().map(|(n, _)| *n).collect();
        let floor = readers_floor(&cursors, &names);
        let mut oldest_unpublished: Option<i64> = None;
        for db in &self.outboxes {
            let t: Option<i64> = sql::query_scalar("SELECT MIN(created_at) FROM outbox")
                .fetch_one(db)
                .await?;
            oldest_unpublished = match (oldest_unpublished, t) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let before = log_cutoff(now, periods.log, oldest_unpublished);
        let mut done = Compaction {
            through: self.log.compacted_through().await?,
            ..Compaction::default()
        };
        loop {
            let oldest = self.log.oldest(batch).await?;
            let Some(point) = compaction_point(&oldest, before, floor) else {
                break;
            };
            let mut held = point;
            for (view, db) in &self.views {
                let folded = rebuild::fold(view.clone(), db, &self.log, point, batch).await?;
                if folded.buried > 0 {
                    tracing::warn!(
                        view = view.served(),
                        buried = folded.buried,
                        "events failed while folded into the snapshot; they are dead letters now"
                    );
                }
                done.folded += folded.folded;
                held = held.min(folded.position);
            }
            if held <= done.through {
                break;
            }
            let deleted = self.log.compact(held, batch, now).await?;
            done.deleted += deleted;
            done.through = self.log.compacted_through().await?;
            if deleted == 0 || held < point || (oldest.len() as i64) < batch {
                break;
            }
        }
        Ok(done)
    }
}

/// What one service process runs retention over.
#[derive(Clone)]
pub struct Retention {
    /// Each service database by name.
    pub dbs: Vec<(&'static str, Db)>,
    /// The embedded log (the all-in-one); `None` on a broker, which keeps
    /// its own stream.
    pub log: Option<LogRetention>,
    pub periods: Periods,
}

/// What one run removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub purged: Vec<(&'static str, Purged)>,
    pub log: Option<Compaction>,
}

impl Retention {
    /// One run as of `now` (ms): every database, then the log. A failing
    /// database is logged and the others still run.
    pub async fn run_once(&self, now: i64) -> Result<Report, RetentionError> {
        let mut report = Report::default();
        let mut failed = None;
        for (name, db) in &self.dbs {
            match purge(db, &self.periods, now).await {
                Ok(p) => {
                    if p.total() > 0 {
                        tracing::info!(
                            service = *name,
                            idempotency_keys = p.idempotency_keys,
                            inbox = p.inbox,
                            dead_letters = p.dead_letters,
                            "retention removed expired rows"
                        );
                    }
                    report.purged.push((name, p));
                }
                Err(e) => {
                    tracing::warn!(service = *name, error = %e, "retention failed");
                    failed = Some(e);
                }
            }
        }
        if let Some(log) = &self.log {
            let c = log.compact(&self.periods, now).await?;
            if c.deleted > 0 {
                tracing::info!(
                    folded = c.folded,
                    deleted = c.deleted,
                    retained_after = c.through,
                    "event log compacted into the views' snapshots"
                );
            }
            report.log = Some(c);
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(report),
        }
    }

    /// Runs retention on its schedule until shutdown.
    pub fn spawn(self, mut shutdown: Shutdown) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut pause = self.periods.first_after;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.wait() => return,
                }
                pause = self.periods.every;
                let started = std::time::Instant::now();
                match self.run_once(crate::clock::now_ms()).await {
                    Ok(report) => {
                        let removed: u64 = report.purged.iter().map(|(_, p)| p.total()).sum();
                        tracing::info!(
                            removed,
                            log_entries = report.log.map_or(0, |c| c.deleted),
                            ms = started.elapsed().as_millis() as u64,
                            "retention run done"
                        );
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "retention run failed; next run on schedule")
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn a_row_expires_once_it_is_older_than_its_period() {
        let now = 100 * H;
        assert_eq!(cutoff(now, Duration::from_secs(3600)), 99 * H);
        // A period longer than time itself keeps everything.
        assert_eq!(cutoff(now, Duration::MAX), now.saturating_sub(i64::MAX));
        assert!(cutoff(now, Duration::MAX) < 0);
    }

    #[test]
    fn idempotency_keys_live_exactly_as_long_as_their_ttl() {
        let ttl = Duration::from_secs(24 * 3600);
        assert_eq!(keys_period(ttl), ttl);
        let periods = Periods::from_lookup(|_| None, ttl).expect("defaults");
        assert_eq!(periods.idempotency, ttl);
    }

    #[test]
    fn defaults_keep_inbox_and_log_a_week_and_dead_letters_a_month() {
        let p = Periods::from_lookup(|_| None, crate::idempotency::DEFAULT_TTL).expect("defaults");
        assert_eq!(p, Periods::default());
        assert_eq!(p.inbox, Duration::from_secs(7 * DAY));
        assert_eq!(p.log, Duration::from_secs(7 * DAY));
        assert_eq!(p.dead_letters, Duration::from_secs(30 * DAY));
        assert_eq!(
            (p.every, p.first_after, p.batch),
            (Duration::from_secs(600), Duration::from_secs(60), 1000)
        );
    }

    #[test]
    fn the_environment_sets_each_period_and_rejects_nonsense() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |var: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| v.to_string())
            }
        };
        let p = Periods::from_lookup(
            env(&[
                ("HANWHA_RETENTION_INBOX_SECS", "2"),
                ("HANWHA_RETENTION_LOG_SECS", " 3 "),
                ("HANWHA_RETENTION_EVERY_SECS", "1"),
                ("HANWHA_RETENTION_BATCH", "7"),
            ]),
            Duration::from_secs(3600),
        )
        .expect("valid");
        assert_eq!(p.inbox, Duration::from_secs(2));
        assert_eq!(p.log, Duration::from_secs(3));
        assert_eq!(p.every, Duration::from_secs(1));
        assert_eq!(p.batch, 7);
        assert_eq!(p.dead_letters, Duration::from_secs(30 * DAY));
        assert_eq!(
            Periods::from_lookup(
                env(&[("HANWHA_RETENTION_INBOX_SECS", "7d")]),
                Duration::ZERO
            ),
            Err(PeriodsError::NotANumber {
                var: "HANWHA_RETENTION_INBOX_SECS",
                value: "7d".into(),
                unit: "seconds"
            })
        );
        assert_eq!(
            Periods::from_lookup(env(&[("HANWHA_RETENTION_BATCH", "0")]), Duration::ZERO),
            Err(PeriodsError::Zero {
                var: "HANWHA_RETENTION_BATCH"
            })
        );
    }

    #[test]
    fn on_a_broker_an_inbox_row_outlives_ten_redelivery_windows() {
        let window = Duration::from_secs(200);
        assert_eq!(
            inbox_period_for_broker(Duration::from_secs(60), window),
            Duration::from_secs(2000)
        );
        let week = Duration::from_secs(7 * DAY);
        assert_eq!(inbox_period_for_broker(week, window), week);
        let p = Periods {
            inbox: Duration::from_secs(1),
            ..Periods::default()
        }
        .for_broker(window);
        assert_eq!(p.inbox, window * BROKER_MARGIN);
    }

    #[test]
    fn the_log_keeps_whatever_an_outbox_may_still_publish_again() {
        let now = 100 * H;
        let week = Duration::from_secs(7 * 24 * 3600);
        assert_eq!(log_cutoff(now, week, None), now - 7 * 24 * H);
        assert_eq!(
            log_cutoff(now, Duration::from_secs(3600), Some(50 * H)),
            50 * H
        );
        assert_eq!(
            log_cutoff(now, Duration::from_secs(3600), Some(99 * H + 1)),
            99 * H
        );
    }

    #[test]
    fn the_slowest_reader_holds_the_log_and_a_rebuild_copy_does_not() {
        let cursors = vec![
            ("order".to_string(), 90),
            ("status".to_string(), 40),
            ("status.rebuild".to_string(), 3),
        ];
        assert_eq!(readers_floor(&cursors, &["order", "status"]), 40);
        // A consumer with no position yet reads from the start.
        assert_eq!(readers_floor(&cursors, &["order", "status", "payment"]), 0);
        assert_eq!(readers_floor(&[], &[]), 0);
    }

    #[test]
    fn compaction_stops_at_the_first_entry_too_young_or_not_yet_read_by_all() {
        let oldest = [(1, 10), (2, 20), (4, 30), (5, 40), (6, 50)];
        assert_eq!(compaction_point(&oldest, 35, 100), Some(4));
        assert_eq!(compaction_point(&oldest, 1_000, 4), Some(4));
        assert_eq!(compaction_point(&oldest, 1_000, 3), Some(2));
        assert_eq!(compaction_point(&oldest, 10, 100), None);
        assert_eq!(compaction_point(&oldest, 1_000, 0), None);
        // An entry logged out of time order ends the run too.
        assert_eq!(
            compaction_point(&[(1, 10), (2, 90), (3, 20)], 50, 100),
            Some(1)
        );
        assert_eq!(compaction_point(&[], 50, 100), None);
    }
}
