//! What each event type does to sessions. The registry is built once at start and logged; each
//! handler holds only the ports it uses, and writes session rows only through the store.
//!
//! session.start creates the session (`detected`); session.end moves it to `ended` (creating an
//! `ended` session if none exists). The pipeline starts when a session is both ended and has its
//! transcript: whichever of session.end and the transcript upload comes last starts it, exactly
//! once (see the store's `record_ends` and `record_transcript`).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use sessionflow_stages::store::{Ended, Started, Store, StoreError, Transcript};
use sqlx::PgConnection;

use super::envelope::{Event, Payload};
use crate::queue::PipelineQueue;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl From<StoreError> for HandlerError {
    fn from(e: StoreError) -> Self {
        HandlerError(e.to_string())
    }
}

impl From<serde_json::Error> for HandlerError {
    fn from(e: serde_json::Error) -> Self {
        HandlerError(e.to_string())
    }
}

/// Acts on one type of event.
pub trait Handler: Send + Sync {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        payload: &'a Payload,
    ) -> BoxFuture<'a, Result<(), HandlerError>>;

    /// Acts on many events of its type at once (each of a different session), all or none;
    /// `None` when it cannot, and each is handled alone.
    fn handle_many<'a>(
        &'a self,
        _events: &'a [(&'a Event, &'a Payload)],
    ) -> Option<BoxFuture<'a, Result<(), HandlerError>>> {
        None
    }

    /// Acts on the event inside `tx`, the transaction that records it handled (an event this
    /// server raised: recorded and handled with one commit). Returns the sessions it made
    /// ready to run, for [`start`](Self::start) once `tx` commits; `None` when it cannot, and
    /// the event is handled as any other.
    fn handle_in<'a>(
        &'a self,
        _tx: &'a mut PgConnection,
        _event: &'a Event,
        _payload: &'a Payload,
    ) -> Option<BoxFuture<'a, Result<Vec<String>, HandlerError>>> {
        None
    }

    /// Starts the runs of the sessions [`handle_in`](Self::handle_in) made ready.
    fn start<'a>(&'a self, _sessions: &'a [String]) -> BoxFuture<'a, Result<(), HandlerError>> {
        async { Ok(()) }.boxed()
    }
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
    /// transcript.uploaded; sessions they make ready go to `runs`.
    pub fn standard(runs: Runs) -> Self {
        let registry = Self::new()
            .register(
                "session.start",
                SessionStartHandler::new(runs.store.clone()),
            )
            .register("session.end", SessionEndHandler::new(runs.clone()))
            .register("session.reparse", ReparseHandler::new(runs.clone()))
            .register("transcript.uploaded", TranscriptUploadedHandler::new(runs));
        tracing::info!("registered handlers: {}", registry.kinds().join(", "));
        registry
    }
}

/// Where sessions made ready to run go: this worker's queue, recorded as queued by it, so that
/// while it lives no other worker's sweep runs them too, and when it dies they are rescued.
#[derive(Clone)]
pub struct Runs {
    store: Store,
    queue: Arc<PipelineQueue>,
    worker: Arc<str>,
}

impl Runs {
    pub fn new(store: Store, queue: Arc<PipelineQueue>, worker: &str) -> Self {
        Runs {
            store,
            queue,
            worker: Arc::from(worker),
        }
    }

    /// Queues `session`, marked as this worker's. False when the queue had no room: the
    /// session is left unmarked, and the recovery sweep finds it.
    pub async fn start(&self, session: &str) -> Result<bool, StoreError> {
        Ok(self.start_many(&[session]).await? == 1)
    }

    /// [`start`](Self::start) of many sessions, marked in one statement; those beyond the
    /// queue's room are not marked but left to the recovery sweep at once. Returns how many
    /// the queue took.
    pub async fn start_many(&self, sessions: &[&str]) -> Result<usize, StoreError> {
        let (now, later) = sessions.split_at(sessions.len().min(self.queue.room()));
        for session in later {
            self.queue.overflow(session);
        }
        if now.is_empty() {
            return Ok(0);
        }
        self.store.mark_queued(now, &self.worker).await?;
        let left: Vec<String> = now
            .iter()
            .filter(|session| !self.queue.enqueue(**session))
            .map(|session| session.to_string())
            .collect();
        if !left.is_empty() {
            self.store.release_queued(&self.worker, Some(&left)).await?;
        }
        Ok(now.len() - left.len())
    }
}

/// Creates the session as `detected` with what the start event knows; an existing session keeps
/// its state and gains the fields it lacked.
pub struct SessionStartHandler {
    store: Store,
}

impl SessionStartHandler {
    pub fn new(store: Store) -> Self {
        SessionStartHandler { store }
    }
}

/// What each of `events` tells, as `read` reads it: all of them, or the first error.
fn read_all<'a, T>(
    events: &'a [(&'a Event, &'a Payload)],
    read: fn(&'a Event, &'a Payload) -> Result<T, HandlerError>,
) -> Result<Vec<T>, HandlerError> {
    events
        .iter()
        .map(|(event, payload)| read(event, payload))
        .collect()
}

/// What a `session.start` event tells of its session.
fn started<'a>(event: &'a Event, payload: &'a Payload) -> Result<Started<'a>, HandlerError> {
    let Payload::SessionStart(start) = payload else {
        return Err(HandlerError(format!("{} is not a session.start", event.id)));
    };
    Ok(Started {
        id: event.session_id.as_deref().unwrap_or_default(),
        workspace_id: &event.workspace_id,
        device_id: &event.device_id,
        at: Some(event.timestamp),
        source: Some(start.source.as_str()),
        model: start.model.as_deref(),
        git_branch: start.git_branch.as_deref(),
        cwd: start.cwd.as_deref(),
        cc_version: start.cc_version.as_deref(),
    })
}

