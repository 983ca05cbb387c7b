//! Persisting a parsed transcript: one transaction that replaces the session's messages and
//! blocks and moves it `ended → parsed` with its stats, or changes nothing.
//!
//! Rows go in groups of [`PERSIST_GROUP_ROWS`] messages and as many blocks per statement, each
//! column bound as one array and expanded by `UNNEST`, so a statement has a fixed number of
//! parameters (48 for the first, 27 for the others) however many rows it carries — nowhere near
//! Postgres's 65 535-parameter limit.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::Arguments;
use sqlx::error::BoxDynError;
use sqlx::postgres::PgArguments;

use super::{Store, StoreError};
use crate::transcript::{ContentBlock, Message, ParsedTranscript};

/// Rows per insert statement.
pub const PERSIST_GROUP_ROWS: usize = 500;

/// How a persist ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersistOutcome {
    Persisted {
        messages: usize,
        blocks: usize,
        /// Insert statements used: each carries up to [`PERSIST_GROUP_ROWS`] messages and as
        /// many blocks.
        statements: usize,
    },
    /// The session was no longer `ended` and being parsed by this worker: another process
    /// moved it, or took the claim over. Nothing was written.
    Lost,
}

impl Store {
    /// Writes `parsed` as the session's messages, blocks and stats, and moves it to `parsed`.
    /// The caller must hold the session's `claim` (`parse_status = parsing`): a run whose claim
    /// was taken from it (its worker was presumed dead) writes nothing. The claim stays with the
    /// run until its summary. Taking the claim cleared whatever an earlier run left of the
    /// session's rows.
    ///
    /// A session of up to [`PERSIST_GROUP_ROWS`] messages and as many blocks — most of them — is
    /// one statement, so one round trip; a larger one is a transaction of one statement per
    /// group.
    pub async fn persist(
        &self,
        session_id: &str,
        parsed: &ParsedTranscript,
        claim: &str,
    ) -> Result<PersistOutcome, StoreError> {
        let blocks: Vec<(&Message, usize, &ContentBlock)> = parsed
            .messages
            .iter()
            .flat_map(|m| m.blocks.iter().enumerate().map(move |(i, b)| (m, i, b)))
            .collect();
        let messages: Vec<&[Message]> = parsed.messages.chunks(PERSIST_GROUP_ROWS).collect();
        let block_groups: Vec<&[(&Message, usize, &ContentBlock)]> =
            blocks.chunks(PERSIST_GROUP_ROWS).collect();
        let groups = messages.len().max(block_groups.len());
        let group = |i: usize| {
            (
                messages.get(i).copied().unwrap_or_default(),
                block_groups.get(i).copied().unwrap_or_default(),
            )
        };
        let first = group(0);
        let mut args = PgArguments::default();
        take_arguments(&mut args, session_id, claim, parsed).map_err(sqlx::Error::Encode)?;
        row_arguments(&mut args, first.0, first.1).map_err(sqlx::Error::Encode)?;
        let take = sqlx::query_scalar_with(sqlx::AssertSqlSafe(FIRST_SQL.as_str()), args);
        let persisted = PersistOutcome::Persisted {
            messages: parsed.messages.len(),
            blocks: blocks.len(),
            statements: groups,
        };
        if groups <= 1 {
            let taken: i64 = take.fetch_one(&self.pool).await?;
            return Ok(if taken == 1 {
                persisted
            } else {
                PersistOutcome::Lost
            });
        }
        let mut tx = self.pool.begin().await?;
        let taken: i64 = take.fetch_one(&mut *tx).await?;
        if taken != 1 {
            return Ok(PersistOutcome::Lost);
        }
        for i in 1..groups {
            let (messages, blocks) = group(i);
            let mut args = PgArguments::default();
            args.add(session_id).map_err(sqlx::Error::Encode)?;
            row_arguments(&mut args, messages, blocks).map_err(sqlx::Error::Encode)?;
            sqlx::query_with(sqlx::AssertSqlSafe(MORE_SQL.as_str()), args)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(persisted)
    }
}

/// The statement that takes the session — moves it `ended → parsed` with its stats, only while
/// the run holds its claim (`$1` the session, `$2` the claim, `$3` to `$22` the stats) — and
/// inserts the first group of rows (`$23` on) only if it did. Returns 1 if it took the session.
static FIRST_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH taken AS ( \
             UPDATE sessions SET lifecycle = 'parsed', parse_status = 'completed', \
                 parse_error = NULL, total_messages = $3, user_messages = $4, \
                 assistant_messages = $5, tool_use_count = $6, thinking_blocks = $7, \
                 subagent_count = $8, tokens_in = $9, tokens_out = $10, \
                 cache_read_tokens = $11, cache_write_tokens = $12, cost_estimate_usd = $13, \
                 initial_prompt = $14, duration_ms = COALESCE(duration_ms, $15), \
                 cwd = COALESCE(cwd, $16), git_branch = COALESCE(git_branch, $17), \
                 cc_version = COALESCE(cc_version, $18), model = COALESCE(model, $19), \
                 started_at = COALESCE(started_at, $20), ended_at = COALESCE(ended_at, $21), \
                 redactions = $22, enqueued_by = NULL, updated_at = now() \
             WHERE id = $1 AND lifecycle = 'ended' AND parse_status = 'parsing' AND claim = $2 \
             RETURNING id), \
         {} \
         SELECT count(*) FROM taken",
        rows_sql(23, "WHERE EXISTS (SELECT 1 FROM taken)")
    )
});

