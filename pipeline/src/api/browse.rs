//! Browsing: `GET /api/sessions` (filters, text search, sorting, keyset pagination and offsets) and
//! `GET /api/sessions/{id}/messages` (messages with their blocks, in order, paginated).

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sessionflow_protocol::ids::Id;
use sessionflow_protocol::sessions::{Message, MessagePage, SessionPage, SessionRow};
use sessionflow_stages::store::{Lifecycle, Principal};

use super::ApiState;
use super::error::{ApiError, ErrorBody};

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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only sessions in this lifecycle state.
    lifecycle: Option<String>,
    /// Only sessions of this workspace.
    workspace: Option<String>,
    /// Only sessions captured from this device.
    device: Option<String>,
    /// Sessions created at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Text the id, lifecycle, parse status, initial prompt, cwd, branch or model contains
    /// (case-insensitive).
    q: Option<String>,
    /// `created` (default), `cost`, `tokens` (output) or `messages`.
    sort: Option<String>,
    /// `desc` (default) or `asc`.
    order: Option<String>,
    /// Rows per page, 1 to 200 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page, for reading on in order.
    cursor: Option<String>,
    /// Rows to skip, for jumping into the middle of a long list (not with `cursor`).
    offset: Option<i64>,
}

/// What a list can be ordered by: the column and its SQL type, or none for the creation time
/// itself.
fn sort_column(sort: Option<&str>) -> Result<Option<(&'static str, &'static str)>, ApiError> {
    match sort.unwrap_or("created") {
        "created" => Ok(None),
        "cost" => Ok(Some(("cost_estimate_usd", "float8"))),
        "tokens" => Ok(Some(("tokens_out", "bigint"))),
        "messages" => Ok(Some(("total_messages", "integer"))),
        other => Err(ApiError::BadRequest(format!(
            "sort must be created, cost, tokens or messages, not {other:?}"
        ))),
    }
}

/// Where a page starts: after the row with this sort value (none when sorted by creation),
/// creation time and id.
struct Cursor {
    value: Option<f64>,
    at: DateTime<Utc>,
    id: String,
}

/// A cursor is `{micros}:{id}` (creation time in microseconds and id of the last row), prefixed
/// with `{value}@` when the list is sorted by something else.
fn decode_cursor(cursor: &str, sorted_by_value: bool) -> Result<Cursor, ApiError> {
    let bad = || ApiError::BadRequest(format!("cursor {cursor:?} is not one this API gave out"));
    let (value, rest) = match cursor.split_once('@') {
        Some((value, rest)) if sorted_by_value => {
            (Some(value.parse::<f64>().map_err(|_| bad())?), rest)
        }
        None if !sorted_by_value => (None, cursor),
        _ => {
            return Err(ApiError::BadRequest(format!(
                "cursor {cursor:?} belongs to a list in another order"
            )));
        }
    };
    let (micros, id) = rest.split_once(':').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok(Cursor {
        value,
        at,
        id: id.to_owned(),
    })
}

/// `%text%` for ILIKE, with the pattern characters in `text` taken literally.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The filters every list query shares; `$1`–`$5` (`$2`: the workspaces asked for and covered
/// by the key, none for all).
const LIST_FILTERS: &str = "($1::text IS NULL OR lifecycle = $1) \
     AND ($2::text[] IS NULL OR workspace_id = ANY($2)) \
     AND ($3::timestamptz IS NULL OR created_at >= $3) \
     AND ($4::text IS NULL OR concat_ws(' ', id, lifecycle, parse_status, initial_prompt, cwd, \
          git_branch, model) ILIKE $4) \
     AND ($5::text IS NULL OR device_id = $5)";

