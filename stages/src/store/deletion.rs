//! Deleting sessions for good, and what stays of them: a tombstone in the event log.
//!
//! One transaction deletes the session's row — with it, by the schema's triggers and cascades,
//! its messages, content blocks, processor state, usage, tool and search rows — writes a
//! `session.deleted` event (the tombstone) and queues the session's blobs in `blob_deletions`,
//! which the caller removes from the blob store after the commit (a sweep retries what it could
//! not). A tombstoned session is not brought back by a late event or upload: the capture writes
//! ([`record_start`](Store::record_start) and the others) leave it alone, and the upload API
//! refuses it unless told to force it back ([`revive`](Store::revive)).

use chrono::{DateTime, Utc};
use sessionflow_protocol::events::SessionDeleted;
use sessionflow_protocol::ids::Id;
use sessionflow_protocol::sessions::DeletedSession;

use super::{Store, StoreError};
use crate::blob::parsed_key;

/// The event type of a tombstone.
pub const DELETED_EVENT: &str = "session.deleted";

/// True when the session whose id is the SQL expression `$id` has no row and a tombstone: SQL
/// for `concat!` into the capture writes.
macro_rules! tombstoned {
    ($id:literal) => {
        concat!(
            "(EXISTS (SELECT 1 FROM events WHERE session_id = ",
            $id,
            " AND type = 'session.deleted') AND NOT EXISTS (SELECT 1 FROM sessions WHERE id = ",
            $id,
            "))"
        )
    };
}
pub(super) use tombstoned;

/// A session just deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct Deleted {
    pub id: String,
    pub workspace_id: String,
    pub deleted_at: DateTime<Utc>,
    /// Its messages, as its row counted them.
    pub messages: i64,
    /// Its blobs, queued for removal.
    pub blobs: Vec<String>,
}

impl From<Deleted> for DeletedSession {
    fn from(deleted: Deleted) -> Self {
        DeletedSession {
            session_id: deleted.id,
            workspace_id: deleted.workspace_id,
            deleted_at: deleted.deleted_at,
            messages: deleted.messages,
        }
    }
}

/// What stays of a deleted session.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Tombstone {
    pub workspace_id: Option<String>,
    pub deleted_at: DateTime<Utc>,
    /// `request` (the API or the CLI) or `retention`.
    pub reason: String,
    /// Who asked: an API key's id, `bootstrap`, `cli` or `retention`.
    pub by: String,
}

impl Store {
    /// Deletes session `id` for good, if it is in `workspaces` (none: any): its row and every
    /// row that hangs on it, with a tombstone, and its blobs queued for removal (see the module
    /// doc). None when there is no such session.
    pub async fn delete_session(
        &self,
        id: &str,
        workspaces: Option<&[String]>,
        reason: &str,
        by: &str,
    ) -> Result<Option<Deleted>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, Option<String>, i32)> = sqlx::query_as(
            "SELECT workspace_id, transcript_key, total_messages FROM sessions \
             WHERE id = $1 AND ($2::text[] IS NULL OR workspace_id = ANY($2)) FOR UPDATE",
        )
        .bind(id)
        .bind(workspaces)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((workspace_id, transcript_key, messages)) = row else {
            return Ok(None);
        };
        let mut blobs: Vec<String> = transcript_key.into_iter().collect();
        // A session recorded before the id rule has no backup a key could name.
        if let (Ok(workspace), Ok(session)) = (
            Id::parse("workspace_id", &workspace_id),
            Id::parse("session_id", id),
        ) {
            blobs.push(parsed_key(&workspace, &session));
        }
        let deleted_at: DateTime<Utc> = sqlx::query_scalar(
            "WITH gone AS (DELETE FROM sessions WHERE id = $1 RETURNING id, workspace_id), \
             queued AS (INSERT INTO blob_deletions (key) SELECT unnest($2::text[]) \
                 ON CONFLICT (key) DO NOTHING) \
             INSERT INTO events (id, type, \"timestamp\", workspace_id, session_id, data, \
                 handled_at) \
             SELECT $3, 'session.deleted', now(), workspace_id, id, $4, now() \
             FROM gone RETURNING \"timestamp\"",
        )
        .bind(id)
        .bind(&blobs)
        .bind(ulid::Ulid::generate().to_string())
        .bind(sqlx::types::Json(SessionDeleted {
            reason: reason.to_owned(),
            by: by.to_owned(),
            messages: i64::from(messages),
        }))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Deleted {
            id: id.to_owned(),
            workspace_id,
            deleted_at,
            messages: i64::from(messages),
            blobs,
        }))
    }

    /// The tombstone of session `id` if it was deleted and has not come back since.
    pub async fn tombstone(&self, id: &str) -> Result<Option<Tombstone>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT workspace_id, \"timestamp\" AS deleted_at, \
                 coalesce(data->>'reason', '') AS reason, coalesce(data->>'by', '') AS by \
             FROM events WHERE session_id = $1 AND type = 'session.deleted' \
                 AND NOT EXISTS (SELECT 1 FROM sessions WHERE id = $1) \
             ORDER BY \"timestamp\" DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Which of `ids` are tombstoned (deleted, and not back since), of sessions that were in
    /// `workspaces` (none: any).
    pub async fn tombstoned(
        &self,
        ids: &[String],
        workspaces: Option<&[String]>,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT session_id FROM events e \
             WHERE session_id = ANY($1) AND type = 'session.deleted' \
                 AND ($2::text[] IS NULL OR workspace_id = ANY($2)) \
                 AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = e.session_id) \
             ORDER BY 1",
        )
        .bind(ids)
        .bind(workspaces)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Brings a deleted session back as a new `detected` session of `workspace_id` (an upload
    /// forced past its tombstone); the tombstone stays in the event log. False if it exists.
    pub async fn revive(&self, id: &str, workspace_id: &str) -> Result<bool, StoreError> {
        self.ensure_workspace(workspace_id).await?;
        let done = sqlx::query(
            "INSERT INTO sessions (id, workspace_id) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(workspace_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Blobs of deleted sessions still to remove, oldest first, at most `limit`.
    pub async fn blobs_to_delete(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT key FROM blob_deletions ORDER BY since LIMIT $1")
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Forgets blobs the blob store has removed.
    pub async fn blobs_deleted(&self, keys: &[String]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM blob_deletions WHERE key = ANY($1)")
            .bind(keys)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sessions last active over `older_than` ago (their end, else their start, else when they
    /// were recorded), oldest first, at most `limit`: what retention deletes.
    pub async fn expired_sessions(
        &self,
        older_than: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM sessions \
             WHERE coalesce(ended_at, started_at, created_at) \
                 < now() - $1 * interval '1 millisecond' \
             ORDER BY coalesce(ended_at, started_at, created_at), id LIMIT $2",
        )
        .bind(older_than.as_millis() as f64)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
