//! `hanwha-delivery fleet`: a whole local fleet of the distributed shape as
//! child processes — every service, two order replicas, three delivery
//! replicas and the gateway — against the NATS server it is given. It
//! prints where each one runs and stops them all (SIGTERM, so each drains)
//! on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::keys::FleetKeys;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// NATS server with JetStream.
    #[arg(long, env = "HANWHA_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
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
    #[arg(long, default_value_t = 2)]
    orders: u16,
    /// Delivery replicas.
    #[arg(long, default_value_t = 3)]
    deliveries: u16,
    /// Port of the gateway; services take their usual ports and replicas
    /// the same port plus 1000 per replica.
    #[arg(long, default_value_t = 8088)]
    gateway_port: u16,
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

    /// The `--database-url` flag for `service`, if it is not on SQLite.
    fn flag(&self, service: &str) -> Option<String> {
        if service == "gateway" {
            return None;
        }
        let url = match self.own.iter().find(|(s, _)| s == service) {
            Some((_, url)) => url.clone(),
            None => format!(
                "{}/hanwha_{service}",
                self.server.as_deref()?.trim_end_matches('/')
            ),
        };
        Some(format!("--database-url={url}"))
    }
}

struct Member {
    name: String,
    url: String,
    management: String,
    child: Child,
}

#[allow(clippy::too_many_arguments)]
fn start(
    exe: &std::path::Path,
    dir: &std::path::Path,
    keys: &FleetKeys,
    nats: &str,
    databases: &Databases,
    service: &str,
    port: u16,
    extra: &[String],
) -> anyhow::Result<(Child, String, String)> {
    let mut child = Command::new(exe)
        .args([
            "serve",
            service,
            "--addr",
            &format!("127.0.0.1:{port}"),
            // Each member its own free loopback port (printed below), even
            // if HANWHA_MANAGEMENT_LISTEN names one fixed port.
            "--management-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir)
        .args(extra)
        .args(databases.flag(service))
        // A local dev tool: its users log in with the demo accounts.
        .args(matches!(service, "identity" | "store").then_some("--demo"))
        .envs(keys.env_for(service))
        // The gateway on this machine names the client for throttling.
        .env("HANWHA_TRUSTED_PROXIES", "127.0.0.1")
        .env("HANWHA_IDENTITY_URL", "http://127.0.0.1:8087")
        .env("HANWHA_NATS_URL", nats)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {service}"))?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().with_context(|| {
        format!("{service} on port {port} exited before it listened (is the port free?)")
    })??;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .map(str::to_string)
        .with_context(|| format!("{service} printed no address: {line}"))?;
    // The second line names the management listener: the operator's
    // door for the failover drill (`PUT /actuator/down`) and metrics.
    let management = lines
        .next()
        .and_then(Result::ok)
        .and_then(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(str::to_string)
        })
        .unwrap_or_default();
    std::thread::spawn(move || for _ in lines {});
    Ok((child, url, management))
}

fn terminate(members: &mut [Member]) {
    for m in members.iter() {
        // SIGTERM lets each service drain its requests and outbox.
        let _ = Command::new("kill")
            .args(["-TERM", &m.child.id().to_string()])
            .status();
    }
    for m in members.iter_mut() {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            match m.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = m.child.kill();
                    let _ = m.child.wait();
                    break;
                }
            }
        }
    }
}

pub async fn run(
    args: Args,
    data_dir: PathBuf,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the hanwha-delivery binary")?;
    let dir = args.fleet_dir.unwrap_or_else(|| data_dir.join("fleet"));
    platform::files::private_dir(&dir)?;
    let keys = FleetKeys::in_dir(&dir)?;
    let databases = Databases::parse(args.databases.clone(), &args.database)?;
    let mut members: Vec<Member> = Vec::new();
    let result = launch(
        &exe,
        &dir,
        &keys,
        &args.nats_url,
        &databases,
        args.orders.max(1),
        args.deliveries.max(1),
        args.gateway_port,
        &mut members,
    );
    if let Err(e) = result {
        terminate(&mut members);
        return Err(e);
    }
    let storage = match &databases.server {
        Some(server) => format!("databases hanwha_<service> on {server}"),
        None => format!("SQLite databases in {}", dir.display()),
    };
    println!(
        "hanwha-delivery fleet ({storage}, events on {}):",
        args.nats_url
    );
    for m in &members {
        println!("  {:<14} {:<24} management {}", m.name, m.url, m.management);
    }
    println!("Ctrl-C stops them all.");
    stop.await;
    terminate(&mut members);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn launch(
    exe: &std::path::Path,
    dir: &std::path::Path,
    keys: &FleetKeys,
    nats: &str,
    databases: &Databases,
    orders: u16,
    deliveries: u16,
    gateway_port: u16,
    members: &mut Vec<Member>,
) -> anyhow::Result<()> {
    let mut upstreams: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |members: &mut Vec<Member>,
                   service: &str,
                   port: u16,
                   replica: u16,
                   extra: &[String]|
     -> anyhow::Result<()> {
        let (child, url, management) =
            start(exe, dir, keys, nats, databases, service, port, extra)?;
        let name = if replica == 0 {
            service.to_string()
        } else {
            format!("{service}-{}", replica + 1)
        };
        match upstreams.iter_mut().find(|(s, _)| s == service) {
            Some((_, urls)) => urls.push(url.clone()),
            None => upstreams.push((service.to_string(), vec![url.clone()])),
        }
        members.push(Member {
            name,
            url,
            management,
            child,
        });
        Ok(())
    };
    for (service, port) in [
        ("payment", 8084),
        ("store", 8085),
        ("identity", 8087),
        ("status", 8083),
        ("notification", 8086),
    ] {
        add(members, service, port, 0, &[])?;
    }
    let payment = format!("--payment-url={}", members[0].url);
    let store = format!("--store-url={}", members[1].url);
    for r in 0..deliveries {
        add(members, "delivery", 8082 + 1000 * r, r, &[])?;
    }
    for r in 0..orders {
        add(
            members,
            "order",
            8081 + 1000 * r,
            r,
            &[payment.clone(), store.clone()],
        )?;
    }
    let mut extra = Vec::new();
    for (service, urls) in &upstreams {
        extra.push(format!("--upstream={service}={}", urls.join(",")));
    }
    let (child, url, management) = start(
        exe,
        dir,
        keys,
        nats,
        databases,
        "gateway",
        gateway_port,
        &extra,
    )?;
    members.push(Member {
        name: "gateway".into(),
        url,
        management,
        child,
    });
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
}
