//! Payment service: approves or declines the payment for an order (one per
//! order, idempotent by order id) and refunds it when the order is
//! cancelled, rejected or given up.
//!
//! [`SERVICE`] describes it to the shapes that run it (`platform::service`):
//! name, port, gateway paths, migrations, OpenAPI, events, and `start`.

mod events;
mod http;
pub mod record;

use axum::extract::FromRef;
use contracts::event::OrderFacts;
use platform::deadline::Deadline;
use platform::service::{ready, ServiceDescription, Started, Starting, Supplies};
use platform::{Db, TokenKeys};
use utoipa::OpenApi as _;

pub use events::PaymentEvents;
pub use http::{router, PaymentApi};
pub use record::{Payment, PaymentStatus};

pub fn migrations() -> platform::Migrations {
    platform::migrations!()
}

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

/// The documented test card that is always declined.
pub const DECLINED_TEST_CARD: &str = "4000000000000002";

#[derive(Clone)]
pub struct PaymentService {
    pub db: Db,
    pub keys: TokenKeys,
}

impl FromRef<PaymentService> for TokenKeys {
    fn from_ref(s: &PaymentService) -> TokenKeys {
        s.keys.clone()
    }
}

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
    ) -> Result<Payment, platform::ApiError> {
        let payment = self
            .db
            .write(move |tx| {
                Box::pin(async move {
                    if deadline.passed() {
                        if let Some(existing) = record::by_order(tx, facts.order_id).await? {
                            return Ok(existing);
                        }
                        tracing::info!(
                            order_id = facts.order_id,
                            "payment refused: the order stopped waiting for it"
                        );
                        return Err(platform::ApiError::new(
                            axum::http::StatusCode::GATEWAY_TIMEOUT,
                            "Deadline passed",
                            "the caller stopped waiting; nothing was charged",
                        ));
                    }
                    Ok::<_, platform::ApiError>(
                        record::pay(tx, &facts, card.as_deref(), &actor).await?,
                    )
                })
            })
            .await?;
        Ok(payment)
    }
}
