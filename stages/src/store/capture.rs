//! What capture events do to session rows: a session starts, ends, gets its transcript. Each
//! write here is the only one of its kind; the lifecycle table decides which states a session
//! may end from. Whichever of the end and the transcript arrives last reports the session
//! ready to run — each takes the session's row lock and sees the other's committed change, so
//! it is reported exactly once. A deleted session's tombstone keeps these writes from bringing
//! it back (see [`deletion`](super::deletion)).

use chrono::{DateTime, Utc};

use sessionflow_protocol::transcripts::Parts;

use super::deletion::tombstoned;
use super::{Lifecycle, Store, StoreError};

/// A session's start, as its `session.start` event tells it.
#[derive(Debug, Clone, Default)]
pub struct Started<'a> {
    pub id: &'a str,
    pub workspace_id: &'a str,
    pub device_id: &'a str,
    pub at: Option<DateTime<Utc>>,
    pub source: Option<&'a str>,
    pub model: Option<&'a str>,
    pub git_branch: Option<&'a str>,
    pub cwd: Option<&'a str>,
    pub cc_version: Option<&'a str>,
}

/// A session's end, as its `session.end` event tells it.
#[derive(Debug, Clone, Default)]
pub struct Ended<'a> {
    pub id: &'a str,
    pub workspace_id: &'a str,
    pub device_id: &'a str,
    pub at: Option<DateTime<Utc>>,
    pub reason: &'a str,
    pub duration_ms: Option<u64>,
}

/// A transcript the API stored: its key, its size and hash when known, and its files when it
/// is more than one.
#[derive(Debug, Clone, Copy)]
pub struct Transcript<'a> {
    pub key: &'a str,
    pub size: Option<u64>,
    pub sha256: Option<&'a str>,
    pub parts: Option<&'a Parts>,
}

/// Where a session's transcript is kept, and what files it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTranscript {
    /// Claude Code's project folder, as capture names workspaces.
    pub workspace_id: String,
    pub key: Option<String>,
    /// None: one file, the main transcript.
    pub parts: Option<Parts>,
}

/// The states a session may end from.
fn may_end() -> Vec<&'static str> {
    Lifecycle::ALL
        .iter()
        .filter(|l| l.can_move_to(Lifecycle::Ended))
        .map(|l| l.as_str())
        .collect()
}

impl Store {
    /// Creates the session as `detected` with what its start tells; an existing session keeps
    /// its state and gains the fields it lacked.
    /// Its workspace and device must be recorded (the event processor records every event's).
    pub async fn record_start(&self, start: &Started<'_>) -> Result<(), StoreError> {
        self.record_starts(std::slice::from_ref(start)).await
    }

