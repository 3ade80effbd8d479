//! `Idempotency-Key`: a retried POST/PUT/PATCH/DELETE with the same key (for
//! the same user) gets the first answer again and changes nothing more. A
//! key reused for a different request is refused; a key whose first request
//! is still running answers 409 with `Retry-After`.
//!
//! The request runs in a task of its own: a client that hangs up (or a
//! gateway that gives up) cannot stop it half-way, and its answer is stored
//! for the retry. Only a crash can leave a key claimed without an answer;
//! after [`LEASE`] a retry takes the key over and runs again. Handlers whose
//! first effect must not happen twice read [`IdempotencyKey`] and keep the
//! key with that effect (Order stores it on the order it creates), so the
//! rerun finds what the first attempt made instead of making it again.
//!
//! Keys are looked at only for authenticated requests (anonymous requests
//! and `/auth/*` never touch the key table) and expire after a TTL.

use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::auth::{token_from_parts, TokenKeys};
use crate::db::Db;
use crate::problem::ApiError;
use crate::sql;

pub const HEADER: &str = "idempotency-key";
/// Longest key accepted: what every backend's key column holds.
pub const MAX_KEY_LEN: usize = 191;
/// Largest request body the platform accepts.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Largest answer kept for a replay; every answer of the API is far smaller.
const ANSWER_LIMIT: usize = 1024 * 1024;
/// How long a first request that never recorded an answer keeps its key
/// from a retry. Longer than any write takes (placing an order waits at most
/// the payment timeout); a process that died holding a key frees it by then.
pub const LEASE: Duration = Duration::from_secs(10);
/// How long a key is remembered, unless `HANWHA_IDEMPOTENCY_TTL_SECS` says.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// The key a request came with, for handlers that store it with their
/// first durable effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub String);

#[derive(Clone)]
pub struct Idempotency {
    pub db: Db,
    pub keys: TokenKeys,
    pub ttl: Duration,
}

impl Idempotency {
    pub fn new(db: Db, keys: TokenKeys) -> Idempotency {
        Idempotency {
            db,
            keys,
            ttl: ttl_from_env(),
        }
    }
}

/// `HANWHA_IDEMPOTENCY_TTL_SECS`, at least one hour so that a client's
/// retries within a working day always find their key.
pub fn ttl_from_env() -> Duration {
    std::env::var("HANWHA_IDEMPOTENCY_TTL_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.max(3600)))
        .unwrap_or(DEFAULT_TTL)
}

/// What a stored key says about a new request carrying it.
#[derive(Debug, PartialEq, Eq)]
enum Claim {
    First,
    /// The first attempt never answered and its lease ran out.
    TakenOver,
    Replay(StatusCode, Vec<u8>, Option<String>),
    Busy {
        retry_after: Duration,
    },
    Mismatch,
}

/// A key as stored, for [`decide`].
struct Stored {
    fingerprint: String,
    status: Option<i64>,
    body: Option<Vec<u8>>,
    content_type: Option<String>,
    created_at: i64,
}

/// The rule, without the database.
fn decide(stored: Option<&Stored>, fingerprint: &str, now: i64, ttl: Duration) -> Claim {
    let Some(s) = stored else {
        return Claim::First;
    };
    let age = now.saturating_sub(s.created_at);
    if age > ttl.as_millis() as i64 {
        return Claim::First;
    }
    if s.fingerprint != fingerprint {
        return Claim::Mismatch;
    }
    match s.status {
        Some(status) => Claim::Replay(
            StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK),
            s.body.clone().unwrap_or_default(),
            s.content_type.clone(),
        ),
        None if age >= LEASE.as_millis() as i64 => Claim::TakenOver,
        None => Claim::Busy {
            retry_after: Duration::from_millis((LEASE.as_millis() as i64 - age).max(0) as u64),
        },
    }
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// What makes two requests under one key the same request: method, path
/// and body.
fn fingerprint(method: &Method, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str());
    hasher.update(b" ");
    hasher.update(path);
    hasher.update(b"\n");
    hasher.update(body);
    hex::encode(hasher.finalize())
}

