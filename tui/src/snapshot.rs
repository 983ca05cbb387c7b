//! What the monitor shows: `GET /api/monitor` and `GET /healthz`, as typed values. Fields the
//! server adds later are ignored; fields it leaves out take their defaults.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Monitor {
    /// What waits and for how long (the server's shared type).
    pub health: sessionflow_protocol::health::HealthReport,
    pub sessions: SessionCounts,
    pub queue: Queue,
    pub stages: Vec<Stage>,
    pub workers: Vec<Worker>,
    pub recent_failures: Vec<Failure>,
    pub events_per_second: f64,
    pub processors: Vec<ProcessorRow>,
}

/// A session processor: its runs, and what it made of the sessions.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ProcessorRow {
    pub name: String,
    pub last_run: Option<String>,
    pub next_run: Option<String>,
    pub running: bool,
    pub last_result: Option<serde_json::Value>,
    pub processed: u64,
    pub failing: u64,
    pub parked: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SessionCounts {
    pub by_lifecycle: BTreeMap<String, u64>,
    pub by_parse_status: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Queue {
    pub depth: u64,
    pub dropped: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Stage {
    pub name: String,
    pub in_flight: f64,
    pub done: f64,
    pub failed: f64,
    pub throughput_per_s: f64,
    pub p50_latency_ms: f64,
    pub p95_latency_ms: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Worker {
    pub id: String,
    pub host: Option<String>,
    pub mode: String,
    pub version: Option<String>,
    pub last_heartbeat: String,
    pub queue_depth: u64,
    pub in_flight: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Failure {
    pub session_id: String,
    pub stage: String,
    pub error: String,
    pub at: String,
}

/// One row of `GET /api/sessions`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SessionRow {
    pub id: String,
    pub lifecycle: String,
    pub parse_status: String,
    pub total_messages: u64,
    pub tokens_out: u64,
    pub cost_estimate_usd: f64,
    pub initial_prompt: Option<String>,
}

/// A page of `GET /api/sessions`; `total` (how many match) comes with first and offset pages.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SessionPage {
    pub sessions: Vec<SessionRow>,
    pub total: Option<u64>,
}

/// `GET /api/sessions/{id}`: the columns the detail view shows.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SessionInfo {
    pub id: String,
    pub workspace_id: String,
    pub lifecycle: String,
    pub parse_status: String,
    pub parse_error: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub end_reason: Option<String>,
    pub duration_ms: Option<i64>,
    pub source: Option<String>,
    pub model: Option<String>,
    pub git_branch: Option<String>,
    pub cwd: Option<String>,
    pub cc_version: Option<String>,
    pub transcript_size: Option<u64>,
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
}

/// One message of `GET /api/sessions/{id}/messages`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MessagePreview {
    pub ordinal: i64,
    pub message_type: String,
    pub role: Option<String>,
    pub timestamp: Option<String>,
    pub blocks: Vec<BlockPreview>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct BlockPreview {
    pub block_type: String,
    pub text: Option<String>,
    pub thinking: Option<String>,
    pub tool_name: Option<String>,
    pub result_text: Option<String>,
    pub is_error: Option<bool>,
}

impl BlockPreview {
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

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MessagePage {
    pub messages: Vec<MessagePreview>,
}

/// What the detail view shows of one session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionDetail {
    pub info: SessionInfo,
    pub first_messages: Vec<MessagePreview>,
}

/// `/healthz`: healthy, or degraded with reasons.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Health {
    pub status: String,
    pub reasons: Vec<String>,
}

impl Health {
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

/// The lifecycle states in the order sessions move through them.
pub const LIFECYCLES: [&str; 7] = [
    "detected",
    "capturing",
    "ended",
    "parsed",
    "summarized",
    "archived",
    "failed",
];