impl Handler for SessionStartHandler {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        payload: &'a Payload,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        async move {
            self.store.record_start(&started(event, payload)?).await?;
            Ok(())
        }
        .boxed()
    }

    fn handle_many<'a>(
        &'a self,
        events: &'a [(&'a Event, &'a Payload)],
    ) -> Option<BoxFuture<'a, Result<(), HandlerError>>> {
        Some(
            async move {
                self.store
                    .record_starts(&read_all(events, started)?)
                    .await?;
                Ok(())
            }
            .boxed(),
        )
    }
}

/// Ends the session and starts its pipeline if the transcript is already there.
pub struct SessionEndHandler {
    runs: Runs,
}

impl SessionEndHandler {
    pub fn new(runs: Runs) -> Self {
        SessionEndHandler { runs }
    }
}

/// What a `session.end` event tells of its session.
fn ended<'a>(event: &'a Event, payload: &'a Payload) -> Result<Ended<'a>, HandlerError> {
    let Payload::SessionEnd(end) = payload else {
        return Err(HandlerError(format!("{} is not a session.end", event.id)));
    };
    Ok(Ended {
        id: event.session_id.as_deref().unwrap_or_default(),
        workspace_id: &event.workspace_id,
        device_id: &event.device_id,
        at: Some(event.timestamp),
        reason: end.end_reason.as_str(),
        duration_ms: end.duration_ms,
    })
}

impl SessionEndHandler {
    /// Ends the sessions and starts those whose transcript is already there.
    async fn end(&self, ends: &[Ended<'_>]) -> Result<(), HandlerError> {
        let ready = self.runs.store.record_ends(ends).await?;
        let ready: Vec<&str> = ready.iter().map(String::as_str).collect();
        self.runs.start_many(&ready).await?;
        Ok(())
    }
}

impl Handler for SessionEndHandler {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        payload: &'a Payload,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        async move { self.end(&[ended(event, payload)?]).await }.boxed()
    }

    fn handle_many<'a>(
        &'a self,
        events: &'a [(&'a Event, &'a Payload)],
    ) -> Option<BoxFuture<'a, Result<(), HandlerError>>> {
        Some(async move { self.end(&read_all(events, ended)?).await }.boxed())
    }
}

/// Runs the pipeline again for a session the API has reset (`session.reparse`).
pub struct ReparseHandler {
    runs: Runs,
}

impl ReparseHandler {
    pub fn new(runs: Runs) -> Self {
        ReparseHandler { runs }
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
            self.runs.start(session).await?;
            Ok(())
        }
        .boxed()
    }
}

/// Records the transcript the API stored (`transcript.uploaded`, data `{key, size, sha256,
/// parts}`).
pub struct TranscriptUploadedHandler {
    runs: Runs,
}

impl TranscriptUploadedHandler {
    pub fn new(runs: Runs) -> Self {
        TranscriptUploadedHandler { runs }
    }
}

/// The session and transcript a `transcript.uploaded` event tells of.
fn uploaded<'a>(
    event: &'a Event,
    payload: &'a Payload,
) -> Result<(&'a str, Transcript<'a>), HandlerError> {
    let Payload::TranscriptUploaded(upload) = payload else {
        return Err(HandlerError(format!(
            "{} is not a transcript.uploaded",
            event.id
        )));
    };
    let transcript = Transcript {
        key: &upload.key,
        size: Some(upload.size),
        sha256: Some(&upload.sha256),
        parts: upload.parts.as_ref(),
    };
    Ok((event.session_id.as_deref().unwrap_or_default(), transcript))
}

impl Handler for TranscriptUploadedHandler {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        payload: &'a Payload,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        async move {
            let (session, transcript) = uploaded(event, payload)?;
            transcript_uploaded(&self.runs, &event.workspace_id, session, transcript)
                .await
                .map(|_| ())
        }
        .boxed()
    }

    fn handle_in<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        event: &'a Event,
        payload: &'a Payload,
    ) -> Option<BoxFuture<'a, Result<Vec<String>, HandlerError>>> {
        Some(
            async move {
                let (session, transcript) = uploaded(event, payload)?;
                let ready =
                    Store::record_transcript_in(tx, &event.workspace_id, session, transcript)
                        .await?;
                Ok(if ready {
                    vec![session.to_owned()]
                } else {
                    Vec::new()
                })
            }
            .boxed(),
        )
    }

    fn start<'a>(&'a self, sessions: &'a [String]) -> BoxFuture<'a, Result<(), HandlerError>> {
        async move {
            let sessions: Vec<&str> = sessions.iter().map(String::as_str).collect();
            self.runs.start_many(&sessions).await?;
            Ok(())
        }
        .boxed()
    }
}

/// Records an uploaded transcript and starts the pipeline when the session has already ended
/// and had no transcript before. Returns whether it queued the session (false also when the
/// queue was full: the sweep takes it).
pub async fn transcript_uploaded(
    runs: &Runs,
    workspace_id: &str,
    session_id: &str,
    transcript: Transcript<'_>,
) -> Result<bool, HandlerError> {
    let ready = runs
        .store
        .record_transcript(workspace_id, session_id, transcript)
        .await?;
    Ok(ready && runs.start(session_id).await?)
}
