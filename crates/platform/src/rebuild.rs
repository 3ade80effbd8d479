//! Rebuilding a read model from the log while it is served. The new copy is
//! filled beside the served one (its own tables, inbox and position) while
//! the running consumer keeps the served copy current; once the new copy
//! has caught up with the served position it replaces the served rows in
//! one transaction. Readers never see an empty or half-built view, and the
//! served consumer's position only moves forward, compared and set inside
//! its own transaction, so a batch it read before the swap commits nothing.

use std::sync::Arc;

use async_trait::async_trait;

use crate::consumer::{self, apply, is_set_aside, position_in, set_position, EventHandler};
use crate::db::{Conn, Db};
use crate::event_log::{EventLog, LoggedEvent};
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

    /// Replaces the served rows with the new copy's and empties the new
    /// copy, inside the caller's transaction.
    async fn swap(&self, conn: &mut Conn) -> Result<(), sqlx::Error>;
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// Log entries replayed into the new copy.
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
}

/// Where the new copy stands after one transaction.
enum Step {
    Behind {
        at: i64,
        replayed: usize,
        buried: usize,
    },
    Swapped {
        at: i64,
        replayed: usize,
        buried: usize,
    },
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

/// Rebuilds `view` from `log`, returning once the new copy is served.
pub async fn rebuild(
    view: Arc<dyn RebuildableView>,
    db: &Db,
    log: &EventLog,
) -> Result<Rebuilt, RebuildError> {
    let shadow = view.rebuilding();
    let (v, h) = (view.clone(), shadow.clone());
    db.write(move |conn| {
        Box::pin(async move {
            v.clear(conn).await?;
            sql::query(format!("DELETE FROM {}", h.inbox()))
                .execute(&mut *conn)
                .await?;
            set_position(conn, h.name(), 0).await
        })
    })
    .await?;

    let mut done = Rebuilt {
        replayed: 0,
        buried: 0,
        position: 0,
    };
    loop {
        let from = done.position;
        let batch = log.read_after(from, BATCH).await?;
        let near_tip = (batch.len() as i64) < BATCH;
        let (v, h, log) = (view.clone(), shadow.clone(), log.clone());
        let step = db
            .write(move |conn| {
                Box::pin(async move {
                    if position_in(conn, h.name()).await? != from {
                        return Err(RebuildError::Superseded);
                    }
                    let mut at = batch.last().map_or(from, |e| e.seq);
                    let mut replayed = batch.len();
                    let mut buried = replay_into(h.as_ref(), conn, &batch).await?;
                    if !near_tip {
                        set_position(conn, h.name(), at).await?;
                        return Ok(Step::Behind { at, replayed, buried });
                    }
                    // The served consumer cannot move while this transaction
                    // holds the write lock: catch up with it here, then swap.
                    let served = position_in(conn, v.served()).await?;
                    while at < served {
                        let rest = log.read_after(at, served - at).await?;
                        let Some(last) = rest.last() else { break };
                        at = last.seq;
                        replayed += rest.len();
                        buried += replay_into(h.as_ref(), conn, &rest).await?;
                    }
                    v.swap(conn).await?;
                    sql::query("DELETE FROM inbox").execute(&mut *conn).await?;
                    sql::query(format!(
                        "INSERT INTO inbox (event_id, handled_at) SELECT event_id, handled_at FROM {}",
                        h.inbox()
                    ))
                    .execute(&mut *conn)
                    .await?;
                    sql::query(format!("DELETE FROM {}", h.inbox()))
                        .execute(&mut *conn)
                        .await?;
                    sql::query("DELETE FROM consumer_cursor WHERE consumer = ?")
                        .bind(h.name())
                        .execute(&mut *conn)
                        .await?;
                    // Never backwards: a served batch read before this
                    // commit finds the position changed and lands nowhere.
                    set_position(conn, v.served(), at.max(served)).await?;
                    Ok(Step::Swapped { at: at.max(served), replayed, buried })
                })
            })
            .await?;
        match step {
            Step::Behind {
                at,
                replayed,
                buried,
            } => {
                done.position = at;
                done.replayed += replayed;
                done.buried += buried;
            }
            Step::Swapped {
                at,
                replayed,
                buried,
            } => {
                done.position = at;
                done.replayed += replayed;
                done.buried += buried;
                return Ok(done);
            }
        }
    }
}
