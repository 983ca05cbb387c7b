//! The types on sessionflow's wire, defined once for the server that writes them and the
//! clients that read them (the CLI, the capture client, the tui): a change to a shape is a
//! change here, and both sides see it: the id rule, the events (client-sent and server-only
//! apart), sessions and batch-status, the monitor snapshot, heartbeats, the usage and tools
//! reports, search, health, and the files of a stored transcript. Answers are strict (`deny_unknown_fields`): a field one side adds and
//! the other does not know fails the contract test rather than vanishing.

pub mod events;
pub mod health;
pub mod heartbeat;
pub mod ids;
pub mod keys;
pub mod monitor;
pub mod reports;
pub mod search;
pub mod sessions;
pub mod transcripts;
