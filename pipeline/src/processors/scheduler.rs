//! The processor scheduler every worker runs: each processor on its own task when it is due,
//! never a second instance of one still running here (and the advisory lock keeps other workers
//! out), its next run set from its interval whether the last one succeeded, failed or panicked —
//! so a permanent failure does not turn into a hot loop, and one processor's trouble never stops
//! another or the pipeline. Its runs give way to a busy pipeline
//! ([`Processors::run_scheduled`](super::Processors::run_scheduled)).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Processors, RunError};

/// How often the scheduler looks for due processors.
const TICK: Duration = Duration::from_millis(250);

/// What the scheduler did, per processor: runs launched, and runs another worker held off.
#[derive(Debug, Default)]
pub struct Launches {
    counts: HashMap<String, (AtomicU64, AtomicU64)>,
}

impl Launches {
    /// Runs launched by this scheduler.
    pub fn launched(&self, name: &str) -> u64 {
        self.counts
            .get(name)
            .map_or(0, |(n, _)| n.load(Ordering::Relaxed))
    }

    /// Runs that found the processor's lock held elsewhere.
    pub fn busy(&self, name: &str) -> u64 {
        self.counts
            .get(name)
            .map_or(0, |(_, n)| n.load(Ordering::Relaxed))
    }
}

/// Starts the scheduler; `intervals` overrides processors' default intervals by name.
pub fn spawn(
    processors: Processors,
    intervals: &HashMap<String, Duration>,
    stop: CancellationToken,
) -> (JoinHandle<()>, Arc<Launches>) {
    let plan: Vec<(String, Duration)> = processors
        .all()
        .iter()
        .map(|p| {
            let name = p.name().to_owned();
            let every = intervals
                .get(&name)
                .copied()
                .unwrap_or_else(|| p.default_interval());
            (name, every)
        })
        .collect();
    let launches = Arc::new(Launches {
        counts: plan
            .iter()
            .map(|(name, _)| (name.clone(), Default::default()))
            .collect(),
    });
    let stats = Arc::clone(&launches);
    let handle = tokio::spawn(async move {
        let mut due: HashMap<String, Instant> = plan
            .iter()
            .map(|(n, _)| (n.clone(), Instant::now()))
            .collect();
        let mut running: HashMap<String, JoinHandle<()>> = HashMap::new();
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            running.retain(|_, task| !task.is_finished());
            for (name, every) in &plan {
                if running.contains_key(name) || Instant::now() < due[name] {
                    continue;
                }
                let next = Instant::now() + *every;
                due.insert(name.clone(), next);
                record_next_run(&processors, name, *every).await;
                if let Some((launched, _)) = stats.counts.get(name) {
                    launched.fetch_add(1, Ordering::Relaxed);
                }
                let processors = processors.clone();
                let stats = Arc::clone(&stats);
                let name = name.clone();
                let task_name = name.clone();
                // A panic here ends this task only (tokio contains it); the next run is due
                // all the same.
                let task = tokio::spawn(async move {
                    match processors.run_scheduled(&name).await {
                        Ok(summary) => tracing::info!(
                            processor = %name,
                            scanned = summary.scanned,
                            processed = summary.processed,
                            skipped = summary.skipped,
                            errors = summary.errors,
                            items = summary.items,
                            "processor run done"
                        ),
                        Err(RunError::Busy(_)) => {
                            if let Some((_, busy)) = stats.counts.get(&name) {
                                busy.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(e) => tracing::warn!(processor = %name, "processor run failed: {e}"),
                    }
                });
                running.insert(task_name, task);
            }
        }
        // Stopping: a run in flight is abandoned (its lock goes with its connection); the
        // sessions it did not finish are picked up by the next run anywhere.
        for (name, task) in running {
            task.abort();
            let _ = task.await;
            let cleared =
                sqlx::query("UPDATE processor_runs SET running = false WHERE processor_name = $1")
                    .bind(&name)
                    .execute(processors.pool())
                    .await;
            if let Err(e) = cleared {
                tracing::warn!(processor = %name, "cannot record the abandoned run: {e}");
            }
        }
    });
    (handle, launches)
}

async fn record_next_run(processors: &Processors, name: &str, every: Duration) {
    let result = sqlx::query(
        "INSERT INTO processor_runs (processor_name, next_run_at) \
         VALUES ($1, now() + $2 * interval '1 millisecond') \
         ON CONFLICT (processor_name) DO UPDATE SET next_run_at = EXCLUDED.next_run_at",
    )
    .bind(name)
    .bind(every.as_millis() as f64)
    .execute(processors.pool())
    .await;
    if let Err(e) = result {
        tracing::warn!(processor = name, "cannot record the next run: {e}");
    }
}