/// The statement that inserts a further group of rows (`$1` the session, `$2` on the rows).
static MORE_SQL: LazyLock<String> = LazyLock::new(|| format!("WITH {} SELECT 1", rows_sql(2, "")));

/// The types of a message group's 16 arrays, in [`row_arguments`]' order.
const MESSAGE_ARRAYS: [&str; 16] = [
    "int[]",
    "int[]",
    "text[]",
    "text[]",
    "text[]",
    "bigint[]",
    "bigint[]",
    "bigint[]",
    "bigint[]",
    "timestamptz[]",
    "bool[]",
    "bool[]",
    "bool[]",
    "bool[]",
    "bool[]",
    "text[]::jsonb[]",
];

/// The types of a block group's 10 arrays, in [`row_arguments`]' order.
const BLOCK_ARRAYS: [&str; 10] = [
    "int[]",
    "int[]",
    "text[]",
    "text[]",
    "text[]",
    "text[]",
    "text[]",
    "text[]::jsonb[]",
    "bool[]",
    "text[]",
];

/// `UNNEST` of parameters numbered from `first`, cast to `types`.
fn unnest(first: usize, types: &[&str]) -> String {
    let arrays: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}", first + i))
        .collect();
    format!("UNNEST({})", arrays.join(", "))
}

/// Two common table expressions inserting a group of messages (16 arrays from `$first`) and a
/// group of blocks (10 arrays after them), the rows kept only where `condition` holds.
fn rows_sql(first: usize, condition: &str) -> String {
    format!(
        "messages AS ( \
             INSERT INTO transcript_messages (session_id, ordinal, line_number, message_type, \
                 role, model, input_tokens, output_tokens, cache_creation_input_tokens, \
                 cache_read_input_tokens, \"timestamp\", is_sidechain, has_text, has_thinking, \
                 has_tool_use, has_tool_result, raw) \
             SELECT $1, * FROM {} {condition}), \
         blocks AS ( \
             INSERT INTO content_blocks (session_id, message_ordinal, block_order, block_type, \
                 text, thinking, tool_name, tool_use_id, tool_input, is_error, result_text) \
             SELECT $1, * FROM {} {condition})",
        unnest(first, &MESSAGE_ARRAYS),
        unnest(first + MESSAGE_ARRAYS.len(), &BLOCK_ARRAYS),
    )
}

