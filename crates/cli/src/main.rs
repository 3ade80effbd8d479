//! `hanwha-delivery`: with no subcommand it runs the whole platform in one
//! process (the all-in-one shape); subcommands read the event log and
//! rebuild read models.
//!
//! A short tour: the services are the list in crate `services`, each one a
//! `platform::service::ServiceDescription`. `all_in_one` runs every entry
//! in this process, `serve` runs one (or the gateway); both start each
//! service through `wiring::start`, so they differ only in what they
//! supply: the event log or NATS, SQLite files or a database URL, Order's
//! calls by function (`adapters`) or over HTTP (`remote`). `keys` is where
//! every process gets its token keys; `openapi` merges the list's
//! descriptions; `fleet` starts a local distributed fleet.

mod adapters;
mod all_in_one;
mod broker;
mod events_api;
mod first_start;
mod fleet;
mod health;
mod keys;
mod lifeline;
mod listeners;
mod load;
mod openapi;
mod serve;
mod tools;
mod users;
mod wiring;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "hanwha-delivery",
    version,
    about = "Hanwha Delivery: a food-delivery platform"
)]
struct Cli {
    /// Address the all-in-one server listens on.
    #[arg(
        long,
        env = "HANWHA_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    listen: SocketAddr,
    /// Directory of the SQLite files (one per service) and the event log.
    #[arg(long, env = "HANWHA_DATA_DIR", default_value = "./data", global = true)]
    data_dir: PathBuf,
    /// Seconds a store may leave a paid order unanswered before it is
    /// cancelled and refunded.
    #[arg(long, env = "HANWHA_STORE_DEADLINE_SECS", default_value_t = 600)]
    store_deadline_secs: u64,
    /// Milliseconds `POST /orders` waits for Payment before answering 503.
    #[arg(long, env = "HANWHA_PAYMENT_TIMEOUT_MS", default_value_t = 3000)]
    payment_timeout_ms: u64,
    /// Milliseconds between sweeps for overdue orders.
    #[arg(long, env = "HANWHA_SWEEP_MS", default_value_t = 1000)]
    sweep_ms: u64,
    /// Browser origins allowed by CORS: `*`, or a comma-separated list.
    #[arg(long, env = "HANWHA_CORS_ORIGINS", default_value = "")]
    cors_origins: String,
    /// Create the demo stores and users (password = name) on first start.
    /// The all-in-one does so on a loopback address even without it;
    /// `serve` only with it.
    #[arg(long, env = "HANWHA_DEMO", global = true,
          value_parser = clap::builder::FalseyValueParser::new())]
    demo: bool,
    /// No demo data, not even on a loopback address.
    #[arg(long, global = true, conflicts_with = "demo")]
    no_demo: bool,
    /// Identity: proxies (the gateway's addresses, comma-separated) whose
    /// X-Forwarded-For names the client for login throttling; by default
    /// none is trusted and the connection's peer counts.
    #[arg(
        long,
        env = "HANWHA_TRUSTED_PROXIES",
        default_value = "",
        global = true
    )]
    trusted_proxies: String,
    #[command(flatten)]
    keys: keys::KeyArgs,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "HANWHA_LOG_JSON")]
    log_json: bool,
    #[command(flatten)]
    http: listeners::HttpArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

