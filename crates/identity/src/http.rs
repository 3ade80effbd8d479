//! Identity's HTTP API: login and sessions, the user's own password, the
//! admins' management of accounts, and the public keys of the tokens. Each
//! handler extracts the request, calls a step of [`crate::accounts`] and
//! answers; every [`IdentityError`] becomes problem+json in one place, the
//! `From<IdentityError> for ApiError` below.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use contracts::Role;
use platform::auth::ACCESS_TOKEN_TTL_SECS;
use platform::openapi::{
    BadBody, BadParams, Common, Forbidden, NotFound, Problem, TooMany, PROBLEM_JSON,
};
use platform::{ApiError, ApiJson, ApiPath, Principal};
use serde::{Deserialize, Serialize};

use crate::accounts::NewAccount;
use crate::client_address::ClientAddress;
use crate::error::IdentityError;
use crate::sessions;
use crate::storage::Account;
use crate::Identity;

/// The one place an [`IdentityError`] becomes an HTTP answer. What a login
/// refusal says is the same for an unknown name and a wrong password.
impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> ApiError {
        let detail = e.to_string();
        match e {
            IdentityError::Invalid(_) => ApiError::unprocessable(detail),
            IdentityError::WrongCredentials
            | IdentityError::DisabledSince
            | IdentityError::SessionExpired => ApiError::unauthorized(detail),
            IdentityError::Disabled => ApiError::forbidden(detail),
            IdentityError::NoUser(_) => ApiError::not_found(detail),
            IdentityError::Taken(_) => ApiError::new(StatusCode::CONFLICT, "Conflict", detail),
            IdentityError::Throttled { wait_secs } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests", detail)
                    .retry_after(wait_secs)
            }
            IdentityError::HashingBusy => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
                detail,
            )
            .retry_after(1),
            IdentityError::Internal(_) => ApiError::internal(detail),
            IdentityError::Db(e) => e.into(),
        }
    }
}

/// Identity's operations, as `/openapi.json` describes them.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        login, register, refresh, logout, me, change_own_password, stream_ticket,
        list_users, create_user, disable_user, reset_password, jwks, revoked_users
    ),
    modifiers(&Common),
    tags((name = "identity", description = "Log in and sessions, passwords, accounts, and the tokens' public keys"))
)]
pub struct IdentityApi;

pub fn router(identity: Identity) -> Router {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/register", post(register))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
        .route("/auth/password", put(change_own_password))
        .route("/auth/stream-ticket", post(stream_ticket))
        .route("/auth/users", get(list_users).post(create_user))
        .route("/auth/users/{id}/disable", put(disable_user))
        .route("/auth/users/{id}/password", put(reset_password))
        .route("/.well-known/jwks.json", get(jwks))
        .route(platform::revocation_sync::PATH, get(revoked_users))
        .with_state(identity)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"username": "customer", "password": "customer"}))]
struct LoginRequest {
    username: String,
    password: String,
}

/// An access token, the refresh token that renews it, and who they are for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"token": "eyJhbGciOi...", "refreshToken": "q0vA...", "expiresIn": 900, "userId": 1, "username": "customer", "role": "customer"}))]
struct LoginResponse {
    /// The access token (15 minutes).
    token: String,
    /// Trades for the next access token at `POST /auth/refresh`, once.
    refresh_token: String,
    /// Seconds the access token is valid.
    expires_in: i64,
    user_id: i64,
    username: String,
    role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    store_id: Option<i64>,
}

fn principal(account: &Account) -> Principal {
    Principal {
        user_id: account.id,
        username: account.username.clone(),
        role: account.role,
        store_id: account.store_id,
    }
}

/// The answer that hands a client its tokens.
fn tokens(account: Account, token: String, refresh_token: String) -> LoginResponse {
    LoginResponse {
        token,
        refresh_token,
        expires_in: ACCESS_TOKEN_TTL_SECS,
        user_id: account.id,
        username: account.username,
        role: account.role,
        store_id: account.store_id,
    }
}

/// A new access token and session for an account.
async fn session_for(id: &Identity, account: Account) -> Result<LoginResponse, ApiError> {
    let token = id.keys.issue(&principal(&account))?;
    let refresh_token = sessions::start(&id.db, account.id).await?;
    Ok(tokens(account, token, refresh_token))
}

