//! Events on the wire. What a client may send ([`ClientEvent`]: `session.start`,
//! `session.end`, `session.compact`) and what only the server raises ([`ServerEvent`]:
//! `transcript.uploaded`, `session.reparse`) are different types: ingest parses client events
//! only, so a client cannot even express a server event (400 naming its type).
//!
//! The envelope: `{id (ULID), type, timestamp, device_id, workspace_id, session_id, data,
//! blob_refs}`, the ids under the id rule.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{Id, field};

/// An event: the envelope around a typed body (`type` and `data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<B> {
    /// A ULID the sender makes: the same id twice is one event.
    pub id: String,
    pub timestamp: DateTime<Utc>,
    #[serde(deserialize_with = "field::device_id")]
    pub device_id: Id,
    #[serde(deserialize_with = "field::workspace_id")]
    pub workspace_id: Id,
    #[serde(default, deserialize_with = "field::session_id")]
    pub session_id: Option<Id>,
    #[serde(flatten)]
    pub body: B,
    #[serde(default)]
    pub blob_refs: Vec<String>,
}

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ClientBody {
    #[serde(rename = "session.start")]
    SessionStart(SessionStart),
    #[serde(rename = "session.end")]
    SessionEnd(SessionEnd),
    #[serde(rename = "session.compact")]
    SessionCompact(SessionCompact),
}

/// What only the server raises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ServerBody {
    #[serde(rename = "transcript.uploaded")]
    TranscriptUploaded(TranscriptUploaded),
    #[serde(rename = "session.reparse")]
    SessionReparse(Reparse),
    /// A session deleted for good: its tombstone in the event log.
    #[serde(rename = "session.deleted")]
    SessionDeleted(SessionDeleted),
}

pub type ClientEvent = Envelope<ClientBody>;
pub type ServerEvent = Envelope<ServerBody>;

impl ClientBody {
    pub fn kind(&self) -> &'static str {
        match self {
            ClientBody::SessionStart(_) => "session.start",
            ClientBody::SessionEnd(_) => "session.end",
            ClientBody::SessionCompact(_) => "session.compact",
        }
    }
}

impl ServerBody {
    pub fn kind(&self) -> &'static str {
        match self {
            ServerBody::TranscriptUploaded(_) => "transcript.uploaded",
            ServerBody::SessionReparse(_) => "session.reparse",
            ServerBody::SessionDeleted(_) => "session.deleted",
        }
    }
}

/// Where a session started from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartSource {
    Startup,
    Resume,
    Clear,
    Compact,
    Backfill,
}

impl StartSource {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            StartSource::Startup => "startup",
            StartSource::Resume => "resume",
            StartSource::Clear => "clear",
            StartSource::Compact => "compact",
            StartSource::Backfill => "backfill",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionStart {
    pub cc_session_id: String,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub git_branch: Option<String>,
    #[serde(default)]
    pub git_remote: Option<String>,
    #[serde(default)]
    pub cc_version: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    pub source: StartSource,
    #[serde(default)]
    pub transcript_path: Option<String>,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndReason {
    Exit,
    Clear,
    Logout,
    Crash,
    Other,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Exit => "exit",
            EndReason::Clear => "clear",
            EndReason::Logout => "logout",
            EndReason::Crash => "crash",
            EndReason::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionEnd {
    pub cc_session_id: String,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    pub end_reason: EndReason,
    #[serde(default)]
    pub transcript_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionCompact {
    pub cc_session_id: String,
}

/// Raised by the API once a transcript is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptUploaded {
    pub key: String,
    pub size: u64,
    pub sha256: String,
    /// Its files, when it is more than the main transcript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<crate::transcripts::Parts>,
}

/// Written when a session is deleted for good (recorded as handled: there is nothing left to
/// do); while the session has no row again, its tombstone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionDeleted {
    /// `request` (the API or the CLI) or `retention`.
    pub reason: String,
    /// Who asked: an API key's id, `bootstrap`, `cli` or `retention`.
    pub by: String,
    /// Messages the session held.
    pub messages: i64,
}

/// Raised by the API when an operator asks for a session to be parsed again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reparse {}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(kind: &str, data: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"id": "01JDEMO0000000000000000001", "type": kind,
            "timestamp": "2026-12-02T10:00:00Z", "device_id": "laptop", "workspace_id": "w1",
            "session_id": "s1", "data": data})
    }

    #[test]
    fn a_client_event_reads_and_writes_the_envelope() {
        let start = wire(
            "session.start",
            serde_json::json!({"cc_session_id": "s1", "source": "startup"}),
        );
        let event: ClientEvent = serde_json::from_value(start).unwrap();
        assert_eq!(event.body.kind(), "session.start");
        let back = serde_json::to_value(&event).unwrap();
        assert_eq!(back["type"], "session.start");
        assert_eq!(back["data"]["source"], "startup");
        assert_eq!(back["workspace_id"], "w1");
    }

    #[test]
    fn a_client_cannot_send_what_the_server_raises() {
        for kind in ["transcript.uploaded", "session.reparse", "x.custom"] {
            let err = serde_json::from_value::<ClientEvent>(wire(kind, serde_json::json!({})))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("unknown variant `{kind}`")), "{err}");
        }
        let bad_id = serde_json::json!({"id": "x", "type": "session.compact",
            "timestamp": "2026-12-02T10:00:00Z", "device_id": "a/b", "workspace_id": "w1",
            "data": {"cc_session_id": "s1"}});
        assert!(serde_json::from_value::<ClientEvent>(bad_id).is_err());
    }
}
