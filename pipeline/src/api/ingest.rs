//! `POST /api/events/ingest`: 1 to 100 events, validated as a whole, then processed in-process
//! or — with Redis — recorded in Postgres (one statement for the request's events) and added to
//! the stream for the workers: an event answered 202 is kept even if the stream loses it.
//! Answers 202 with how many were accepted and how many were duplicates.

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sessionflow_stages::store::Principal;

use super::error::{ApiError, ErrorBody, json_body};
use super::{ApiState, Ingest, MAX_JSON_BODY};
use crate::consumer;
use crate::events::processor::record_accepted;
use crate::events::{Event, ProcessError, Processed};
use sessionflow_protocol::events::ClientEvent;

/// The request's events, each a client event that passed every check.
struct Checked {
    events: Vec<Event>,
}

/// Most events in one request.
pub const MAX_EVENTS: usize = 100;

/// 1 to 100 event envelopes, each `session.start`, `session.end` or `session.compact`
/// (`transcript.uploaded` and `session.reparse` are raised by the server only).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct IngestRequest {
    /// Read one by one, so that a refusal names the event.
    #[schema(value_type = Vec<Event>)]
    events: Vec<Box<serde_json::value::RawValue>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct IngestResponse {
    /// Events new to the server.
    accepted: usize,
    /// Events it had already (same `id`): harmless to send again.
    duplicates: usize,
}

/// Records events: `session.start`, `session.end`, `session.compact`. Each event's `id` is a
/// ULID the client makes, so sending one again is harmless.
#[utoipa::path(
    post,
    path = "/api/events/ingest",
    tag = "capture",
    request_body = IngestRequest,
    responses(
        (status = 202, description = "Recorded", body = IngestResponse),
        (status = 400, description = "An event is malformed; the reason names it (`events[i]: …`)", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
        (status = 415, description = "Declared as something else than JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database or Redis cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn ingest(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<IngestResponse>), ApiError> {
    let request: IngestRequest = json_body(&headers, body, MAX_JSON_BODY).await?;
    let count = request.events.len();
    if !(1..=MAX_EVENTS).contains(&count) {
        return Err(ApiError::BadRequest(format!(
            "send 1 to {MAX_EVENTS} events, not {count}"
        )));
    }
    let mut events = Vec::with_capacity(count);
    for (i, raw) in request.events.iter().enumerate() {
        // Read once, straight into the type a client may send: the id rule, the known types
        // and their payloads are checked by reading it.
        let refused = |reason: String| {
            #[derive(Deserialize)]
            struct Named<'a> {
                #[serde(borrow)]
                id: Option<std::borrow::Cow<'a, str>>,
            }
            let named = serde_json::from_str::<Named>(raw.get())
                .ok()
                .and_then(|n| n.id)
                .map(|id| format!("event {}: ", id.escape_debug()))
                .unwrap_or_default();
            ApiError::BadRequest(format!("events[{i}]: {named}{reason}"))
        };
        let typed: ClientEvent =
            serde_json::from_str(raw.get()).map_err(|e| refused(e.to_string()))?;
        if ulid::Ulid::from_string(&typed.id).is_err() {
            return Err(refused(format!("id {:?} is not a ULID", typed.id)));
        }
        let kind = typed.body.kind();
        if typed.session_id.is_none() {
            return Err(refused(format!("{kind} needs a session_id")));
        }
        if !principal.covers(typed.workspace_id.as_str()) {
            return Err(ApiError::Forbidden(format!(
                "events[{i}]: this key does not cover workspace {}",
                typed.workspace_id
            )));
        }
        events.push(Event::from_typed(typed, kind).map_err(|e| refused(e.to_string()))?);
    }
    // A session belongs to its workspace for good: an event naming it under another is refused,
    // so no one takes over (or learns of) another workspace's session by its id.
    let ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e.session_id.as_deref())
        .collect();
    let owners: Vec<(String, String)> =
        sqlx::query_as("SELECT id, workspace_id FROM sessions WHERE id = ANY($1)")
            .bind(&ids)
            // Planned for these ids each time (a plan kept from when the table was small
            // would read all of it).
            .persistent(false)
            .fetch_all(state.store.pool())
            .await
            .map_err(|e| ApiError::Unavailable(format!("database unavailable: {e}")))?;
    for (i, event) in events.iter().enumerate() {
        let owner = owners
            .iter()
            .find(|(id, _)| Some(id.as_str()) == event.session_id.as_deref());
        if let Some((id, workspace)) = owner
            && *workspace != event.workspace_id
        {
            return Err(ApiError::Conflict(format!(
                "events[{i}]: session {id} belongs to another workspace"
            )));
        }
    }
    let request = Checked { events };
    let (mut accepted, mut duplicates) = (0, 0);
    match &state.ingest {
        Ingest::Embedded(processor) => {
            // One batch: recorded in one transaction, handled in order.
            for outcome in processor.process_batch(&request.events).await {
                match outcome {
                    Ok(Processed::Duplicate) => duplicates += 1,
                    Ok(_) => accepted += 1,
                    // Recorded; the handler's failure is logged and the event kept.
                    Err(ProcessError::Handler { .. }) => accepted += 1,
                    Err(e @ ProcessError::Database { .. }) => {
                        return Err(ApiError::Unavailable(e.to_string()));
                    }
                    Err(ProcessError::Invalid(e)) => {
                        return Err(ApiError::BadRequest(e.to_string()));
                    }
                }
            }
        }
        Ingest::Redis { client, stream } => {
            let new = record_accepted(state.store.pool(), &request.events)
                .await
                .map_err(|e| ApiError::Unavailable(format!("database unavailable: {e}")))?;
            accepted = new.len();
            duplicates = count - accepted;
            for event in request.events.iter().filter(|e| new.contains(&e.id)) {
                // Kept already: a lost signal only delays it until a worker's sweep.
                if let Err(e) = consumer::publish(client, stream, event).await {
                    tracing::warn!(event = %event.id, "Redis unavailable; the event waits in Postgres: {e}");
                }
            }
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(IngestResponse {
            accepted,
            duplicates,
        }),
    ))
}
