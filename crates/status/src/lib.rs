//! The status view (the original's "management"): a read model built only
//! from events, one row per order with the timeline of every change, its
//! time and its actor. It can be dropped and rebuilt from the log.
//!
//! Its rooms, in the order a change travels:
//! - [`domain`]: the rules, pure: which status an event means, how the
//!   timeline only moves forward, who sees which orders.
//! - [`events`]: follows the log, applying the rules to each copy of the
//!   view (served, rebuilding, snapshot).
//! - [`storage`]: every SQL statement, rows read by column name.
//! - [`http`]: `/statusChecks`, thin; [`error`] is its one error type.
//!
//! [`SERVICE`] describes it to the shapes that run it (`platform::service`):
//! name, port, gateway paths, migrations, OpenAPI, events, and `start`.

pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod storage;

use std::sync::Arc;

use platform::read_model::Rebuildable;
use platform::rebuild::{RebuildError, RebuildableView, Rebuilt};
use platform::service::{ready, ServiceDescription, Started, Starting, Supplies};
use platform::{Db, EventLog};
use utoipa::OpenApi as _;

pub use domain::{rank, status_after};
pub use events::StatusEvents;
pub use http::{router, StatusApi};
pub use storage::{Change, StatusCheck};

platform::service_migrations!();

/// The status view as the shapes run it (see `platform::service`).
pub const SERVICE: ServiceDescription =
    ServiceDescription::new("status", 8083, migrations, StatusApi::openapi, start)
        .owning(&["/statusChecks"])
        .consuming_events()
        .with_view(rebuildable);

fn start(Supplies { db, keys, .. }: Supplies) -> Starting {
    let handler = Arc::new(StatusEvents::served());
    ready(Started::serving(router(StatusService { db, keys })).consuming(handler))
}

/// The consumer that keeps the served view.
pub const CONSUMER: &str = "status";

/// What the handlers need: the view's database and the token keys.
pub type StatusService = platform::service_state::DbAndKeys;

/// The view as the log's compaction and rebuilds see it.
pub fn rebuildable() -> Arc<dyn RebuildableView> {
    Arc::new(Rebuildable(Arc::new(StatusEvents)))
}

/// Rebuilds the view from the log while it is served; returns once the new
/// copy has caught up and replaced the old one.
pub async fn rebuild(db: &Db, log: &EventLog) -> Result<Rebuilt, RebuildError> {
    platform::rebuild::rebuild(rebuildable(), db, log).await
}
