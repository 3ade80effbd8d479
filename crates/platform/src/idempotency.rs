//! `Idempotency-Key`: a retried POST/PUT/DELETE with the same key (for the
//! same user) gets the first answer again and changes nothing more. A key
//! reused for a different request is refused; a key whose first request is
//! still running answers 409.

use crate::sql;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::auth::{token_from_parts, TokenKeys};
use crate::db::Db;
use crate::problem::ApiError;

pub const HEADER: &str = "idempotency-key";
/// Largest request body the platform accepts.
pub const BODY_LIMIT: usize = 64 * 1024;
/// A first request older than this that never finished (its process died)
/// no longer blocks its key.
const STALE_MS: i64 = 60_000;

#[derive(Clone)]
pub struct Idempotency {
    pub db: Db,
    pub keys: TokenKeys,
}

enum Claim {
    First,
    Replay(StatusCode, Vec<u8>, Option<String>),
}

pub async fn layer(State(idem): State<Idempotency>, req: Request, next: Next) -> Response {
    let Some(key) = req.headers().get(HEADER).cloned() else {
        return next.run(req).await;
    };
    if !matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return next.run(req).await;
    }
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 200 => k.to_string(),
        _ => {
            return ApiError::bad_request("Idempotency-Key must be 1 to 200 visible characters")
                .into_response()
        }
    };
    let (parts, body) = req.into_parts();
    let principal = token_from_parts(&parts)
        .and_then(|t| idem.keys.verify(&t).ok())
        .map(|p| format!("user:{}", p.user_id))
        .unwrap_or_else(|| "anonymous".to_string());
    let bytes = match to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Payload too large",
                "request body too large",
            )
            .into_response()
        }
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update(b" ");
    hasher.update(parts.uri.path());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let fingerprint = hex::encode(hasher.finalize());

    // From the claim on, the request runs to its end and its answer is
    // stored in a task of its own: a client that hangs up (a gateway's
    // deadline) drops only the wait. Dropped half-way, after the claim
    // committed and before the answer was stored, the key would stay
    // claimed with no answer, and every resend would get 409 until the
    // claim went stale.
    let first = Exchange {
        idem,
        principal,
        key,
        fingerprint,
    };
    match tokio::spawn(first.answer(parts, bytes, next)).await {
        Ok(resp) => resp,
        // A panic, which its hook has printed.
        Err(_) => ApiError::internal("the request failed").into_response(),
    }
}

/// A keyed request whose body has been read.
struct Exchange {
    idem: Idempotency,
    principal: String,
    key: String,
    fingerprint: String,
}

impl Exchange {
    async fn answer(
        self,
        parts: axum::http::request::Parts,
        bytes: axum::body::Bytes,
        next: Next,
    ) -> Response {
        let Exchange {
            idem,
            principal,
            key,
            fingerprint,
        } = self;
        let claim = claim(&idem.db, principal.clone(), key.clone(), fingerprint).await;
        match claim {
            Err(e) => e.into_response(),
            Ok(Claim::Replay(status, body, content_type)) => {
                let mut resp = (status, body).into_response();
                if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                    resp.headers_mut().insert(header::CONTENT_TYPE, ct);
                }
                resp.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                resp
            }
            Ok(Claim::First) => {
                let resp = next
                    .run(Request::from_parts(parts, Body::from(bytes)))
                    .await;
                let (rparts, rbody) = resp.into_parts();
                let rbytes = match to_bytes(rbody, usize::MAX).await {
                    Ok(b) => b,
                    Err(e) => {
                        return ApiError::internal(format!("cannot read response: {e}"))
                            .into_response()
                    }
                };
                let content_type = rparts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let status = rparts.status;
                let stored = {
                    let (db, body) = (idem.db.clone(), rbytes.to_vec());
                    record(&db, principal, key, status, body, content_type).await
                };
                if let Err(e) = stored {
                    tracing::warn!(error = %e, "could not store idempotent answer");
                }
                Response::from_parts(rparts, Body::from(rbytes))
            }
        }
    }
}

async fn claim(
    db: &Db,
    principal: String,
    key: String,
    fingerprint: String,
) -> Result<Claim, ApiError> {
    let now = crate::clock::now_ms();
    db.write(move |conn| {
        Box::pin(async move {
            let row = sql::query(
                "SELECT fingerprint, status, body, content_type, created_at FROM idempotency_keys
                 WHERE principal = ? AND idem_key = ?",
            )
            .bind(&principal)
            .bind(&key)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else {
                sql::query(
                    "INSERT INTO idempotency_keys (principal, idem_key, fingerprint, created_at) VALUES (?, ?, ?, ?)",
                )
                .bind(&principal)
                .bind(&key)
                .bind(&fingerprint)
                .bind(now)
                .execute(&mut *conn)
                .await?;
                return Ok(Claim::First);
            };
            let seen: String = row.get(0);
            if seen != fingerprint {
                return Err(ApiError::unprocessable(
                    "this Idempotency-Key was already used for a different request",
                ));
            }
            let status: Option<i64> = row.get(1);
            match status {
                Some(status) => Ok(Claim::Replay(
                    StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK),
                    row.get::<Option<Vec<u8>>, _>(2).unwrap_or_default(),
                    row.get(3),
                )),
                None if now - row.get::<i64, _>(4) > STALE_MS => {
                    sql::query("UPDATE idempotency_keys SET created_at = ? WHERE principal = ? AND idem_key = ?")
                        .bind(now)
                        .bind(&principal)
                        .bind(&key)
                        .execute(&mut *conn)
                        .await?;
                    Ok(Claim::First)
                }
                None => Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "Conflict",
                    "a request with this Idempotency-Key is still in progress",
                )),
            }
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
