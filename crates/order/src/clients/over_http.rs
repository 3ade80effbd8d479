//! In the distributed shape, Order calls Payment and Store over HTTP through
//! [`platform::peer::Peer`]: deadline, retries (every call here is safe to
//! repeat: payment is idempotent by order id, cancel by order id) and a
//! circuit breaker. The calls that change state carry a service token of
//! order's own (60 s, addressed to the callee, with the one scope needed).

use std::sync::Arc;

use super::{
    ClientError, MenuItem, PaymentClient, PaymentOutcome, PaymentRequest, StoreCancel, StoreClient,
};
use async_trait::async_trait;
use contracts::event::OrderFacts;
use contracts::wire::{Menu, PayRequest, Payment, PaymentStatus, StoreCancelRequest};
use contracts::OrderStatus;
use platform::peer::{Peer, PeerError};
use platform::service_auth::{PAYMENT_CHARGE, STORE_ORDER_CANCEL};
use platform::ServiceSigner;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn unavailable(e: PeerError) -> ClientError {
    ClientError::Unavailable(e.to_string())
}

fn service_token(signer: &ServiceSigner, callee: &str, scope: &str) -> Result<String, ClientError> {
    signer
        .token(callee, scope)
        .map_err(|e| ClientError::Unavailable(e.detail))
}

pub struct HttpPayment {
    pub peer: Arc<Peer>,
    pub signer: ServiceSigner,
}

