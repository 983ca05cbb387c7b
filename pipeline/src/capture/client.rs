//! The API client the capture side uses (backfill, hooks, the demo): events, transcript
//! uploads and batch status, with 429 and 5xx retried after a pause that every request of the
//! client shares — when the server says slow down, all ten workers slow down.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sessionflow_protocol::sessions::{BatchStatusRequest, BatchStatusResponse, SessionStatus};
use sessionflow_stages::summarize::retry_after;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::discover::{LocalSession, stream_body};
use crate::events::Event;

/// How hard the client tries.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// Per request.
    pub timeout: Duration,
    /// Tries per call (1: no retry).
    pub attempts: u32,
    /// The first pause after a 429, 5xx or broken connection; doubled each time.
    pub backoff: Duration,
}

impl Patience {
    /// A backfill's: long uploads, eight tries over about a minute.
    pub const BACKFILL: Patience = Patience {
        timeout: Duration::from_secs(300),
        attempts: 8,
        backoff: Duration::from_millis(500),
    };
    /// A report's: the server may first bring its processor up to date.
    pub const REPORT: Patience = Patience {
        timeout: Duration::from_secs(180),
        attempts: 3,
        backoff: Duration::from_millis(500),
    };
    /// A hook's: never hold Claude Code up; what fails is spooled.
    pub const HOOK: Patience = Patience {
        timeout: Duration::from_secs(3),
        attempts: 1,
        backoff: Duration::from_millis(0),
    };
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request; retrying will not help.
    #[error("{0}")]
    Refused(String),
    /// No usable answer after every try (connection, timeout, 429, 5xx).
    #[error("{0}")]
    Unavailable(String),
}

/// What the server said about an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uploaded {
    Stored,
    AlreadyUploaded,
}

/// Batch-status asks about at most this many sessions at once.
pub const STATUS_BATCH: usize = sessionflow_protocol::sessions::MAX_BATCH;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    server: String,
    api_key: String,
    patience: Patience,
    /// No request leaves before this instant (a 429 or 5xx pushed it out).
    gate: Arc<Mutex<Instant>>,
}

impl Client {
    pub fn new(server: &str, api_key: &str, patience: Patience) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(patience.timeout)
            .connect_timeout(patience.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        Ok(Client {
            http,
            server: server.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            patience,
            gate: Arc::new(Mutex::new(Instant::now())),
        })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// `POST /api/events/ingest`.
    pub async fn send_events(&self, events: &[Event]) -> Result<(), ClientError> {
        let body = serde_json::to_vec(&json!({ "events": events }))
            .map_err(|e| ClientError::Refused(e.to_string()))?;
        self.call("/api/events/ingest", || {
            self.http
                .post(format!("{}/api/events/ingest", self.server))
                .header("content-type", "application/json")
                .body(body.clone())
        })
        .await
        .map(|_| ())
    }

    /// `POST /api/sessions/{id}/transcript/upload` of the session's files, streamed from disk
    /// (read again on each try; memory does not grow with their size).
    pub async fn upload(&self, session: &LocalSession) -> Result<Uploaded, ClientError> {
        let parts = session.parts();
        let answer = self
            .call("the transcript upload", || {
                self.http
                    .post(format!(
                        "{}/api/sessions/{}/transcript/upload?workspace_id={}",
                        self.server,
                        encode(&session.id),
                        encode(&session.workspace_id)
                    ))
                    .header("content-type", "application/octet-stream")
                    .body(streamed(parts.clone()))
            })
            .await?;
        Ok(if answer["already_uploaded"] == true {
            Uploaded::AlreadyUploaded
        } else {
            Uploaded::Stored
        })
    }

    /// `POST /api/sessions/batch-status` for any number of ids, in groups of 500; sessions the
    /// server does not know are absent.
    pub async fn statuses(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, SessionStatus>, ClientError> {
        let mut all = BTreeMap::new();
        for group in ids.chunks(STATUS_BATCH) {
            let request = BatchStatusRequest {
                session_ids: group.to_vec(),
            };
            let body =
                serde_json::to_vec(&request).map_err(|e| ClientError::Refused(e.to_string()))?;
            let answer = self
                .call("batch-status", || {
                    self.http
                        .post(format!("{}/api/sessions/batch-status", self.server))
                        .header("content-type", "application/json")
                        .body(body.clone())
                })
                .await?;
            let page: BatchStatusResponse = serde_json::from_value(answer).map_err(|e| {
                ClientError::Refused(format!("batch-status answered something unreadable: {e}"))
            })?;
            all.extend(page.statuses);
        }
        Ok(all)
    }

    /// `GET` of `path` (with its query), answered as JSON.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(path, || self.http.get(format!("{}{path}", self.server)))
            .await
    }

    /// `POST` of the JSON `body` to `path`, answered as JSON.
    pub async fn post_json(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<Value, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Refused(e.to_string()))?;
        self.call(path, || {
            self.http
                .post(format!("{}{path}", self.server))
                .header("content-type", "application/json")
                .body(body.clone())
        })
        .await
    }

    /// `DELETE` of `path`.
    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.call(path, || self.http.delete(format!("{}{path}", self.server)))
            .await
            .map(|_| ())
    }

    /// Sends the request `build` makes until it gets a 2xx, a refusal, or runs out of tries.
    async fn call(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Value, ClientError> {
        let mut pause = self.patience.backoff;
        let mut last = String::new();
        for attempt in 1..=self.patience.attempts {
            let open_at = *self.gate.lock().await;
            tokio::time::sleep_until(open_at).await;
            let retry_after = match build().bearer_auth(&self.api_key).send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    let body = response.bytes().await.unwrap_or_default();
                    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let reason = answer["error"]
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
                    if status.is_success() {
                        return Ok(answer);
                    }
                    last = format!("{what}: {} answered HTTP {status}: {reason}", self.server);
                    if status.as_u16() != 429 && !status.is_server_error() {
                        return Err(ClientError::Refused(last));
                    }
                    retry_after
                }
                Err(e) => {
                    last = format!("{what}: cannot reach {}: {e}", self.server);
                    None
                }
            };
            if attempt < self.patience.attempts {
                let wait = retry_after.unwrap_or(pause).max(pause);
                tracing::warn!(
                    "{last}; retrying in {wait:?} (try {attempt} of {})",
                    self.patience.attempts
                );
                let mut gate = self.gate.lock().await;
                *gate = (*gate).max(Instant::now() + wait);
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
        Err(ClientError::Unavailable(last))
    }
}

/// Percent-encodes all but letters and digits, for a path segment or query value.
pub fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The body of `parts` as a stream: a blocking task reads them a chunk at a time into a small
/// channel, so at most a few chunks are in memory; a read error ends the body with the error
/// (the server sees a broken body and stores nothing).
fn streamed(parts: Vec<PathBuf>) -> reqwest::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let sent = stream_body(&parts, |chunk| {
            tx.blocking_send(Ok(bytes::Bytes::copy_from_slice(chunk)))
                .map_err(|_| std::io::Error::other("the request was dropped"))
        });
        if let Err(e) = sent {
            let _ = tx.blocking_send(Err(e));
        }
    });
    reqwest::Body::wrap_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}
