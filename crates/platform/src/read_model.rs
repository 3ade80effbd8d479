//! Read models built only from events (the status view, the notifications),
//! each kept in three copies: the one readers are served, the one a rebuild
//! fills beside it, and the snapshot the log's compaction folds old events
//! into (see [`crate::rebuild`]). The copies differ only in their tables,
//! consumer name and inbox; a read model states its rules once, as a
//! [`ReadModel`], and this module makes the consumer of each copy and the
//! [`RebuildableView`] from them, so that no view writes that wiring again.

use std::sync::Arc;

use async_trait::async_trait;
use contracts::{Event, EventType};

use crate::consumer::{EventHandler, HandlerError};
use crate::db::Conn;
use crate::rebuild::RebuildableView;
use crate::sql;

/// One of a read model's three copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copy {
    /// What readers are served.
    Served,
    /// What a rebuild fills beside the served copy until the swap.
    Rebuilding,
    /// What the log's compaction folds the events it drops into.
    Snapshot,
}

impl Copy {
    /// The table recording which events this copy holds: each copy has its
    /// own, so a rebuild's copy does not think the served copy's events
    /// applied to it.
    pub fn inbox(self) -> &'static str {
        match self {
            Copy::Served => "inbox",
            Copy::Rebuilding => "inbox_rebuild",
            Copy::Snapshot => "inbox_snapshot",
        }
    }
}

/// The consumer names that keep a read model's copies: positions and dead
/// letters are kept under them, so they never change once deployed.
#[derive(Debug, Clone, Copy)]
pub struct Consumers {
    pub served: &'static str,
    pub rebuilding: &'static str,
    pub snapshot: &'static str,
}

impl Consumers {
    pub fn of(&self, copy: Copy) -> &'static str {
        match copy {
            Copy::Served => self.served,
            Copy::Rebuilding => self.rebuilding,
            Copy::Snapshot => self.snapshot,
        }
    }
}

/// One table of a read model, under the name each copy gives it.
#[derive(Debug, Clone, Copy)]
pub struct CopiedTable {
    pub served: &'static str,
    pub rebuilding: &'static str,
    pub snapshot: &'static str,
    /// The columns a copy takes over (a generated id is left to the
    /// table that receives the rows).
    pub columns: &'static str,
    /// `ORDER BY ...` that copies rows in the order they were made, or
    /// empty where that order means nothing.
    pub order: &'static str,
}

impl CopiedTable {
    pub fn of(&self, copy: Copy) -> &'static str {
        match copy {
            Copy::Served => self.served,
            Copy::Rebuilding => self.rebuilding,
            Copy::Snapshot => self.snapshot,
        }
    }
}

