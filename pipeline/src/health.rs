//! Whether the system does the work it accepts: what `/healthz`, the monitor snapshot and
//! `/metrics` report. Degraded, with a reason an operator can act on, whenever work waits that no
//! live worker will do:
//!
//! - accepted events not handled for [`EVENTS_LATE`] (no worker reads the stream, or none keeps
//!   up), or entries pending in the stream on a consumer whose worker went silent;
//! - sessions claimed or queued by a worker that went silent (rescued within a sweep);
//! - sessions that have waited over [`WAITING_TOO_LONG`], or wait while no worker lives;
//! - the database, or a configured Redis, unreachable.
//!
//! Every figure comes from indexed queries over what waits, never a scan of all sessions.

use std::time::Duration;

use fred::prelude::{Client, ClientLike, StreamsInterface};
use sessionflow_protocol::health::{ConsumerPending, HealthReport, Holder};
use sqlx::PgPool;

use crate::consumer;
use crate::heartbeat::{SILENT_AFTER, live_workers};

/// How long an accepted event may wait for a worker before health says so.
pub const EVENTS_LATE: Duration = Duration::from_secs(30);
/// How long a session with its transcript may wait for its run before health says so.
pub const WAITING_TOO_LONG: Duration = Duration::from_secs(10 * 60);
/// Longest a health check waits for a service.
const PATIENCE: Duration = Duration::from_secs(2);

/// The stream, when events go through Redis.
pub struct Stream<'a> {
    pub client: &'a Client,
    pub name: &'a str,
    pub group: &'a str,
}

/// Checks the database (and the stream, when there is one).
pub async fn check(pool: &PgPool, stream: Option<Stream<'_>>) -> HealthReport {
    let mut health = HealthReport::default();
    let events = stream.as_ref().map_or("the events", |s| s.name);
    match tokio::time::timeout(PATIENCE, database(pool, events, &mut health)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!("health: the database is unreachable: {e}");
            health
                .reasons
                .push("the database is unreachable".to_owned());
        }
        Err(_) => health
            .reasons
            .push("the database did not answer within 2 s".to_owned()),
    }
    if let Some(stream) = stream {
        let live = live_workers(pool).await.unwrap_or_default();
        match tokio::time::timeout(PATIENCE, redis(&stream, &live, &mut health)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!("health: Redis is unreachable: {e}");
                health.reasons.push("Redis is unreachable".to_owned());
            }
            Err(_) => health
                .reasons
                .push("Redis did not answer within 2 s".to_owned()),
        }
    }
    health.status = if health.is_ok() { "ok" } else { "degraded" }.to_owned();
    health
}

