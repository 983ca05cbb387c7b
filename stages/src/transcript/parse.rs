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
use serde::de::IgnoredAny;

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
pub fn parse_reader<R: Read>(
    mut reader: R,
    options: &ParseOptions,
) -> io::Result<ParsedTranscript> {
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
        // One SIMD pass validates the whole line, so serde_json need not check each string.
        let Ok(text) = simdutf8::basic::from_utf8(line) else {
            let error = std::str::from_utf8(line).err().map(|e| e.to_string());
            self.error(format!("invalid UTF-8: {}", error.unwrap_or_default()));
            return;
        };
        match serde_json::from_str::<Line>(text) {
            Ok(record) => self.accept(record, text),
            Err(error) => self.reject(text, error),
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
    fn reject(&mut self, line: &str, error: serde_json::Error) {
        match serde_json::from_str::<LineType>(line) {
            Ok(LineType { kind }) => {
                let kind = kind.as_ref().map_or("", Str::as_str);
                if is_message_type(kind) {
                    self.error(format!("unexpected shape of a `{kind}` record: {error}"));
                } else {
                    self.count_skipped(kind);
                }
            }
            Err(_) if serde_json::from_str::<IgnoredAny>(line).is_ok() => {
                self.error(format!("not a transcript record: {error}"));
            }
            Err(_) => self.error(format!("invalid JSON: {error}")),
        }
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

    fn accept(&mut self, record: Line<'_>, line: &str) {
        let timestamp = record
            .timestamp
            .as_ref()
            .and_then(|t| parse_timestamp(t.as_str()));
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
            self.error(format!("`{}` record without `message`", kind.as_str()));
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
            self.by_api_id
                .insert(id.as_str().to_owned(), self.messages.len());
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
            raw: self.options.keep_raw.then(|| line.to_owned()),
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
            redactions: Default::default(),
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

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = r#"{"type":"user","uuid":"u1","sessionId":"s1","timestamp":"2026-01-01T00:00:00Z","message":{"role":"user","content":"hello"}}"#;
    const REPLY_1: &str = r#"{"type":"assistant","uuid":"a1","requestId":"r1","timestamp":"2026-01-01T00:00:01Z","message":{"id":"m1","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"thinking","thinking":"hm"}],"usage":{"input_tokens":3,"output_tokens":1}}}"#;
    const REPLY_2: &str = r#"{"type":"assistant","uuid":"a2","requestId":"r1","timestamp":"2026-01-01T00:00:02Z","message":{"id":"m1","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"tool_use","id":"t1","name":"Read","input":{"file_path":"/x"}}],"usage":{"input_tokens":3,"output_tokens":40}}}"#;

    fn parse(text: &str) -> ParsedTranscript {
        parse_bytes(text.as_bytes(), &ParseOptions::default())
    }

    #[test]
    fn a_half_written_last_line_is_recorded_and_the_rest_parses() {
        let text = format!("{USER}\n{REPLY_1}\n{}", &REPLY_2[..90]);
        let p = parse(&text);
        assert_eq!(p.messages.len(), 2);
        assert_eq!(p.line_errors.len(), 1);
        assert_eq!(p.line_errors[0].line_number, 3);
        assert!(
            p.line_errors[0]
                .error
                .starts_with("invalid JSON: EOF while parsing"),
            "{}",
            p.line_errors[0].error
        );
    }

    #[test]
    fn split_reply_lines_fold_into_one_message_with_the_final_usage() {
        let p = parse(&format!("{USER}\n{REPLY_1}\n{REPLY_2}\n"));
        assert_eq!(p.messages.len(), 2);
        let reply = &p.messages[1];
        assert_eq!(reply.line_number, 2);
        let kinds: Vec<_> = reply.blocks.iter().map(ContentBlock::block_type).collect();
        assert_eq!(kinds, ["thinking", "tool_use"]);
        assert_eq!(reply.usage.map(|u| u.output_tokens), Some(40));
        assert_eq!(p.stats.tokens_out, 40);
        assert_eq!(p.stats.duration_ms, Some(2000));
        assert_eq!(p.records.merged, 1);
        assert!(reply.has_thinking() && reply.has_tool_use() && !reply.has_text());
    }

    #[test]
    fn unknown_and_bookkeeping_types_are_counted_never_errors() {
        let text = [
            r#"{"type":"file-history-snapshot","snapshot":{}}"#,
            r#"{"type":"progress","message":"not an object","data":{}}"#,
            r#"{"type":"x-new-thing-2027","message":42}"#,
            r#"{"type":"x-new-thing-2027"}"#,
            r#"{"no_type":true}"#,
            USER,
        ]
        .join("\n");
        let p = parse(&text);
        assert!(p.line_errors.is_empty(), "{:?}", p.line_errors);
        assert_eq!(p.records.bookkeeping.get("file-history-snapshot"), Some(&1));
        assert_eq!(p.records.bookkeeping.get("progress"), Some(&1));
        assert_eq!(p.records.unknown.get("x-new-thing-2027"), Some(&2));
        assert_eq!(p.records.unknown.get("(none)"), Some(&1));
        assert_eq!(p.messages.len(), 1);
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let text = [
            "garbage{",
            r#"{"type":"user","message":"a string, not a message"}"#,
            r#"{"type":"assistant","uuid":"x"}"#,
            "[1,2,3]",
        ]
        .join("\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"\n{\"type\":\"user\",\"message\":{\"content\":\"\xff\xfe\"}}\n");
        let p = parse_bytes(&bytes, &ParseOptions::default());
        let errors: Vec<_> = p
            .line_errors
            .iter()
            .map(|e| (e.line_number, e.error.as_str()))
            .collect();
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(
            errors[0]
                .1
                .starts_with("invalid JSON: expected value at line 1 column 1"),
            "{errors:?}"
        );
        assert!(
            errors[1]
                .1
                .starts_with("unexpected shape of a `user` record: invalid type: string"),
            "{errors:?}"
        );
        assert_eq!(errors[2], (3, "`assistant` record without `message`"));
        assert!(
            errors[3]
                .1
                .starts_with("not a transcript record: invalid type"),
            "{errors:?}"
        );
        assert_eq!(errors[4].0, 5);
        assert!(
            errors[4]
                .1
                .starts_with("invalid UTF-8: invalid utf-8 sequence of 1 bytes from index 37"),
            "{errors:?}"
        );
        assert_eq!(p.records.errors, 5);
    }

    #[test]
    fn blank_lines_crlf_and_repeated_entries_are_accounted_for() {
        let text = format!("\n{USER}\r\n  \n{REPLY_1}\n{REPLY_1}\n\n");
        let p = parse(&text);
        assert_eq!(p.messages.len(), 2);
        assert_eq!(p.records.lines, 6);
        assert_eq!(p.records.blank, 3);
        assert_eq!(p.records.duplicates, 1);
        assert_eq!(p.usage.len(), 1);
    }

    #[test]
    fn an_over_long_line_is_refused_in_memory_and_streaming() {
        let options = ParseOptions {
            max_line_bytes: 300,
            ..ParseOptions::default()
        };
        let long = format!(
            r#"{{"type":"user","message":{{"content":"{}"}}}}"#,
            "x".repeat(500)
        );
        let text = format!("{USER}\n{long}\n{REPLY_1}\n{long}");
        for p in [
            parse_bytes(text.as_bytes(), &options),
            parse_reader(text.as_bytes(), &options).unwrap(),
        ] {
            let errors: Vec<_> = p
                .line_errors
                .iter()
                .map(|e| (e.line_number, e.error.clone()))
                .collect();
            let refused = format!("line is {} bytes, over the 300 byte limit", long.len());
            assert_eq!(errors, [(2, refused.clone()), (4, refused)]);
            assert_eq!(p.messages.len(), 2);
        }
    }

    /// A reader yielding one endless line in small pieces, remembering the largest buffer the
    /// parser offered it: that buffer is all the parser ever holds of the line.
    struct EndlessLine {
        left: usize,
        largest_buffer: usize,
    }

    impl Read for EndlessLine {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.largest_buffer = self.largest_buffer.max(buf.len());
            let n = buf.len().min(self.left).min(64 * 1024);
            buf[..n].fill(b'a');
            self.left -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_huge_line_is_not_buffered_beyond_the_limit() {
        let mut reader = EndlessLine {
            left: 40 * MAX_LINE_BYTES,
            largest_buffer: 0,
        };
        let p = parse_reader(&mut reader, &ParseOptions::default()).unwrap();
        assert_eq!(p.line_errors.len(), 1);
        assert_eq!(
            p.line_errors[0].error,
            format!(
                "line is {} bytes, over the {MAX_LINE_BYTES} byte limit",
                40 * MAX_LINE_BYTES
            )
        );
        assert!(
            reader.largest_buffer <= MAX_LINE_BYTES + 256 * 1024,
            "{}",
            reader.largest_buffer
        );
    }

    #[test]
    fn raw_json_is_kept_only_when_asked() {
        let options = ParseOptions {
            keep_raw: true,
            ..ParseOptions::default()
        };
        let p = parse_bytes(USER.as_bytes(), &options);
        assert_eq!(p.messages[0].raw.as_deref(), Some(USER));
        assert_eq!(parse(USER).messages[0].raw, None);
    }
}
