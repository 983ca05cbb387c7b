//! summarize: the persisted session → its summary, moving `parsed → summarized` (which ends the
//! run's claim). A summary that fails leaves the session `parsed` with its data intact, lets go
//! of the claim (the retry sweep comes back later) and the run goes on to backup.

use std::sync::Arc;

use super::{ParsedSession, RunEnd, Stage};
use crate::store::Store;
use crate::summarize::Summarizer;

pub struct Summarize {
    store: Store,
    summarizer: Arc<dyn Summarizer>,
}

pub struct Summarized {
    pub parsed: ParsedSession,
    /// `None` when summarizing failed this time.
    pub summary: Option<String>,
}

impl Summarize {
    pub fn new(store: Store, summarizer: Arc<dyn Summarizer>) -> Self {
        Summarize { store, summarizer }
    }
}

impl Stage for Summarize {
    type Input = ParsedSession;
    type Output = Summarized;

    fn name(&self) -> &'static str {
        "summarize"
    }

    async fn run(&self, parsed: ParsedSession) -> Result<Summarized, RunEnd> {
        let id = &parsed.session.id;
        let summary = match self.summarizer.summarize(&parsed.parsed).await {
            Ok(summary) => match self.store.set_summary(id, &summary).await {
                Ok(true) => Some(summary),
                // Reset under the run (a reparse asked for while it summarized): the summary
                // belongs to rows that are gone, and the session is not summarized.
                Ok(false) => {
                    tracing::warn!(session = %id, "the session is no longer parsed; its summary is dropped");
                    None
                }
                Err(e) => {
                    tracing::warn!(session = %id, "could not record the summary: {e}");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(session = %id, summarizer = self.summarizer.name(), "summary deferred: {e}");
                None
            }
        };
        if summary.is_none()
            && let Some(claim) = &parsed.session.claim
            && let Err(e) = self.store.release_claim(id, claim).await
        {
            // Released with the worker's death or the retry sweep's 10 minutes anyway.
            tracing::warn!(session = %id, "could not let go of the session: {e}");
        }
        Ok(Summarized { parsed, summary })
    }
}
