//! The HTTP API (axum). Everything under `/api` needs `Authorization: Bearer
//! $SESSIONFLOW_API_KEY`; `/healthz` does not, `/metrics` only when `SESSIONFLOW_METRICS_KEY`
//! is set (then it needs that key). Bad requests get a 4xx with a JSON reason. The API guards
//! itself ([`Limits`]): at most so many `/api` requests at once (more get 503 with
//! `Retry-After`), and a time limit on each (408 past it).
//!
//! Events are handled in-process (embedded mode) or added to the Redis stream for the workers.

mod admin;
mod browse;
mod delete;
mod error;
mod ingest;
mod keys;
mod metrics;
mod monitor;
mod openapi;
mod reports;
mod search;
mod sessions;
mod transcript;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use fred::prelude::Client;
use sessionflow_stages::blob::BlobStore;
use sessionflow_stages::store::Store;
use subtle::ConstantTimeEq;
use tower_http::timeout::TimeoutLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::consumer;
use crate::events::{Event, EventProcessor, ProcessError};
use sessionflow_protocol::events::{ServerBody, ServerEvent};
use sessionflow_protocol::ids::Id;
use sessionflow_protocol::keys::Role;
use sessionflow_stages::store::Principal;

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
    /// Uploaded transcripts are stored redacted (`SESSIONFLOW_REDACT=all`).
    pub redact_uploads: bool,
}

/// How the API guards itself.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `/api` requests handled at once; more are refused at once with 503 and `Retry-After`.
    pub max_concurrent: usize,
    /// Time for one request, its body included (uploads have their own).
    pub request_timeout: Duration,
    /// Time for one transcript upload.
    pub upload_timeout: Duration,
    /// The bearer key `/metrics` needs; none: it is open.
    pub metrics_key: Option<Arc<str>>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent: 256,
            request_timeout: Duration::from_secs(30),
            upload_timeout: Duration::from_secs(10 * 60),
            metrics_key: None,
        }
    }
}

/// The API's routes over `state` with the default [`Limits`].
pub fn router(state: ApiState) -> Router {
    router_with(state, &Limits::default())
}

/// The API's routes over `state`, each registered with its description in the OpenAPI
/// document `GET /api/openapi.json` serves.
pub fn router_with(state: ApiState, limits: &Limits) -> Router {
    let (router, document) = routes(state.clone(), limits).split_for_parts();
    router
        .layer(axum::Extension(Arc::new(document)))
        .with_state(state)
}

/// The API's OpenAPI document, before the routes add their paths.
fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    openapi::ApiDoc::openapi()
}

fn routes(state: ApiState, limits: &Limits) -> OpenApiRouter<ApiState> {
    let uploads =
        OpenApiRouter::new()
            .routes(routes!(upload::upload))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                limits.upload_timeout,
            ));
    let at_most = limits.max_concurrent;
    let shed = tower::ServiceBuilder::new()
        .layer(HandleErrorLayer::new(
            move |_: tower::BoxError| async move { overloaded(at_most) },
        ))
        .layer(tower::load_shed::LoadShedLayer::new())
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(at_most));
    let api = OpenApiRouter::new()
        .routes(routes!(ingest::ingest))
        .routes(routes!(sessions::batch_status))
        .routes(routes!(monitor::monitor))
        .routes(routes!(browse::list))
        .routes(routes!(sessions::session, delete::delete))
        .routes(routes!(transcript::transcript))
        .routes(routes!(browse::messages))
        .routes(routes!(sessions::reparse))
        .routes(routes!(admin::run_processor))
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::revoke))
        .routes(routes!(reports::usage))
        .routes(routes!(reports::tools))
        .routes(routes!(search::search))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .merge(uploads)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(middleware::from_fn_with_state(state, authorize))
        .layer(shed);
    let metrics = OpenApiRouter::new()
        .routes(routes!(metrics::metrics))
        .layer(middleware::from_fn_with_state(
            limits.metrics_key.clone(),
            authorize_metrics,
        ));
    OpenApiRouter::with_openapi(openapi())
        .merge(api)
        .routes(routes!(openapi::openapi))
        .routes(routes!(sessions::healthz))
        .merge(metrics)
}

