//! A cap on live streams (Server-Sent Events): each holds a connection, a
//! task and a database reader for as long as the client likes, so one user
//! opening hundreds of tabs, or a script, could use up the connection cap
//! alone. A user may hold a few at once, and the process a bounded number;
//! the next one answers 429 until one ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::{ApiError, Principal};

/// Streams a user may hold at once (tabs, devices).
pub const DEFAULT_PER_USER: usize = 5;
/// Streams the process holds at once.
pub const DEFAULT_TOTAL: usize = 512;
/// Seconds a refused client is told to wait.
const RETRY_AFTER_SECS: u64 = 5;

#[derive(Clone)]
pub struct LiveStreams {
    inner: Arc<Inner>,
}

struct Inner {
    per_user: usize,
    total: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    by_user: HashMap<i64, usize>,
    total: usize,
}

/// A place held by one open stream, given back when dropped (the stream
/// ended or its client went away).
pub struct StreamPlace {
    inner: Arc<Inner>,
    user: i64,
}

impl LiveStreams {
    pub fn new(per_user: usize, total: usize) -> LiveStreams {
        LiveStreams {
            inner: Arc::new(Inner {
                per_user: per_user.max(1),
                total: total.max(1),
                open: Mutex::new(Open::default()),
            }),
        }
    }

    /// `HANWHA_STREAMS_PER_USER` and `HANWHA_STREAMS_MAX`; unset or
    /// unparsable keeps the default.
    pub fn from_env() -> LiveStreams {
        let read = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(default)
        };
        LiveStreams::new(
            read("HANWHA_STREAMS_PER_USER", DEFAULT_PER_USER),
            read("HANWHA_STREAMS_MAX", DEFAULT_TOTAL),
        )
    }

    /// A place for `who`'s new stream, or 429.
    pub fn open(&self, who: &Principal) -> Result<StreamPlace, ApiError> {
        let mut open = self.inner.open.lock().unwrap_or_else(|e| e.into_inner());
        let mine = open.by_user.get(&who.user_id).copied().unwrap_or(0);
        if mine >= self.inner.per_user {
            return Err(too_many(format!(
                "at most {} live streams per user are open at once; close one (another tab or device) first",
                self.inner.per_user
            )));
        }
        if open.total >= self.inner.total {
            return Err(too_many(
                "the server holds as many live streams as it can; try again shortly".to_string(),
            ));
        }
        *open.by_user.entry(who.user_id).or_default() += 1;
        open.total += 1;
        Ok(StreamPlace {
            inner: self.inner.clone(),
            user: who.user_id,
        })
    }
}

fn too_many(detail: String) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "Too many live streams",
        detail,
    )
    .retry_after(RETRY_AFTER_SECS)
}

impl Drop for StreamPlace {
    fn drop(&mut self) {
        let mut open = self.inner.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_user.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::Role;

    fn user(id: i64) -> Principal {
        Principal {
            user_id: id,
            username: format!("u{id}"),
            role: Role::Customer,
            store_id: None,
        }
    }

    #[test]
    fn a_user_holds_a_few_streams_and_the_process_a_bounded_number() {
        let streams = LiveStreams::new(2, 3);
        let a1 = streams.open(&user(1)).expect("first");
        let _a2 = streams.open(&user(1)).expect("second");
        let refused = streams.open(&user(1)).err().expect("third refused");
        assert_eq!(refused.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.retry_after, Some(RETRY_AFTER_SECS));
        let _b1 = streams.open(&user(2)).expect("another user");
        assert!(streams.open(&user(3)).is_err(), "the process is full");
        drop(a1);
        assert!(
            streams.open(&user(1)).is_ok(),
            "a closed stream frees its place"
        );
    }
}
