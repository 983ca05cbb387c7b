//! The event processor: records an event exactly once and runs its handler once.
//!
//! It upserts the event's workspace and device, inserts the event with `ON CONFLICT (id) DO
//! NOTHING`, takes the event's lease (`leased_by`, `leased_until`), runs the handler registered
//! for its type and marks the event handled. An event seen again is a duplicate and its handler
//! does not run — unless its handler failed the first time: then the event stays recorded with
//! the error, the caller is told, and a redelivery runs the handler again. An event whose lease
//! another live worker holds is left to it: the stream and the sweep of unhandled events may
//! offer the same event to two workers, and only one runs its handler; a dead worker's lease
//! lapses with its heartbeat.
//!
//! The API of `serve` only records what it accepts ([`record_accepted`]), before the stream
//! hears of it: an event answered 202 is kept even if Redis loses it, and any worker's
//! [`EventProcessor::handle_unhandled`] sweep handles what waited too long.

use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Duration;

use sessionflow_stages::store::SILENT_AFTER;
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
    /// Another live worker holds the event's lease and is handling it; nothing ran.
    Elsewhere,
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

/// How long a worker may take to handle an event before another may take it over, even while
/// its heartbeat says it lives.
pub const LEASE: Duration = Duration::from_secs(120);

pub struct EventProcessor {
    pool: PgPool,
    handlers: HandlerRegistry,
    stats: ProcessorStats,
    /// The worker handling events here (its heartbeat's id).
    worker: String,
}

impl EventProcessor {
    pub fn new(pool: PgPool, handlers: HandlerRegistry, worker: &str) -> Self {
        EventProcessor {
            pool,
            handlers,
            stats: ProcessorStats::default(),
            worker: worker.to_owned(),
        }
    }

