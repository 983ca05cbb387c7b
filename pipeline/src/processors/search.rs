//! The `search` processor: keeps `search_entries`, one row per block that holds text (what was
//! said, thought, sent to a tool and returned by it), with its words and their neighbouring pairs
//! as a `tsvector` ([`crate::search::index_terms`]) under a GIN index (and the words of its
//! time, see [`crate::search::time_words`]) — built off the persist path, from the stored
//! (already redacted) rows, so that parsing never waits on index maintenance. A session is
//! searchable one run after it is parsed (the default interval is 5 s).

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{Processor, SessionInput};
use crate::search::{index_terms, index_text};

pub struct SearchProcessor;

/// One stored block, as read for indexing.
type BlockRow = (
    i32,
    i32,
    String,
    Option<String>,
    Option<chrono::DateTime<chrono::Utc>>,
    Option<String>,
    Option<String>,
);

impl Processor for SearchProcessor {
    fn name(&self) -> &'static str {
        "search"
    }

    fn default_interval(&self) -> Duration {
        Duration::from_secs(5)
    }

    fn process<'a>(&'a self, session: &'a SessionInput) -> BoxFuture<'a, Result<u64, String>> {
        async move {
            let database = |e: sqlx::Error| format!("database: {e}");
            let mut tx = session.pool().begin().await.map_err(database)?;
            // The kind, the tool (a result's tool is its call's) and the searchable text.
            let blocks: Vec<BlockRow> = sqlx::query_as(
                "WITH calls AS ( \
                     SELECT DISTINCT ON (tool_use_id) tool_use_id, tool_name FROM content_blocks \
                     WHERE session_id = $1 AND block_type = 'tool_use' \
                       AND tool_use_id IS NOT NULL) \
                 SELECT b.message_ordinal, b.block_order, \
                        CASE b.block_type WHEN 'tool_use' THEN 'tool_input' ELSE b.block_type END, \
                        m.role, m.\"timestamp\", COALESCE(b.tool_name, c.tool_name), \
                        CASE b.block_type WHEN 'text' THEN b.text WHEN 'thinking' THEN b.thinking \
                             WHEN 'tool_result' THEN b.result_text \
                             ELSE b.tool_input::text END \
                 FROM content_blocks b \
                 JOIN transcript_messages m \
                   ON m.session_id = b.session_id AND m.ordinal = b.message_ordinal \
                 LEFT JOIN calls c ON b.block_type = 'tool_result' AND c.tool_use_id = b.tool_use_id \
                 WHERE b.session_id = $1 \
                   AND b.block_type IN ('text', 'thinking', 'tool_use', 'tool_result')",
            )
            .bind(&session.id)
            .fetch_all(&mut *tx)
            .await
            .map_err(database)?;
            sqlx::query("DELETE FROM search_entries WHERE session_id = $1")
                .bind(&session.id)
                .execute(&mut *tx)
                .await
                .map_err(database)?;
            let (mut ordinals, mut orders, mut kinds, mut roles, mut times, mut tools, mut terms) =
                (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
            for (ordinal, order, kind, role, at, tool, text) in blocks {
                let text = match (kind.as_str(), text) {
                    // A tool's input is searched by its values (a command, a path), not its keys.
                    ("tool_input", Some(json)) => input_values(&json),
                    (_, Some(text)) => index_text(&text),
                    (_, None) => continue,
                };
                if text.is_empty() {
                    continue;
                }
                ordinals.push(ordinal);
                orders.push(order);
                kinds.push(kind);
                roles.push(role);
                times.push(at);
                tools.push(tool);
                terms.push(index_terms(&text));
            }
            let rows = sqlx::query(
                "INSERT INTO search_entries (session_id, message_ordinal, block_order, \
                     workspace_id, device_id, \"timestamp\", role, kind, tool_name, terms) \
                 SELECT s.id, e.ordinal, e.block, s.workspace_id, s.device_id, e.at, e.role, \
                        e.kind, e.tool, \
                        e.terms::tsvector || search_time_words(e.at) \
                 FROM sessions s, \
                      unnest($2::int[], $3::int[], $4::text[], $5::text[], $6::timestamptz[], \
                             $7::text[], $8::text[]) AS e(ordinal, block, kind, role, at, tool, terms) \
                 WHERE s.id = $1",
            )
            .bind(&session.id)
            .bind(&ordinals)
            .bind(&orders)
            .bind(&kinds)
            .bind(&roles)
            .bind(&times)
            .bind(&tools)
            .bind(&terms)
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

/// The string values of a tool's input, in the index's form.
fn input_values(json: &str) -> String {
    fn collect(value: &serde_json::Value, out: &mut String) {
        match value {
            serde_json::Value::String(s) => {
                out.push(' ');
                out.push_str(s);
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            serde_json::Value::Object(fields) => fields.values().for_each(|v| collect(v, out)),
            other => {
                out.push(' ');
                out.push_str(&other.to_string());
            }
        }
    }
    let mut text = String::new();
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(value) => collect(&value, &mut text),
        Err(_) => text.push_str(json),
    }
    index_text(&text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_tools_input_is_searched_by_its_values() {
        assert_eq!(
            super::input_values(
                r#"{"command":"cargo test -p stages","timeout":60,"file_path":"/src/main.rs"}"#
            ),
            "cargo test p stages src main rs 60"
        );
    }
}
