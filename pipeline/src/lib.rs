//! The session pipeline around the stages: the bounded [`queue::PipelineQueue`], the
//! [`runner`] that composes the stages as streams with `buffer_unordered`, the [`metrics`] every
//! stage reports, and the recovery and summary-retry [`sweeps`].
//!
//! Still to come here: event envelopes and their handlers, the Redis Streams consumer,
//! processors and their scheduler, the HTTP API, the monitor snapshot and the `serve` /
//! `worker` / `daemon` modes.

pub mod metrics;
pub mod queue;
pub mod runner;
pub mod sweeps;
