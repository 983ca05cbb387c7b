//! The types on sessionflow's wire, defined once for the server that writes them and the
//! clients that read them (the CLI, the capture client, the tui): a change to a shape is a
//! change here, and both sides see it. So far: the id rule, the events (client-sent and
//! server-only apart), the usage and tools reports, and health.

pub mod events;
pub mod health;
pub mod ids;
pub mod reports;
