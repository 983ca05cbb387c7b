//! The spool: what a hook could not send (server down, no key yet) is written here, one file per
//! item, and sent by the next hook call or backfill. Items are claimed by renaming before they
//! are sent, so two hooks running at once never send one twice; one the server refuses for good
//! moves to `rejected/` with the reason instead of being retried forever.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::client::{Client, ClientError};
use super::discover::Admission;
use crate::events::Event;

/// Something to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Item {
    Events {
        events: Vec<Event>,
    },
    /// The transcript at `transcript_path` (and its subagent files), read when it is sent.
    Upload {
        session_id: String,
        workspace_id: String,
        transcript_path: PathBuf,
    },
}

impl Item {
    /// Sends the item.
    pub async fn send(&self, client: &Client, admission: &Admission) -> Result<(), ClientError> {
        match self {
            Item::Events { events } => client.send_events(events).await,
            Item::Upload {
                session_id,
                workspace_id: _,
                transcript_path,
            } => {
                // Checked again when sent: the path may have changed since it was spooled.
                let session = admission
                    .admit(transcript_path)
                    .map_err(ClientError::Refused)?;
                if &session.id != session_id {
                    return Err(ClientError::Refused(format!(
                        "{} is the transcript of session {}, not of {session_id}",
                        transcript_path.display(),
                        session.id
                    )));
                }
                client.upload(&session, false).await.map(|_| ())
            }
        }
    }
}

/// What a delivery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    pub sent: usize,
    pub rejected: usize,
    /// Still spooled (the server could not be reached).
    pub left: usize,
}

/// A claim older than this belongs to a process that died; it may be taken again.
const STALE_CLAIM: Duration = Duration::from_secs(10 * 60);

pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Spool { dir: dir.into() }
    }

    /// `SESSIONFLOW_SPOOL`, else `~/.local/state/sessionflow/spool`.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("SESSIONFLOW_SPOOL").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(std::env::temp_dir)
            .join("sessionflow/spool")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keeps `item` for later: written aside, then renamed into place.
    pub fn push(&self, item: &Item) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let name = ulid::Ulid::generate().to_string();
        let aside = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(format!("{name}.json"));
        std::fs::write(&aside, serde_json::to_vec(item)?)?;
        std::fs::rename(&aside, &path)?;
        Ok(path)
    }

    /// Items waiting, oldest first (names are ULIDs).
    pub fn waiting(&self) -> Vec<PathBuf> {
        let mut items: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.ends_with(".json") || (name.contains(".json.sending-") && is_stale(p))
            })
            .collect();
        items.sort();
        items
    }

    /// Sends what is waiting, oldest first; stops at the first item the server cannot take
    /// now, leaving it and the rest for the next time.
    pub async fn deliver(&self, client: &Client, admission: &Admission) -> Delivered {
        let mut delivered = Delivered::default();
        let waiting = self.waiting();
        for (i, path) in waiting.iter().enumerate() {
            let base = original_name(path);
            let claimed = self
                .dir
                .join(format!("{base}.sending-{}", std::process::id()));
            if std::fs::rename(path, &claimed).is_err() {
                continue; // another process took it
            }
            let item: Result<Item, String> = std::fs::read(&claimed)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
            let outcome = match item {
                Ok(item) => item.send(client, admission).await,
                Err(e) => Err(ClientError::Refused(format!("unreadable spool item: {e}"))),
            };
            match outcome {
                Ok(()) => {
                    let _ = std::fs::remove_file(&claimed);
                    delivered.sent += 1;
                }
                Err(ClientError::Refused(reason)) => {
                    tracing::warn!("spooled {base} refused: {reason}");
                    let rejected = self.dir.join("rejected");
                    let _ = std::fs::create_dir_all(&rejected);
                    let _ = std::fs::write(rejected.join(format!("{base}.reason")), &reason);
                    let _ = std::fs::rename(&claimed, rejected.join(&base));
                    delivered.rejected += 1;
                }
                Err(ClientError::Unavailable(_)) => {
                    let _ = std::fs::rename(&claimed, self.dir.join(&base));
                    delivered.left = waiting.len() - i;
                    break;
                }
            }
        }
        delivered
    }
}

/// `X.json` of `X.json` or `X.json.sending-PID`.
fn original_name(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match name.split_once(".sending-") {
        Some((base, _)) => base.to_owned(),
        None => name.to_owned(),
    }
}

fn is_stale(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .is_some_and(|age| age > STALE_CLAIM)
}
