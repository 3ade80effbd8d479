//! Order service: places orders (price from the store's menu, payment by one
//! synchronous call), lets the customer cancel before the store accepts and
//! confirm receipt, and follows the rest of the saga from events.
//!
//! Its rooms, as in every service:
//! - [`domain`]: the rules, pure: the order's state machine, the event of
//!   each action, the price, who sees which order;
//! - [`storage`]: every SQL statement, rows read by column name;
//! - [`placement`] and [`cancellation`]: the two steps that call other
//!   services, each run to its end where no client can cancel it;
//!   [`deadline`]: the sweep that settles what a crash left unfinished;
//! - [`clients`]: Payment and Store as Order needs them (function calls in
//!   the all-in-one, [`clients::HttpPayment`] and [`clients::HttpStore`] in the distributed shape);
//! - [`http`]: the API, thin; [`error::OrderError`] becomes problem+json
//!   there, once;
//! - `events`: the store's and the rider's events move the order on.
//!
//! [`SERVICE`] describes it to the shapes that run it (`platform::service`):
//! name, port, gateway paths, migrations, OpenAPI, events, and `start`.

pub mod cancellation;
pub mod clients;
pub mod deadline;
pub mod domain;
pub mod error;
mod events;
pub mod http;
pub mod placement;
pub mod storage;

use platform::service::{ServiceDescription, Started, Starting, Supplies};
use std::sync::Arc;
use std::time::Duration;
use utoipa::OpenApi as _;

use platform::{Db, TokenKeys};

pub use clients::{
    ClientError, MenuItem, PaymentClient, PaymentOutcome, PaymentRequest, StoreCancel, StoreClient,
};
pub use error::OrderError;
pub use events::OrderEvents;
pub use http::{router, OrderApi};

platform::service_migrations!();

/// Order as the shapes run it (see `platform::service`).
pub const SERVICE: ServiceDescription =
    ServiceDescription::new("order", 8081, migrations, OrderApi::openapi, start)
        .owning(&["/orders"])
        .with_outbox()
        .consuming_events()
        .taking_writes()
        .calling(&["payment", "store"]);

fn start(supplies: Supplies) -> Starting {
    Box::pin(async move {
        let config = supplies.input::<OrderConfig>()?;
        let clients = supplies.input::<Clients>()?;
        let svc = OrderService {
            db: supplies.db,
            keys: supplies.keys,
            payment: clients.payment,
            store: clients.store,
            config: config.clone(),
        };
        let sweep = deadline::spawn(svc.clone(), config.sweep_every, supplies.shutdown);
        Ok(Started::serving(router(svc))
            .consuming(Arc::new(OrderEvents))
            .running(sweep))
    })
}

#[derive(Debug, Clone)]
pub struct OrderConfig {
    /// How long `POST /orders` waits for Payment before answering 503.
    pub payment_timeout: Duration,
    /// How long the store may leave an order unanswered before it is
    /// cancelled and refunded.
    pub store_deadline: Duration,
    /// How often the deadline sweep looks for overdue orders.
    pub sweep_every: Duration,
}

/// Order's clients of Payment and Store: what differs between the shapes
/// (function calls in the all-in-one, HTTP in the distributed shape).
#[derive(Clone)]
pub struct Clients {
    pub payment: Arc<dyn PaymentClient>,
    pub store: Arc<dyn StoreClient>,
}

impl Default for OrderConfig {
    fn default() -> Self {
        OrderConfig {
            payment_timeout: Duration::from_secs(3),
            store_deadline: Duration::from_secs(600),
            sweep_every: Duration::from_secs(1),
        }
    }
}

#[derive(Clone)]
pub struct OrderService {
    pub db: Db,
    pub keys: TokenKeys,
    pub payment: Arc<dyn PaymentClient>,
    pub store: Arc<dyn StoreClient>,
    pub config: OrderConfig,
}

platform::token_keys_in!(OrderService);
