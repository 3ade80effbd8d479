//! What the public front door (the all-in-one's listener, the fleet's
//! gateway) checks before a request reaches a route, and what every answer
//! carries.

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use platform::ApiError;

/// Why a path is refused before routing, if it is. A path is taken as
/// sent, segment by segment: a `.` or `..` segment (also percent-encoded,
/// `%2e%2e`), an empty segment (`//`) other than a trailing slash, a
/// backslash, or an encoded `/` or control character would let the path
/// that was checked and the path a service resolves differ (the gateway
/// once resolved `/identity/actuator/../metrics` to identity's `/metrics`).
pub fn refused_path(path: &str) -> Option<&'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Some("a path starts with /");
    };
    if rest.is_empty() {
        return None;
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            if i == last {
                continue;
            }
            return Some("a path may not hold an empty segment (//)");
        }
        let decoded = percent_decode_str(segment).collect::<Vec<u8>>();
        if decoded == b"." || decoded == b".." {
            return Some("a path may not hold . or .. segments");
        }
        if decoded
            .iter()
            .any(|b| matches!(b, b'/' | b'\\') || b.is_ascii_control())
        {
            return Some(
                "a path may not hold a backslash, an encoded slash or a control character",
            );
        }
    }
    None
}

/// Endpoints that only services call (Order charges through `POST
/// /payments` and withdraws a store order through `PUT
/// /storeOrders/{id}/cancel`): a client reaching them through the gateway
/// would skip the order's own rules.
pub fn internal_only(method: &Method, path: &str) -> bool {
    let decoded = percent_decode_str(path).decode_utf8_lossy();
    let segments: Vec<&str> = decoded.trim_matches('/').split('/').collect();
    matches!(
        (method, segments.as_slice()),
        (&Method::POST, ["payments"]) | (&Method::PUT, ["storeOrders", _, "cancel"])
    )
}

/// Middleware: 400 for a path `refused_path` refuses.
pub async fn normalised_paths(req: Request, next: Next) -> Response {
    match refused_path(req.uri().path()) {
        Some(why) => ApiError::bad_request(why).into_response(),
        None => next.run(req).await,
    }
}

/// Middleware: 404 for an endpoint only services call.
pub async fn no_internal_endpoints(req: Request, next: Next) -> Response {
    if internal_only(req.method(), req.uri().path()) {
        return ApiError::not_found("no such resource").into_response();
    }
    next.run(req).await
}

/// Middleware: every answer tells the browser not to guess its type
/// (`nosniff`), and one that says nothing of caching is not stored
/// (`no-store`): API answers carry tokens (the login), addresses and
/// orders. The web UI's files say `no-cache` themselves and keep it.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let headers = resp.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_empty_segments_backslashes_and_encoded_slashes_are_refused() {
        for path in [
            "/identity/actuator/../metrics",
            "/identity/actuator/%2e%2e/metrics",
            "/identity/actuator/%2E%2e/metrics",
            "/identity/actuator/.%2e/metrics",
            "/orders/./1",
            "/orders/%2e",
            "/..",
            "//orders",
            "/orders//1",
            "/orders\\1",
            "/orders%5c1",
            "/orders%5C..%5C1",
            "/orders%2f1",
            "/orders%2F..%2Fmetrics",
            "/orders/%00",
            "/orders/a%0ab",
            "orders",
        ] {
            assert!(refused_path(path).is_some(), "{path} passed");
        }
        for path in [
            "/",
            "/orders",
            "/orders/",
            "/orders/12/cancel",
            "/menus/%ED%94%BC%EC%9E%90",
            "/delivery/actuator/echo",
            "/js/app.js",
            "/a.b/..c/...",
            "/orders%20x",
        ] {
            assert_eq!(refused_path(path), None, "{path} refused");
        }
    }

    #[test]
    fn only_the_internal_endpoints_are_internal() {
        assert!(internal_only(&Method::POST, "/payments"));
        assert!(internal_only(&Method::POST, "/payments/"));
        assert!(internal_only(&Method::POST, "/p%61yments"));
        assert!(internal_only(&Method::PUT, "/storeOrders/12/cancel"));
        assert!(internal_only(&Method::PUT, "/storeOrders/12/c%61ncel"));
        assert!(!internal_only(&Method::GET, "/payments"));
        assert!(!internal_only(&Method::GET, "/payments/12"));
        assert!(!internal_only(&Method::PUT, "/storeOrders/12/accept"));
        assert!(!internal_only(&Method::PUT, "/orders/12/cancel"));
    }
}
