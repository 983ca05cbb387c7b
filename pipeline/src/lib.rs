//! The session pipeline around the stages: the bounded [`queue::PipelineQueue`], the
//! [`runner`] that composes the stages as streams with `buffer_unordered`, the [`metrics`] every
//! stage reports, the recovery and summary-retry [`sweeps`], and the [`events`] that drive the
//! session lifecycle, read from Redis Streams by the [`consumer`].
//!
//! [`api`] is the HTTP API (with the monitor snapshot) and [`modes`] wires everything into
//! `serve`, `worker` and `daemon`; [`processors`] and their scheduler derive data from parsed
//! sessions (and [`search`] reads the index one of them keeps); [`capture`] is the client side:
//! backfill, hooks and their spool.

pub mod api;
pub mod capture;
pub mod consumer;
pub mod deletion;
pub mod events;
pub mod health;
pub mod heartbeat;
pub mod metrics;
pub mod modes;
pub mod processors;
pub mod queue;
pub mod runner;
pub mod search;
pub mod sweeps;

/// This machine's name (the kernel's, else `HOSTNAME`), for worker, consumer and device ids.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
}