fn mismatch() -> Response {
    ApiError::unprocessable("this Idempotency-Key was already used for a different request")
        .into_response()
}

/// The key's first attempt is still at work: 409, and when to ask again.
fn busy(retry_after: Duration) -> Response {
    let mut resp = ApiError::new(
        StatusCode::CONFLICT,
        "Conflict",
        "a request with this Idempotency-Key is still in progress; retry later",
    )
    .into_response();
    let secs = retry_after.as_secs().max(1);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// The answer stored for the key, marked as a replay.
fn replay(status: StatusCode, body: Vec<u8>, content_type: Option<String>) -> Response {
    let mut resp = (status, body).into_response();
    if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

/// Runs a keyed write once per key and answers its retries with the stored
/// answer; the request runs to its end on a task of its own, so a client
/// that hangs up cannot leave its key claimed and unanswered.
pub async fn layer(State(idem): State<Idempotency>, req: Request, next: Next) -> Response {
    let Some(key) = req.headers().get(HEADER).cloned() else {
        return next.run(req).await;
    };
    // Logins and sign-ups carry secrets in their answers: never stored.
    if !is_write(req.method()) || req.uri().path().starts_with("/auth/") {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    // After authentication: a request without a valid token is refused by
    // its handler (401, whatever its key) and must not claim, replay or
    // probe anyone's keys.
    let Some(principal) = token_from_parts(&parts)
        .and_then(|t| idem.keys.verify(&t).ok())
        .map(|p| format!("user:{}", p.user_id))
    else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= MAX_KEY_LEN => k.to_string(),
        _ => {
            return ApiError::bad_request(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible characters"
            ))
            .into_response()
        }
    };
    let bytes = match to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => return crate::problem::unreadable_body(&e).into_response(),
    };
    let fingerprint = fingerprint(&parts.method, parts.uri.path(), &bytes);
    parts.extensions.insert(IdempotencyKey(key.clone()));
    let req = Request::from_parts(parts, Body::from(bytes));

    // From here the request runs to its end and its answer is stored, even
    // if the client is gone.
    let run = tokio::spawn(async move {
        match claim(&idem, principal.clone(), key.clone(), fingerprint).await {
            Err(e) => e.into_response(),
            Ok(Claim::Mismatch) => mismatch(),
            Ok(Claim::Busy { retry_after }) => busy(retry_after),
            Ok(Claim::Replay(status, body, content_type)) => replay(status, body, content_type),
            Ok(claim @ (Claim::First | Claim::TakenOver)) => {
                if claim == Claim::TakenOver {
                    tracing::warn!(
                        principal = %principal,
                        idempotency_key = %key,
                        "resuming a request whose first attempt never answered (its process stopped)"
                    );
                }
                let resp = next.run(req).await;
                answer_and_record(&idem, principal, key, resp).await
            }
        }
    });
    match run.await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error = %e, "an idempotent request panicked");
            ApiError::internal("the request failed").into_response()
        }
    }
}

async fn answer_and_record(
    idem: &Idempotency,
    principal: String,
    key: String,
    resp: Response,
) -> Response {
    let (rparts, rbody) = resp.into_parts();
    let rbytes = match to_bytes(rbody, ANSWER_LIMIT).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot read an answer to store for its Idempotency-Key");
            let _ = record(
                &idem.db,
                principal,
                key,
                StatusCode::INTERNAL_SERVER_ERROR,
                Vec::new(),
                None,
            )
            .await;
            return ApiError::internal("cannot read the answer").into_response();
        }
    };
    let content_type = rparts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Err(e) = record(
        &idem.db,
        principal,
        key,
        rparts.status,
        rbytes.to_vec(),
        content_type,
    )
    .await
    {
        // The effect happened; a retry after the lease runs the handler
        // again, which finds it (see the module docs).
        tracing::warn!(error = %e, "could not store an idempotent answer");
    }
    Response::from_parts(rparts, Body::from(rbytes))
}

