//! What a worker writes with each heartbeat (`workers.pipeline`): its pipeline's gauges, read by
//! the monitor snapshot and `/metrics` on any API server.

use serde::{Deserialize, Serialize};

/// One worker's pipeline at its last beat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerGauges {
    pub host: String,
    pub version: String,
    pub runs_in_flight: u64,
    pub completed: u64,
    pub stopped: u64,
    pub failed: u64,
    pub deferred: u64,
    pub enqueued: u64,
    pub dropped: u64,
    pub stages: Vec<StageGauges>,
    pub events: EventCounts,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageGauges {
    pub name: String,
    pub in_flight: u64,
    pub done: u64,
    pub failed: u64,
    /// Runs per second since the previous beat.
    pub throughput_per_s: f64,
    pub mean_latency_ms: f64,
    pub max_latency_ms: f64,
    pub p50_latency_ms: f64,
    pub p95_latency_ms: f64,
}

/// The worker's event handling since it started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventCounts {
    pub processed: u64,
    pub duplicates: u64,
    pub errors: u64,
}
