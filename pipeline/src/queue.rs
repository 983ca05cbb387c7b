//! `PipelineQueue`: where sessions wait for the runner. `enqueue` never blocks its caller (the
//! event consumer, the API): above the capacity (50) a session is dropped, counted and logged,
//! and left for the recovery sweep, which finds every `ended` session whose run never happened.
//! After a drop the queue says when it has room again (half empty), so that the sweep drains a
//! backlog — a backfill of thousands — at the pipeline's pace instead of once a minute.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use sessionflow_stages::stage::{RunEnd, RunReport};
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::metrics::PipelineMetrics;
use crate::runner::{self, Stages};

/// Sessions that may wait at once.
pub const DEFAULT_CAPACITY: usize = 50;
/// Sessions that may run at once.
pub const DEFAULT_MAX_RUNS: usize = 3;

#[derive(Debug, Clone, Copy)]
pub struct QueueConfig {
    pub capacity: usize,
    pub max_runs: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: DEFAULT_CAPACITY,
            max_runs: DEFAULT_MAX_RUNS,
        }
    }
}

type EndHook = Box<dyn FnMut(&str, &Result<RunReport, RunEnd>) + Send>;

/// Sessions dropped and not yet swept up: set on a drop, cleared when a sweep finds no more;
/// `room` is signalled when a run ends with the queue half empty while it is set.
#[derive(Default)]
struct Backlog {
    pending: AtomicBool,
    room: Notify,
}

pub struct PipelineQueue {
    sender: mpsc::Sender<String>,
    capacity: usize,
    backlog: Arc<Backlog>,
    metrics: Arc<PipelineMetrics>,
    stop: CancellationToken,
    runner: Mutex<Option<JoinHandle<()>>>,
}

impl PipelineQueue {
    /// Starts the runner over `stages`.
    pub fn start(stages: Stages, config: QueueConfig) -> Self {
        Self::start_with_hook(stages, config, Box::new(|_, _| {}))
    }

    /// Starts the runner, calling `on_end` as each run ends.
    pub fn start_with_hook(stages: Stages, config: QueueConfig, on_end: EndHook) -> Self {
        let (sender, receiver) = mpsc::channel(config.capacity.max(1));
        let metrics = Arc::new(PipelineMetrics::default());
        let stop = CancellationToken::new();
        let ids = ReceiverStream::new(receiver).take_until(stop.clone().cancelled_owned());
        let mut on_end = on_end;
        let backlog = Arc::new(Backlog::default());
        let capacity = config.capacity.max(1);
        let watch = (sender.clone(), Arc::clone(&backlog));
        let runner = tokio::spawn(runner::run(
            ids,
            stages,
            config.max_runs,
            Arc::clone(&metrics),
            move |id, outcome| {
                on_end(id, outcome);
                let (sender, backlog) = &watch;
                if backlog.pending.load(Ordering::Relaxed) && sender.capacity() * 2 >= capacity {
                    backlog.room.notify_one();
                }
            },
        ));
        PipelineQueue {
            sender,
            capacity,
            backlog,
            metrics,
            stop,
            runner: Mutex::new(Some(runner)),
        }
    }

    /// Queues a session without waiting. False when it was dropped: the queue is full or
    /// stopped.
    pub fn enqueue(&self, session_id: impl Into<String>) -> bool {
        let session_id = session_id.into();
        match self.sender.try_send(session_id) {
            Ok(()) => {
                self.metrics.enqueued();
                true
            }
            Err(mpsc::error::TrySendError::Full(id)) => {
                self.overflow(&id);
                false
            }
            Err(mpsc::error::TrySendError::Closed(id)) => {
                self.metrics.dropped();
                tracing::warn!(session = %id, "pipeline stopped; session dropped for the recovery sweep");
                false
            }
        }
    }

    /// Leaves a session that finds the queue full to the recovery sweep: counted and logged
    /// as dropped, and the sweep told when the queue has room again.
    pub fn overflow(&self, session_id: &str) {
        self.metrics.dropped();
        self.backlog.pending.store(true, Ordering::Relaxed);
        tracing::warn!(
            session = %session_id,
            pending = self.capacity,
            "pipeline queue full; session dropped for the recovery sweep"
        );
    }

    /// Places free in the queue now.
    pub fn room(&self) -> usize {
        self.sender.capacity()
    }

    /// Sessions that may wait at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sessions waiting to run.
    pub fn depth(&self) -> usize {
        self.capacity - self.room()
    }

    /// Completes when sessions were dropped and the queue is half empty again: time for the
    /// recovery sweep to take the next part of the backlog.
    pub async fn backlog_room(&self) {
        self.backlog.room.notified().await;
    }

    /// What a recovery sweep learnt: whether sessions may still be waiting outside the queue.
    pub fn note_backlog(&self, more: bool) {
        self.backlog.pending.store(more, Ordering::Relaxed);
    }

    pub fn metrics(&self) -> &Arc<PipelineMetrics> {
        &self.metrics
    }

    /// Takes no new runs, lets the runs in flight finish, and discards the sessions still
    /// waiting (the recovery sweep finds them again).
    pub async fn stop(&self) {
        let pending = self.depth();
        self.stop.cancel();
        let runner = self.runner.lock().await.take();
        if let Some(runner) = runner
            && let Err(e) = runner.await
        {
            tracing::error!("the pipeline runner ended abnormally: {e}");
        }
        if pending > 0 {
            tracing::info!(
                pending,
                "pipeline stopped; pending sessions left for the recovery sweep"
            );
        }
    }
}
