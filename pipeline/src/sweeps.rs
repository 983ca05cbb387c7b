//! The background sweeps every worker runs, so that nothing is lost when a queue overflows or a
//! worker dies: the recovery sweep (at start and every 15 s), which also rescues what a worker
//! that went silent held (its claims and its queue) within a minute of its death; the sweep of
//! events recorded but never handled (the stream lost them, or their worker died); the removal
//! of uploads staged and never finished and of deleted sessions' blobs the blob store failed to
//! remove; and the summary retry sweep, which also finishes what a worker that died after
//! persisting left `parsed`.

use std::sync::Arc;
use std::time::Duration;

use sessionflow_stages::blob::BlobStore;
use sessionflow_stages::store::{Store, StoreError};
use sessionflow_stages::summarize::Summarizer;
use sessionflow_stages::transcript::{ParseOptions, parse_bytes};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::events::EventProcessor;
use crate::health::EVENTS_LATE;
use crate::queue::PipelineQueue;

/// How long a live worker's run may sit `parsing` before it is presumed hung.
pub const STUCK_PARSING: Duration = Duration::from_secs(10 * 60);
/// How often the recovery, unhandled-event and summary retry sweeps run.
pub const RECOVER_EVERY: Duration = Duration::from_secs(15);
/// How long an accepted event may wait for the stream to bring it before any worker handles
/// it from Postgres: longer than health's [`EVENTS_LATE`], so that events the stream lost are
/// reported (for 15 s at least) before a sweep quietly makes up for them.
pub const UNHANDLED_AFTER: Duration = Duration::from_secs(45);
const _: () = assert!(UNHANDLED_AFTER.as_secs() >= EVENTS_LATE.as_secs() + 15);
/// Events the unhandled-event sweep takes at once.
const UNHANDLED_BATCH: i64 = 200;
/// How old an upload staged and never renamed or discarded must be before it is removed (its
/// writer died).
pub const STALE_UPLOAD: Duration = Duration::from_secs(60 * 60);
/// How long a parsed session may wait for its summary before the retry sweep asks again.
pub const SUMMARY_RETRY_AFTER: Duration = Duration::from_secs(10 * 60);
/// How long a session a sweep queued may wait for its run before a sweep queues it again.
pub const REQUEUE_AFTER: Duration = Duration::from_secs(10 * 60);

/// One pass of the recovery sweep of `worker`: enqueues the `ended` sessions whose run never
/// happened, died with its worker, or hung, as many as the queue has room for. Returns how many
/// were enqueued.
pub async fn recover(
    store: &Store,
    queue: &PipelineQueue,
    requeue_after: Duration,
    stuck: Duration,
    worker: &str,
) -> Result<usize, StoreError> {
    let room = queue.room();
    if room == 0 {
        queue.note_backlog(true);
        return Ok(0);
    }
    let taken = store
        .recovery_candidates(requeue_after, stuck, room as i64, worker)
        .await?;
    // As many as there was room for: more may be waiting.
    queue.note_backlog(taken.len() >= room);
    let mut enqueued = 0;
    for session in taken {
        if let Some(from) = &session.from {
            tracing::warn!(session = %session.id, from = %from, "rescued a session held by a worker that went silent");
        }
        if queue.enqueue(session.id.clone()) {
            enqueued += 1;
        } else {
            store
                .release_queued(worker, Some(std::slice::from_ref(&session.id)))
                .await?;
        }
    }
    if enqueued > 0 {
        tracing::info!(enqueued, "recovery sweep enqueued sessions");
    }
    Ok(enqueued)
}

