//! Search over every session's messages: what `GET /api/search` answers and
//! `sessionflow search --json` prints.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One page of hits, best first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    /// For the next page (`cursor=`); none on the last.
    pub next_cursor: Option<String>,
}

/// One block that matches: where it is, and a piece of it around the match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchHit {
    pub session_id: String,
    pub workspace_id: String,
    pub device_id: Option<String>,
    /// The session's working directory (its project).
    pub cwd: Option<String>,
    /// When the message was written.
    pub timestamp: Option<DateTime<Utc>>,
    pub message_ordinal: i64,
    pub block_order: i64,
    /// `user` or `assistant`.
    pub role: Option<String>,
    /// `text`, `thinking`, `tool_input` or `tool_result`.
    pub kind: String,
    /// The tool called (for a tool's input or result).
    pub tool_name: Option<String>,
    /// Relevance (higher is better), comparable within one search.
    pub rank: f64,
    /// Up to about 200 characters of the block around the first match.
    pub snippet: String,
    /// The matched words in `snippet`, as `[start, end)` character offsets.
    pub highlights: Vec<[usize; 2]>,
}
