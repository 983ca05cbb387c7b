//! The ratatui operator monitor: app state, widgets, the key-binding table that drives both the
//! key handler and the `?` help screen, and the async data source that feeds snapshots of queue
//! depth, lifecycle counts and stage throughput into the app through a channel.
//!
//! Nothing lives here yet.
