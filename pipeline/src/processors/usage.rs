//! The `usage` processor: one row per API response of a session (`usage_responses`) with its
//! tokens and cost, and when the session's transcript starts (`usage_sessions`). Split lines of
//! one response collapse (the largest usage wins, as the parser and ccusage do); a response is
//! keyed `message.id:requestId`, which Claude Code copies into resumed and forked sessions, so
//! reports can count it once across sessions; a line without `requestId` is keyed within its own
//! session only.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use sessionflow_stages::transcript::{ParseOptions, PricingTable, TokenUsage, parse_bytes};

use super::{Processor, SessionInput};

pub struct UsageProcessor;

/// One response's usage in a session.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub key: String,
    pub model: Option<String>,
    pub at: Option<DateTime<Utc>>,
    pub usage: TokenUsage,
}

/// The responses of a transcript, keyed for reports, and when it starts.
pub fn responses(session_id: &str, transcript: &[u8]) -> (Vec<Response>, Option<DateTime<Utc>>) {
    let parsed = parse_bytes(transcript, &ParseOptions::default());
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Response> = Vec::new();
    for message in &parsed.messages {
        let Some(usage) = message.usage else { continue };
        let key = match (&message.api_message_id, &message.request_id) {
            (Some(id), Some(request)) => format!("{id}:{request}"),
            (Some(id), None) => format!("session:{session_id}:{id}"),
            (None, _) => format!("session:{session_id}:line:{}", message.line_number),
        };
        let response = Response {
            key: key.clone(),
            model: message.model.clone(),
            at: message.timestamp,
            usage,
        };
        match by_key.get(&key) {
            Some(&at) if out[at].usage.total() >= usage.total() => {}
            Some(&at) => out[at] = response,
            None => {
                by_key.insert(key, out.len());
                out.push(response);
            }
        }
    }
    (out, parsed.metadata.first_timestamp)
}

impl Processor for UsageProcessor {
    fn name(&self) -> &'static str {
        "usage"
    }

    fn default_interval(&self) -> Duration {
        Duration::from_secs(5 * 60)
    }

    fn works_offline(&self) -> bool {
        true
    }

    fn process<'a>(&'a self, session: &'a SessionInput) -> BoxFuture<'a, Result<u64, String>> {
        async move {
            let bytes = session.transcript().await?;
            let id = session.id.clone();
            let (rows, first_at) = tokio::task::spawn_blocking(move || responses(&id, &bytes))
                .await
                .map_err(|e| e.to_string())?;
            let pricing = PricingTable::embedded();
            let mut keys = Vec::with_capacity(rows.len());
            let mut models = Vec::with_capacity(rows.len());
            let mut ats = Vec::with_capacity(rows.len());
            let mut tokens: [Vec<i64>; 4] = Default::default();
            let mut costs = Vec::with_capacity(rows.len());
            for r in &rows {
                keys.push(r.key.clone());
                models.push(r.model.clone());
                ats.push(r.at);
                tokens[0].push(r.usage.input_tokens as i64);
                tokens[1].push(r.usage.output_tokens as i64);
                tokens[2].push(r.usage.cache_creation_input_tokens as i64);
                tokens[3].push(r.usage.cache_read_input_tokens as i64);
                costs.push(match r.model.as_deref() {
                    Some(m) if m.starts_with('<') => Some(0.0),
                    Some(m) => pricing.cost(m, &r.usage),
                    None => None,
                });
            }
            let database = |e: sqlx::Error| format!("database: {e}");
            let mut tx = session.pool().begin().await.map_err(database)?;
            sqlx::query("DELETE FROM usage_responses WHERE session_id = $1")
                .bind(&session.id)
                .execute(&mut *tx)
                .await
                .map_err(database)?;
            sqlx::query(
                "INSERT INTO usage_responses (session_id, response_key, model, \"timestamp\", \
                     input_tokens, output_tokens, cache_creation_input_tokens, \
                     cache_read_input_tokens, cost_usd) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::timestamptz[], \
                     $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::float8[])",
            )
            .bind(&session.id)
            .bind(&keys)
            .bind(&models)
            .bind(&ats)
            .bind(&tokens[0])
            .bind(&tokens[1])
            .bind(&tokens[2])
            .bind(&tokens[3])
            .bind(&costs)
            .execute(&mut *tx)
            .await
            .map_err(database)?;
            sqlx::query(
                "INSERT INTO usage_sessions (session_id, first_at) VALUES ($1, $2) \
                 ON CONFLICT (session_id) DO UPDATE SET first_at = EXCLUDED.first_at",
            )
            .bind(&session.id)
            .bind(first_at)
            .execute(&mut *tx)
            .await
            .map_err(database)?;
            tx.commit().await.map_err(database)?;
            Ok(rows.len() as u64)
        }
        .boxed()
    }
}
