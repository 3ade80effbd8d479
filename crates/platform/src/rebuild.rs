//! Rebuilding a read model from the log while it is served. The new copy is
//! filled beside the served one (its own tables, inbox and position) while
//! the running consumer keeps the served copy current; once the new copy
//! has caught up with the served position it replaces the served rows in
//! one transaction. Readers never see an empty or half-built view, and the
//! served consumer's position only moves forward, compared and set inside
//! its own transaction, so a batch it read before the swap commits nothing.
//!
//! Snapshot plus tail: the log's compaction first folds the entries it will
//! drop into a snapshot of each view (its own tables, the same handler), so
//! the snapshot is exactly what a replay of those entries makes. A rebuild
//! starts from a copy of the snapshot and replays only the retained tail; if
//! the log is compacted past it meanwhile, it starts again from the newer
//! snapshot instead of skipping entries.

use std::sync::Arc;

use async_trait::async_trait;

use crate::consumer::{self, apply, is_set_aside, position_in, set_position, EventHandler};
use crate::db::{Conn, Db};
use crate::event_log::{EventLog, LogError, LoggedEvent};
use crate::sql;

const BATCH: i64 = 512;

/// A read model that can be rebuilt beside the copy being served.
#[async_trait]
pub trait RebuildableView: Send + Sync + 'static {
    /// The consumer that keeps the served copy; its position is the one the
    /// new copy must reach.
    fn served(&self) -> &'static str;

    /// A handler that writes the new copy. Its name keeps the new copy's
    /// position and its inbox the new copy's handled events.
    fn rebuilding(&self) -> Arc<dyn EventHandler>;

    /// Empties the new copy's tables.
    async fn clear(&self, conn: &mut Conn) -> Result<(), sqlx::Error>;

    /// A handler that writes the view's snapshot: the same rules into the
    /// snapshot's tables, with `inbox_snapshot` as its inbox.
    fn snapshot(&self) -> Arc<dyn EventHandler>;

    /// Copies the snapshot into the new copy's tables (emptied before), in
    /// the order its rows were made.
    async fn seed(&self, conn: &mut Conn) -> Result<(), sqlx::Error>;

    /// Replaces the served rows with the new copy's and empties the new
    /// copy, inside the caller's transaction.
    async fn swap(&self, conn: &mut Conn) -> Result<(), sqlx::Error>;
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// The snapshot's position the new copy started from (0: the log was
    /// never compacted, so it replayed the whole log).
    pub snapshot: i64,
    /// Log entries replayed into the new copy after the snapshot.
    pub replayed: usize,
    /// Events that failed in the new copy and were not dead letters before;
    /// they are now.
    pub buried: usize,
    /// The log position of the copy swapped in.
    pub position: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("another rebuild of this view started meanwhile")]
    Superseded,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Where the new copy stands after one transaction.
struct Step {
    /// The log position it holds every event up to.
    at: i64,
    replayed: usize,
    buried: usize,
    /// It caught up and is the served view now.
    swapped: bool,
}

/// Applies `events` to the new copy. An event that fails there becomes a
/// dead letter unless it is one (or waits for a retry) already, so a rebuild
/// keeps what was set aside and adds only what is new.
async fn replay_into(
    handler: &dyn EventHandler,
    conn: &mut Conn,
    events: &[LoggedEvent],
) -> Result<usize, sqlx::Error> {
    let mut buried = 0;
    for logged in events {
        if let Err(e) = apply(handler, conn, logged).await {
            if !is_set_aside(conn, &logged.event_id).await? {
                consumer::bury_in(conn, handler.name(), logged, &e.to_string(), 1).await?;
                buried += 1;
            }
        }
    }
    Ok(buried)
}

/// How often a rebuild starts again from a newer snapshot because the log
/// was compacted past it, before it gives up.
const RESTARTS: usize = 5;

