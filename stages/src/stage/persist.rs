//! persist: the parse result → rows, in one transaction that also moves the session
//! `ended → parsed` with its stats. A failure fails the session with `Persist failed: …` and
//! leaves nothing half-written.

use super::{ParsedSession, RunEnd, Stage};
use crate::store::{PersistOutcome, Store};

pub struct Persist {
    store: Store,
}

impl Persist {
    pub fn new(store: Store) -> Self {
        Persist { store }
    }
}

impl Stage for Persist {
    type Input = ParsedSession;
    type Output = ParsedSession;

    fn name(&self) -> &'static str {
        "persist"
    }

    async fn run(&self, input: ParsedSession) -> Result<ParsedSession, RunEnd> {
        let persisted = self
            .store
            .persist(
                &input.session.id,
                &input.parsed,
                input.session.claim.as_deref().unwrap_or_default(),
            )
            .await;
        match persisted {
            Ok(PersistOutcome::Persisted { .. }) => Ok(input),
            Ok(PersistOutcome::Lost) => Err(RunEnd::Stopped(format!(
                "session {} was moved by another process before persisting",
                input.session.id
            ))),
            Err(e) => Err(RunEnd::Failed(format!("Persist failed: {e}"))),
        }
    }
}
