//! `GET /api/usage` and `GET /api/tools`: the reports `sessionflow usage` and `tools` print,
//! with the same JSON, each processor first brought up to date with the sessions changed since
//! it last ran.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use sessionflow_protocol::reports::{ToolsReport, UsageReport};
use sessionflow_stages::store::Principal;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use crate::processors::Processors;
use crate::processors::report::{Grouping, ReportError, Request};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// daily, monthly, session, device or workspace.
    by: Option<Grouping>,
    /// First and last day included (YYYY-MM-DD, in `timezone`).
    since: Option<chrono::NaiveDate>,
    until: Option<chrono::NaiveDate>,
    /// IANA time zone days are taken in [default: UTC].
    timezone: Option<String>,
}

/// Tokens and cost by day, month, session, device or workspace; each API response counted once
/// across sessions and devices (for the session whose transcript starts first). A key scoped to
/// workspaces sees its workspaces' sessions only.
#[utoipa::path(
    get,
    path = "/api/usage",
    tag = "reports",
    params(UsageQuery),
    responses(
        (status = 200, description = "The report; the row key is named after `by`", body = UsageReport),
        (status = 400, description = "Unknown `by`, time zone or date", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database or Redis cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn usage(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Json<UsageReport>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let request = Request {
        grouping: query.by.unwrap_or(Grouping::Daily),
        timezone: query.timezone.unwrap_or_else(|| "UTC".to_owned()),
        since: query.since,
        until: query.until,
        sessions: None,
        workspaces: principal.workspaces.clone(),
    };
    let processors = Processors::standard(state.store.pool().clone(), state.blobs.clone());
    match processors.usage_report(&request).await {
        Ok(report) => Ok(Json(report)),
        Err(e @ ReportError::TimeZone(_)) => Err(ApiError::BadRequest(e.to_string())),
        Err(e @ ReportError::Database(_)) => Err(ApiError::Unavailable(e.to_string())),
    }
}

/// Every tool's calls, failed calls, sessions and files, most called first (in the key's
/// workspaces).
#[utoipa::path(
    get,
    path = "/api/tools",
    tag = "reports",
    responses(
        (status = 200, description = "The tools", body = ToolsReport),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database or Redis cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn tools(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<ToolsReport>, ApiError> {
    let processors = Processors::standard(state.store.pool().clone(), state.blobs.clone());
    let tools = processors
        .tool_totals(principal.workspaces.as_deref())
        .await
        .map_err(|e| ApiError::Unavailable(format!("database: {e}")))?;
    Ok(Json(ToolsReport { tools }))
}
