//! Session reads: batch status, one session with its stats, and the health check.

use std::collections::BTreeMap;

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use sessionflow_protocol::events::{Reparse, ServerBody};
use sessionflow_protocol::health::Healthz;
use sessionflow_protocol::ids::Id;
use sessionflow_protocol::sessions::{
    BatchStatusRequest, BatchStatusResponse, MAX_BATCH, Session, SessionStatus,
};

use super::error::{ApiError, ErrorBody, json_body};
use super::{ApiState, MAX_JSON_BODY, announce, missing};
use sessionflow_stages::store::{Lifecycle, Principal, StoreError};

/// A session's status row, as batch-status reads it.
#[derive(sqlx::FromRow)]
struct StatusRow {
    id: String,
    lifecycle: String,
    parse_status: String,
    transcript_size: Option<i64>,
    transcript_sha256: Option<String>,
    parse_error: Option<String>,
}

/// Where each of up to 500 sessions stands: lifecycle, parse status, the stored transcript's
/// size and SHA-256 (so a client can tell whether the server holds what it has), parse error;
/// and which of the unknown ones were deleted for good.
#[utoipa::path(
    post,
    path = "/api/sessions/batch-status",
    tag = "capture",
    request_body = BatchStatusRequest,
    responses(
        (status = 200, description = "The sessions' states", body = BatchStatusResponse),
        (status = 400, description = "Not 1 to 500 ids, or malformed JSON", body = ErrorBody),
        (status = 415, description = "Declared as something else than JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database or Redis cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn batch_status(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BatchStatusResponse>, ApiError> {
    let request: BatchStatusRequest = json_body(&headers, body, MAX_JSON_BODY).await?;
    let n = request.session_ids.len();
    if !(1..=MAX_BATCH).contains(&n) {
        return Err(ApiError::BadRequest(format!(
            "send 1 to {MAX_BATCH} session_ids, not {n}"
        )));
    }
    for (i, id) in request.session_ids.iter().enumerate() {
        Id::parse(&format!("session_ids[{i}]"), id)?;
    }
    let rows: Vec<StatusRow> = sqlx::query_as(
        "SELECT id, lifecycle, parse_status, transcript_size, transcript_sha256, parse_error \
         FROM sessions WHERE id = ANY($1) AND ($2::text[] IS NULL OR workspace_id = ANY($2))",
    )
    .bind(&request.session_ids)
    // Sessions of workspaces the key does not cover are not found, like unknown ones.
    .bind(&principal.workspaces)
    // Planned for these ids each time: a plan kept from when the table was small reads all of
    // it (a sequential scan) however large it grows.
    .persistent(false)
    .fetch_all(state.store.pool())
    .await
    .map_err(|e| ApiError::Unavailable(format!("database unavailable: {e}")))?;
    let statuses: BTreeMap<String, SessionStatus> = rows
        .into_iter()
        .map(|row| {
            let status = SessionStatus {
                lifecycle: row.lifecycle,
                parse_status: row.parse_status,
                transcript_size: row.transcript_size.and_then(|n| u64::try_from(n).ok()),
                transcript_sha256: row.transcript_sha256,
                parse_error: row.parse_error,
            };
            (row.id, status)
        })
        .collect();
    let mut not_found: Vec<String> = Vec::new();
    for id in request.session_ids {
        if !statuses.contains_key(&id) && !not_found.contains(&id) {
            not_found.push(id);
        }
    }
    let deleted = if not_found.is_empty() {
        Vec::new()
    } else {
        state
            .store
            .tombstoned(&not_found, principal.workspaces.as_deref())
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?
    };
    Ok(Json(BatchStatusResponse {
        statuses,
        not_found,
        deleted,
    }))
}

/// Columns of `sessions` that are the pipeline's bookkeeping, not part of [`Session`].
const INTERNAL_COLUMNS: [&str; 4] = ["claim", "enqueued_at", "enqueued_by", "transcript_parts"];

/// The session: lifecycle, stats, summary and the parse error if any.
#[utoipa::path(
    get,
    path = "/api/sessions/{id}",
    tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session", body = Session),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 410, description = "Deleted for good", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database or Redis cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn session(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Session>, ApiError> {
    let id = Id::parse("session_id", &id)?.into_string();
    // The row as JSON, read into the wire type: the answer is exactly the contract's fields
    // (internal columns such as the claim token stay inside).
    let row: Option<Value> = sqlx::query_scalar("SELECT to_jsonb(s) FROM sessions s WHERE id = $1")
        .bind(&id)
        .fetch_optional(state.store.pool())
        .await
        .map_err(|e| ApiError::Unavailable(format!("database unavailable: {e}")))?;
    let Some(Value::Object(mut row)) = row.filter(|row| {
        row["workspace_id"]
            .as_str()
            .is_some_and(|w| principal.covers(w))
    }) else {
        return Err(missing(&state, &principal, &id).await);
    };
    for internal in INTERNAL_COLUMNS {
        row.remove(internal);
    }
    serde_json::from_value(Value::Object(row))
        .map(Json)
        .map_err(|e| ApiError::Internal(format!("session {id} does not fit the contract: {e}")))
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
        (status = 200, description = "`{\"status\": \"ok\"}`", body = Healthz),
        (status = 503, description = "`{\"status\": \"degraded\", \"reasons\": [...]}`", body = Healthz),
    )
)]
pub async fn healthz(State(state): State<ApiState>) -> (StatusCode, Json<Healthz>) {
    let health = super::health(&state).await;
    let status = if health.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Healthz {
            status: health.status,
            reasons: health.reasons,
        }),
    )
}
