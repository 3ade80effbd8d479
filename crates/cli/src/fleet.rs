//! `hanwha-delivery fleet`: a whole local fleet of the distributed shape as
//! child processes — every service, two order replicas, three delivery
//! replicas and the gateway — against the broker it is given (NATS or
//! Kafka, `--transport`). It
//! prints where each one runs and what database it uses, relays each one's
//! output under its name, restarts one that exits (with back-off), and
//! stops them all (each drains) on Ctrl-C or SIGTERM. Its children end with
//! it however it ends (see `lifeline`), and its ports all move with
//! `--port-base`, so two fleets can share a machine.

mod member;
mod relay;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::broker::BrokerArgs;
use crate::keys::FleetKeys;
use crate::serve::Service;
use member::{Member, Spec};
use relay::Relay;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Directory of the services' SQLite databases (default: DATA_DIR/fleet).
    #[arg(long)]
    fleet_dir: Option<PathBuf>,
    /// A PostgreSQL or MySQL/MariaDB server for every service, e.g.
    /// postgres://root@127.0.0.1:5432: each service gets its own database
    /// on it, named hanwha_<service> (created on first start).
    #[arg(long, env = "HANWHA_FLEET_DATABASES")]
    databases: Option<String>,
    /// One service's database, overriding --databases (repeatable), e.g.
    /// --database store=mysql://root@127.0.0.1:3306/hanwha_store. Services
    /// may each use another backend (polyglot).
    #[arg(long = "database", value_name = "SERVICE=URL")]
    database: Vec<String>,
    /// Order replicas.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=MAX_REPLICAS))]
    orders: u16,
    /// Delivery replicas.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=MAX_REPLICAS))]
    deliveries: u16,
    /// The fleet's ports are the 200 from here: each service on its usual
    /// port moved by BASE - 8080 (with 8080: order 8081 … gateway 8088),
    /// its replicas 10 apart (order-2 on 8091), and each member's
    /// management listener 100 above its public port (order on 8181).
    #[arg(long, env = "HANWHA_FLEET_PORT_BASE", default_value_t = 8080,
          value_parser = clap::value_parser!(u16).range(1..=65335))]
    port_base: u16,
    /// Port of the gateway, if not the one the base gives.
    #[arg(long)]
    gateway_port: Option<u16>,
}

/// Replicas of a service; with ten, replicas stay inside the block of
/// ports the base gives.
const MAX_REPLICAS: i64 = 9;

/// Where a fleet's members listen (see `--port-base`).
#[derive(Debug, Clone, Copy)]
struct Ports {
    base: u16,
}

impl Ports {
    fn public(self, service: Service, replica: u16) -> u16 {
        self.base + (service.default_port() - 8080) + 10 * replica
    }

    fn management(self, service: Service, replica: u16) -> u16 {
        self.public(service, replica) + 100
    }
}

/// Where each service keeps its data: SQLite under the fleet directory
/// unless a server or a URL of its own is given.
#[derive(Debug, Default)]
struct Databases {
    server: Option<String>,
    own: Vec<(String, String)>,
}

impl Databases {
    fn parse(server: Option<String>, own: &[String]) -> anyhow::Result<Databases> {
        let mut parsed = Vec::new();
        for spec in own {
            let (service, url) = spec
                .split_once('=')
                .with_context(|| format!("--database {spec}: expected SERVICE=URL"))?;
            url.parse::<platform::Location>()?;
            parsed.push((service.to_string(), url.to_string()));
        }
        if let Some(server) = &server {
            format!("{}/x", server.trim_end_matches('/')).parse::<platform::Location>()?;
        }
        Ok(Databases {
            server,
            own: parsed,
        })
    }

    /// The database URL of `service`, if it is not on SQLite.
    fn url(&self, service: &str) -> Option<String> {
        if service == "gateway" {
            return None;
        }
        Some(match self.own.iter().find(|(s, _)| s == service) {
            Some((_, url)) => url.clone(),
            None => format!(
                "{}/hanwha_{service}",
                self.server.as_deref()?.trim_end_matches('/')
            ),
        })
    }

