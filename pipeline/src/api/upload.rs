//! `POST /api/sessions/{id}/transcript/upload`: the raw transcript, streamed to the blob store
//! as it arrives (memory does not grow with the body), up to 200 MB.
//!
//! The body goes to a staging key first; only then is it compared with what is stored: the same
//! content answers `already_uploaded`, one that begins with the stored bytes and goes on
//! replaces it (a live session's transcript only grows), anything else is refused with 409.
//! The ids are checked (the id rule) before anything is read or stored. A stored transcript is
//! announced as a `transcript.uploaded` event, which records it and starts the pipeline once the
//! session has ended. The `x-sessionflow-parts` header names the body's files (main transcript,
//! then subagent files), checked against the body as it streams and kept for restore. A session
//! deleted for good is refused (410) unless the upload forces it back (`?force=true`).

use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use sessionflow_protocol::events::{ServerBody, TranscriptUploaded};
use sessionflow_protocol::ids::Id;
use sessionflow_protocol::transcripts::{PARTS_HEADER, Parts, PartsCheck};
use sessionflow_stages::blob::{BlobError, raw_transcript_key};
use sessionflow_stages::redact::LineRedactor;
use sessionflow_stages::store::Principal;
use sha2::{Digest, Sha256};

use super::error::{ApiError, ErrorBody, check_upload_type};
use super::{ApiState, announce};

