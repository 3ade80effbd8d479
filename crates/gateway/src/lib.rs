//! The gateway: one front door that routes the seed's paths to the
//! services. In the all-in-one shape the services are routers in the same
//! process and routing is by path inside one axum router; in the
//! distributed shape `proxy` forwards by the route table built from the
//! services' descriptions (`proxy::Routes::of(&services::ALL)`).

pub mod front_door;
pub mod proxy;
pub mod web;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;
use platform::admission::{Admission, Limits};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

/// Which browser origins may call the API.
/// The gateway's port in the distributed shape (the original's).
pub const DEFAULT_PORT: u16 = 8088;

#[derive(Debug, Clone, Default)]
pub enum Cors {
    /// Same origin only (the web UI is served by the gateway itself).
    #[default]
    SameOrigin,
    Any,
    List(Vec<String>),
}

impl Cors {
    /// `*` for any origin, or a comma-separated list; empty for none.
    pub fn parse(spec: &str) -> Cors {
        match spec.trim() {
            "" => Cors::SameOrigin,
            "*" => Cors::Any,
            list => Cors::List(
                list.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
            ),
        }
    }

    fn layer(&self) -> Option<CorsLayer> {
        let base = CorsLayer::new()
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("last-event-id"),
            ]);
        match self {
            Cors::SameOrigin => None,
            Cors::Any => Some(base.allow_origin(AllowOrigin::any())),
            Cors::List(origins) => {
                let values: Vec<HeaderValue> = origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok())
                    .collect();
                Some(base.allow_origin(values))
            }
        }
    }
}

/// Joins the services' routers under one listener, with the limits and
/// answers that hold for every path: body size, unknown paths and
/// refused methods as problem+json, CORS and request tracing.
pub fn all_in_one(services: Vec<Router>, cors: &Cors) -> Router {
    let admission = Admission::new(Limits::from_env());
    edge(
        merge(services)
            .fallback(platform::problem::not_found_fallback)
            .layer(from_fn_with_state(admission, platform::admission::layer)),
        cors,
    )
}

/// The gateway of a fleet: its own routes (actuator, web UI) and, for every
/// other path, the proxy to the service that owns it.
pub fn distributed(own: Vec<Router>, proxy: &proxy::Proxy, cors: &Cors) -> Router {
    edge(
        merge(own)
            .merge(proxy.router())
            .layer(axum::middleware::from_fn(front_door::no_internal_endpoints)),
        cors,
    )
}

fn merge(routers: Vec<Router>) -> Router {
    routers.into_iter().fold(Router::new(), Router::merge)
}

fn edge(app: Router, cors: &Cors) -> Router {
    let app = app
        .layer(from_fn(platform::problem::bare_rejections_as_problems))
        .layer(DefaultBodyLimit::max(platform::idempotency::BODY_LIMIT))
        .layer(from_fn(front_door::security_headers))
        .layer(
            TraceLayer::new_for_http()
                // The path alone: a query may carry a token (the SSE
                // stream's `access_token`).
                .make_span_with(|req: &axum::http::Request<axum::body::Body>| {
                    tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
                })
                // A 5xx is logged once, where its cause is known (the
                // problem mapping, the proxy), not a second time here
                // without it.
                .on_failure(()),
        );
    let app = match cors.layer() {
        Some(layer) => app.layer(layer),
        None => app,
    };
    // Outermost: a path that could resolve differently further in never
    // reaches a route.
    app.layer(from_fn(front_door::normalised_paths))
}
