//! Login throttling, a rule of the domain: after repeated failures for one
//! account or from one address, further attempts are refused (429 with a
//! Retry-After at the HTTP edge) for a wait that doubles with each further
//! failure, before any password is hashed. The
//! memory it takes is bounded: at most `CAPACITY` accounts and addresses
//! are remembered, forgotten once their failures are a window old.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::IdentityError;

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
    pub fn check(&self, keys: &[Attempt], now: Instant) -> Result<(), IdentityError> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let wait = keys
            .iter()
            .filter_map(|k| seen.get(k)?.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        match wait {
            Some(wait) => Err(IdentityError::Throttled {
                wait_secs: wait.as_secs().max(1),
            }),
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
        let wait = |r: Result<(), IdentityError>| match r {
            Err(IdentityError::Throttled { wait_secs }) => Some(wait_secs),
            _ => None,
        };
        assert_eq!(wait(throttle.check(&[account()], t0)), Some(5));
        let t1 = t0 + Duration::from_secs(6);
        assert!(throttle.check(&[account()], t1).is_ok());
        throttle.failed(&[account()], t1);
        assert_eq!(wait(throttle.check(&[account()], t1)), Some(10));
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
}
