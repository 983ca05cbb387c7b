//! `GET /api/monitor`: the operator's snapshot of the whole system, as the server builds it and
//! the tui reads it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::health::HealthReport;

/// One snapshot: health with its figures, sessions by state, queues, stages, workers, recent
/// failures, sessions waiting too long, the event rate and the processors. For a key scoped to
/// workspaces, what is about sessions (their counts, failures, waits, events) is about its
/// workspaces' only; the workers, stages, queues and processors are the system's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorSnapshot {
    pub generated_at: DateTime<Utc>,
    pub health: HealthReport,
    pub sessions: SessionCounts,
    pub queue: QueueSummary,
    /// Each stage summed over the live workers.
    pub stages: Vec<StageSummary>,
    /// Workers whose heartbeat is younger than 30 s.
    pub workers: Vec<WorkerRow>,
    /// The newest failed sessions, at most 20.
    pub recent_failures: Vec<Failure>,
    /// Ended sessions with a transcript that have waited over 10 minutes, at most 20.
    pub stuck: Vec<Stuck>,
    /// Events accepted per second over the last minute.
    pub events_per_second: f64,
    pub processors: Vec<ProcessorRow>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionCounts {
    pub by_lifecycle: BTreeMap<String, u64>,
    pub by_parse_status: BTreeMap<String, u64>,
    /// Secrets taken out of the sessions' messages, by kind.
    pub redactions: BTreeMap<String, u64>,
}

/// The in-memory queues of the live workers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueSummary {
    pub depth: u64,
    /// Sessions the queues turned away since their workers started (the sweeps take them).
    pub dropped: u64,
    pub workers: Vec<WorkerQueue>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerQueue {
    pub worker: String,
    pub depth: u64,
    pub dropped: u64,
}

/// A stage over every live worker: counts summed, the slowest worker's percentiles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageSummary {
    pub name: String,
    pub in_flight: u64,
    pub done: u64,
    pub failed: u64,
    pub throughput_per_s: f64,
    pub p50_latency_ms: f64,
    pub p95_latency_ms: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerRow {
    pub id: String,
    pub host: String,
    /// `worker` or `daemon`.
    pub mode: String,
    pub version: String,
    pub last_heartbeat: DateTime<Utc>,
    pub queue_depth: u64,
    /// Pipeline runs in flight.
    pub in_flight: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    pub session_id: String,
    /// The stage that failed (`pipeline` when none was recorded).
    pub stage: String,
    pub error: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Stuck {
    pub session_id: String,
    pub waiting_since: DateTime<Utc>,
}

/// A session processor: its runs, and what it made of the sessions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessorRow {
    pub name: String,
    pub last_run: Option<DateTime<Utc>>,
    pub next_run: Option<DateTime<Utc>>,
    pub running: bool,
    /// The last run's report (`{scanned, processed, skipped, errors, items}`) or its error.
    #[schema(value_type = Option<Object>)]
    pub last_result: Option<serde_json::Value>,
    pub processed: u64,
    pub failing: u64,
    pub parked: u64,
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
