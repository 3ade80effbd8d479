//! Users and login: customers, store owners, riders and admins log in here
//! and get a signed token that every other service checks by itself.

mod hashing;

pub use hashing::Hashing;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{FromRef, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use contracts::Role;
use platform::openapi::{BadBody, Common, Problem, PROBLEM_JSON};
use platform::sql;
use platform::{ApiError, ApiJson, Db, Principal, TokenKeys};
use serde::{Deserialize, Serialize};

pub fn migrations() -> platform::Migrations {
    platform::Migrations {
        sqlite: sqlx::migrate!("./migrations/sqlite"),
        postgres: sqlx::migrate!("./migrations/postgres"),
        mysql: sqlx::migrate!("./migrations/mysql"),
    }
}

#[derive(Clone)]
pub struct Identity {
    pub db: Db,
    pub keys: TokenKeys,
    pub hashing: Hashing,
}

impl Identity {
    pub fn new(db: Db, keys: TokenKeys) -> Identity {
        Identity {
            db,
            keys,
            hashing: Hashing::for_this_machine(),
        }
    }
}

impl FromRef<Identity> for TokenKeys {
    fn from_ref(s: &Identity) -> TokenKeys {
        s.keys.clone()
    }
}

/// A demo account created on first start.
pub struct DemoUser {
    pub id: i64,
    pub username: &'static str,
    pub role: Role,
    pub store_id: Option<i64>,
}

/// The demo accounts; each one's password is its name (demo only).
pub const DEMO_USERS: [DemoUser; 5] = [
    DemoUser {
        id: 1,
        username: "customer",
        role: Role::Customer,
        store_id: None,
    },
    DemoUser {
        id: 2,
        username: "owner",
        role: Role::Owner,
        store_id: Some(1),
    },
    DemoUser {
        id: 3,
        username: "owner2",
        role: Role::Owner,
        store_id: Some(2),
    },
    DemoUser {
        id: 4,
        username: "rider",
        role: Role::Rider,
        store_id: None,
    },
    DemoUser {
        id: 5,
        username: "admin",
        role: Role::Admin,
        store_id: None,
    },
];

pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(format!("cannot hash password: {e}")))
}

/// Creates the demo accounts unless users exist already.
pub async fn seed_demo(db: &Db) -> Result<(), ApiError> {
    let count: i64 = sql::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(db)
        .await?;
    if count > 0 {
        return Ok(());
    }
    let hashes = futures::future::try_join_all(DEMO_USERS.iter().map(|u| {
        let name = u.username;
        async move {
            tokio::task::spawn_blocking(move || hash_password(name))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
        }
    }))
    .await?;
    db.write(move |tx| {
        Box::pin(async move {
            for (user, hash) in DEMO_USERS.iter().zip(hashes) {
                sql::query("INSERT INTO users (id, username, password_hash, role, store_id) VALUES (?, ?, ?, ?, ?)")
                    .bind(user.id)
                    .bind(user.username)
                    .bind(hash)
                    .bind(user.role.as_str())
                    .bind(user.store_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok::<_, ApiError>(())
        })
    })
    .await
}

/// Identity's operations, as `/openapi.json` describes them.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(login, register, me),
    modifiers(&Common),
    tags((name = "identity", description = "Log in, sign up, and who the caller is"))
)]
pub struct IdentityApi;

pub fn router(identity: Identity) -> Router {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/register", post(register))
        .route("/auth/me", get(me))
        .with_state(identity)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"username": "customer", "password": "customer"}))]
struct LoginRequest {
    username: String,
    password: String,
}

/// A token and who it is for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"token": "eyJhbGciOi...", "userId": 1, "username": "customer", "role": "customer"}))]
struct LoginResponse {
    /// Send it as `Authorization: Bearer <token>`.
    token: String,
    user_id: i64,
    username: String,
    role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    store_id: Option<i64>,
}