/// `events` names where events come from, for the reasons.
async fn database(
    pool: &PgPool,
    events_from: &str,
    health: &mut HealthReport,
) -> Result<(), sqlx::Error> {
    let silent = SILENT_AFTER.as_millis() as f64;
    let figures = &mut health.figures;
    let (live, events, oldest_event): (i64, i64, Option<f64>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM workers \
                 WHERE last_seen > now() - $1 * interval '1 millisecond'), \
                count(*), extract(epoch FROM now() - min(ingested_at))::float8 \
         FROM events WHERE handled_at IS NULL AND handler_error IS NULL",
    )
    .bind(silent)
    .fetch_one(pool)
    .await?;
    figures.live_workers = live as u64;
    figures.events_waiting = events as u64;
    figures.oldest_event_seconds = oldest_event.unwrap_or(0.0);
    if figures.oldest_event_seconds >= EVENTS_LATE.as_secs_f64() {
        let waiting = format!(
            "{events} events waiting for {:.0} s",
            figures.oldest_event_seconds
        );
        health.reasons.push(if live == 0 {
            format!("no worker is reading {events_from}: {waiting}")
        } else {
            format!("the workers are not keeping up with {events_from}: {waiting}")
        });
    }

    let held: Vec<(String, i64, Option<f64>, f64)> = sqlx::query_as(
        "WITH held AS ( \
             SELECT CASE WHEN lifecycle = 'ended' AND parse_status = 'pending' THEN enqueued_by \
                         ELSE claimed_by END AS holder, updated_at \
             FROM sessions \
             WHERE (claimed_by IS NOT NULL \
                    AND ((lifecycle = 'ended' AND parse_status = 'parsing') \
                         OR (lifecycle = 'parsed' AND summary IS NULL))) \
                OR (enqueued_by IS NOT NULL \
                    AND lifecycle = 'ended' AND parse_status = 'pending')) \
         SELECT h.holder, count(*), \
                extract(epoch FROM now() - max(w.last_seen))::float8, \
                extract(epoch FROM now() - min(h.updated_at))::float8 \
         FROM held h LEFT JOIN workers w ON w.id = h.holder \
         GROUP BY h.holder \
         HAVING coalesce(max(w.last_seen), '-infinity') <= now() - $1 * interval '1 millisecond' \
         ORDER BY h.holder",
    )
    .bind(silent)
    .fetch_all(pool)
    .await?;
    let mut oldest = figures.oldest_event_seconds;
    for (worker, sessions, silent_seconds, age) in held {
        figures.sessions_stranded += sessions as u64;
        oldest = oldest.max(age);
        health.reasons.push(match silent_seconds {
            Some(s) => format!(
                "{sessions} sessions held by worker {worker}, silent for {s:.0} s (a live worker's \
                 recovery sweep takes them over)"
            ),
            None => format!(
                "{sessions} sessions held by worker {worker}, which is gone (a live worker's \
                 recovery sweep takes them over)"
            ),
        });
        figures.stranded_by.push(Holder {
            worker,
            sessions: sessions as u64,
            silent_seconds,
        });
    }

    let (waiting, late, oldest_waiting): (i64, i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), \
                count(*) FILTER (WHERE updated_at < now() - $1 * interval '1 millisecond'), \
                extract(epoch FROM now() - min(updated_at))::float8 FROM sessions \
         WHERE lifecycle = 'ended' AND transcript_key IS NOT NULL \
           AND parse_status IN ('pending', 'parsing')",
    )
    .bind(WAITING_TOO_LONG.as_millis() as f64)
    .fetch_one(pool)
    .await?;
    figures.sessions_waiting = waiting as u64;
    let oldest_waiting = oldest_waiting.unwrap_or(0.0);
    figures.oldest_waiting_seconds = oldest.max(oldest_waiting);
    if late > 0 {
        health.reasons.push(format!(
            "{late} sessions have waited over {} minutes to be processed, the oldest {:.0} s",
            WAITING_TOO_LONG.as_secs() / 60,
            oldest_waiting
        ));
    } else if waiting > 0 && live == 0 {
        health.reasons.push(format!(
            "no worker has sent a heartbeat for {} s while {waiting} sessions wait",
            SILENT_AFTER.as_secs()
        ));
    }
    Ok(())
}

async fn redis(
    stream: &Stream<'_>,
    live: &[String],
    health: &mut HealthReport,
) -> Result<(), fred::error::Error> {
    stream.client.ping::<String>(None).await?;
    let groups: Vec<std::collections::HashMap<String, fred::types::Value>> =
        match stream.client.xinfo_groups(stream.name).await {
            Ok(groups) => groups,
            // No stream yet: nothing was ever sent.
            Err(e) if e.details().contains("no such key") => Vec::new(),
            Err(e) => return Err(e),
        };
    let group = groups
        .iter()
        .find(|g| g.get("name").and_then(|n| n.as_string()).as_deref() == Some(stream.group));
    let figures = &mut health.figures;
    figures.stream_lag = match group {
        Some(g) => g.get("lag").and_then(|v| v.as_u64()).unwrap_or(0),
        // Entries but no group: no worker ever read them.
        None => stream.client.xlen(stream.name).await.unwrap_or(0),
    };
    for c in consumer::consumers(stream.client, stream.name, stream.group).await? {
        let alive = live.contains(&c.name);
        if c.pending > 0 && !alive {
            health.reasons.push(format!(
                "{} events pending on consumer {}, whose worker is silent (a live worker takes \
                 them over)",
                c.pending, c.name
            ));
        }
        figures.stream_pending.push(ConsumerPending {
            consumer: c.name,
            pending: c.pending,
            alive,
        });
    }
    Ok(())
}
