//! parse: the transcript's bytes → a [`ParsedTranscript`], on the blocking pool so that a large
//! transcript never stalls the async workers. Bad lines are logged and skipped, never fatal.

use super::download::Downloaded;
use super::{RunEnd, Stage};
use crate::redact::{self, redact_transcript};
use crate::store::SessionRow;
use crate::transcript::{ParseOptions, ParsedTranscript, parse_bytes};

/// Bad lines logged one by one per session; the rest are counted.
const LOGGED_LINE_ERRORS: usize = 5;

pub struct Parse {
    options: ParseOptions,
    redact: redact::Mode,
}

pub struct ParsedSession {
    pub session: SessionRow,
    pub parsed: ParsedTranscript,
}

impl Parse {
    /// Parses with `options`, secrets redacted (see [`crate::redact`]).
    pub fn new(options: ParseOptions) -> Self {
        Parse {
            options,
            redact: redact::Mode::default(),
        }
    }

    /// What is redacted (`SESSIONFLOW_REDACT`): with `all` the transcript was stored redacted,
    /// and its markers count as the session's redactions.
    pub fn set_redaction(&mut self, mode: redact::Mode) {
        self.redact = mode;
    }

    /// Whether each message's JSON line is kept for `transcript_messages.raw`
    /// (`SESSIONFLOW_KEEP_RAW`; off by default: the stored transcript holds every byte, and
    /// parsing each line into jsonb again cost persist a third of its time).
    pub fn set_keep_raw(&mut self, on: bool) {
        self.options.keep_raw = on;
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
        let (options, redact) = (self.options.clone(), self.redact);
        let parsed = tokio::task::spawn_blocking(move || {
            let mut parsed = parse_bytes(&bytes, &options);
            if redact.rows() {
                redact_transcript(&mut parsed, redact.blob());
            }
            parsed
        })
        .await;
        let parsed = match parsed {
            Ok(done) => done,
            Err(e) => return Err(RunEnd::Failed(format!("Parse failed: {e}"))),
        };
        if !parsed.redactions.is_empty() {
            tracing::info!(session = %session.id, redactions = ?parsed.redactions, "secrets redacted");
        }
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
