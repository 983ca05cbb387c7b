//! The event processor: records an event exactly once and runs its handler once, a batch of
//! events at a time ([`EventProcessor::process_batch`]).
//!
//! It takes each event's lease (`leased_by`, `leased_until`) — inserting the new ones with
//! `ON CONFLICT (id) DO NOTHING`, their workspaces and devices upserted by the same statement —
//! runs the handler registered for each type and marks the events handled. An event seen again
//! is a duplicate and its handler does not run — unless its handler failed the first time: then
//! the event stays recorded with the error, the caller is told, and a redelivery runs the
//! handler again. An event whose lease another live worker holds is left to it: the stream and
//! the sweep of unhandled events may offer the same event to two workers, and only one runs its
//! handler; a dead worker's lease lapses with its heartbeat. An event the server raises itself
//! is recorded handled by the transaction its handler writes in, when the handler can
//! ([`EventProcessor::process_own`]).
//!
//! The API of `serve` only records what it accepts ([`record_accepted`]), before the stream
//! hears of it: an event answered 202 is kept even if Redis loses it, and any worker's
//! [`EventProcessor::handle_unhandled`] sweep handles what waited too long.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Duration;

use sessionflow_stages::store::SILENT_AFTER;
use sqlx::PgPool;

use super::envelope::{Event, InvalidEvent, Payload};
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
    #[error("event {id}: database error: {error}")]
    Database { id: String, error: String },
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

    /// Records and handles an event this server raised (a new id, in no stream): when its
    /// handler can act inside the transaction that records it ([`Handler::handle_in`]), the
    /// event is inserted handled and both commit at once — one commit where
    /// [`process`](Self::process) takes three; otherwise, or if that handler fails, as
    /// [`process`](Self::process) (which records a failure for the operator and offers the
    /// event again).
    pub async fn process_own(&self, event: &Event) -> Result<Processed, ProcessError> {
        let payload = event.validate()?;
        let Some(handler) = self.handlers.get(&event.kind) else {
            return self.process(event).await;
        };
        let db = |e: sqlx::Error| database(&event.id, &e);
        let mut tx = self.pool.begin().await.map_err(db)?;
        let Some(handling) = handler.handle_in(&mut tx, event, &payload) else {
            return self.process(event).await;
        };
        let ready = match handling.await {
            Ok(ready) => ready,
            Err(e) => {
                drop(tx);
                tracing::warn!(event = %event.id, kind = %event.kind, "handler failed: {e}; recorded alone now");
                return self.process(event).await;
            }
        };
        if insert(&mut *tx, &[event], Recording::Handled)
            .await
            .map_err(db)?
            .is_empty()
        {
            // Recorded before (an id reused): what this handling wrote is rolled back.
            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            return Ok(Processed::Duplicate);
        }
        tx.commit().await.map_err(db)?;
        self.stats.processed.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = handler.start(&ready).await {
            // Recorded and handled; the recovery sweep runs what could not be queued.
            tracing::warn!(event = %event.id, "sessions made ready not queued: {e}");
        }
        Ok(Processed::Handled)
    }

    /// Records and handles one event ([`process_batch`](Self::process_batch) of one).
    pub async fn process(&self, event: &Event) -> Result<Processed, ProcessError> {
        self.process_batch(std::slice::from_ref(event))
            .await
            .pop()
            .unwrap_or(Ok(Processed::Stored))
    }

    /// Records `events` and runs their handlers, each event once: the outcome of each, in order.
    ///
    /// One statement records the batch's new events with this worker's lease, their workspaces
    /// and devices upserted once (another takes the lease of those recorded before and not
    /// handled); then the handlers run in stream order, except that the `session.start` and
    /// `session.end` events that come first for their session go together, a call for each
    /// type (one by one again if that call fails), and one statement marks the handled ones. A
    /// handler's failure stays its event's: the event keeps its error for the operator and is
    /// offered again; the others go on.
    pub async fn process_batch(&self, events: &[Event]) -> Vec<Result<Processed, ProcessError>> {
        let outcomes = self.process_batch_inner(events).await;
        for outcome in &outcomes {
            let counter = match outcome {
                Ok(Processed::Duplicate | Processed::Elsewhere) => &self.stats.duplicates,
                Ok(_) => &self.stats.processed,
                Err(_) => &self.stats.errors,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        outcomes
    }

    async fn process_batch_inner(&self, events: &[Event]) -> Vec<Result<Processed, ProcessError>> {
        let mut outcomes: Vec<Option<Result<Processed, ProcessError>>> =
            events.iter().map(|_| None).collect();
        let mut payloads: Vec<Option<Payload>> = events.iter().map(|_| None).collect();
        // The first of each event id; a later copy in the same batch is a duplicate of it.
        let mut seen = HashSet::new();
        let mut valid = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            match event.validate() {
                Err(e) => outcomes[i] = Some(Err(e.into())),
                Ok(_) if !seen.insert(event.id.as_str()) => {
                    outcomes[i] = Some(Ok(Processed::Duplicate));
                }
                Ok(payload) => {
                    payloads[i] = Some(payload);
                    valid.push(i);
                }
            }
        }
        let recorded = match self.take(events, &valid).await {
            Ok(recorded) => recorded,
            Err(e) => {
                for &i in &valid {
                    outcomes[i] = Some(Err(database(&events[i].id, &e)));
                }
                return finish(outcomes);
            }
        };
        let mut mine = Vec::with_capacity(valid.len());
        for &i in &valid {
            let id = events[i].id.as_str();
            if recorded.taken.contains(id) {
                mine.push(i);
            } else if recorded.handled.contains(id) {
                tracing::debug!(event = %id, "duplicate event ignored");
                outcomes[i] = Some(Ok(Processed::Duplicate));
            } else {
                tracing::debug!(event = %id, "another worker is handling the event");
                outcomes[i] = Some(Ok(Processed::Elsewhere));
            }
        }

        let together = self.together(events, &payloads, &mine).await;
        let mut handled: Vec<Result<Processed, String>> = Vec::with_capacity(events.len());
        handled.resize_with(events.len(), || Ok(Processed::Stored));
        for &i in &mine {
            if together.contains(&i) {
                handled[i] = Ok(Processed::Handled);
                continue;
            }
            let event = &events[i];
            handled[i] = match (self.handlers.get(&event.kind), payloads[i].as_ref()) {
                (Some(handler), Some(payload)) => match handler.handle(event, payload).await {
                    Ok(()) => Ok(Processed::Handled),
                    Err(e) => {
                        tracing::error!(event = %event.id, kind = %event.kind, "handler failed: {e}");
                        Err(e.to_string())
                    }
                },
                _ => Ok(Processed::Stored),
            };
        }

        let done: Vec<&str> = mine
            .iter()
            .filter(|&&i| handled[i].is_ok())
            .map(|&i| events[i].id.as_str())
            .collect();
        let failed: Vec<(&str, &str)> = mine
            .iter()
            .filter_map(|&i| match &handled[i] {
                Err(e) => Some((events[i].id.as_str(), e.as_str())),
                Ok(_) => None,
            })
            .collect();
        let marked = self.mark(&done, &failed).await;
        for &i in &mine {
            let event = &events[i];
            outcomes[i] = Some(match (&marked, &handled[i]) {
                (Err(e), _) => Err(database(&event.id, e)),
                (Ok(()), Ok(outcome)) => Ok(*outcome),
                (Ok(()), Err(error)) => Err(ProcessError::Handler {
                    id: event.id.clone(),
                    kind: event.kind.clone(),
                    error: error.clone(),
                }),
            });
        }
        finish(outcomes)
    }

    /// Handles together the events among `mine` that come first for their session (so that
    /// each session's events still apply in stream order), a handler call for each type whose
    /// handler can take many (`session.start`, `session.end`). Returns the events so handled:
    /// none of a type with fewer than two, or whose call failed (they are then handled one by
    /// one).
    async fn together(
        &self,
        events: &[Event],
        payloads: &[Option<Payload>],
        mine: &[usize],
    ) -> HashSet<usize> {
        let mut sessions = HashSet::new();
        let mut firsts: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for &i in mine {
            let event = &events[i];
            let first = event
                .session_id
                .as_deref()
                .is_none_or(|s| sessions.insert(s));
            if first {
                firsts.entry(event.kind.as_str()).or_default().push(i);
            }
        }
        let mut done = HashSet::new();
        for (kind, group) in firsts {
            let Some(handler) = self.handlers.get(kind).filter(|_| group.len() >= 2) else {
                continue;
            };
            let batch: Vec<(&Event, &Payload)> = group
                .iter()
                .filter_map(|&i| payloads[i].as_ref().map(|p| (&events[i], p)))
                .collect();
            let Some(run) = handler.handle_many(&batch) else {
                continue;
            };
            match run.await {
                Ok(()) => done.extend(group),
                Err(e) => tracing::warn!(
                    events = batch.len(),
                    "{kind} events together failed, one by one now: {e}"
                ),
            }
        }
        done
    }

    /// Records the events `valid` points at: the new ones with their workspaces and devices and
    /// this worker's lease, in one statement; then the lease of those recorded before and not
    /// handled (unless a live worker holds it: what the API of `serve` recorded, or a
    /// redelivery). Returns the ids this worker now holds, and of the others those handled
    /// already.
    async fn take(&self, events: &[Event], valid: &[usize]) -> Result<Recorded, sqlx::Error> {
        if valid.is_empty() {
            return Ok(Recorded::default());
        }
        let chosen: Vec<&Event> = valid.iter().map(|&i| &events[i]).collect();
        let mut taken: HashSet<String> =
            insert(&self.pool, &chosen, Recording::Leased(&self.worker))
                .await?
                .into_iter()
                .collect();
        let known: Vec<&str> = chosen
            .iter()
            .map(|e| e.id.as_str())
            .filter(|id| !taken.contains(*id))
            .collect();
        let mut handled = HashSet::new();
        if known.is_empty() {
            return Ok(Recorded { taken, handled });
        }
        // Not handled, written so that no plan reads the index of unhandled events
        // (`handled_at IS NULL` would match its predicate): that index keeps an entry for every
        // event handled since the table's last vacuum, and a plan that ANDs it with the primary
        // key reads them all (0.5 ms a call after a few thousand events, growing until the
        // vacuum); this way only the primary key is read (0.03 ms).
        let leased: Vec<String> = sqlx::query_scalar(
            "UPDATE events SET leased_by = $2, \
                 leased_until = now() + $3 * interval '1 millisecond' \
             WHERE id = ANY($1) AND coalesce(handled_at, '-infinity') = '-infinity' \
               AND (leased_by IS NULL OR leased_by = $2 OR leased_until < now() \
                    OR leased_by NOT IN (SELECT id FROM workers \
                                         WHERE last_seen > now() - $4 * interval '1 millisecond')) \
             RETURNING id",
        )
        .bind(&known)
        .bind(&self.worker)
        .bind(LEASE.as_millis() as f64)
        .bind(SILENT_AFTER.as_millis() as f64)
        .fetch_all(&self.pool)
        .await?;
        taken.extend(leased);
        let rest: Vec<&str> = known
            .into_iter()
            .filter(|id| !taken.contains(*id))
            .collect();
        if !rest.is_empty() {
            handled = sqlx::query_scalar(
                "SELECT id FROM events WHERE id = ANY($1) AND handled_at IS NOT NULL",
            )
            .bind(&rest)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .collect();
        }
        Ok(Recorded { taken, handled })
    }

    /// Marks `done` handled (once: a worker that lost its lease while handling does not mark
    /// again what another marked) and records each of `failed`'s errors, a statement each.
    async fn mark(&self, done: &[&str], failed: &[(&str, &str)]) -> Result<(), sqlx::Error> {
        if !done.is_empty() {
            // By the primary key only (see `take`).
            sqlx::query(
                "UPDATE events SET handled_at = now(), handler_error = NULL, leased_by = NULL, \
                     leased_until = NULL \
                 WHERE id = ANY($1) AND coalesce(handled_at, '-infinity') = '-infinity'",
            )
            .bind(done)
            .execute(&self.pool)
            .await?;
        }
        if !failed.is_empty() {
            let (ids, errors): (Vec<&str>, Vec<&str>) = failed.iter().copied().unzip();
            sqlx::query(
                "UPDATE events e SET handler_error = f.error, leased_by = NULL, \
                     leased_until = NULL \
                 FROM UNNEST($1::text[], $2::text[]) AS f(id, error) WHERE e.id = f.id",
            )
            .bind(&ids)
            .bind(&errors)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }
}

/// What [`EventProcessor::take`] found.
#[derive(Default)]
struct Recorded {
    /// Held by this worker now: to handle.
    taken: HashSet<String>,
    /// Handled before: duplicates.
    handled: HashSet<String>,
}

fn database(id: &str, error: &sqlx::Error) -> ProcessError {
    ProcessError::Database {
        id: id.to_owned(),
        error: error.to_string(),
    }
}

fn finish(
    outcomes: Vec<Option<Result<Processed, ProcessError>>>,
) -> Vec<Result<Processed, ProcessError>> {
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Ok(Processed::Stored)))
        .collect()
}

