//! Each worker's heartbeat: every few seconds it writes its queue depth and pipeline counters
//! into `workers`, which `/healthz` and the monitor read. A clean shutdown removes the row.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::events::EventProcessor;
use crate::events::processor::ProcessorStats;
use crate::queue::PipelineQueue;

/// How often a worker reports.
pub const EVERY: Duration = Duration::from_secs(5);
/// A worker silent for this long is presumed gone.
pub const SILENT_AFTER: Duration = Duration::from_secs(30);

pub async fn beat(
    pool: &PgPool,
    worker: &str,
    mode: &str,
    queue: &PipelineQueue,
    events: &ProcessorStats,
) -> Result<(), sqlx::Error> {
    let s = queue.metrics().snapshot();
    let stages: Vec<_> = s
        .stages
        .iter()
        .map(|st| {
            json!({
                "name": st.name, "in_flight": st.in_flight, "done": st.done, "failed": st.failed,
                "mean_latency_ms": st.mean_latency.as_secs_f64() * 1000.0,
                "max_latency_ms": st.max_latency.as_secs_f64() * 1000.0,
            })
        })
        .collect();
    let pipeline = json!({
        "runs_in_flight": s.runs_in_flight, "completed": s.completed, "stopped": s.stopped,
        "failed": s.failed, "deferred": s.deferred, "enqueued": s.enqueued, "dropped": s.dropped,
        "stages": stages,
        "events": {
            "processed": events.processed.load(Ordering::Relaxed),
            "duplicates": events.duplicates.load(Ordering::Relaxed),
            "errors": events.errors.load(Ordering::Relaxed),
        },
    });
    sqlx::query(
        "INSERT INTO workers (id, mode, queue_depth, pipeline) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET last_seen = now(), mode = EXCLUDED.mode, \
             queue_depth = EXCLUDED.queue_depth, pipeline = EXCLUDED.pipeline",
    )
    .bind(worker)
    .bind(mode)
    .bind(queue.depth() as i32)
    .bind(sqlx::types::Json(pipeline))
    .execute(pool)
    .await?;
    Ok(())
}

/// Beats every [`EVERY`] until `stop`, then removes the worker's row.
pub fn spawn(
    pool: PgPool,
    worker: String,
    mode: &'static str,
    queue: Arc<PipelineQueue>,
    processor: Arc<EventProcessor>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = beat(&pool, &worker, mode, &queue, processor.stats()).await {
                tracing::warn!("heartbeat failed, will retry: {e}");
            }
        }
        let _ = sqlx::query("DELETE FROM workers WHERE id = $1")
            .bind(&worker)
            .execute(&pool)
            .await;
    })
}
