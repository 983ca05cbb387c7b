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
mod openapi;
mod reports;
mod sessions;
mod upload;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use fred::prelude::Client;
use sessionflow_stages::blob::BlobStore;
use sessionflow_stages::store::Store;
use subtle::ConstantTimeEq;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::consumer;
use crate::events::{Event, EventProcessor, ProcessError};
use sessionflow_protocol::events::{ServerBody, ServerEvent};
use sessionflow_protocol::ids::Id;

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

/// The API's routes over `state`, each registered with its description in the OpenAPI
/// document `GET /api/openapi.json` serves.
pub fn router(state: ApiState) -> Router {
    let (router, document) = routes(state.clone()).split_for_parts();
    router
        .layer(axum::Extension(Arc::new(document)))
        .with_state(state)
}

/// The API's OpenAPI document, before the routes add their paths.
fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    openapi::ApiDoc::openapi()
}

fn routes(state: ApiState) -> OpenApiRouter<ApiState> {
    let api = OpenApiRouter::new()
        .routes(routes!(ingest::ingest))
        .routes(routes!(sessions::batch_status))
        .routes(routes!(monitor::monitor))
        .routes(routes!(browse::list))
        .routes(routes!(sessions::session))
        .routes(routes!(browse::messages))
        .routes(routes!(sessions::reparse))
        .routes(routes!(upload::upload))
        .routes(routes!(admin::run_processor))
        .routes(routes!(reports::usage))
        .routes(routes!(reports::tools))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(middleware::from_fn_with_state(state, authorize));
    OpenApiRouter::with_openapi(openapi())
        .merge(api)
        .routes(routes!(openapi::openapi))
        .routes(routes!(sessions::healthz))
        .routes(routes!(metrics::metrics))
}

/// The device id of events the API writes itself.
const API_DEVICE: &str = "sessionflow-api";

/// Records an event the API itself raises about a session, in-process or through the stream.
async fn announce(
    state: &ApiState,
    workspace_id: &Id,
    session_id: &Id,
    body: ServerBody,
) -> Result<(), ApiError> {
    let kind = body.kind();
    let typed = ServerEvent {
        id: ulid::Ulid::generate().to_string(),
        timestamp: chrono::Utc::now(),
        device_id: Id::parse("device_id", API_DEVICE)?,
        workspace_id: workspace_id.clone(),
        session_id: Some(session_id.clone()),
        body,
        blob_refs: Vec::new(),
    };
    let event = Event::from_typed(typed, kind)
        .map_err(|e| ApiError::Unavailable(format!("cannot encode {kind}: {e}")))?;
    match &state.ingest {
        Ingest::Embedded(processor) => match processor.process(&event).await {
            Ok(_) | Err(ProcessError::Handler { .. }) => Ok(()),
            Err(e) => Err(ApiError::Unavailable(e.to_string())),
        },
        Ingest::Redis { client, stream } => {
            crate::events::processor::record_accepted(
                state.store.pool(),
                std::slice::from_ref(&event),
            )
            .await
            .map_err(|e| ApiError::Unavailable(format!("database unavailable: {e}")))?;
            if let Err(e) = consumer::publish(client, stream, &event).await {
                tracing::warn!(event = %event.id, "Redis unavailable; the event waits in Postgres: {e}");
            }
            Ok(())
        }
    }
}

/// The system's health as this API sees it (its database, and its stream when it has one).
async fn health(state: &ApiState) -> sessionflow_protocol::health::HealthReport {
    let stream = match &state.ingest {
        Ingest::Redis { client, stream } => Some(crate::health::Stream {
            client,
            name: stream,
            group: consumer::GROUP,
        }),
        Ingest::Embedded(_) => None,
    };
    crate::health::check(state.store.pool(), stream).await
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
