//! Refresh tokens: opaque random strings a client trades for a new access
//! token. Only their SHA-256 is stored (by [`crate::storage`]), each is used
//! once (the trade gives a new one), and logout, a password change or a
//! disable deletes them.

use platform::Db;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::IdentityError;
use crate::storage;

/// How long a session lasts without being used.
pub const REFRESH_TTL_MS: i64 = 14 * 24 * 3600 * 1000;

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Starts a session for `user_id`; returns its refresh token.
pub async fn start(db: &Db, user_id: i64) -> Result<String, IdentityError> {
    let token = new_token();
    let now = platform::clock::now_ms();
    storage::start_session(db, digest(&token), user_id, now, now + REFRESH_TTL_MS).await?;
    Ok(token)
}

/// Trades a refresh token for a new one: the user it belongs to and the
/// new token, or None if it is unknown, used or expired.
pub async fn rotate(db: &Db, token: &str) -> Result<Option<(i64, String)>, IdentityError> {
    let next = new_token();
    let now = platform::clock::now_ms();
    let user = storage::rotate_session(db, digest(token), digest(&next), now, now + REFRESH_TTL_MS)
        .await?;
    Ok(user.map(|user| (user, next)))
}

/// Ends the session of a refresh token (logout).
pub async fn end(db: &Db, token: &str) -> Result<(), IdentityError> {
    storage::end_session(db, digest(token)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_only_their_digest_is_kept() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), a);
        assert_eq!(digest(&a).len(), 64);
    }
}