    pub fn stats(&self) -> &ProcessorStats {
        &self.stats
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn process(&self, event: &Event) -> Result<Processed, ProcessError> {
        let outcome = self.process_inner(event).await;
        let counter = match &outcome {
            Ok(Processed::Duplicate | Processed::Elsewhere) => &self.stats.duplicates,
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
            "INSERT INTO events (id, type, \"timestamp\", device_id, workspace_id, session_id, \
                 data, leased_by, leased_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + $9 * interval '1 millisecond') \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&event.id)
        .bind(&event.kind)
        .bind(event.timestamp)
        .bind(&event.device_id)
        .bind(&event.workspace_id)
        .bind(event.session_id.as_deref())
        .bind(sqlx::types::Json(&event.data))
        .bind(&self.worker)
        .bind(LEASE.as_millis() as f64)
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected()
            == 1;
        if !inserted {
            let leased = sqlx::query(
                "UPDATE events SET leased_by = $2, \
                     leased_until = now() + $3 * interval '1 millisecond' \
                 WHERE id = $1 AND handled_at IS NULL \
                   AND (leased_by IS NULL OR leased_by = $2 OR leased_until < now() \
                        OR leased_by NOT IN (SELECT id FROM workers \
                                             WHERE last_seen > now() - $4 * interval '1 millisecond'))",
            )
            .bind(&event.id)
            .bind(&self.worker)
            .bind(LEASE.as_millis() as f64)
            .bind(SILENT_AFTER.as_millis() as f64)
            .execute(&self.pool)
            .await
            .map_err(db)?
            .rows_affected()
                == 1;
            if !leased {
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
                tracing::debug!(event = %event.id, "another worker is handling the event");
                return Ok(Processed::Elsewhere);
            }
        }
        let outcome = match self.handlers.get(&event.kind) {
            None => Processed::Stored,
            Some(handler) => match handler.handle(event, &payload).await {
                Ok(()) => Processed::Handled,
                Err(e) => {
                    tracing::error!(event = %event.id, kind = %event.kind, "handler failed: {e}");
                    sqlx::query(
                        "UPDATE events SET handler_error = $2, leased_by = NULL, \
                             leased_until = NULL WHERE id = $1",
                    )
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
        sqlx::query(
            // Marked once: a worker that lost its lease while handling (it looked silent) does
            // not mark again what the other already marked.
            "UPDATE events SET handled_at = now(), handler_error = NULL, leased_by = NULL, \
                 leased_until = NULL WHERE id = $1 AND handled_at IS NULL",
        )
        .bind(&event.id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(outcome)
    }
}

impl EventProcessor {
    /// Handles, oldest first, up to `limit` events recorded more than `older_than` ago and never
    /// handled (their stream entry was lost, or their worker died): what the stream should have
    /// brought. Returns how many were handled here.
    pub async fn handle_unhandled(
        &self,
        older_than: Duration,
        limit: i64,
    ) -> Result<usize, ProcessError> {
        let db = |source| ProcessError::Database {
            id: "(unhandled events)".to_owned(),
            source,
        };
        type Row = (
            String,
            String,
            chrono::DateTime<chrono::Utc>,
            Option<String>,
            Option<String>,
            Option<String>,
            sqlx::types::Json<serde_json::Value>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, type, \"timestamp\", device_id, workspace_id, session_id, data \
             FROM events \
             WHERE handled_at IS NULL AND handler_error IS NULL \
               AND ingested_at < now() - $1 * interval '1 millisecond' \
               AND (leased_by IS NULL OR leased_until < now() \
                    OR leased_by NOT IN (SELECT id FROM workers \
                                         WHERE last_seen > now() - $3 * interval '1 millisecond')) \
             ORDER BY ingested_at, id LIMIT $2",
        )
        .bind(older_than.as_millis() as f64)
        .bind(limit)
        .bind(SILENT_AFTER.as_millis() as f64)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut handled = 0;
        for (id, kind, timestamp, device_id, workspace_id, session_id, data) in rows {
            let event = Event {
                id,
                kind,
                timestamp,
                device_id: device_id.unwrap_or_default(),
                workspace_id: workspace_id.unwrap_or_default(),
                session_id,
                data: data.0,
                blob_refs: Vec::new(),
            };
            match self.process(&event).await {
                Ok(Processed::Handled | Processed::Stored) => handled += 1,
                Ok(Processed::Duplicate | Processed::Elsewhere) => {}
                Err(e @ ProcessError::Database { .. }) => return Err(e),
                // Recorded with its error, for the operator; not taken again by this sweep.
                Err(e) => tracing::warn!("unhandled event sweep: {e}"),
            }
        }
        if handled > 0 {
            tracing::info!(handled, "handled events the stream did not bring");
        }
        Ok(handled)
    }
}

/// Records events the API accepted, not yet handled, in one transaction (their workspaces and
/// devices first, then every event in one statement). Returns the ids that were new; the others
/// were already recorded (duplicates).
pub async fn record_accepted(pool: &PgPool, events: &[Event]) -> Result<Vec<String>, sqlx::Error> {
    let mut workspaces: Vec<&str> = events.iter().map(|e| e.workspace_id.as_str()).collect();
    workspaces.sort_unstable();
    workspaces.dedup();
    let mut devices: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.device_id.as_str(), e.workspace_id.as_str()))
        .collect();
    devices.sort_unstable();
    devices.dedup_by_key(|d| d.0);
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO workspaces (id) SELECT * FROM UNNEST($1::text[]) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&workspaces)
    .execute(&mut *tx)
    .await?;
    let (device_ids, device_workspaces): (Vec<&str>, Vec<&str>) = devices.into_iter().unzip();
    sqlx::query(
        "INSERT INTO devices (id, workspace_id) SELECT * FROM UNNEST($1::text[], $2::text[]) \
         ON CONFLICT (id) DO UPDATE SET last_seen_at = now()",
    )
    .bind(&device_ids)
    .bind(&device_workspaces)
    .execute(&mut *tx)
    .await?;
    let data: Vec<sqlx::types::Json<&serde_json::Value>> =
        events.iter().map(|e| sqlx::types::Json(&e.data)).collect();
    let new: Vec<String> = sqlx::query_scalar(
        "INSERT INTO events (id, type, \"timestamp\", device_id, workspace_id, session_id, data) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], \
                              $6::text[], $7::jsonb[]) \
         ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.timestamp).collect::<Vec<_>>())
    .bind(
        events
            .iter()
            .map(|e| e.device_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        events
            .iter()
            .map(|e| e.workspace_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        events
            .iter()
            .map(|e| e.session_id.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(&data)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(new)
}
