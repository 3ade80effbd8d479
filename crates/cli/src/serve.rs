//! The distributed shape: `hanwha-delivery serve <service>` runs one service
//! in its own process, on its own database, with events on NATS JetStream
//! and the synchronous calls over HTTP. Many replicas of a service may run
//! side by side; they share the service's database and broker consumer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use platform::actuator::Actuator;
use platform::consumer::EventHandler;
use platform::metrics::{Gauge, Metrics};
use platform::nats::NatsBus;
use platform::outbox::spawn_relay;
use platform::peer::{Peer, PeerConfig};
use platform::shutdown::shutdown_pair;
use platform::transport::EventSink;
use platform::{admin, Db, Location, TokenKeys};
use tokio::task::JoinHandle;

use crate::all_in_one::with_idempotency;
use crate::remote::{HttpPayment, HttpStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    Gateway,
    Identity,
    Order,
    Payment,
    Store,
    Delivery,
    Status,
    Notification,
}

impl Service {
    pub const ALL: [Service; 8] = [
        Service::Gateway,
        Service::Identity,
        Service::Order,
        Service::Payment,
        Service::Store,
        Service::Delivery,
        Service::Status,
        Service::Notification,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Gateway => "gateway",
            Service::Identity => "identity",
            Service::Order => "order",
            Service::Payment => "payment",
            Service::Store => "store",
            Service::Delivery => "delivery",
            Service::Status => "status",
            Service::Notification => "notification",
        }
    }

    /// The original system's ports.
    fn default_port(self) -> u16 {
        match self {
            Service::Gateway => 8088,
            Service::Order => 8081,
            Service::Delivery => 8082,
            Service::Status => 8083,
            Service::Payment => 8084,
            Service::Store => 8085,
            Service::Notification => 8086,
            Service::Identity => 8087,
        }
    }

    fn default_addr(self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.default_port()))
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
    /// NATS server with JetStream.
    #[arg(long, env = "HANWHA_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// JetStream stream that holds every event.
    #[arg(long, env = "HANWHA_STREAM", default_value = "HANWHA")]
    stream: String,
    /// Subject prefix of the events (`<prefix>.<EventType>`).
    #[arg(long, env = "HANWHA_SUBJECT_PREFIX", default_value = "hanwha.events")]
    subject_prefix: String,
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
    pub sweep_every: Duration,
    pub seed_demo: bool,
    pub keys: crate::keys::KeyArgs,
    pub trusted_proxies: identity::TrustedProxies,
    /// How long expired rows are kept (`HANWHA_RETENTION_*`).
    pub retention: platform::retention::Periods,
    /// Timeouts, connection cap and the management listener.
    pub http: crate::listeners::HttpArgs,
}

