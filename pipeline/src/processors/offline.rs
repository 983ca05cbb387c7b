//! `sessionflow process`: a processor over transcript files on disk, its state kept in the
//! database like a server run's.

use sessionflow_stages::store::Store;

use super::registry::Processors;
use super::{MAX_ATTEMPTS, RunError, RunSummary, SessionInput, Source};

impl Processors {
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
            Store::from_pool(self.pool.clone())
                .record_offline(&session.id, &session.workspace_id, &sha)
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
        let transcript = tokio::task::spawn_blocking(move || reading.scan())
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
