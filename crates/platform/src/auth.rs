//! Bearer tokens: EdDSA (Ed25519) signed claims that every service checks
//! by itself, with no call to the service that issued them. Only identity
//! holds the private key; everyone else holds public keys, each named by a
//! `kid`, several at once so that a key can be rotated.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use contracts::Role;
use jsonwebtoken::{decode, decode_header, encode, Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::problem::ApiError;
use crate::revocations::Revocations;
use crate::signing_keys::{PrivateKey, PublicKey};
use crate::stream_tickets::{SpentTickets, STREAM_SCOPE, TICKET_TTL_SECS};

/// How long an access token is valid; a refresh token gets the next one.
pub const ACCESS_TOKEN_TTL_SECS: i64 = 15 * 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: i64,
    pub name: String,
    pub role: Role,
    /// The store an owner runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<i64>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// Set on a stream ticket (`stream`), which is no access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

#[derive(Clone)]
struct Inner {
    signer: Option<PrivateKey>,
    accepted: Vec<PublicKey>,
    /// Keys of the services allowed to call this one, and this service's
    /// name as their tokens' audience.
    services: Vec<PublicKey>,
    audience: String,
    revoked: Revocations,
    spent_tickets: SpentTickets,
}

/// Verifies users' tokens (and, given the key, issues them) and services'
/// tokens addressed to this service.
#[derive(Clone)]
pub struct TokenKeys {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    /// A verifier: accepts tokens signed by any of `accepted`.
    pub fn verifier(accepted: Vec<PublicKey>) -> TokenKeys {
        TokenKeys {
            inner: Arc::new(Inner {
                signer: None,
                accepted,
                services: Vec::new(),
                audience: String::new(),
                revoked: Revocations::default(),
                spent_tickets: SpentTickets::default(),
            }),
        }
    }

    /// The issuer: signs with `key`, accepts its own tokens and those of
    /// `also_accepted` (keys being rotated out).
    pub fn issuer(key: PrivateKey, also_accepted: Vec<PublicKey>) -> TokenKeys {
        let mut accepted = vec![key.public.clone()];
        accepted.extend(
            also_accepted
                .into_iter()
                .filter(|k| k.kid != key.public.kid),
        );
        TokenKeys {
            inner: Arc::new(Inner {
                signer: Some(key),
                accepted,
                services: Vec::new(),
                audience: String::new(),
                revoked: Revocations::default(),
                spent_tickets: SpentTickets::default(),
            }),
        }
    }

    /// An issuer with a key of its own, made up on the spot (tests, tools).
    pub fn ephemeral() -> TokenKeys {
        TokenKeys::issuer(PrivateKey::generate().0, Vec::new())
    }

    /// Also accepts tokens of the services holding `keys` that are
    /// addressed to `audience` (this service's name).
    pub fn with_services(self, audience: &str, keys: Vec<PublicKey>) -> TokenKeys {
        let mut inner = (*self.inner).clone();
        inner.audience = audience.to_string();
        inner.services = keys;
        TokenKeys {
            inner: Arc::new(inner),
        }
    }

    /// The accounts whose tokens are refused before they expire; shared by
    /// every clone, so in one process identity's disable reaches everyone.
    pub fn revocations(&self) -> &Revocations {
        &self.inner.revoked
    }

    /// The public keys, as a JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": self.inner.accepted.iter().map(PublicKey::jwk).collect::<Vec<_>>()
        })
    }

    pub fn issue(&self, principal: &Principal) -> Result<String, ApiError> {
        self.sign(principal, ACCESS_TOKEN_TTL_SECS, None)
    }

    /// A ticket that opens one event stream, once, within 30 seconds.
    pub fn issue_stream_ticket(&self, principal: &Principal) -> Result<String, ApiError> {
        self.sign(principal, TICKET_TTL_SECS, Some(STREAM_SCOPE))
    }

    fn sign(
        &self,
        principal: &Principal,
        ttl_secs: i64,
        scope: Option<&str>,
    ) -> Result<String, ApiError> {
        let key = self
            .inner
            .signer
            .as_ref()
            .ok_or_else(|| ApiError::internal("this service holds no signing key"))?;
        let now = crate::clock::now_ms() / 1000;
        let claims = Claims {
            sub: principal.user_id,
            name: principal.username.clone(),
            role: principal.role,
            store_id: principal.store_id,
            iat: now,
            exp: now + ttl_secs,
            jti: uuid::Uuid::new_v4().to_string(),
            scope: scope.map(str::to_string),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.public.kid.clone());
        encode(&header, &claims, &key.encoding)
            .map_err(|e| ApiError::internal(format!("cannot sign token: {e}")))
    }

    /// An access token (a stream ticket is none).
    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let claims = self.verify_user(token)?;
        if claims.scope.is_some() {
            return Err(ApiError::unauthorized("invalid token"));
        }
        Ok(claims.into())
    }

    /// A stream ticket, used for the first time.
    pub fn verify_stream_ticket(&self, ticket: &str) -> Result<Principal, ApiError> {
        let claims = self.verify_user(ticket)?;
        let now = crate::clock::now_ms() / 1000;
        if claims.scope.as_deref() != Some(STREAM_SCOPE)
            || !self
                .inner
                .spent_tickets
                .first_use(&claims.jti, claims.exp, now)
        {
            return Err(ApiError::unauthorized(
                "this stream ticket is spent or invalid; ask for a new one",
            ));
        }
        Ok(claims.into())
    }

    fn verify_user(&self, token: &str) -> Result<Claims, ApiError> {
        let claims: Claims = verify_with(token, &self.inner.accepted, None)?;
        if self.inner.revoked.refuses(claims.sub, claims.iat) {
            return Err(ApiError::unauthorized("this account is disabled"));
        }
        Ok(claims)
    }

    /// A service's token addressed to this service.
    pub fn verify_service(&self, token: &str) -> Result<ServiceCaller, ApiError> {
        if self.inner.services.is_empty() {
            return Err(ApiError::forbidden(
                "only another service of the platform may call this",
            ));
        }
        let claims: crate::service_auth::ServiceClaims =
            verify_with(token, &self.inner.services, Some(&self.inner.audience))?;
        Ok(ServiceCaller {
            service: claims.sub,
            scopes: claims
                .scope
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        })
    }
}

