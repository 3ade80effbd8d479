//! The OpenAPI description every service publishes at `/openapi.json`,
//! generated from its handlers' annotations and its types (utoipa): what
//! they share lives here, the problem+json error, the bearer scheme and the
//! error answers every operation may give, so each service describes only
//! its own operations.

use std::collections::BTreeMap;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::{IntoResponses, PartialSchema, ToSchema};

/// The media type of every error answer (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";
/// The name of the bearer security scheme; an operation's requirement lists
/// the roles allowed to call it (OpenAPI 3.1 allows roles for any scheme).
pub const BEARER: &str = "bearer";

/// The body of every error answer: `platform::ApiError` as sent.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "about:blank", "title": "Conflict", "status": 409,
    "detail": "cannot cancel: the order is Accepted", "currentStatus": "Accepted"
}))]
#[serde(rename_all = "camelCase")]
// Only described here: `ApiError::body` writes the same members.
#[allow(dead_code)]
pub struct Problem {
    /// Always `about:blank`: the status and title say what happened.
    #[schema(example = "about:blank")]
    r#type: String,
    title: String,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// What went wrong, for people; a 500 says no more than that it happened.
    detail: String,
    /// On a 409: the order's status now.
    #[serde(skip_serializing_if = "Option::is_none")]
    current_status: Option<String>,
    /// On a store's 409: the kitchen's status now.
    #[serde(skip_serializing_if = "Option::is_none")]
    cook_status: Option<String>,
    /// The order a declined payment or a payment timeout concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    order_id: Option<i64>,
    /// On a 503 relayed from another service: which one is unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    dependency: Option<String>,
    /// On a 500: the id of the log line that says what happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    incident: Option<String>,
}

fn problem(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

/// Declares error answers of an operation: `responses(..., BadBody, NotFound)`.
macro_rules! problems {
    ($($(#[$doc:meta])* $name:ident => [$(($status:literal, $text:literal)),+ $(,)?];)+) => {$(
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                [$(($status.to_string(), problem($text))),+].into_iter().collect()
            }
        }
    )+};
}

problems! {
    /// A JSON body that is malformed (400), too large (413), not JSON
    /// (415) or of the wrong shape or values (422).
    BadBody => [
        ("400", "Malformed JSON"),
        ("413", "Body too large"),
        ("415", "Not `Content-Type: application/json`"),
        ("422", "Well-formed JSON that is not a valid request"),
    ];
    /// A path or query parameter that does not parse, or an unknown value.
    BadParams => [("400", "A parameter is not of its type or not a known value")];
    /// The caller's role may not do this.
    Forbidden => [("403", "The caller's role may not do this")];
    /// Nothing by this id, or not the caller's to see.
    NotFound => [("404", "Not found, or not the caller's to see")];
    /// The change does not apply to the resource's current status.
    Conflict => [("409", "Not allowed in the resource's current status")];
    /// The caller has too many at once (live streams) or failed too often
    /// (logins); `Retry-After` says when to try again.
    TooMany => [("429", "Too many at once, or too many failures; see `Retry-After`")];
}

/// What every description shares: the problem schema, the bearer scheme,
/// 401 on every operation that needs a token, and 500/503 on every
/// operation (a bug; overload, a database or a peer away).
pub struct Common;

impl utoipa::Modify for Common {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components
            .schemas
            .insert("Problem".to_string(), Problem::schema());
        components.security_schemes.insert(
            BEARER.to_string(),
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A token from `POST /auth/login` or `POST /auth/register`, sent as `Authorization: Bearer <token>`. The roles listed for an operation are the ones allowed to call it.",
                    ))
                    .build(),
            ),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let has_parameters = path.contains('{');
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                qualify_id(op);
                add_common_answers(op, has_parameters);
            }
        }
    }
}

/// Operation ids must be unique in a merged description, and handlers of
/// different services share names (`list`, `show`): the id is the
/// operation's tag and its handler, `order.list`.
fn qualify_id(op: &mut Operation) {
    let tag = op.tags.as_ref().and_then(|t| t.first()).cloned();
    if let (Some(tag), Some(id)) = (tag, op.operation_id.as_mut()) {
        if !id.starts_with(&format!("{tag}.")) {
            *id = format!("{tag}.{id}");
        }
    }
}

fn add_common_answers(op: &mut Operation, has_parameters: bool) {
    let secured = op
        .security
        .as_ref()
        .is_some_and(|reqs| !reqs.is_empty() && reqs.iter().all(|r| !is_empty_requirement(r)));
    let answers = &mut op.responses.responses;
    if secured {
        answers
            .entry("401".into())
            .or_insert_with(|| problem("No token, or an invalid or expired one"));
    }
    if has_parameters {
        // The front door refuses a path parameter that would change the
        // path's meaning (`..`, an encoded slash, a control character).
        answers.entry("400".into()).or_insert_with(|| {
            problem("A path parameter holding a dot segment, a slash, a backslash or a control character")
        });
    }
    answers
        .entry("500".into())
        .or_insert_with(|| problem("A bug: the body carries only an incident id for the log"));
    answers.entry("503".into()).or_insert_with(|| {
        problem("At capacity, or a database or a service it needs is away; see `Retry-After`")
    });
}

fn is_empty_requirement(req: &utoipa::openapi::security::SecurityRequirement) -> bool {
    serde_json::to_value(req).is_ok_and(|v| v.as_object().is_some_and(|m| m.is_empty()))
}

/// Several services' descriptions as one, for the gateway and the
/// all-in-one: their paths and components side by side.
pub fn merge(title: &str, docs: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    let mut merged = OpenApi::new(
        utoipa::openapi::InfoBuilder::new()
            .title(title)
            .version(env!("CARGO_PKG_VERSION"))
            .description(Some(
                "Hanwha Delivery: every service's operations behind one front door. Errors are `application/problem+json`.",
            ))
            .build(),
        utoipa::openapi::Paths::new(),
    );
    for doc in docs {
        merged.merge(doc);
    }
    merged
}

/// `GET /openapi.json`: the description as JSON, rendered once.
pub fn router(doc: &serde_json::Value) -> Router {
    // Rendered once; each answer shares these bytes instead of copying them.
    let body = axum::body::Bytes::from(doc.to_string());
    Router::new().route(
        "/openapi.json",
        get(move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body).into_response() }
        }),
    )
}
