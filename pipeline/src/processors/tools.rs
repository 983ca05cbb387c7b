//! The `tools` processor: per session and tool name, how often it was called, how many calls
//! failed (the matching tool_result has `is_error`), and how many distinct files the calls named
//! (`file_path`, `notebook_path` or `path` in the input). It reads the session's stored rows,
//! not its transcript.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use sessionflow_protocol::reports::ToolTotals;
use sqlx::PgPool;

use super::{Processor, SessionInput};

pub struct ToolsProcessor;

impl Processor for ToolsProcessor {
    fn name(&self) -> &'static str {
        "tools"
    }

    fn default_interval(&self) -> Duration {
        Duration::from_secs(10 * 60)
    }

    fn process<'a>(&'a self, session: &'a SessionInput) -> BoxFuture<'a, Result<u64, String>> {
        async move {
            let database = |e: sqlx::Error| format!("database: {e}");
            let mut tx = session.pool().begin().await.map_err(database)?;
            sqlx::query("DELETE FROM tool_usage WHERE session_id = $1")
                .bind(&session.id)
                .execute(&mut *tx)
                .await
                .map_err(database)?;
            let rows = sqlx::query(
                "WITH uses AS ( \
                     SELECT tool_name, tool_use_id, \
                            COALESCE(tool_input->>'file_path', tool_input->>'notebook_path', \
                                     tool_input->>'path') AS file \
                     FROM content_blocks \
                     WHERE session_id = $1 AND block_type = 'tool_use' AND tool_name IS NOT NULL), \
                 results AS ( \
                     SELECT tool_use_id, bool_or(COALESCE(is_error, false)) AS failed \
                     FROM content_blocks \
                     WHERE session_id = $1 AND block_type = 'tool_result' \
                     GROUP BY tool_use_id) \
                 INSERT INTO tool_usage (session_id, tool_name, calls, errors, files) \
                 SELECT $1, u.tool_name, count(*), count(*) FILTER (WHERE r.failed), \
                        count(DISTINCT u.file) \
                 FROM uses u LEFT JOIN results r ON r.tool_use_id = u.tool_use_id \
                 GROUP BY u.tool_name",
            )
            .bind(&session.id)
            .execute(&mut *tx)
            .await
            .map_err(database)?
            .rows_affected();
            tx.commit().await.map_err(database)?;
            Ok(rows)
        }
        .boxed()
    }
}

/// Every tool's totals, most called first.
pub async fn totals(
    pool: &PgPool,
    workspaces: Option<&[String]>,
) -> Result<Vec<ToolTotals>, sqlx::Error> {
    let rows: Vec<(String, i64, i64, f64, i64, i64)> = sqlx::query_as(
        "SELECT tool_name, sum(calls)::bigint AS calls, sum(errors)::bigint AS errors, \
                (sum(errors)::float8 / GREATEST(sum(calls), 1)::float8) AS error_rate, \
                count(*) AS sessions, sum(files)::bigint AS files \
         FROM tool_usage \
         WHERE $1::text[] IS NULL \
            OR session_id IN (SELECT id FROM sessions WHERE workspace_id = ANY($1)) \
         GROUP BY tool_name ORDER BY calls DESC, tool_name",
    )
    .bind(workspaces)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(tool_name, calls, errors, error_rate, sessions, files)| ToolTotals {
                tool_name,
                calls,
                errors,
                error_rate,
                sessions,
                files,
            },
        )
        .collect())
}
