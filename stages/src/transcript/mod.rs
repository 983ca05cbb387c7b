//! The Claude Code transcript parser: JSONL bytes in, a [`ParsedTranscript`] out.
//!
//! Pure by design (no I/O beyond the reader it is handed), so the pipeline's parse stage, the
//! offline `inspect` command, benchmarks and fuzzers all run the same code.
//!
//! - `wire`: the line format as Claude Code writes it, borrowed from the input;
//! - `parse`: the line-by-line state machine, limits and error recording;
//! - `model`: the owned result (messages, blocks, metadata, line errors);
//! - `usage`: per-response deduplication of token usage;
//! - `pricing`: the embedded, overridable price table;
//! - `stats`: the session stats and the initial prompt.

mod model;
mod parse;
mod pricing;
mod stats;
mod usage;
mod wire;

pub use model::{
    ContentBlock, LineError, Message, MessageKind, Metadata, ParsedTranscript, RecordCounts,
    TokenUsage,
};
pub use parse::{MAX_LINE_BYTES, ParseOptions, TranscriptParser, parse_bytes, parse_reader};
pub use pricing::{LONG_CONTEXT_THRESHOLD, ModelPrice, PricingError, PricingTable, Rates};
pub use stats::{INITIAL_PROMPT_CHARS, Stats};
pub use usage::{ModelUsage, UNKNOWN_MODEL, UsageEntry, UsageLedger};
