//! Session reads: batch status, one session with its stats, and the health check.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sessionflow_protocol::events::{Reparse, ServerBody};
use sessionflow_protocol::ids::Id;

use super::error::{ApiError, ErrorBody, json_body};
use super::{ApiState, MAX_JSON_BODY, announce};
use sessionflow_stages::store::{Lifecycle, StoreError};

/// Most sessions asked about in one batch-status request.
pub const MAX_BATCH: usize = 500;

/// The sessions asked about.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct BatchStatusRequest {
    /// 1 to 500 session ids.
    session_ids: Vec<String>,
}

/// Where one session stands: enough for a client to tell whether the server holds its current
/// transcript (size and SHA-256) and, for a failed session, why.
#[derive(Serialize, PartialEq, Debug, sqlx::FromRow, utoipa::ToSchema)]
pub struct Status {
    #[serde(skip)]
    id: String,
    lifecycle: String,
    parse_status: String,
    transcript_size: Option<i64>,
    transcript_sha256: Option<String>,
    parse_error: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchStatusResponse {
    /// By session id.
    statuses: BTreeMap<String, Status>,
    /// Ids the server does not know.
    not_found: Vec<String>,
}

/// Where each of up to 500 sessions stands: lifecycle, parse status, the stored transcript's
/// size and SHA-256 (so a client can tell whether the server holds what it has), parse error.
#[utoipa::path(
    post,
    path = "/api/sessions/batch-status",
    tag = "capture",
    request_body = BatchStatusRequest,
    responses(
        (status = 200, description = "The sessions' states", body = BatchStatusResponse),
        (status = 400, description = "Not 1 to 500 ids, or malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database or Redis cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn batch_status(
    State(state): State<ApiState>,
    body: Body,
) -> Result<Json<BatchStatusResponse>, ApiError> {
    let request: BatchStatusRequest = json_body(body, MAX_JSON_BODY).await?;
    let n = request.session_ids.len();
    if !(1..=MAX_BATCH).contains(&n) {
        return Err(ApiError::BadRequest(format!(
            "send 1 to {MAX_BATCH} session_ids, not {n}"
        )));
    }
    for (i, id) in request.session_ids.iter().enumerate() {
        Id::parse(&format!("session_ids[{i}]"), id)?;
    }
    let rows: Vec<Status> = sqlx::query_as(
        "SELECT id, lifecycle, parse_status, transcript_size, transcript_sha256, parse_error \
         FROM sessions WHERE id = ANY($1)",
    )
    .bind(&request.session_ids)
    .fetch_all(state.store.pool())
    .await
    .map_err(|e| ApiError::Unavailable(format!("database unavailable: {e}")))?;
    let statuses: BTreeMap<String, Status> =
        rows.into_iter().map(|row| (row.id.clone(), row)).collect();
    let mut not_found: Vec<String> = Vec::new();
    for id in request.session_ids {
        if !statuses.contains_key(&id) && !not_found.contains(&id) {
            not_found.push(id);
        }
    }
    Ok(Json(BatchStatusResponse {
        statuses,
        not_found,
    }))
}

/// Every column of the session: lifecycle, stats, summary and the parse error if any.
#[utoipa::path(
    get,
    path = "/api/sessions/{id}",
    tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session row, every column", body = Object),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database or Redis cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn session(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = Id::parse("session_id", &id)?.into_string();
    let row: Option<Value> = sqlx::query_scalar("SELECT to_jsonb(s) FROM sessions s WHERE id = $1")
        .bind(&id)
        .fetch_optional(state.store.pool())
        .await
        .map_err(|e| ApiError::Unavailable(format!("database unavailable: {e}")))?;
    row.map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("session {id} not found")))
}

/// `POST /api/sessions/{id}/reparse`: forgets what was parsed and runs the pipeline again.
/// 404 for an unknown session, 409 while a run holds it.
#[utoipa::path(
    post,
    path = "/api/sessions/{id}/reparse",
    tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 202, description = "Queued: `{session_id, lifecycle: \"ended\"}`", body = Object),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 409, description = "No transcript, not ended yet, or being processed", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database or Redis cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn reparse(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = Id::parse("session_id", &id)?.into_string();
    let unavailable = |e: StoreError| ApiError::Unavailable(e.to_string());
    let session = state
        .store
        .session(&id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ApiError::NotFound(format!("session {id} not found")))?;
    if session.transcript_key.is_none() {
        return Err(ApiError::Conflict(format!(
            "session {id} has no transcript to parse"
        )));
    }
    if matches!(
        session.lifecycle,
        Lifecycle::Detected | Lifecycle::Capturing
    ) {
        return Err(ApiError::Conflict(format!(
            "session {id} is still {}: it is parsed when it ends",
            session.lifecycle
        )));
    }
    if !state
        .store
        .reset_for_reparse(&id)
        .await
        .map_err(unavailable)?
    {
        return Err(ApiError::Conflict(format!(
            "session {id} is being processed right now ({}); try again when it is done",
            session.lifecycle
        )));
    }
    let workspace = Id::parse("workspace_id", &session.workspace_id)?;
    let session_id = Id::parse("session_id", &id)?;
    announce(
        &state,
        &workspace,
        &session_id,
        ServerBody::SessionReparse(Reparse::default()),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"session_id": id, "lifecycle": "ended"})),
    ))
}

/// 200 when the system does the work it accepts; 503 with the reasons otherwise (see
/// [`crate::health`]).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "`{\"status\": \"ok\"}`", body = Object),
        (status = 503, description = "`{\"status\": \"degraded\", \"reasons\": [...]}`", body = Object),
    )
)]
pub async fn healthz(State(state): State<ApiState>) -> (StatusCode, Json<Value>) {
    let health = super::health(&state).await;
    if health.is_ok() {
        (StatusCode::OK, Json(json!({ "status": "ok" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "degraded", "reasons": health.reasons })),
        )
    }
}
