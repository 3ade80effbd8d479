//! Notifications: every status change tells the people concerned (the
//! customer, the store's owner, the riders) in words, kept as a list and
//! pushed live over Server-Sent Events. Built only from events, so it can be
//! rebuilt from the log.
//!
//! Its rooms, in the order a notification travels:
//! - [`domain`]: the rules, pure: who hears of each event and in which
//!   words, which inboxes a user reads.
//! - [`events`]: follows the log, applying the rules to each copy
//!   (served, rebuilding, snapshot), and wakes the live streams.
//! - [`storage`]: every SQL statement, rows read by column name.
//! - [`http`]: `/notifications` and its live stream, thin.
//!
//! [`SERVICE`] describes it to the shapes that run it (`platform::service`):
//! name, port, gateway paths, migrations, OpenAPI, events, and `start`.

pub mod domain;
pub mod events;
pub mod http;
pub mod storage;

use std::sync::Arc;

use platform::live_streams::LiveStreams;
use platform::read_model::{Copy, CopyKeeper, Rebuildable};
use platform::rebuild::{RebuildError, RebuildableView, Rebuilt};
use platform::service::{ready, ServiceDescription, Started, Starting, Supplies};
use platform::{Db, EventLog, TokenKeys};
use tokio::sync::watch;
use utoipa::OpenApi as _;

pub use domain::recipients_and_message;
pub use events::NotificationEvents;
pub use http::{router, NotificationApi};
pub use storage::Notification;

platform::service_migrations!();

/// Notifications as the shapes run it (see `platform::service`).
pub const SERVICE: ServiceDescription = ServiceDescription::new(
    "notification",
    8086,
    migrations,
    NotificationApi::openapi,
    start,
)
.owning(&["/notifications"])
.consuming_events()
.with_view(rebuildable);

fn start(Supplies { db, keys, .. }: Supplies) -> Starting {
    let svc = NotificationService::new(db, keys);
    let handler = Arc::new(svc.handler());
    ready(Started::serving(router(svc)).consuming(handler))
}

/// The consumer that keeps the served notifications.
pub const CONSUMER: &str = "notification";

#[derive(Clone)]
pub struct NotificationService {
    pub db: Db,
    pub keys: TokenKeys,
    /// Bumped after each commit that added notifications; live streams
    /// wake on it and read what is new from the database.
    pub added: watch::Sender<u64>,
    /// Caps the live streams open at once, per user and in all.
    pub streams: LiveStreams,
}

impl NotificationService {
    pub fn new(db: Db, keys: TokenKeys) -> NotificationService {
        NotificationService {
            db,
            keys,
            added: watch::channel(0).0,
            streams: LiveStreams::from_env(),
        }
    }

    /// The consumer that keeps the served notifications and wakes this
    /// service's live streams.
    pub fn handler(&self) -> CopyKeeper<NotificationEvents> {
        let rules = NotificationEvents::new(self.added.clone());
        CopyKeeper::new(Arc::new(rules), Copy::Served)
    }
}

platform::token_keys_in!(NotificationService);

/// The notifications as the log's compaction and rebuilds see them.
pub fn rebuildable() -> Arc<dyn RebuildableView> {
    let rules = NotificationEvents::new(watch::channel(0).0);
    Arc::new(Rebuildable(Arc::new(rules)))
}

/// Rebuilds the notifications from the log while they are served; returns
/// once the new copy has caught up and replaced the old one.
pub async fn rebuild(db: &Db, log: &EventLog) -> Result<Rebuilt, RebuildError> {
    platform::rebuild::rebuild(rebuildable(), db, log).await
}
