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
        JsonBody::from_request(req, state)
            .await?
            .parse()
            .map(ApiJson)
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
                } else if timed_out(&e) {
                    body_timed_out()
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

/// The answer to a body that could not be read whole (`to_bytes` failed):
/// 408 when it missed the server's body deadline, else 413 (over the
/// limit, the only other way a body read by a middleware fails).
pub fn unreadable_body(e: &axum::Error) -> ApiError {
    if timed_out(e) {
        return body_timed_out();
    }
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Payload too large",
        "request body too large",
    )
}

fn body_timed_out() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "Request timeout",
        "the request body did not arrive in time",
    )
}

/// Whether reading the body failed on the server's body deadline.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if err.is::<crate::server::BodyTimedOut>() {
            return true;
        }
        cause = err.source();
    }
    false
}

impl JsonBody {
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if !self.json_content_type {
            return Err(rejection_to_problem(JsonRejection::MissingJsonContentType(
                Default::default(),
            )));
        }
        let value = axum::Json::<T>::from_bytes(&self.bytes)
            .map(|axum::Json(v)| v)
            .map_err(rejection_to_problem)?;
        // Well-formed (the typed parse passed), so this parse succeeds too.
        if let Ok(raw) = serde_json::from_slice::<Value>(&self.bytes) {
            refuse_control_characters(&raw)?;
        }
        Ok(value)
    }
}

