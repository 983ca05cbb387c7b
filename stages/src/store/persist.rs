//! Persisting a parsed transcript: one transaction that replaces the session's messages and
//! blocks and moves it `ended → parsed` with its stats, or changes nothing.
//!
//! Rows go in groups of [`PERSIST_GROUP_ROWS`] per statement, each column bound as one array and
//! expanded by `UNNEST`, so a statement has a fixed 17 parameters however many rows it carries —
//! nowhere near Postgres's 65 535-parameter limit.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};

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
        /// Insert statements used, messages and blocks together.
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
    /// run until its summary.
    pub async fn persist(
        &self,
        session_id: &str,
        parsed: &ParsedTranscript,
        claim: &str,
    ) -> Result<PersistOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let owned = sqlx::query(
            "SELECT 1 FROM sessions WHERE id = $1 AND lifecycle = 'ended' \
               AND parse_status = 'parsing' AND claim = $2 FOR UPDATE",
        )
        .bind(session_id)
        .bind(claim)
        .fetch_optional(&mut *tx)
        .await?;
        if owned.is_none() {
            return Ok(PersistOutcome::Lost);
        }
        sqlx::query("DELETE FROM transcript_messages WHERE session_id = $1")
            .bind(session_id)
            .execute(&mut *tx)
            .await?;
        let mut statements = 0;
        for group in parsed.messages.chunks(PERSIST_GROUP_ROWS) {
            insert_messages(&mut tx, session_id, group).await?;
            statements += 1;
        }
        let blocks: Vec<(&Message, usize, &ContentBlock)> = parsed
            .messages
            .iter()
            .flat_map(|m| m.blocks.iter().enumerate().map(move |(i, b)| (m, i, b)))
            .collect();
        for group in blocks.chunks(PERSIST_GROUP_ROWS) {
            insert_blocks(&mut tx, session_id, group).await?;
            statements += 1;
        }
        update_session(&mut tx, session_id, parsed).await?;
        tx.commit().await?;
        Ok(PersistOutcome::Persisted {
            messages: parsed.messages.len(),
            blocks: blocks.len(),
            statements,
        })
    }
}