/// Rebuilds `view` from its snapshot and the log's tail, returning once the
/// new copy is served.
pub async fn rebuild(
    view: Arc<dyn RebuildableView>,
    db: &Db,
    log: &EventLog,
) -> Result<Rebuilt, RebuildError> {
    let mut restarts = 0;
    loop {
        match rebuild_once(view.clone(), db, log).await {
            Err(RebuildError::Log(LogError::Compacted { after, through }))
                if restarts < RESTARTS =>
            {
                restarts += 1;
                tracing::info!(
                    view = view.served(),
                    after,
                    through,
                    "the log was compacted past the rebuild; starting again from the newer snapshot"
                );
            }
            done => return done,
        }
    }
}

async fn rebuild_once(
    view: Arc<dyn RebuildableView>,
    db: &Db,
    log: &EventLog,
) -> Result<Rebuilt, RebuildError> {
    let shadow = view.rebuilding();
    let snapshot = start_from_snapshot(view.clone(), shadow.clone(), db).await?;
    let mut done = Rebuilt {
        snapshot,
        replayed: 0,
        buried: 0,
        position: snapshot,
    };
    loop {
        let from = done.position;
        let batch = log.read_after(from, BATCH).await?;
        let (v, h, log) = (view.clone(), shadow.clone(), log.clone());
        let step = db
            .write(move |conn| Box::pin(replay_batch(v, h, log, conn, from, batch)))
            .await?;
        done.position = step.at;
        done.replayed += step.replayed;
        done.buried += step.buried;
        if step.swapped {
            return Ok(done);
        }
    }
}

/// Empties the new copy, seeds it with the served view's snapshot and puts
/// its position there; returns that position.
async fn start_from_snapshot(
    view: Arc<dyn RebuildableView>,
    shadow: Arc<dyn EventHandler>,
    db: &Db,
) -> Result<i64, sqlx::Error> {
    db.write(move |conn| {
        Box::pin(async move {
            view.clear(conn).await?;
            sql::query(format!("DELETE FROM {}", shadow.inbox()))
                .execute(&mut *conn)
                .await?;
            view.seed(conn).await?;
            let at = snapshot_position_in(conn, view.served()).await?;
            set_position(conn, shadow.name(), at).await?;
            Ok::<_, sqlx::Error>(at)
        })
    })
    .await
}

/// One transaction of the rebuild: applies a batch read after `from` to the
/// new copy; near the log's tip, catches up with the served view and swaps.
async fn replay_batch(
    view: Arc<dyn RebuildableView>,
    shadow: Arc<dyn EventHandler>,
    log: EventLog,
    conn: &mut Conn,
    from: i64,
    batch: Vec<LoggedEvent>,
) -> Result<Step, RebuildError> {
    if position_in(conn, shadow.name()).await? != from {
        return Err(RebuildError::Superseded);
    }
    let near_tip = (batch.len() as i64) < BATCH;
    let mut at = batch.last().map_or(from, |e| e.seq);
    let mut replayed = batch.len();
    let mut buried = replay_into(shadow.as_ref(), conn, &batch).await?;
    if !near_tip {
        set_position(conn, shadow.name(), at).await?;
        return Ok(Step {
            at,
            replayed,
            buried,
            swapped: false,
        });
    }
    // The served consumer cannot move while this transaction holds the
    // write lock: catch up with it here, then swap.
    let served = position_in(conn, view.served()).await?;
    while at < served {
        let rest = log.read_after(at, served - at).await?;
        let Some(last) = rest.last() else { break };
        at = last.seq;
        replayed += rest.len();
        buried += replay_into(shadow.as_ref(), conn, &rest).await?;
    }
    swap(view.as_ref(), shadow.as_ref(), conn).await?;
    // Never backwards: a served batch read before this commit finds the
    // position changed and lands nowhere.
    let at = at.max(served);
    set_position(conn, view.served(), at).await?;
    Ok(Step {
        at,
        replayed,
        buried,
        swapped: true,
    })
}