/// Checks the signature with the key the header names, the algorithm and
/// the expiry (and the audience when given).
pub(crate) fn verify_with<T: serde::de::DeserializeOwned>(
    token: &str,
    keys: &[PublicKey],
    audience: Option<&str>,
) -> Result<T, ApiError> {
    let invalid = || ApiError::unauthorized("invalid token");
    let header = decode_header(token).map_err(|_| invalid())?;
    if header.alg != Algorithm::EdDSA {
        return Err(invalid());
    }
    let kid = header.kid.ok_or_else(invalid)?;
    let key = keys.iter().find(|k| k.kid == kid).ok_or_else(invalid)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_required_spec_claims(&["exp", "iat"]);
    match audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    decode::<T>(token, &key.decoding, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                ApiError::unauthorized("session expired; log in again")
            }
            _ => invalid(),
        })
}

pub use crate::service_auth::ServiceCaller;

impl From<Claims> for Principal {
    fn from(claims: Claims) -> Principal {
        Principal {
            user_id: claims.sub,
            username: claims.name,
            role: claims.role,
            store_id: claims.store_id,
        }
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

/// True for the event-stream routes (`.../stream`): EventSource cannot set
/// headers, so only there may the token come in the query.
fn is_stream(path: &str) -> bool {
    path.ends_with("/stream")
}

/// Reads the token from `Authorization: Bearer ...` or, on an event
/// stream only, from an `access_token` query parameter.
pub fn token_from_parts(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))?;
        return Some(token.trim().to_string());
    }
    stream_query(parts, "access_token")
}

/// A query parameter of an event-stream route; None elsewhere.
fn stream_query(parts: &Parts, name: &str) -> Option<String> {
    if !is_stream(parts.uri.path()) {
        return None;
    }
    parts.uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_string())
    })
}

