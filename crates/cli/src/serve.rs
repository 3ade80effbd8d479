//! The distributed shape: `hanwha-delivery serve <service>` runs one service
//! in its own process, on its own database, with events on a broker (NATS
//! JetStream or Kafka, `--transport`) and the synchronous calls over HTTP.
//! Many replicas of a service may run side by side; they share the
//! service's database and broker consumer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::Extensions;
use platform::actuator::Actuator;
use platform::metrics::{Gauge, Metrics};
use platform::peer::{Peer, PeerConfig};
use platform::service::{ServiceDescription, Supplies};
use platform::shutdown::shutdown_pair;
use platform::{Db, Location};

use crate::broker::{Broker, BrokerArgs};
use crate::wiring::{self, Events};
use order::clients::{HttpPayment, HttpStore};

/// What `serve` runs: the gateway or one service of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Gateway,
    Of(&'static ServiceDescription),
}

impl Service {
    /// The gateway, then the list's services in its order.
    pub const ALL: [Service; 1 + services::ALL.len()] = {
        let mut all = [Service::Gateway; 1 + services::ALL.len()];
        let mut i = 0;
        while i < services::ALL.len() {
            all[i + 1] = Service::Of(services::ALL[i]);
            i += 1;
        }
        all
    };

    pub fn name(self) -> &'static str {
        match self {
            Service::Gateway => "gateway",
            Service::Of(service) => service.name,
        }
    }

    /// The original system's ports.
    pub fn default_port(self) -> u16 {
        match self {
            Service::Gateway => gateway::DEFAULT_PORT,
            Service::Of(service) => service.default_port,
        }
    }

    /// The gateway or a service of the list, by name.
    pub fn named(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }

    fn default_addr(self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.default_port()))
    }
}

impl clap::ValueEnum for Service {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which service this process runs.
    #[arg(value_enum)]
    service: Service,
    /// Address to listen on (default: the service's port on 127.0.0.1).
    #[arg(long = "addr", env = "HANWHA_SERVICE_ADDR")]
    addr: Option<SocketAddr>,
    /// The service's database: postgres://USER@HOST/DB, mysql://USER@HOST/DB
    /// (or mariadb://...), sqlite://PATH or a file path (default:
    /// DATA_DIR/<service>.db). A server database is created on first start
    /// and migrated on every start.
    #[arg(long = "database-url", alias = "db", env = "HANWHA_DATABASE_URL")]
    database_url: Option<String>,
    #[command(flatten)]
    broker: BrokerArgs,
    /// Payment service base URL (order calls it).
    #[arg(
        long,
        env = "HANWHA_PAYMENT_URL",
        default_value = "http://127.0.0.1:8084"
    )]
    payment_url: String,
    /// Store service base URL (order calls it).
    #[arg(
        long,
        env = "HANWHA_STORE_URL",
        default_value = "http://127.0.0.1:8085"
    )]
    store_url: String,
    /// Gateway: the replicas of a service, `SERVICE=URL[,URL...]`; repeat
    /// per service, or set HANWHA_UPSTREAMS as `order=URL,URL;payment=URL`.
    /// A service not named is expected on its default port on 127.0.0.1.
    #[arg(long = "upstream", env = "HANWHA_UPSTREAMS", value_delimiter = ';')]
    upstreams: Vec<String>,
    /// Gateway: consecutive failures that eject a replica.
    #[arg(long, env = "HANWHA_EJECT_AFTER", default_value_t = 3)]
    eject_after: u32,
    /// Gateway: seconds an ejected replica gets no traffic.
    #[arg(long, env = "HANWHA_EJECT_SECS", default_value_t = 10)]
    eject_secs: u64,
    /// Gateway: milliseconds to open a connection to a replica.
    #[arg(long, env = "HANWHA_GATEWAY_CONNECT_TIMEOUT_MS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    connect_timeout_ms: u64,
    /// Gateway: milliseconds one attempt of a read (GET, HEAD) waits for an
    /// answer before the read goes to another replica.
    #[arg(long, env = "HANWHA_GATEWAY_TRY_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..))]
    try_timeout_ms: u64,
    /// Gateway: milliseconds a write waits for an answer before the gateway
    /// answers 504 (a write that reached a replica is never sent again).
    #[arg(long, env = "HANWHA_GATEWAY_WRITE_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..))]
    write_timeout_ms: u64,
    /// Gateway: milliseconds for a whole request, resends and the answer's
    /// body included; event streams (SSE) are exempt once they started.
    #[arg(long, env = "HANWHA_GATEWAY_REQUEST_TIMEOUT_MS", default_value_t = 10000,
          value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout_ms: u64,
    /// Gateway: milliseconds between health checks of each replica.
    #[arg(long, env = "HANWHA_GATEWAY_HEALTH_INTERVAL_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..))]
    health_interval_ms: u64,
    /// Gateway: milliseconds a health check waits for a replica's answer.
    #[arg(long, env = "HANWHA_GATEWAY_HEALTH_TIMEOUT_MS", default_value_t = 400,
          value_parser = clap::value_parser!(u64).range(1..))]
    health_timeout_ms: u64,
    /// Gateway: browser origins allowed by CORS (`*` or a comma-separated list).
    #[arg(long, env = "HANWHA_GATEWAY_CORS", default_value = "")]
    cors: String,
    /// Deadline in milliseconds for a call to another service, retries included.
    #[arg(long, env = "HANWHA_CALL_DEADLINE_MS", default_value_t = 900)]
    call_deadline_ms: u64,
}