/// The take statement's first 22 arguments: the session, the claim and the stats.
fn take_arguments(
    args: &mut PgArguments,
    session_id: &str,
    claim: &str,
    parsed: &ParsedTranscript,
) -> Result<(), BoxDynError> {
    let s = &parsed.stats;
    let meta = &parsed.metadata;
    let model = parsed.models.first().map(|m| m.model.as_str());
    args.add(session_id)?;
    args.add(claim)?;
    args.add(count(s.total_messages))?;
    args.add(count(s.user_messages))?;
    args.add(count(s.assistant_messages))?;
    args.add(count(s.tool_use_count))?;
    args.add(count(s.thinking_blocks))?;
    args.add(count(s.subagent_count))?;
    args.add(s.tokens_in as i64)?;
    args.add(s.tokens_out as i64)?;
    args.add(s.cache_read_tokens as i64)?;
    args.add(s.cache_write_tokens as i64)?;
    args.add(s.cost_estimate_usd)?;
    args.add(s.initial_prompt.as_deref().map(clean_text))?;
    args.add(s.duration_ms.map(|d| d as i64))?;
    args.add(meta.cwd.as_deref().map(clean_text))?;
    args.add(meta.git_branch.as_deref().map(clean_text))?;
    args.add(meta.version.as_deref().map(clean_text))?;
    args.add(model.map(clean_text))?;
    args.add(meta.first_timestamp)?;
    args.add(meta.last_timestamp)?;
    args.add(sqlx::types::Json(&parsed.redactions))?;
    Ok(())
}

/// A group of messages and a group of blocks (either may be empty) as 26 arrays, one per
/// column.
fn row_arguments(
    args: &mut PgArguments,
    messages: &[Message],
    blocks: &[(&Message, usize, &ContentBlock)],
) -> Result<(), BoxDynError> {
    let m = MessageColumns::new(messages);
    args.add(m.ordinal)?;
    args.add(m.line_number)?;
    args.add(m.message_type)?;
    args.add(m.role)?;
    args.add(m.model)?;
    args.add(m.input)?;
    args.add(m.output)?;
    args.add(m.cache_write)?;
    args.add(m.cache_read)?;
    args.add(m.timestamp)?;
    args.add(m.sidechain)?;
    args.add(m.has_text)?;
    args.add(m.has_thinking)?;
    args.add(m.has_tool_use)?;
    args.add(m.has_tool_result)?;
    args.add(m.raw)?;
    let b = BlockColumns::new(blocks);
    args.add(b.ordinal)?;
    args.add(b.order)?;
    args.add(b.kind)?;
    args.add(b.text)?;
    args.add(b.thinking)?;
    args.add(b.tool_name)?;
    args.add(b.tool_use_id)?;
    args.add(b.tool_input)?;
    args.add(b.is_error)?;
    args.add(b.result_text)?;
    Ok(())
}

/// A group of messages as one array per column.
struct MessageColumns<'a> {
    ordinal: Vec<i32>,
    line_number: Vec<i32>,
    message_type: Vec<&'a str>,
    role: Vec<Option<String>>,
    model: Vec<Option<String>>,
    input: Vec<Option<i64>>,
    output: Vec<Option<i64>>,
    cache_write: Vec<Option<i64>>,
    cache_read: Vec<Option<i64>>,
    timestamp: Vec<Option<DateTime<Utc>>>,
    sidechain: Vec<bool>,
    has_text: Vec<bool>,
    has_thinking: Vec<bool>,
    has_tool_use: Vec<bool>,
    has_tool_result: Vec<bool>,
    raw: Vec<Option<String>>,
}

impl<'a> MessageColumns<'a> {
    fn new(messages: &'a [Message]) -> Self {
        let n = messages.len();
        let mut c = MessageColumns {
            ordinal: Vec::with_capacity(n),
            line_number: Vec::with_capacity(n),
            message_type: Vec::with_capacity(n),
            role: Vec::with_capacity(n),
            model: Vec::with_capacity(n),
            input: Vec::with_capacity(n),
            output: Vec::with_capacity(n),
            cache_write: Vec::with_capacity(n),
            cache_read: Vec::with_capacity(n),
            timestamp: Vec::with_capacity(n),
            sidechain: Vec::with_capacity(n),
            has_text: Vec::with_capacity(n),
            has_thinking: Vec::with_capacity(n),
            has_tool_use: Vec::with_capacity(n),
            has_tool_result: Vec::with_capacity(n),
            raw: Vec::with_capacity(n),
        };
        for m in messages {
            c.ordinal.push(m.ordinal as i32);
            c.line_number
                .push(i32::try_from(m.line_number).unwrap_or(i32::MAX));
            c.message_type.push(m.kind.as_str());
            c.role.push(m.role.as_deref().map(clean_text));
            c.model.push(m.model.as_deref().map(clean_text));
            c.input.push(m.usage.map(|u| u.input_tokens as i64));
            c.output.push(m.usage.map(|u| u.output_tokens as i64));
            c.cache_write
                .push(m.usage.map(|u| u.cache_creation_input_tokens as i64));
            c.cache_read
                .push(m.usage.map(|u| u.cache_read_input_tokens as i64));
            c.timestamp.push(m.timestamp);
            c.sidechain.push(m.is_sidechain);
            c.has_text.push(m.has_text());
            c.has_thinking.push(m.has_thinking());
            c.has_tool_use.push(m.has_tool_use());
            c.has_tool_result.push(m.has_tool_result());
            c.raw.push(m.raw.as_deref().map(clean_json));
        }
        c
    }
}