fn upstreams(specs: &[String]) -> anyhow::Result<Vec<(&'static str, Vec<String>)>> {
    let mut out: Vec<(&'static str, Vec<String>)> = Vec::new();
    for spec in specs.iter().filter(|s| !s.trim().is_empty()) {
        let (service, urls) = spec
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--upstream {spec}: expected SERVICE=URL[,URL...]"))?;
        let service = gateway::proxy::SERVICES
            .iter()
            .find(|s| **s == service.trim())
            .ok_or_else(|| anyhow::anyhow!("--upstream {spec}: unknown service {service}"))?;
        let urls: Vec<String> = urls
            .split(',')
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        if out.iter().any(|(s, _)| s == service) {
            // Otherwise one of the lists would be silently ignored.
            anyhow::bail!(
                "--upstream {service} is given twice: name all its replicas in one, {service}=URL,URL"
            );
        }
        out.push((service, urls));
    }
    for service in gateway::proxy::SERVICES {
        if !out.iter().any(|(s, _)| *s == service) {
            let port = Service::ALL
                .into_iter()
                .find(|s| s.name() == service)
                .map(Service::default_port)
                .unwrap_or(0);
            out.push((service, vec![format!("http://127.0.0.1:{port}")]));
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
    if args.service == Service::Gateway {
        return run_gateway(args, common.http, shutdown_signal).await;
    }
    let name = args.service.name();
    let keys: TokenKeys = match args.service {
        Service::Identity => common.keys.identity()?,
        _ => common.keys.verifier(name)?,
    };
    platform::files::private_dir(&common.data_dir)?;
    let location: Location = match &args.database_url {
        Some(url) => url.parse()?,
        None => Location::Sqlite(common.data_dir.join(format!("{name}.db"))),
    };
    let migrations = match args.service {
        // The gateway returned above; it has no database.
        Service::Gateway | Service::Identity => identity::migrations(),
        Service::Order => order::migrations(),
        Service::Payment => payment::migrations(),
        Service::Store => store::migrations(),
        Service::Delivery => delivery::migrations(),
        Service::Status => status::migrations(),
        Service::Notification => notification::migrations(),
    };
    let db = Db::open(&location, &migrations)
        .await
        .with_context(|| format!("opening {location}"))?;
    let bus = NatsBus::connect(&args.nats_url, &args.stream, &args.subject_prefix)
        .await
        .with_context(|| format!("connecting to NATS at {}", args.nats_url))?;
    let sink: Arc<dyn EventSink> = Arc::new(bus.clone());
    let (trigger, shutdown) = shutdown_pair();
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    let mut consumer: Option<Arc<dyn EventHandler>> = None;
    let metrics = Metrics::new(name).context("metrics")?;

    let mut notes: Vec<String> = Vec::new();
    let router: Router = match args.service {
        Service::Gateway | Service::Identity => {
            let seeded = common.seed_demo
                && identity::seed_demo(&db)
                    .await
                    .map_err(|e| anyhow::anyhow!("seeding users: {e}"))?;
            let target = match &args.database_url {
                Some(url) => format!("--database-url {url}"),
                None => format!("--data-dir {}", common.data_dir.display()),
            };
            notes = crate::first_start::account_notes(&db, seeded, &target).await?;
            let identity =
                identity::Identity::start(db.clone(), keys.clone(), common.trusted_proxies.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("starting identity: {e}"))?;
            tasks.push(identity.watch_disables(shutdown.clone()));
            identity::router(identity)
        }
        Service::Order => {
            let signer = common.keys.service_signer(name)?;
            let peer_config = PeerConfig {
                deadline: Duration::from_millis(args.call_deadline_ms),
                ..PeerConfig::default()
            };
            let payment_peer =
                Arc::new(Peer::new("payment", &args.payment_url, peer_config.clone()));
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
            let svc = order::OrderService {
                db: db.clone(),
                keys: keys.clone(),
                payment: Arc::new(HttpPayment {
                    peer: payment_peer,
                    signer: signer.clone(),
                }),
                store: Arc::new(HttpStore {
                    peer: store_peer,
                    signer,
                }),
                config: common.order.clone(),
            };
            consumer = Some(Arc::new(order::OrderEvents));
            tasks.push(order::deadline::spawn(
                svc.clone(),
                common.sweep_every,
                shutdown.clone(),
            ));
            order::router(svc)
        }
        Service::Payment => {
            let svc = payment::PaymentService {
                db: db.clone(),
                keys: keys.clone(),
            };
            consumer = Some(Arc::new(payment::PaymentEvents));
            payment::router(svc)
        }
        Service::Store => {
            if common.seed_demo {
                store::seed_demo(&db).await.context("seeding stores")?;
            }
            consumer = Some(Arc::new(store::StoreEvents));
            store::router(store::StoreService {
                db: db.clone(),
                keys: keys.clone(),
            })
        }
        Service::Delivery => {
            consumer = Some(Arc::new(delivery::DeliveryEvents));
            delivery::router(delivery::DeliveryService {
                db: db.clone(),
                keys: keys.clone(),
            })
        }
        Service::Status => {
            consumer = Some(Arc::new(status::StatusEvents::served()));
            status::router(status::StatusService {
                db: db.clone(),
                keys: keys.clone(),
            })
        }
        Service::Notification => {
            let svc = notification::NotificationService::new(db.clone(), keys.clone());
            consumer = Some(Arc::new(svc.handler()));
            notification::router(svc)
        }
    };
    if args.service != Service::Identity {
        tasks.push(platform::revocation_sync::spawn(
            common.keys.identity_url.clone(),
            keys.revocations().clone(),
            shutdown.clone(),
        ));
    }
    tasks.push(spawn_relay(name, db.clone(), sink, shutdown.clone()));
    let periods = common
        .retention
        .for_broker(platform::nats::redelivery_window());
    if periods.inbox > common.retention.inbox {
        tracing::warn!(
            configured_secs = common.retention.inbox.as_secs(),
            kept_secs = periods.inbox.as_secs(),
            "inbox retention raised: on a broker an inbox row outlives ten redelivery windows"
        );
    }
    tasks.push(
        platform::retention::Retention {
            dbs: vec![(name, db.clone())],
            log: None,
            periods,
        }
        .spawn(shutdown.clone()),
    );
    let actuator = Actuator::new(name);
    {
        let (db, bus) = (db.clone(), bus.clone());
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
        metrics.probe(
            Gauge::BrokerConnected,
            "nats",
            Arc::new(move || {
                let up = i64::from(bus.connected());
                Box::pin(async move { up })
            }),
        );
    }
    {
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
    let operations = platform::management::operations(&actuator, &metrics);
    let management = actuator.router().merge(operations.clone());
    let mut routers = vec![
        actuator.router(),
        platform::management::for_admins(operations, keys.clone()),
        platform::openapi::router(&crate::openapi::for_service(args.service)),
        with_idempotency(router, &db, &keys),
    ];
    if let Some(handler) = consumer {
        let (lag_bus, consumer_name) = (bus.clone(), handler.name());
        metrics.probe(
            Gauge::ConsumerLag,
            consumer_name,
            Arc::new(move || {
                let bus = lag_bus.clone();
                Box::pin(async move {
                    bus.pending(consumer_name)
                        .await
                        .map(|n| n as i64)
                        .unwrap_or(-1)
                })
            }),
        );
        tasks.push(platform::nats::spawn_consumer(
            handler.clone(),
            db.clone(),
            bus.clone(),
            shutdown.clone(),
        ));
        routers.push(admin::dead_letter_routes(keys.clone(), db.clone(), handler));
    }
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
            std::iter::once(format!(
                "hanwha-delivery {name} listening on http://{addr} (database {location})"
            ))
            .chain(notes)
            .collect::<Vec<_>>()
            .join("\n")
        },
        shutdown_signal,
    )
    .await?;
    trigger.trigger();
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    db.close().await;
    Ok(())
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
