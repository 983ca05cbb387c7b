//! The HTTP API (axum). Everything under `/api` needs `Authorization: Bearer
//! $SESSIONFLOW_API_KEY`; `/healthz` and `/metrics` do not. Bad requests get a 4xx with a
//! JSON reason.
//!
//! Events are handled in-process (embedded mode) or added to the Redis stream for the workers.

mod admin;
mod browse;
mod error;
mod ingest;
mod metrics;
mod monitor;
mod sessions;
mod upload;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fred::prelude::Client;
use sessionflow_stages::blob::BlobStore;
use sessionflow_stages::store::Store;
use subtle::ConstantTimeEq;

use crate::consumer;
use crate::events::{Event, EventProcessor, ProcessError};

pub use error::ApiError;
pub use upload::MAX_TRANSCRIPT;

/// Largest JSON request body.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// Where accepted events go.
#[derive(Clone)]
pub enum Ingest {
    /// Processed in this process, before the response.
    Embedded(Arc<EventProcessor>),
    /// Added to the stream for the workers.
    Redis { client: Client, stream: String },
}

#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub blobs: Arc<dyn BlobStore>,
    pub ingest: Ingest,
    pub api_key: Arc<str>,
    /// Largest transcript upload, in bytes.
    pub max_transcript: u64,
}

/// The API's routes over `state`.
pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/events/ingest", post(ingest::ingest))
        .route("/sessions/batch-status", post(sessions::batch_status))
        .route("/monitor", get(monitor::monitor))
        .route("/sessions", get(browse::list))
        .route("/sessions/{id}", get(sessions::session))
        .route("/sessions/{id}/messages", get(browse::messages))
        .route("/sessions/{id}/reparse", post(sessions::reparse))
        .route("/sessions/{id}/transcript/upload", post(upload::upload))
        .route("/admin/run-session-processor", post(admin::run_processor))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .nest("/api", api)
        .route("/healthz", get(sessions::healthz))
        .route("/metrics", get(metrics::metrics))
        .with_state(state)
}

/// The device id of events the API writes itself.
const API_DEVICE: &str = "sessionflow-api";

/// Records an event the API itself raises about a session, in-process or through the stream.
async fn announce(
    state: &ApiState,
    kind: &str,
    workspace_id: &str,
    session_id: &str,
    data: serde_json::Value,
) -> Result<(), ApiError> {
    let event = Event {
        id: ulid::Ulid::generate().to_string(),
        kind: kind.to_owned(),
        timestamp: chrono::Utc::now(),
        device_id: API_DEVICE.to_owned(),
        workspace_id: workspace_id.to_owned(),
        session_id: Some(session_id.to_owned()),
        data,
        blob_refs: Vec::new(),
    };
    match &state.ingest {
        Ingest::Embedded(processor) => match processor.process(&event).await {
            Ok(_) | Err(ProcessError::Handler { .. }) => Ok(()),
            Err(e) => Err(ApiError::Unavailable(e.to_string())),
        },
        Ingest::Redis { client, stream } => consumer::publish(client, stream, &event)
            .await
            .map(|_| ())
            .map_err(|e| ApiError::Unavailable(format!("Redis unavailable: {e}"))),
    }
}

async fn authorize(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let matches: bool = given.as_bytes().ct_eq(state.api_key.as_bytes()).into();
    if given.is_empty() || !matches {
        return ApiError::Unauthorized.into_response();
    }
    next.run(request).await
}
