//! Payment service: approves or declines the payment for an order (one per
//! order, idempotent by order id) and refunds it when the order is
//! cancelled, rejected or given up.
//!
//! Its rooms, as in every service:
//! - [`domain`]: the rules, pure: what a charge comes to, what a refund
//!   does, the event of each;
//! - [`storage`]: every SQL statement;
//! - [`http`]: the API, thin; [`error::PaymentError`] becomes
//!   problem+json there, once;
//! - `events`: refunds for orders cancelled, rejected or given up.
//!
//! [`SERVICE`] describes it to the shapes that run it (`platform::service`):
//! name, port, gateway paths, migrations, OpenAPI, events, and `start`.

pub mod domain;
pub mod error;
mod events;
pub mod http;
pub mod storage;

use contracts::event::OrderFacts;
use platform::deadline::Deadline;
use platform::service::{ready, ServiceDescription, Started, Starting, Supplies};
use platform::{Db, TokenKeys};
use utoipa::OpenApi as _;

pub use domain::DECLINED_TEST_CARD;
pub use error::PaymentError;
pub use events::PaymentEvents;
pub use http::{router, PaymentApi};
pub use storage::{Payment, PaymentStatus};

platform::service_migrations!();

/// Payment as the shapes run it (see `platform::service`).
pub const SERVICE: ServiceDescription =
    ServiceDescription::new("payment", 8084, migrations, PaymentApi::openapi, start)
        .owning(&["/payments"])
        .with_outbox()
        .consuming_events()
        .taking_writes();

fn start(Supplies { db, keys, .. }: Supplies) -> Starting {
    let handler = std::sync::Arc::new(PaymentEvents);
    ready(Started::serving(router(PaymentService { db, keys })).consuming(handler))
}

#[derive(Clone)]
pub struct PaymentService {
    pub db: Db,
    pub keys: TokenKeys,
}

platform::token_keys_in!(PaymentService);

impl PaymentService {
    /// Pays for an order once. A second call for the same order returns the
    /// first result; a call for an order that already gave up is declined.
    /// Nothing is charged once the caller's deadline has passed: it no
    /// longer waits, and the order it answers for is not placed.
    pub async fn pay(
        &self,
        facts: OrderFacts,
        card: Option<String>,
        actor: String,
        deadline: Deadline,
    ) -> Result<Payment, PaymentError> {
        self.db
            .write(move |tx| {
                Box::pin(async move {
                    if !deadline.passed() {
                        return Ok(storage::pay(tx, &facts, card.as_deref(), &actor).await?);
                    }
                    if let Some(existing) = storage::by_order(tx, facts.order_id).await? {
                        return Ok(existing);
                    }
                    tracing::info!(
                        order_id = facts.order_id,
                        "payment refused: the order stopped waiting for it"
                    );
                    Err(PaymentError::DeadlinePassed)
                })
            })
            .await
    }
}
