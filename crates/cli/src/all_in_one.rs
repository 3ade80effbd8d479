//! The all-in-one shape: every service, its own SQLite file under the data
//! directory, the embedded event log, and one listener.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::middleware::from_fn_with_state;
use axum::Router;
use platform::actuator::Actuator;
use platform::consumer::{spawn_consumer, EventHandler};
use platform::idempotency::{self, Idempotency};
use platform::metrics::{Gauge, Metrics};
use platform::outbox::spawn_relay;
use platform::retention::{LogRetention, Retention};
use platform::shutdown::shutdown_pair;
use platform::{admin, Db, EventLog, TokenKeys};
use tokio::task::JoinHandle;

use crate::adapters::{LocalPayment, LocalStore};

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub order: order::OrderConfig,
    pub sweep_every: Duration,
    pub cors: gateway::Cors,
    pub seed_demo: bool,
    pub keys: crate::keys::KeyArgs,
    pub trusted_proxies: identity::TrustedProxies,
    /// How long expired rows and log entries are kept (`HANWHA_RETENTION_*`).
    pub retention: platform::retention::Periods,
    /// Timeouts, connection cap and the management listener.
    pub http: crate::listeners::HttpArgs,
}

pub(crate) async fn open(
    data_dir: &Path,
    name: &str,
    migrations: platform::Migrations,
) -> anyhow::Result<Db> {
    let path = data_dir.join(format!("{name}.db"));
    Db::open(&platform::Location::Sqlite(path.clone()), &migrations)
        .await
        .with_context(|| format!("opening {}", path.display()))
}

pub(crate) fn with_idempotency(router: Router, db: &Db, keys: &TokenKeys) -> Router {
    router.layer(from_fn_with_state(
        Idempotency::new(db.clone(), keys.clone()),
        idempotency::layer,
    ))
}

