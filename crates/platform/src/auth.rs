//! Bearer tokens: signed (HS256) claims that every service checks by itself,
//! with no call to the service that issued them.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use contracts::Role;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::problem::ApiError;

/// How long a token is valid.
pub const TOKEN_TTL_SECS: i64 = 12 * 3600;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: i64,
    pub name: String,
    pub role: Role,
    /// The store an owner runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<i64>,
    pub exp: i64,
}

#[derive(Clone)]
pub struct TokenKeys {
    inner: Arc<(EncodingKey, DecodingKey)>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    pub fn from_secret(secret: &[u8]) -> TokenKeys {
        TokenKeys {
            inner: Arc::new((
                EncodingKey::from_secret(secret),
                DecodingKey::from_secret(secret),
            )),
        }
    }

    pub fn issue(&self, principal: &Principal) -> Result<String, ApiError> {
        let claims = Claims {
            sub: principal.user_id,
            name: principal.username.clone(),
            role: principal.role,
            store_id: principal.store_id,
            exp: crate::clock::now_ms() / 1000 + TOKEN_TTL_SECS,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.inner.0)
            .map_err(|e| ApiError::internal(format!("cannot sign token: {e}")))
    }

    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let data = decode::<Claims>(token, &self.inner.1, &Validation::new(Algorithm::HS256))
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::unauthorized("session expired; log in again")
                }
                _ => ApiError::unauthorized("invalid token"),
            })?;
        Ok(Principal {
            user_id: data.claims.sub,
            username: data.claims.name,
            role: data.claims.role,
            store_id: data.claims.store_id,
        })
    }
}

/// The logged-in user a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub store_id: Option<i64>,
}

impl Principal {
    /// The system itself (deadlines, compensation), in events' `actor`.
    pub fn system() -> Principal {
        Principal {
            user_id: 0,
            username: "system".into(),
            role: Role::Admin,
            store_id: None,
        }
    }

    /// `customer:1`, `owner:2`, ... as written in events.
    pub fn actor(&self) -> String {
        if self.user_id == 0 {
            "system".to_string()
        } else {
            format!("{}:{}", self.role.as_str(), self.user_id)
        }
    }

    /// 403 unless the user has one of the roles.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "a {} may not do this",
                self.role.as_str()
            )))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Reads the token from `Authorization: Bearer ...` or, for EventSource
/// which cannot set headers, from an `access_token` query parameter.
pub fn token_from_parts(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))?;
        return Some(token.trim().to_string());
    }
    let query = parts.uri.query()?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("access_token=").map(|t| t.to_string()))
}

impl<S> FromRequestParts<S> for Principal
where
    TokenKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = TokenKeys::from_ref(state);
        let token = token_from_parts(parts)
            .ok_or_else(|| ApiError::unauthorized("log in first: missing bearer token"))?;
        keys.verify(&token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_carries_the_principal_and_a_forged_one_is_refused() {
        let keys = TokenKeys::from_secret(b"secret-one");
        let owner = Principal {
            user_id: 2,
            username: "owner".into(),
            role: Role::Owner,
            store_id: Some(1),
        };
        let token = keys.issue(&owner).expect("issue");
        assert_eq!(keys.verify(&token).expect("verify"), owner);
        let other = TokenKeys::from_secret(b"secret-two");
        assert_eq!(
            other.verify(&token).expect_err("forged").status,
            axum::http::StatusCode::UNAUTHORIZED
        );
    }
}
