//! sessionflow's stages and what they stand on.
//!
//! Today this crate owns the transcript parser ([`transcript`]), the synthetic corpus generator
//! ([`corpus`]) that benchmarks and load tests feed it, and the Postgres [`store`] with the
//! session lifecycle. The blob stores ([`blob`]) keep transcripts and parse backups. The pipeline's typed [`stage`]s
//! (fetch, download, parse, persist, summarize, backup) use them and the [`summarize`] port.
//! The [`redact`]or takes secrets out of parsed transcripts before anything is stored or sent.

pub mod blob;
pub mod corpus;
pub mod redact;
pub mod stage;
pub mod store;
pub mod summarize;
pub mod transcript;
