//! download: the claimed session → its transcript's bytes from the blob store. A failed download
//! fails the session with `S3 download failed: …`.

use std::sync::Arc;

use bytes::Bytes;

use super::{RunEnd, Stage};
use crate::blob::BlobStore;
use crate::store::SessionRow;

pub struct Download {
    blobs: Arc<dyn BlobStore>,
}

pub struct Downloaded {
    pub session: SessionRow,
    pub bytes: Bytes,
}

impl Download {
    pub fn new(blobs: Arc<dyn BlobStore>) -> Self {
        Download { blobs }
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
            Err(e) => Err(RunEnd::Failed(format!("S3 download failed: {e}"))),
        }
    }
}
