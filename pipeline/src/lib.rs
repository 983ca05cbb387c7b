//! The session pipeline around the stages: the bounded `PipelineQueue`, the runner that composes
//! the stages as streams with `buffer_unordered`, event envelopes and their handlers, the Redis
//! Streams consumer, the recovery and summary-retry sweeps, processors and their scheduler, the
//! HTTP API, the monitor snapshot and the `serve` / `worker` / `daemon` modes.
//!
//! Nothing lives here yet; the transcript parser it will drive is in `sessionflow-stages`.
