//! sessionflow's stages and what they stand on.
//!
//! Today this crate owns the transcript parser ([`transcript`]) and the synthetic corpus
//! generator ([`corpus`]) that benchmarks and load tests feed it. The pipeline's typed stages
//! (fetch, download, parse, persist, summarize, backup) and the ports they use (Postgres store,
//! blob stores, summarizers) will live here beside them.

pub mod corpus;
pub mod transcript;
