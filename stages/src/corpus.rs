//! Synthetic transcripts.
