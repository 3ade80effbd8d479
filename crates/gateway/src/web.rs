//! The web UI, embedded in the binary so that running it needs nothing but
//! the binary: the files under `web/` are compiled in and served at `/` and
//! their own paths. File names carry no content hash, so every answer says
//! `no-cache` with a strong `ETag`: the browser keeps its copy and
//! revalidates it, and a new build is seen on the next load.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file.
struct Asset {
    /// The path it is served at.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/", $file)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("/", "index.html", "text/html; charset=utf-8"),
    asset!("/index.html", "index.html", "text/html; charset=utf-8"),
    asset!("/api.html", "api.html", "text/html; charset=utf-8"),
    asset!("/app.css", "app.css", "text/css; charset=utf-8"),
    asset!("/favicon.svg", "favicon.svg", "image/svg+xml"),
    asset!("/js/app.js", "js/app.js", JS),
    asset!("/js/api.js", "js/api.js", JS),
    asset!("/js/ui.js", "js/ui.js", JS),
    asset!("/js/customer.js", "js/customer.js", JS),
    asset!("/js/owner.js", "js/owner.js", JS),
    asset!("/js/rider.js", "js/rider.js", JS),
    asset!("/js/admin.js", "js/admin.js", JS),
    asset!("/js/apidocs.js", "js/apidocs.js", JS),
];

/// The page may load only its own scripts and styles and talk only to its
/// own origin.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// FNV-1a, evaluated at compile time: a stable validator per build.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// The routes of every embedded file.
pub fn router() -> Router {
    let mut router = Router::new();
    for asset in ASSETS {
        let etag = format!("\"{:016x}\"", fnv1a(asset.body));
        router = router.route(
            asset.path,
            get(move |headers: HeaderMap| async move { serve(asset, &etag, &headers) }),
        );
    }
    router
}

fn serve(asset: &'static Asset, etag: &str, request: &HeaderMap) -> Response {
    let etag_value = HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, etag_value);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if asset.content_type.starts_with("text/html") {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    (StatusCode::OK, headers, asset.body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use std::future::Future;
    use tower::ServiceExt;

    /// Static answers never wait on I/O, so polling with a no-op waker
    /// finishes them without an async runtime.
    fn get_path(path: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(tag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        let mut fut = std::pin::pin!(router().oneshot(req.body(Body::empty()).expect("request")));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(res) = fut.as_mut().poll(&mut cx) {
                return res.expect("infallible");
            }
        }
    }

    #[test]
    fn the_page_and_its_assets_are_served_with_their_types() {
        for (path, want) in [
            ("/", "text/html; charset=utf-8"),
            ("/api.html", "text/html; charset=utf-8"),
            ("/js/apidocs.js", JS),
            ("/app.css", "text/css; charset=utf-8"),
            ("/js/app.js", JS),
            ("/favicon.svg", "image/svg+xml"),
        ] {
            let res = get_path(path, None);
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert_eq!(res.headers()[header::CONTENT_TYPE], want, "{path}");
            assert_eq!(res.headers()[header::CACHE_CONTROL], "no-cache", "{path}");
        }
        let page = get_path("/", None);
        assert!(page.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    }

    #[test]
    fn a_cached_copy_is_revalidated_with_its_etag() {
        let first = get_path("/js/api.js", None);
        let etag = first.headers()[header::ETAG]
            .to_str()
            .expect("ascii")
            .to_string();
        let again = get_path("/js/api.js", Some(&etag));
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let stale = get_path("/js/api.js", Some("\"other\""));
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            let text = std::str::from_utf8(asset.body).expect("utf-8");
            // Static and dynamic imports alike name siblings as './x.js'.
            for (start, _) in text.match_indices("'./") {
                let rest = &text[start + 3..];
                let name = &rest[..rest.find('\'').expect("closing quote")];
                let path = format!("/js/{name}");
                assert!(
                    ASSETS.iter().any(|a| a.path == path),
                    "{} imports {path}, which is not embedded",
                    asset.path
                );
            }
        }
    }
}
