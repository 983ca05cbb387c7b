//! `POST /api/sessions/{id}/transcript/upload`: the raw transcript, streamed to the blob store
//! as it arrives (memory does not grow with the body), up to 200 MB.
//!
//! The body goes to a staging key first; only then is it compared with what is stored: the same
//! content answers `already_uploaded`, a larger one replaces it (a live session's transcript
//! only grows), anything else is refused. A stored transcript is announced as a
//! `transcript.uploaded` event, which records it and starts the pipeline once the session has
//! ended.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use sessionflow_stages::blob::{BlobError, raw_transcript_key};
use sha2::{Digest, Sha256};

use super::error::{ApiError, ErrorBody};
use super::{ApiState, announce};

/// Largest transcript accepted by default.
pub const MAX_TRANSCRIPT: u64 = 200 * 1024 * 1024;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct UploadQuery {
    /// Needed when the session is not known yet.
    workspace_id: Option<String>,
}

/// The session's raw JSONL transcript (its subagent files after it), as the request body.
#[utoipa::path(
    post,
    path = "/api/sessions/{id}/transcript/upload",
    tag = "capture",
    params(("id" = String, Path, description = "Session id"), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The transcript bytes"),
    responses(
        (status = 201, description = "Stored: `{already_uploaded: false, key, size, sha256}`", body = Object),
        (status = 200, description = "The server holds these bytes already: `{already_uploaded: true, …}`", body = Object),
        (status = 400, description = "Unknown session without `workspace_id`, or the body broke off", body = ErrorBody),
        (status = 409, description = "A different transcript is stored and this one is not larger", body = ErrorBody),
        (status = 413, description = "Over the size limit", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database or Redis cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn upload(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(query): Query<UploadQuery>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let unavailable = |e: sqlx::Error| ApiError::Unavailable(format!("database unavailable: {e}"));
    let known: Option<(String, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT workspace_id, transcript_size, transcript_sha256 FROM sessions WHERE id = $1",
    )
    .bind(&id)
    .fetch_optional(state.store.pool())
    .await
    .map_err(unavailable)?;
    let (workspace, stored_size, stored_sha) = match known {
        Some(row) => row,
        None => match query.workspace_id {
            Some(workspace) if !workspace.is_empty() => (workspace, None, None),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "session {id} is not known yet: pass ?workspace_id=…"
                )));
            }
        },
    };
    let key = raw_transcript_key(&workspace, &id);
    let staging = format!(
        "transcripts/{workspace}/{id}/upload-{}.tmp",
        ulid::Ulid::generate()
    );

    let hasher = Arc::new(Mutex::new(Sha256::new()));
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (h, n, limit) = (Arc::clone(&hasher), Arc::clone(&seen), state.max_transcript);
    let stream = body
        .into_data_stream()
        .map(move |chunk| {
            let chunk = chunk.map_err(std::io::Error::other)?;
            let total = n.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed)
                + chunk.len() as u64;
            if total > limit {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::FileTooLarge,
                    "over the limit",
                ));
            }
            if let Ok(mut hasher) = h.lock() {
                hasher.update(&chunk);
            }
            Ok(chunk)
        })
        .boxed();
    let size = match state.blobs.put_stream(&staging, stream).await {
        Ok(size) => size,
        Err(BlobError::Body { source, .. })
            if source.kind() == std::io::ErrorKind::FileTooLarge =>
        {
            return Err(ApiError::TooLarge(state.max_transcript as usize));
        }
        Err(BlobError::Body { source, .. }) => {
            return Err(ApiError::BadRequest(format!(
                "the upload broke off: {source}"
            )));
        }
        Err(e) => return Err(ApiError::Unavailable(e.to_string())),
    };
    let sha256 = match hasher.lock() {
        Ok(hasher) => format!("{:x}", hasher.clone().finalize()),
        Err(_) => return Err(ApiError::Unavailable("upload hashing failed".into())),
    };

    let discard = async {
        if let Err(e) = state.blobs.delete(&staging).await {
            tracing::warn!("could not remove the staged upload {staging}: {e}");
        }
    };
    if stored_sha.as_deref() == Some(sha256.as_str()) {
        discard.await;
        return Ok((
            StatusCode::OK,
            Json(json!({"already_uploaded": true, "key": key, "size": size, "sha256": sha256})),
        ));
    }
    if let Some(stored) = stored_size
        && size <= stored as u64
    {
        discard.await;
        return Err(ApiError::Conflict(format!(
            "session {id} already has a different transcript of {stored} bytes; a re-upload must \
             be larger (a live session's transcript only grows)"
        )));
    }
    state
        .blobs
        .rename(&staging, &key)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;

    let data = json!({"key": key, "size": size, "sha256": sha256});
    announce(&state, "transcript.uploaded", &workspace, &id, data).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"already_uploaded": false, "key": key, "size": size, "sha256": sha256})),
    ))
}
