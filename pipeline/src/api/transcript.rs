//! `GET /api/sessions/{id}/transcript`: the stored transcript as it was uploaded (redacted if
//! the server stores transcripts redacted), with its files named in the `x-sessionflow-parts`
//! header — what `sessionflow restore` writes back where Claude Code reads it.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use sessionflow_protocol::ids::Id;
use sessionflow_protocol::transcripts::{PARTS_HEADER, WORKSPACE_HEADER};
use sessionflow_stages::blob::BlobError;
use sessionflow_stages::store::{Principal, StoredTranscript};

use super::error::{ApiError, ErrorBody};
use super::{ApiState, missing};

/// The session's stored transcript: the main transcript, then its subagent files.
#[utoipa::path(
    get,
    path = "/api/sessions/{id}/transcript",
    tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "The transcript's bytes; `x-sessionflow-parts` names its files (absent: one file), `x-sessionflow-workspace` its workspace", body = Vec<u8>, content_type = "application/x-ndjson"),
        (status = 400, description = "The id breaks the id rule", body = ErrorBody),
        (status = 404, description = "No such session (or not in the key's workspaces), or no transcript", body = ErrorBody),
        (status = 410, description = "Deleted for good", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database or the blob store cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn transcript(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = Id::parse("session_id", &id)?.into_string();
    let stored = state
        .store
        .stored_transcript(&id)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let Some(StoredTranscript {
        workspace_id: workspace,
        key,
        parts,
    }) = stored.filter(|s| principal.covers(&s.workspace_id))
    else {
        return Err(missing(&state, &principal, &id).await);
    };
    let key = key.ok_or_else(|| ApiError::NotFound(format!("session {id} has no transcript")))?;
    let bytes = state.blobs.get(&key).await.map_err(|e| match e {
        BlobError::NotFound { .. } => {
            ApiError::Internal(format!("session {id}'s transcript {key} is missing"))
        }
        other => ApiError::Unavailable(format!("blob store unavailable: {other}")),
    })?;
    let mut response = Body::from(bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    let header = |text: &str| {
        HeaderValue::from_str(text)
            .map_err(|e| ApiError::Internal(format!("session {id}: header {text:?}: {e}")))
    };
    headers.insert(
        HeaderName::from_static(WORKSPACE_HEADER),
        header(&workspace)?,
    );
    if let Some(parts) = parts.filter(|p| !p.is_single()) {
        headers.insert(
            HeaderName::from_static(PARTS_HEADER),
            header(&parts.to_header())?,
        );
    }
    Ok(response)
}
