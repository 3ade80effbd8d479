//! The one mapping from errors to HTTP: `application/problem+json`
//! (RFC 9457) with the right status, and a JSON extractor whose rejections
//! come out the same way.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

/// The problem member naming the service whose unavailability a 503
/// relays (`"dependency": "payment"`): a gateway then knows the service
/// that answered is fine and keeps it in rotation.
pub const DEPENDENCY: &str = "dependency";

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    /// Extra members of the problem object, e.g. `currentStatus` on a 409.
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            title,
            detail: detail.into(),
            extra: Map::new(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "Bad request", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "Forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "Not found", detail)
    }

    pub fn unprocessable(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request", detail)
    }

    /// An illegal state transition; the body names the current status.
    pub fn conflict(detail: impl Into<String>, current_status: &str) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "Conflict", detail)
            .with("currentStatus", Value::String(current_status.to_string()))
    }

    pub fn unavailable(detail: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable",
            detail,
        )
    }

    /// 503 because a service this one calls is unavailable, not this one.
    pub fn dependency_unavailable(dependency: &str, detail: impl Into<String>) -> ApiError {
        ApiError::unavailable(detail).with(DEPENDENCY, Value::String(dependency.to_string()))
    }

    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", detail)
    }

    pub fn with(mut self, key: &str, value: Value) -> ApiError {
        self.extra.insert(key.to_string(), value);
        self
    }

    pub fn body(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("type".into(), json!("about:blank"));
        obj.insert("title".into(), json!(self.title));
        obj.insert("status".into(), json!(self.status.as_u16()));
        obj.insert("detail".into(), json!(self.detail));
        for (k, v) in &self.extra {
            obj.insert(k.clone(), v.clone());
        }
        Value::Object(obj)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.title,
            self.detail
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), detail = %self.detail, "request failed");
        }
        let body = self.body().to_string();
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> ApiError {
        ApiError::internal(format!("database: {err}"))
    }
}

/// `axum::Json`, with malformed JSON answered 400, a well-formed body of the
/// wrong shape 422, a missing content type 415 and an oversized body 413, all
/// as problem+json.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(rejection_to_problem(rejection)),
        }
    }
}

fn rejection_to_problem(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::unprocessable(e.body_text()),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(e.body_text()),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            "expected Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Payload too large",
                e.body_text(),
            )
        }
        other => ApiError::new(other.status(), "Bad request", other.body_text()),
    }
}

/// A JSON body read but not yet decoded, so that a handler can check who is
/// asking (403) before it judges what they sent (400/422).
#[derive(Debug, Clone)]
pub struct JsonBody {
    bytes: axum::body::Bytes,
    json_content_type: bool,
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "Payload too large",
                        e.body_text(),
                    )
                } else {
                    ApiError::bad_request(e.body_text())
                }
            })?;
        Ok(JsonBody {
            bytes,
            json_content_type,
        })
    }
}

impl JsonBody {
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if !self.json_content_type {
            return Err(rejection_to_problem(JsonRejection::MissingJsonContentType(
                Default::default(),
            )));
        }
        axum::Json::<T>::from_bytes(&self.bytes)
            .map(|axum::Json(v)| v)
            .map_err(rejection_to_problem)
    }
}

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Answer for a path no service serves.
pub async fn not_found_fallback() -> ApiError {
    ApiError::not_found("no such resource")
}
