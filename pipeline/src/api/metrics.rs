//! `GET /metrics` in the Prometheus text format, read from the database so that it covers every
//! worker, wherever it runs: sessions by lifecycle, sessions deleted by reason, events by
//! outcome, and each live worker's heartbeat (queue depth and drops, runs by outcome, stage
//! runs, failures and latencies, event duplicates). Rendered here because the figures are aggregates of other processes' reports,
//! not counters this process records.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use crate::heartbeat;

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus metrics, computed from the database (every worker's heartbeat).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 503, description = "The database cannot be reached", body = String, content_type = "text/plain"),
    )
)]
pub async fn metrics(State(state): State<ApiState>) -> Response {
    match render(&state).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("# database unavailable: {e}\n"),
        )
            .into_response(),
    }
}

async fn render(state: &ApiState) -> Result<String, sqlx::Error> {
    let pool = state.store.pool();
    let mut out = String::new();

    let lifecycles: Vec<(String, i64)> =
        sqlx::query_as("SELECT lifecycle, count(*) FROM sessions GROUP BY lifecycle ORDER BY 1")
            .fetch_all(pool)
            .await?;
    family(
        &mut out,
        "sessionflow_sessions",
        "gauge",
        "Sessions by lifecycle.",
    );
    for (lifecycle, n) in lifecycles {
        let _ = writeln!(
            out,
            "sessionflow_sessions{{lifecycle=\"{}\"}} {n}",
            label(&lifecycle)
        );
    }

    // Tombstones stay in the event log, so this only grows (a session forced back and deleted
    // again counts twice).
    let deletions: Vec<(String, i64)> = sqlx::query_as(
        "SELECT coalesce(data->>'reason', ''), count(*) FROM events \
         WHERE type = 'session.deleted' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    family(
        &mut out,
        "sessionflow_sessions_deleted_total",
        "counter",
        "Sessions deleted for good, by reason (request: the API or the CLI; retention).",
    );
    for reason in ["request", "retention"] {
        let n = deletions
            .iter()
            .find(|(r, _)| r == reason)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(
            out,
            "sessionflow_sessions_deleted_total{{reason=\"{reason}\"}} {n}"
        );
    }

    let (handled, failed, pending): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE handled_at IS NOT NULL), \
                count(*) FILTER (WHERE handled_at IS NULL AND handler_error IS NOT NULL), \
                count(*) FILTER (WHERE handled_at IS NULL AND handler_error IS NULL) FROM events",
    )
    .fetch_one(pool)
    .await?;
    family(
        &mut out,
        "sessionflow_events",
        "gauge",
        "Recorded events by outcome.",
    );
    for (outcome, n) in [
        ("handled", handled),
        ("failed", failed),
        ("pending", pending),
    ] {
        let _ = writeln!(out, "sessionflow_events{{outcome=\"{outcome}\"}} {n}");
    }

    let health = super::health(state).await;
    let f = &health.figures;
    for (name, kind, help, value) in [
        (
            "sessionflow_stream_lag",
            "gauge",
            "Stream entries no consumer has been given yet.",
            f.stream_lag as f64,
        ),
        (
            "sessionflow_events_waiting",
            "gauge",
            "Accepted events not yet handled.",
            f.events_waiting as f64,
        ),
        (
            "sessionflow_sessions_stranded",
            "gauge",
            "Sessions claimed or queued by workers that went silent.",
            f.sessions_stranded as f64,
        ),
        (
            "sessionflow_oldest_waiting_seconds",
            "gauge",
            "Age of the oldest waiting event or session.",
            f.oldest_waiting_seconds,
        ),
        (
            "sessionflow_healthy",
            "gauge",
            "1 when /healthz answers 200.",
            if health.is_ok() { 1.0 } else { 0.0 },
        ),
    ] {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
    family(
        &mut out,
        "sessionflow_stream_pending",
        "gauge",
        "Stream entries delivered to a consumer and not acked, by consumer.",
    );
    for c in &f.stream_pending {
        let _ = writeln!(
            out,
            "sessionflow_stream_pending{{consumer=\"{}\",alive=\"{}\"}} {}",
            label(&c.consumer),
            c.alive,
            c.pending
        );
    }

    let workers = heartbeat::live_gauges(pool).await?;
    family(
        &mut out,
        "sessionflow_workers",
        "gauge",
        "Workers with a heartbeat in the last 30 s.",
    );
    let _ = writeln!(out, "sessionflow_workers {}", workers.len());
    let series: [(&str, &str, &str); 4] = [
        (
            "sessionflow_queue_depth",
            "gauge",
            "Sessions waiting in a worker's queue.",
        ),
        (
            "sessionflow_queue_dropped_total",
            "counter",
            "Sessions a full queue dropped (the recovery sweep picks them up).",
        ),
        (
            "sessionflow_runs_total",
            "counter",
            "Pipeline runs by outcome.",
        ),
        (
            "sessionflow_event_duplicates_total",
            "counter",
            "Events seen again and not handled twice.",
        ),
    ];
    for (name, kind, help) in series {
        family(&mut out, name, kind, help);
        for worker in &workers {
            let (w, depth, p) = (label(&worker.id), worker.queue_depth, &worker.gauges);
            match name {
                "sessionflow_queue_depth" => {
                    let _ = writeln!(out, "{name}{{worker=\"{w}\"}} {depth}");
                }
                "sessionflow_queue_dropped_total" => {
                    let _ = writeln!(out, "{name}{{worker=\"{w}\"}} {}", p.dropped);
                }
                "sessionflow_runs_total" => {
                    for (outcome, n) in [
                        ("completed", p.completed),
                        ("stopped", p.stopped),
                        ("failed", p.failed),
                        ("deferred", p.deferred),
                    ] {
                        let _ = writeln!(out, "{name}{{worker=\"{w}\",outcome=\"{outcome}\"}} {n}");
                    }
                }
                _ => {
                    let _ = writeln!(out, "{name}{{worker=\"{w}\"}} {}", p.events.duplicates);
                }
            }
        }
    }
    family(
        &mut out,
        "sessionflow_stage_runs_total",
        "counter",
        "Runs each stage finished.",
    );
    family(
        &mut out,
        "sessionflow_stage_failures_total",
        "counter",
        "Runs that failed the session in each stage.",
    );
    family(
        &mut out,
        "sessionflow_stage_latency_seconds",
        "gauge",
        "Mean and max latency of each stage.",
    );
    for worker in &workers {
        let w = label(&worker.id);
        for stage in &worker.gauges.stages {
            let s = label(&stage.name);
            let _ = writeln!(
                out,
                "sessionflow_stage_runs_total{{worker=\"{w}\",stage=\"{s}\"}} {}",
                stage.done
            );
            let _ = writeln!(
                out,
                "sessionflow_stage_failures_total{{worker=\"{w}\",stage=\"{s}\"}} {}",
                stage.failed
            );
            for (stat, ms) in [
                ("mean", stage.mean_latency_ms),
                ("max", stage.max_latency_ms),
            ] {
                let _ = writeln!(
                    out,
                    "sessionflow_stage_latency_seconds{{worker=\"{w}\",stage=\"{s}\",stat=\"{stat}\"}} {}",
                    ms / 1000.0
                );
            }
        }
    }
    Ok(out)
}
