//! Turning transcript bytes into a [`ParsedTranscript`], line by line.
//!
//! A line either becomes (part of) a message, is counted as a known or unknown record type and
//! skipped, or is recorded as a [`LineError`] and skipped; nothing a line holds can stop the parse.
//! [`parse_reader`] streams from any reader and refuses an over-long line without buffering more
//! than the limit of it; [`parse_bytes`] parses bytes already in memory.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use memchr::memchr;

use super::model::{
    ContentBlock, LineError, Message, MessageKind, Metadata, ParsedTranscript, RecordCounts,
    TokenUsage,
};
use super::pricing::PricingTable;
use super::stats::Stats;
use super::usage::UsageLedger;
use super::wire::{Content, Line, LineType, Str, WireBlock, WireUsage};

/// Lines longer than this are refused (5 MiB).
pub const MAX_LINE_BYTES: usize = 5 * 1024 * 1024;

/// Record types Claude Code writes that carry no message.
const BOOKKEEPING_TYPES: [&str; 9] = [
    "file-history-snapshot",
    "queue-operation",
    "progress",
    "attachment",
    "last-prompt",
    "custom-title",
    "agent-name",
    "tag",
    "pr-link",
];

/// How to parse.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Keep each message's first line as JSON in [`Message::raw`] (for persisting).
    pub keep_raw: bool,
    pub max_line_bytes: usize,
    pub pricing: Arc<PricingTable>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            keep_raw: false,
            max_line_bytes: MAX_LINE_BYTES,
            pricing: Arc::new(PricingTable::embedded().clone()),
        }
    }
}

