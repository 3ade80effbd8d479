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

#[derive(Debug, clap::Args)]
pub struct Args {
    /// NATS server with JetStream.
    #[arg(long, env = "HANWHA_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Directory of the services' databases (default: DATA_DIR/fleet).
    #[arg(long)]
    fleet_dir: Option<PathBuf>,
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

struct Member {
    name: String,
    url: String,
    child: Child,
}

fn start(
    exe: &std::path::Path,
    dir: &std::path::Path,
    secret: &str,
    nats: &str,
    service: &str,
    port: u16,
    extra: &[String],
) -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(exe)
        .args([
            "serve",
            service,
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .args(extra)
        .env("HANWHA_TOKEN_SECRET", secret)
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
    std::thread::spawn(move || for _ in lines {});
    Ok((child, url))
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
    std::fs::create_dir_all(&dir)?;
    let secret = match std::env::var("HANWHA_TOKEN_SECRET") {
        Ok(s) if !s.is_empty() => s,
        _ => {
            use rand::RngCore;
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            hex::encode(bytes)
        }
    };
    let mut members: Vec<Member> = Vec::new();
    let result = launch(
        &exe,
        &dir,
        &secret,
        &args.nats_url,
        args.orders.max(1),
        args.deliveries.max(1),
        args.gateway_port,
        &mut members,
    );
    if let Err(e) = result {
        terminate(&mut members);
        return Err(e);
    }
    println!(
        "hanwha-delivery fleet (databases in {}, events on {}):",
        dir.display(),
        args.nats_url
    );
    for m in &members {
        println!("  {:<14} {}", m.name, m.url);
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
    secret: &str,
    nats: &str,
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
        let (child, url) = start(exe, dir, secret, nats, service, port, extra)?;
        let name = if replica == 0 {
            service.to_string()
        } else {
            format!("{service}-{}", replica + 1)
        };
        match upstreams.iter_mut().find(|(s, _)| s == service) {
            Some((_, urls)) => urls.push(url.clone()),
            None => upstreams.push((service.to_string(), vec![url.clone()])),
        }
        members.push(Member { name, url, child });
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
    let (child, url) = start(exe, dir, secret, nats, "gateway", gateway_port, &extra)?;
    members.push(Member {
        name: "gateway".into(),
        url,
        child,
    });
    Ok(())
}
