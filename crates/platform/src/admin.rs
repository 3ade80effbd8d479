//! Admin endpoints each service mounts for its consumer's dead letters:
//! list, replay, discard.

use std::sync::Arc;

use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use contracts::Role;

use crate::auth::{Principal, TokenKeys};
use crate::consumer::{self, DeadLetter, EventHandler, ReplayError};
use crate::db::Db;
use crate::problem::ApiError;

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

/// `/admin/deadLetters/{consumer}` and its replay and discard actions.
pub fn dead_letter_routes(keys: TokenKeys, db: Db, handler: Arc<dyn EventHandler>) -> Router {
    let base = format!("/admin/deadLetters/{}", handler.name());
    Router::new()
        .route(&base, get(list))
        .route(&format!("{base}/{{id}}/replay"), post(replay))
        .route(&format!("{base}/{{id}}"), delete(discard))
        .with_state(AdminState { keys, db, handler })
}

async fn list(
    State(state): State<AdminState>,
    who: Principal,
) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    who.require(&[Role::Admin])?;
    Ok(Json(
        consumer::dead_letters(&state.db, state.handler.name()).await?,
    ))
}

async fn replay(
    State(state): State<AdminState>,
    who: Principal,
    Path(id): Path<i64>,
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

async fn discard(
    State(state): State<AdminState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    who.require(&[Role::Admin])?;
    if consumer::discard(&state.db, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no dead letter {id}")))
    }
}
