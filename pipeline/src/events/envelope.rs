//! The event envelope every client sends and every worker reads: `{id (ULID), type, timestamp,
//! device_id, workspace_id, session_id, data, blob_refs}`, and the typed payloads of the event
//! types sessionflow acts on. Validation says exactly what is wrong, for a 400 or a dead letter.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sessionflow_protocol::ids::Id;

/// Longest event type accepted in an envelope (ids follow the id rule).
const MAX_NAME: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// A ULID the sender makes: the same id twice is one event.
    pub id: String,
    /// `session.start`, `session.end` or `session.compact`.
    #[serde(rename = "type")]
    pub kind: String,
    pub timestamp: DateTime<Utc>,
    pub device_id: String,
    pub workspace_id: String,
    #[serde(default)]
    pub session_id: Option<String>,
    /// The type's payload, e.g. for `session.start` `{cc_session_id, source, cwd, git_branch,
    /// model, cc_version, transcript_path}`; for `session.end` `{cc_session_id, end_reason,
    /// duration_ms, transcript_path}`.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub data: Value,
    #[serde(default)]
    pub blob_refs: Vec<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {id}: {reason}")]
pub struct InvalidEvent {
    pub id: String,
    pub reason: String,
}

pub use sessionflow_protocol::events::{
    EndReason, SessionCompact, SessionEnd, SessionStart, StartSource, TranscriptUploaded,
};

/// An event's payload, typed where sessionflow knows the type.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    SessionStart(SessionStart),
    SessionEnd(SessionEnd),
    SessionCompact(SessionCompact),
    TranscriptUploaded(TranscriptUploaded),
    /// A type with no handler: stored as it came.
    Other,
}

impl Event {
    /// A typed event (one a client sent, or one the server raised) as the processor handles
    /// and stores it.
    pub fn from_typed<B: serde::Serialize>(
        envelope: sessionflow_protocol::events::Envelope<B>,
        kind: &str,
    ) -> Result<Event, serde_json::Error> {
        let mut body = serde_json::to_value(&envelope.body)?;
        Ok(Event {
            id: envelope.id,
            kind: kind.to_owned(),
            timestamp: envelope.timestamp,
            device_id: envelope.device_id.into_string(),
            workspace_id: envelope.workspace_id.into_string(),
            session_id: envelope.session_id.map(Id::into_string),
            data: body["data"].take(),
            blob_refs: envelope.blob_refs,
        })
    }

    /// Checks the envelope and decodes the payload of the types sessionflow knows.
    pub fn validate(&self) -> Result<Payload, InvalidEvent> {
        let invalid = |reason: String| InvalidEvent {
            id: self.id.clone(),
            reason,
        };
        if ulid::Ulid::from_string(&self.id).is_err() {
            return Err(invalid(format!("id {:?} is not a ULID", self.id)));
        }
        if self.kind.is_empty() || self.kind.len() > MAX_NAME {
            return Err(invalid(format!("type must be 1 to {MAX_NAME} bytes")));
        }
        for (field, value) in [
            ("device_id", Some(&self.device_id)),
            ("workspace_id", Some(&self.workspace_id)),
            ("session_id", self.session_id.as_ref()),
        ] {
            if let Some(value) = value {
                Id::parse(field, value).map_err(|e| invalid(e.to_string()))?;
            }
        }
        if !self.data.is_object() {
            return Err(invalid("data must be a JSON object".into()));
        }
        let typed = |what: &str| -> Result<(), InvalidEvent> {
            if self.session_id.is_none() {
                return Err(invalid(format!("{what} needs a session_id")));
            }
            Ok(())
        };
        let decode = |e: serde_json::Error| invalid(format!("{} data: {e}", self.kind));
        Ok(match self.kind.as_str() {
            "session.start" => {
                typed("session.start")?;
                Payload::SessionStart(serde_json::from_value(self.data.clone()).map_err(decode)?)
            }
            "session.end" => {
                typed("session.end")?;
                Payload::SessionEnd(serde_json::from_value(self.data.clone()).map_err(decode)?)
            }
            "session.compact" => {
                typed("session.compact")?;
                Payload::SessionCompact(serde_json::from_value(self.data.clone()).map_err(decode)?)
            }
            "session.reparse" => {
                typed("session.reparse")?;
                Payload::Other
            }
            "transcript.uploaded" => {
                typed("transcript.uploaded")?;
                Payload::TranscriptUploaded(
                    serde_json::from_value(self.data.clone()).map_err(decode)?,
                )
            }
            _ => Payload::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, data: Value) -> Event {
        Event {
            id: ulid::Ulid::generate().to_string(),
            kind: kind.into(),
            timestamp: Utc::now(),
            device_id: "d1".into(),
            workspace_id: "w1".into(),
            session_id: Some("s1".into()),
            data,
            blob_refs: vec![],
        }
    }

    #[test]
    fn known_payloads_decode_and_bad_ones_say_why() {
        let start = event(
            "session.start",
            serde_json::json!({"cc_session_id": "s1", "cwd": "/x", "source": "resume"}),
        );
        assert!(
            matches!(start.validate(), Ok(Payload::SessionStart(s)) if s.source == StartSource::Resume)
        );

        let bad = event(
            "session.end",
            serde_json::json!({"cc_session_id": "s1", "end_reason": "vanished"}),
        );
        let err = bad.validate().unwrap_err();
        assert!(
            err.reason
                .starts_with("session.end data: unknown variant `vanished`"),
            "{}",
            err.reason
        );

        let mut no_session = event("session.start", serde_json::json!({}));
        no_session.session_id = None;
        assert_eq!(
            no_session.validate().unwrap_err().reason,
            "session.start needs a session_id"
        );

        let mut bad_id = event("x.custom", serde_json::json!({}));
        bad_id.id = "123".into();
        assert_eq!(
            bad_id.validate().unwrap_err().reason,
            "id \"123\" is not a ULID"
        );

        assert_eq!(
            event("x.custom", serde_json::json!({"any": 1})).validate(),
            Ok(Payload::Other)
        );
        assert!(
            event("x.custom", serde_json::json!([1]))
                .validate()
                .is_err()
        );
    }
}