    /// The `--database-url` flag for `service`, if it is not on SQLite.
    fn flag(&self, service: &str) -> Option<String> {
        self.url(service).map(|url| format!("--database-url={url}"))
    }

    /// Where `service` keeps its data, as its banner says it (no
    /// password): the server database, or the SQLite file `serve` opens.
    fn shown(&self, service: &str, dir: &Path) -> anyhow::Result<Option<String>> {
        if service == "gateway" {
            return Ok(None);
        }
        let location = match self.url(service) {
            Some(url) => url.parse()?,
            None => platform::Location::Sqlite(dir.join(format!("{service}.db"))),
        };
        Ok(Some(location.to_string()))
    }
}

/// What a fleet runs and how: the members in their starting order,
/// the gateway last.
struct Plan<'a> {
    args: &'a Args,
    dir: &'a Path,
    keys: &'a FleetKeys,
    databases: &'a Databases,
    ports: Ports,
}

impl Plan<'_> {
    fn replicas(&self, service: Service) -> u16 {
        match service.name() {
            "order" => self.args.orders,
            "delivery" => self.args.deliveries,
            _ => 1,
        }
    }

    fn url(&self, service: Service, replica: u16) -> String {
        let port = match (service, self.args.gateway_port) {
            (Service::Gateway, Some(port)) => port,
            _ => self.ports.public(service, replica),
        };
        format!("http://127.0.0.1:{port}")
    }

    fn members(&self) -> anyhow::Result<Vec<Spec>> {
        let services = Service::ALL.into_iter().filter(|s| *s != Service::Gateway);
        let mut specs = Vec::new();
        for service in services.clone() {
            for replica in 0..self.replicas(service) {
                specs.push(self.member(service, replica, self.own_flags(service))?);
            }
        }
        let upstreams = services
            .map(|service| {
                let urls: Vec<String> = (0..self.replicas(service))
                    .map(|r| self.url(service, r))
                    .collect();
                format!("--upstream={}={}", service.name(), urls.join(","))
            })
            .collect();
        specs.push(self.member(Service::Gateway, 0, upstreams)?);
        Ok(specs)
    }

    fn own_flags(&self, service: Service) -> Vec<String> {
        let mut flags = self.args.broker.member_flags();
        flags.extend(self.databases.flag(service.name()));
        let Service::Of(description) = service else {
            return flags;
        };
        // A local dev tool: its users log in with the demo accounts.
        if description.seed_demo.is_some() {
            flags.push("--demo".into());
        }
        // The services it calls, at their first replica (`--payment-url`).
        for callee in description.calls {
            if let Some(peer) = Service::named(callee) {
                flags.push(format!("--{callee}-url={}", self.url(peer, 0)));
            }
        }
        flags
    }

    fn member(&self, service: Service, replica: u16, flags: Vec<String>) -> anyhow::Result<Spec> {
        let name = match replica {
            0 => service.name().to_string(),
            r => format!("{}-{}", service.name(), r + 1),
        };
        let url = self.url(service, replica);
        let management = format!("127.0.0.1:{}", self.ports.management(service, replica));
        let mut args = vec![
            "serve".to_string(),
            service.name().to_string(),
            format!("--addr={}", url.trim_start_matches("http://")),
            format!("--management-listen={management}"),
            format!("--data-dir={}", self.dir.display()),
        ];
        args.extend(flags);
        Ok(Spec {
            name,
            url,
            management: format!("http://{management}"),
            database: self.databases.shown(service.name(), self.dir)?,
            args,
            env: self.keys.env_for(service.name()),
            plain_env: vec![
                // The gateway on this machine names the client for throttling.
                ("HANWHA_TRUSTED_PROXIES", "127.0.0.1".into()),
                (
                    "HANWHA_IDENTITY_URL",
                    self.url(Service::Of(&identity::SERVICE), 0),
                ),
                ("HANWHA_NATS_URL", self.args.broker.nats_url.clone()),
            ],
        })
    }
}

