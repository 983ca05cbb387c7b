//! `DELETE /api/sessions/{id}`: a session deleted for good — its rows, its transcript and
//! backup, its processor state and search entries — leaving a tombstone in the event log, so
//! that a late upload of it is refused unless forced (see [`crate::deletion`]).
//!
//! Who may: an admin key, or an ingest key scoped to the session's workspace (the key a team
//! gives a project's machines). An ingest key for every workspace may not: deleting across
//! workspaces is an administrator's act.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use sessionflow_protocol::ids::Id;
use sessionflow_protocol::keys::Role;
use sessionflow_protocol::sessions::DeletedSession;
use sessionflow_stages::store::Principal;

use super::error::{ApiError, ErrorBody};
use super::{ApiState, missing};

/// Who a deletion is recorded as made by.
fn who(principal: &Principal) -> String {
    principal
        .key_id
        .clone()
        .unwrap_or_else(|| "bootstrap".to_owned())
}

/// Deletes the session for good.
#[utoipa::path(
    delete,
    path = "/api/sessions/{id}",
    tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "Deleted", body = DeletedSession),
        (status = 400, description = "The id breaks the id rule", body = ErrorBody),
        (status = 403, description = "A read key, or an ingest key not scoped to workspaces", body = ErrorBody),
        (status = 404, description = "No such session (or not in the key's workspaces)", body = ErrorBody),
        (status = 410, description = "Deleted already", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<DeletedSession>, ApiError> {
    let id = Id::parse("session_id", &id)?.into_string();
    if principal.role == Role::Ingest && principal.workspaces.is_none() {
        return Err(ApiError::Forbidden(
            "an ingest key for every workspace may not delete sessions: use an admin key, or \
             an ingest key scoped to the session's workspace"
                .into(),
        ));
    }
    let unavailable = |e| ApiError::Unavailable(format!("database unavailable: {e}"));
    let deleted = crate::deletion::delete_session(
        &state.store,
        state.blobs.as_ref(),
        &id,
        principal.workspaces.as_deref(),
        "request",
        &who(&principal),
    )
    .await
    .map_err(unavailable)?;
    match deleted {
        Some(deleted) => Ok(Json(DeletedSession::from(deleted))),
        None => Err(missing(&state, &principal, &id).await),
    }
}
