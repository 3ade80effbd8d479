//! A deadline that travels with a synchronous call: the caller says how
//! many milliseconds it will still wait, and the callee does no work that
//! nobody waits for (Payment refuses to charge for an order whose caller
//! already gave up).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tokio::time::Instant;

/// Milliseconds the caller still waits, sent with each attempt.
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

    fn parse(value: &str) -> Deadline {
        match value.trim().parse::<u64>() {
            Ok(ms) => Deadline::within(Duration::from_millis(ms)),
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
    async fn a_budget_of_zero_has_passed_and_none_never_passes() {
        assert!(Deadline::parse("0").passed());
        assert!(!Deadline::parse("5000").passed());
        assert!(!Deadline::none().passed());
        assert_eq!(Deadline::parse("soon"), Deadline::none());
    }

    #[tokio::test]
    async fn a_budget_is_capped() {
        let left = Deadline::parse("999999999").left().expect("a deadline");
        assert!(left <= LONGEST);
    }
}
