//! What the parser produces: a transcript's messages and their content blocks, the lines it had
//! to skip and why, the session's metadata, its deduplicated token usage and its stats.
//!
//! These are owned values with no tie to the input bytes, ready to be persisted, serialized as
//! the `parsed.json` backup, or summarized by `sessionflow inspect`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::stats::Stats;
use super::usage::{ModelUsage, UsageLedger};

/// Everything one transcript file holds, parsed.
#[derive(Debug, Serialize)]
pub struct ParsedTranscript {
    pub metadata: Metadata,
    pub messages: Vec<Message>,
    pub line_errors: Vec<LineError>,
    pub records: RecordCounts,
    /// Token usage per API response, deduplicated; see [`UsageLedger`].
    pub usage: UsageLedger,
    /// Usage and cost per model, in order of first appearance.
    pub models: Vec<ModelUsage>,
    pub stats: Stats,
    /// Secrets taken out of the messages, by kind ([`crate::redact`]; empty when redaction is
    /// off): kept with the session.
    #[serde(skip)]
    pub redactions: std::collections::BTreeMap<&'static str, u64>,
}

impl ParsedTranscript {
    /// Number of content blocks over all messages.
    pub fn content_block_count(&self) -> usize {
        self.messages.iter().map(|m| m.blocks.len()).sum()
    }
}

/// Session-level facts read off the lines: the first value seen for each, and the span of the
/// timestamps.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub session_id: Option<String>,
    pub cwd: Option<String>,
    /// Claude Code version that wrote the transcript.
    pub version: Option<String>,
    pub git_branch: Option<String>,
    pub first_timestamp: Option<DateTime<Utc>>,
    pub last_timestamp: Option<DateTime<Utc>>,
}

/// A line that could not be used, with the reason. Line numbers start at 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineError {
    pub line_number: u64,
    pub error: String,
}

/// How the lines of a file were accounted for. Every line lands in exactly one bucket:
/// `lines == blank + messages + merged + duplicates + bookkeeping + unknown + errors`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCounts {
    /// Lines read, blank ones included.
    pub lines: u64,
    pub blank: u64,
    /// Lines that started a message.
    pub messages: u64,
    /// Assistant lines folded into an earlier line's message (same `message.id`).
    pub merged: u64,
    /// Lines whose `uuid` had already been seen in the file: the same entry written again.
    pub duplicates: u64,
    /// Known record types that carry no message (snapshots, queue operations, progress, …).
    pub bookkeeping: BTreeMap<String, u64>,
    /// Record types this parser has never heard of; counted, skipped, never an error.
    pub unknown: BTreeMap<String, u64>,
    /// Lines recorded in `line_errors`.
    pub errors: u64,
}

/// The kind of transcript record a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    User,
    Assistant,
    System,
    Summary,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::User => "user",
            MessageKind::Assistant => "assistant",
            MessageKind::System => "system",
            MessageKind::Summary => "summary",
        }
    }
}

/// One message. An assistant reply that Claude Code wrote over several lines sharing one
/// `message.id` is a single message holding all their blocks in line order.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// The line the message starts on.
    pub line_number: u64,
    /// Position among the file's messages, from 0.
    pub ordinal: u32,
    pub kind: MessageKind,
    pub uuid: Option<String>,
    pub parent_uuid: Option<String>,
    /// The API's `message.id` (assistant replies).
    pub api_message_id: Option<String>,
    pub request_id: Option<String>,
    pub role: Option<String>,
    pub model: Option<String>,
    /// `system` records: their subtype (`stop_hook_summary`, `compact_boundary`, …).
    pub subtype: Option<String>,
    pub timestamp: Option<DateTime<Utc>>,
    pub is_sidechain: bool,
    pub is_meta: bool,
    pub is_compact_summary: bool,
    /// The usage this reply was billed with: among its lines, the one with the largest total.
    pub usage: Option<TokenUsage>,
    pub blocks: Vec<ContentBlock>,
    /// The first line's JSON, when the parser was asked to keep it.
    pub raw: Option<String>,
}

impl Message {
    pub fn has_text(&self) -> bool {
        self.blocks
            .iter()
            .any(|b| matches!(b, ContentBlock::Text { .. }))
    }
    pub fn has_thinking(&self) -> bool {
        self.blocks
            .iter()
            .any(|b| matches!(b, ContentBlock::Thinking { .. }))
    }
    pub fn has_tool_use(&self) -> bool {
        self.blocks
            .iter()
            .any(|b| matches!(b, ContentBlock::ToolUse { .. }))
    }
    pub fn has_tool_result(&self) -> bool {
        self.blocks
            .iter()
            .any(|b| matches!(b, ContentBlock::ToolResult { .. }))
    }
}

/// One content block of a message.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
    },
    /// `thinking`, and `redacted_thinking` with an empty text.
    Thinking {
        thinking: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Option<Box<RawValue>>,
    },
    ToolResult {
        tool_use_id: String,
        /// The result's text; text parts of a list are joined by newlines.
        content: String,
        is_error: bool,
    },
    /// The picture itself is not kept, only its type.
    Image {
        media_type: Option<String>,
    },
    /// A block type this parser does not model, kept by name.
    Other {
        kind: String,
    },
}

impl ContentBlock {
    /// The block's type as stored and reported.
    pub fn block_type(&self) -> &str {
        match self {
            ContentBlock::Text { .. } => "text",
            ContentBlock::Thinking { .. } => "thinking",
            ContentBlock::ToolUse { .. } => "tool_use",
            ContentBlock::ToolResult { .. } => "tool_result",
            ContentBlock::Image { .. } => "image",
            ContentBlock::Other { kind } => kind,
        }
    }
}

/// Token counts of one API response. `cache_creation_input_tokens` includes the 1-hour part.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    /// The part of `cache_creation_input_tokens` written to the 1-hour cache.
    pub cache_creation_1h_tokens: u64,
}

impl TokenUsage {
    /// All four counts added: the measure by which duplicate entries are compared.
    pub fn total(&self) -> u64 {
        self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
    }

    pub fn add(&mut self, other: &TokenUsage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
        self.cache_creation_1h_tokens += other.cache_creation_1h_tokens;
    }
}