/// A group of blocks as one array per column.
#[derive(Default)]
struct BlockColumns {
    ordinal: Vec<i32>,
    order: Vec<i32>,
    kind: Vec<String>,
    text: Vec<Option<String>>,
    thinking: Vec<Option<String>>,
    tool_name: Vec<Option<String>>,
    tool_use_id: Vec<Option<String>>,
    tool_input: Vec<Option<String>>,
    is_error: Vec<Option<bool>>,
    result_text: Vec<Option<String>>,
}

impl BlockColumns {
    fn new(blocks: &[(&Message, usize, &ContentBlock)]) -> Self {
        let mut c = BlockColumns::default();
        for (message, index, block) in blocks {
            c.ordinal.push(message.ordinal as i32);
            c.order.push(*index as i32);
            c.kind.push(clean_text(block.block_type()));
            let (mut t, mut th, mut name, mut use_id, mut input, mut err, mut result) =
                (None, None, None, None, None, None, None);
            match block {
                ContentBlock::Text { text } => t = Some(clean_text(text)),
                ContentBlock::Thinking { thinking } => th = Some(clean_text(thinking)),
                ContentBlock::ToolUse {
                    id,
                    name: n,
                    input: i,
                } => {
                    name = Some(clean_text(n));
                    use_id = Some(clean_text(id));
                    input = i.as_ref().map(|raw| clean_json(raw.get()));
                }
                ContentBlock::ToolResult {
                    tool_use_id: id,
                    content,
                    is_error: e,
                } => {
                    use_id = Some(clean_text(id));
                    result = Some(clean_text(content));
                    err = Some(*e);
                }
                ContentBlock::Image { .. } | ContentBlock::Other { .. } => {}
            }
            c.text.push(t);
            c.thinking.push(th);
            c.tool_name.push(name);
            c.tool_use_id.push(use_id);
            c.tool_input.push(input);
            c.is_error.push(err);
            c.result_text.push(result);
        }
        c
    }
}

fn count(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Postgres text cannot hold NUL; a transcript can. Replaced by U+FFFD rather than refused.
fn clean_text(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.to_owned()
    }
}

/// jsonb cannot hold `\u0000` either; the escape (not an escaped backslash followed by
/// `u0000`) becomes `\ufffd`.
fn clean_json(json: &str) -> String {
    if !json.contains("\\u0000") {
        return json.to_owned();
    }
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(json.len());
    let mut last = 0;
    let mut i = 0;
    while i + 6 <= bytes.len() {
        if &bytes[i..i + 6] == b"\\u0000" {
            let backslashes = bytes[..i].iter().rev().take_while(|&&b| b == b'\\').count();
            if backslashes % 2 == 0 {
                out.push_str(&json[last..i]);
                out.push_str("\\ufffd");
                i += 6;
                last = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&json[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_escapes_are_replaced_but_escaped_backslashes_kept() {
        assert_eq!(clean_json(r#"{"a":"x\u0000y"}"#), r#"{"a":"x\ufffdy"}"#);
        assert_eq!(clean_json(r#"{"a":"x\\u0000y"}"#), r#"{"a":"x\\u0000y"}"#);
        assert_eq!(clean_json(r#"{"a":"\\\u0000"}"#), r#"{"a":"\\\ufffd"}"#);
        assert_eq!(clean_text("a\0b"), "a\u{FFFD}b");
    }
}
