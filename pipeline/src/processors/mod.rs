//! Session processors: independent jobs that derive data from parsed sessions on their own
//! schedule ([`usage`]: token usage and cost per response; [`tools`]: calls, failures and files
//! per tool). A run takes the processor's
//! Postgres advisory lock without waiting (a second run at once is refused), looks only at
//! sessions updated since the processor last saw them, skips those whose transcript hash it
//! already processed, and records per session what it made of it (`processor_state`). A failure
//! or panic on one session is recorded and the run goes on; after 5 failed attempts on one
//! transcript a session is parked for that processor until its transcript changes.

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
    source: Source,
    pool: PgPool,
}

/// Where a session's transcript is read from.
enum Source {
    /// The server's blob store (the key, if the session has one).
    Blob(Arc<dyn BlobStore>, Option<String>),
    /// Files on disk (`sessionflow process`): the main transcript and its subagent files.
    Files(crate::capture::discover::LocalSession),
}

impl SessionInput {
    /// The database, to read the session's rows and write what the processor makes.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The raw transcript (with its subagent files), from the blob store or from disk.
    pub async fn transcript(&self) -> Result<Bytes, String> {
        match &self.source {
            Source::Blob(blobs, key) => {
                let key = key
                    .as_deref()
                    .ok_or_else(|| format!("session {} has no stored transcript", self.id))?;
                blobs.get(key).await.map_err(|e| e.to_string())
            }
            Source::Files(session) => {
                let session = session.clone();
                let read = tokio::task::spawn_blocking(move || session.read())
                    .await
                    .map_err(|e| e.to_string())?;
                read.map(|t| Bytes::from(t.body)).map_err(|e| e.to_string())
            }
        }
    }
}

