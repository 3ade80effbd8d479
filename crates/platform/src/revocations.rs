//! Users whose access tokens are refused before they expire: a disabled
//! account. Tokens are checked without a call to identity, so this list is
//! what closes the gap between a disable and the end of the tokens' life.
//! An entry is needed only for as long as a token issued before the
//! disable can live; the list is bounded and forgets expired entries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most users remembered at once; beyond, the entry closest to expiry goes
/// (documented: disabling more accounts than this within one token life
/// lets the oldest disables rely on expiry alone).
const CAPACITY: usize = 100_000;

#[derive(Clone, Debug, Default)]
pub struct Revocations {
    /// user id -> (revoked at, unix seconds; remembered until, unix seconds)
    users: Arc<Mutex<HashMap<i64, (i64, i64)>>>,
}

impl Revocations {
    /// Refuses the user's tokens issued at or before `at` (unix seconds),
    /// for `for_secs` (the longest life of a token).
    pub fn revoke(&self, user_id: i64, at: i64, for_secs: i64) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if users.len() >= CAPACITY && !users.contains_key(&user_id) {
            users.retain(|_, (_, until)| *until > at);
            if users.len() >= CAPACITY {
                if let Some(oldest) = users.iter().min_by_key(|(_, (_, until))| *until) {
                    let oldest = *oldest.0;
                    users.remove(&oldest);
                }
            }
        }
        let entry = users.entry(user_id).or_insert((at, at + for_secs));
        *entry = (entry.0.max(at), entry.1.max(at + for_secs));
    }

    /// True if a token of `user_id` issued at `issued_at` is revoked.
    pub fn refuses(&self, user_id: i64, issued_at: i64) -> bool {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users
            .get(&user_id)
            .is_some_and(|(revoked_at, _)| issued_at <= *revoked_at)
    }

    pub fn len(&self) -> usize {
        self.users.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_issued_up_to_the_revocation_are_refused_later_ones_pass() {
        let list = Revocations::default();
        list.revoke(7, 1_000, 900);
        assert!(list.refuses(7, 999));
        assert!(list.refuses(7, 1_000));
        assert!(!list.refuses(7, 1_001));
        assert!(!list.refuses(8, 999));
    }

    #[test]
    fn the_list_stays_bounded_and_forgets_expired_entries_first() {
        let list = Revocations::default();
        for user in 0..CAPACITY as i64 {
            list.revoke(user, 10, 900);
        }
        assert_eq!(list.len(), CAPACITY);
        list.revoke(-1, 2_000, 900);
        // Every earlier entry had expired by 2000 + 0 (10 + 900 < 2000).
        assert_eq!(list.len(), 1);
        assert!(list.refuses(-1, 1_999));
    }
}
