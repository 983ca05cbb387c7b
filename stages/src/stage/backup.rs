//! backup: the parse result as JSON to `transcripts/{workspace}/{session}/parsed.json`. Best
//! effort: a failure is logged and the run still completes. A session deleted while its run
//! was under way keeps no backup: written after the deletion removed the session's blobs, it is
//! removed again.

use std::sync::Arc;

use bytes::Bytes;

use super::{RunEnd, Stage, Summarized};
use sessionflow_protocol::ids::Id;

use crate::blob::{BlobStore, parsed_key};
use crate::store::Store;

pub struct Backup {
    store: Store,
    blobs: Arc<dyn BlobStore>,
}

/// How a run that reached the end went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub session_id: String,
    pub messages: usize,
    pub summarized: bool,
    pub backed_up: bool,
}

impl Backup {
    pub fn new(store: Store, blobs: Arc<dyn BlobStore>) -> Self {
        Backup { store, blobs }
    }

    /// Removes the backup just written under `key` if the session was deleted meanwhile: its
    /// deletion either saw the backup (and queued it) or committed before this looks.
    async fn keep_only_if_kept(&self, id: &str, key: &str) -> bool {
        match self.store.session(id).await {
            Ok(Some(_)) => true,
            Ok(None) => {
                if let Err(e) = self.blobs.delete(key).await {
                    tracing::warn!(session = %id, "backup of a deleted session not removed: {e}");
                }
                false
            }
            Err(e) => {
                tracing::warn!(session = %id, "backup written; cannot tell if the session is still kept: {e}");
                true
            }
        }
    }
}

impl Stage for Backup {
    type Input = Summarized;
    type Output = RunReport;

    fn name(&self) -> &'static str {
        "backup"
    }

    async fn run(&self, input: Summarized) -> Result<RunReport, RunEnd> {
        let session = &input.parsed.session;
        let ids = Id::parse("workspace_id", &session.workspace_id)
            .and_then(|w| Ok((w, Id::parse("session_id", &session.id)?)));
        let messages = input.parsed.parsed.messages.len();
        // Serializing a large session takes milliseconds of CPU: on the blocking pool, not on
        // the threads that drive every run's I/O.
        let parsed = input.parsed.parsed;
        let json = tokio::task::spawn_blocking(move || serde_json::to_vec(&parsed))
            .await
            .map_err(|e| e.to_string())
            .and_then(|json| json.map_err(|e| e.to_string()));
        let backed_up = match (ids, json) {
            // A session recorded before the id rule, with an id a key cannot hold.
            (Err(e), _) => {
                tracing::warn!(session = %session.id, "backup skipped: {e}");
                false
            }
            (Ok((workspace, id)), Ok(json)) => match self
                .blobs
                .put(&parsed_key(&workspace, &id), Bytes::from(json))
                .await
            {
                Ok(()) => {
                    self.keep_only_if_kept(id.as_str(), &parsed_key(&workspace, &id))
                        .await
                }
                Err(e) => {
                    tracing::warn!(session = %session.id, "backup skipped: {e}");
                    false
                }
            },
            (_, Err(e)) => {
                tracing::warn!(session = %session.id, "backup skipped: {e}");
                false
            }
        };
        Ok(RunReport {
            session_id: session.id.clone(),
            messages,
            summarized: input.summary.is_some(),
            backed_up,
        })
    }
}
