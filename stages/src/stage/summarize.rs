//! summarize: the persisted session → its summary, moving `parsed → summarized`. A summary that
//! fails leaves the session `parsed` with its data intact (the retry sweep comes back later) and
//! the run goes on to backup.

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
                Ok(_) => Some(summary),
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
        Ok(Summarized { parsed, summary })
    }
}
