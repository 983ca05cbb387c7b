//! Sessions on the wire: batch-status (what a capture client asks before uploading), the rows of
//! `GET /api/sessions`, one session (`GET /api/sessions/{id}`) and its messages.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most sessions asked about in one batch-status request.
pub const MAX_BATCH: usize = 500;

/// `POST /api/sessions/batch-status`: the sessions asked about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchStatusRequest {
    /// 1 to 500 session ids.
    pub session_ids: Vec<String>,
}

/// Where one session stands: enough for a client to tell whether the server holds its current
/// transcript (size and SHA-256) and, for a failed session, why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionStatus {
    pub lifecycle: String,
    pub parse_status: String,
    pub transcript_size: Option<u64>,
    pub transcript_sha256: Option<String>,
    pub parse_error: Option<String>,
}

impl SessionStatus {
    /// Done as far as a client waits: parsed, summarized, archived or failed.
    pub fn is_final(&self) -> bool {
        matches!(
            self.lifecycle.as_str(),
            "parsed" | "summarized" | "archived" | "failed"
        )
    }

    /// The session has ended on the server (it will be or was processed).
    pub fn has_ended(&self) -> bool {
        !matches!(self.lifecycle.as_str(), "detected" | "capturing")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchStatusResponse {
    /// By session id.
    pub statuses: BTreeMap<String, SessionStatus>,
    /// Ids the server does not know.
    pub not_found: Vec<String>,
    /// Of those, the ids of sessions deleted for good: an upload is refused unless forced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<String>,
}

/// `DELETE /api/sessions/{id}`: what was deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeletedSession {
    pub session_id: String,
    pub workspace_id: String,
    pub deleted_at: DateTime<Utc>,
    /// Messages the session held (gone with it, as are its blocks, usage, tool and search rows,
    /// processor state, transcript and backup).
    pub messages: i64,
}

/// One row of `GET /api/sessions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRow {
    pub id: String,
    pub workspace_id: String,
    pub lifecycle: String,
    pub parse_status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub cwd: Option<String>,
    pub git_branch: Option<String>,
    pub model: Option<String>,
    pub total_messages: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_estimate_usd: f64,
    pub initial_prompt: Option<String>,
    pub summary: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A page of `GET /api/sessions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionPage {
    pub sessions: Vec<SessionRow>,
    /// For the next page (`cursor=`); none on the last.
    pub next_cursor: Option<String>,
    /// How many match; only on first and offset pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// `GET /api/sessions/{id}`: the session with its stats, summary and, if it failed, why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Session {
    pub id: String,
    pub workspace_id: String,
    pub device_id: Option<String>,
    pub lifecycle: String,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
    pub duration_ms: Option<i64>,
    pub source: Option<String>,
    pub model: Option<String>,
    pub git_branch: Option<String>,
    pub cwd: Option<String>,
    pub cc_version: Option<String>,
    pub transcript_key: Option<String>,
    pub transcript_size: Option<u64>,
    pub transcript_sha256: Option<String>,
    pub parse_status: String,
    pub parse_error: Option<String>,
    /// The stage that failed the session.
    pub failed_stage: Option<String>,
    /// The worker holding the session while it is parsed.
    pub claimed_by: Option<String>,
    pub total_messages: u64,
    pub user_messages: u64,
    pub assistant_messages: u64,
    pub tool_use_count: u64,
    pub thinking_blocks: u64,
    pub subagent_count: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_estimate_usd: f64,
    pub initial_prompt: Option<String>,
    pub summary: Option<String>,
    /// Secrets taken out of the session's messages, by kind (`{"aws_access_key": 2}`).
    pub redactions: std::collections::BTreeMap<String, u64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A page of `GET /api/sessions/{id}/messages`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    /// For the next page (`after=`); none on the last.
    pub next_after: Option<i64>,
}

/// One transcript message with its blocks, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub ordinal: i64,
    pub line_number: i64,
    pub message_type: String,
    pub role: Option<String>,
    pub model: Option<String>,
    pub timestamp: Option<DateTime<Utc>>,
    pub is_sidechain: bool,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_creation_input_tokens: Option<i64>,
    pub cache_read_input_tokens: Option<i64>,
    pub blocks: Vec<Block>,
}

/// A content block; fields a block type does not have are left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Block {
    pub block_order: i64,
    pub block_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub tool_input: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_text: Option<String>,
}

impl Block {
    /// The block in a few words: its text, or what tool it called or answered.
    pub fn gist(&self) -> String {
        match (self.block_type.as_str(), &self.tool_name) {
            ("tool_use", Some(tool)) => format!("[{tool}]"),
            ("tool_result", _) if self.is_error == Some(true) => format!(
                "[tool error] {}",
                self.result_text.as_deref().unwrap_or_default()
            ),
            ("tool_result", _) => format!(
                "[tool result] {}",
                self.result_text.as_deref().unwrap_or_default()
            ),
            ("thinking", _) => "[thinking]".to_owned(),
            _ => self.text.clone().unwrap_or_default(),
        }
    }
}
