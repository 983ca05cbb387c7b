//! Summaries of finished sessions: the `Summarizer` port, with an extractive implementation
//! (the default: no network, deterministic) and one over the Anthropic Messages API
//! (`ANTHROPIC_API_KEY`).
//!
//! A summary that fails leaves the session `parsed` with its data intact; the retry sweep asks
//! again later. A rate limit says when to come back.

mod anthropic;
mod extractive;

use std::time::Duration;

use futures::future::BoxFuture;

use crate::transcript::{ContentBlock, MessageKind, ParsedTranscript};

pub use anthropic::{AnthropicConfig, AnthropicSummarizer, retry_after};
pub use extractive::ExtractiveSummarizer;

#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("the summary API is rate limiting us{}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    #[error("the summary API stayed unavailable (HTTP {status}) after {attempts} attempts")]
    Unavailable { status: u16, attempts: u32 },
    #[error("the summary API refused the request (HTTP {status}): {body}")]
    Rejected { status: u16, body: String },
    #[error("the summary API could not be reached: {0}")]
    Transport(String),
    #[error("the summary API answered something that is not a summary: {0}")]
    Invalid(String),
}

/// Turns a parsed transcript into a short summary.
pub trait Summarizer: Send + Sync {
    fn summarize<'a>(
        &'a self,
        parsed: &'a ParsedTranscript,
    ) -> BoxFuture<'a, Result<String, SummaryError>>;
    /// For logs and the monitor.
    fn name(&self) -> &'static str;
}

/// A plain-text rendering of the main thread of a transcript, at most `limit` characters: the
/// start and the end are kept, the middle is cut.
pub fn render(parsed: &ParsedTranscript, limit: usize) -> String {
    let mut out = String::new();
    for message in parsed.messages.iter().filter(|m| !m.is_sidechain) {
        let who = match message.kind {
            MessageKind::User => "User",
            MessageKind::Assistant => "Assistant",
            MessageKind::System | MessageKind::Summary => continue,
        };
        for block in &message.blocks {
            match block {
                ContentBlock::Text { text } => out.push_str(&format!("{who}: {}\n", text.trim())),
                ContentBlock::ToolUse { name, input, .. } => {
                    let input = input.as_ref().map(|i| i.get()).unwrap_or("{}");
                    out.push_str(&format!("[{name} {}]\n", cut(input, 200)));
                }
                ContentBlock::ToolResult {
                    content, is_error, ..
                } => {
                    let tag = if *is_error {
                        "tool error"
                    } else {
                        "tool result"
                    };
                    out.push_str(&format!("[{tag}: {}]\n", cut(content.trim(), 200)));
                }
                _ => {}
            }
        }
    }
    let chars = out.chars().count();
    if chars <= limit {
        return out;
    }
    let head = limit / 3;
    let tail = limit - head;
    let start: String = out.chars().take(head).collect();
    let end: String = out.chars().skip(chars - tail).collect();
    format!(
        "{start}\n[… {} characters left out …]\n{end}",
        chars - head - tail
    )
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}