#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "identity",
    summary = "Log in: a token for the user",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Wrong username or password", body = Problem, content_type = PROBLEM_JSON),
        BadBody
    )
)]
async fn login(
    State(id): State<Identity>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let row = sql::query("SELECT id, password_hash, role, store_id FROM users WHERE username = ?")
        .bind(&req.username)
        .fetch_optional(&id.db)
        .await?;
    let refused = || ApiError::unauthorized("wrong username or password");
    let Some(row) = row else {
        return Err(refused());
    };
    let hash: String = row.get(1);
    let password = req.password;
    let ok = id
        .hashing
        .run(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await?;
    if !ok {
        return Err(refused());
    }
    let role_name: String = row.get(2);
    let role = Role::parse(&role_name).ok_or_else(|| ApiError::internal("unknown role stored"))?;
    let principal = Principal {
        user_id: row.get(0),
        username: req.username,
        role,
        store_id: row.get(3),
    };
    let token = id.keys.issue(&principal)?;
    Ok(Json(LoginResponse {
        token,
        user_id: principal.user_id,
        username: principal.username,
        role,
        store_id: principal.store_id,
    }))
}

/// A new customer account.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "kim_minji", "password": "correct horse battery"}))]
struct Registration {
    /// 3 to 32 letters, digits, `_` or `-`; stored in lower case.
    #[schema(pattern = r"^\s*[A-Za-z0-9_-]{3,32}\s*$")]
    username: String,
    /// 8 to 200 characters (at most 200 bytes).
    #[schema(min_length = 8, max_length = 200)]
    password: String,
}

/// Customers sign up themselves; owners, riders and admins are created by
/// the platform.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "identity",
    summary = "Sign up as a customer: a token for the new user",
    request_body = Registration,
    responses(
        (status = 201, description = "Signed up", body = LoginResponse),
        (status = 409, description = "The username is taken", body = Problem, content_type = PROBLEM_JSON),
        BadBody
    )
)]
async fn register(
    State(id): State<Identity>,
    ApiJson(req): ApiJson<Registration>,
) -> Result<(axum::http::StatusCode, Json<LoginResponse>), ApiError> {
    let username = req.username.trim().to_lowercase();
    let valid_name = (3..=32).contains(&username.len())
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid_name {
        return Err(ApiError::unprocessable(
            "username must be 3 to 32 letters, digits, '_' or '-'",
        ));
    }
    if req.password.chars().count() < 8 || req.password.len() > 200 {
        return Err(ApiError::unprocessable(
            "password must be 8 to 200 characters",
        ));
    }
    let password = req.password;
    let hash = id.hashing.run(move || hash_password(&password)).await??;
    let name = username.clone();
    let user_id = id
        .db
        .write(move |conn| {
            Box::pin(async move {
                let insert = sql::insert_ignoring_duplicates(
                    conn.backend(),
                    "INSERT INTO users (username, password_hash, role) VALUES (?, ?, 'customer')",
                    "(username)",
                );
                let inserted: Option<i64> = sql::query_scalar(format!("{insert} RETURNING id"))
                    .bind(&name)
                    .bind(hash)
                    .fetch_optional(conn)
                    .await?;
                inserted.ok_or_else(|| {
                    ApiError::new(
                        axum::http::StatusCode::CONFLICT,
                        "Conflict",
                        format!("the username {name} is taken"),
                    )
                })
            })
        })
        .await?;
    let principal = Principal {
        user_id,
        username,
        role: Role::Customer,
        store_id: None,
    };
    let token = id.keys.issue(&principal)?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(LoginResponse {
            token,
            user_id,
            username: principal.username,
            role: Role::Customer,
            store_id: None,
        }),
    ))
}

/// Who the caller is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Me {
    user_id: i64,
    username: String,
    role: Role,
    /// The store an owner runs; null for everyone else.
    store_id: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/auth/me",
    tag = "identity",
    summary = "Who the token is for",
    security(("bearer" = ["customer", "owner", "rider", "admin"])),
    responses((status = 200, description = "The caller", body = Me))
)]
async fn me(who: Principal) -> Json<Me> {
    Json(Me {
        user_id: who.user_id,
        username: who.username,
        role: who.role,
        store_id: who.store_id,
    })
}
