//! The capture side: what runs on a developer's machine and sends sessions to a server —
//! discovery of transcripts on disk ([`discover`]), the API client with shared back-off
//! ([`client`]), backfill with pipeline tracking ([`backfill`]), the Claude Code hooks and the
//! spool that keeps what hooks could not send ([`spool`]), the merge of our hooks into Claude
//! Code's settings ([`settings`]), and restoring stored sessions where Claude Code reads them
//! ([`restore`]).

pub mod backfill;
pub mod client;
pub mod discover;
pub mod restore;
pub mod settings;
pub mod spool;