/// One pass of the summary retry sweep of `worker`: summarizes `parsed` sessions still without
/// a summary (untouched for `older_than`, or left by a worker that died), from their stored
/// transcript, without touching their rows. Returns how many got one.
pub async fn retry_summaries(
    store: &Store,
    blobs: &dyn BlobStore,
    summarizer: &dyn Summarizer,
    older_than: Duration,
    worker: &str,
) -> Result<usize, StoreError> {
    let mut summarized = 0;
    for (id, key, claim) in store.summary_candidates(older_than, 20, worker).await? {
        let Some(key) = key else {
            store.release_claim(&id, &claim).await?;
            continue;
        };
        let bytes = match blobs.get(&key).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(session = %id, "summary retry: {e}");
                store.release_claim(&id, &claim).await?;
                continue;
            }
        };
        let parsed = match tokio::task::spawn_blocking(move || {
            parse_bytes(&bytes, &ParseOptions::default())
        })
        .await
        {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::warn!(session = %id, "summary retry: parse failed: {e}");
                store.release_claim(&id, &claim).await?;
                continue;
            }
        };
        match summarizer.summarize(&parsed).await {
            Ok(summary) => {
                if store.set_summary(&id, &summary).await? {
                    summarized += 1;
                }
            }
            Err(e) => {
                tracing::warn!(session = %id, "summary retry deferred again: {e}");
                store.release_claim(&id, &claim).await?;
            }
        }
    }
    Ok(summarized)
}

/// Removes uploads staged over `older_than` ago whose writer died between staging and renaming.
/// Returns how many were removed.
pub async fn remove_stale_uploads(
    store: &Store,
    blobs: &dyn BlobStore,
    older_than: Duration,
) -> Result<usize, StoreError> {
    let mut removed = 0;
    for key in store.stale_uploads(older_than, 100).await? {
        match blobs.delete(&key).await {
            Ok(()) => {
                store.unstage_upload(&key).await?;
                removed += 1;
            }
            Err(e) => tracing::warn!("stale upload {key} not removed, will retry: {e}"),
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed uploads staged and never finished");
    }
    Ok(removed)
}

/// What a worker's sweeps work with.
pub struct Sweeper {
    pub store: Store,
    pub queue: Arc<PipelineQueue>,
    pub blobs: Arc<dyn BlobStore>,
    pub summarizer: Arc<dyn Summarizer>,
    pub events: Arc<EventProcessor>,
    /// The worker whose sweeps these are (its heartbeat's id).
    pub worker: String,
    /// How often recovery and the unhandled-event sweep run ([`RECOVER_EVERY`]).
    pub every: Duration,
}

/// Runs the sweeps until `stop`: all three at once and every `every`, and recovery again
/// whenever the queue has room for a backlog of dropped sessions.
pub fn spawn(sweeper: Sweeper, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Sweeper {
            store,
            queue,
            blobs,
            summarizer,
            events,
            worker,
            every,
        } = sweeper;
        let mut tick = tokio::time::interval(every);
        loop {
            let backlog_only = tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => false,
                () = queue.backlog_room() => true,
            };
            if let Err(e) = recover(&store, &queue, REQUEUE_AFTER, STUCK_PARSING, &worker).await {
                tracing::warn!("recovery sweep failed, will retry: {e}");
            }
            if backlog_only {
                continue;
            }
            if let Err(e) = events
                .handle_unhandled(UNHANDLED_AFTER, UNHANDLED_BATCH)
                .await
            {
                tracing::warn!("unhandled event sweep failed, will retry: {e}");
            }
            if let Err(e) = remove_stale_uploads(&store, blobs.as_ref(), STALE_UPLOAD).await {
                tracing::warn!("stale upload sweep failed, will retry: {e}");
            }
            if let Err(e) = crate::deletion::remove_queued_blobs(&store, blobs.as_ref()).await {
                tracing::warn!("deleted sessions' blob sweep failed, will retry: {e}");
            }
            if let Err(e) = retry_summaries(
                &store,
                blobs.as_ref(),
                summarizer.as_ref(),
                SUMMARY_RETRY_AFTER,
                &worker,
            )
            .await
            {
                tracing::warn!("summary retry sweep failed, will retry: {e}");
            }
        }
    })
}
