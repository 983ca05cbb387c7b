//! What each event type does to sessions. The registry is built once at start and logged; each
//! handler holds only the ports it uses.
//!
//! session.start creates the session (`detected`); session.end moves `detected|capturing →
//! ended`, creating an `ended` session if none exists. The pipeline starts when a session is
//! both ended and has its transcript: whichever of session.end and the transcript upload comes
//! last enqueues it, exactly once — each takes the session's row lock and sees the other's
//! committed change.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::PgPool;

use super::envelope::{Event, Payload};
use crate::queue::PipelineQueue;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        HandlerError(format!("database error: {e}"))
    }
}

/// Acts on one type of event.
pub trait Handler: Send + Sync {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        payload: &'a Payload,
    ) -> BoxFuture<'a, Result<(), HandlerError>>;
}

/// Event type → handler.
#[derive(Default)]
pub struct HandlerRegistry {
    handlers: BTreeMap<String, Box<dyn Handler>>,
}

impl HandlerRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(mut self, kind: &str, handler: impl Handler + 'static) -> Self {
        self.handlers.insert(kind.to_owned(), Box::new(handler));
        self
    }

    pub fn get(&self, kind: &str) -> Option<&dyn Handler> {
        self.handlers.get(kind).map(Box::as_ref)
    }

    pub fn kinds(&self) -> Vec<&str> {
        self.handlers.keys().map(String::as_str).collect()
    }

    /// The handlers sessionflow runs: session.start, session.end, session.reparse and
    /// transcript.uploaded.
    pub fn standard(pool: PgPool, queue: Arc<PipelineQueue>) -> Self {
        let registry = Self::new()
            .register("session.start", SessionStartHandler::new(pool.clone()))
            .register(
                "session.end",
                SessionEndHandler::new(pool.clone(), Arc::clone(&queue)),
            )
            .register(
                "session.reparse",
                ReparseHandler::new(pool.clone(), Arc::clone(&queue)),
            )
            .register(
                "transcript.uploaded",
                TranscriptUploadedHandler::new(pool, queue),
            );
        tracing::info!("registered handlers: {}", registry.kinds().join(", "));
        registry
    }
}

/// Creates the session as `detected` with what the start event knows; an existing session keeps
/// its state and gains the fields it lacked.
pub struct SessionStartHandler {
    pool: PgPool,
}

impl SessionStartHandler {
    pub fn new(pool: PgPool) -> Self {
        SessionStartHandler { pool }
    }
}

impl Handler for SessionStartHandler {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        payload: &'a Payload,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        async move {
            let Payload::SessionStart(start) = payload else {
                return Err(HandlerError(format!("{} is not a session.start", event.id)));
            };
            sqlx::query(
                "INSERT INTO sessions (id, workspace_id, device_id, lifecycle, started_at, source, \
                     model, git_branch, cwd, cc_version) \
                 VALUES ($1, $2, $3, 'detected', $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (id) DO UPDATE SET \
                     started_at = COALESCE(sessions.started_at, EXCLUDED.started_at), \
                     source = COALESCE(sessions.source, EXCLUDED.source), \
                     model = COALESCE(sessions.model, EXCLUDED.model), \
                     git_branch = COALESCE(sessions.git_branch, EXCLUDED.git_branch), \
                     cwd = COALESCE(sessions.cwd, EXCLUDED.cwd), \
                     cc_version = COALESCE(sessions.cc_version, EXCLUDED.cc_version), \
                     updated_at = now()",
            )
            .bind(event.session_id.as_deref())
            .bind(&event.workspace_id)
            .bind(&event.device_id)
            .bind(event.timestamp)
            .bind(
                serde_json::to_value(start.source)?
                    .as_str()
                    .map(str::to_owned),
            )
            .bind(start.model.as_deref())
            .bind(start.git_branch.as_deref())
            .bind(start.cwd.as_deref())
            .bind(start.cc_version.as_deref())
            .execute(&self.pool)
            .await?;
            Ok(())
        }
        .boxed()
    }
}

impl From<serde_json::Error> for HandlerError {
    fn from(e: serde_json::Error) -> Self {
        HandlerError(e.to_string())
    }
}

/// Ends the session and starts its pipeline if the transcript is already there.
pub struct SessionEndHandler {
    pool: PgPool,
    queue: Arc<PipelineQueue>,
}

impl SessionEndHandler {
    pub fn new(pool: PgPool, queue: Arc<PipelineQueue>) -> Self {
        SessionEndHandler { pool, queue }
    }
}