#[async_trait]
impl PaymentClient for HttpPayment {
    async fn pay(&self, request: PaymentRequest) -> Result<PaymentOutcome, ClientError> {
        let f = request.facts;
        let body = json!(PayRequest {
            order_id: f.order_id,
            customer_id: f.customer_id,
            store_id: f.store_id,
            price: f.price,
            menu_name: f.menu_name,
            qty: f.qty,
            address: f.address,
            correlation_id: Some(f.correlation_id),
            card: request.card,
        });
        let token = service_token(&self.signer, "payment", PAYMENT_CHARGE)?;
        let Some(budget) = request.deadline.left() else {
            return Err(ClientError::Unavailable("no deadline for a payment".into()));
        };
        let reply = self
            .peer
            .call_within(
                Method::POST,
                "/payments",
                Some(&token),
                Some(&body),
                true,
                budget,
            )
            .await
            .map_err(unavailable)?;
        if !reply.status.is_success() {
            return Err(ClientError::Unavailable(format!(
                "payment refused the call: {} {}",
                reply.status, reply.body
            )));
        }
        let payment: Payment = serde_json::from_value(reply.body).map_err(|e| {
            ClientError::Unavailable(format!("payment answered what is not a payment: {e}"))
        })?;
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

pub struct HttpStore {
    pub peer: Arc<Peer>,
    pub signer: ServiceSigner,
}

fn menu_item(v: Value) -> Option<MenuItem> {
    serde_json::from_value::<Menu>(v).ok().map(MenuItem::from)
}

#[async_trait]
impl StoreClient for HttpStore {
    async fn menu_by_id(&self, id: i64) -> Result<Option<MenuItem>, ClientError> {
        let reply = self
            .peer
            .call(Method::GET, &format!("/menus/{id}"), None, None, true)
            .await
            .map_err(unavailable)?;
        Ok(if reply.status == StatusCode::OK {
            menu_item(reply.body)
        } else {
            None
        })
    }

    async fn menu_by_name(&self, name: &str) -> Result<Option<MenuItem>, ClientError> {
        let path = format!("/menus?name={}", urlencode(name));
        let reply = self
            .peer
            .call(Method::GET, &path, None, None, true)
            .await
            .map_err(unavailable)?;
        let found: Vec<Value> = serde_json::from_value(reply.body).unwrap_or_default();
        Ok(found.into_iter().next().and_then(menu_item))
    }

    async fn cancel(&self, facts: OrderFacts, actor: String) -> Result<StoreCancel, ClientError> {
        let path = format!("/storeOrders/{}/cancel", facts.order_id);
        let body = json!(StoreCancelRequest {
            store_id: facts.store_id,
            customer_id: facts.customer_id,
            menu_name: facts.menu_name,
            qty: facts.qty,
            price: facts.price,
            address: facts.address,
            correlation_id: facts.correlation_id,
            actor,
        });
        let token = service_token(&self.signer, "store", STORE_ORDER_CANCEL)?;
        let reply = self
            .peer
            .call(Method::PUT, &path, Some(&token), Some(&body), true)
            .await
            .map_err(unavailable)?;
        match reply.status {
            StatusCode::OK => Ok(StoreCancel::Cancelled),
            StatusCode::CONFLICT => {
                let status = reply.body["currentStatus"]
                    .as_str()
                    .and_then(OrderStatus::parse)
                    .unwrap_or(OrderStatus::Accepted);
                Ok(StoreCancel::TooLate { status })
            }
            other => Err(ClientError::Unavailable(format!(
                "store refused the cancel: {other} {}",
                reply.body
            ))),
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Order's HTTP clients against Payment's and Store's real routers, served
/// in this process on ports of their own, with no broker: the typed
/// contracts, the service token and the failure answers, end to end.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use platform::deadline::Deadline;
    use platform::peer::PeerConfig;
    use platform::signing_keys::PrivateKey;
    use platform::{Db, Location, TokenKeys};
    use uuid::Uuid;

    use super::*;

    async fn serve(router: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let address = listener.local_addr().expect("its address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{address}")
    }

    fn peer(name: &str, base: &str) -> Arc<Peer> {
        let config = PeerConfig {
            deadline: Duration::from_secs(2),
            ..PeerConfig::default()
        };
        Arc::new(Peer::new(name, base, config))
    }

    fn facts(order_id: i64, menu: &MenuItem) -> OrderFacts {
        OrderFacts {
            order_id,
            menu_name: menu.name.clone(),
            qty: 2,
            price: menu.price * 2,
            address: "Seoul, Jung-gu 1".into(),
            store_id: menu.store_id,
            customer_id: 7,
            correlation_id: Uuid::now_v7(),
        }
    }

    fn charge(facts: OrderFacts, card: Option<&str>) -> PaymentRequest {
        PaymentRequest {
            facts,
            card: card.map(str::to_string),
            actor: "customer:7".into(),
            deadline: Deadline::within(Duration::from_secs(2)),
        }
    }

    #[tokio::test]
    async fn order_pays_and_cancels_through_payment_and_store_over_http() {
        let dir = tempfile::tempdir().expect("a directory");
        let (order_key, _) = PrivateKey::generate();
        let order_public = order_key.public.clone();
        let signer = ServiceSigner::new("order", order_key);
        let open = |name: &str, migrations| {
            let location = Location::Sqlite(dir.path().join(format!("{name}.db")));
            async move { Db::open(&location, &migrations).await.expect("a database") }
        };
        let payment_db = open("payment", payment::migrations()).await;
        let store_db = open("store", store::migrations()).await;
        store::seed_demo(&store_db).await.expect("demo stores");
        let payment_url = serve(payment::router(payment::PaymentService {
            db: payment_db,
            keys: TokenKeys::ephemeral().with_services("payment", vec![order_public.clone()]),
        }))
        .await;
        let store_url = serve(store::router(store::StoreService {
            db: store_db,
            keys: TokenKeys::ephemeral().with_services("store", vec![order_public]),
        }))
        .await;
        let payment = HttpPayment {
            peer: peer("payment", &payment_url),
            signer: signer.clone(),
        };
        let store = HttpStore {
            peer: peer("store", &store_url),
            signer: signer.clone(),
        };

        let menu = store.menu_by_id(1).await.expect("store answers");
        let menu = menu.expect("the demo menu has item 1");
        let by_name = store.menu_by_name(&menu.name).await.expect("store answers");
        assert_eq!(by_name.map(|m| m.id), Some(menu.id));
        assert!(store.menu_by_id(999_999).await.expect("answers").is_none());

        let paid = payment.pay(charge(facts(1, &menu), None)).await;
        assert!(
            matches!(paid, Ok(PaymentOutcome::Approved { payment_id }) if payment_id > 0),
            "{paid:?}"
        );
        let declined = payment
            .pay(charge(facts(2, &menu), Some("4000000000000002")))
            .await;
        assert!(
            matches!(declined, Ok(PaymentOutcome::Declined { .. })),
            "{declined:?}"
        );

        let cancelled = store.cancel(facts(1, &menu), "customer:7".into()).await;
        assert_eq!(cancelled.expect("store answers"), StoreCancel::Cancelled);

        // A token signed by another key is refused: not a payment.
        let stranger = HttpPayment {
            peer: peer("payment", &payment_url),
            signer: ServiceSigner::new("order", PrivateKey::generate().0),
        };
        let refused = stranger.pay(charge(facts(3, &menu), None)).await;
        assert!(
            matches!(refused, Err(ClientError::Unavailable(_))),
            "{refused:?}"
        );

        // Payment hung (it takes the connection and never answers): the
        // client gives up at its deadline and says unavailable.
        let hung = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let hung_url = format!("http://{}", hung.local_addr().expect("address"));
        let down = HttpPayment {
            peer: peer("payment", &hung_url),
            signer,
        };
        let unavailable = tokio::time::timeout(
            Duration::from_secs(10),
            down.pay(charge(facts(4, &menu), None)),
        )
        .await
        .expect("answers within its deadline");
        assert!(
            matches!(unavailable, Err(ClientError::Unavailable(_))),
            "{unavailable:?}"
        );
        drop(hung);
    }
}
