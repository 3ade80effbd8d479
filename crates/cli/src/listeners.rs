//! A process's two listeners: the public one (the API, the probes, and the
//! operations for an admin's token) and the management one (the probes and
//! the operations with no token: marking the process down or up, metrics),
//! bound to loopback unless configured otherwise, so that only someone on
//! the machine, or on the network an operator chose, reaches it. Both are
//! served by `platform::server`, with its timeouts and connection cap.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use platform::actuator::Actuator;
use platform::server::Limits;
use platform::shutdown::shutdown_pair;

/// Connections the management listener serves at once: a few operators
/// and a metrics scraper.
const MANAGEMENT_CONNECTIONS: usize = 32;

#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Address of the management listener: `PUT /actuator/down|up` and
    /// `GET /metrics` with no token (and the probes). Loopback by default,
    /// on a free port printed at start; give a port to fix it.
    #[arg(
        long,
        env = "HANWHA_MANAGEMENT_LISTEN",
        default_value = "127.0.0.1:0",
        global = true
    )]
    pub management_listen: SocketAddr,
    /// Seconds a client may take to send a request's headers; also how
    /// long a keep-alive connection may wait for its next request.
    #[arg(long, env = "HANWHA_HEADER_TIMEOUT_SECS", default_value_t = 10, global = true,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_secs: u64,
    /// Seconds a client may take to send a request's body.
    #[arg(long, env = "HANWHA_BODY_TIMEOUT_SECS", default_value_t = 30, global = true,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_secs: u64,
    /// Seconds a connection may stay open with no byte moving and no
    /// request being handled (e.g. a client that stopped reading).
    #[arg(long, env = "HANWHA_IDLE_TIMEOUT_SECS", default_value_t = 60, global = true,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_secs: u64,
    /// Client connections served at once; more wait to be accepted
    /// (default: three quarters of the open-file limit, 768 under 1,024).
    #[arg(long, env = "HANWHA_MAX_CONNECTIONS", global = true,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
}

impl HttpArgs {
    pub fn limits(&self) -> Limits {
        let defaults = Limits::default();
        Limits {
            header_read: Duration::from_secs(self.header_timeout_secs),
            body_read: Duration::from_secs(self.body_timeout_secs),
            idle: Duration::from_secs(self.idle_timeout_secs),
            max_connections: self
                .max_connections
                .map(|n| n as usize)
                .unwrap_or(defaults.max_connections),
            drain: defaults.drain,
        }
    }
}

/// What a process serves, and where.
pub struct Listeners {
    pub public: SocketAddr,
    pub app: Router,
    /// The probes and operations, served without a token on the
    /// management listener.
    pub management: Router,
}

/// Serves both listeners until the shutdown signal: ready once listening
/// (the banner's first line tells a supervisor where, the line after the
/// banner where the management listener is), not ready from the signal on while
/// in-flight requests finish.
pub async fn serve_until_shutdown(
    listeners: Listeners,
    http: &HttpArgs,
    actuator: &Actuator,
    banner: impl FnOnce(SocketAddr) -> String,
    shutdown_signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let public = tokio::net::TcpListener::bind(listeners.public)
        .await
        .with_context(|| format!("binding {}", listeners.public))?;
    let management = tokio::net::TcpListener::bind(http.management_listen)
        .await
        .with_context(|| format!("binding the management listener {}", http.management_listen))?;
    let addr = public.local_addr()?;
    let management_addr = management.local_addr()?;
    if !management_addr.ip().is_loopback() {
        tracing::warn!(%management_addr, "the management listener is reachable from other machines: anyone who reaches it can mark this process down");
    }
    actuator.set_ready(true);
    // Scripts and tests read the first line to learn the port.
    println!("{}", banner(addr));
    println!("hanwha-delivery management on http://{management_addr} (PUT /actuator/down|up, GET /metrics)");
    let (trigger, stop) = shutdown_pair();
    let draining = actuator.clone();
    tokio::spawn(async move {
        shutdown_signal.await;
        draining.set_ready(false);
        tracing::info!("draining in-flight requests");
        trigger.trigger();
    });
    let limits = http.limits();
    let management_limits = Limits {
        max_connections: MANAGEMENT_CONNECTIONS,
        ..limits.clone()
    };
    let until_stopped = |mut stop: platform::shutdown::Shutdown| async move { stop.wait().await };
    let (public, management) = tokio::join!(
        platform::server::serve(public, listeners.app, limits, until_stopped(stop.clone())),
        platform::server::serve(
            management,
            listeners.management,
            management_limits,
            until_stopped(stop)
        ),
    );
    public?;
    management?;
    Ok(())
}