/// Characters no text may hold: C0 controls (NUL, BEL, newline, ...),
/// DEL, C1 controls, and the bidirectional overrides and isolates that make
/// a text read differently from what it holds (an address that displays
/// reversed in an owner's or rider's list).
pub fn is_refused_char(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// 422 naming the first text (a string, or an object's key) of a JSON
/// body that holds a refused character, by its JSON pointer. Done once
/// here, before any handler sees the body, so that none can forget it.
pub fn refuse_control_characters(body: &Value) -> Result<(), ApiError> {
    match first_refused(body, String::new()) {
        None => Ok(()),
        Some(at) => Err(ApiError::unprocessable(format!(
            "text may not hold control or bidirectional-override characters (at {})",
            if at.is_empty() { "/" } else { at.as_str() }
        ))
        .with("pointer", Value::String(at))),
    }
}

fn first_refused(value: &Value, at: String) -> Option<String> {
    let refused = |s: &str| s.chars().any(is_refused_char);
    match value {
        Value::String(s) => refused(s).then_some(at),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| first_refused(v, format!("{at}/{i}"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            // A pointer escapes `~` and `/` in a key (RFC 6901); a key
            // with a refused character is named by its position instead.
            if refused(k) {
                return Some(format!("{at}/(a key)"));
            }
            let key = k.replace('~', "~0").replace('/', "~1");
            first_refused(v, format!("{at}/{key}"))
        }),
        _ => None,
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

/// A layer for every router: a client error that leaves with no body and
/// no type — axum's 405 for a method a route does not take is one — is
/// given a problem body, its headers (`Allow`) kept, so that every
/// rejection reads the same.
pub async fn bare_rejections_as_problems(req: Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let response = next.run(req).await;
    let status = response.status();
    let bare = status.is_client_error()
        && !response.headers().contains_key(header::CONTENT_TYPE)
        && axum::body::HttpBody::size_hint(response.body()).exact() == Some(0);
    if !bare {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    // axum may add `Allow` outside this layer: the detail does not rely on it.
    let detail = if status == StatusCode::METHOD_NOT_ALLOWED {
        format!("{method} is not allowed on this resource (the Allow header lists what is)")
    } else {
        status
            .canonical_reason()
            .unwrap_or("refused")
            .to_lowercase()
    };
    let title = match status {
        StatusCode::METHOD_NOT_ALLOWED => "Method not allowed",
        _ => status.canonical_reason().unwrap_or("Client error"),
    };
    let (problem, body) = ApiError::new(status, title, detail)
        .into_response()
        .into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(problem.headers);
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use proptest::prelude::*;
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

    #[tokio::test]
    async fn a_500_names_an_incident_and_never_the_database_text() {
        let leak = "relation \"secret_users\" does not exist";
        for error in [
            ApiError::from(sqlx::Error::Protocol(leak.into())),
            ApiError::internal(leak),
        ] {
            let resp = error.into_response();
            assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let bytes = axum::body::to_bytes(resp.into_body(), 4096)
                .await
                .expect("body");
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("secret_users"), "{text}");
            let body: Value = serde_json::from_slice(&bytes).expect("json");
            assert_eq!(body["detail"], INTERNAL_DETAIL);
            assert!(
                body["incident"]
                    .as_str()
                    .is_some_and(|id| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())),
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn a_method_a_route_does_not_take_is_a_problem_that_keeps_allow() {
        let app = Router::new()
            .route("/orders", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(bare_rejections_as_problems));
        let resp = app
            .oneshot(
                Request::delete("/orders")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("answer");
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[header::ALLOW], "GET,HEAD");
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let bytes = axum::body::to_bytes(resp.into_body(), 4096)
            .await
            .expect("body");
        let body: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(body["status"], 405);
        assert!(body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("DELETE")));
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

    #[test]
    fn control_and_bidi_characters_are_refused_and_named_by_pointer() {
        for bad in [
            "a\u{0}b",
            "ring\u{7}",
            "line\nbreak",
            "tab\t",
            "\u{7f}",
            "\u{85}",
            "\u{202e}evil",
            "\u{2066}x\u{2069}",
        ] {
            let body = json!({"menuName": "pizza", "address": bad});
            let e = refuse_control_characters(&body).expect_err(bad);
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(e.extra["pointer"], "/address");
        }
        let nested = json!({"items": [{"name": "ok"}, {"name": "x\u{1b}[31m"}]});
        assert_eq!(
            refuse_control_characters(&nested)
                .expect_err("nested")
                .extra["pointer"],
            "/items/1/name"
        );
        let key = json!({"a\u{0}": 1});
        assert!(refuse_control_characters(&key).is_err());
        for good in [
            "수원시 영통구 123-4",
            "Crème brûlée",
            "emoji 🍕",
            "right-to-left عربى",
            "\u{200d}",
        ] {
            assert!(
                refuse_control_characters(&json!({"address": good, "qty": 2})).is_ok(),
                "{good}"
            );
        }
    }

    proptest! {
        /// Whatever text a client sends, it is refused exactly when one of
        /// its characters is, wherever in the body it sits.
        #[test]
        fn text_is_refused_exactly_when_it_holds_a_refused_character(
            text in any::<String>(),
            depth in 0usize..3,
        ) {
            let mut body = Value::String(text.clone());
            for _ in 0..depth {
                body = json!({"field": [body]});
            }
            let refused = refuse_control_characters(&body).is_err();
            prop_assert_eq!(refused, text.chars().any(is_refused_char));
        }

        #[test]
        fn every_refused_character_is_caught_among_ordinary_text(
            prefix in "[a-zA-Z0-9 가-힣]{0,12}",
            c in prop::sample::select(
                (0u32..0x20).chain(0x7f..0xa0).chain(0x202a..0x202f).chain(0x2066..0x206a)
                    .filter_map(char::from_u32)
                    .collect::<Vec<_>>()
            ),
            suffix in "[a-zA-Z0-9 가-힣]{0,12}",
        ) {
            let body = json!({"address": format!("{prefix}{c}{suffix}")});
            prop_assert!(refuse_control_characters(&body).is_err());
        }
    }

    #[tokio::test]
    async fn api_json_refuses_a_body_with_a_control_character_before_any_handler() {
        #[derive(serde::Deserialize)]
        struct Order {
            #[allow(dead_code)]
            address: String,
        }
        let req = |body: &str| {
            axum::http::Request::post("/")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.to_string()))
                .expect("request")
        };
        let refused = ApiJson::<Order>::from_request(req(r#"{"address":"a\u0000b"}"#), &()).await;
        assert_eq!(
            refused.err().map(|e| e.status),
            Some(StatusCode::UNPROCESSABLE_ENTITY)
        );
        let fine = ApiJson::<Order>::from_request(req(r#"{"address":"suwon"}"#), &()).await;
        assert!(fine.is_ok());
    }
}
