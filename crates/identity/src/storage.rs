//! Identity's storage: every SQL statement of the service, on the accounts
//! (`users`) and the sessions (`refresh_tokens`, by the SHA-256 of each
//! refresh token only). Rows are read by column name, and a stored role
//! this code does not know is an error, never a silent default.

use contracts::Role;
use platform::sql;
use platform::Db;

use crate::error::IdentityError;

/// What a login needs to know about an account.
pub struct Account {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub store_id: Option<i64>,
    pub disabled: bool,
}

const COLUMNS: &str = "id, username, password_hash, role, store_id, disabled_at";

fn from_row(row: &sql::Row) -> Result<Account, sqlx::Error> {
    let role: String = row.try_get("role")?;
    let disabled_at: Option<i64> = row.try_get("disabled_at")?;
    Ok(
        platform::from_columns!(row => Account { id, username, password_hash, store_id },
            role: Role::parse(&role).ok_or_else(|| sql::unknown_value("role", &role))?,
            disabled: disabled_at.is_some(),
        ),
    )
}

pub async fn by_name(db: &Db, username: &str) -> Result<Option<Account>, IdentityError> {
    let row = sql::query(format!("SELECT {COLUMNS} FROM users WHERE username = ?"))
        .bind(username)
        .fetch_optional(db)
        .await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

pub async fn by_id(db: &Db, id: i64) -> Result<Option<Account>, IdentityError> {
    let row = sql::query(format!("SELECT {COLUMNS} FROM users WHERE id = ?"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

pub async fn list(db: &Db) -> Result<Vec<Account>, IdentityError> {
    let rows = sql::query(format!(
        "SELECT {COLUMNS} FROM users ORDER BY id LIMIT 10000"
    ))
    .fetch_all(db)
    .await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

/// Creates an account; [`IdentityError::Taken`] if the name is.
pub async fn create(
    db: &Db,
    username: String,
    password_hash: String,
    role: Role,
    store_id: Option<i64>,
) -> Result<i64, IdentityError> {
    db.write(move |conn| {
        Box::pin(async move {
            let insert = sql::insert_ignoring_duplicates(
                conn.backend(),
                "INSERT INTO users (username, password_hash, role, store_id) VALUES (?, ?, ?, ?)",
                "(username)",
            );
            let inserted: Option<i64> = sql::query_scalar(format!("{insert} RETURNING id"))
                .bind(&username)
                .bind(password_hash)
                .bind(role.as_str())
                .bind(store_id)
                .fetch_optional(conn)
                .await?;
            inserted.ok_or(IdentityError::Taken(username))
        })
    })
    .await
}

/// Creates accounts with the given ids and hashes, in one commit.
pub async fn insert_with_ids(
    db: &Db,
    accounts: Vec<(i64, &'static str, String, Role, Option<i64>)>,
) -> Result<(), IdentityError> {
    db.write(move |tx| {
        Box::pin(async move {
            for (id, username, hash, role, store_id) in accounts {
                sql::query("INSERT INTO users (id, username, password_hash, role, store_id) VALUES (?, ?, ?, ?, ?)")
                    .bind(id)
                    .bind(username)
                    .bind(hash)
                    .bind(role.as_str())
                    .bind(store_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok::<_, IdentityError>(())
        })
    })
    .await
}

/// Ends every session of an account, in the caller's transaction.
async fn end_sessions_of(conn: &mut platform::Conn, user_id: i64) -> Result<(), sqlx::Error> {
    sql::query("DELETE FROM refresh_tokens WHERE user_id = ?")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets a new password hash and ends every session of the account; false
/// if there is no such account.
pub async fn set_password(db: &Db, id: i64, password_hash: String) -> Result<bool, IdentityError> {
    db.write(move |conn| {
        Box::pin(async move {
            let done = sql::query("UPDATE users SET password_hash = ? WHERE id = ?")
                .bind(password_hash)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            end_sessions_of(conn, id).await?;
            Ok::<_, IdentityError>(done.rows_affected() > 0)
        })
    })
    .await
}

/// Disables an account at `at_ms` and ends every session of it; false if
/// there is no such account.
pub async fn disable(db: &Db, id: i64, at_ms: i64) -> Result<bool, IdentityError> {
    db.write(move |conn| {
        Box::pin(async move {
            let exists: Option<i64> = sql::query_scalar("SELECT id FROM users WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
            if exists.is_none() {
                return Ok(false);
            }
            sql::query("UPDATE users SET disabled_at = ? WHERE id = ? AND disabled_at IS NULL")
                .bind(at_ms)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            end_sessions_of(conn, id).await?;
            Ok::<_, IdentityError>(true)
        })
    })
    .await
}

/// Accounts disabled since `since_ms`, with when: their tokens may still
/// be alive.
pub async fn disabled_since(db: &Db, since_ms: i64) -> Result<Vec<(i64, i64)>, IdentityError> {
    let rows = sql::query("SELECT id, disabled_at FROM users WHERE disabled_at >= ?")
        .bind(since_ms)
        .fetch_all(db)
        .await?;
    let disabled = |r: &sql::Row| Ok((r.try_get("id")?, r.try_get("disabled_at")?));
    Ok(rows
        .iter()
        .map(disabled)
        .collect::<Result<_, sqlx::Error>>()?)
}

pub async fn count(db: &Db) -> Result<i64, IdentityError> {
    Ok(sql::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(db)
        .await?)
}

/// Enabled admin accounts.
pub async fn admins(db: &Db) -> Result<i64, IdentityError> {
    Ok(
        sql::query_scalar(
            "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL",
        )
        .fetch_one(db)
        .await?,
    )
}

/// Keeps a new session: the digest of its refresh token, until
/// `expires_at`. Expired sessions go when new ones come, so the table
/// stays the size of the live sessions.
pub async fn start_session(
    db: &Db,
    token_hash: String,
    user_id: i64,
    now: i64,
    expires_at: i64,
) -> Result<(), IdentityError> {
    db.write(move |conn| {
        Box::pin(async move {
            sql::query("DELETE FROM refresh_tokens WHERE expires_at < ?")
                .bind(now)
                .execute(&mut *conn)
                .await?;
            sql::query(
                "INSERT INTO refresh_tokens (token_hash, user_id, expires_at) VALUES (?, ?, ?)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(expires_at)
            .execute(&mut *conn)
            .await?;
            Ok::<_, IdentityError>(())
        })
    })
    .await
}

/// Replaces the session of digest `old` (if alive at `now`) with one of
/// digest `next`, until `expires_at`: the account it belongs to, or None
/// if it is unknown, used or expired.
pub async fn rotate_session(
    db: &Db,
    old: String,
    next: String,
    now: i64,
    expires_at: i64,
) -> Result<Option<i64>, IdentityError> {
    db.write(move |conn| {
        Box::pin(async move {
            let user: Option<i64> = sql::query_scalar(
                "SELECT user_id FROM refresh_tokens WHERE token_hash = ? AND expires_at >= ?",
            )
            .bind(&old)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(user) = user else {
                return Ok::<_, IdentityError>(None);
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
            .bind(next)
            .bind(user)
            .bind(expires_at)
            .execute(&mut *conn)
            .await?;
            Ok(Some(user))
        })
    })
    .await
}

/// Ends the session of digest `token_hash` (logout).
pub async fn end_session(db: &Db, token_hash: String) -> Result<(), IdentityError> {
    db.write(move |conn| {
        Box::pin(async move {
            sql::query("DELETE FROM refresh_tokens WHERE token_hash = ?")
                .bind(token_hash)
                .execute(conn)
                .await?;
            Ok::<_, IdentityError>(())
        })
    })
    .await
}
