//! The session pipeline around the stages: the bounded [`queue::PipelineQueue`], the
//! [`runner`] that composes the stages as streams with `buffer_unordered`, the [`metrics`] every
//! stage reports, the recovery and summary-retry [`sweeps`], and the [`events`] that drive the
//! session lifecycle, read from Redis Streams by the [`consumer`].
//!
//! Still to come here:
//! processors and their scheduler, the HTTP API, the monitor snapshot and the `serve` /
//! `worker` / `daemon` modes.

pub mod api;
pub mod consumer;
pub mod events;
pub mod metrics;
pub mod queue;
pub mod runner;
pub mod sweeps;
