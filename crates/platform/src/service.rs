//! What a service is to the shapes that run it. Each service crate exports
//! one [`ServiceDescription`] (its name, port, schema, the paths it owns at
//! the gateway, its OpenAPI, whether it writes or consumes events) with a
//! `start` step; the all-in-one, `serve`, the gateway's route table and
//! the OpenAPI composition read those values and nothing else, so a new
//! service is its crate plus one entry in the list (crate `services`).
//!
//! A shape gives `start` the [`Supplies`] it has (the database, the token
//! keys, the shutdown signal and, by type, whatever a service needs beyond
//! them: Order's clients of Payment and Store, its deadlines, identity's
//! trusted proxies) and gets back what to serve and run ([`Started`]). What
//! every service gets alike (the idempotency layer, the relay of its
//! outbox, its consumer and dead letters) the shape adds from the
//! description, the same way in every shape.

use std::sync::Arc;

use axum::http::Extensions;
use axum::Router;
use futures::future::BoxFuture;
use tokio::task::JoinHandle;
use utoipa::openapi::OpenApi;

use crate::consumer::EventHandler;
use crate::rebuild::RebuildableView;
use crate::shutdown::Shutdown;
use crate::{Db, Migrations, TokenKeys};

/// Why a service could not start.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// A service starting: what its `start` step returns.
pub type Starting = BoxFuture<'static, Result<Started, StartError>>;

/// Demo data being written: true when they were made now.
pub type Seeding = BoxFuture<'static, Result<bool, StartError>>;

/// One service of the platform, as its crate describes it.
#[derive(Clone, Copy)]
pub struct ServiceDescription {
    /// Its name: `serve NAME`, its database file, its consumer, its logs.
    pub name: &'static str,
    /// Where it listens in the distributed shape (the original's ports).
    pub default_port: u16,
    /// The path prefixes it owns behind the gateway (`/orders` owns
    /// `/orders` and `/orders/...`); its dead letters are added when it
    /// consumes events.
    pub gateway_paths: &'static [&'static str],
    /// Its schema, one folder per backend.
    pub migrations: fn() -> Migrations,
    /// Its own operations (the process's actuator and metrics, and the
    /// dead letters, are added by the composition).
    pub openapi: fn() -> OpenApi,
    /// It writes events through an outbox: a relay runs for it.
    pub outbox: bool,
    /// It consumes events: its `start` returns a handler, and its dead
    /// letters are served.
    pub consumes_events: bool,
    /// Users change state through it: its requests go through the
    /// `Idempotency-Key` layer.
    pub takes_writes: bool,
    /// It holds the accounts and signs users' tokens (identity): it gets
    /// the signing key, and does not ask anyone for revoked accounts.
    pub holds_accounts: bool,
    /// The services it calls synchronously (over HTTP in the distributed
    /// shape, by function call in the all-in-one).
    pub calls: &'static [&'static str],
    /// A read model it can rebuild from the event log.
    pub view: Option<fn() -> Arc<dyn RebuildableView>>,
    /// Writes the demo data into its database; true when it made them now.
    pub seed_demo: Option<fn(Db) -> Seeding>,
    /// Builds it from what the shape supplies.
    pub start: fn(Supplies) -> Starting,
}

impl ServiceDescription {
    /// A service that serves requests and nothing else; what else it does
    /// is added by the methods below.
    pub const fn new(
        name: &'static str,
        default_port: u16,
        migrations: fn() -> Migrations,
        openapi: fn() -> OpenApi,
        start: fn(Supplies) -> Starting,
    ) -> ServiceDescription {
        ServiceDescription {
            name,
            default_port,
            gateway_paths: &[],
            migrations,
            openapi,
            outbox: false,
            consumes_events: false,
            takes_writes: false,
            holds_accounts: false,
            calls: &[],
            view: None,
            seed_demo: None,
            start,
        }
    }

