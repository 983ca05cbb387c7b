//! Browsing: `GET /api/sessions` (filters and keyset pagination, newest first) and
//! `GET /api/sessions/{id}/messages` (messages with their blocks, in order, paginated).

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sessionflow_stages::store::Lifecycle;

use super::ApiState;
use super::error::ApiError;

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 200;

fn page_size(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_PAGE}, not {n}"
        ))),
    }
}

fn unavailable(e: sqlx::Error) -> ApiError {
    ApiError::Unavailable(format!("database unavailable: {e}"))
}

#[derive(Deserialize)]
pub struct ListQuery {
    lifecycle: Option<String>,
    workspace: Option<String>,
    /// Sessions created at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A cursor is the last row's creation time in microseconds and its id: `{micros}:{id}`.
fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, String), ApiError> {
    let bad = || ApiError::BadRequest(format!("cursor {cursor:?} is not one this API gave out"));
    let (micros, id) = cursor.split_once(':').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok((at, id.to_owned()))
}

pub async fn list(
    State(state): State<ApiState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_size(query.limit)?;
    if let Some(lifecycle) = &query.lifecycle {
        lifecycle
            .parse::<Lifecycle>()
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    let (after_at, after_id) = match &query.cursor {
        Some(cursor) => {
            let (at, id) = decode_cursor(cursor)?;
            (Some(at), Some(id))
        }
        None => (None, None),
    };
    let rows: Vec<(Value, DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT jsonb_build_object('id', id, 'workspace_id', workspace_id, 'lifecycle', lifecycle, \
                 'parse_status', parse_status, 'started_at', started_at, 'ended_at', ended_at, \
                 'cwd', cwd, 'git_branch', git_branch, 'model', model, \
                 'total_messages', total_messages, 'tokens_in', tokens_in, 'tokens_out', tokens_out, \
                 'cache_read_tokens', cache_read_tokens, 'cache_write_tokens', cache_write_tokens, \
                 'cost_estimate_usd', cost_estimate_usd, 'initial_prompt', initial_prompt, \
                 'summary', summary, 'created_at', created_at), created_at, id \
         FROM sessions \
         WHERE ($1::text IS NULL OR lifecycle = $1) AND ($2::text IS NULL OR workspace_id = $2) \
           AND ($3::timestamptz IS NULL OR created_at >= $3) \
           AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5)) \
         ORDER BY created_at DESC, id DESC LIMIT $6",
    )
    .bind(query.lifecycle.as_deref())
    .bind(query.workspace.as_deref())
    .bind(query.since)
    .bind(after_at)
    .bind(after_id.as_deref())
    .bind(limit)
    .fetch_all(state.store.pool())
    .await
    .map_err(unavailable)?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| {
            rows.last()
                .map(|(_, at, id)| format!("{}:{id}", at.timestamp_micros()))
        })
        .flatten();
    let sessions: Vec<Value> = rows.into_iter().map(|(row, _, _)| row).collect();
    Ok(Json(
        json!({"sessions": sessions, "next_cursor": next_cursor}),
    ))
}

#[derive(Deserialize)]
pub struct MessagesQuery {
    /// Messages after this ordinal (`next_after` of the previous page).
    after: Option<i32>,
    limit: Option<i64>,
}

pub async fn messages(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(query): Query<MessagesQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_size(query.limit)?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM sessions WHERE id = $1")
        .bind(&id)
        .fetch_optional(state.store.pool())
        .await
        .map_err(unavailable)?;
    if exists.is_none() {
        return Err(ApiError::NotFound(format!("session {id} not found")));
    }
    let messages: Vec<(i32, Value)> = sqlx::query_as(
        "SELECT m.ordinal, jsonb_build_object('ordinal', m.ordinal, 'line_number', m.line_number, \
                 'message_type', m.message_type, 'role', m.role, 'model', m.model, \
                 'timestamp', m.\"timestamp\", 'is_sidechain', m.is_sidechain, \
                 'input_tokens', m.input_tokens, 'output_tokens', m.output_tokens, \
                 'cache_creation_input_tokens', m.cache_creation_input_tokens, \
                 'cache_read_input_tokens', m.cache_read_input_tokens, \
                 'blocks', COALESCE((SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object( \
                     'block_order', b.block_order, 'block_type', b.block_type, 'text', b.text, \
                     'thinking', b.thinking, 'tool_name', b.tool_name, 'tool_use_id', b.tool_use_id, \
                     'tool_input', b.tool_input, 'is_error', b.is_error, 'result_text', b.result_text)) \
                   ORDER BY b.block_order) \
                   FROM content_blocks b \
                   WHERE b.session_id = m.session_id AND b.message_ordinal = m.ordinal), '[]'::jsonb)) \
         FROM transcript_messages m \
         WHERE m.session_id = $1 AND m.ordinal > $2 ORDER BY m.ordinal LIMIT $3",
    )
    .bind(&id)
    .bind(query.after.unwrap_or(-1))
    .bind(limit)
    .fetch_all(state.store.pool())
    .await
    .map_err(unavailable)?;
    let next_after = (messages.len() as i64 == limit)
        .then(|| messages.last().map(|(ordinal, _)| *ordinal))
        .flatten();
    let messages: Vec<Value> = messages.into_iter().map(|(_, m)| m).collect();
    Ok(Json(
        json!({"messages": messages, "next_after": next_after}),
    ))
}
