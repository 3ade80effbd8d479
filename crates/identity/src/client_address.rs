//! The address a login comes from, for the throttle: the connection's peer,
//! or behind a trusted proxy what that proxy says it saw. An extractor of
//! the HTTP edge; the throttle itself knows only addresses.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

/// The address a request comes from: the peer of the connection, or, when
/// that peer is a trusted proxy (the gateway), the last address it added to
/// `X-Forwarded-For`. None when the server gives no peer address.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

/// The proxies whose `X-Forwarded-For` is believed (HANWHA_TRUSTED_PROXIES).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Arc<Vec<IpAddr>>);

impl TrustedProxies {
    pub fn parse(list: &str) -> Result<TrustedProxies, std::net::AddrParseError> {
        let ips = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<IpAddr>, _>>()?;
        Ok(TrustedProxies(Arc::new(ips)))
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
            Some(ip) if self.0.contains(&ip) => ClientAddress(forwarded().or(Some(ip))),
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
}
