//! The one mapping from errors to HTTP: `application/problem+json`
//! (RFC 9457) with the right status, and a JSON extractor whose rejections
//! come out the same way.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use crate::db::Fault;
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
    /// Seconds for a `Retry-After` header: the failure is passing.
    pub retry_after: Option<u64>,
    /// What went wrong inside, for the log only: never sent to the client.
    pub cause: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            title,
            detail: detail.into(),
            extra: Map::new(),
            retry_after: None,
            cause: None,
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

    /// Tells the client when to try again (`Retry-After`).
    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    /// Keeps the internal error for the log.
    pub fn caused_by(mut self, cause: impl std::fmt::Display) -> ApiError {
        self.cause = Some(cause.to_string());
        self
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
        // A 500 is a bug: what it says is for the log, not for the client.
        let detail = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            INTERNAL_DETAIL
        } else {
            self.detail.as_str()
        };
        obj.insert("detail".into(), json!(detail));
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
    fn into_response(mut self) -> Response {
        let cause = self.cause.take().unwrap_or_default();
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            // A bug: the client gets an incident id that names the log line
            // with what happened, never the internals themselves.
            let incident = uuid::Uuid::new_v4().simple().to_string();
            tracing::error!(incident = %incident, detail = %self.detail, cause, "request failed");
            self.extra.insert("incident".into(), json!(incident));
        } else if self.status.is_server_error() {
            // Unavailable or late: the system is degraded, not broken.
            tracing::warn!(status = self.status.as_u16(), detail = %self.detail, cause, "request refused for now");
        }
        let body = self.body().to_string();
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        resp
    }
}

/// All a client is told about a 500.
pub const INTERNAL_DETAIL: &str = "an internal error occurred";

/// How long a client should wait before retrying after a full disk: space
/// comes back by an operator's hand, not in milliseconds.
pub const RETRY_AFTER_FULL: u64 = 5;
/// ... and after the database was unreachable or busy.
pub const RETRY_AFTER_UNAVAILABLE: u64 = 1;

impl From<sqlx::Error> for ApiError {
    /// A passing fault (full disk, database away) is a 503 the client may
    /// retry; anything else is a bug, a 500. Neither shows the error itself.
    fn from(err: sqlx::Error) -> ApiError {
        match Fault::of(&err) {
            Some(Fault::Full) => ApiError::unavailable("out of storage space; try again later")
                .retry_after(RETRY_AFTER_FULL),
            Some(Fault::Unavailable) => {
                ApiError::unavailable("the database is unavailable; try again shortly")
                    .retry_after(RETRY_AFTER_UNAVAILABLE)
            }
            None => ApiError::internal(INTERNAL_DETAIL),
        }
        .caused_by(format!("database: {err}"))
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

/// `axum::extract::Path`, with a parameter that does not parse (an id that
/// is not a number) answered 400 as problem+json, not as plain text.
#[derive(Debug, Clone, Copy)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "Bad request",
                rejection.body_text(),
            )),
        }
    }
}

/// `axum::extract::Query`, with a query that does not parse (`limit=abc`)
/// answered 400 as problem+json, not as plain text.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    #[derive(Debug, serde::Deserialize)]
    struct Page {
        #[allow(dead_code)]
        limit: Option<i64>,
    }

    async fn answer(uri: &str) -> (StatusCode, String, Value) {
        let app = Router::new()
            .route(
                "/orders/{id}",
                get(|ApiPath(id): ApiPath<i64>| async move { id.to_string() }),
            )
            .route("/orders", get(|ApiQuery(_): ApiQuery<Page>| async { "ok" }));
        let resp = app
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("answer");
        let status = resp.status();
        let content_type = resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .to_string();
        let bytes = axum::body::to_bytes(resp.into_body(), 4096)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, content_type, body)
    }

    /// axum's own rejections answer text/plain, which no client of a
    /// problem+json API expects (the OpenAPI contract fuzz found them).
    #[tokio::test]
    async fn a_path_or_query_parameter_that_does_not_parse_is_a_problem() {
        for uri in [
            "/orders/abc",
            "/orders/99999999999999999999",
            "/orders?limit=abc",
        ] {
            let (status, content_type, body) = answer(uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(content_type, "application/problem+json", "{uri}");
            assert_eq!(body["status"], 400, "{uri}");
        }
        assert_eq!(answer("/orders/7").await.0, StatusCode::OK);
        assert_eq!(answer("/orders?limit=7").await.0, StatusCode::OK);
    }
}