/// How long members may drain when the fleet stops.
const DRAIN: Duration = Duration::from_secs(15);

fn stop_all(members: &mut [Member]) {
    for m in members.iter_mut() {
        m.ask_to_stop();
    }
    let deadline = Instant::now() + DRAIN;
    for m in members.iter_mut() {
        m.stop_by(deadline);
    }
}

pub async fn run(
    args: Args,
    data_dir: PathBuf,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the hanwha-delivery binary")?;
    let dir = args
        .fleet_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("fleet"));
    platform::files::private_dir(&dir)?;
    let keys = FleetKeys::in_dir(&dir)?;
    let databases = Databases::parse(args.databases.clone(), &args.database)?;
    let specs = Plan {
        args: &args,
        dir: &dir,
        keys: &keys,
        databases: &databases,
        ports: Ports {
            base: args.port_base,
        },
    }
    .members()?;
    let relay = Relay::to_stderr();
    let mut members: Vec<Member> = Vec::new();
    for spec in specs {
        match Member::start(spec, &exe, &relay) {
            Ok(member) => members.push(member),
            Err(e) => {
                stop_all(&mut members);
                return Err(e);
            }
        }
    }
    println!("hanwha-delivery fleet ({}):", args.broker.describe());
    for m in &members {
        let s = &m.spec;
        println!(
            "  {:<14} {:<24} management {:<24} pid {:<8} {}",
            s.name,
            s.url,
            s.management,
            m.pid().unwrap_or_default(),
            s.database.as_deref().unwrap_or("(no database)")
        );
    }
    println!("A member that exits is restarted; Ctrl-C stops them all.");
    tokio::pin!(stop);
    let mut every = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = every.tick() => {
                for m in members.iter_mut() {
                    m.supervise(&exe, &relay);
                }
            }
        }
    }
    stop_all(&mut members);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_gets_its_own_database() {
        let dbs = Databases::parse(
            Some("postgres://root@127.0.0.1:5432/".into()),
            &["store=mariadb://root@127.0.0.1:3306/shop".into()],
        )
        .expect("valid");
        assert_eq!(
            dbs.flag("order").as_deref(),
            Some("--database-url=postgres://root@127.0.0.1:5432/hanwha_order")
        );
        assert_eq!(
            dbs.flag("store").as_deref(),
            Some("--database-url=mariadb://root@127.0.0.1:3306/shop")
        );
        assert_eq!(dbs.flag("gateway"), None);
        let sqlite = Databases::parse(None, &[]).expect("valid");
        assert_eq!(sqlite.flag("order"), None);
        assert!(Databases::parse(None, &["store".into()]).is_err());
        assert!(Databases::parse(Some("redis://x".into()), &[]).is_err());
    }

    #[test]
    fn every_port_moves_with_the_base_and_stays_in_its_block() {
        let usual = Ports { base: 8080 };
        assert_eq!(usual.public(Service::Of(&order::SERVICE), 0), 8081);
        assert_eq!(usual.public(Service::Gateway, 0), 8088);
        assert_eq!(usual.public(Service::Of(&order::SERVICE), 1), 8091);
        assert_eq!(usual.management(Service::Of(&order::SERVICE), 1), 8191);
        let other = Ports { base: 20000 };
        let mut seen = std::collections::HashSet::new();
        for service in Service::ALL {
            for replica in 0..MAX_REPLICAS as u16 {
                for port in [
                    other.public(service, replica),
                    other.management(service, replica),
                ] {
                    assert!((20000..20200).contains(&port), "{port}");
                    assert!(seen.insert(port), "{port} twice");
                }
            }
        }
    }
}
