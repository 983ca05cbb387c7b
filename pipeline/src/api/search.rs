//! `GET /api/search`: every session's messages searched (see [`crate::search`]), within the
//! key's workspaces.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sessionflow_protocol::ids::Id;
use sessionflow_protocol::search::SearchPage;
use sessionflow_stages::store::Principal;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use crate::search::{self, DEFAULT_LIMIT, Request, SearchError};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// What to look for: words, `"an exact phrase"`, `-excluded`, `or`; identifiers and paths
    /// (`parse_bytes`, `src/main.rs`) as written.
    q: String,
    /// Only this workspace.
    workspace: Option<String>,
    /// Only this device.
    device: Option<String>,
    /// Messages written at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Messages written before this time (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// `user` or `assistant`.
    role: Option<String>,
    /// `text`, `thinking`, `tool_input` or `tool_result`.
    kind: Option<String>,
    /// Only this tool's inputs and results (`Bash`, `Edit`, …).
    tool: Option<String>,
    /// Hits per page, 1 to 100 (default 20).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The blocks that match, best first, each with its session, place and a highlighted snippet.
/// The newest 200 matches are ranked (`until` reaches older ones). A phrase is checked in a
/// bounded number of the entries that hold its words, newest first: when its newest 200
/// matches lie further back, the page's `searched_to` says how far back the search reached,
/// and a search with `until` set to it goes on.
#[utoipa::path(
    get,
    path = "/api/search",
    tag = "sessions",
    params(SearchQuery),
    responses(
        (status = 200, description = "A page of hits", body = SearchPage),
        (status = 400, description = "No word to look for, or a bad filter, limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn search(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<SearchPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let asked = query
        .workspace
        .as_deref()
        .map(|w| Id::parse("workspace", w))
        .transpose()?;
    let device = query
        .device
        .as_deref()
        .map(|d| Id::parse("device", d))
        .transpose()?;
    // The key's workspaces, narrowed to the one asked for (none of them: nothing).
    let workspaces = match (asked, principal.workspaces.clone()) {
        (Some(asked), None) => Some(vec![asked.into_string()]),
        (Some(asked), Some(mine)) => Some(
            mine.into_iter()
                .filter(|w| w.as_str() == asked.as_str())
                .collect(),
        ),
        (None, mine) => mine,
    };
    let request = Request {
        q: query.q,
        workspaces,
        device: device.map(Id::into_string),
        since: query.since,
        until: query.until,
        role: query.role,
        kind: query.kind,
        tool: query.tool,
        limit: query.limit.unwrap_or(DEFAULT_LIMIT),
        cursor: query.cursor,
    };
    match search::search(state.store.pool(), &request).await {
        Ok(page) => Ok(Json(page)),
        Err(SearchError::Invalid(reason)) => Err(ApiError::BadRequest(reason)),
        Err(SearchError::Database(e)) => {
            Err(ApiError::Unavailable(format!("database unavailable: {e}")))
        }
    }
}