async fn claim(
    idem: &Idempotency,
    principal: String,
    key: String,
    fingerprint: String,
) -> Result<Claim, ApiError> {
    let now = crate::clock::now_ms();
    let ttl = idem.ttl;
    idem.db
        .write(move |conn| {
            Box::pin(async move {
                let row = sql::query(
                    "SELECT fingerprint, status, body, content_type, created_at FROM idempotency_keys
                     WHERE principal = ? AND idem_key = ?",
                )
                .bind(&principal)
                .bind(&key)
                .fetch_optional(&mut *conn)
                .await?;
                let stored = row.map(|row| Stored {
                    fingerprint: row.get("fingerprint"),
                    status: row.get("status"),
                    body: row.get("body"),
                    content_type: row.get("content_type"),
                    created_at: row.get("created_at"),
                });
                let claim = decide(stored.as_ref(), &fingerprint, now, ttl);
                if matches!(claim, Claim::First | Claim::TakenOver) {
                    if stored.is_some() {
                        sql::query(
                            "UPDATE idempotency_keys SET fingerprint = ?, status = NULL, body = NULL, content_type = NULL, created_at = ?
                             WHERE principal = ? AND idem_key = ?",
                        )
                        .bind(&fingerprint)
                        .bind(now)
                        .bind(&principal)
                        .bind(&key)
                        .execute(&mut *conn)
                        .await?;
                    } else {
                        sql::query(
                            "INSERT INTO idempotency_keys (principal, idem_key, fingerprint, created_at) VALUES (?, ?, ?, ?)",
                        )
                        .bind(&principal)
                        .bind(&key)
                        .bind(&fingerprint)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                    }
                }
                Ok::<_, ApiError>(claim)
            })
        })
        .await
}

async fn record(
    db: &Db,
    principal: String,
    key: String,
    status: StatusCode,
    body: Vec<u8>,
    content_type: Option<String>,
) -> Result<(), sqlx::Error> {
    db.write(move |conn| {
        Box::pin(async move {
            if status.is_server_error() {
                // A failure the client may retry: free the key instead of pinning it.
                sql::query("DELETE FROM idempotency_keys WHERE principal = ? AND idem_key = ?")
                    .bind(&principal)
                    .bind(&key)
                    .execute(conn)
                    .await?;
                return Ok(());
            }
            sql::query(
                "UPDATE idempotency_keys SET status = ?, body = ?, content_type = ? WHERE principal = ? AND idem_key = ?",
            )
            .bind(status.as_u16() as i64)
            .bind(body)
            .bind(content_type)
            .bind(&principal)
            .bind(&key)
            .execute(conn)
            .await?;
            Ok(())
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(24 * 3600);

    fn stored(fingerprint: &str, status: Option<i64>, created_at: i64) -> Stored {
        Stored {
            fingerprint: fingerprint.into(),
            status,
            body: Some(b"{}".to_vec()),
            content_type: Some("application/json".into()),
            created_at,
        }
    }

    #[test]
    fn a_new_key_is_claimed() {
        assert_eq!(decide(None, "f", 1_000, TTL), Claim::First);
    }

    #[test]
    fn an_answered_key_replays_its_answer() {
        let s = stored("f", Some(201), 1_000);
        assert!(matches!(
            decide(Some(&s), "f", 2_000, TTL),
            Claim::Replay(StatusCode::CREATED, _, _)
        ));
    }

    #[test]
    fn a_key_reused_for_another_request_is_refused() {
        let s = stored("f", Some(201), 1_000);
        assert_eq!(decide(Some(&s), "g", 2_000, TTL), Claim::Mismatch);
    }

    #[test]
    fn a_running_first_request_holds_its_key_for_the_lease_only() {
        let s = stored("f", None, 1_000);
        let lease = LEASE.as_millis() as i64;
        assert_eq!(
            decide(Some(&s), "f", 1_000 + lease - 2_500, TTL),
            Claim::Busy {
                retry_after: Duration::from_millis(2_500)
            }
        );
        assert_eq!(decide(Some(&s), "f", 1_000 + lease, TTL), Claim::TakenOver);
    }

    #[test]
    fn an_expired_key_is_new_again_whatever_it_held() {
        let s = stored("other", Some(201), 0);
        let later = TTL.as_millis() as i64 + 1;
        assert_eq!(decide(Some(&s), "f", later, TTL), Claim::First);
    }
}