impl Handler for SessionEndHandler {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        payload: &'a Payload,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        async move {
            let Payload::SessionEnd(end) = payload else {
                return Err(HandlerError(format!("{} is not a session.end", event.id)));
            };
            let session = event.session_id.as_deref().unwrap_or_default();
            let mut tx = self.pool.begin().await?;
            let before: Option<String> =
                sqlx::query_scalar("SELECT lifecycle FROM sessions WHERE id = $1 FOR UPDATE")
                    .bind(session)
                    .fetch_optional(&mut *tx)
                    .await?;
            let (lifecycle, key): (String, Option<String>) = sqlx::query_as(
                "INSERT INTO sessions (id, workspace_id, device_id, lifecycle, ended_at, \
                     end_reason, duration_ms) \
                 VALUES ($1, $2, $3, 'ended', $4, $5, $6) \
                 ON CONFLICT (id) DO UPDATE SET \
                     lifecycle = CASE WHEN sessions.lifecycle IN ('detected', 'capturing') \
                                      THEN 'ended' ELSE sessions.lifecycle END, \
                     ended_at = COALESCE(sessions.ended_at, EXCLUDED.ended_at), \
                     end_reason = COALESCE(sessions.end_reason, EXCLUDED.end_reason), \
                     duration_ms = COALESCE(sessions.duration_ms, EXCLUDED.duration_ms), \
                     updated_at = now() \
                 RETURNING lifecycle, transcript_key",
            )
            .bind(session)
            .bind(&event.workspace_id)
            .bind(&event.device_id)
            .bind(event.timestamp)
            .bind(end.end_reason.as_str())
            .bind(end.duration_ms.map(|d| d as i64))
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            let ended_now = matches!(before.as_deref(), None | Some("detected" | "capturing"))
                && lifecycle == "ended";
            if ended_now && key.is_some() {
                enqueue_marked(&self.pool, &self.queue, session).await?;
            }
            Ok(())
        }
        .boxed()
    }
}

/// Runs the pipeline again for a session the API has reset (`session.reparse`).
pub struct ReparseHandler {
    pool: PgPool,
    queue: Arc<PipelineQueue>,
}

impl ReparseHandler {
    pub fn new(pool: PgPool, queue: Arc<PipelineQueue>) -> Self {
        ReparseHandler { pool, queue }
    }
}

impl Handler for ReparseHandler {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        _payload: &'a Payload,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        async move {
            // A full queue drops it; the recovery sweep finds the reset session anyway.
            let session = event.session_id.as_deref().unwrap_or_default();
            enqueue_marked(&self.pool, &self.queue, session).await?;
            Ok(())
        }
        .boxed()
    }
}

/// Records the transcript the API stored (`transcript.uploaded`, data `{key, size, sha256}`).
pub struct TranscriptUploadedHandler {
    pool: PgPool,
    queue: Arc<PipelineQueue>,
}

impl TranscriptUploadedHandler {
    pub fn new(pool: PgPool, queue: Arc<PipelineQueue>) -> Self {
        TranscriptUploadedHandler { pool, queue }
    }
}

impl Handler for TranscriptUploadedHandler {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        payload: &'a Payload,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        async move {
            let Payload::TranscriptUploaded(upload) = payload else {
                return Err(HandlerError(format!(
                    "{} is not a transcript.uploaded",
                    event.id
                )));
            };
            let upload = Upload {
                key: &upload.key,
                size: Some(upload.size),
                sha256: Some(&upload.sha256),
            };
            let session = event.session_id.as_deref().unwrap_or_default();
            transcript_uploaded(
                &self.pool,
                &self.queue,
                &event.workspace_id,
                session,
                upload,
            )
            .await
            .map(|_| ())
        }
        .boxed()
    }
}

/// A stored transcript: its key, and its size and hash when known.
#[derive(Debug, Clone, Copy)]
pub struct Upload<'a> {
    pub key: &'a str,
    pub size: Option<u64>,
    pub sha256: Option<&'a str>,
}

/// Records an uploaded transcript (creating the session as `detected` if it is new) and starts
/// the pipeline when the session has already ended and had no transcript before. Returns
/// whether it queued the session (false also when the queue was full: the sweep takes it).
pub async fn transcript_uploaded(
    pool: &PgPool,
    queue: &PipelineQueue,
    workspace_id: &str,
    session_id: &str,
    upload: Upload<'_>,
) -> Result<bool, HandlerError> {
    let mut tx = pool.begin().await?;
    let before: Option<Option<String>> =
        sqlx::query_scalar("SELECT transcript_key FROM sessions WHERE id = $1 FOR UPDATE")
            .bind(session_id)
            .fetch_optional(&mut *tx)
            .await?;
    sqlx::query("INSERT INTO workspaces (id) VALUES ($1) ON CONFLICT (id) DO NOTHING")
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
    let (lifecycle, parse_status): (String, String) = sqlx::query_as(
        "INSERT INTO sessions (id, workspace_id, transcript_key, transcript_size, transcript_sha256) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO UPDATE SET transcript_key = EXCLUDED.transcript_key, \
             transcript_size = EXCLUDED.transcript_size, \
             transcript_sha256 = EXCLUDED.transcript_sha256, updated_at = now() \
         RETURNING lifecycle, parse_status",
    )
    .bind(session_id)
    .bind(workspace_id)
    .bind(upload.key)
    .bind(upload.size.map(|s| s as i64))
    .bind(upload.sha256)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let first_transcript = matches!(before, None | Some(None));
    let start = first_transcript && lifecycle == "ended" && parse_status == "pending";
    Ok(start && enqueue_marked(pool, queue, session_id).await?)
}

/// Queues `session`; when it got a place, marks it queued (`enqueued_at`) so that a recovery
/// sweep draining a backlog leaves it alone. A dropped one stays unmarked for the sweep.
async fn enqueue_marked(
    pool: &PgPool,
    queue: &PipelineQueue,
    session: &str,
) -> Result<bool, sqlx::Error> {
    if !queue.enqueue(session) {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE sessions SET enqueued_at = now() WHERE id = $1 AND parse_status = 'pending'",
    )
    .bind(session)
    .execute(pool)
    .await?;
    Ok(true)
}
