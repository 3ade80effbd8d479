//! The accounts: who may log in, with which role, and whether the account
//! is still enabled. The rules for names and passwords are here too, so
//! that the API and the `users` command apply the same ones.

use contracts::Role;
use platform::sql;
use platform::{ApiError, Db};

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

fn from_row(row: &sql::Row) -> Result<Account, ApiError> {
    let role: String = row.get(3);
    let disabled_at: Option<i64> = row.get(5);
    Ok(Account {
        id: row.get(0),
        username: row.get(1),
        password_hash: row.get(2),
        role: Role::parse(&role).ok_or_else(|| ApiError::internal("unknown role stored"))?,
        store_id: row.get(4),
        disabled: disabled_at.is_some(),
    })
}

/// Usernames are 3 to 32 lower-case letters, digits, `_` or `-`.
pub fn normalize_username(name: &str) -> Result<String, ApiError> {
    let username = name.trim().to_lowercase();
    let valid = (3..=32).contains(&username.len())
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(username)
    } else {
        Err(ApiError::unprocessable(
            "username must be 3 to 32 letters, digits, '_' or '-'",
        ))
    }
}

/// Passwords are 8 to 200 characters.
pub fn check_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < 8 || password.len() > 200 {
        return Err(ApiError::unprocessable(
            "password must be 8 to 200 characters",
        ));
    }
    Ok(())
}

/// An owner runs exactly one store; nobody else has one.
pub fn check_store(role: Role, store_id: Option<i64>) -> Result<(), ApiError> {
    match (role, store_id) {
        (Role::Owner, Some(id)) if id > 0 => Ok(()),
        (Role::Owner, _) => Err(ApiError::unprocessable(
            "an owner needs the id of the store they run (storeId)",
        )),
        (_, None) => Ok(()),
        (_, Some(_)) => Err(ApiError::unprocessable(
            "only an owner has a store (storeId)",
        )),
    }
}

pub async fn by_name(db: &Db, username: &str) -> Result<Option<Account>, ApiError> {
    let row = sql::query(format!("SELECT {COLUMNS} FROM users WHERE username = ?"))
        .bind(username)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn by_id(db: &Db, id: i64) -> Result<Option<Account>, ApiError> {
    let row = sql::query(format!("SELECT {COLUMNS} FROM users WHERE id = ?"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn list(db: &Db) -> Result<Vec<Account>, ApiError> {
    let rows = sql::query(format!(
        "SELECT {COLUMNS} FROM users ORDER BY id LIMIT 10000"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Creates an account; 409 if the name is taken.
pub async fn create(
    db: &Db,
    username: String,
    password_hash: String,
    role: Role,
    store_id: Option<i64>,
) -> Result<i64, ApiError> {
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
            inserted.ok_or_else(|| {
                ApiError::new(
                    axum::http::StatusCode::CONFLICT,
                    "Conflict",
                    format!("the username {username} is taken"),
                )
            })
        })
    })
    .await
}

/// Sets a new password hash and ends every session of the account.
pub async fn set_password(db: &Db, id: i64, password_hash: String) -> Result<bool, ApiError> {
    db.write(move |conn| {
        Box::pin(async move {
            let done = sql::query("UPDATE users SET password_hash = ? WHERE id = ?")
                .bind(password_hash)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            sql::query("DELETE FROM refresh_tokens WHERE user_id = ?")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            Ok::<_, ApiError>(done.rows_affected() > 0)
        })
    })
    .await
}

/// Disables an account at `at_ms` and ends every session of it; false if
/// there is no such account.
pub async fn disable(db: &Db, id: i64, at_ms: i64) -> Result<bool, ApiError> {
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
            sql::query("DELETE FROM refresh_tokens WHERE user_id = ?")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            Ok::<_, ApiError>(true)
        })
    })
    .await
}

/// Accounts disabled since `since_ms`, with when: their tokens may still
/// be alive.
pub async fn disabled_since(db: &Db, since_ms: i64) -> Result<Vec<(i64, i64)>, ApiError> {
    let rows = sql::query("SELECT id, disabled_at FROM users WHERE disabled_at >= ?")
        .bind(since_ms)
        .fetch_all(db)
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub async fn count(db: &Db) -> Result<i64, ApiError> {
    Ok(sql::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(db)
        .await?)
}

pub async fn admins(db: &Db) -> Result<i64, ApiError> {
    Ok(
        sql::query_scalar(
            "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL",
        )
        .fetch_one(db)
        .await?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_passwords_and_stores_follow_the_rules() {
        assert_eq!(normalize_username(" Kim_1 ").expect("valid"), "kim_1");
        assert!(normalize_username("a").is_err());
        assert!(normalize_username("bad name").is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
        assert!(check_store(Role::Owner, Some(3)).is_ok());
        assert!(check_store(Role::Owner, None).is_err());
        assert!(check_store(Role::Rider, Some(3)).is_err());
        assert!(check_store(Role::Admin, None).is_ok());
    }
}
