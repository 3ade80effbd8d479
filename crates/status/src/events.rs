//! How the status view follows the events: for each one, the rules of
//! [`crate::domain`] on what the copy holds, written by [`crate::storage`].
//! The same rules keep every copy (served, rebuilding, snapshot); platform's
//! `read_model` makes a consumer of each.

use async_trait::async_trait;
use contracts::Event;
use platform::consumer::HandlerError;
use platform::read_model::{Consumers, CopiedTable, Copy, CopyKeeper, ReadModel};
use platform::Conn;
use std::sync::Arc;

use crate::{domain, storage};

/// The status view's rules for applying events.
pub struct StatusEvents;

impl StatusEvents {
    /// The consumer that keeps the served view.
    pub fn served() -> CopyKeeper<StatusEvents> {
        CopyKeeper::new(Arc::new(StatusEvents), Copy::Served)
    }
}

#[async_trait]
impl ReadModel for StatusEvents {
    const CONSUMERS: Consumers = Consumers {
        served: crate::CONSUMER,
        rebuilding: "status.rebuild",
        snapshot: "status.snapshot",
    };

    /// The timeline first: its rows are copied in the order they were
    /// written.
    const TABLES: &'static [CopiedTable] = &[storage::HISTORY, storage::CHECKS];

    async fn apply(&self, conn: &mut Conn, copy: Copy, ev: &Event) -> Result<(), HandlerError> {
        let current = storage::current(conn, copy, ev.order_id).await?;
        let update = domain::update(current, ev.event_type);
        storage::record(conn, copy, ev, update).await?;
        Ok(())
    }
}