#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "identity",
    summary = "Log in: an access token (15 minutes) and a refresh token",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Wrong username or password", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "The account is disabled", body = Problem, content_type = PROBLEM_JSON),
        BadBody, TooMany
    )
)]
async fn login(
    State(id): State<Identity>,
    ClientAddress(address): ClientAddress,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let account = id.log_in(&req.username, req.password, address).await?;
    Ok(Json(session_for(&id, account).await?))
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
/// an admin (`POST /auth/users`) or the `users add` command.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "identity",
    summary = "Sign up as a customer: a session for the new user",
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
) -> Result<(StatusCode, Json<LoginResponse>), ApiError> {
    let account = id.register(&req.username, req.password).await?;
    Ok((StatusCode::CREATED, Json(session_for(&id, account).await?)))
}

/// A refresh token from a login, a sign-up or the last refresh.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

/// Trades a refresh token for a new access token and a new refresh token;
/// the old one is spent.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "identity",
    summary = "Trade a refresh token (once) for a new access token and refresh token",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "Renewed", body = LoginResponse),
        (status = 401, description = "Unknown, spent or expired refresh token, or a disabled account", body = Problem, content_type = PROBLEM_JSON),
        BadBody
    )
)]
async fn refresh(
    State(id): State<Identity>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let (account, next) = id.refresh(&req.refresh_token).await?;
    let token = id.keys.issue(&principal(&account))?;
    Ok(Json(tokens(account, token, next)))
}

/// Ends the session of the refresh token; the access token the client
/// drops lapses within its 15 minutes.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "identity",
    summary = "End the session of a refresh token",
    request_body = RefreshRequest,
    responses((status = 204, description = "Ended (also when it had ended already)"), BadBody)
)]
async fn logout(
    State(id): State<Identity>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    sessions::end(&id.db, &req.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PasswordChange {
    old_password: String,
    /// 8 to 200 characters (at most 200 bytes).
    #[schema(min_length = 8, max_length = 200)]
    new_password: String,
}

/// A user changes their own password, proving the old one; every other
/// session of theirs ends, and this one goes on with a new session.
#[utoipa::path(
    put,
    path = "/auth/password",
    tag = "identity",
    summary = "Change one's own password: other sessions end, this one goes on",
    security(("bearer" = ["customer", "owner", "rider", "admin"])),
    request_body = PasswordChange,
    responses((status = 200, description = "Changed; a new session", body = LoginResponse), BadBody, TooMany)
)]
async fn change_own_password(
    State(id): State<Identity>,
    who: Principal,
    ApiJson(req): ApiJson<PasswordChange>,
) -> Result<Json<LoginResponse>, ApiError> {
    let account = id
        .change_own_password(
            who.user_id,
            &who.username,
            req.old_password,
            req.new_password,
        )
        .await?;
    Ok(Json(session_for(&id, account).await?))
}

/// An account as admins see it (never its password hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct UserView {
    id: i64,
    username: String,
    role: Role,
    store_id: Option<i64>,
    disabled: bool,
}

impl From<Account> for UserView {
    fn from(a: Account) -> UserView {
        UserView {
            id: a.id,
            username: a.username,
            role: a.role,
            store_id: a.store_id,
            disabled: a.disabled,
        }
    }
}

#[utoipa::path(
    get,
    path = "/auth/users",
    tag = "identity",
    summary = "Every account",
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "The accounts", body = [UserView]), Forbidden)
)]
async fn list_users(
    State(id): State<Identity>,
    who: Principal,
) -> Result<Json<Vec<UserView>>, ApiError> {
    who.require(&[Role::Admin])?;
    let users = crate::storage::list(&id.db).await?;
    Ok(Json(users.into_iter().map(UserView::from).collect()))
}

/// An account an admin creates.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"username": "rider_park", "password": "a long passphrase", "role": "rider"}))]
struct NewUser {
    /// 3 to 32 letters, digits, `_` or `-`; stored in lower case.
    #[schema(pattern = r"^\s*[A-Za-z0-9_-]{3,32}\s*$")]
    username: String,
    /// 8 to 200 characters (at most 200 bytes).
    #[schema(min_length = 8, max_length = 200)]
    password: String,
    role: Role,
    /// An owner's store: an existing store's id (the store itself lives in
    /// the store service).
    store_id: Option<i64>,
}

/// An admin creates an owner (with their store), a rider, an admin or a
/// customer.
#[utoipa::path(
    post,
    path = "/auth/users",
    tag = "identity",
    summary = "Create an account: an owner (with `storeId`), a rider, an admin or a customer",
    security(("bearer" = ["admin"])),
    request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = UserView),
        (status = 409, description = "The username is taken", body = Problem, content_type = PROBLEM_JSON),
        BadBody, Forbidden
    )
)]
async fn create_user(
    State(id): State<Identity>,
    who: Principal,
    ApiJson(req): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    who.require(&[Role::Admin])?;
    let (role, store_id) = (req.role, req.store_id);
    let (username, user_id) = id
        .create(NewAccount {
            username: req.username,
            password: req.password,
            role,
            store_id,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(UserView {
            id: user_id,
            username,
            role,
            store_id,
            disabled: false,
        }),
    ))
}

