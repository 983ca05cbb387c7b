//! download: the claimed session → its transcript's bytes from the blob store. A failed download
//! fails the session with `S3 download failed: …`.

use std::sync::Arc;

use bytes::Bytes;

use super::{RunEnd, Stage};
use crate::blob::BlobStore;
use crate::store::{SessionRow, Store};

pub struct Download {
    store: Store,
    blobs: Arc<dyn BlobStore>,
}

pub struct Downloaded {
    pub session: SessionRow,
    pub bytes: Bytes,
}

impl Download {
    pub fn new(store: Store, blobs: Arc<dyn BlobStore>) -> Self {
        Download { store, blobs }
    }
}

impl Stage for Download {
    type Input = SessionRow;
    type Output = Downloaded;

    fn name(&self) -> &'static str {
        "download"
    }

    async fn run(&self, session: SessionRow) -> Result<Downloaded, RunEnd> {
        let key = session.transcript_key.clone().unwrap_or_default();
        match self.blobs.get(&key).await {
            Ok(bytes) => Ok(Downloaded { session, bytes }),
            Err(e) => {
                let reason = format!("S3 download failed: {e}");
                fail(&self.store, &session.id, reason).await
            }
        }
    }
}

/// Marks the session failed with `reason` and ends the run; if even that cannot be written, the
/// run is deferred to the recovery sweep.
pub(super) async fn fail<T>(store: &Store, id: &str, reason: String) -> Result<T, RunEnd> {
    match store.fail_session(id, &reason).await {
        Ok(_) => Err(RunEnd::Failed(reason)),
        Err(e) => Err(RunEnd::Deferred(format!(
            "{reason}; and recording that failed: {e}"
        ))),
    }
}
