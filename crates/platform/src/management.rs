//! What only an operator may do to a process: mark it down or up (the
//! failover drill) and read its metrics, which name its routes, peers,
//! consumers and backlogs. Each process offers them on its management
//! listener (bound to loopback unless configured otherwise) and, on its
//! public listener, to an admin's token only; the public gateway never
//! routes them.

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use contracts::Role;

use crate::actuator::Actuator;
use crate::metrics::Metrics;
use crate::{Principal, TokenKeys};

/// `PUT /actuator/down|up` and `GET /metrics`, for the management
/// listener as they are.
pub fn operations(actuator: &Actuator, metrics: &Metrics) -> Router {
    actuator.operations().merge(metrics.router())
}

/// `routes`, answered only for a request with an admin's token (401
/// without a token, 403 with another role's).
pub fn for_admins(routes: Router, keys: TokenKeys) -> Router {
    routes.route_layer(from_fn_with_state(keys, require_admin))
}

async fn require_admin(State(keys): State<TokenKeys>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let who =
        <Principal as FromRequestParts<TokenKeys>>::from_request_parts(&mut parts, &keys).await;
    match who.and_then(|who| who.require(&[Role::Admin])) {
        Ok(()) => next.run(Request::from_parts(parts, body)).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt;

    async fn put_down(app: &Router, token: Option<&str>) -> StatusCode {
        let mut req = axum::http::Request::put("/actuator/down");
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = req.body(Body::empty()).expect("request");
        app.clone().oneshot(req).await.expect("answer").status()
    }

    #[tokio::test]
    async fn only_an_admin_marks_a_process_down_on_the_public_listener() {
        let keys = TokenKeys::ephemeral();
        let actuator = Actuator::new("test");
        let metrics = Metrics::new("test").expect("metrics");
        let public = for_admins(operations(&actuator, &metrics), keys.clone());
        let issue = |role: Role| {
            keys.issue(&Principal {
                user_id: 7,
                username: "someone".into(),
                role,
                store_id: None,
            })
            .expect("token")
        };
        assert_eq!(put_down(&public, None).await, StatusCode::UNAUTHORIZED);
        for role in [Role::Customer, Role::Owner, Role::Rider] {
            assert_eq!(
                put_down(&public, Some(&issue(role))).await,
                StatusCode::FORBIDDEN
            );
        }
        let scrape = axum::http::Request::get("/metrics")
            .body(Body::empty())
            .expect("request");
        let resp = public.clone().oneshot(scrape).await.expect("answer");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(actuator.is_healthy());
        assert_eq!(
            put_down(&public, Some(&issue(Role::Admin))).await,
            StatusCode::OK
        );
        assert!(!actuator.is_healthy());
    }
}