/// The answer to a request over [`Limits::max_concurrent`].
fn overloaded(at_most: usize) -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({
            "error": format!("the server is handling its limit of {at_most} requests; retry in a second")
        })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
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
        Ingest::Embedded(processor) => match processor.process_own(&event).await {
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

/// Why session `id` cannot be found: deleted for good (410, when the caller's key covers the
/// workspace it was in), or not found (404) — the same answer as for an id never seen.
async fn missing(state: &ApiState, principal: &Principal, id: &str) -> ApiError {
    match state.store.tombstone(id).await {
        Ok(Some(tombstone))
            if tombstone
                .workspace_id
                .as_deref()
                .is_some_and(|w| principal.covers(w)) =>
        {
            ApiError::Gone(format!(
                "session {id} was deleted at {}",
                tombstone.deleted_at.to_rfc3339()
            ))
        }
        Ok(_) => ApiError::NotFound(format!("session {id} not found")),
        Err(e) => ApiError::Unavailable(e.to_string()),
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

/// The bearer key of `request`, if any.
fn bearer(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|key| !key.is_empty())
}

/// Whether `request` carries `Authorization: Bearer {key}` (compared in constant time).
fn bears(request: &Request, key: &str) -> bool {
    bearer(request).is_some_and(|given| bool::from(given.as_bytes().ct_eq(key.as_bytes())))
}

/// The role a request needs: ingest for what capture sends (events, uploads, batch-status) and
/// for deleting a session (which the handler allows an ingest key only for its own scoped
/// workspaces), read for every other GET, admin for the rest (reparse, processors, keys).
fn needed_role(method: &Method, path: &str) -> Role {
    let capture = path == "/api/events/ingest"
        || path == "/api/sessions/batch-status"
        || path.ends_with("/transcript/upload");
    if path.starts_with("/api/admin/") {
        Role::Admin
    } else if (*method == Method::POST && capture)
        || (*method == Method::DELETE && path.starts_with("/api/sessions/"))
    {
        Role::Ingest
    } else if *method == Method::GET {
        Role::Read
    } else {
        Role::Admin
    }
}

/// Who is calling: the bootstrap key (`SESSIONFLOW_API_KEY`, admin of everything) or a key of
/// the `api_keys` table; 401 for no live key, 403 for a role that does not allow the route. The
/// caller is passed on to the handlers, which keep to its workspaces.
async fn authorize(State(state): State<ApiState>, mut request: Request, next: Next) -> Response {
    let principal = if bears(&request, &state.api_key) {
        Principal::bootstrap()
    } else {
        let given = bearer(&request).unwrap_or("");
        match state.store.resolve_key(given).await {
            Ok(Some(principal)) => principal,
            Ok(None) => return ApiError::Unauthorized.into_response(),
            Err(e) => {
                return ApiError::Unavailable(format!("database unavailable: {e}")).into_response();
            }
        }
    };
    let needed = needed_role(request.method(), request.uri().path());
    if !principal.role.allows(needed) {
        return ApiError::Forbidden(format!(
            "this key's role is {}; {} {} needs {needed} (or admin)",
            principal.role,
            request.method(),
            request.uri().path()
        ))
        .into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

async fn authorize_metrics(
    State(key): State<Option<Arc<str>>>,
    request: Request,
    next: Next,
) -> Response {
    match key {
        Some(key) if !bears(&request, &key) => (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({
                "error": "missing or wrong metrics key (send Authorization: Bearer $SESSIONFLOW_METRICS_KEY)"
            })),
        )
            .into_response(),
        _ => next.run(request).await,
    }
}