// Parsed once at start; boxing the large `load` arguments would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Print the event log as JSON lines (like kafka-console-consumer);
    /// with --kafka-brokers, the Kafka topic of a fleet instead.
    Events {
        /// Keep printing new events as they arrive.
        #[arg(long)]
        follow: bool,
        /// Start after this log position (0 = from the beginning).
        #[arg(long, default_value_t = 0, conflicts_with = "kafka_brokers")]
        from: i64,
        /// Read the topic on these Kafka brokers (HOST:PORT[,...]), from its
        /// beginning, instead of the all-in-one's log.
        #[arg(long)]
        kafka_brokers: Option<String>,
        /// The Kafka topic to read.
        #[arg(long, default_value = platform::kafka::DEFAULT_TOPIC, requires = "kafka_brokers")]
        kafka_topic: String,
    },
    /// Rebuild a read model from the event log beside the served one and
    /// swap it in once it has caught up. Safe while the server runs: it
    /// keeps serving the old copy, current, until the swap.
    Rebuild {
        #[arg(value_enum)]
        view: tools::View,
    },
    /// Drive a running system with virtual customers, owners and riders
    /// and report throughput, latency percentiles and event-to-view lag.
    Load(load::Args),
    /// Measure this machine's ceilings (bare axum, SQLite insert+commit).
    Ceilings(load::CeilingsCommand),
    /// Run one service in its own process (the distributed shape): its own
    /// database, events on NATS JetStream, calls to peers over HTTP.
    /// Identity needs HANWHA_TOKEN_KEY_FILE, the others
    /// HANWHA_TOKEN_PUBLIC_KEYS (see `keys generate`).
    Serve(serve::Args),
    /// Print the OpenAPI description of every operation (what the
    /// all-in-one serves at /openapi.json) as JSON.
    Openapi,
    /// Start a local fleet of the distributed shape as child processes:
    /// every service, two order replicas, three delivery replicas and the
    /// gateway, against a NATS server; Ctrl-C stops them all.
    Fleet(fleet::Args),
    /// Signing keys for tokens.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Create accounts, set passwords and disable accounts on identity's
    /// database (e.g. the first admin).
    Users(users::Args),
    /// Probe a running process's /actuator/health once: exit 0 on a 2xx
    /// within the deadline, 1 otherwise (a container's HEALTHCHECK, with
    /// no shell or curl in the image).
    Health(health::Args),
}

impl Cli {
    fn order_config(&self) -> order::OrderConfig {
        order::OrderConfig {
            payment_timeout: Duration::from_millis(self.payment_timeout_ms),
            store_deadline: Duration::from_secs(self.store_deadline_secs),
            sweep_every: Duration::from_millis(self.sweep_ms.max(10)),
        }
    }
}

fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_env("HANWHA_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // A child of a fleet that died has no reader on its stderr: it
        // must still log its drain without a complaint about the pipe
        // (which would panic, stderr being the pipe).
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    let order = cli.order_config();
    match cli.command {
        None => {
            let settings = all_in_one::Settings {
                listen: cli.listen,
                data_dir: cli.data_dir,
                order,
                cors: gateway::Cors::parse(&cli.cors_origins),
                seed_demo: first_start::all_in_one_seeds(cli.demo, cli.no_demo, cli.listen),
                keys: cli.keys,
                trusted_proxies: identity::TrustedProxies::parse(&cli.trusted_proxies)?,
                retention: platform::retention::Periods::from_env()?,
                http: cli.http,
            };
            all_in_one::run(settings, shutdown_signal()).await
        }
        Some(Command::Openapi) => {
            println!("{}", serde_json::to_string_pretty(&openapi::all_in_one())?);
            Ok(())
        }
        Some(Command::Events {
            follow,
            kafka_brokers: Some(brokers),
            kafka_topic,
            ..
        }) => tools::print_topic(brokers, kafka_topic, follow).await,
        Some(Command::Events { follow, from, .. }) => {
            tools::print_events(&cli.data_dir, from, follow).await
        }
        Some(Command::Rebuild { view }) => tools::rebuild(&cli.data_dir, view).await,
        Some(Command::Fleet(args)) => fleet::run(args, cli.data_dir, shutdown_signal()).await,
        Some(Command::Serve(args)) => {
            let common = serve::Common {
                data_dir: cli.data_dir,
                order,
                seed_demo: cli.demo && !cli.no_demo,
                keys: cli.keys,
                trusted_proxies: identity::TrustedProxies::parse(&cli.trusted_proxies)?,
                retention: platform::retention::Periods::from_env()?,
                http: cli.http,
            };
            serve::run(
                args,
                common,
                lifeline::signal_or_fleet_gone(shutdown_signal()),
            )
            .await
        }
        Some(Command::Keys { command }) => keys::run(command),
        Some(Command::Users(args)) => users::run(args, &cli.data_dir).await,
        Some(Command::Load(args)) => Ok(load::run(args).await?),
        Some(Command::Ceilings(args)) => Ok(load::run_ceilings(args).await?),
        Some(Command::Health(args)) => health::run(args, cli.listen).await,
    }
}
