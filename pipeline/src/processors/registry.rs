//! The processors a worker or the API knows, and their runs over the sessions the server holds:
//! which sessions a run looks at, each session's attempt (a panic stays with its session), and
//! what is recorded of it in `processor_state` and `processor_runs`.

use std::sync::Arc;
use std::time::Duration;

use sessionflow_protocol::reports::{ToolTotals, UsageReport};
use sessionflow_protocol::search::SearchPage;
use sessionflow_stages::blob::BlobStore;
use sqlx::PgPool;

use super::lock::Lock;
use super::{
    MAX_ATTEMPTS, Processor, RunError, RunSummary, SessionInput, Source, report, search, tools,
    usage,
};

/// How long bringing a processor up to date waits for a run of it already under way.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(120);

/// The pipeline is busy while a session was ended with its transcript, or taken by a worker,
/// this recently (see [`Processors::run_scheduled`]).
pub const BUSY_WITHIN: Duration = Duration::from_secs(2);

/// A scheduled run waits for a busy pipeline at most this long before each session.
pub const MAX_YIELD: Duration = Duration::from_secs(5);

/// How often a waiting run looks again.
const YIELD_STEP: Duration = Duration::from_millis(250);

/// The processors a worker or the API knows, with what they need to run.
#[derive(Clone)]
pub struct Processors {
    list: Vec<Arc<dyn Processor>>,
    pub(super) pool: PgPool,
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
                Arc::new(search::SearchProcessor),
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

    /// Runs `name` once over the sessions it has not seen as they are, retrying those that
    /// failed; refused while another run of it holds its lock (in any process).
    pub async fn run(&self, name: &str) -> Result<RunSummary, RunError> {
        self.run_every(name, false).await
    }

    /// [`run`](Self::run) as the scheduler runs it, giving way to the pipeline: while a session
    /// was ended or taken by a worker (anywhere) in the last [`BUSY_WITHIN`], the run waits
    /// before its first session, up to [`MAX_YIELD`], and ends before any other (the rest are
    /// the next run's, an interval later). So during a backfill the sessions are parsed first
    /// and what processors derive from them (the search index above all, ≈60 ms of Postgres a
    /// session) is made as the pipeline eases — a session a run meanwhile, so never held off
    /// for good — and the processor's lock is held a few seconds at most, so a report or a
    /// search that brings its processor up to date ([`catch_up`](Self::catch_up)) is not kept
    /// waiting.
    pub async fn run_scheduled(&self, name: &str) -> Result<RunSummary, RunError> {
        self.run_every(name, true).await
    }

    async fn run_every(&self, name: &str, yielding: bool) -> Result<RunSummary, RunError> {
        let (processor, lock) = self.claim(name, false).await?;
        self.record_start(name).await?;
        let outcome = self.sweep(processor, Sweep::Every, yielding).await;
        let swept = matches!(outcome, Ok((_, Swept::All)));
        let outcome = outcome.map(|(summary, _)| summary);
        self.record_end(name, &outcome, swept).await?;
        lock.release().await;
        outcome
    }