/// `GET /api/sessions`: a page of sessions, newest first unless sorted otherwise, with
/// `next_cursor` to read on and, on a first or offset page, `total` (how many match).
#[utoipa::path(
    get,
    path = "/api/sessions",
    tag = "sessions",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of sessions", body = SessionPage),
        (status = 400, description = "A bad filter, sort, limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database or Redis cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ListQuery>,
) -> Result<Json<SessionPage>, ApiError> {
    let limit = page_size(query.limit)?;
    if let Some(workspace) = &query.workspace {
        Id::parse("workspace", workspace)?;
    }
    if let Some(device) = &query.device {
        Id::parse("device", device)?;
    }
    let workspaces: Option<Vec<String>> = match (&query.workspace, &principal.workspaces) {
        (None, covered) => covered.clone(),
        (Some(asked), _) if principal.covers(asked) => Some(vec![asked.clone()]),
        // A workspace the key does not cover: nothing.
        (Some(_), _) => Some(Vec::new()),
    };
    if let Some(lifecycle) = &query.lifecycle {
        lifecycle
            .parse::<Lifecycle>()
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    let column = sort_column(query.sort.as_deref())?;
    let descending = match query.order.as_deref().unwrap_or("desc") {
        "desc" => true,
        "asc" => false,
        other => {
            return Err(ApiError::BadRequest(format!(
                "order must be asc or desc, not {other:?}"
            )));
        }
    };
    let offset = match (query.offset, &query.cursor) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give a cursor or an offset, not both".into(),
            ));
        }
        (Some(n), None) if n < 0 => {
            return Err(ApiError::BadRequest(format!(
                "offset must not be negative, not {n}"
            )));
        }
        (offset, _) => offset.unwrap_or(0),
    };
    let cursor = query
        .cursor
        .as_deref()
        .map(|c| decode_cursor(c, column.is_some()))
        .transpose()?;
    let pattern = query
        .q
        .as_deref()
        .filter(|q| !q.is_empty())
        .map(contains_pattern);
    // The page's keys are found first, narrow rows only; the JSON is built for those 200 alone,
    // not for every row an offset skips.
    let (direction, past) = if descending {
        ("DESC", "<")
    } else {
        ("ASC", ">")
    };
    let (key, order, after) = match column {
        None => (
            "0::float8",
            format!("created_at {direction}, id {direction}"),
            format!("(created_at, id) {past} ($6, $8)"),
        ),
        Some((column, kind)) => (
            column,
            format!("{column} {direction}, created_at {direction}, id {direction}"),
            format!("({column}, created_at, id) {past} ($7::float8::{kind}, $6, $8)"),
        ),
    };
    let sql = format!(
        "WITH page AS ( \
             SELECT id, {key}::float8 AS key, created_at FROM sessions \
             WHERE {LIST_FILTERS} AND ($6::timestamptz IS NULL OR {after}) \
             ORDER BY {order} LIMIT $9 OFFSET $10) \
         SELECT jsonb_build_object('id', s.id, 'workspace_id', s.workspace_id, \
                 'lifecycle', s.lifecycle, 'parse_status', s.parse_status, \
                 'started_at', s.started_at, 'ended_at', s.ended_at, 'cwd', s.cwd, \
                 'git_branch', s.git_branch, 'model', s.model, \
                 'total_messages', s.total_messages, 'tokens_in', s.tokens_in, \
                 'tokens_out', s.tokens_out, 'cache_read_tokens', s.cache_read_tokens, \
                 'cache_write_tokens', s.cache_write_tokens, \
                 'cost_estimate_usd', s.cost_estimate_usd, 'initial_prompt', s.initial_prompt, \
                 'summary', s.summary, 'created_at', s.created_at), \
                page.key, page.created_at, page.id \
         FROM page JOIN sessions s ON s.id = page.id \
         ORDER BY page.key {direction}, page.created_at {direction}, page.id {direction}"
    );
    let rows: Vec<(sqlx::types::Json<SessionRow>, f64, DateTime<Utc>, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(query.lifecycle.as_deref())
            .bind(&workspaces)
            .bind(query.since)
            .bind(pattern.as_deref())
            .bind(query.device.as_deref())
            .bind(cursor.as_ref().map(|c| c.at))
            .bind(cursor.as_ref().map_or(0.0, |c| c.value.unwrap_or(0.0)))
            .bind(cursor.as_ref().map(|c| c.id.as_str()))
            .bind(limit)
            .bind(offset)
            .fetch_all(state.store.pool())
            .await
            .map_err(unavailable)?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| {
            rows.last().map(|(_, value, at, id)| match column {
                None => format!("{}:{id}", at.timestamp_micros()),
                Some(_) => format!("{value}@{}:{id}", at.timestamp_micros()),
            })
        })
        .flatten();
    let total: Option<i64> = match cursor {
        Some(_) => None,
        None => Some(
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM sessions WHERE {LIST_FILTERS}"
            )))
            .bind(query.lifecycle.as_deref())
            .bind(&workspaces)
            .bind(query.since)
            .bind(pattern.as_deref())
            .bind(query.device.as_deref())
            .fetch_one(state.store.pool())
            .await
            .map_err(unavailable)?,
        ),
    };
    Ok(Json(SessionPage {
        sessions: rows.into_iter().map(|(row, ..)| row.0).collect(),
        next_cursor,
        total: total.and_then(|n| u64::try_from(n).ok()),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    /// Messages after this ordinal (`next_after` of the previous page).
    after: Option<i32>,
    /// Messages per page, 1 to 200 (default 50).
    limit: Option<i64>,
}

/// A session's messages in order, each with its content blocks.
#[utoipa::path(
    get,
    path = "/api/sessions/{id}/messages",
    tag = "sessions",
    params(("id" = String, Path, description = "Session id"), MessagesQuery),
    responses(
        (status = 200, description = "A page of messages", body = MessagePage),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "The database or Redis cannot be reached", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn messages(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Query(query): Query<MessagesQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let id = Id::parse("session_id", &id)?.into_string();
    let limit = page_size(query.limit)?;
    let workspace: Option<String> =
        sqlx::query_scalar("SELECT workspace_id FROM sessions WHERE id = $1")
            .bind(&id)
            .fetch_optional(state.store.pool())
            .await
            .map_err(unavailable)?;
    if !workspace.is_some_and(|w| principal.covers(&w)) {
        return Err(ApiError::NotFound(format!("session {id} not found")));
    }
    let messages: Vec<(i32, sqlx::types::Json<Message>)> = sqlx::query_as(
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
    Ok(Json(MessagePage {
        messages: messages.into_iter().map(|(_, m)| m.0).collect(),
        next_after: next_after.map(i64::from),
    }))
}
