//! The pipeline's stages: typed async steps with a name, each taking what the previous one
//! produced and either passing its output on or ending the session's run.
//!
//! fetch → download → parse → persist → summarize → backup. Each stage holds only the ports it
//! uses. The runner (in `sessionflow-pipeline`) composes them as streams and measures them.

mod backup;
mod download;
mod fetch;
mod parse;
mod persist;
mod summarize;

use std::fmt;
use std::future::Future;

pub use backup::{Backup, RunReport};
pub use download::{Download, Downloaded};
pub use fetch::Fetch;
pub use parse::{Parse, ParsedSession};
pub use persist::Persist;
pub use summarize::{Summarize, Summarized};

/// How a session's run ended before its last stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Nothing to do, or another process got there first; nothing was changed.
    Stopped(String),
    /// The stage failed the session with this reason; the runner records it (`failed`, with
    /// the stage).
    Failed(String),
    /// A transient error (the database was unreachable, say); the session was left as it was
    /// for the recovery sweep to pick up.
    Deferred(String),
}

impl fmt::Display for RunEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunEnd::Stopped(reason) => write!(f, "stopped: {reason}"),
            RunEnd::Failed(reason) => write!(f, "failed: {reason}"),
            RunEnd::Deferred(reason) => write!(f, "deferred: {reason}"),
        }
    }
}

/// One step of a session's run.
pub trait Stage: Send + Sync + 'static {
    type Input: Send + 'static;
    type Output: Send + 'static;

    /// The stage's name in logs, metrics and the monitor.
    fn name(&self) -> &'static str;

    fn run(&self, input: Self::Input) -> impl Future<Output = Result<Self::Output, RunEnd>> + Send;
}