    /// Whether the pipeline is busy; a database that cannot say counts as idle (the
    /// processing that follows reports it).
    async fn pipeline_busy(&self) -> bool {
        let busy = sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM sessions \
                 WHERE lifecycle = 'ended' AND transcript_key IS NOT NULL \
                   AND updated_at > now() - $1 * interval '1 millisecond')",
        )
        .bind(BUSY_WITHIN.as_millis() as f64)
        .fetch_one(&self.pool)
        .await;
        matches!(busy, Ok(true))
    }

    /// Brings `name` up to date before a report reads what it made: waits (up to
    /// [`CATCH_UP_WAIT`]) for a run under way anywhere, then processes the sessions that are
    /// new or changed since it last saw them. Only sessions changed since the last run through
    /// every session began are looked at (an index read, not a read of every session: a search
    /// asks each time); one that slipped past is the next scheduled run's. Sessions that failed
    /// before are left to the scheduler's retries, so asking twice with nothing new does no
    /// processing at all.
    pub async fn catch_up(&self, name: &str) -> Result<RunSummary, RunError> {
        let processor = Arc::clone(
            self.get(name)
                .ok_or_else(|| RunError::Unknown(name.to_owned()))?,
        );
        let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
        let lock = loop {
            if let Some(lock) = Lock::try_take(&self.pool, name).await? {
                break lock;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RunError::Busy(name.to_owned()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let outcome = self
            .sweep(processor, Sweep::ChangedSinceLastSweep, false)
            .await
            .map(|(summary, _)| summary);
        if !matches!(outcome, Ok(summary) if summary.scanned == 0) {
            self.record_end(name, &outcome, false).await?;
        }
        lock.release().await;
        outcome
    }

    /// The usage report, the `usage` processor first brought up to date.
    pub async fn usage_report(
        &self,
        request: &report::Request,
    ) -> Result<UsageReport, report::ReportError> {
        self.current("usage").await;
        report::report(&self.pool, request).await
    }

    /// Every tool's totals (in sessions of `workspaces`, if named), the `tools` processor first
    /// brought up to date.
    pub async fn tool_totals(
        &self,
        workspaces: Option<&[String]>,
    ) -> Result<Vec<ToolTotals>, sqlx::Error> {
        self.current("tools").await;
        tools::totals(&self.pool, workspaces).await
    }

    /// A search, the `search` processor first brought up to date.
    pub async fn search(
        &self,
        request: &crate::search::Request,
    ) -> Result<SearchPage, crate::search::SearchError> {
        self.current("search").await;
        crate::search::search(&self.pool, request).await
    }

    /// Catches `name` up before a report; a report still answers, from what is there, when
    /// that fails (it is logged).
    async fn current(&self, name: &str) {
        if let Err(e) = self.catch_up(name).await {
            tracing::warn!(processor = name, "the report may miss recent sessions: {e}");
        }
    }

    async fn record_start(&self, name: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO processor_runs (processor_name, running, run_started_at) \
             VALUES ($1, true, now()) \
             ON CONFLICT (processor_name) DO UPDATE SET running = true, run_started_at = now()",
        )
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records how a run ended; `every`: it went through every session, and if it ended
    /// without error, a catch-up need only look at sessions changed since it began.
    async fn record_end(
        &self,
        name: &str,
        outcome: &Result<RunSummary, RunError>,
        every: bool,
    ) -> Result<(), sqlx::Error> {
        let result = match outcome {
            Ok(summary) => serde_json::to_value(summary).unwrap_or_default(),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        };
        sqlx::query(
            "INSERT INTO processor_runs (processor_name, running, last_run_at, last_result) \
             VALUES ($1, false, now(), $2) \
             ON CONFLICT (processor_name) DO UPDATE SET running = false, \
                 last_run_at = now(), last_result = $2, \
                 swept_at = CASE WHEN $3 THEN processor_runs.run_started_at \
                                 ELSE processor_runs.swept_at END",
        )
        .bind(name)
        .bind(result)
        .bind(every && outcome.is_ok())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The processor called `name` (one that works from files, when `offline`) and its lock,
    /// taken without waiting.
    pub(super) async fn claim(
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

    /// Processes the sessions `processor` has not seen as they are, of those `sweep` takes
    /// (`yielding`: giving way to a busy pipeline, see [`run_scheduled`](Self::run_scheduled)).
    async fn sweep(
        &self,
        processor: Arc<dyn Processor>,
        sweep: Sweep,
        yielding: bool,
    ) -> Result<(RunSummary, Swept), RunError> {
        let name = processor.name();
        type Candidate = (String, String, Option<String>, String, Option<String>, bool);
        let candidates: Vec<Candidate> = sqlx::query_as(
            "SELECT s.id, s.workspace_id, s.transcript_key, s.transcript_sha256, p.content_hash, \
                    p.processed_at IS NOT NULL \
             FROM sessions s \
             LEFT JOIN processor_state p ON p.processor_name = $1 AND p.session_id = s.id \
             WHERE s.parse_status = 'completed' AND s.transcript_sha256 IS NOT NULL \
               AND (NOT $4 OR s.updated_at > coalesce( \
                        (SELECT r.swept_at FROM processor_runs r WHERE r.processor_name = $1), \
                        '-infinity') - interval '1 minute') \
               AND (p.session_id IS NULL \
                    OR (p.attempts < $2 AND (s.updated_at > p.seen_at OR ($3 AND p.attempts > 0))) \
                    OR (p.attempts >= $2 AND s.updated_at > p.seen_at \
                        AND s.transcript_sha256 IS DISTINCT FROM p.attempted_hash)) \
             ORDER BY s.id",
        )
        .bind(name)
        .bind(MAX_ATTEMPTS)
        .bind(sweep == Sweep::Every)
        .bind(sweep == Sweep::ChangedSinceLastSweep)
        // Planned for its values each time: the index on `updated_at` serves a catch-up.
        .persistent(false)
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
            if yielding && self.pipeline_busy().await {
                if summary.processed + summary.errors > 0 {
                    return Ok((summary, Swept::Part));
                }
                let until = tokio::time::Instant::now() + MAX_YIELD;
                while tokio::time::Instant::now() < until {
                    tokio::time::sleep(YIELD_STEP).await;
                    if !self.pipeline_busy().await {
                        break;
                    }
                }
            }
            let input = SessionInput {
                id,
                workspace_id,
                source: Source::Blob(Arc::clone(&self.blobs), transcript_key),
                pool: self.pool.clone(),
            };
            self.attempt(&processor, input, &sha, &mut summary).await?;
        }
        Ok((summary, Swept::All))
    }

    /// Processes one session (a panic stays with it) and records the outcome.
    pub(super) async fn attempt(
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
}

/// How far a sweep went.
enum Swept {
    /// Through every session it took.
    All,
    /// It gave way to the pipeline before the end: the rest are the next run's.
    Part,
}

/// The sessions a sweep looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sweep {
    /// Every session, and those whose last attempt failed are retried (unless parked).
    Every,
    /// Those changed since the last sweep of every session began; none is retried.
    ChangedSinceLastSweep,
}

fn panic_text(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}
