//! Who holds a session's processing, and taking it back from those who went silent.
//!
//! A worker that queues a session marks it `enqueued_by` itself (with `enqueued_at`); a run that
//! claims it for parsing sets `claimed_by`. A worker is alive while its heartbeat (`workers`) is
//! younger than [`SILENT_AFTER`]. The recovery sweep of any live worker takes over what a silent
//! worker held — within a sweep of its silence — and, whoever holds it, what was queued long ago
//! without a run or has been `parsing` without progress for a long time (a hung run). A claim
//! lasts until the run ends — through persist and summarize — so a worker that dies after
//! persisting leaves a `parsed` session whose summary the summary retry sweep takes over at
//! once. A worker that stops cleanly hands back what it had only queued.

use std::time::Duration;

use super::{Claim, Lifecycle, SessionRow, Store, StoreError};

/// A worker whose heartbeat is older than this is presumed gone.
pub const SILENT_AFTER: Duration = Duration::from_secs(30);

/// A session the recovery sweep took, and from whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub id: String,
    /// The silent worker that held it (its claim or its queue), if one did.
    pub from: Option<String>,
}

impl Store {
    /// Claims an `ended` session with a transcript for one pipeline run of `worker`
    /// (`parse_status → parsing`, `claimed_by = worker`), or says why not without changing
    /// anything.
    pub async fn claim_for_parse(&self, id: &str, worker: &str) -> Result<Claim, StoreError> {
        // Only the run that holds a session's claim writes its messages and blocks (persist),
        // so whatever a run that lost its claim may have left goes as the claim is taken.
        let claimed = sqlx::query(concat!(
            "WITH claimed AS ( \
                 UPDATE sessions SET parse_status = 'parsing', parse_error = NULL, \
                     claimed_by = $2, claim = gen_random_uuid()::text, updated_at = now() \
                 WHERE id = $1 AND lifecycle = 'ended' AND transcript_key IS NOT NULL \
                   AND parse_status <> 'parsing' \
                 RETURNING ",
            session_columns!(),
            "), \
             blocks AS (DELETE FROM content_blocks \
                 WHERE session_id = $1 AND EXISTS (SELECT 1 FROM claimed)), \
             messages AS (DELETE FROM transcript_messages \
                 WHERE session_id = $1 AND EXISTS (SELECT 1 FROM claimed)) \
             SELECT * FROM claimed"
        ))
        .bind(id)
        .bind(worker)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = claimed {
            return Ok(Claim::Claimed(Box::new(SessionRow::from_row(&row)?)));
        }
        Ok(match self.session(id).await? {
            None => Claim::NotFound,
            Some(s) if s.transcript_key.is_none() => Claim::NoTranscript,
            Some(s) if s.lifecycle != Lifecycle::Ended => Claim::NotEnded(s.lifecycle),
            Some(_) => Claim::AlreadyParsing,
        })
    }

