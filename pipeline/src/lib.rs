//! The session pipeline around the stages: the bounded [`queue::PipelineQueue`], the
//! [`runner`] that composes the stages as streams with `buffer_unordered`, the [`metrics`] every
//! stage reports, the recovery and summary-retry [`sweeps`], and the [`events`] that drive the
//! session lifecycle, read from Redis Streams by the [`consumer`].
//!
//! [`api`] is the HTTP API and [`modes`] wires everything into `serve`, `worker` and `daemon`.
//!
//! Still to come here: processors and their scheduler, and the monitor snapshot.

pub mod api;
pub mod capture;
pub mod consumer;
pub mod events;
pub mod heartbeat;
pub mod metrics;
pub mod modes;
pub mod processors;
pub mod queue;
pub mod runner;
pub mod sweeps;
