//! `POST /api/admin/run-session-processor?processor=NAME`: runs a session processor once,
//! now: 200 with what the run did, 404 for an unknown name, 409 while a run of it is under way
//! (here or in any worker).

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::Value;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use crate::processors::{Processors, RunError};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// The processor: `usage`, `tools` or `search`.
    processor: Option<String>,
}

/// Runs a session processor once, now.
#[utoipa::path(
    post,
    path = "/api/admin/run-session-processor",
    tag = "operations",
    params(RunQuery),
    responses(
        (status = 200, description = "What the run did: `{scanned, processed, skipped, errors, items}`", body = Object),
        (status = 400, description = "No processor named", body = ErrorBody),
        (status = 404, description = "No such processor; the known ones are listed", body = ErrorBody),
        (status = 409, description = "A run of it is under way", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database or Redis cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn run_processor(
    State(state): State<ApiState>,
    Query(query): Query<RunQuery>,
) -> Result<Json<Value>, ApiError> {
    let name = query
        .processor
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::BadRequest("name the processor: ?processor=NAME".into()))?;
    let processors = Processors::standard(state.store.pool().clone(), state.blobs.clone());
    match processors.run(&name).await {
        Ok(summary) => Ok(Json(serde_json::to_value(summary).unwrap_or_default())),
        Err(e @ RunError::Unknown(_)) => {
            let known: Vec<&str> = processors.all().iter().map(|p| p.name()).collect();
            Err(ApiError::NotFound(format!(
                "{e}; known: {}",
                known.join(", ")
            )))
        }
        Err(e @ (RunError::Busy(_) | RunError::NotOffline(_))) => {
            Err(ApiError::Conflict(e.to_string()))
        }
        Err(e @ (RunError::Database(_) | RunError::Store(_))) => {
            Err(ApiError::Unavailable(e.to_string()))
        }
    }
}