    pub const fn owning(mut self, gateway_paths: &'static [&'static str]) -> Self {
        self.gateway_paths = gateway_paths;
        self
    }

    pub const fn with_outbox(mut self) -> Self {
        self.outbox = true;
        self
    }

    pub const fn consuming_events(mut self) -> Self {
        self.consumes_events = true;
        self
    }

    pub const fn taking_writes(mut self) -> Self {
        self.takes_writes = true;
        self
    }

    pub const fn holding_accounts(mut self) -> Self {
        self.holds_accounts = true;
        self
    }

    pub const fn calling(mut self, services: &'static [&'static str]) -> Self {
        self.calls = services;
        self
    }

    pub const fn with_view(mut self, view: fn() -> Arc<dyn RebuildableView>) -> Self {
        self.view = Some(view);
        self
    }

    pub const fn with_demo(mut self, seed: fn(Db) -> Seeding) -> Self {
        self.seed_demo = Some(seed);
        self
    }

    /// The path prefixes the gateway sends to this service.
    pub fn gateway_prefixes(&self) -> Vec<String> {
        let own = self.gateway_paths.iter().map(|p| p.to_string());
        let dead_letters = self
            .consumes_events
            .then(|| format!("{}/{}", crate::admin::DEAD_LETTERS, self.name));
        own.chain(dead_letters).collect()
    }

    /// Its operations: its own and, when it consumes events, its dead
    /// letters.
    pub fn operations(&self) -> Vec<OpenApi> {
        let mut docs = vec![(self.openapi)()];
        if self.consumes_events {
            docs.push(<crate::admin::DeadLetterApi as utoipa::OpenApi>::openapi());
        }
        docs
    }
}

impl PartialEq for ServiceDescription {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for ServiceDescription {}

impl std::fmt::Debug for ServiceDescription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceDescription({})", self.name)
    }
}

/// What a shape gives a service to start it.
pub struct Supplies {
    pub db: Db,
    pub keys: TokenKeys,
    pub shutdown: Shutdown,
    /// The rest, by type (`OrderConfig`, Order's clients, ...); a service
    /// takes what it needs with [`Supplies::input`].
    pub inputs: Extensions,
}

impl Supplies {
    /// An input the shape must supply.
    pub fn input<T: Clone + Send + Sync + 'static>(&self) -> Result<T, StartError> {
        self.inputs.get::<T>().cloned().ok_or_else(|| {
            format!(
                "the shape supplies no {} (a bug in the composition)",
                std::any::type_name::<T>()
            )
            .into()
        })
    }
}

/// A started service: what the shape serves and runs for it.
pub struct Started {
    pub router: Router,
    pub handler: Option<Arc<dyn EventHandler>>,
    /// Its own background work (e.g. Order's deadline sweep), stopped by
    /// the shutdown signal of its [`Supplies`].
    pub tasks: Vec<JoinHandle<()>>,
}

/// A service whose start needs no waiting.
pub fn ready(started: Started) -> Starting {
    Box::pin(async move { Ok(started) })
}

impl Started {
    pub fn serving(router: Router) -> Started {
        Started {
            router,
            handler: None,
            tasks: Vec::new(),
        }
    }

    pub fn consuming(mut self, handler: Arc<dyn EventHandler>) -> Started {
        self.handler = Some(handler);
        self
    }

    pub fn running(mut self, task: JoinHandle<()>) -> Started {
        self.tasks.push(task);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_docs() -> OpenApi {
        OpenApi::default()
    }

    fn never(_: Supplies) -> Starting {
        Box::pin(async { Err("not started in this test".into()) })
    }

    const KITCHEN: ServiceDescription =
        ServiceDescription::new("kitchen", 9000, Migrations::platform, no_docs, never)
            .owning(&["/kitchens"])
            .consuming_events();

    #[test]
    fn a_consumer_owns_its_dead_letters_at_the_gateway() {
        assert_eq!(
            KITCHEN.gateway_prefixes(),
            vec!["/kitchens", "/admin/deadLetters/kitchen"]
        );
        let quiet = ServiceDescription {
            consumes_events: false,
            ..KITCHEN
        };
        assert_eq!(quiet.gateway_prefixes(), vec!["/kitchens"]);
        assert_eq!(KITCHEN.operations().len(), 2);
        assert_eq!(quiet.operations().len(), 1);
    }
}
