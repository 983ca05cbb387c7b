//! The background sweeps every worker runs, so that nothing is lost when a queue overflows or a
//! worker dies: the recovery sweep (at start and every minute) and the summary retry sweep.

use std::sync::Arc;
use std::time::Duration;

use sessionflow_stages::blob::BlobStore;
use sessionflow_stages::store::{Store, StoreError};
use sessionflow_stages::summarize::Summarizer;
use sessionflow_stages::transcript::{ParseOptions, parse_bytes};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::queue::PipelineQueue;

/// How long a session may sit `parsing` before its worker is presumed dead.
pub const STUCK_PARSING: Duration = Duration::from_secs(10 * 60);
/// How long a parsed session may wait for its summary before the retry sweep asks again.
pub const SUMMARY_RETRY_AFTER: Duration = Duration::from_secs(10 * 60);
/// How long a session a sweep queued may wait for its run before a sweep queues it again.
pub const REQUEUE_AFTER: Duration = Duration::from_secs(10 * 60);

/// One pass of the recovery sweep: enqueues the `ended` sessions whose run never happened or
/// died, as many as the queue has room for. Returns how many were enqueued.
pub async fn recover(
    store: &Store,
    queue: &PipelineQueue,
    requeue_after: Duration,
    stuck: Duration,
) -> Result<usize, StoreError> {
    let room = queue.capacity().saturating_sub(queue.depth());
    if room == 0 {
        queue.note_backlog(true);
        return Ok(0);
    }
    let ids = store
        .recovery_candidates(requeue_after, stuck, room as i64)
        .await?;
    // As many as there was room for: more may be waiting.
    queue.note_backlog(ids.len() >= room);
    let mut enqueued = 0;
    for id in ids {
        if queue.enqueue(id) {
            enqueued += 1;
        }
    }
    if enqueued > 0 {
        tracing::info!(enqueued, "recovery sweep enqueued sessions");
    }
    Ok(enqueued)
}

/// One pass of the summary retry sweep: summarizes `parsed` sessions still without a summary,
/// from their stored transcript, without touching their rows. Returns how many got one.
pub async fn retry_summaries(
    store: &Store,
    blobs: &dyn BlobStore,
    summarizer: &dyn Summarizer,
    older_than: Duration,
) -> Result<usize, StoreError> {
    let mut summarized = 0;
    for (id, _workspace, key) in store.summary_candidates(older_than, 20).await? {
        let Some(key) = key else { continue };
        let bytes = match blobs.get(&key).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(session = %id, "summary retry: {e}");
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
                continue;
            }
        };
        match summarizer.summarize(&parsed).await {
            Ok(summary) => {
                if store.set_summary(&id, &summary).await? {
                    summarized += 1;
                }
            }
            Err(e) => tracing::warn!(session = %id, "summary retry deferred again: {e}"),
        }
    }
    Ok(summarized)
}

/// Runs both sweeps: recovery at once, every `every` and whenever the queue has room for a
/// backlog of dropped sessions; summaries every `every`; until `stop`.
pub fn spawn(
    store: Store,
    queue: Arc<PipelineQueue>,
    blobs: Arc<dyn BlobStore>,
    summarizer: Arc<dyn Summarizer>,
    every: Duration,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            let backlog_only = tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => false,
                () = queue.backlog_room() => true,
            };
            if let Err(e) = recover(&store, &queue, REQUEUE_AFTER, STUCK_PARSING).await {
                tracing::warn!("recovery sweep failed, will retry: {e}");
            }
            if backlog_only {
                continue;
            }
            if let Err(e) = retry_summaries(
                &store,
                blobs.as_ref(),
                summarizer.as_ref(),
                SUMMARY_RETRY_AFTER,
            )
            .await
            {
                tracing::warn!("summary retry sweep failed, will retry: {e}");
            }
        }
    })
}
