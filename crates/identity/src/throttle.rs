//! Login throttling: after repeated failures for one account or from one
//! address, further attempts are refused with 429 and a Retry-After that
//! doubles with each further failure, before any password is hashed. The
//! memory it takes is bounded: at most `CAPACITY` accounts and addresses
//! are remembered, forgotten once their failures are a window old.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::StatusCode;
use platform::ApiError;

/// Failures are counted within this window from the last one.
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The first refusal lasts this long; each further failure doubles it.
const FIRST_BLOCK: Duration = Duration::from_secs(5);
const LONGEST_BLOCK: Duration = Duration::from_secs(15 * 60);
/// Accounts and addresses remembered at once.
const CAPACITY: usize = 50_000;
/// Failures allowed before the first refusal: an account is one person;
/// an address may be an office behind one router.
const ACCOUNT_FAILURES: u32 = 5;
const ADDRESS_FAILURES: u32 = 20;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attempt {
    Account(String),
    Address(IpAddr),
}

impl Attempt {
    fn allowed_failures(&self) -> u32 {
        match self {
            Attempt::Account(_) => ACCOUNT_FAILURES,
            Attempt::Address(_) => ADDRESS_FAILURES,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

#[derive(Clone, Default)]
pub struct LoginThrottle {
    seen: Arc<Mutex<HashMap<Attempt, Failures>>>,
}

impl LoginThrottle {
    /// Refuses the attempt while any of its keys is blocked; the error
    /// carries how many seconds to wait.
    pub fn check(&self, keys: &[Attempt], now: Instant) -> Result<(), ApiError> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let wait = keys
            .iter()
            .filter_map(|k| seen.get(k)?.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        match wait {
            Some(wait) => Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                "too many failed logins; wait before trying again",
            )
            .retry_after(wait.as_secs().max(1))),
            None => Ok(()),
        }
    }

    /// Counts a failed login against every key.
    pub fn failed(&self, keys: &[Attempt], now: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            if seen.len() >= CAPACITY && !seen.contains_key(key) {
                make_room(&mut seen, now);
            }
            let entry = seen.entry(key.clone()).or_insert(Failures {
                count: 0,
                last: now,
                blocked_until: None,
            });
            if now.duration_since(entry.last) > WINDOW {
                entry.count = 0;
            }
            entry.count += 1;
            entry.last = now;
            let allowed = key.allowed_failures();
            if entry.count >= allowed {
                let doublings = (entry.count - allowed).min(16);
                let block = (FIRST_BLOCK * 2u32.pow(doublings)).min(LONGEST_BLOCK);
                entry.blocked_until = Some(now + block);
            }
        }
    }

    /// A successful login clears the account's failures (not the
    /// address's: one right password does not excuse many wrong ones).
    pub fn succeeded(&self, account: &Attempt) {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(account);
    }

    pub fn remembered(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Forgets what is a window old; if that is not enough, the least recent.
fn make_room(seen: &mut HashMap<Attempt, Failures>, now: Instant) {
    seen.retain(|_, f| {
        now.duration_since(f.last) <= WINDOW || f.blocked_until.is_some_and(|u| u > now)
    });
    if seen.len() >= CAPACITY {
        if let Some(oldest) = seen
            .iter()
            .min_by_key(|(_, f)| f.last)
            .map(|(k, _)| k.clone())
        {
            seen.remove(&oldest);
        }
    }
}

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

    fn account() -> Attempt {
        Attempt::Account("kim".into())
    }

    #[test]
    fn after_five_failures_an_account_waits_and_each_failure_doubles_the_wait() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        for _ in 0..4 {
            throttle.failed(&[account()], t0);
            assert!(throttle.check(&[account()], t0).is_ok());
        }
        throttle.failed(&[account()], t0);
        let refused = throttle.check(&[account()], t0).expect_err("blocked");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.retry_after, Some(5));
        let t1 = t0 + Duration::from_secs(6);
        assert!(throttle.check(&[account()], t1).is_ok());
        throttle.failed(&[account()], t1);
        assert_eq!(
            throttle
                .check(&[account()], t1)
                .expect_err("blocked")
                .retry_after,
            Some(10)
        );
        // Another account is not affected; a window later all is forgiven.
        assert!(throttle
            .check(&[Attempt::Account("lee".into())], t1)
            .is_ok());
        let later = t1 + WINDOW + Duration::from_secs(1);
        throttle.failed(&[account()], later);
        assert!(throttle.check(&[account()], later).is_ok());
    }

    #[test]
    fn memory_stays_bounded_under_many_addresses() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..(CAPACITY as u32 + 1000) {
            throttle.failed(&[Attempt::Address(IpAddr::from(i.to_be_bytes()))], now);
        }
        assert!(throttle.remembered() <= CAPACITY);
    }

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