async fn insert_messages(
    tx: &mut Transaction<'_, Postgres>,
    session_id: &str,
    messages: &[Message],
) -> Result<(), StoreError> {
    let n = messages.len();
    let mut ordinal = Vec::with_capacity(n);
    let mut line_number = Vec::with_capacity(n);
    let mut message_type = Vec::with_capacity(n);
    let mut role = Vec::with_capacity(n);
    let mut model = Vec::with_capacity(n);
    let mut input = Vec::with_capacity(n);
    let mut output = Vec::with_capacity(n);
    let mut cache_write = Vec::with_capacity(n);
    let mut cache_read = Vec::with_capacity(n);
    let mut timestamp: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut sidechain = Vec::with_capacity(n);
    let mut has_text = Vec::with_capacity(n);
    let mut has_thinking = Vec::with_capacity(n);
    let mut has_tool_use = Vec::with_capacity(n);
    let mut has_tool_result = Vec::with_capacity(n);
    let mut raw = Vec::with_capacity(n);
    for m in messages {
        ordinal.push(m.ordinal as i32);
        line_number.push(i32::try_from(m.line_number).unwrap_or(i32::MAX));
        message_type.push(m.kind.as_str());
        role.push(m.role.as_deref().map(clean_text));
        model.push(m.model.as_deref().map(clean_text));
        input.push(m.usage.map(|u| u.input_tokens as i64));
        output.push(m.usage.map(|u| u.output_tokens as i64));
        cache_write.push(m.usage.map(|u| u.cache_creation_input_tokens as i64));
        cache_read.push(m.usage.map(|u| u.cache_read_input_tokens as i64));
        timestamp.push(m.timestamp);
        sidechain.push(m.is_sidechain);
        has_text.push(m.has_text());
        has_thinking.push(m.has_thinking());
        has_tool_use.push(m.has_tool_use());
        has_tool_result.push(m.has_tool_result());
        raw.push(m.raw.as_deref().map(clean_json));
    }
    sqlx::query(
        "INSERT INTO transcript_messages (session_id, ordinal, line_number, message_type, role, \
             model, input_tokens, output_tokens, cache_creation_input_tokens, \
             cache_read_input_tokens, \"timestamp\", is_sidechain, has_text, has_thinking, \
             has_tool_use, has_tool_result, raw) \
         SELECT $1, * FROM UNNEST($2::int[], $3::int[], $4::text[], $5::text[], $6::text[], \
             $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::timestamptz[], \
             $12::bool[], $13::bool[], $14::bool[], $15::bool[], $16::bool[], $17::text[]::jsonb[])",
    )
    .bind(session_id)
    .bind(&ordinal)
    .bind(&line_number)
    .bind(&message_type)
    .bind(&role)
    .bind(&model)
    .bind(&input)
    .bind(&output)
    .bind(&cache_write)
    .bind(&cache_read)
    .bind(&timestamp)
    .bind(&sidechain)
    .bind(&has_text)
    .bind(&has_thinking)
    .bind(&has_tool_use)
    .bind(&has_tool_result)
    .bind(&raw)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_blocks(
    tx: &mut Transaction<'_, Postgres>,
    session_id: &str,
    blocks: &[(&Message, usize, &ContentBlock)],
) -> Result<(), StoreError> {
    let n = blocks.len();
    let mut ordinal = Vec::with_capacity(n);
    let mut order = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut text: Vec<Option<String>> = Vec::with_capacity(n);
    let mut thinking: Vec<Option<String>> = Vec::with_capacity(n);
    let mut tool_name: Vec<Option<String>> = Vec::with_capacity(n);
    let mut tool_use_id: Vec<Option<String>> = Vec::with_capacity(n);
    let mut tool_input: Vec<Option<String>> = Vec::with_capacity(n);
    let mut is_error: Vec<Option<bool>> = Vec::with_capacity(n);
    let mut result_text: Vec<Option<String>> = Vec::with_capacity(n);
    for (message, index, block) in blocks {
        ordinal.push(message.ordinal as i32);
        order.push(*index as i32);
        kind.push(clean_text(block.block_type()));
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
        text.push(t);
        thinking.push(th);
        tool_name.push(name);
        tool_use_id.push(use_id);
        tool_input.push(input);
        is_error.push(err);
        result_text.push(result);
    }
    sqlx::query(
        "INSERT INTO content_blocks (session_id, message_ordinal, block_order, block_type, text, \
             thinking, tool_name, tool_use_id, tool_input, is_error, result_text) \
         SELECT $1, * FROM UNNEST($2::int[], $3::int[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::text[]::jsonb[], $10::bool[], $11::text[])",
    )
    .bind(session_id)
    .bind(&ordinal)
    .bind(&order)
    .bind(&kind)
    .bind(&text)
    .bind(&thinking)
    .bind(&tool_name)
    .bind(&tool_use_id)
    .bind(&tool_input)
    .bind(&is_error)
    .bind(&result_text)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn update_session(
    tx: &mut Transaction<'_, Postgres>,
    session_id: &str,
    parsed: &ParsedTranscript,
) -> Result<(), StoreError> {
    let s = &parsed.stats;
    let meta = &parsed.metadata;
    let model = parsed.models.first().map(|m| m.model.as_str());
    sqlx::query(
        "UPDATE sessions SET lifecycle = 'parsed', parse_status = 'completed', parse_error = NULL, \
             total_messages = $2, user_messages = $3, assistant_messages = $4, \
             tool_use_count = $5, thinking_blocks = $6, subagent_count = $7, tokens_in = $8, \
             tokens_out = $9, cache_read_tokens = $10, cache_write_tokens = $11, \
             cost_estimate_usd = $12, initial_prompt = $13, \
             duration_ms = COALESCE(duration_ms, $14), cwd = COALESCE(cwd, $15), \
             git_branch = COALESCE(git_branch, $16), cc_version = COALESCE(cc_version, $17), \
             model = COALESCE(model, $18), started_at = COALESCE(started_at, $19), \
             ended_at = COALESCE(ended_at, $20), redactions = $21, enqueued_by = NULL, \
             updated_at = now() \
         WHERE id = $1",
    )
    .bind(session_id)
    .bind(count(s.total_messages))
    .bind(count(s.user_messages))
    .bind(count(s.assistant_messages))
    .bind(count(s.tool_use_count))
    .bind(count(s.thinking_blocks))
    .bind(count(s.subagent_count))
    .bind(s.tokens_in as i64)
    .bind(s.tokens_out as i64)
    .bind(s.cache_read_tokens as i64)
    .bind(s.cache_write_tokens as i64)
    .bind(s.cost_estimate_usd)
    .bind(s.initial_prompt.as_deref().map(clean_text))
    .bind(s.duration_ms.map(|d| d as i64))
    .bind(meta.cwd.as_deref().map(clean_text))
    .bind(meta.git_branch.as_deref().map(clean_text))
    .bind(meta.version.as_deref().map(clean_text))
    .bind(model.map(clean_text))
    .bind(meta.first_timestamp)
    .bind(meta.last_timestamp)
    .bind(sqlx::types::Json(&parsed.redactions))
    .execute(&mut **tx)
    .await?;
    Ok(())
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
