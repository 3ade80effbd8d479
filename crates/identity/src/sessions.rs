//! Refresh tokens: opaque random strings a client trades for a new access
//! token. Only their SHA-256 is stored, each is used once (the trade gives a
//! new one), and logout, a password change or a disable deletes them.

use platform::sql;
use platform::{ApiError, Db};
use rand::RngCore;
use sha2::{Digest, Sha256};

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
pub async fn start(db: &Db, user_id: i64) -> Result<String, ApiError> {
    let token = new_token();
    let hash = digest(&token);
    let now = platform::clock::now_ms();
    db.write(move |conn| {
        Box::pin(async move {
            // Expired sessions go when new ones come, so the table stays
            // the size of the live sessions.
            sql::query("DELETE FROM refresh_tokens WHERE expires_at < ?")
                .bind(now)
                .execute(&mut *conn)
                .await?;
            sql::query(
                "INSERT INTO refresh_tokens (token_hash, user_id, expires_at) VALUES (?, ?, ?)",
            )
            .bind(hash)
            .bind(user_id)
            .bind(now + REFRESH_TTL_MS)
            .execute(&mut *conn)
            .await?;
            Ok::<_, ApiError>(())
        })
    })
    .await?;
    Ok(token)
}

/// Trades a refresh token for a new one: the user it belongs to and the
/// new token, or None if it is unknown, used or expired.
pub async fn rotate(db: &Db, token: &str) -> Result<Option<(i64, String)>, ApiError> {
    let old = digest(token);
    let next = new_token();
    let next_hash = digest(&next);
    let now = platform::clock::now_ms();
    let user = db
        .write(move |conn| {
            Box::pin(async move {
                let user: Option<i64> = sql::query_scalar(
                    "SELECT user_id FROM refresh_tokens WHERE token_hash = ? AND expires_at >= ?",
                )
                .bind(&old)
                .bind(now)
                .fetch_optional(&mut *conn)
                .await?;
                let Some(user) = user else {
                    return Ok::<_, ApiError>(None);
                };
                // Whoever deletes the row first wins: a token used twice at
                // once gives one new session, not two.
                let gone = sql::query("DELETE FROM refresh_tokens WHERE token_hash = ?")
                    .bind(&old)
                    .execute(&mut *conn)
                    .await?;
                if gone.rows_affected() == 0 {
                    return Ok(None);
                }
                sql::query(
                    "INSERT INTO refresh_tokens (token_hash, user_id, expires_at) VALUES (?, ?, ?)",
                )
                .bind(next_hash)
                .bind(user)
                .bind(now + REFRESH_TTL_MS)
                .execute(&mut *conn)
                .await?;
                Ok(Some(user))
            })
        })
        .await?;
    Ok(user.map(|user| (user, next)))
}

/// Ends the session of a refresh token (logout).
pub async fn end(db: &Db, token: &str) -> Result<(), ApiError> {
    let hash = digest(token);
    db.write(move |conn| {
        Box::pin(async move {
            sql::query("DELETE FROM refresh_tokens WHERE token_hash = ?")
                .bind(hash)
                .execute(conn)
                .await?;
            Ok::<_, ApiError>(())
        })
    })
    .await
}