/// Largest transcript accepted by default.
pub const MAX_TRANSCRIPT: u64 = 200 * 1024 * 1024;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// Needed when the session is not known yet.
    workspace_id: Option<String>,
    /// Store a session that was deleted for good again (refused with 410 otherwise).
    #[serde(default)]
    force: bool,
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
        (status = 400, description = "Unknown session without `workspace_id`, a `x-sessionflow-parts` header that does not describe the body, or the body broke off", body = ErrorBody),
        (status = 409, description = "A different transcript is stored and this one is not larger", body = ErrorBody),
        (status = 410, description = "The session was deleted for good (`?force=true` stores it again)", body = ErrorBody),
        (status = 413, description = "Over the size limit", body = ErrorBody),
        (status = 415, description = "A form instead of the file's bytes", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database or Redis cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn upload(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(query): Query<UploadQuery>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Checked before anything is read or stored: keys are made of checked ids only.
    let id = Id::parse("session_id", &id)?;
    check_upload_type(&headers)?;
    let parts = headers
        .get(PARTS_HEADER)
        .map(|value| {
            let text = value
                .to_str()
                .map_err(|_| ApiError::BadRequest(format!("{PARTS_HEADER} is not ASCII text")))?;
            Parts::parse(id.as_str(), text).map_err(ApiError::BadRequest)
        })
        .transpose()?;
    let asked_workspace = query
        .workspace_id
        .as_deref()
        .map(|w| Id::parse("workspace_id", w))
        .transpose()?;
    let unavailable = |e: sqlx::Error| ApiError::Unavailable(format!("database unavailable: {e}"));
    let known: Option<(String, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT workspace_id, transcript_size, transcript_sha256 FROM sessions WHERE id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(state.store.pool())
    .await
    .map_err(unavailable)?;
    let was_known = known.is_some();
    let (workspace, stored_size, stored_sha) = match (known, asked_workspace) {
        // A session belongs to its workspace for good: no one takes it over or reads it by
        // naming another (the same answer whether or not the key covers the owner).
        (Some((workspace, ..)), asked)
            if !principal.covers(&workspace)
                || asked
                    .as_ref()
                    .is_some_and(|asked| asked.as_str() != workspace) =>
        {
            return Err(ApiError::Conflict(format!(
                "session {id} belongs to another workspace"
            )));
        }
        (Some((workspace, size, sha)), _) => (Id::parse("workspace_id", &workspace)?, size, sha),
        (None, Some(workspace)) if !principal.covers(workspace.as_str()) => {
            return Err(ApiError::Forbidden(format!(
                "this key does not cover workspace {workspace}"
            )));
        }
        (None, _) if !query.force && deleted(&state, &id).await? => {
            return Err(gone(&id));
        }
        (None, Some(workspace)) => (workspace, None, None),
        (None, None) => {
            return Err(ApiError::BadRequest(format!(
                "session {id} is not known yet: pass ?workspace_id=…"
            )));
        }
    };
    let key = raw_transcript_key(&workspace, &id);
    let staging = format!(
        "transcripts/{workspace}/{id}/upload-{}.tmp",
        ulid::Ulid::generate()
    );

    // The body's hash, and the hash of its first `stored_size` bytes: a new body may replace
    // the stored one only if it begins with it.
    let prefix_len = stored_size.map(|s| s.max(0) as u64);
    let hashes = Arc::new(Mutex::new(Hashes {
        whole: Sha256::new(),
        prefix: None,
        seen: 0,
        parts: parts.as_ref().map(PartsCheck::new),
    }));
    let (h, limit) = (Arc::clone(&hashes), state.max_transcript);
    let stream = body
        .into_data_stream()
        .map(move |chunk| {
            let chunk = chunk.map_err(std::io::Error::other)?;
            let mut hashes = h
                .lock()
                .map_err(|_| std::io::Error::other("upload hashing failed"))?;
            hashes.add(&chunk, prefix_len);
            if let Some(check) = &mut hashes.parts {
                check
                    .feed(&chunk)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            }
            if hashes.seen > limit {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::FileTooLarge,
                    "over the limit",
                ));
            }
            Ok(chunk)
        })
        .boxed();
    // With `SESSIONFLOW_REDACT=all` the secrets go before the bytes are written anywhere; the
    // hashes and size stay those of what was sent (a later upload is compared with them).
    let redactor = Arc::new(Mutex::new(LineRedactor::default()));
    let stream = if state.redact_uploads {
        redacting(stream, Arc::clone(&redactor))
    } else {
        stream
    };
    state
        .store
        .stage_upload(&staging)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let discard = async {
        if let Err(e) = state.blobs.delete(&staging).await {
            // The staged upload sweep removes it later.
            tracing::warn!("could not remove the staged upload {staging}: {e}");
        } else if let Err(e) = state.store.unstage_upload(&staging).await {
            tracing::warn!("could not forget the staged upload {staging}: {e}");
        }
    };
    match state.blobs.put_stream(&staging, stream).await {
        Ok(_) => {}
        Err(BlobError::Body { source, .. })
            if source.kind() == std::io::ErrorKind::FileTooLarge =>
        {
            discard.await;
            return Err(ApiError::TooLarge(state.max_transcript as usize));
        }
        Err(BlobError::Body { source, .. }) if source.kind() == std::io::ErrorKind::InvalidData => {
            discard.await;
            return Err(ApiError::BadRequest(source.to_string()));
        }
        Err(BlobError::Body { source, .. }) => {
            discard.await;
            return Err(ApiError::BadRequest(format!(
                "the upload broke off: {source}"
            )));
        }
        Err(e) => {
            discard.await;
            return Err(ApiError::Unavailable(e.to_string()));
        }
    };
    let (sha256, prefix, size, check) = match hashes.lock() {
        Ok(mut h) => (
            format!("{:x}", h.whole.clone().finalize()),
            h.prefix.clone(),
            h.seen,
            h.parts.take(),
        ),
        Err(_) => return Err(ApiError::Unavailable("upload hashing failed".into())),
    };
    if let Some(Err(e)) = check.map(PartsCheck::finish) {
        discard.await;
        return Err(ApiError::BadRequest(e));
    }
    if let Ok(redactor) = redactor.lock()
        && !redactor.counts.is_empty()
    {
        tracing::info!(session = %id, redactions = ?redactor.counts, "secrets redacted from the uploaded transcript");
    }

    if stored_sha.as_deref() == Some(sha256.as_str()) {
        discard.await;
        return Ok((
            StatusCode::OK,
            Json(json!({"already_uploaded": true, "key": key, "size": size, "sha256": sha256})),
        ));
    }
    if let Some(stored) = stored_size {
        let grows = size > stored as u64 && prefix.is_some() && prefix == stored_sha;
        if !grows {
            discard.await;
            return Err(ApiError::Conflict(format!(
                "session {id} already has a different transcript ({stored} bytes stored, {size} \
                 sent): a re-upload must begin with the stored bytes and be longer (a live \
                 session's transcript only grows)"
            )));
        }
    }
    state
        .blobs
        .rename(&staging, &key)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    // Deleted while it streamed in: what was stored goes too (its deletion may have removed
    // the blobs before the rename).
    if was_known || !query.force {
        let deleted = state
            .store
            .unstage_upload_of(&staging, id.as_str())
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        if deleted {
            if let Err(e) = state.blobs.delete(&key).await {
                tracing::warn!("could not remove {key} of a session deleted meanwhile: {e}");
            }
            return Err(gone(&id));
        }
    } else {
        if let Err(e) = state.store.unstage_upload(&staging).await {
            tracing::warn!("could not forget the staged upload {staging}: {e}");
        }
        state
            .store
            .revive(id.as_str(), workspace.as_str())
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    }

    let uploaded = TranscriptUploaded {
        key: key.clone(),
        size,
        sha256: sha256.clone(),
        parts: parts.filter(|p| !p.is_single()),
    };
    announce(
        &state,
        &workspace,
        &id,
        ServerBody::TranscriptUploaded(uploaded),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"already_uploaded": false, "key": key, "size": size, "sha256": sha256})),
    ))
}

