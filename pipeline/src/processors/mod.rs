//! Session processors: independent jobs that derive data from parsed sessions on their own
//! schedule ([`usage`]: token usage and cost per response; [`tools`]: calls, failures and files
//! per tool). A run takes the processor's
//! Postgres advisory lock without waiting (a second run at once is refused), looks only at
//! sessions updated since the processor last saw them, skips those whose transcript hash it
//! already processed, and records per session what it made of it (`processor_state`). A failure
//! or panic on one session is recorded and the run goes on; after 5 failed attempts a session is
//! parked for that processor.

pub mod report;
pub mod scheduler;
pub mod tools;
pub mod usage;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde::Serialize;
use sessionflow_stages::blob::BlobStore;
use sqlx::PgPool;
use sqlx::pool::PoolConnection;

/// Failed attempts after which a session is parked for a processor.
pub const MAX_ATTEMPTS: i32 = 5;

/// One session, as a processor gets it: ids, and its stored transcript on demand.
pub struct SessionInput {
    pub id: String,
    pub workspace_id: String,
    transcript_key: Option<String>,
    pool: PgPool,
    blobs: Arc<dyn BlobStore>,
}

impl SessionInput {
    /// The database, to read the session's rows and write what the processor makes.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The raw transcript, read from the blob store.
    pub async fn transcript(&self) -> Result<Bytes, String> {
        let key = self
            .transcript_key
            .as_deref()
            .ok_or_else(|| format!("session {} has no stored transcript", self.id))?;
        self.blobs.get(key).await.map_err(|e| e.to_string())
    }
}

