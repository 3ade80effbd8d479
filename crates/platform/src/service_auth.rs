//! Service-to-service identity: a service that calls another signs a
//! short-lived token of its own (its own Ed25519 key, not identity's),
//! addressed to the callee and naming only what it may do there, e.g.
//! `payment:charge`. A callee accepts it on the endpoints that require that
//! scope and nowhere else; a user's token, even an admin's, is no service
//! token.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use jsonwebtoken::{encode, Algorithm, Header};
use serde::{Deserialize, Serialize};

use crate::auth::TokenKeys;
use crate::problem::ApiError;
use crate::signing_keys::PrivateKey;

/// How long a service token is valid: one call, its retries included.
pub const SERVICE_TOKEN_TTL_SECS: i64 = 60;

/// Order charges a payment.
pub const PAYMENT_CHARGE: &str = "payment:charge";
/// Order cancels a store's order.
pub const STORE_ORDER_CANCEL: &str = "store-order:cancel";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ServiceClaims {
    /// `service:<name>`.
    pub sub: String,
    pub aud: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// A service's signing key and name.
#[derive(Clone, Debug)]
pub struct ServiceSigner {
    name: String,
    key: PrivateKey,
}

impl ServiceSigner {
    pub fn new(name: &str, key: PrivateKey) -> ServiceSigner {
        ServiceSigner {
            name: name.to_string(),
            key,
        }
    }

    /// A token for one call to `audience` allowed to do `scope` there.
    pub fn token(&self, audience: &str, scope: &str) -> Result<String, ApiError> {
        let now = crate::clock::now_ms() / 1000;
        let claims = ServiceClaims {
            sub: format!("service:{}", self.name),
            aud: audience.to_string(),
            scope: scope.to_string(),
            iat: now,
            exp: now + SERVICE_TOKEN_TTL_SECS,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.key.public.kid.clone());
        encode(&header, &claims, &self.key.encoding)
            .map_err(|e| ApiError::internal(format!("cannot sign a service token: {e}")))
    }
}

/// The service a request comes from, with what it may do here.
#[derive(Debug, Clone)]
pub struct ServiceCaller {
    pub service: String,
    pub scopes: Vec<String>,
}

impl ServiceCaller {
    /// 403 unless the caller's token grants `scope`.
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{} may not {scope}",
                self.service
            )))
        }
    }

    /// `service:order`, as written in events' `actor`.
    pub fn actor(&self) -> String {
        self.service.clone()
    }
}

impl<S> FromRequestParts<S> for ServiceCaller
where
    TokenKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = TokenKeys::from_ref(state);
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::unauthorized("missing service token"))?;
        match keys.verify_service(token.trim()) {
            Ok(caller) => Ok(caller),
            // A valid user's token, even an admin's, is not enough here.
            Err(_) if keys.verify(token.trim()).is_ok() => Err(ApiError::forbidden(
                "only another service of the platform may call this",
            )),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Principal;

    fn callee(audience: &str, signer: &ServiceSigner) -> TokenKeys {
        TokenKeys::ephemeral().with_services(audience, vec![signer.key.public.clone()])
    }

    #[test]
    fn a_service_token_is_accepted_by_its_audience_with_its_scope_only() {
        let order = ServiceSigner::new("order", PrivateKey::generate().0);
        let payment = callee("payment", &order);
        let token = order.token("payment", PAYMENT_CHARGE).expect("token");
        let caller = payment.verify_service(&token).expect("accepted");
        assert!(caller.require(PAYMENT_CHARGE).is_ok());
        assert!(caller.require(STORE_ORDER_CANCEL).is_err());
        // Addressed to payment: the store refuses it.
        let store = callee("store", &order);
        assert!(store.verify_service(&token).is_err());
        // Nor is it a user's token anywhere.
        assert!(payment.verify(&token).is_err());
    }

    #[test]
    fn a_users_token_is_no_service_token_and_a_stranger_cannot_sign_one() {
        let order = ServiceSigner::new("order", PrivateKey::generate().0);
        let payment = callee("payment", &order);
        let admin = payment.issue(&Principal::system()).expect("issue");
        assert!(payment.verify_service(&admin).is_err());
        let stranger = ServiceSigner::new("order", PrivateKey::generate().0);
        let forged = stranger.token("payment", PAYMENT_CHARGE).expect("token");
        assert!(payment.verify_service(&forged).is_err());
    }
}
