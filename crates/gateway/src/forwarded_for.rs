//! The gateway names the client to the services behind it: it appends the
//! address of the connection's peer to `X-Forwarded-For`. Identity throttles
//! logins by that last entry when it trusts the gateway
//! (HANWHA_TRUSTED_PROXIES); earlier entries came from the client and are
//! not believed.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};

const HEADER: &str = "x-forwarded-for";

/// Appends the peer's address, if the server gives it, to the forwarded
/// headers.
pub fn append(parts: &Parts, headers: &mut HeaderMap) {
    let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
        return;
    };
    let before: Vec<&str> = parts
        .headers
        .get_all(HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let value = if before.is_empty() {
        peer.ip().to_string()
    } else {
        format!("{}, {}", before.join(", "), peer.ip())
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(HEADER, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_comes_last_after_what_the_client_said() {
        let mut parts = axum::http::Request::post("/auth/login")
            .header(HEADER, "1.2.3.4")
            .body(())
            .expect("request")
            .into_parts()
            .0;
        let mut headers = HeaderMap::new();
        append(&parts, &mut headers);
        assert!(headers.get(HEADER).is_none(), "no peer, nothing added");
        parts.extensions.insert(ConnectInfo(
            "198.51.100.7:5000".parse::<SocketAddr>().expect("addr"),
        ));
        append(&parts, &mut headers);
        assert_eq!(headers[HEADER], "1.2.3.4, 198.51.100.7");
    }
}
