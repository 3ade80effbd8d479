//! Admin endpoints each service mounts for its consumer's dead letters:
//! list, replay, discard.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use contracts::Role;

use crate::auth::{Principal, TokenKeys};
use crate::consumer::{self, DeadLetter, EventHandler, ReplayError};
use crate::db::Db;
use crate::openapi::{BadParams, Common, Forbidden, NotFound, Problem, PROBLEM_JSON};
use crate::problem::{ApiError, ApiPath};

/// The dead-letter operations, as `/openapi.json` describes them.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, replay, discard),
    components(schemas(Consumer)),
    modifiers(&Common),
    tags((name = "admin", description = "Events a consumer could not handle, for an admin to replay or discard"))
)]
pub struct DeadLetterApi;

/// The consumers with dead letters; each process mounts its own.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Only described: the routes are named by `EventHandler::name`.
enum Consumer {
    Order,
    Payment,
    Store,
    Delivery,
    Status,
    Notification,
}

#[derive(Clone)]
struct AdminState {
    keys: TokenKeys,
    db: Db,
    handler: Arc<dyn EventHandler>,
}

impl FromRef<AdminState> for TokenKeys {
    fn from_ref(state: &AdminState) -> TokenKeys {
        state.keys.clone()
    }
}

/// Where each consumer's dead letters are: `DEAD_LETTERS/{consumer}`.
pub const DEAD_LETTERS: &str = "/admin/deadLetters";

/// `/admin/deadLetters/{consumer}` and its replay and discard actions.
pub fn dead_letter_routes(keys: TokenKeys, db: Db, handler: Arc<dyn EventHandler>) -> Router {
    let base = format!("{DEAD_LETTERS}/{}", handler.name());
    Router::new()
        .route(&base, get(list))
        .route(&format!("{base}/{{id}}/replay"), post(replay))
        .route(&format!("{base}/{{id}}"), delete(discard))
        .with_state(AdminState { keys, db, handler })
}

#[utoipa::path(
    get,
    path = "/admin/deadLetters/{consumer}",
    tag = "admin",
    summary = "A consumer's dead letters",
    security(("bearer" = ["admin"])),
    params(("consumer" = Consumer, Path, description = "The consumer (each process mounts its own)")),
    responses((status = 200, description = "Oldest first", body = Vec<DeadLetter>), Forbidden, NotFound)
)]
async fn list(
    State(state): State<AdminState>,
    who: Principal,
) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    who.require(&[Role::Admin])?;
    Ok(Json(
        consumer::dead_letters(&state.db, state.handler.name()).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/admin/deadLetters/{consumer}/{id}/replay",
    tag = "admin",
    summary = "Handle a dead letter again; on success it leaves the list",
    security(("bearer" = ["admin"])),
    params(
        ("consumer" = Consumer, Path, description = "The consumer"),
        ("id" = i64, Path, description = "The dead letter's id"),
    ),
    responses(
        (status = 204, description = "Handled"),
        (status = 409, description = "It failed again and stays", body = Problem, content_type = PROBLEM_JSON),
        BadParams, Forbidden, NotFound
    )
)]
async fn replay(
    State(state): State<AdminState>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    who.require(&[Role::Admin])?;
    {
        match consumer::replay(&state.handler, &state.db, id).await {
            Ok(()) => Ok(StatusCode::NO_CONTENT),
            Err(ReplayError::NotFound(id)) => {
                Err(ApiError::not_found(format!("no dead letter {id}")))
            }
            Err(ReplayError::FailedAgain(e)) => Err(ApiError::new(
                StatusCode::CONFLICT,
                "Replay failed",
                format!("the event failed again and stays in dead letters: {e}"),
            )),
            Err(ReplayError::Db(e)) => Err(e.into()),
        }
    }
}

#[utoipa::path(
    delete,
    path = "/admin/deadLetters/{consumer}/{id}",
    tag = "admin",
    summary = "Drop a dead letter",
    security(("bearer" = ["admin"])),
    params(
        ("consumer" = Consumer, Path, description = "The consumer"),
        ("id" = i64, Path, description = "The dead letter's id"),
    ),
    responses((status = 204, description = "Dropped"), BadParams, Forbidden, NotFound)
)]
async fn discard(
    State(state): State<AdminState>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    who.require(&[Role::Admin])?;
    if consumer::discard(&state.db, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no dead letter {id}")))
    }
}
