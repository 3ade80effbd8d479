//! Stream tickets: EventSource cannot send an `Authorization` header, so
//! the browser opens its event stream with a ticket in the URL instead of
//! its access token. A ticket is good for one stream route, for 30 seconds,
//! once: URLs end up in logs and histories, and a ticket found there is
//! spent or stale.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How long a ticket may wait to be used.
pub const TICKET_TTL_SECS: i64 = 30;
/// The scope that marks a token as a stream ticket.
pub const STREAM_SCOPE: &str = "stream";
/// Tickets remembered as spent at once; beyond, new tickets are refused
/// until old ones expire (refusing is safe, forgetting is not).
const CAPACITY: usize = 100_000;
/// How long after its expiry a ticket is still remembered: the verifier's
/// leeway on expiry.
const LEEWAY_SECS: i64 = 60;

#[derive(Clone, Debug, Default)]
pub struct SpentTickets {
    /// ticket id -> unix second until which it must be remembered
    spent: Arc<Mutex<HashMap<String, i64>>>,
}

impl SpentTickets {
    /// True the first time a ticket is used (and remembers it); false for a
    /// replay or when the table is full.
    pub fn first_use(&self, jti: &str, expires_at: i64, now: i64) -> bool {
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        if spent.contains_key(jti) {
            return false;
        }
        if spent.len() >= CAPACITY {
            spent.retain(|_, until| *until > now);
            if spent.len() >= CAPACITY {
                return false;
            }
        }
        spent.insert(jti.to_string(), expires_at + LEEWAY_SECS);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_works_once_and_the_table_forgets_expired_tickets() {
        let spent = SpentTickets::default();
        assert!(spent.first_use("a", 100, 80));
        assert!(!spent.first_use("a", 100, 81));
        for n in 0..CAPACITY - 1 {
            assert!(spent.first_use(&n.to_string(), 100, 80));
        }
        // Full, and nothing has expired: refused rather than forgotten.
        assert!(!spent.first_use("b", 100, 90));
        // Later every one has expired and is forgotten.
        assert!(spent.first_use("b", 300, 100 + LEEWAY_SECS + 1));
        assert!(!spent.first_use("b", 300, 200));
    }
}
