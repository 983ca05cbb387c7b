//! parse: the transcript's bytes → a [`ParsedTranscript`], on the blocking pool so that a large
//! transcript never stalls the async workers. Bad lines are logged and skipped, never fatal.

use super::download::Downloaded;
use super::{RunEnd, Stage};
use crate::store::SessionRow;
use crate::transcript::{ParseOptions, ParsedTranscript, parse_bytes};

/// Bad lines logged one by one per session; the rest are counted.
const LOGGED_LINE_ERRORS: usize = 5;

pub struct Parse {
    options: ParseOptions,
}

pub struct ParsedSession {
    pub session: SessionRow,
    pub parsed: ParsedTranscript,
}

impl Parse {
    pub fn new(options: ParseOptions) -> Self {
        Parse { options }
    }
}

impl Stage for Parse {
    type Input = Downloaded;
    type Output = ParsedSession;

    fn name(&self) -> &'static str {
        "parse"
    }

    async fn run(&self, input: Downloaded) -> Result<ParsedSession, RunEnd> {
        let Downloaded { session, bytes } = input;
        let options = self.options.clone();
        let parsed = match tokio::task::spawn_blocking(move || parse_bytes(&bytes, &options)).await
        {
            Ok(parsed) => parsed,
            Err(e) => return Err(RunEnd::Failed(format!("Parse failed: {e}"))),
        };
        for error in parsed.line_errors.iter().take(LOGGED_LINE_ERRORS) {
            tracing::warn!(session = %session.id, line = error.line_number, "skipped a transcript line: {}", error.error);
        }
        if parsed.line_errors.len() > LOGGED_LINE_ERRORS {
            tracing::warn!(
                session = %session.id,
                "skipped {} more bad transcript lines",
                parsed.line_errors.len() - LOGGED_LINE_ERRORS
            );
        }
        Ok(ParsedSession { session, parsed })
    }
}
