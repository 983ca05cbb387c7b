//! What the pipeline's tests share.

use chrono::Utc;
use sessionflow_pipeline::events::Event;

/// An event of `kind` about `session`, from device `laptop` in workspace `w1`, with a new ULID.
pub fn event(kind: &str, session: &str, data: serde_json::Value) -> Event {
    Event {
        id: ulid::Ulid::generate().to_string(),
        kind: kind.into(),
        timestamp: Utc::now(),
        device_id: "laptop".into(),
        workspace_id: "w1".into(),
        session_id: Some(session.into()),
        data,
        blob_refs: vec![],
    }
}
