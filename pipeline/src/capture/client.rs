//! The API client the capture side uses (backfill, hooks, the demo): events, transcript
//! uploads and batch status, with 429 and 5xx retried after a pause that every request of the
//! client shares — when the server says slow down, all ten workers slow down.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sessionflow_protocol::sessions::{BatchStatusRequest, BatchStatusResponse, SessionStatus};
use sessionflow_protocol::transcripts::{PARTS_HEADER, Parts, WORKSPACE_HEADER};
use sessionflow_stages::summarize::retry_after;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::discover::{LocalSession, stream_files};
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

/// A transcript as the server stores it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its workspace: Claude Code's project folder.
    pub workspace_id: String,
    /// Its files; none: one file, the main transcript.
    pub parts: Option<Parts>,
    pub bytes: bytes::Bytes,
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
    /// (read again on each try; memory does not grow with their size), named in the parts
    /// header as measured just before. `force`: store it even if the server deleted it for good.
    pub async fn upload(
        &self,
        session: &LocalSession,
        force: bool,
    ) -> Result<Uploaded, ClientError> {
        let measuring = session.clone();
        let measured = tokio::task::spawn_blocking(move || measuring.measure())
            .await
            .map_err(|e| ClientError::Unavailable(e.to_string()))?
            .map_err(|e| ClientError::Refused(format!("cannot read {}: {e}", session.id)))?;
        let files: Vec<(PathBuf, u64)> = session
            .parts()
            .into_iter()
            .zip(measured.0.iter().map(|part| part.size))
            .collect();
        let header = measured.to_header();
        let answer = self
            .call("the transcript upload", || {
                self.http
                    .post(format!(
                        "{}/api/sessions/{}/transcript/upload?workspace_id={}{}",
                        self.server,
                        encode(&session.id),
                        encode(&session.workspace_id),
                        if force { "&force=true" } else { "" }
                    ))
                    .header("content-type", "application/octet-stream")
                    .header(PARTS_HEADER, &header)
                    .body(streamed(files.clone()))
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
        Ok(self.remote(ids).await?.0)
    }

    /// [`statuses`](Self::statuses), and which of the unknown sessions the server deleted for
    /// good.
    pub async fn remote(
        &self,
        ids: &[String],
    ) -> Result<(BTreeMap<String, SessionStatus>, BTreeSet<String>), ClientError> {
        let mut all = BTreeMap::new();
        let mut deleted = BTreeSet::new();
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
            deleted.extend(page.deleted);
        }
        Ok((all, deleted))
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

    /// `DELETE` of `path`, answered as JSON.
    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.call(path, || self.http.delete(format!("{}{path}", self.server)))
            .await
    }

    /// `GET /api/sessions/{id}/transcript`: the stored transcript, its workspace and its files.
    pub async fn transcript(&self, id: &str) -> Result<Stored, ClientError> {
        let path = format!("/api/sessions/{}/transcript", encode(id));
        let (headers, bytes) = self
            .call_raw(&path, || self.http.get(format!("{}{path}", self.server)))
            .await?;
        let header = |name: &str| {
            headers
                .get(name)
                .map(|v| v.to_str().map(str::to_owned))
                .transpose()
                .map_err(|_| ClientError::Refused(format!("{path}: {name} is not text")))
        };
        let workspace_id = header(WORKSPACE_HEADER)?
            .ok_or_else(|| ClientError::Refused(format!("{path}: no {WORKSPACE_HEADER}")))?;
        let parts = header(PARTS_HEADER)?
            .map(|text| Parts::parse(id, &text))
            .transpose()
            .map_err(|e| ClientError::Refused(format!("{path}: {e}")))?;
        Ok(Stored {
            workspace_id,
            parts,
            bytes,
        })
    }

    /// Sends the request `build` makes until it gets a 2xx, a refusal, or runs out of tries;
    /// the answer as JSON.
    async fn call(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Value, ClientError> {
        let (_, body) = self.call_raw(what, build).await?;
        Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// [`call`](Self::call), answered with the headers and bytes of the 2xx.
    async fn call_raw(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(reqwest::header::HeaderMap, bytes::Bytes), ClientError> {
        let mut pause = self.patience.backoff;
        let mut last = String::new();
        for attempt in 1..=self.patience.attempts {
            let open_at = *self.gate.lock().await;
            tokio::time::sleep_until(open_at).await;
            let retry_after = match build().bearer_auth(&self.api_key).send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let retry_after = retry_after(&headers);
                    match response.bytes().await {
                        Ok(body) if status.is_success() => return Ok((headers, body)),
                        Err(e) if status.is_success() => {
                            last = format!("{what}: the answer of {} broke off: {e}", self.server);
                            None
                        }
                        body => {
                            let body = body.unwrap_or_default();
                            let answer: Value =
                                serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let reason = answer["error"]
                                .as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
                            last =
                                format!("{what}: {} answered HTTP {status}: {reason}", self.server);
                            if status.as_u16() != 429 && !status.is_server_error() {
                                return Err(ClientError::Refused(last));
                            }
                            retry_after
                        }
                    }
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

/// The body of `files` (each up to its measured size) as a stream: a blocking task reads them
/// a chunk at a time into a small channel, so at most a few chunks are in memory; a read error
/// ends the body with the error (the server sees a broken body and stores nothing).
fn streamed(files: Vec<(PathBuf, u64)>) -> reqwest::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let files: Vec<(&std::path::Path, Option<u64>)> = files
            .iter()
            .map(|(path, size)| (path.as_path(), Some(*size)))
            .collect();
        let sent = stream_files(&files, |chunk| {
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