/// Copies every row of `tables` from one copy into another.
async fn copy_rows(
    conn: &mut Conn,
    tables: &[CopiedTable],
    from: Copy,
    to: Copy,
) -> Result<(), sqlx::Error> {
    for t in tables {
        let (columns, order) = (t.columns, t.order);
        sql::query(format!(
            "INSERT INTO {} ({columns}) SELECT {columns} FROM {} {order}",
            t.of(to),
            t.of(from)
        ))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Empties one copy of `tables`.
async fn empty(conn: &mut Conn, tables: &[CopiedTable], copy: Copy) -> Result<(), sqlx::Error> {
    for t in tables {
        sql::query(format!("DELETE FROM {}", t.of(copy)))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Whether people see this event: `StoreOrderCancelled` passes only between
/// Store and Order, and the order's own `MenuCancelled` is what the views
/// show for it.
pub fn people_see(event_type: EventType) -> bool {
    event_type != EventType::StoreOrderCancelled
}

/// A read model's rules, for every copy alike.
#[async_trait]
pub trait ReadModel: Send + Sync + 'static {
    /// The consumers that keep each copy.
    const CONSUMERS: Consumers;

    /// The model's tables, in the order they are emptied and filled.
    const TABLES: &'static [CopiedTable];

    /// Event types the model applies; by default those [`people_see`].
    fn wants(&self, event_type: EventType) -> bool {
        people_see(event_type)
    }

    /// Applies one event to `copy`, inside the consumer's transaction.
    async fn apply(&self, conn: &mut Conn, copy: Copy, event: &Event) -> Result<(), HandlerError>;

    /// After a transaction that applied events to `copy` committed.
    fn committed(&self, _copy: Copy) {}

    /// Empties the rebuilding copy.
    async fn clear(&self, conn: &mut Conn) -> Result<(), sqlx::Error> {
        empty(conn, Self::TABLES, Copy::Rebuilding).await
    }

    /// Copies the snapshot into the emptied rebuilding copy, in the order
    /// its rows were made.
    async fn seed(&self, conn: &mut Conn) -> Result<(), sqlx::Error> {
        copy_rows(conn, Self::TABLES, Copy::Snapshot, Copy::Rebuilding).await
    }

    /// Replaces the served rows with the rebuilding copy's, inside the
    /// caller's transaction (the rebuilding copy is emptied after). A
    /// model whose served rows must keep something (ids a client has seen)
    /// says how instead.
    async fn swap(&self, conn: &mut Conn) -> Result<(), sqlx::Error> {
        empty(conn, Self::TABLES, Copy::Served).await?;
        copy_rows(conn, Self::TABLES, Copy::Rebuilding, Copy::Served).await
    }
}

/// The consumer that keeps one copy of a read model.
pub struct CopyKeeper<M> {
    model: Arc<M>,
    copy: Copy,
}

impl<M: ReadModel> CopyKeeper<M> {
    pub fn new(model: Arc<M>, copy: Copy) -> CopyKeeper<M> {
        CopyKeeper { model, copy }
    }
}

#[async_trait]
impl<M: ReadModel> EventHandler for CopyKeeper<M> {
    fn name(&self) -> &'static str {
        M::CONSUMERS.of(self.copy)
    }

    fn inbox(&self) -> &'static str {
        self.copy.inbox()
    }

    fn wants(&self, event_type: EventType) -> bool {
        self.model.wants(event_type)
    }

    async fn handle(&self, conn: &mut Conn, event: &Event) -> Result<(), HandlerError> {
        self.model.apply(conn, self.copy, event).await
    }

    fn committed(&self) {
        self.model.committed(self.copy)
    }
}

/// A read model as a rebuild sees it: the new copy is filled beside the
/// served one, which readers keep getting, current, until the swap.
pub struct Rebuildable<M>(pub Arc<M>);

#[async_trait]
impl<M: ReadModel> RebuildableView for Rebuildable<M> {
    fn served(&self) -> &'static str {
        M::CONSUMERS.served
    }

    fn rebuilding(&self) -> Arc<dyn EventHandler> {
        Arc::new(CopyKeeper::new(self.0.clone(), Copy::Rebuilding))
    }

    fn snapshot(&self) -> Arc<dyn EventHandler> {
        Arc::new(CopyKeeper::new(self.0.clone(), Copy::Snapshot))
    }

    async fn clear(&self, conn: &mut Conn) -> Result<(), sqlx::Error> {
        self.0.clear(conn).await
    }

    async fn seed(&self, conn: &mut Conn) -> Result<(), sqlx::Error> {
        self.0.seed(conn).await
    }

    async fn swap(&self, conn: &mut Conn) -> Result<(), sqlx::Error> {
        self.0.swap(conn).await?;
        self.0.clear(conn).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: Consumers = Consumers {
        served: "view",
        rebuilding: "view.rebuild",
        snapshot: "view.snapshot",
    };

    #[test]
    fn each_copy_keeps_its_own_consumer_and_inbox() {
        let copies = [Copy::Served, Copy::Rebuilding, Copy::Snapshot];
        let names: Vec<_> = copies.iter().map(|c| NAMES.of(*c)).collect();
        assert_eq!(names, ["view", "view.rebuild", "view.snapshot"]);
        let inboxes: Vec<_> = copies.iter().map(|c| c.inbox()).collect();
        assert_eq!(inboxes, ["inbox", "inbox_rebuild", "inbox_snapshot"]);
    }

    #[test]
    fn people_see_every_event_but_the_one_between_store_and_order() {
        for t in EventType::ALL {
            assert_eq!(people_see(t), t != EventType::StoreOrderCancelled, "{t}");
        }
    }
}