/// Whether session `id` was deleted for good (and has not come back).
async fn deleted(state: &ApiState, id: &Id) -> Result<bool, ApiError> {
    Ok(state
        .store
        .tombstone(id.as_str())
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .is_some())
}

fn gone(id: &Id) -> ApiError {
    ApiError::Gone(format!(
        "session {id} was deleted for good; upload with ?force=true to store it again"
    ))
}

/// `stream` with its secrets redacted line by line (on the blocking pool: a long line takes
/// a while), its last line when it ends.
fn redacting(
    stream: futures::stream::BoxStream<'static, std::io::Result<Bytes>>,
    redactor: Arc<Mutex<LineRedactor>>,
) -> futures::stream::BoxStream<'static, std::io::Result<Bytes>> {
    let run = |redactor: Arc<Mutex<LineRedactor>>, chunk: Option<Bytes>| async move {
        tokio::task::spawn_blocking(move || {
            let mut redactor = redactor
                .lock()
                .map_err(|_| std::io::Error::other("redaction failed"))?;
            Ok(Bytes::from(match chunk {
                Some(chunk) => redactor.push(&chunk),
                None => redactor.finish(),
            }))
        })
        .await
        .map_err(std::io::Error::other)?
    };
    let tail = Arc::clone(&redactor);
    stream
        .and_then(move |chunk| run(Arc::clone(&redactor), Some(chunk)))
        .chain(futures::stream::once(run(tail, None)))
        .boxed()
}

/// Hashes of a body as it streams: the whole, and its first `prefix_len` bytes once it has
/// that many.
struct Hashes {
    whole: Sha256,
    prefix: Option<String>,
    seen: u64,
    /// The body checked against the files its header names.
    parts: Option<PartsCheck>,
}

impl Hashes {
    fn add(&mut self, chunk: &[u8], prefix_len: Option<u64>) {
        if let Some(len) = prefix_len
            && self.prefix.is_none()
            && self.seen + chunk.len() as u64 >= len
        {
            let head = (len - self.seen) as usize;
            self.whole.update(&chunk[..head]);
            self.prefix = Some(format!("{:x}", self.whole.clone().finalize()));
            self.whole.update(&chunk[head..]);
        } else {
            self.whole.update(chunk);
        }
        self.seen += chunk.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_hash_is_taken_where_the_stored_bytes_end_whatever_the_chunks() {
        let body = b"line one\nline two\nline three\n";
        let stored = &body[..18];
        let expected = format!("{:x}", Sha256::digest(stored));
        for chunk in [1, 3, 7, 18, 19, 100] {
            let mut h = Hashes {
                whole: Sha256::new(),
                prefix: None,
                seen: 0,
                parts: None,
            };
            for part in body.chunks(chunk) {
                h.add(part, Some(stored.len() as u64));
            }
            assert_eq!(
                h.prefix.as_deref(),
                Some(expected.as_str()),
                "chunks of {chunk}"
            );
            assert_eq!(
                format!("{:x}", h.whole.finalize()),
                format!("{:x}", Sha256::digest(body))
            );
        }
        let mut short = Hashes {
            whole: Sha256::new(),
            prefix: None,
            seen: 0,
            parts: None,
        };
        short.add(b"line", Some(18));
        assert_eq!(
            short.prefix, None,
            "a shorter body has no prefix to compare"
        );
    }
}
