//! `hanwha-delivery health`: the container's HEALTHCHECK (and a Kubernetes
//! exec probe) without a shell or curl in the image. It asks the process
//! this container runs for `/actuator/health` and exits 0 only on a 2xx
//! within the deadline, so a frozen process fails the check instead of
//! hanging it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The URL to probe. By default `/actuator/health` on the address the
    /// process listens on, read from the same environment it reads
    /// (HANWHA_SERVICE_ADDR for `serve`, else HANWHA_LISTEN), with a
    /// wildcard address probed on loopback.
    #[arg(long, env = "HANWHA_HEALTH_URL")]
    url: Option<String>,
    /// `serve`'s listen address, when the process is a `serve` one.
    #[arg(long = "addr", env = "HANWHA_SERVICE_ADDR")]
    service_addr: Option<SocketAddr>,
    /// Milliseconds the whole probe may take (connect, answer, body).
    #[arg(long, env = "HANWHA_HEALTH_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
}

/// Probes once; an error (no answer in time, not 2xx) exits non-zero.
pub async fn run(args: Args, listen: SocketAddr) -> anyhow::Result<()> {
    let url = args
        .url
        .unwrap_or_else(|| default_url(args.service_addr.unwrap_or(listen)));
    let http = reqwest::Client::builder()
        // A proxy from the environment must not stand between a probe and
        // the process beside it.
        .no_proxy()
        .timeout(Duration::from_millis(args.timeout_ms))
        .build()
        .context("building the HTTP client")?;
    let answer = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("{url} did not answer"))?;
    let status = answer.status();
    let body = answer
        .text()
        .await
        .with_context(|| format!("{url} did not finish its answer"))?;
    anyhow::ensure!(status.is_success(), "{url} answered {status}: {body}");
    println!("{body}");
    Ok(())
}

/// `/actuator/health` on `listen`; a wildcard address is reached on
/// loopback, which it includes.
fn default_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!(
        "http://{}/actuator/health",
        SocketAddr::new(ip, listen.port())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listener_is_probed_on_loopback() {
        assert_eq!(
            default_url("0.0.0.0:8080".parse().expect("addr")),
            "http://127.0.0.1:8080/actuator/health"
        );
        assert_eq!(
            default_url("[::]:8081".parse().expect("addr")),
            "http://[::1]:8081/actuator/health"
        );
        assert_eq!(
            default_url("10.1.2.3:8088".parse().expect("addr")),
            "http://10.1.2.3:8088/actuator/health"
        );
    }
}