    /// [`record_start`](Self::record_start) of many sessions in one statement; each session at
    /// most once.
    pub async fn record_starts(&self, starts: &[Started<'_>]) -> Result<(), StoreError> {
        let column = |f: for<'s> fn(&'s Started<'s>) -> Option<&'s str>| {
            starts.iter().map(f).collect::<Vec<_>>()
        };
        sqlx::query(concat!(
            "INSERT INTO sessions (id, workspace_id, device_id, lifecycle, started_at, source, \
                 model, git_branch, cwd, cc_version) \
             SELECT u.id, u.workspace_id, u.device_id, 'detected', u.at, u.source, u.model, \
                    u.git_branch, u.cwd, u.cc_version \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], \
                         $6::text[], $7::text[], $8::text[], $9::text[]) \
                  AS u(id, workspace_id, device_id, at, source, model, git_branch, cwd, \
                       cc_version) \
             WHERE NOT ",
            tombstoned!("u.id"),
            " ON CONFLICT (id) DO UPDATE SET \
                 started_at = COALESCE(sessions.started_at, EXCLUDED.started_at), \
                 source = COALESCE(sessions.source, EXCLUDED.source), \
                 model = COALESCE(sessions.model, EXCLUDED.model), \
                 git_branch = COALESCE(sessions.git_branch, EXCLUDED.git_branch), \
                 cwd = COALESCE(sessions.cwd, EXCLUDED.cwd), \
                 cc_version = COALESCE(sessions.cc_version, EXCLUDED.cc_version), \
                 updated_at = now()"
        ))
        .bind(column(|s| Some(s.id)))
        .bind(column(|s| Some(s.workspace_id)))
        .bind(column(|s| Some(s.device_id)))
        .bind(starts.iter().map(|s| s.at).collect::<Vec<_>>())
        .bind(column(|s| s.source))
        .bind(column(|s| s.model))
        .bind(column(|s| s.git_branch))
        .bind(column(|s| s.cwd))
        .bind(column(|s| s.cc_version))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends the sessions (creating those that are new `ended`), in one transaction (their rows
    /// locked in id order, so that batches never wait on each other in a circle); each session
    /// at most once. Returns the sessions these ends made ready to run: ended now, with their
    /// transcript already stored. Their workspaces and devices must be recorded, as for
    /// [`record_start`](Self::record_start).
    pub async fn record_ends(&self, ends: &[Ended<'_>]) -> Result<Vec<String>, StoreError> {
        let ids: Vec<&str> = ends.iter().map(|e| e.id).collect();
        let mut tx = self.pool.begin().await?;
        let before: std::collections::HashMap<String, String> = sqlx::query_as(
            "SELECT id, lifecycle FROM sessions WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let ended: Vec<(String, String, Option<String>)> = sqlx::query_as(concat!(
            "INSERT INTO sessions (id, workspace_id, device_id, lifecycle, ended_at, \
                 end_reason, duration_ms) \
             SELECT u.id, u.workspace_id, u.device_id, 'ended', u.at, u.reason, u.duration_ms \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], \
                         $6::bigint[]) AS u(id, workspace_id, device_id, at, reason, duration_ms) \
             WHERE NOT ",
            tombstoned!("u.id"),
            " ON CONFLICT (id) DO UPDATE SET \
                 lifecycle = CASE WHEN sessions.lifecycle = ANY($7) \
                                  THEN 'ended' ELSE sessions.lifecycle END, \
                 ended_at = COALESCE(sessions.ended_at, EXCLUDED.ended_at), \
                 end_reason = COALESCE(sessions.end_reason, EXCLUDED.end_reason), \
                 duration_ms = COALESCE(sessions.duration_ms, EXCLUDED.duration_ms), \
                 updated_at = now() \
             RETURNING id, lifecycle, transcript_key"
        ))
        .bind(&ids)
        .bind(ends.iter().map(|e| e.workspace_id).collect::<Vec<_>>())
        .bind(ends.iter().map(|e| e.device_id).collect::<Vec<_>>())
        .bind(ends.iter().map(|e| e.at).collect::<Vec<_>>())
        .bind(ends.iter().map(|e| e.reason).collect::<Vec<_>>())
        .bind(
            ends.iter()
                .map(|e| e.duration_ms.map(|d| d as i64))
                .collect::<Vec<_>>(),
        )
        .bind(may_end())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        // A session deleted for good returns no row: the end of a session no one holds.
        Ok(ended
            .into_iter()
            .filter(|(id, lifecycle, key)| {
                let ended_now = before
                    .get(id)
                    .is_none_or(|b| may_end().contains(&b.as_str()));
                ended_now && lifecycle == Lifecycle::Ended.as_str() && key.is_some()
            })
            .map(|(id, ..)| id)
            .collect())
    }

    /// Records a session known only from its file (`sessionflow process`): `detected`, source
    /// `offline`, no transcript key (the pipeline leaves it alone). An existing session is
    /// left as it is.
    pub async fn record_offline(
        &self,
        id: &str,
        workspace_id: &str,
        sha256: &str,
    ) -> Result<(), StoreError> {
        self.ensure_workspace(workspace_id).await?;
        sqlx::query(
            "INSERT INTO sessions (id, workspace_id, lifecycle, source, transcript_sha256) \
             VALUES ($1, $2, 'detected', 'offline', $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(workspace_id)
        .bind(sha256)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a stored transcript (creating the session `detected` if it is new). True when it
    /// made the session ready to run: it had ended, had no transcript before, and waits.
    pub async fn record_transcript(
        &self,
        workspace_id: &str,
        session_id: &str,
        transcript: Transcript<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ready =
            Self::record_transcript_in(&mut tx, workspace_id, session_id, transcript).await?;
        tx.commit().await?;
        Ok(ready)
    }

    /// [`record_transcript`](Self::record_transcript) inside the caller's transaction `tx`
    /// (which records the upload's event with it: one commit for both).
    pub async fn record_transcript_in(
        tx: &mut sqlx::PgConnection,
        workspace_id: &str,
        session_id: &str,
        transcript: Transcript<'_>,
    ) -> Result<bool, StoreError> {
        let before: Option<Option<String>> =
            sqlx::query_scalar("SELECT transcript_key FROM sessions WHERE id = $1 FOR UPDATE")
                .bind(session_id)
                .fetch_optional(&mut *tx)
                .await?;
        // The workspace too (a new session's), checked at the statement's end.
        let recorded: Option<(String, String)> = sqlx::query_as(concat!(
            "WITH workspace AS (INSERT INTO workspaces (id) VALUES ($2) ON CONFLICT (id) DO NOTHING) \
             INSERT INTO sessions (id, workspace_id, transcript_key, transcript_size, \
                 transcript_sha256, transcript_parts) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE NOT ",
            tombstoned!("$1"),
            " ON CONFLICT (id) DO UPDATE SET transcript_key = EXCLUDED.transcript_key, \
                 transcript_size = EXCLUDED.transcript_size, \
                 transcript_sha256 = EXCLUDED.transcript_sha256, \
                 transcript_parts = EXCLUDED.transcript_parts, updated_at = now() \
             RETURNING lifecycle, parse_status"
        ))
        .bind(session_id)
        .bind(workspace_id)
        .bind(transcript.key)
        .bind(transcript.size.map(|s| s as i64))
        .bind(transcript.sha256)
        .bind(transcript.parts.map(sqlx::types::Json))
        .fetch_optional(&mut *tx)
        .await?;
        // Deleted for good: the API removes what it stored.
        let Some((lifecycle, parse_status)) = recorded else {
            return Ok(false);
        };
        let first_transcript = matches!(before, None | Some(None));
        Ok(first_transcript && lifecycle == Lifecycle::Ended.as_str() && parse_status == "pending")
    }

    /// Records an upload about to be written aside under `key`, so that a crash before it is
    /// renamed or discarded leaves a trace for [`stale_uploads`](Self::stale_uploads).
    pub async fn stage_upload(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO staged_uploads (key) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets a staged upload that was renamed or removed.
    pub async fn unstage_upload(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM staged_uploads WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets the staged upload `key`, renamed into place as session `id`'s transcript, and
    /// tells in the same round trip whether the session was deleted for good meanwhile (its
    /// deletion may have removed its blobs before the rename).
    pub async fn unstage_upload_of(&self, key: &str, id: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(concat!(
            "WITH unstaged AS (DELETE FROM staged_uploads WHERE key = $1) SELECT ",
            tombstoned!("$2")
        ))
        .bind(key)
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Staged uploads older than `older_than` (their writer died), at most `limit`.
    pub async fn stale_uploads(
        &self,
        older_than: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT key FROM staged_uploads \
             WHERE started_at < now() - $1 * interval '1 millisecond' ORDER BY started_at LIMIT $2",
        )
        .bind(older_than.as_millis() as f64)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Where session `id`'s transcript is kept: its workspace, blob key (none before its
    /// upload) and files (none: one file). None when there is no such session.
    pub async fn stored_transcript(
        &self,
        id: &str,
    ) -> Result<Option<StoredTranscript>, StoreError> {
        let row: Option<(String, Option<String>, Option<sqlx::types::Json<Parts>>)> =
            sqlx::query_as(
                "SELECT workspace_id, transcript_key, transcript_parts FROM sessions WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(workspace_id, key, parts)| StoredTranscript {
            workspace_id,
            key,
            parts: parts.map(|p| p.0),
        }))
    }

    /// Every session with a stored transcript and when it started (else when it was first
    /// recorded), oldest first.
    pub async fn sessions_with_transcripts(
        &self,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, coalesce(started_at, created_at) FROM sessions \
             WHERE transcript_key IS NOT NULL ORDER BY 2, 1",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
