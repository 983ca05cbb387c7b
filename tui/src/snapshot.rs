//! What the monitor shows: `GET /api/monitor` and `GET /healthz`, as typed values. Fields the
//! server adds later are ignored; fields it leaves out take their defaults.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Monitor {
    pub sessions: SessionCounts,
    pub queue: Queue,
    pub stages: Vec<Stage>,
    pub workers: Vec<Worker>,
    pub recent_failures: Vec<Failure>,
    pub events_per_second: f64,
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

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SessionPage {
    pub sessions: Vec<SessionRow>,
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
