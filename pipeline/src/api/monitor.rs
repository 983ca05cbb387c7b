//! `GET /api/monitor`: one snapshot of the whole system for the operator monitor, computed from
//! Postgres (workers write their gauges with their heartbeat), so any API server can answer it.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use sessionflow_protocol::monitor::{
    Failure, MonitorSnapshot, ProcessorRow, QueueSummary, SessionCounts, StageSummary, Stuck,
    WorkerQueue, WorkerRow,
};
use sessionflow_stages::store::Principal;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use crate::heartbeat;

/// Failures and stuck sessions listed at most.
const LISTED: i64 = 20;

/// The operator's snapshot: health with its figures, sessions by lifecycle and parse status,
/// queue, stages, workers, recent failures, events per second, processors.
#[utoipa::path(
    get,
    path = "/api/monitor",
    tag = "operations",
    responses(
        (status = 200, description = "The snapshot", body = MonitorSnapshot),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database or Redis cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn monitor(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<MonitorSnapshot>, ApiError> {
    let pool = state.store.pool();
    let unavailable = |e: sqlx::Error| ApiError::Unavailable(format!("database unavailable: {e}"));
    // None: every workspace.
    let scope = principal.workspaces.as_deref();

    let counts: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT lifecycle, parse_status, count(*) FROM sessions \
         WHERE $1::text[] IS NULL OR workspace_id = ANY($1) GROUP BY 1, 2",
    )
    .bind(scope)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    let mut by_lifecycle: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_parse_status: BTreeMap<String, u64> = BTreeMap::new();
    for (lifecycle, parse_status, n) in counts {
        let n = u64::try_from(n).unwrap_or_default();
        *by_lifecycle.entry(lifecycle).or_default() += n;
        *by_parse_status.entry(parse_status).or_default() += n;
    }
    // Only the sessions something was taken out of (a partial index holds them).
    let redactions: Vec<(String, i64)> = sqlx::query_as(
        "SELECT r.key, sum(r.value::bigint)::bigint \
         FROM sessions s, jsonb_each_text(s.redactions) r \
         WHERE s.redactions <> '{}' AND ($1::text[] IS NULL OR s.workspace_id = ANY($1)) \
         GROUP BY 1",
    )
    .bind(scope)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    let redactions = redactions
        .into_iter()
        .map(|(kind, n)| (kind, u64::try_from(n).unwrap_or_default()))
        .collect();

    let workers = heartbeat::live_gauges(pool).await.map_err(unavailable)?;
    let mut stages: Vec<StageSummary> = Vec::new();
    let mut queue = QueueSummary::default();
    let mut worker_rows = Vec::new();
    for w in &workers {
        let g = &w.gauges;
        queue.depth += w.queue_depth;
        queue.dropped += g.dropped;
        queue.workers.push(WorkerQueue {
            worker: w.id.clone(),
            depth: w.queue_depth,
            dropped: g.dropped,
        });
        worker_rows.push(WorkerRow {
            id: w.id.clone(),
            host: g.host.clone(),
            mode: w.mode.clone(),
            version: g.version.clone(),
            last_heartbeat: w.last_seen,
            queue_depth: w.queue_depth,
            in_flight: g.runs_in_flight,
        });
        for stage in &g.stages {
            let at = match stages.iter().position(|s| s.name == stage.name) {
                Some(at) => at,
                None => {
                    stages.push(StageSummary {
                        name: stage.name.clone(),
                        ..StageSummary::default()
                    });
                    stages.len() - 1
                }
            };
            let sum = &mut stages[at];
            sum.in_flight += stage.in_flight;
            sum.done += stage.done;
            sum.failed += stage.failed;
            sum.throughput_per_s += stage.throughput_per_s;
            // Across workers, the slowest worker's percentiles stand for the stage.
            sum.p50_latency_ms = sum.p50_latency_ms.max(stage.p50_latency_ms);
            sum.p95_latency_ms = sum.p95_latency_ms.max(stage.p95_latency_ms);
        }
    }

    type FailureRow = (String, Option<String>, Option<String>, DateTime<Utc>);
    let failures: Vec<FailureRow> = sqlx::query_as(
        "SELECT id, failed_stage, parse_error, updated_at FROM sessions \
         WHERE lifecycle = 'failed' AND ($2::text[] IS NULL OR workspace_id = ANY($2)) \
         ORDER BY updated_at DESC LIMIT $1",
    )
    .bind(LISTED)
    .bind(scope)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    let failures: Vec<Failure> = failures
        .into_iter()
        .map(|(session_id, stage, error, at)| Failure {
            session_id,
            // A failure recorded outside a run (none so far) has no stage.
            stage: stage.unwrap_or_else(|| "pipeline".to_owned()),
            error: error.unwrap_or_default(),
            at,
        })
        .collect();
    let stuck: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, updated_at FROM sessions WHERE lifecycle = 'ended' \
           AND transcript_key IS NOT NULL AND updated_at < now() - interval '10 minutes' \
           AND ($2::text[] IS NULL OR workspace_id = ANY($2)) \
         ORDER BY updated_at LIMIT $1",
    )
    .bind(LISTED)
    .bind(scope)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    let stuck: Vec<Stuck> = stuck
        .into_iter()
        .map(|(session_id, waiting_since)| Stuck {
            session_id,
            waiting_since,
        })
        .collect();
    let recent_events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE ingested_at > now() - interval '60 seconds' \
           AND ($1::text[] IS NULL OR workspace_id = ANY($1))",
    )
    .bind(scope)
    .fetch_one(pool)
    .await
    .map_err(unavailable)?;

    let processors: Vec<sqlx::types::Json<ProcessorRow>> = sqlx::query_scalar(
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

    Ok(Json(MonitorSnapshot {
        generated_at: Utc::now(),
        health,
        sessions: SessionCounts {
            by_lifecycle,
            by_parse_status,
            redactions,
        },
        queue,
        stages,
        workers: worker_rows,
        recent_failures: failures,
        stuck,
        events_per_second: recent_events as f64 / 60.0,
        processors: processors.into_iter().map(|p| p.0).collect(),
    }))
}
