//! The system's health as the API reports it: in `/healthz` (status and reasons), in the
//! monitor snapshot (`health`, with the figures) and in `/metrics`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Healthy, or degraded with the reasons an operator can act on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthReport {
    /// `ok` or `degraded`.
    pub status: String,
    pub reasons: Vec<String>,
    pub figures: Figures,
}

impl HealthReport {
    pub fn is_ok(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// What waits, and for how long.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Figures {
    /// Workers whose heartbeat is younger than 30 s.
    pub live_workers: u64,
    /// Accepted events not yet handled (failed handlers are not counted: they are retried or
    /// dead-lettered).
    pub events_waiting: u64,
    pub oldest_event_seconds: f64,
    /// Stream entries no consumer has been given yet (the group's lag).
    pub stream_lag: u64,
    /// Entries delivered and not acked, per consumer.
    pub stream_pending: Vec<ConsumerPending>,
    /// Sessions claimed or queued by workers that went silent.
    pub sessions_stranded: u64,
    pub stranded_by: Vec<Holder>,
    /// Ended sessions with their transcript waiting for (or in) a run.
    pub sessions_waiting: u64,
    /// The oldest of anything waiting: an event, a stranded or waiting session.
    pub oldest_waiting_seconds: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConsumerPending {
    pub consumer: String,
    pub pending: u64,
    /// Whether its worker's heartbeat is younger than 30 s.
    pub alive: bool,
}

/// A silent worker and the sessions it still holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Holder {
    pub worker: String,
    pub sessions: u64,
    /// Since its last heartbeat (none: its row is gone).
    pub silent_seconds: Option<f64>,
}

/// `/healthz`: `ok`, or `degraded` with the reasons.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Healthz {
    pub status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl Healthz {
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}
