//! The address a login comes from, for the throttle: the connection's peer,
//! or behind a trusted proxy what that proxy says it saw. An extractor of
//! the HTTP edge; the throttle itself knows only addresses.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use ipnet::IpNet;

/// The address a request comes from: the peer of the connection, or, when
/// that peer is a trusted proxy (the gateway), the last address it added to
/// `X-Forwarded-For`. None when the server gives no peer address.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

/// The proxies whose `X-Forwarded-For` is believed (HANWHA_TRUSTED_PROXIES):
/// addresses or ranges (`10.42.0.0/16`), since gateway pods in a cluster
/// take a new address from the pod network at each start.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Arc<Vec<IpNet>>);

/// An entry of HANWHA_TRUSTED_PROXIES that is neither an address nor a range.
#[derive(Debug, thiserror::Error)]
#[error("HANWHA_TRUSTED_PROXIES: {0:?} is neither an IP address nor a range such as 10.42.0.0/16")]
pub struct NotAnAddress(String);

impl TrustedProxies {
    pub fn parse(list: &str) -> Result<TrustedProxies, NotAnAddress> {
        let nets = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| NotAnAddress(entry.to_string()))
            })
            .collect::<Result<Vec<IpNet>, _>>()?;
        Ok(TrustedProxies(Arc::new(nets)))
    }

    fn trusts(&self, peer: IpAddr) -> bool {
        // A v4 peer on a dual-stack listener arrives as ::ffff:a.b.c.d.
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&peer))
    }

    pub fn client(&self, parts: &Parts) -> ClientAddress {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded = || {
            // The proxy appends the peer it saw: the last entry is its own.
            let last = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .next_back()?
                .to_str()
                .ok()?;
            last.rsplit(',').next()?.trim().parse::<IpAddr>().ok()
        };
        match peer {
            Some(ip) if self.trusts(ip) => ClientAddress(forwarded().or(Some(ip))),
            other => ClientAddress(other),
        }
    }
}

impl<S> FromRequestParts<S> for ClientAddress
where
    TrustedProxies: axum::extract::FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::FromRef;
        Ok(TrustedProxies::from_ref(state).client(parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let request = |peer: &str| {
            let mut parts = axum::http::Request::post("/auth/login")
                .header("x-forwarded-for", "203.0.113.9, 198.51.100.7")
                .body(())
                .expect("request")
                .into_parts()
                .0;
            parts
                .extensions
                .insert(ConnectInfo(peer.parse::<SocketAddr>().expect("addr")));
            parts
        };
        let trusted = TrustedProxies::parse("127.0.0.1").expect("list");
        assert_eq!(
            trusted.client(&request("127.0.0.1:5000")).0,
            Some("198.51.100.7".parse().expect("ip"))
        );
        assert_eq!(
            trusted.client(&request("192.0.2.1:5000")).0,
            Some("192.0.2.1".parse().expect("ip"))
        );
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(&request("127.0.0.1:5000")).0,
            Some("127.0.0.1".parse().expect("ip"))
        );
    }

    #[test]
    fn a_range_trusts_every_address_in_it_and_no_other() {
        let trusted = TrustedProxies::parse(" 10.42.0.0/16, 192.0.2.7 ,fd00::/8").expect("list");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(trusted.trusts(ip("10.42.3.9")));
        assert!(trusted.trusts(ip("::ffff:10.42.0.1")));
        assert!(trusted.trusts(ip("192.0.2.7")));
        assert!(trusted.trusts(ip("fd00::1")));
        assert!(!trusted.trusts(ip("10.43.0.1")));
        assert!(!trusted.trusts(ip("192.0.2.8")));
        assert!(!trusted.trusts(ip("fe80::1")));
    }

    #[test]
    fn an_entry_that_is_not_an_address_is_refused_by_name() {
        let err = TrustedProxies::parse("10.0.0.1, gateway").expect_err("refused");
        assert!(err.to_string().contains("\"gateway\""), "{err}");
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }
}
