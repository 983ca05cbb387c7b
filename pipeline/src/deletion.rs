//! Deleting sessions for good — asked for (`DELETE /api/sessions/{id}`, `sessionflow delete`)
//! or by retention (`SESSIONFLOW_RETENTION_DAYS`) — and removing their blobs.
//!
//! The store deletes the rows and writes the tombstone in one transaction, queueing the blobs
//! (raw transcript, parsed backup); they are removed right after the commit, and whatever the
//! blob store could not remove then is retried by the sweep every worker runs. A run in flight
//! for a deleted session writes nothing: persist and the summary need the session's row, and
//! the backup removes what it wrote when the row is gone.

use std::sync::Arc;
use std::time::Duration;

use sessionflow_stages::blob::BlobStore;
use sessionflow_stages::store::{Deleted, Store, StoreError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often retention runs (and once at start).
pub const RETENTION_EVERY: Duration = Duration::from_secs(24 * 60 * 60);
/// Sessions retention deletes in one go.
const RETENTION_BATCH: i64 = 100;
/// Queued blob removals one sweep pass takes.
const BLOB_BATCH: i64 = 200;

/// Deletes session `id` (in `workspaces`, none: any) for good, then its blobs. None when there
/// is no such session.
pub async fn delete_session(
    store: &Store,
    blobs: &dyn BlobStore,
    id: &str,
    workspaces: Option<&[String]>,
    reason: &str,
    by: &str,
) -> Result<Option<Deleted>, StoreError> {
    let deleted = store.delete_session(id, workspaces, reason, by).await?;
    if let Some(deleted) = &deleted {
        remove_blobs(store, blobs, &deleted.blobs).await?;
        tracing::info!(
            session = %deleted.id,
            workspace = %deleted.workspace_id,
            messages = deleted.messages,
            reason,
            by,
            "session deleted for good"
        );
    }
    Ok(deleted)
}

/// Removes `keys` from the blob store and forgets the ones removed; the others stay queued for
/// [`remove_queued_blobs`]. Returns how many were removed.
async fn remove_blobs(
    store: &Store,
    blobs: &dyn BlobStore,
    keys: &[String],
) -> Result<usize, StoreError> {
    let mut removed = Vec::with_capacity(keys.len());
    for key in keys {
        match blobs.delete(key).await {
            Ok(()) => removed.push(key.clone()),
            Err(e) => tracing::warn!("blob {key} of a deleted session not removed yet: {e}"),
        }
    }
    if !removed.is_empty() {
        store.blobs_deleted(&removed).await?;
    }
    Ok(removed.len())
}

/// One pass of the sweep that removes deleted sessions' blobs still queued (the blob store
/// failed when they were deleted). Returns how many it removed.
pub async fn remove_queued_blobs(
    store: &Store,
    blobs: &dyn BlobStore,
) -> Result<usize, StoreError> {
    let keys = store.blobs_to_delete(BLOB_BATCH).await?;
    if keys.is_empty() {
        return Ok(0);
    }
    let removed = remove_blobs(store, blobs, &keys).await?;
    if removed > 0 {
        tracing::info!(removed, "removed blobs of deleted sessions");
    }
    Ok(removed)
}

/// Deletes every session last active more than `keep` ago. Returns how many.
pub async fn apply_retention(
    store: &Store,
    blobs: &dyn BlobStore,
    keep: Duration,
) -> Result<usize, StoreError> {
    let mut deleted = 0;
    loop {
        let expired = store.expired_sessions(keep, RETENTION_BATCH).await?;
        let found = expired.len();
        for id in expired {
            if delete_session(store, blobs, &id, None, "retention", "retention")
                .await?
                .is_some()
            {
                deleted += 1;
            }
        }
        if found < RETENTION_BATCH as usize {
            break;
        }
    }
    tracing::info!(
        deleted,
        keep_days = keep.as_secs_f64() / 86_400.0,
        "retention: sessions last active before the retention period deleted"
    );
    Ok(deleted)
}

/// How soon retention tries again after failing (the database was away, say).
const RETENTION_RETRY: Duration = Duration::from_secs(10 * 60);

/// Runs retention at start and every [`RETENTION_EVERY`] (or every `keep`, when that is
/// shorter) until `stop`.
pub fn spawn_retention(
    store: Store,
    blobs: Arc<dyn BlobStore>,
    keep: Duration,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            wait = match apply_retention(&store, blobs.as_ref(), keep).await {
                Ok(_) => RETENTION_EVERY.min(keep),
                Err(e) => {
                    tracing::warn!("retention failed, will retry in 10 minutes: {e}");
                    RETENTION_RETRY
                }
            };
        }
    })
}