impl<S> FromRequestParts<S> for Principal
where
    TokenKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = TokenKeys::from_ref(state);
        if let Some(ticket) = stream_query(parts, "ticket") {
            return keys.verify_stream_ticket(&ticket);
        }
        let token = token_from_parts(parts)
            .ok_or_else(|| ApiError::unauthorized("log in first: missing bearer token"))?;
        keys.verify(&token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Principal {
        Principal {
            user_id: 2,
            username: "owner".into(),
            role: Role::Owner,
            store_id: Some(1),
        }
    }

    #[test]
    fn a_token_carries_the_principal_and_a_forged_one_is_refused() {
        let keys = TokenKeys::ephemeral();
        let token = keys.issue(&owner()).expect("issue");
        assert_eq!(keys.verify(&token).expect("verify"), owner());
        let other = TokenKeys::ephemeral();
        let forged = other.issue(&owner()).expect("issue");
        assert_eq!(
            keys.verify(&forged).expect_err("forged").status,
            axum::http::StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn a_verifier_with_the_public_keys_accepts_old_and_new_keys_during_a_rotation() {
        let (old, _) = PrivateKey::generate();
        let (new, _) = PrivateKey::generate();
        let old_issuer = TokenKeys::issuer(old.clone(), Vec::new());
        let new_issuer = TokenKeys::issuer(new.clone(), vec![old.public.clone()]);
        let verifier = TokenKeys::verifier(vec![new.public.clone(), old.public.clone()]);
        let before = old_issuer.issue(&owner()).expect("issue");
        let after = new_issuer.issue(&owner()).expect("issue");
        assert!(verifier.verify(&before).is_ok());
        assert!(verifier.verify(&after).is_ok());
        assert!(new_issuer.verify(&before).is_ok());
        assert_eq!(new_issuer.jwks()["keys"].as_array().map(Vec::len), Some(2));
        let retired = TokenKeys::verifier(vec![new.public]);
        assert!(retired.verify(&before).is_err());
    }

    #[test]
    fn an_unsigned_or_symmetric_token_is_refused() {
        let keys = TokenKeys::ephemeral();
        let claims = Claims {
            sub: 5,
            name: "admin".into(),
            role: Role::Admin,
            store_id: None,
            iat: 0,
            exp: i64::MAX / 2,
            jti: "x".into(),
            scope: None,
        };
        let hs = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"change-me"),
        )
        .expect("encode");
        assert!(keys.verify(&hs).is_err());
    }

    #[test]
    fn a_revoked_users_earlier_tokens_are_refused() {
        let keys = TokenKeys::ephemeral();
        let token = keys.issue(&owner()).expect("issue");
        keys.clone()
            .revocations()
            .revoke(2, crate::clock::now_ms() / 1000, ACCESS_TOKEN_TTL_SECS);
        assert!(keys.verify(&token).is_err());
    }

    #[test]
    fn a_stream_ticket_opens_one_stream_once_and_is_no_access_token() {
        let keys = TokenKeys::ephemeral();
        let ticket = keys.issue_stream_ticket(&owner()).expect("ticket");
        assert!(keys.verify(&ticket).is_err());
        assert_eq!(keys.verify_stream_ticket(&ticket).expect("first"), owner());
        assert!(keys.verify_stream_ticket(&ticket).is_err());
        let token = keys.issue(&owner()).expect("token");
        assert!(keys.verify_stream_ticket(&token).is_err());
    }

    #[test]
    fn the_query_token_counts_on_event_streams_only() {
        let parts = |uri: &str| {
            axum::http::Request::get(uri)
                .body(())
                .expect("request")
                .into_parts()
                .0
        };
        assert_eq!(
            token_from_parts(&parts("/notifications/stream?access_token=t")).as_deref(),
            Some("t")
        );
        assert_eq!(token_from_parts(&parts("/orders?access_token=t")), None);
        assert_eq!(
            token_from_parts(&parts("/notifications/stream/x?access_token=t")),
            None
        );
    }
}