/// Parses a whole transcript held in memory.
pub fn parse_bytes(bytes: &[u8], options: &ParseOptions) -> ParsedTranscript {
    let mut parser = TranscriptParser::new(options.clone());
    let mut rest = bytes;
    while !rest.is_empty() {
        let end = memchr(b'\n', rest).unwrap_or(rest.len());
        parser.push_line(&rest[..end]);
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    parser.finish()
}

/// Parses a transcript from a reader, holding at most one line (up to the limit) and a read
/// buffer in memory besides the result.
pub fn parse_reader<R: Read>(mut reader: R, options: &ParseOptions) -> io::Result<ParsedTranscript> {
    const CHUNK: usize = 256 * 1024;
    let max = options.max_line_bytes;
    let mut parser = TranscriptParser::new(options.clone());
    let mut buf = vec![0u8; CHUNK];
    let (mut start, mut end) = (0usize, 0usize);
    // Length of the over-long line being skipped, if we are inside one.
    let mut skipping: Option<usize> = None;
    loop {
        while let Some(pos) = memchr(b'\n', &buf[start..end]) {
            match skipping.take() {
                Some(len) => parser.refuse_long_line(len + pos),
                None => parser.push_line(&buf[start..start + pos]),
            }
            start += pos + 1;
        }
        let partial = end - start;
        if let Some(len) = skipping.as_mut() {
            *len += partial;
            start = end;
        } else if partial > max {
            skipping = Some(partial);
            start = end;
        }
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        if end == buf.len() {
            buf.resize((buf.len() * 2).min(max + CHUNK).max(end + CHUNK), 0);
        }
        let read = match reader.read(&mut buf[end..]) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if read == 0 {
            break;
        }
        end += read;
    }
    match skipping {
        Some(len) => parser.refuse_long_line(len + end),
        None if end > 0 => parser.push_line(&buf[..end]),
        None => {}
    }
    Ok(parser.finish())
}

/// Incremental parser state: feed it lines in order, then [`finish`](Self::finish).
pub struct TranscriptParser {
    options: ParseOptions,
    line_number: u64,
    metadata: Metadata,
    messages: Vec<Message>,
    /// Assistant `message.id` → index of its message, for folding split replies.
    by_api_id: HashMap<String, usize>,
    seen_uuids: HashSet<String>,
    line_errors: Vec<LineError>,
    records: RecordCounts,
    usage: UsageLedger,
}

impl TranscriptParser {
    pub fn new(options: ParseOptions) -> Self {
        TranscriptParser {
            options,
            line_number: 0,
            metadata: Metadata::default(),
            messages: Vec::new(),
            by_api_id: HashMap::new(),
            seen_uuids: HashSet::new(),
            line_errors: Vec::new(),
            records: RecordCounts::default(),
            usage: UsageLedger::new(),
        }
    }

    /// Takes the next line, without its newline.
    pub fn push_line(&mut self, line: &[u8]) {
        self.line_number += 1;
        self.records.lines += 1;
        let line = line.trim_ascii();
        if line.is_empty() {
            self.records.blank += 1;
            return;
        }
        if line.len() > self.options.max_line_bytes {
            self.error(format!(
                "line is {} bytes, over the {} byte limit",
                line.len(),
                self.options.max_line_bytes
            ));
            return;
        }
        match serde_json::from_slice::<Line>(line) {
            Ok(record) => self.accept(record, line),
            Err(error) => self.reject(line, error),
        }
    }

    /// Counts a line that was too long to be read, of `len` bytes.
    pub fn refuse_long_line(&mut self, len: usize) {
        self.line_number += 1;
        self.records.lines += 1;
        self.error(format!(
            "line is {len} bytes, over the {} byte limit",
            self.options.max_line_bytes
        ));
    }

    fn error(&mut self, error: String) {
        self.records.errors += 1;
        self.line_errors.push(LineError {
            line_number: self.line_number,
            error,
        });
    }

    /// A line whose full shape did not parse: valid JSON of a type we skip anyway is counted as
    /// that type; anything else is a line error.
    fn reject(&mut self, line: &[u8], error: serde_json::Error) {
        if let Ok(LineType { kind }) = serde_json::from_slice::<LineType>(line) {
            let kind = kind.as_ref().map_or("", Str::as_str);
            if !is_message_type(kind) {
                self.count_skipped(kind);
                return;
            }
            self.error(format!("unexpected shape of a `{kind}` record: {error}"));
            return;
        }
        self.error(format!("invalid JSON: {error}"));
    }

    fn count_skipped(&mut self, kind: &str) {
        let bucket = if BOOKKEEPING_TYPES.contains(&kind) {
            &mut self.records.bookkeeping
        } else {
            &mut self.records.unknown
        };
        let name = if kind.is_empty() { "(none)" } else { kind };
        match bucket.get_mut(name) {
            Some(count) => *count += 1,
            None => {
                bucket.insert(name.to_owned(), 1);
            }
        }
    }

    fn accept(&mut self, record: Line<'_>, line: &[u8]) {
        let timestamp = record.timestamp.as_ref().and_then(|t| parse_timestamp(t.as_str()));
        self.note_metadata(&record, timestamp);

        let kind = match record.kind.as_ref().map(Str::as_str) {
            Some("user") => MessageKind::User,
            Some("assistant") => MessageKind::Assistant,
            Some("system") => MessageKind::System,
            Some("summary") => MessageKind::Summary,
            other => {
                self.count_skipped(other.unwrap_or(""));
                return;
            }
        };
        if let Some(uuid) = &record.uuid
            && !self.seen_uuids.insert(uuid.as_str().to_owned())
        {
            self.records.duplicates += 1;
            return;
        }

        let wire = record.message;
        if matches!(kind, MessageKind::User | MessageKind::Assistant) && wire.is_none() {
            self.error(format!("a `{}` record without `message`", kind.as_str()));
            return;
        }
        let (api_id, role, model, content, usage) = match wire {
            Some(m) => (m.id, m.role, m.model, m.content, m.usage),
            None => (None, None, None, None, None),
        };
        let usage = usage.and_then(token_usage);
        if let Some(usage) = usage {
            self.usage.record(
                api_id.as_ref().map(Str::as_str),
                record.request_id.as_ref().map(Str::as_str),
                model.as_ref().map(Str::as_str),
                usage,
            );
        }

        let content = match kind {
            MessageKind::User | MessageKind::Assistant => content,
            MessageKind::System => record.content,
            MessageKind::Summary => record.summary.map(Content::Text),
        };
        let mut blocks = Vec::new();
        if let Some(content) = content {
            push_blocks(&mut blocks, content);
        }

        // A reply split over lines: fold into the message its first line started.
        if kind == MessageKind::Assistant
            && let Some(id) = &api_id
            && let Some(&at) = self.by_api_id.get(id.as_str())
            && self.messages[at].kind == MessageKind::Assistant
        {
            self.records.merged += 1;
            let message = &mut self.messages[at];
            message.blocks.extend(blocks);
            if message.model.is_none() {
                message.model = model.map(|m| m.0.into_owned());
            }
            if let Some(usage) = usage
                && message.usage.is_none_or(|u| usage.total() > u.total())
            {
                message.usage = Some(usage);
            }
            return;
        }

        self.records.messages += 1;
        let ordinal = u32::try_from(self.messages.len()).unwrap_or(u32::MAX);
        if kind == MessageKind::Assistant
            && let Some(id) = &api_id
        {
            self.by_api_id.insert(id.as_str().to_owned(), self.messages.len());
        }
        self.messages.push(Message {
            line_number: self.line_number,
            ordinal,
            kind,
            uuid: owned(record.uuid),
            parent_uuid: owned(record.parent_uuid),
            api_message_id: owned(api_id),
            request_id: owned(record.request_id),
            role: owned(role),
            model: owned(model),
            subtype: owned(record.subtype),
            timestamp,
            is_sidechain: record.is_sidechain.unwrap_or(false),
            is_meta: record.is_meta.unwrap_or(false),
            is_compact_summary: record.is_compact_summary.unwrap_or(false),
            usage,
            blocks,
            raw: self
                .options
                .keep_raw
                .then(|| String::from_utf8_lossy(line).into_owned()),
        });
    }

    fn note_metadata(&mut self, record: &Line<'_>, timestamp: Option<DateTime<Utc>>) {
        let meta = &mut self.metadata;
        fill(&mut meta.session_id, &record.session_id);
        fill(&mut meta.cwd, &record.cwd);
        fill(&mut meta.version, &record.version);
        fill(&mut meta.git_branch, &record.git_branch);
        if let Some(ts) = timestamp {
            if meta.first_timestamp.is_none_or(|first| ts < first) {
                meta.first_timestamp = Some(ts);
            }
            if meta.last_timestamp.is_none_or(|last| ts > last) {
                meta.last_timestamp = Some(ts);
            }
        }
    }

    /// The parse result, with usage priced and stats computed.
    pub fn finish(self) -> ParsedTranscript {
        let models = self.usage.by_model(&self.options.pricing);
        let stats = Stats::compute(&self.messages, &models, &self.metadata);
        ParsedTranscript {
            metadata: self.metadata,
            messages: self.messages,
            line_errors: self.line_errors,
            records: self.records,
            usage: self.usage,
            models,
            stats,
        }
    }
}

fn is_message_type(kind: &str) -> bool {
    matches!(kind, "user" | "assistant" | "system" | "summary")
}

fn owned(s: Option<Str<'_>>) -> Option<String> {
    s.map(|s| s.0.into_owned())
}

fn fill(slot: &mut Option<String>, value: &Option<Str<'_>>) {
    if slot.is_none()
        && let Some(value) = value
        && !value.as_str().is_empty()
    {
        *slot = Some(value.as_str().to_owned());
    }
}

fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Usage counts only when the response reported both input and output, as ccusage requires.
fn token_usage(wire: WireUsage) -> Option<TokenUsage> {
    Some(TokenUsage {
        input_tokens: wire.input_tokens?,
        output_tokens: wire.output_tokens?,
        cache_creation_input_tokens: wire.cache_creation_input_tokens.unwrap_or(0),
        cache_read_input_tokens: wire.cache_read_input_tokens.unwrap_or(0),
        cache_creation_1h_tokens: wire
            .cache_creation
            .and_then(|c| c.ephemeral_1h_input_tokens)
            .unwrap_or(0),
    })
}

fn push_blocks(blocks: &mut Vec<ContentBlock>, content: Content<'_>) {
    match content {
        Content::Null => {}
        Content::Text(text) => {
            if !text.as_str().is_empty() {
                blocks.push(ContentBlock::Text {
                    text: text.0.into_owned(),
                });
            }
        }
        Content::Blocks(wire) => blocks.extend(wire.into_iter().map(block)),
    }
}

fn block(wire: WireBlock<'_>) -> ContentBlock {
    let kind = wire.kind.as_ref().map_or("", Str::as_str);
    match kind {
        "text" => ContentBlock::Text {
            text: owned(wire.text).unwrap_or_default(),
        },
        "thinking" | "redacted_thinking" => ContentBlock::Thinking {
            thinking: owned(wire.thinking).unwrap_or_default(),
        },
        "tool_use" | "server_tool_use" => ContentBlock::ToolUse {
            id: owned(wire.id).unwrap_or_default(),
            name: owned(wire.name).unwrap_or_default(),
            input: wire.input.map(|raw| raw.to_owned()),
        },
        "tool_result" => ContentBlock::ToolResult {
            tool_use_id: owned(wire.tool_use_id).unwrap_or_default(),
            content: wire.content.map(|c| c.0.into_owned()).unwrap_or_default(),
            is_error: wire.is_error.unwrap_or(false),
        },
        "image" => ContentBlock::Image {
            media_type: wire.source.and_then(|s| owned(s.media_type)),
        },
        other => ContentBlock::Other {
            kind: if other.is_empty() { "(none)" } else { other }.to_owned(),
        },
    }
}