/// How [`insert`] records events.
#[derive(Debug, Clone, Copy)]
enum Recording<'a> {
    /// Accepted by the API of `serve`: for a worker to handle.
    Accepted,
    /// Leased to this worker, which handles them next.
    Leased(&'a str),
    /// Handled by the transaction that records them.
    Handled,
}

/// Inserts those of `events` not recorded yet, with their workspaces and devices (each once),
/// in one statement, as `recording` says. Returns the ids that were new; the others were
/// recorded before.
async fn insert<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    events: &[&Event],
    recording: Recording<'_>,
) -> Result<Vec<String>, sqlx::Error> {
    let mut workspaces: Vec<&str> = events.iter().map(|e| e.workspace_id.as_str()).collect();
    workspaces.sort_unstable();
    workspaces.dedup();
    let mut devices: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.device_id.as_str(), e.workspace_id.as_str()))
        .collect();
    devices.sort_unstable();
    devices.dedup_by_key(|d| d.0);
    let (device_ids, device_workspaces): (Vec<&str>, Vec<&str>) = devices.into_iter().unzip();
    let text = |f: fn(&Event) -> Option<&str>| events.iter().map(|e| f(e)).collect::<Vec<_>>();
    let data: Vec<sqlx::types::Json<&serde_json::Value>> =
        events.iter().map(|e| sqlx::types::Json(&e.data)).collect();
    // A device's workspace is inserted by the same statement: foreign keys are checked at its
    // end. A known device's last sighting is kept to the minute: its row is then locked by one
    // statement a minute, not by every one, which would make a device's batches wait for each
    // other (a backfill sends from one device over many connections). A new device's row is
    // not seen by the update: the statement wrote it.
    sqlx::query_scalar(
        "WITH workspace AS ( \
             INSERT INTO workspaces (id) SELECT * FROM UNNEST($8::text[]) \
             ON CONFLICT (id) DO NOTHING), \
         device AS ( \
             INSERT INTO devices (id, workspace_id) \
             SELECT * FROM UNNEST($9::text[], $10::text[]) ON CONFLICT (id) DO NOTHING), \
         seen AS ( \
             UPDATE devices SET last_seen_at = now() \
             WHERE id = ANY($9) AND last_seen_at < now() - interval '1 minute') \
         INSERT INTO events (id, type, \"timestamp\", device_id, workspace_id, session_id, data, \
             leased_by, leased_until, handled_at) \
         SELECT u.*, $11::text, \
                CASE WHEN $11::text IS NOT NULL THEN now() + $12 * interval '1 millisecond' END, \
                CASE WHEN $13 THEN now() END \
         FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], \
                     $6::text[], $7::jsonb[]) AS u \
         ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(text(|e| Some(e.id.as_str())))
    .bind(text(|e| Some(e.kind.as_str())))
    .bind(events.iter().map(|e| e.timestamp).collect::<Vec<_>>())
    .bind(text(|e| Some(e.device_id.as_str())))
    .bind(text(|e| Some(e.workspace_id.as_str())))
    .bind(text(|e| e.session_id.as_deref()))
    .bind(&data)
    .bind(&workspaces)
    .bind(&device_ids)
    .bind(&device_workspaces)
    .bind(match recording {
        Recording::Leased(worker) => Some(worker),
        Recording::Accepted | Recording::Handled => None,
    })
    .bind(LEASE.as_millis() as f64)
    .bind(matches!(recording, Recording::Handled))
    .fetch_all(executor)
    .await
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
        let db = |e| database("(unhandled events)", &e);
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

/// Records events the API accepted, not yet handled, in one statement (their workspaces and
/// devices with them). Returns the ids that were new; the others were already recorded
/// (duplicates).
pub async fn record_accepted(pool: &PgPool, events: &[Event]) -> Result<Vec<String>, sqlx::Error> {
    insert(
        pool,
        &events.iter().collect::<Vec<_>>(),
        Recording::Accepted,
    )
    .await
}