/// A job over sessions.
pub trait Processor: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// How often the scheduler runs it unless told otherwise.
    fn default_interval(&self) -> Duration;
    /// Processes one session; returns how many items it produced.
    fn process<'a>(&'a self, session: &'a SessionInput) -> BoxFuture<'a, Result<u64, String>>;
    /// Whether it can work from transcript files alone (`sessionflow process`), without the
    /// rows the pipeline stores.
    fn works_offline(&self) -> bool {
        false
    }
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
    #[error("processor {0} reads the rows the pipeline stores; run it on a server")]
    NotOffline(String),
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
        let (processor, lock) = self.claim(name, false).await?;
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

    /// The processor called `name` (one that works from files, when `offline`) and its lock,
    /// taken without waiting.
    async fn claim(
        &self,
        name: &str,
        offline: bool,
    ) -> Result<(Arc<dyn Processor>, Lock), RunError> {
        let processor = Arc::clone(
            self.get(name)
                .ok_or_else(|| RunError::Unknown(name.to_owned()))?,
        );
        if offline && !processor.works_offline() {
            return Err(RunError::NotOffline(name.to_owned()));
        }
        match Lock::try_take(&self.pool, name).await? {
            Some(lock) => Ok((processor, lock)),
            None => Err(RunError::Busy(name.to_owned())),
        }
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
                    OR (p.attempts < $2 AND (s.updated_at > p.seen_at OR p.attempts > 0)) \
                    OR (p.attempts >= $2 AND s.updated_at > p.seen_at \
                        AND s.transcript_sha256 IS DISTINCT FROM p.attempted_hash)) \
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
                id,
                workspace_id,
                source: Source::Blob(Arc::clone(&self.blobs), transcript_key),
                pool: self.pool.clone(),
            };
            self.attempt(&processor, input, &sha, &mut summary).await?;
        }
        Ok(summary)
    }

    /// Processes one session (a panic stays with it) and records the outcome.
    async fn attempt(
        &self,
        processor: &Arc<dyn Processor>,
        input: SessionInput,
        sha: &str,
        summary: &mut RunSummary,
    ) -> Result<(), RunError> {
        let name = processor.name();
        let id = input.id.clone();
        let task = {
            let processor = Arc::clone(processor);
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
                .bind(sha)
                .bind(items as i64)
                .execute(&self.pool)
                .await?;
                summary.processed += 1;
                summary.items += items;
            }
            Err(error) => {
                tracing::warn!(processor = name, session = %id, "processing failed: {error}");
                // A new transcript starts the count again: parking is per content.
                sqlx::query(
                    "INSERT INTO processor_state (processor_name, session_id, attempts, \
                         attempted_hash, last_error, seen_at) \
                     VALUES ($1, $2, 1, $4, $3, now()) \
                     ON CONFLICT (processor_name, session_id) DO UPDATE SET \
                         attempts = CASE WHEN processor_state.attempted_hash \
                                              IS NOT DISTINCT FROM $4 \
                                         THEN processor_state.attempts + 1 ELSE 1 END, \
                         attempted_hash = $4, last_error = $3, seen_at = now()",
                )
                .bind(name)
                .bind(&id)
                .bind(&error)
                .bind(sha)
                .execute(&self.pool)
                .await?;
                summary.errors += 1;
            }
        }
        Ok(())
    }

    /// Runs `name` over session files on disk (`sessionflow process`), keeping its state in the
    /// database like a server run. A file whose size and modification time are those recorded
    /// is not read again; a session is processed when its content hash is new to the processor.
    /// Sessions the database does not know are recorded (lifecycle `detected`, source
    /// `offline`, no transcript key, so the pipeline leaves them alone).
    pub async fn run_offline(
        &self,
        name: &str,
        sessions: &[crate::capture::discover::LocalSession],
    ) -> Result<RunSummary, RunError> {
        let (processor, lock) = self.claim(name, true).await?;
        let mut summary = RunSummary::default();
        for session in sessions {
            summary.scanned += 1;
            let sha = match self.file_hash(session).await {
                Ok(sha) => sha,
                Err(error) => {
                    tracing::warn!(session = %session.id, "{error}");
                    summary.errors += 1;
                    continue;
                }
            };
            sqlx::query("INSERT INTO workspaces (id) VALUES ($1) ON CONFLICT (id) DO NOTHING")
                .bind(&session.workspace_id)
                .execute(&self.pool)
                .await?;
            sqlx::query(
                "INSERT INTO sessions (id, workspace_id, lifecycle, source, transcript_sha256) \
                 VALUES ($1, $2, 'detected', 'offline', $3) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&session.id)
            .bind(&session.workspace_id)
            .bind(&sha)
            .execute(&self.pool)
            .await?;
            let state: Option<(Option<String>, i32, Option<String>)> = sqlx::query_as(
                "SELECT content_hash, attempts, attempted_hash FROM processor_state \
                 WHERE processor_name = $1 AND session_id = $2",
            )
            .bind(name)
            .bind(&session.id)
            .fetch_optional(&self.pool)
            .await?;
            let unchanged = state.is_some_and(|(done, attempts, attempted)| {
                let processed = attempts == 0 && done.as_deref() == Some(sha.as_str());
                let parked = attempts >= MAX_ATTEMPTS && attempted.as_deref() == Some(sha.as_str());
                processed || parked
            });
            if unchanged {
                summary.skipped += 1;
                continue;
            }
            let input = SessionInput {
                id: session.id.clone(),
                workspace_id: session.workspace_id.clone(),
                source: Source::Files(session.clone()),
                pool: self.pool.clone(),
            };
            self.attempt(&processor, input, &sha, &mut summary).await?;
        }
        lock.release().await;
        Ok(summary)
    }

    /// The session's content hash: the recorded one while its files' size and modification
    /// time are unchanged, else read and hashed (and recorded).
    async fn file_hash(
        &self,
        session: &crate::capture::discover::LocalSession,
    ) -> Result<String, String> {
        let mut size = 0u64;
        let mut modified = std::time::UNIX_EPOCH;
        for path in std::iter::once(&session.main).chain(&session.subagents) {
            let meta = std::fs::metadata(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            size += meta.len();
            modified = modified.max(meta.modified().map_err(|e| e.to_string())?);
        }
        let mtime_ns = modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let path = session.main.display().to_string();
        let known: Option<String> = sqlx::query_scalar(
            "SELECT sha256 FROM offline_files WHERE path = $1 AND size = $2 AND mtime_ns = $3",
        )
        .bind(&path)
        .bind(size as i64)
        .bind(mtime_ns)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| format!("database: {e}"))?;
        if let Some(sha) = known {
            return Ok(sha);
        }
        let reading = session.clone();
        let transcript = tokio::task::spawn_blocking(move || reading.read())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot read {path}: {e}"))?;
        sqlx::query(
            "INSERT INTO offline_files (path, session_id, size, mtime_ns, sha256) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (path) DO UPDATE SET \
                 session_id = EXCLUDED.session_id, size = EXCLUDED.size, \
                 mtime_ns = EXCLUDED.mtime_ns, sha256 = EXCLUDED.sha256",
        )
        .bind(&path)
        .bind(&session.id)
        .bind(size as i64)
        .bind(mtime_ns)
        .bind(&transcript.sha256)
        .execute(&self.pool)
        .await
        .map_err(|e| format!("database: {e}"))?;
        Ok(transcript.sha256)
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