pub struct Common {
    pub data_dir: PathBuf,
    pub order: order::OrderConfig,
    pub seed_demo: bool,
    pub keys: crate::keys::KeyArgs,
    pub trusted_proxies: identity::TrustedProxies,
    /// How long expired rows are kept (`HANWHA_RETENTION_*`).
    pub retention: platform::retention::Periods,
    /// Timeouts, connection cap and the management listener.
    pub http: crate::listeners::HttpArgs,
}

/// The replicas of each service from `--upstream`; a service not named is
/// expected on its default port on 127.0.0.1.
fn upstreams(specs: &[String]) -> anyhow::Result<Vec<(&'static str, Vec<String>)>> {
    let mut out: Vec<(&'static str, Vec<String>)> = Vec::new();
    for spec in specs.iter().filter(|s| !s.trim().is_empty()) {
        let (service, urls) = spec
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--upstream {spec}: expected SERVICE=URL[,URL...]"))?;
        let service = services::named(service.trim())
            .ok_or_else(|| anyhow::anyhow!("--upstream {spec}: unknown service {service}"))?
            .name;
        let urls: Vec<String> = urls
            .split(',')
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        if out.iter().any(|(s, _)| *s == service) {
            // Otherwise one of the lists would be silently ignored.
            anyhow::bail!(
                "--upstream {service} is given twice: name all its replicas in one, {service}=URL,URL"
            );
        }
        out.push((service, urls));
    }
    for service in services::ALL {
        if !out.iter().any(|(s, _)| *s == service.name) {
            let url = format!("http://127.0.0.1:{}", service.default_port);
            out.push((service.name, vec![url]));
        }
    }
    Ok(out)
}

async fn run_gateway(
    args: Args,
    http: crate::listeners::HttpArgs,
    shutdown_signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let proxy = gateway::proxy::Proxy::new(
        gateway::proxy::Routes::of(&services::ALL),
        upstreams(&args.upstreams)?,
        gateway::proxy::OutlierConfig {
            consecutive_errors: args.eject_after.max(1),
            ejection_time: Duration::from_secs(args.eject_secs),
            health_interval: Duration::from_millis(args.health_interval_ms),
            health_timeout: Duration::from_millis(args.health_timeout_ms),
            ..Default::default()
        },
        gateway::proxy::Timeouts {
            connect: Duration::from_millis(args.connect_timeout_ms),
            try_read: Duration::from_millis(args.try_timeout_ms),
            write: Duration::from_millis(args.write_timeout_ms),
            overall: Duration::from_millis(args.request_timeout_ms),
        },
    );
    let checks = proxy.spawn_health_checks();
    let actuator = Actuator::new("gateway");
    let metrics = Metrics::new("gateway").context("metrics")?;
    // The gateway checks no tokens: its own operations are on its
    // management listener only.
    let management = actuator
        .router()
        .merge(platform::management::operations(&actuator, &metrics));
    let app = gateway::distributed(
        vec![
            actuator.router(),
            gateway::web::router(),
            platform::openapi::router(&crate::openapi::gateway()),
        ],
        &proxy,
        &gateway::Cors::parse(&args.cors),
    )
    .layer(axum::middleware::from_fn_with_state(
        metrics,
        platform::metrics::track,
    ));
    crate::listeners::serve_until_shutdown(
        crate::listeners::Listeners {
            public: args.addr.unwrap_or_else(|| Service::Gateway.default_addr()),
            app,
            management,
        },
        &http,
        &actuator,
        |addr| format!("hanwha-delivery gateway listening on http://{addr}"),
        shutdown_signal,
    )
    .await?;
    checks.abort();
    Ok(())
}

pub async fn run(
    args: Args,
    common: Common,
    shutdown_signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    common.keys.refuse_shared_secret()?;
    let service = match args.service {
        Service::Gateway => return run_gateway(args, common.http, shutdown_signal).await,
        Service::Of(service) => service,
    };
    let name = service.name;
    let keys = common.keys.for_service(service)?;
    let (location, db) = open_database(service, &args, &common).await?;
    let bus = args.broker.connect().await?;
    let notes = first_start(service, &db, &args, &common).await?;
    let (trigger, shutdown) = shutdown_pair();
    let metrics = Metrics::new(name).context("metrics")?;
    let supplies = Supplies {
        db: db.clone(),
        keys: keys.clone(),
        shutdown: shutdown.clone(),
        inputs: inputs(service, &args, &common, &metrics)?,
    };
    let events = Events::Broker(Box::new(bus.clone()));
    let running = wiring::start(service, supplies, &events, &metrics).await?;
    let mut tasks = running.tasks;
    if !service.holds_accounts {
        tasks.push(platform::revocation_sync::spawn(
            common.keys.identity_url.clone(),
            keys.revocations().clone(),
            shutdown.clone(),
        ));
    }
    tasks.push(retention(name, &db, &bus, common.retention).spawn(shutdown.clone()));
    let actuator = actuator(name, &db, &bus, &metrics);
    let operations = platform::management::operations(&actuator, &metrics);
    let management = actuator.router().merge(operations.clone());
    let mut routers = vec![
        actuator.router(),
        platform::management::for_admins(operations, keys.clone()),
        platform::openapi::router(&crate::openapi::for_service(service)),
    ];
    routers.extend(running.routers);
    let app = gateway::all_in_one(routers, &gateway::Cors::default()).layer(
        axum::middleware::from_fn_with_state(metrics, platform::metrics::track),
    );

    crate::listeners::serve_until_shutdown(
        crate::listeners::Listeners {
            public: args.addr.unwrap_or_else(|| args.service.default_addr()),
            app,
            management,
        },
        &common.http,
        &actuator,
        |addr| {
            let first =
                format!("hanwha-delivery {name} listening on http://{addr} (database {location})");
            std::iter::once(first)
                .chain(notes)
                .collect::<Vec<_>>()
                .join("\n")
        },
        shutdown_signal,
    )
    .await?;
    trigger.trigger();
    wiring::stop(tasks).await;
    db.close().await;
    Ok(())
}

/// The service's database: `--database-url`, or its SQLite file in the
/// data directory; created on first start and migrated on every start.
async fn open_database(
    service: &ServiceDescription,
    args: &Args,
    common: &Common,
) -> anyhow::Result<(Location, Db)> {
    platform::files::private_dir(&common.data_dir)?;
    let location: Location = match &args.database_url {
        Some(url) => url.parse()?,
        None => Location::Sqlite(common.data_dir.join(format!("{}.db", service.name))),
    };
    let db = Db::open(&location, &(service.migrations)())
        .await
        .with_context(|| format!("opening {location}"))?;
    Ok((location, db))
}

/// Seeds the demo data on `--demo`; for the service that holds the
/// accounts, what to say about them.
async fn first_start(
    service: &ServiceDescription,
    db: &Db,
    args: &Args,
    common: &Common,
) -> anyhow::Result<Vec<String>> {
    let mut seeded = false;
    if let (true, Some(seed)) = (common.seed_demo, service.seed_demo) {
        seeded = seed(db.clone()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    if !service.holds_accounts {
        return Ok(Vec::new());
    }
    let target = match &args.database_url {
        Some(url) => format!("--database-url {url}"),
        None => format!("--data-dir {}", common.data_dir.display()),
    };
    crate::first_start::account_notes(db, seeded, &target).await
}

/// What the service takes beyond its database and keys; Order's calls to
/// Payment and Store go over HTTP, signed with its service key.
fn inputs(
    service: &ServiceDescription,
    args: &Args,
    common: &Common,
    metrics: &Metrics,
) -> anyhow::Result<Extensions> {
    let mut inputs = Extensions::new();
    inputs.insert(common.order.clone());
    inputs.insert(common.trusted_proxies.clone());
    if service.calls.is_empty() {
        return Ok(inputs);
    }
    let signer = common.keys.service_signer(service.name)?;
    let peer_config = PeerConfig {
        deadline: Duration::from_millis(args.call_deadline_ms),
        ..PeerConfig::default()
    };
    let payment_peer = Arc::new(Peer::new("payment", &args.payment_url, peer_config.clone()));
    let store_peer = Arc::new(Peer::new("store", &args.store_url, peer_config));
    for peer in [payment_peer.clone(), store_peer.clone()] {
        let label = peer.name().to_string();
        metrics.probe(
            Gauge::CircuitState,
            &label,
            Arc::new(move || {
                let state = peer.state() as i64;
                Box::pin(async move { state })
            }),
        );
    }
    inputs.insert(order::Clients {
        payment: Arc::new(HttpPayment {
            peer: payment_peer,
            signer: signer.clone(),
        }),
        store: Arc::new(HttpStore {
            peer: store_peer,
            signer,
        }),
    });
    Ok(inputs)
}

/// On a broker an inbox row must outlive the redelivery window.
fn retention(
    name: &'static str,
    db: &Db,
    bus: &Broker,
    configured: platform::retention::Periods,
) -> platform::retention::Retention {
    let periods = configured.for_broker(bus.redelivery_window());
    if periods.inbox > configured.inbox {
        tracing::warn!(
            configured_secs = configured.inbox.as_secs(),
            kept_secs = periods.inbox.as_secs(),
            "inbox retention raised: on a broker an inbox row outlives ten redelivery windows"
        );
    }
    platform::retention::Retention {
        dbs: vec![(name, db.clone())],
        log: None,
        periods,
    }
}

/// Ready while the database answers; the broker is reported, not required.
fn actuator(name: &str, db: &Db, bus: &Broker, metrics: &Metrics) -> Actuator {
    let actuator = Actuator::new(name);
    let db = db.clone();
    actuator.depends_on(
        "database",
        Arc::new(move || {
            let db = db.clone();
            Box::pin(async move { db.ping().await })
        }),
    );
    // Requests are served while the broker is away: the outbox keeps
    // their events until it is back.
    let broker = bus.clone();
    actuator.reports(
        "broker",
        Arc::new(move || {
            let up = broker.connected();
            Box::pin(async move { up })
        }),
    );
    let bus = bus.clone();
    metrics.probe(
        Gauge::BrokerConnected,
        bus.name(),
        Arc::new(move || {
            let up = i64::from(bus.connected());
            Box::pin(async move { up })
        }),
    );
    actuator
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_list_replicas_once_per_service() {
        let parsed = upstreams(&["order=http://a:1, http://b:2".into()]).expect("valid");
        let order = parsed.iter().find(|(s, _)| *s == "order").expect("order");
        assert_eq!(order.1, vec!["http://a:1", "http://b:2"]);
        // Services not named keep their default port.
        assert!(parsed
            .iter()
            .any(|(s, urls)| *s == "payment" && urls.len() == 1));
        let twice = upstreams(&["order=http://a:1".into(), "order=http://b:2".into()]);
        assert!(twice.is_err());
        assert!(upstreams(&["kitchen=http://a:1".into()]).is_err());
    }
}
