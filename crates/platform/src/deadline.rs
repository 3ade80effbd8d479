//! A deadline that travels with a synchronous call: the caller says when it
//! stops waiting, and the callee does no work that nobody waits for
//! (Payment refuses to charge for an order whose caller already gave up).
//!
//! The deadline is a wall-clock time, not a budget: a budget would start
//! counting only when the callee reads the request, and a callee that was
//! frozen (or slow to accept) reads it long after it was sent. The services
//! of one deployment keep their clocks in step (NTP); a skew of a few
//! milliseconds moves the deadline by as much.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tokio::time::Instant;

/// When the caller stops waiting, in milliseconds since the Unix epoch.
pub const HEADER: &str = "x-hanwha-deadline-ms";
/// The longest budget a caller may grant; a larger value is cut to this.
const LONGEST: Duration = Duration::from_secs(60);

/// When the caller stops waiting; `None` when it did not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub Option<Instant>);

impl Deadline {
    pub fn within(budget: Duration) -> Deadline {
        Deadline(Some(Instant::now() + budget.min(LONGEST)))
    }

    pub fn none() -> Deadline {
        Deadline(None)
    }

    pub fn passed(&self) -> bool {
        self.0.is_some_and(|at| Instant::now() >= at)
    }

    /// What is left of it, for the header of the next call.
    pub fn left(&self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// The header's value for a call that may take `left` more.
    pub fn header_value(left: Duration) -> String {
        (crate::clock::now_ms() + left.as_millis() as i64).to_string()
    }

    fn parse(value: &str) -> Deadline {
        Deadline::parse_at(value, crate::clock::now_ms())
    }

    fn parse_at(value: &str, now_ms: i64) -> Deadline {
        match value.trim().parse::<i64>() {
            Ok(at) => Deadline::within(Duration::from_millis(
                at.saturating_sub(now_ms).max(0) as u64
            )),
            Err(_) => Deadline::none(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Deadline {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts
            .headers
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .map(Deadline::parse)
            .unwrap_or_else(Deadline::none))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deadline_in_the_past_has_passed_and_none_never_passes() {
        let now = 1_800_000_000_000;
        assert!(Deadline::parse_at("1799999999000", now).passed());
        assert!(Deadline::parse_at(&now.to_string(), now).passed());
        assert!(!Deadline::parse_at("1800000005000", now).passed());
        assert!(!Deadline::none().passed());
        assert_eq!(Deadline::parse("soon"), Deadline::none());
    }

    #[tokio::test]
    async fn a_call_read_late_sees_its_deadline_passed() {
        // Sent with 900 ms to go, read 2 s later by a callee that was frozen.
        let sent_at = 1_800_000_000_000;
        let value = (sent_at + 900).to_string();
        assert!(Deadline::parse_at(&value, sent_at + 2_000).passed());
    }

    #[tokio::test]
    async fn a_far_deadline_is_capped() {
        let left = Deadline::parse_at("9999999999999", 0)
            .left()
            .expect("a deadline");
        assert!(left <= LONGEST);
    }
}
