//! fetch: session id → the claimed session row. A session that is unknown, has no transcript,
//! is not `ended`, or is held by another run stops the run with nothing changed. The claim names
//! the worker that holds it.

use super::{RunEnd, Stage};
use crate::store::{Claim, SessionRow, Store};

pub struct Fetch {
    store: Store,
    worker: String,
}

impl Fetch {
    pub fn new(store: Store, worker: &str) -> Self {
        Fetch {
            store,
            worker: worker.to_owned(),
        }
    }
}

impl Stage for Fetch {
    type Input = String;
    type Output = SessionRow;

    fn name(&self) -> &'static str {
        "fetch"
    }

    async fn run(&self, id: String) -> Result<SessionRow, RunEnd> {
        match self.store.claim_for_parse(&id, &self.worker).await {
            Ok(Claim::Claimed(session)) => Ok(*session),
            Ok(Claim::NotFound) => Err(RunEnd::Stopped(format!("session {id} not found"))),
            Ok(Claim::NoTranscript) => Err(RunEnd::Stopped(format!(
                "session {id} has no transcript uploaded"
            ))),
            Ok(Claim::NotEnded(lifecycle)) => Err(RunEnd::Stopped(format!(
                "session {id} is {lifecycle}, not ended"
            ))),
            Ok(Claim::AlreadyParsing) => Err(RunEnd::Stopped(format!(
                "session {id} is being parsed by another run"
            ))),
            Err(e) => Err(RunEnd::Deferred(format!("session {id}: {e}"))),
        }
    }
}