/// A job over sessions.
pub trait Processor: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// How often the scheduler runs it unless told otherwise.
    fn default_interval(&self) -> Duration;
    /// Processes one session; returns how many items it produced.
    fn process<'a>(&'a self, session: &'a SessionInput) -> BoxFuture<'a, Result<u64, String>>;
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// Sessions looked at (changed since the last run, or failed before).
    pub scanned: u64,
    pub processed: u64,
    /// Looked at, but their transcript was the one already processed.
    pub skipped: u64,
    pub errors: u64,
    pub items: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no processor is called {0:?}")]
    Unknown(String),
    #[error("processor {0} is already running")]
    Busy(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The processors a worker or the API knows, with what they need to run.
#[derive(Clone)]
pub struct Processors {
    list: Vec<Arc<dyn Processor>>,
    pool: PgPool,
    blobs: Arc<dyn BlobStore>,
}

impl Processors {
    pub fn new(pool: PgPool, blobs: Arc<dyn BlobStore>, list: Vec<Arc<dyn Processor>>) -> Self {
        Processors { list, pool, blobs }
    }

    /// The ones sessionflow ships.
    pub fn standard(pool: PgPool, blobs: Arc<dyn BlobStore>) -> Self {
        Self::new(
            pool,
            blobs,
            vec![
                Arc::new(usage::UsageProcessor),
                Arc::new(tools::ToolsProcessor),
            ],
        )
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn all(&self) -> &[Arc<dyn Processor>] {
        &self.list
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Processor>> {
        self.list.iter().find(|p| p.name() == name)
    }

    /// Runs `name` once over the sessions it has not seen as they are; refused while another
    /// run of it holds its lock (in any process).
    pub async fn run(&self, name: &str) -> Result<RunSummary, RunError> {
        let processor = Arc::clone(
            self.get(name)
                .ok_or_else(|| RunError::Unknown(name.to_owned()))?,
        );
        let lock = Lock::try_take(&self.pool, name).await?;
        let Some(lock) = lock else {
            return Err(RunError::Busy(name.to_owned()));
        };
        sqlx::query(
            "INSERT INTO processor_runs (processor_name, running) VALUES ($1, true) \
             ON CONFLICT (processor_name) DO UPDATE SET running = true",
        )
        .bind(name)
        .execute(&self.pool)
        .await?;
        let outcome = self.sweep(processor).await;
        let result = match &outcome {
            Ok(summary) => serde_json::to_value(summary).unwrap_or_default(),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        };
        sqlx::query(
            "UPDATE processor_runs SET running = false, last_run_at = now(), last_result = $2 \
             WHERE processor_name = $1",
        )
        .bind(name)
        .bind(result)
        .execute(&self.pool)
        .await?;
        lock.release().await;
        outcome
    }

    async fn sweep(&self, processor: Arc<dyn Processor>) -> Result<RunSummary, RunError> {
        let name = processor.name();
        type Candidate = (String, String, Option<String>, String, Option<String>, bool);
        let candidates: Vec<Candidate> = sqlx::query_as(
            "SELECT s.id, s.workspace_id, s.transcript_key, s.transcript_sha256, p.content_hash, \
                    p.processed_at IS NOT NULL \
             FROM sessions s \
             LEFT JOIN processor_state p ON p.processor_name = $1 AND p.session_id = s.id \
             WHERE s.parse_status = 'completed' AND s.transcript_sha256 IS NOT NULL \
               AND (p.session_id IS NULL \
                    OR (p.attempts < $2 AND (s.updated_at > p.seen_at OR p.attempts > 0))) \
             ORDER BY s.id",
        )
        .bind(name)
        .bind(MAX_ATTEMPTS)
        .fetch_all(&self.pool)
        .await?;
        let mut summary = RunSummary::default();
        for (id, workspace_id, transcript_key, sha, done_hash, processed) in candidates {
            summary.scanned += 1;
            if processed && done_hash.as_deref() == Some(sha.as_str()) {
                sqlx::query(
                    "UPDATE processor_state SET seen_at = now() \
                     WHERE processor_name = $1 AND session_id = $2",
                )
                .bind(name)
                .bind(&id)
                .execute(&self.pool)
                .await?;
                summary.skipped += 1;
                continue;
            }
            let input = SessionInput {
                id: id.clone(),
                workspace_id,
                transcript_key,
                pool: self.pool.clone(),
                blobs: Arc::clone(&self.blobs),
            };
            let task = {
                let processor = Arc::clone(&processor);
                tokio::spawn(async move { processor.process(&input).await })
            };
            let outcome = match task.await {
                Ok(outcome) => outcome,
                Err(e) if e.is_panic() => Err(format!("the processor panicked: {}", panic_text(e))),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(items) => {
                    sqlx::query(
                        "INSERT INTO processor_state (processor_name, session_id, content_hash, \
                             processed_at, items, attempts, last_error, seen_at) \
                         VALUES ($1, $2, $3, now(), $4, 0, NULL, now()) \
                         ON CONFLICT (processor_name, session_id) DO UPDATE SET \
                             content_hash = EXCLUDED.content_hash, processed_at = now(), \
                             items = EXCLUDED.items, attempts = 0, last_error = NULL, \
                             seen_at = now()",
                    )
                    .bind(name)
                    .bind(&id)
                    .bind(&sha)
                    .bind(items as i64)
                    .execute(&self.pool)
                    .await?;
                    summary.processed += 1;
                    summary.items += items;
                }
                Err(error) => {
                    tracing::warn!(processor = name, session = %id, "processing failed: {error}");
                    sqlx::query(
                        "INSERT INTO processor_state (processor_name, session_id, attempts, \
                             last_error, seen_at) VALUES ($1, $2, 1, $3, now()) \
                         ON CONFLICT (processor_name, session_id) DO UPDATE SET \
                             attempts = processor_state.attempts + 1, last_error = $3, \
                             seen_at = now()",
                    )
                    .bind(name)
                    .bind(&id)
                    .bind(&error)
                    .execute(&self.pool)
                    .await?;
                    summary.errors += 1;
                }
            }
        }
        Ok(summary)
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

/// A processor's advisory lock, held on one connection. Released explicitly; if the holder is
/// dropped on the way (an error, a cancelled request), the connection is closed instead of
/// going back to the pool, which frees the lock on the server.
struct Lock {
    connection: Option<PoolConnection<sqlx::Postgres>>,
    name: String,
}

impl Lock {
    async fn try_take(pool: &PgPool, name: &str) -> Result<Option<Lock>, sqlx::Error> {
        let mut connection = pool.acquire().await?;
        let taken: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtext('sessionflow-processor'), hashtext($1))",
        )
        .bind(name)
        .fetch_one(&mut *connection)
        .await?;
        Ok(taken.then(|| Lock {
            connection: Some(connection),
            name: name.to_owned(),
        }))
    }

    async fn release(mut self) {
        if let Some(mut connection) = self.connection.take() {
            let released = sqlx::query(
                "SELECT pg_advisory_unlock(hashtext('sessionflow-processor'), hashtext($1))",
            )
            .bind(&self.name)
            .execute(&mut *connection)
            .await;
            if released.is_err() {
                drop(connection.detach());
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            drop(connection.detach());
        }
    }
}
