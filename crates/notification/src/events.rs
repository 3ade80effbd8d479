//! How Notification follows the events: for each one, the words of
//! [`crate::domain`] for each person concerned, kept by [`crate::storage`].
//! The same rules keep every copy (served, rebuilding, snapshot); platform's
//! `read_model` makes a consumer of each.

use async_trait::async_trait;
use contracts::Event;
use platform::consumer::HandlerError;
use platform::read_model::{Consumers, CopiedTable, Copy, ReadModel};
use platform::Conn;
use tokio::sync::watch;

use crate::{domain, storage};

/// Notification's rules for applying events.
pub struct NotificationEvents {
    /// Bumped after each commit that added notifications; the live streams
    /// of the served copy wait on it (a rebuild's copy has its own, which
    /// nobody waits on).
    added: watch::Sender<u64>,
}

impl NotificationEvents {
    pub fn new(added: watch::Sender<u64>) -> NotificationEvents {
        NotificationEvents { added }
    }
}

#[async_trait]
impl ReadModel for NotificationEvents {
    const CONSUMERS: Consumers = Consumers {
        served: crate::CONSUMER,
        rebuilding: "notification.rebuild",
        snapshot: "notification.snapshot",
    };

    const TABLES: &'static [CopiedTable] = &[storage::NOTIFICATIONS];

    async fn apply(&self, conn: &mut Conn, copy: Copy, ev: &Event) -> Result<(), HandlerError> {
        for (recipient, text) in domain::recipients_and_message(ev) {
            storage::add(conn, copy, ev, &recipient, &text).await?;
        }
        Ok(())
    }

    fn committed(&self, _copy: Copy) {
        self.added.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The served notifications keep their ids (see `storage::swap`).
    async fn swap(&self, conn: &mut Conn) -> Result<(), sqlx::Error> {
        storage::swap(conn).await
    }
}