    /// Moves a session that has not yet been summarized to `failed`, with the reason and the
    /// stage its run ended in (none for a failure outside a run). False if it was already past
    /// the point of failing (summarized, archived, failed) or unknown.
    pub async fn fail_session(
        &self,
        id: &str,
        error: &str,
        stage: Option<&str>,
    ) -> Result<bool, StoreError> {
        let from: Vec<&str> = Lifecycle::NON_TERMINAL.iter().map(|l| l.as_str()).collect();
        let done = sqlx::query(
            "UPDATE sessions SET lifecycle = 'failed', \
                 parse_status = CASE WHEN parse_status = 'completed' THEN parse_status ELSE 'failed' END, \
                 parse_error = $2, failed_stage = $4, claimed_by = NULL, claim = NULL, \
                 enqueued_by = NULL, \
                 updated_at = now() \
             WHERE id = $1 AND lifecycle = ANY($3)",
        )
        .bind(id)
        .bind(error)
        .bind(&from)
        .bind(stage)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that `worker` queued the sessions `ids` (those still waiting to be parsed), so
    /// that other workers' sweeps leave them alone while `worker` lives.
    pub async fn mark_queued(&self, ids: &[&str], worker: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET enqueued_at = now(), enqueued_by = $2 \
             WHERE id = ANY($1) AND parse_status = 'pending'",
        )
        .bind(ids)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Hands back the sessions `worker` queued (only those of `only`, if given) that no run of
    /// it has started: it is stopping, or its queue had no room. Any sweep may take them at once.
    pub async fn release_queued(
        &self,
        worker: &str,
        only: Option<&[String]>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET enqueued_at = NULL, enqueued_by = NULL \
             WHERE enqueued_by = $1 AND parse_status = 'pending' \
               AND ($2::text[] IS NULL OR id = ANY($2))",
        )
        .bind(worker)
        .bind(only)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Sessions the recovery sweep of `worker` should run, at most `limit`, taken for it
    /// (queued by `worker`, back to `pending`): `ended` with a transcript and
    /// - waiting, and never queued, or queued more than `requeue_after` ago, or queued by a
    ///   worker that went silent;
    /// - or `parsing` by a worker that went silent, or for more than `stuck` (a hung run).
    ///
    /// Taken with `FOR UPDATE SKIP LOCKED`, so that the sweeps of several workers split them.
    pub async fn recovery_candidates(
        &self,
        requeue_after: Duration,
        stuck: Duration,
        limit: i64,
        worker: &str,
    ) -> Result<Vec<Recovered>, StoreError> {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "WITH live AS ( \
                 SELECT id FROM workers WHERE last_seen > now() - $4 * interval '1 millisecond'), \
             picked AS ( \
                 SELECT id, CASE WHEN parse_status = 'parsing' THEN claimed_by \
                                 ELSE enqueued_by END AS holder \
                 FROM sessions \
                 WHERE lifecycle = 'ended' AND transcript_key IS NOT NULL \
                   AND ((parse_status = 'pending' \
                         AND (enqueued_at IS NULL \
                              OR enqueued_at <= now() - $1 * interval '1 millisecond' \
                              OR enqueued_by NOT IN (SELECT id FROM live))) \
                     OR (parse_status = 'parsing' \
                         AND (updated_at <= now() - $2 * interval '1 millisecond' \
                              OR claimed_by IS NULL \
                              OR claimed_by NOT IN (SELECT id FROM live)))) \
                 ORDER BY updated_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
             UPDATE sessions s SET enqueued_at = now(), enqueued_by = $5, claimed_by = NULL, \
                 claim = NULL, parse_status = 'pending', updated_at = now() \
             FROM picked WHERE s.id = picked.id \
             RETURNING s.id, \
                 CASE WHEN picked.holder IS NULL OR picked.holder = $5 \
                        OR picked.holder IN (SELECT id FROM live) THEN NULL \
                      ELSE picked.holder END",
        )
        .bind(requeue_after.as_millis() as f64)
        .bind(stuck.as_millis() as f64)
        .bind(limit)
        .bind(SILENT_AFTER.as_millis() as f64)
        .bind(worker)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, from)| Recovered { id, from })
            .collect())
    }

    /// Sessions `parsed` without a summary that `worker`'s summary retry sweep should summarize,
    /// at most `limit`, as `(id, transcript_key, claim)`: untouched for `older_than`, or whose
    /// run's worker went silent before summarizing them. Claimed for `worker` and touched, with
    /// `FOR UPDATE SKIP LOCKED`, so that no other sweep takes them while it works.
    pub async fn summary_candidates(
        &self,
        older_than: Duration,
        limit: i64,
        worker: &str,
    ) -> Result<Vec<(String, Option<String>, String)>, StoreError> {
        let rows = sqlx::query_as(
            "WITH live AS ( \
                 SELECT id FROM workers WHERE last_seen > now() - $3 * interval '1 millisecond'), \
             picked AS ( \
                 SELECT id FROM sessions \
                 WHERE lifecycle = 'parsed' AND summary IS NULL \
                   AND (updated_at <= now() - $1 * interval '1 millisecond' \
                        OR (claimed_by IS NOT NULL AND claimed_by <> $4 \
                            AND claimed_by NOT IN (SELECT id FROM live))) \
                 ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
             UPDATE sessions s SET claimed_by = $4, claim = gen_random_uuid()::text, \
                 updated_at = now() \
             FROM picked WHERE s.id = picked.id \
             RETURNING s.id, s.transcript_key, s.claim",
        )
        .bind(older_than.as_millis() as f64)
        .bind(limit)
        .bind(SILENT_AFTER.as_millis() as f64)
        .bind(worker)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Records a summary and moves `parsed → summarized`; the session's run is over, so its
    /// claim is too. False if the session was not `parsed`.
    pub async fn set_summary(&self, id: &str, summary: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET summary = $2, lifecycle = 'summarized', claimed_by = NULL, \
                 claim = NULL, updated_at = now() \
             WHERE id = $1 AND lifecycle = 'parsed'",
        )
        .bind(id)
        .bind(summary)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Lets go of `claim` on a session whose run ended without finishing it (its summary failed
    /// and waits for the retry sweep, say).
    pub async fn release_claim(&self, id: &str, claim: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET claimed_by = NULL, claim = NULL WHERE id = $1 AND claim = $2",
        )
        .bind(id)
        .bind(claim)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
