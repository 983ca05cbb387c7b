//! Session processors: independent jobs that derive data from parsed sessions on their own
//! schedule ([`usage`]: token usage and cost per response; [`tools`]: calls, failures and files
//! per tool; [`search`]: the search index). A run takes the processor's
//! Postgres advisory lock without waiting (a second run at once is refused), looks only at
//! sessions updated since the processor last saw them, skips those whose transcript hash it
//! already processed, and records per session what it made of it (`processor_state`). A failure
//! or panic on one session is recorded and the run goes on; after 5 failed attempts on one
//! transcript a session is parked for that processor until its transcript changes. A scheduled
//! run gives way to a busy pipeline, a few seconds a session at most
//! ([`Processors::run_scheduled`]).

mod lock;
mod offline;
mod registry;
pub mod report;
pub mod scheduler;
pub mod search;
pub mod tools;
pub mod usage;

pub use registry::{BUSY_WITHIN, MAX_YIELD, Processors};

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde::Serialize;
use sessionflow_stages::blob::BlobStore;
use sqlx::PgPool;

/// Failed attempts after which a session is parked for a processor.
pub const MAX_ATTEMPTS: i32 = 5;

/// One session, as a processor gets it: ids, and its stored transcript on demand.
pub struct SessionInput {
    pub id: String,
    pub workspace_id: String,
    source: Source,
    pool: PgPool,
}

/// Where a session's transcript is read from.
enum Source {
    /// The server's blob store (the key, if the session has one).
    Blob(Arc<dyn BlobStore>, Option<String>),
    /// Files on disk (`sessionflow process`): the main transcript and its subagent files.
    Files(crate::capture::discover::LocalSession),
}

impl SessionInput {
    /// The database, to read the session's rows and write what the processor makes.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The raw transcript (with its subagent files), from the blob store or from disk.
    pub async fn transcript(&self) -> Result<Bytes, String> {
        match &self.source {
            Source::Blob(blobs, key) => {
                let key = key
                    .as_deref()
                    .ok_or_else(|| format!("session {} has no stored transcript", self.id))?;
                blobs.get(key).await.map_err(|e| e.to_string())
            }
            Source::Files(session) => {
                let session = session.clone();
                let read = tokio::task::spawn_blocking(move || session.body())
                    .await
                    .map_err(|e| e.to_string())?;
                read.map(Bytes::from).map_err(|e| e.to_string())
            }
        }
    }
}

/// A job over sessions.
pub trait Processor: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// How often the scheduler runs it unless told otherwise.
    fn default_interval(&self) -> Duration;
    /// Processes one session; returns how many items it produced.
    fn process<'a>(&'a self, session: &'a SessionInput) -> BoxFuture<'a, Result<u64, String>>;
    /// Whether it can work from transcript files alone (`sessionflow process`), without the
    /// rows the pipeline stores.
    fn works_offline(&self) -> bool {
        false
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// Sessions looked at (changed since the last run, or failed before).
    pub scanned: u64,
    pub processed: u64,
    /// Looked at, but their transcript was the one already processed.
    pub skipped: u64,
    pub errors: u64,
    pub items: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no processor is called {0:?}")]
    Unknown(String),
    #[error("processor {0} is already running")]
    Busy(String),
    #[error("processor {0} reads the rows the pipeline stores; run it on a server")]
    NotOffline(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] sessionflow_stages::store::StoreError),
}
