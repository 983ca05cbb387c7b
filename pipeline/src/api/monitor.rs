//! `GET /api/monitor`: one snapshot of the whole system for the operator monitor, computed from
//! Postgres (workers write their gauges with their heartbeat), so any API server can answer it.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use crate::heartbeat;

/// Failures and stuck sessions listed at most.
const LISTED: i64 = 20;

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// The operator's snapshot: health with its figures, sessions by lifecycle and parse status,
/// queue, stages, workers, recent failures, events per second, processors.
#[utoipa::path(
    get,
    path = "/api/monitor",
    tag = "operations",
    responses(
        (status = 200, description = "The snapshot", body = Object),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database or Redis cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn monitor(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let pool = state.store.pool();
    let unavailable = |e: sqlx::Error| ApiError::Unavailable(format!("database unavailable: {e}"));

    let counts: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT lifecycle, parse_status, count(*) FROM sessions GROUP BY 1, 2")
            .fetch_all(pool)
            .await
            .map_err(unavailable)?;
    let mut by_lifecycle: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_parse_status: BTreeMap<String, i64> = BTreeMap::new();
    for (lifecycle, parse_status, n) in counts {
        *by_lifecycle.entry(lifecycle).or_default() += n;
        *by_parse_status.entry(parse_status).or_default() += n;
    }

    let workers: Vec<(String, String, DateTime<Utc>, i32, Value)> = sqlx::query_as(
        "SELECT id, mode, last_seen, queue_depth, pipeline FROM workers \
         WHERE last_seen > now() - $1 * interval '1 second' ORDER BY id",
    )
    .bind(heartbeat::SILENT_AFTER.as_secs() as f64)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    let mut stages: Vec<(String, [f64; 6])> = Vec::new();
    let (mut depth, mut dropped) = (0i64, 0f64);
    let mut queues = Vec::new();
    let mut worker_rows = Vec::new();
    for (id, mode, last_seen, queue_depth, p) in &workers {
        depth += i64::from(*queue_depth);
        dropped += number(&p["dropped"]);
        queues.push(json!({"worker": id, "depth": queue_depth, "dropped": number(&p["dropped"])}));
        worker_rows.push(json!({
            "id": id, "host": p["host"], "mode": mode, "version": p["version"],
            "last_heartbeat": last_seen, "queue_depth": queue_depth,
            "in_flight": number(&p["runs_in_flight"]),
        }));
        for stage in p["stages"].as_array().into_iter().flatten() {
            let name = stage["name"].as_str().unwrap_or("?").to_owned();
            let at = match stages.iter().position(|(n, _)| *n == name) {
                Some(at) => at,
                None => {
                    stages.push((name, [0.0; 6]));
                    stages.len() - 1
                }
            };
            let sums = &mut stages[at].1;
            sums[0] += number(&stage["in_flight"]);
            sums[1] += number(&stage["done"]);
            sums[2] += number(&stage["failed"]);
            sums[3] += number(&stage["throughput_per_s"]);
            // Across workers, the slowest worker's percentiles stand for the stage.
            sums[4] = sums[4].max(number(&stage["p50_latency_ms"]));
            sums[5] = sums[5].max(number(&stage["p95_latency_ms"]));
        }
    }
    let stages: Vec<Value> = stages
        .into_iter()
        .map(|(name, s)| {
            json!({"name": name, "in_flight": s[0], "done": s[1], "failed": s[2],
                   "throughput_per_s": s[3], "p50_latency_ms": s[4], "p95_latency_ms": s[5]})
        })
        .collect();

    type Failure = (String, Option<String>, Option<String>, DateTime<Utc>);
    let failures: Vec<Failure> = sqlx::query_as(
        "SELECT id, failed_stage, parse_error, updated_at FROM sessions \
         WHERE lifecycle = 'failed' ORDER BY updated_at DESC LIMIT $1",
    )
    .bind(LISTED)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    let failures: Vec<Value> = failures
        .into_iter()
        .map(|(id, stage, error, at)| {
            // A failure recorded outside a run (none so far) has no stage.
            let stage = stage.unwrap_or_else(|| "pipeline".to_owned());
            json!({"session_id": id, "stage": stage, "error": error.unwrap_or_default(), "at": at})
        })
        .collect();
    let stuck: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, updated_at FROM sessions WHERE lifecycle = 'ended' \
           AND transcript_key IS NOT NULL AND updated_at < now() - interval '10 minutes' \
         ORDER BY updated_at LIMIT $1",
    )
    .bind(LISTED)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    let stuck: Vec<Value> = stuck
        .into_iter()
        .map(|(id, since)| json!({"session_id": id, "waiting_since": since}))
        .collect();
    let recent_events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE ingested_at > now() - interval '60 seconds'",
    )
    .fetch_one(pool)
    .await
    .map_err(unavailable)?;

    let processors: Vec<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('name', r.processor_name, 'last_run', r.last_run_at, \
                'next_run', r.next_run_at, 'running', r.running, 'last_result', r.last_result, \
                'processed', (SELECT count(*) FROM processor_state p \
                              WHERE p.processor_name = r.processor_name \
                                AND p.processed_at IS NOT NULL AND p.attempts = 0), \
                'failing', (SELECT count(*) FROM processor_state p \
                            WHERE p.processor_name = r.processor_name \
                              AND p.attempts BETWEEN 1 AND $1 - 1), \
                'parked', (SELECT count(*) FROM processor_state p \
                           WHERE p.processor_name = r.processor_name AND p.attempts >= $1)) \
         FROM processor_runs r ORDER BY r.processor_name",
    )
    .bind(crate::processors::MAX_ATTEMPTS)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;

    let health = super::health(&state).await;

    Ok(Json(json!({
        "generated_at": Utc::now(),
        "health": health,
        "sessions": {"by_lifecycle": by_lifecycle, "by_parse_status": by_parse_status},
        "queue": {"depth": depth, "dropped": dropped, "workers": queues},
        "stages": stages,
        "workers": worker_rows,
        "recent_failures": failures,
        "stuck": stuck,
        "events_per_second": recent_events as f64 / 60.0,
        "processors": processors,
    })))
}