pub async fn run(
    settings: Settings,
    shutdown_signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    platform::files::private_dir(&settings.data_dir)
        .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    let dir = settings.data_dir.as_path();
    let keys = settings.keys.all_in_one(dir)?;
    let (identity_db, order_db, payment_db, store_db, delivery_db, status_db, notification_db, log) =
        tokio::try_join!(
            open(dir, "identity", identity::migrations()),
            open(dir, "order", order::migrations()),
            open(dir, "payment", payment::migrations()),
            open(dir, "store", store::migrations()),
            open(dir, "delivery", delivery::migrations()),
            open(dir, "status", status::migrations()),
            open(dir, "notification", notification::migrations()),
            async {
                EventLog::open(&dir.join("events.db"))
                    .await
                    .context("opening events.db")
            },
        )?;
    let mut seeded = false;
    if settings.seed_demo {
        let (users, stores) = tokio::join!(
            identity::seed_demo(&identity_db),
            store::seed_demo(&store_db)
        );
        seeded = users.map_err(|e| anyhow::anyhow!("seeding users: {e}"))?;
        stores.context("seeding stores")?;
    }
    let account_notes = crate::first_start::account_notes(
        &identity_db,
        seeded,
        &format!("--data-dir {}", dir.display()),
    )
    .await?;

    let (trigger, shutdown) = shutdown_pair();
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();

    let payment_svc = payment::PaymentService {
        db: payment_db.clone(),
        keys: keys.clone(),
    };
    let store_svc = store::StoreService {
        db: store_db.clone(),
        keys: keys.clone(),
    };
    let order_svc = order::OrderService {
        db: order_db.clone(),
        keys: keys.clone(),
        payment: Arc::new(LocalPayment(payment_svc.clone())),
        store: Arc::new(LocalStore(store_svc.clone())),
        config: settings.order.clone(),
    };
    let delivery_svc = delivery::DeliveryService {
        db: delivery_db.clone(),
        keys: keys.clone(),
    };
    let status_svc = status::StatusService {
        db: status_db.clone(),
        keys: keys.clone(),
    };
    let notification_svc =
        notification::NotificationService::new(notification_db.clone(), keys.clone());

    let sink: Arc<dyn platform::transport::EventSink> = Arc::new(log.clone());
    for (name, db) in [
        ("order", &order_db),
        ("payment", &payment_db),
        ("store", &store_db),
        ("delivery", &delivery_db),
    ] {
        tasks.push(spawn_relay(
            name,
            db.clone(),
            sink.clone(),
            shutdown.clone(),
        ));
    }

    let handlers: Vec<(Arc<dyn EventHandler>, Db)> = vec![
        (Arc::new(order::OrderEvents), order_db.clone()),
        (Arc::new(payment::PaymentEvents), payment_db.clone()),
        (Arc::new(store::StoreEvents), store_db.clone()),
        (Arc::new(delivery::DeliveryEvents), delivery_db.clone()),
        (Arc::new(status::StatusEvents::served()), status_db.clone()),
        (
            Arc::new(notification_svc.handler()),
            notification_db.clone(),
        ),
    ];
    let mut routers = Vec::new();
    for (handler, db) in &handlers {
        tasks.push(spawn_consumer(
            handler.clone(),
            db.clone(),
            log.clone(),
            shutdown.clone(),
        ));
        routers.push(admin::dead_letter_routes(
            keys.clone(),
            db.clone(),
            handler.clone(),
        ));
    }
    tasks.push(order::deadline::spawn(
        order_svc.clone(),
        settings.sweep_every,
        shutdown.clone(),
    ));
    let dbs = vec![
        ("identity", identity_db.clone()),
        ("order", order_db.clone()),
        ("payment", payment_db.clone()),
        ("store", store_db.clone()),
        ("delivery", delivery_db.clone()),
        ("status", status_db.clone()),
        ("notification", notification_db.clone()),
    ];
    tasks.push(
        Retention {
            log: Some(LogRetention {
                log: log.clone(),
                consumers: handlers
                    .iter()
                    .map(|(h, db)| (h.name(), db.clone()))
                    .collect(),
                outboxes: dbs.iter().map(|(_, db)| db.clone()).collect(),
                views: vec![
                    (status::rebuildable(), status_db.clone()),
                    (notification::rebuildable(), notification_db.clone()),
                ],
            }),
            dbs,
            periods: settings.retention,
        }
        .spawn(shutdown.clone()),
    );

    let metrics = Metrics::new("all-in-one").context("metrics")?;
    for (name, db) in [
        ("order", &order_db),
        ("payment", &payment_db),
        ("store", &store_db),
        ("delivery", &delivery_db),
    ] {
        let db = db.clone();
        metrics.probe(
            Gauge::OutboxBacklog,
            name,
            Arc::new(move || {
                let db = db.clone();
                Box::pin(async move { platform::outbox::backlog(&db).await.unwrap_or(-1) })
            }),
        );
    }
    for (handler, db) in &handlers {
        let (db, log, name) = (db.clone(), log.clone(), handler.name());
        metrics.probe(
            Gauge::ConsumerLag,
            name,
            Arc::new(move || {
                let (db, log) = (db.clone(), log.clone());
                Box::pin(async move {
                    match platform::consumer::position(&db, name).await {
                        Ok(pos) => log.tip() - pos,
                        Err(_) => -1,
                    }
                })
            }),
        );
    }
    let identity_svc = identity::Identity::start(
        identity_db.clone(),
        keys.clone(),
        settings.trusted_proxies.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("starting identity: {e}"))?;
    tasks.push(identity_svc.watch_disables(shutdown.clone()));
    let actuator = Actuator::new("all-in-one");
    let operations = platform::management::operations(&actuator, &metrics);
    let management = actuator.router().merge(operations.clone());
    routers.extend([
        gateway::web::router(),
        platform::openapi::router(&crate::openapi::all_in_one()),
        actuator.router(),
        platform::management::for_admins(operations, keys.clone()),
        crate::events_api::router(log.clone(), keys.clone()),
        with_idempotency(identity::router(identity_svc), &identity_db, &keys),
        with_idempotency(order::router(order_svc), &order_db, &keys),
        with_idempotency(payment::router(payment_svc), &payment_db, &keys),
        with_idempotency(store::router(store_svc), &store_db, &keys),
        with_idempotency(delivery::router(delivery_svc), &delivery_db, &keys),
        status::router(status_svc),
        notification::router(notification_svc),
    ]);
    let app = gateway::all_in_one(routers, &settings.cors).layer(
        axum::middleware::from_fn_with_state(metrics, platform::metrics::track),
    );

    let data_dir = settings.data_dir.display().to_string();
    crate::listeners::serve_until_shutdown(
        crate::listeners::Listeners {
            public: settings.listen,
            app,
            management,
        },
        &settings.http,
        &actuator,
        |addr| {
            tracing::info!(%addr, ready_ms = started.elapsed().as_millis() as u64, "all-in-one ready");
            // Scripts and tests read the first line to learn the port; the
            // accounts to use (or how to make the first admin) follow it.
            let mut banner = format!("hanwha-delivery listening on http://{addr} (data in {data_dir})");
            for note in account_notes {
                banner.push('\n');
                banner.push_str(&note);
            }
            banner
        },
        shutdown_signal,
    )
    .await?;

    trigger.trigger();
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    for db in [
        &identity_db,
        &order_db,
        &payment_db,
        &store_db,
        &delivery_db,
        &status_db,
        &notification_db,
    ] {
        db.close().await;
    }
    log.close().await;
    tracing::info!("stopped");
    Ok(())
}
