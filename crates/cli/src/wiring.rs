//! What both shapes do alike with each service of the list: start it from
//! its description, put the `Idempotency-Key` layer in front of the
//! services users change state through, run the relay of its outbox (only
//! a service that has one), its consumer and its dead letters, and watch
//! its outbox backlog and consumer lag. The shapes differ only in where
//! events go ([`Events`]) and in what they supply.

use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use axum::Router;
use platform::consumer::EventHandler;
use platform::idempotency::{self, Idempotency};
use platform::metrics::{Gauge, Metrics, Probe};
use platform::outbox::spawn_relay;
use platform::service::{ServiceDescription, Supplies};
use platform::shutdown::Shutdown;
use platform::transport::EventSink;
use platform::{admin, Db, EventLog};
use tokio::task::JoinHandle;

use crate::broker::Broker;

/// Where events go and come from: the all-in-one's embedded log or a
/// broker.
#[derive(Clone)]
pub enum Events {
    Log(EventLog),
    Broker(Box<Broker>),
}

impl Events {
    fn sink(&self) -> Arc<dyn EventSink> {
        match self {
            Events::Log(log) => Arc::new(log.clone()),
            Events::Broker(broker) => broker.sink(),
        }
    }

    fn consume(
        &self,
        handler: Arc<dyn EventHandler>,
        db: Db,
        shutdown: Shutdown,
    ) -> JoinHandle<()> {
        match self {
            Events::Log(log) => {
                platform::consumer::spawn_consumer(handler, db, log.clone(), shutdown)
            }
            Events::Broker(broker) => broker.consume(handler, db, shutdown),
        }
    }

    /// Puts how far a consumer is behind into the metrics.
    fn watch_lag(&self, consumer: &'static str, db: Db, metrics: &Metrics) {
        match self.clone() {
            Events::Log(log) => {
                let lag: Probe = Arc::new(move || {
                    let (db, log) = (db.clone(), log.clone());
                    Box::pin(async move {
                        match platform::consumer::position(&db, consumer).await {
                            Ok(pos) => log.tip() - pos,
                            Err(_) => -1,
                        }
                    })
                });
                metrics.probe(Gauge::ConsumerLag, consumer, lag);
            }
            Events::Broker(broker) => broker.watch_lag(consumer, metrics),
        }
    }
}

/// A service running in a shape.
pub struct Running {
    /// Its routes, its dead letters' among them.
    pub routers: Vec<Router>,
    pub handler: Option<Arc<dyn EventHandler>>,
    pub tasks: Vec<JoinHandle<()>>,
}

/// Starts one service of the list with what the shape supplies.
pub async fn start(
    service: &ServiceDescription,
    supplies: Supplies,
    events: &Events,
    metrics: &Metrics,
) -> anyhow::Result<Running> {
    let (db, keys, shutdown) = (
        supplies.db.clone(),
        supplies.keys.clone(),
        supplies.shutdown.clone(),
    );
    let started = (service.start)(supplies)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let router = if service.takes_writes {
        started.router.layer(from_fn_with_state(
            Idempotency::new(db.clone(), keys.clone()),
            idempotency::layer,
        ))
    } else {
        started.router
    };
    let mut running = Running {
        routers: vec![router],
        handler: started.handler,
        tasks: started.tasks,
    };
    if service.outbox {
        running.tasks.push(spawn_relay(
            service.name,
            db.clone(),
            events.sink(),
            shutdown.clone(),
        ));
        let db = db.clone();
        metrics.probe(
            Gauge::OutboxBacklog,
            service.name,
            Arc::new(move || {
                let db = db.clone();
                Box::pin(async move { platform::outbox::backlog(&db).await.unwrap_or(-1) })
            }),
        );
    }
    if let Some(handler) = &running.handler {
        running
            .tasks
            .push(events.consume(handler.clone(), db.clone(), shutdown));
        events.watch_lag(handler.name(), db.clone(), metrics);
        running
            .routers
            .push(admin::dead_letter_routes(keys, db, handler.clone()));
    }
    Ok(running)
}

/// After the shutdown signal: waits for each task to finish its work, ten
/// seconds at most each.
pub async fn stop(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
    }
}
