//! The all-in-one shape: every service of the list (crate `services`) in
//! one process, each on its own SQLite file under the data directory, with
//! the embedded event log and one listener. Order calls Payment and Store
//! by function call (`adapters`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::http::Extensions;
use platform::actuator::Actuator;
use platform::metrics::Metrics;
use platform::retention::{LogRetention, Retention};
use platform::service::{ServiceDescription, Supplies};
use platform::shutdown::{shutdown_pair, Shutdown};
use platform::{Db, EventLog, TokenKeys};

use crate::adapters::{LocalPayment, LocalStore};
use crate::wiring::{self, Events, Running};

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub order: order::OrderConfig,
    pub cors: gateway::Cors,
    pub seed_demo: bool,
    pub keys: crate::keys::KeyArgs,
    pub trusted_proxies: identity::TrustedProxies,
    /// How long expired rows and log entries are kept (`HANWHA_RETENTION_*`).
    pub retention: platform::retention::Periods,
    /// Timeouts, connection cap and the management listener.
    pub http: crate::listeners::HttpArgs,
}

/// Each service with its database.
type Databases = Vec<(&'static ServiceDescription, Db)>;

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

/// Opens every service's database and the event log, side by side.
async fn open_all(dir: &Path) -> anyhow::Result<(Databases, EventLog)> {
    let opening = services::ALL.map(|service| async move {
        let db = open(dir, service.name, (service.migrations)()).await?;
        anyhow::Ok((service, db))
    });
    let (dbs, log) = tokio::try_join!(futures::future::try_join_all(opening), async {
        EventLog::open(&dir.join("events.db"))
            .await
            .context("opening events.db")
    })?;
    Ok((dbs, log))
}

fn db_of(dbs: &Databases, service: &ServiceDescription) -> anyhow::Result<Db> {
    dbs.iter()
        .find(|(s, _)| *s == service)
        .map(|(_, db)| db.clone())
        .with_context(|| format!("{} is not in the list", service.name))
}

/// Seeds the demo data if asked; returns what to say about accounts.
async fn first_start(settings: &Settings, dbs: &Databases) -> anyhow::Result<Vec<String>> {
    let mut seeded = false;
    if settings.seed_demo {
        let seeding = dbs.iter().filter_map(|(service, db)| {
            let seed = service.seed_demo?;
            Some(async move {
                Ok::<_, anyhow::Error>((
                    service.holds_accounts,
                    seed(db.clone()).await.map_err(|e| anyhow::anyhow!("{e}"))?,
                ))
            })
        });
        for (accounts, made) in futures::future::try_join_all(seeding).await? {
            seeded |= accounts && made;
        }
    }
    let Some((_, accounts)) = dbs.iter().find(|(s, _)| s.holds_accounts) else {
        return Ok(Vec::new());
    };
    let target = format!("--data-dir {}", settings.data_dir.display());
    crate::first_start::account_notes(accounts, seeded, &target).await
}

/// What the services take beyond their database and keys; Order's calls
/// to Payment and Store are function calls here.
fn inputs(
    order: &order::OrderConfig,
    proxies: &identity::TrustedProxies,
    dbs: &Databases,
    keys: &TokenKeys,
) -> anyhow::Result<Extensions> {
    let mut inputs = Extensions::new();
    inputs.insert(order.clone());
    inputs.insert(proxies.clone());
    inputs.insert(order::Clients {
        payment: Arc::new(LocalPayment(payment::PaymentService {
            db: db_of(dbs, &payment::SERVICE)?,
            keys: keys.clone(),
        })),
        store: Arc::new(LocalStore(store::StoreService {
            db: db_of(dbs, &store::SERVICE)?,
            keys: keys.clone(),
        })),
    });
    Ok(inputs)
}

/// Keeps every service's tables and the log bounded; the log keeps what
/// the consumers and the rebuildable views still need.
fn retention(
    dbs: &Databases,
    consumers: Vec<(&'static str, Db)>,
    log: &EventLog,
    periods: platform::retention::Periods,
) -> Retention {
    Retention {
        log: Some(LogRetention {
            log: log.clone(),
            consumers,
            outboxes: dbs.iter().map(|(_, db)| db.clone()).collect(),
            views: dbs
                .iter()
                .filter_map(|(s, db)| Some((s.view?(), db.clone())))
                .collect(),
        }),
        dbs: dbs.iter().map(|(s, db)| (s.name, db.clone())).collect(),
        periods,
    }
}

/// Scripts and tests read the first line to learn the port; the accounts
/// to use (or how to make the first admin) follow it.
fn banner(addr: SocketAddr, data_dir: &str, account_notes: Vec<String>) -> String {
    std::iter::once(format!(
        "hanwha-delivery listening on http://{addr} (data in {data_dir})"
    ))
    .chain(account_notes)
    .collect::<Vec<_>>()
    .join("\n")
}

/// Starts every service of the list on its database, in the list's order.
async fn start_all(
    dbs: &Databases,
    keys: &TokenKeys,
    inputs: &Extensions,
    shutdown: &Shutdown,
    events: &Events,
    metrics: &Metrics,
) -> anyhow::Result<Vec<Running>> {
    let mut started = Vec::with_capacity(dbs.len());
    for (service, db) in dbs {
        let supplies = Supplies {
            db: db.clone(),
            keys: keys.clone(),
            shutdown: shutdown.clone(),
            inputs: inputs.clone(),
        };
        started.push(wiring::start(service, supplies, events, metrics).await?);
    }
    Ok(started)
}

pub async fn run(
    settings: Settings,
    shutdown_signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    platform::files::private_dir(&settings.data_dir)
        .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    let keys = settings.keys.all_in_one(&settings.data_dir)?;
    let (dbs, log) = open_all(&settings.data_dir).await?;
    let account_notes = first_start(&settings, &dbs).await?;
    let inputs = inputs(&settings.order, &settings.trusted_proxies, &dbs, &keys)?;

    let (trigger, shutdown) = shutdown_pair();
    let metrics = Metrics::new("all-in-one").context("metrics")?;
    let events = Events::Log(log.clone());
    let running = start_all(&dbs, &keys, &inputs, &shutdown, &events, &metrics).await?;
    let (mut routers, mut tasks, mut consumers) = (Vec::new(), Vec::new(), Vec::new());
    for ((_, db), running) in dbs.iter().zip(running) {
        consumers.extend(running.handler.map(|h| (h.name(), db.clone())));
        routers.extend(running.routers);
        tasks.extend(running.tasks);
    }
    tasks.push(retention(&dbs, consumers, &log, settings.retention).spawn(shutdown.clone()));

    let actuator = Actuator::new("all-in-one");
    let operations = platform::management::operations(&actuator, &metrics);
    let management = actuator.router().merge(operations.clone());
    routers.extend([
        gateway::web::router(),
        platform::openapi::router(&crate::openapi::all_in_one()),
        actuator.router(),
        platform::management::for_admins(operations, keys.clone()),
        crate::events_api::router(log.clone(), keys.clone()),
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
            banner(addr, &data_dir, account_notes)
        },
        shutdown_signal,
    )
    .await?;

    trigger.trigger();
    wiring::stop(tasks).await;
    for (_, db) in &dbs {
        db.close().await;
    }
    log.close().await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both shapes start each service through `wiring::start`: started
    /// from the list, a relay (seen by its backlog gauge) runs exactly for
    /// the services with an outbox, and a consumer for those that consume.
    #[tokio::test]
    async fn every_service_starts_from_the_list_with_a_relay_only_where_it_has_an_outbox() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (dbs, log) = open_all(dir.path()).await.expect("open");
        let key = platform::signing_keys::PrivateKey::read_or_create(&dir.path().join("token.key"))
            .expect("key");
        let keys = TokenKeys::issuer(key, Vec::new());
        let inputs = inputs(
            &order::OrderConfig::default(),
            &identity::TrustedProxies::default(),
            &dbs,
            &keys,
        )
        .expect("inputs");
        let (trigger, shutdown) = shutdown_pair();
        let metrics = Metrics::new("test").expect("metrics");
        let events = Events::Log(log.clone());
        let started = start_all(&dbs, &keys, &inputs, &shutdown, &events, &metrics)
            .await
            .expect("start");
        let mut tasks = Vec::new();
        for ((service, _), running) in dbs.iter().zip(started) {
            assert_eq!(running.handler.is_some(), service.consumes_events);
            tasks.extend(running.tasks);
        }
        let text = metrics.render().await;
        for service in services::ALL {
            let backlog = format!("outbox=\"{}\"", service.name);
            assert_eq!(text.contains(&backlog), service.outbox, "{}", service.name);
        }
        trigger.trigger();
        wiring::stop(tasks).await;
        for (_, db) in &dbs {
            db.close().await;
        }
        log.close().await;
    }
}
