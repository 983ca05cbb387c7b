//! Counters every stage and the pipeline as a whole keep, for the monitor and the heartbeat:
//! in flight, done, failed and latency per stage; runs started, completed, stopped, failed,
//! deferred; sessions enqueued and dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sessionflow_stages::stage::RunEnd;

/// Upper bounds of the latency histogram's buckets, in microseconds.
const BUCKETS_US: [u64; 16] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// One stage's counters.
#[derive(Debug)]
pub struct StageMetrics {
    name: &'static str,
    in_flight: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    latency_total_us: AtomicU64,
    latency_max_us: AtomicU64,
    /// Runs per latency bucket; the last one holds everything slower than the largest bound.
    histogram: [AtomicU64; BUCKETS_US.len() + 1],
}

/// A stage's counters at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct StageSnapshot {
    pub name: &'static str,
    pub in_flight: u64,
    /// Runs the stage finished, whatever their outcome.
    pub done: u64,
    /// Of those, runs that ended with the session failed.
    pub failed: u64,
    pub mean_latency: Duration,
    pub max_latency: Duration,
    /// Median and 95th percentile, to the upper bound of their histogram bucket.
    pub p50_latency: Duration,
    pub p95_latency: Duration,
}

impl StageMetrics {
    pub fn new(name: &'static str) -> Self {
        StageMetrics {
            name,
            in_flight: AtomicU64::new(0),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latency_total_us: AtomicU64::new(0),
            latency_max_us: AtomicU64::new(0),
            histogram: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The latency under which a share `q` of the runs finished, to the bucket's bound (the
    /// slowest run's latency for the open-ended last bucket).
    fn percentile(&self, q: f64) -> Duration {
        let counts: Vec<u64> = self
            .histogram
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let wanted = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                let bound = BUCKETS_US
                    .get(i)
                    .copied()
                    .unwrap_or_else(|| self.latency_max_us.load(Ordering::Relaxed));
                return Duration::from_micros(bound);
            }
        }
        Duration::from_micros(self.latency_max_us.load(Ordering::Relaxed))
    }

    pub(crate) fn enter(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn leave<T>(&self, outcome: &Result<T, RunEnd>, took: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.done.fetch_add(1, Ordering::Relaxed);
        if matches!(outcome, Err(RunEnd::Failed(_))) {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency_total_us.fetch_add(us, Ordering::Relaxed);
        self.latency_max_us.fetch_max(us, Ordering::Relaxed);
        let bucket = BUCKETS_US.partition_point(|&bound| bound < us);
        self.histogram[bucket].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StageSnapshot {
        let done = self.done.load(Ordering::Relaxed);
        let total = self.latency_total_us.load(Ordering::Relaxed);
        StageSnapshot {
            name: self.name,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            done,
            failed: self.failed.load(Ordering::Relaxed),
            mean_latency: Duration::from_micros(total.checked_div(done).unwrap_or(0)),
            max_latency: Duration::from_micros(self.latency_max_us.load(Ordering::Relaxed)),
            p50_latency: self.percentile(0.5),
            p95_latency: self.percentile(0.95),
        }
    }
}

/// The pipeline's counters.
#[derive(Debug)]
pub struct PipelineMetrics {
    pub stages: [StageMetrics; 6],
    runs_in_flight: AtomicU64,
    runs_peak: AtomicU64,
    completed: AtomicU64,
    stopped: AtomicU64,
    failed: AtomicU64,
    deferred: AtomicU64,
    enqueued: AtomicU64,
    dropped: AtomicU64,
}

/// The pipeline's counters at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSnapshot {
    pub runs_in_flight: u64,
    /// The most runs ever in flight at once.
    pub runs_peak: u64,
    pub completed: u64,
    pub stopped: u64,
    pub failed: u64,
    pub deferred: u64,
    pub enqueued: u64,
    pub dropped: u64,
    pub stages: Vec<StageSnapshot>,
}

impl Default for PipelineMetrics {
    fn default() -> Self {
        PipelineMetrics {
            stages: [
                StageMetrics::new("fetch"),
                StageMetrics::new("download"),
                StageMetrics::new("parse"),
                StageMetrics::new("persist"),
                StageMetrics::new("summarize"),
                StageMetrics::new("backup"),
            ],
            runs_in_flight: AtomicU64::new(0),
            runs_peak: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            stopped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            deferred: AtomicU64::new(0),
            enqueued: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }
}

impl PipelineMetrics {
    pub(crate) fn stage(&self, name: &str) -> &StageMetrics {
        self.stages
            .iter()
            .find(|s| s.name == name)
            .unwrap_or(&self.stages[0])
    }

    pub(crate) fn run_started(&self) {
        let now = self.runs_in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.runs_peak.fetch_max(now, Ordering::Relaxed);
    }

    pub(crate) fn run_ended<T>(&self, outcome: &Result<T, RunEnd>) {
        self.runs_in_flight.fetch_sub(1, Ordering::Relaxed);
        let counter = match outcome {
            Ok(_) => &self.completed,
            Err(RunEnd::Stopped(_)) => &self.stopped,
            Err(RunEnd::Failed(_)) => &self.failed,
            Err(RunEnd::Deferred(_)) => &self.deferred,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn enqueued(&self) {
        self.enqueued.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> PipelineSnapshot {
        PipelineSnapshot {
            runs_in_flight: self.runs_in_flight.load(Ordering::Relaxed),
            runs_peak: self.runs_peak.load(Ordering::Relaxed),
            completed: self.completed.load(Ordering::Relaxed),
            stopped: self.stopped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            deferred: self.deferred.load(Ordering::Relaxed),
            enqueued: self.enqueued.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            stages: self.stages.iter().map(StageMetrics::snapshot).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let stage = StageMetrics::new("parse");
        let ok: Result<(), RunEnd> = Ok(());
        for ms in [1u64, 1, 2, 2, 2, 3, 4, 8, 20, 400] {
            stage.enter();
            stage.leave(&ok, Duration::from_millis(ms));
        }
        let s = stage.snapshot();
        assert_eq!(s.done, 10);
        assert_eq!(
            s.p50_latency,
            Duration::from_micros(2_500),
            "5th of 10 is 2 ms: bucket ≤2.5 ms"
        );
        assert_eq!(
            s.p95_latency,
            Duration::from_micros(500_000),
            "10th is 400 ms: bucket ≤500 ms"
        );
        assert_eq!(s.max_latency, Duration::from_millis(400));
        assert_eq!(
            StageMetrics::new("x").snapshot().p95_latency,
            Duration::ZERO
        );
    }
}