/// An admin disables an account: its sessions end and its access tokens
/// are refused from now on.
#[utoipa::path(
    put,
    path = "/auth/users/{id}/disable",
    tag = "identity",
    summary = "Disable an account: its sessions end and its tokens are refused",
    security(("bearer" = ["admin"])),
    params(("id" = i64, Path, description = "The account's id")),
    responses(
        (status = 200, description = "Disabled", body = UserView),
        (status = 422, description = "An admin's own account", body = Problem, content_type = PROBLEM_JSON),
        BadParams, Forbidden, NotFound
    )
)]
async fn disable_user(
    State(id): State<Identity>,
    who: Principal,
    ApiPath(user_id): ApiPath<i64>,
) -> Result<Json<UserView>, ApiError> {
    who.require(&[Role::Admin])?;
    let account = id.disable_by(who.user_id, user_id).await?;
    Ok(Json(account.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    /// 8 to 200 characters (at most 200 bytes).
    #[schema(min_length = 8, max_length = 200)]
    password: String,
}

/// An admin sets another account's password; its sessions end.
#[utoipa::path(
    put,
    path = "/auth/users/{id}/password",
    tag = "identity",
    summary = "Set an account's password: its sessions end",
    security(("bearer" = ["admin"])),
    params(("id" = i64, Path, description = "The account's id")),
    request_body = NewPassword,
    responses((status = 204, description = "Set"), BadParams, BadBody, Forbidden, NotFound)
)]
async fn reset_password(
    State(id): State<Identity>,
    who: Principal,
    ApiPath(user_id): ApiPath<i64>,
    ApiJson(req): ApiJson<NewPassword>,
) -> Result<StatusCode, ApiError> {
    who.require(&[Role::Admin])?;
    id.reset_password(user_id, req.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One public key of the tokens (RFC 8037: an Ed25519 key).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only described: `TokenKeys::jwks` writes the same members.
struct Jwk {
    #[schema(example = "OKP")]
    kty: String,
    #[schema(example = "Ed25519")]
    crv: String,
    #[schema(example = "EdDSA")]
    alg: String,
    #[schema(rename = "use", example = "sig")]
    use_: String,
    /// Named in each token's header.
    kid: String,
    /// The public key, base64url.
    x: String,
}

/// The public keys of the tokens (RFC 7517).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Jwks {
    keys: Vec<Jwk>,
}

/// The public keys of the tokens (RFC 7517), for verifiers.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "identity",
    summary = "The public keys that verify tokens",
    responses((status = 200, description = "The keys", body = Jwks))
)]
async fn jwks(State(id): State<Identity>) -> Json<serde_json::Value> {
    Json(id.keys.jwks())
}

/// The accounts disabled within the life of a token, for the other
/// services' deny-lists (ids and times only).
#[utoipa::path(
    get,
    path = "/.well-known/revoked-users",
    tag = "identity",
    summary = "Accounts disabled within a token's life, for the other services",
    responses((status = 200, description = "Ids and times (unix seconds)", body = platform::revocation_sync::RevokedUsers))
)]
async fn revoked_users(
    State(id): State<Identity>,
) -> Result<Json<platform::revocation_sync::RevokedUsers>, ApiError> {
    let users = id
        .recently_disabled()
        .await?
        .into_iter()
        .map(|(user_id, at_ms)| platform::revocation_sync::Revoked {
            user_id,
            disabled_at: at_ms / 1000,
        })
        .collect();
    Ok(Json(platform::revocation_sync::RevokedUsers { users }))
}

/// A ticket that opens the user's event stream once, within 30 seconds:
/// the browser puts it in the stream's URL instead of its access token.
#[utoipa::path(
    post,
    path = "/auth/stream-ticket",
    tag = "identity",
    summary = "A single-use ticket (30 s) for `?ticket=` on an event stream",
    security(("bearer" = ["customer", "owner", "rider", "admin"])),
    responses((status = 200, description = "The ticket", body = StreamTicket))
)]
async fn stream_ticket(
    State(id): State<Identity>,
    who: Principal,
) -> Result<Json<StreamTicket>, ApiError> {
    Ok(Json(StreamTicket {
        ticket: id.keys.issue_stream_ticket(&who)?,
        expires_in: platform::stream_tickets::TICKET_TTL_SECS,
    }))
}

/// A ticket for one event stream.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct StreamTicket {
    ticket: String,
    /// Seconds it may be used in.
    expires_in: i64,
}
