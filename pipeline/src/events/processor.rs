//! The event processor: records an event exactly once and runs its handler.
//!
//! It upserts the event's workspace and device, inserts the event with `ON CONFLICT (id) DO
//! NOTHING`, then runs the handler registered for its type and marks the event handled. An event
//! seen again is a duplicate and its handler does not run — unless its handler failed the first
//! time: then the event stays recorded with the error, the caller is told, and a redelivery runs
//! the handler again.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::PgPool;

use super::envelope::{Event, InvalidEvent};
use super::handlers::HandlerRegistry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// Recorded and handled.
    Handled,
    /// Recorded; no handler for its type.
    Stored,
    /// Already recorded and handled before; nothing ran.
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Invalid(#[from] InvalidEvent),
    #[error("event {id}: database error: {source}")]
    Database { id: String, source: sqlx::Error },
    #[error("event {id} ({kind}): handler failed: {error}")]
    Handler {
        id: String,
        kind: String,
        error: String,
    },
}

/// Counts since start, for the consumer's log line and the metrics.
#[derive(Debug, Default)]
pub struct ProcessorStats {
    pub processed: AtomicU64,
    pub duplicates: AtomicU64,
    pub errors: AtomicU64,
}

pub struct EventProcessor {
    pool: PgPool,
    handlers: HandlerRegistry,
    stats: ProcessorStats,
}

impl EventProcessor {
    pub fn new(pool: PgPool, handlers: HandlerRegistry) -> Self {
        EventProcessor {
            pool,
            handlers,
            stats: ProcessorStats::default(),
        }
    }

    pub fn stats(&self) -> &ProcessorStats {
        &self.stats
    }

    pub async fn process(&self, event: &Event) -> Result<Processed, ProcessError> {
        let outcome = self.process_inner(event).await;
        let counter = match &outcome {
            Ok(Processed::Duplicate) => &self.stats.duplicates,
            Ok(_) => &self.stats.processed,
            Err(_) => &self.stats.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        outcome
    }

    async fn process_inner(&self, event: &Event) -> Result<Processed, ProcessError> {
        let payload = event.validate()?;
        let db = |source| ProcessError::Database {
            id: event.id.clone(),
            source,
        };
        sqlx::query("INSERT INTO workspaces (id) VALUES ($1) ON CONFLICT (id) DO NOTHING")
            .bind(&event.workspace_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        sqlx::query(
            "INSERT INTO devices (id, workspace_id) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET last_seen_at = now()",
        )
        .bind(&event.device_id)
        .bind(&event.workspace_id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        let inserted = sqlx::query(
            "INSERT INTO events (id, type, \"timestamp\", device_id, workspace_id, session_id, data) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&event.id)
        .bind(&event.kind)
        .bind(event.timestamp)
        .bind(&event.device_id)
        .bind(&event.workspace_id)
        .bind(event.session_id.as_deref())
        .bind(sqlx::types::Json(&event.data))
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected()
            == 1;
        if !inserted {
            let handled: Option<Option<chrono::DateTime<chrono::Utc>>> =
                sqlx::query_scalar("SELECT handled_at FROM events WHERE id = $1")
                    .bind(&event.id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)?;
            if matches!(handled, Some(Some(_))) {
                tracing::debug!(event = %event.id, "duplicate event ignored");
                return Ok(Processed::Duplicate);
            }
        }
        let outcome = match self.handlers.get(&event.kind) {
            None => Processed::Stored,
            Some(handler) => match handler.handle(event, &payload).await {
                Ok(()) => Processed::Handled,
                Err(e) => {
                    tracing::error!(event = %event.id, kind = %event.kind, "handler failed: {e}");
                    sqlx::query("UPDATE events SET handler_error = $2 WHERE id = $1")
                        .bind(&event.id)
                        .bind(e.to_string())
                        .execute(&self.pool)
                        .await
                        .map_err(db)?;
                    return Err(ProcessError::Handler {
                        id: event.id.clone(),
                        kind: event.kind.clone(),
                        error: e.to_string(),
                    });
                }
            },
        };
        sqlx::query("UPDATE events SET handled_at = now(), handler_error = NULL WHERE id = $1")
            .bind(&event.id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(outcome)
    }
}
