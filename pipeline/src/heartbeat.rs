//! Each worker's heartbeat: every few seconds it writes its queue depth and pipeline counters
//! into `workers`, which `/healthz`, the monitor and every worker's rescue read. A clean
//! shutdown removes the row once the worker's runs are done ([`remove`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sessionflow_protocol::heartbeat::{EventCounts, StageGauges, WorkerGauges};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::events::EventProcessor;
use crate::events::processor::ProcessorStats;
use crate::queue::PipelineQueue;

/// How often a worker reports.
pub const EVERY: Duration = Duration::from_secs(5);
/// A worker silent for this long is presumed gone (the store's rescue uses the same).
pub use sessionflow_stages::store::SILENT_AFTER;

/// The workers whose heartbeat is younger than [`SILENT_AFTER`].
pub async fn live_workers(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM workers WHERE last_seen > now() - $1 * interval '1 millisecond'",
    )
    .bind(SILENT_AFTER.as_millis() as f64)
    .fetch_all(pool)
    .await
}

/// A live worker as its last heartbeat left it.
pub struct LiveWorker {
    pub id: String,
    pub mode: String,
    pub last_seen: DateTime<Utc>,
    pub queue_depth: u64,
    pub gauges: WorkerGauges,
}

/// The live workers with their gauges, by id. A row another version wrote in a shape this one
/// cannot read (during a rolling upgrade) counts with empty gauges and a warning.
pub async fn live_gauges(pool: &PgPool) -> Result<Vec<LiveWorker>, sqlx::Error> {
    let rows: Vec<(String, String, DateTime<Utc>, i32, serde_json::Value)> = sqlx::query_as(
        "SELECT id, mode, last_seen, queue_depth, pipeline FROM workers \
         WHERE last_seen > now() - $1 * interval '1 millisecond' ORDER BY id",
    )
    .bind(SILENT_AFTER.as_millis() as f64)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, mode, last_seen, queue_depth, pipeline)| {
            let gauges = serde_json::from_value(pipeline).unwrap_or_else(|e| {
                tracing::warn!("worker {id}'s heartbeat is not in this version's shape: {e}");
                WorkerGauges::default()
            });
            LiveWorker {
                id,
                mode,
                last_seen,
                queue_depth: u64::try_from(queue_depth).unwrap_or_default(),
                gauges,
            }
        })
        .collect())
}

/// What the previous beat saw, to report each stage's throughput since.
#[derive(Debug, Default)]
pub struct Rates {
    last: Option<(Instant, Vec<u64>)>,
}

impl Rates {
    /// Runs per second of each stage since the previous call (zero on the first).
    fn update(&mut self, done: Vec<u64>) -> Vec<f64> {
        let now = Instant::now();
        let rates = match &self.last {
            Some((at, before)) if now > *at => {
                let secs = (now - *at).as_secs_f64();
                done.iter()
                    .zip(before)
                    .map(|(d, b)| d.saturating_sub(*b) as f64 / secs)
                    .collect()
            }
            _ => vec![0.0; done.len()],
        };
        self.last = Some((now, done));
        rates
    }
}

pub async fn beat(
    pool: &PgPool,
    worker: &str,
    mode: &str,
    queue: &PipelineQueue,
    events: &ProcessorStats,
    rates: &mut Rates,
) -> Result<(), sqlx::Error> {
    let s = queue.metrics().snapshot();
    let throughput = rates.update(s.stages.iter().map(|st| st.done).collect());
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let gauges = WorkerGauges {
        host: crate::hostname().unwrap_or_default(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        runs_in_flight: s.runs_in_flight,
        completed: s.completed,
        stopped: s.stopped,
        failed: s.failed,
        deferred: s.deferred,
        enqueued: s.enqueued,
        dropped: s.dropped,
        stages: s
            .stages
            .iter()
            .zip(throughput)
            .map(|(st, per_s)| StageGauges {
                name: st.name.to_owned(),
                in_flight: st.in_flight,
                done: st.done,
                failed: st.failed,
                throughput_per_s: per_s,
                mean_latency_ms: ms(st.mean_latency),
                max_latency_ms: ms(st.max_latency),
                p50_latency_ms: ms(st.p50_latency),
                p95_latency_ms: ms(st.p95_latency),
            })
            .collect(),
        events: EventCounts {
            processed: events.processed.load(Ordering::Relaxed),
            duplicates: events.duplicates.load(Ordering::Relaxed),
            errors: events.errors.load(Ordering::Relaxed),
        },
    };
    sqlx::query(
        "INSERT INTO workers (id, mode, queue_depth, pipeline) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET last_seen = now(), mode = EXCLUDED.mode, \
             queue_depth = EXCLUDED.queue_depth, pipeline = EXCLUDED.pipeline",
    )
    .bind(worker)
    .bind(mode)
    .bind(queue.depth() as i32)
    .bind(sqlx::types::Json(gauges))
    .execute(pool)
    .await?;
    Ok(())
}

/// Beats every [`EVERY`] until `stop`.
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
        let mut rates = Rates::default();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = beat(&pool, &worker, mode, &queue, processor.stats(), &mut rates).await
            {
                tracing::warn!("heartbeat failed, will retry: {e}");
            }
        }
    })
}

/// Removes a stopped worker's row: it holds nothing any more.
pub async fn remove(pool: &PgPool, worker: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM workers WHERE id = $1")
        .bind(worker)
        .execute(pool)
        .await?;
    Ok(())
}
