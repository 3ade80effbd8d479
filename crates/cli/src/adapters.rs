//! In the all-in-one shape, Order's synchronous calls to Payment and Store
//! are function calls behind the same interfaces the HTTP clients implement.

use async_trait::async_trait;
use contracts::event::OrderFacts;
use order::{
    ClientError, MenuItem, PaymentClient, PaymentOutcome, PaymentRequest, StoreCancel, StoreClient,
};
use payment::{PaymentService, PaymentStatus};
use store::{StoreError, StoreService};

pub struct LocalPayment(pub PaymentService);

#[async_trait]
impl PaymentClient for LocalPayment {
    async fn pay(&self, request: PaymentRequest) -> Result<PaymentOutcome, ClientError> {
        let payment = self
            .0
            .pay(request.facts, request.card, request.actor, request.deadline)
            .await
            .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        Ok(match payment.payment_status {
            PaymentStatus::Approved => PaymentOutcome::Approved {
                payment_id: payment.id,
            },
            _ => PaymentOutcome::Declined {
                reason: payment.reason.unwrap_or_else(|| "declined".into()),
            },
        })
    }
}

pub struct LocalStore(pub StoreService);

#[async_trait]
impl StoreClient for LocalStore {
    async fn menu_by_id(&self, id: i64) -> Result<Option<MenuItem>, ClientError> {
        let m = self
            .0
            .menu_by_id(id)
            .await
            .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        Ok(m.map(MenuItem::from))
    }

    async fn menu_by_name(&self, name: &str) -> Result<Option<MenuItem>, ClientError> {
        let m = self
            .0
            .menu_by_name(name)
            .await
            .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        Ok(m.map(MenuItem::from))
    }

    async fn cancel(&self, facts: OrderFacts, actor: String) -> Result<StoreCancel, ClientError> {
        match self.0.cancel(facts, actor).await {
            Ok(()) => Ok(StoreCancel::Cancelled),
            Err(StoreError::Decided(status)) => Ok(StoreCancel::TooLate {
                status: status.order_status(),
            }),
            Err(e) => Err(ClientError::Unavailable(e.to_string())),
        }
    }
}
