//! `/api/admin/keys`: API keys for an admin key — make one (shown once), list them (never the
//! key), revoke one.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use sessionflow_protocol::ids::Id;
use sessionflow_protocol::keys::{CreatedKey, KeyInfo, NewKeyRequest};

use super::error::{ApiError, ErrorBody, json_body};
use super::{ApiState, MAX_JSON_BODY};

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(format!("database unavailable: {e}"))
}

/// Makes a key with a role and the workspaces it covers; the answer holds the key, once.
#[utoipa::path(
    post,
    path = "/api/admin/keys",
    tag = "keys",
    request_body = NewKeyRequest,
    responses(
        (status = 201, description = "The key, shown this once", body = CreatedKey),
        (status = 400, description = "A bad role or workspace id", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let request: NewKeyRequest = json_body(&headers, body, MAX_JSON_BODY).await?;
    let workspaces = request
        .workspaces
        .iter()
        .enumerate()
        .map(|(i, w)| Id::parse(&format!("workspaces[{i}]"), w))
        .collect::<Result<Vec<_>, _>>()?;
    let created = state
        .store
        .create_key(
            request.name.as_deref(),
            request.role,
            &workspaces,
            request.expires_at,
        )
        .await
        .map_err(unavailable)?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Every key, newest first, revoked and expired ones too; never the keys themselves.
#[utoipa::path(
    get,
    path = "/api/admin/keys",
    tag = "keys",
    responses(
        (status = 200, description = "The keys", body = Vec<KeyInfo>),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(State(state): State<ApiState>) -> Result<Json<Vec<KeyInfo>>, ApiError> {
    Ok(Json(state.store.list_keys().await.map_err(unavailable)?))
}

/// Revokes a key: from now on it is refused (401).
#[utoipa::path(
    delete,
    path = "/api/admin/keys/{id}",
    tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such key, or revoked already", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.revoke_key(&id).await.map_err(unavailable)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "no live key {}",
            id.escape_debug()
        )))
    }
}