/// Serves the new copy: its tables, its inbox and no cursor of its own.
async fn swap(
    view: &dyn RebuildableView,
    shadow: &dyn EventHandler,
    conn: &mut Conn,
) -> Result<(), sqlx::Error> {
    view.swap(conn).await?;
    sql::query("DELETE FROM inbox").execute(&mut *conn).await?;
    sql::query(format!(
        "INSERT INTO inbox (event_id, handled_at) SELECT event_id, handled_at FROM {}",
        shadow.inbox()
    ))
    .execute(&mut *conn)
    .await?;
    sql::query(format!("DELETE FROM {}", shadow.inbox()))
        .execute(&mut *conn)
        .await?;
    sql::query("DELETE FROM consumer_cursor WHERE consumer = ?")
        .bind(shadow.name())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The log position a view's snapshot holds every event up to.
pub async fn snapshot_position(db: &Db, view: &str) -> Result<i64, sqlx::Error> {
    let pos: Option<i64> = sql::query_scalar("SELECT position FROM view_snapshots WHERE view = ?")
        .bind(view)
        .fetch_optional(db)
        .await?;
    Ok(pos.unwrap_or(0))
}

async fn snapshot_position_in(conn: &mut Conn, view: &str) -> Result<i64, sqlx::Error> {
    let pos: Option<i64> = sql::query_scalar("SELECT position FROM view_snapshots WHERE view = ?")
        .bind(view)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(pos.unwrap_or(0))
}

/// What folding the log into a snapshot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    /// Log entries folded into the snapshot.
    pub folded: usize,
    /// Events that failed in the snapshot and were not dead letters before;
    /// they are now, as a rebuild would have made them.
    pub buried: usize,
    /// The snapshot's position afterwards.
    pub position: i64,
}

/// Folds the log's entries after the view's snapshot up to `through` into
/// the snapshot, `batch` entries per transaction, with the rules a rebuild
/// replays them with. The caller makes sure no entry at or before `through`
/// can still be appended (every reader has passed it).
pub async fn fold(
    view: Arc<dyn RebuildableView>,
    db: &Db,
    log: &EventLog,
    through: i64,
    batch: i64,
) -> Result<Folded, RebuildError> {
    let handler = view.snapshot();
    let mut done = Folded {
        folded: 0,
        buried: 0,
        position: snapshot_position(db, view.served()).await?,
    };
    while done.position < through {
        let from = done.position;
        let read = log.read_after(from, batch).await?;
        let complete = (read.len() as i64) < batch || read.last().is_some_and(|e| e.seq > through);
        let events: Vec<LoggedEvent> = read.into_iter().filter(|e| e.seq <= through).collect();
        // Past the last entry read, or up to `through` when no entry before
        // it is left: seq gaps are never filled later.
        let at = if complete {
            through
        } else {
            events.last().map_or(from, |e| e.seq)
        };
        if at == from {
            break;
        }
        let folded = events.len();
        let (v, h) = (view.clone(), handler.clone());
        let buried = db
            .write(move |conn| {
                Box::pin(async move {
                    if snapshot_position_in(conn, v.served()).await? != from {
                        return Err(RebuildError::Superseded);
                    }
                    let buried = replay_into(h.as_ref(), conn, &events).await?;
                    // The position below keeps these from being folded again.
                    sql::query(format!("DELETE FROM {}", h.inbox()))
                        .execute(&mut *conn)
                        .await?;
                    sql::query(sql::upsert(
                        conn.backend(),
                        "INSERT INTO view_snapshots (view, position, taken_at) VALUES (?1, ?2, ?3)",
                        "(view)",
                        "position = ?2, taken_at = ?3",
                    ))
                    .bind(v.served())
                    .bind(at)
                    .bind(crate::clock::now_ms())
                    .execute(&mut *conn)
                    .await?;
                    Ok(buried)
                })
            })
            .await?;
        done.folded += folded;
        done.buried += buried;
        done.position = at;
    }
    Ok(done)
}
