//! Usage reports from what the `usage` processor stored: per day, month or session, each API
//! response counted once across all sessions — for the session whose transcript starts first
//! (ties: the smaller session id), with its final figures (a copy cut short in a resumed
//! session may hold only a partial usage line; the largest is the response's) — so daily,
//! monthly and session totals always agree.

use serde::Serialize;
use sqlx::PgPool;

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Daily,
    Monthly,
    Session,
}

impl Grouping {
    /// The JSON key naming a row.
    pub fn key_name(self) -> &'static str {
        match self {
            Grouping::Daily => "date",
            Grouping::Monthly => "month",
            Grouping::Session => "session_id",
        }
    }
}

/// Token counts and cost; `cost_usd` leaves out unpriced models (they are listed apart).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tokens {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cost_usd: f64,
}

impl Tokens {
    fn add(&mut self, other: &Tokens) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
        self.cost_usd += other.cost_usd;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRow {
    pub model: String,
    #[serde(flatten)]
    pub tokens: Tokens,
    /// False when the model is not in the pricing table (its cost is not in `cost_usd`).
    pub priced: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The date (YYYY-MM-DD), month (YYYY-MM) or session id.
    pub key: String,
    #[serde(flatten)]
    pub tokens: Tokens,
    pub models: Vec<ModelRow>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
    pub totals: Tokens,
    /// Models without a price, whose cost is left out.
    pub unpriced: Vec<String>,
}

/// The report, dates taken in `timezone` (IANA), limited to responses dated `since..=until`.
pub async fn report(
    pool: &PgPool,
    grouping: Grouping,
    timezone: &str,
    since: Option<chrono::NaiveDate>,
    until: Option<chrono::NaiveDate>,
) -> Result<Report, sqlx::Error> {
    let key = match grouping {
        Grouping::Daily => "to_char(\"timestamp\" AT TIME ZONE $1, 'YYYY-MM-DD')",
        Grouping::Monthly => "to_char(\"timestamp\" AT TIME ZONE $1, 'YYYY-MM')",
        Grouping::Session => "session_id",
    };
    let sql = format!(
        "WITH owner AS ( \
             SELECT DISTINCT ON (u.response_key) u.response_key, u.session_id \
             FROM usage_responses u LEFT JOIN usage_sessions f ON f.session_id = u.session_id \
             ORDER BY u.response_key, f.first_at ASC NULLS LAST, u.session_id), \
         final AS ( \
             SELECT DISTINCT ON (response_key) * FROM usage_responses \
             ORDER BY response_key, input_tokens + output_tokens \
                      + cache_creation_input_tokens + cache_read_input_tokens DESC, session_id), \
         chosen AS ( \
             SELECT o.session_id, f.model, f.\"timestamp\", f.input_tokens, f.output_tokens, \
                    f.cache_creation_input_tokens, f.cache_read_input_tokens, f.cost_usd \
             FROM owner o JOIN final f ON f.response_key = o.response_key) \
         SELECT COALESCE({key}, 'undated'), COALESCE(model, 'unknown'), \
                sum(input_tokens)::bigint, sum(output_tokens)::bigint, \
                sum(cache_creation_input_tokens)::bigint, sum(cache_read_input_tokens)::bigint, \
                COALESCE(sum(cost_usd), 0)::float8, bool_and(cost_usd IS NOT NULL) \
         FROM chosen \
         WHERE ($2::date IS NULL OR (\"timestamp\" AT TIME ZONE $1)::date >= $2) \
           AND ($3::date IS NULL OR (\"timestamp\" AT TIME ZONE $1)::date <= $3) \
         GROUP BY 1, 2 ORDER BY 1, 2"
    );
    type Line = (String, String, i64, i64, i64, i64, f64, bool);
    let lines: Vec<Line> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(timezone)
        .bind(since)
        .bind(until)
        .fetch_all(pool)
        .await?;
    let mut report = Report::default();
    for (key, model, input, output, write, read, cost, priced) in lines {
        let tokens = Tokens {
            input_tokens: input,
            output_tokens: output,
            cache_creation_input_tokens: write,
            cache_read_input_tokens: read,
            cost_usd: cost,
        };
        if !priced && !report.unpriced.contains(&model) {
            report.unpriced.push(model.clone());
        }
        report.totals.add(&tokens);
        match report.rows.last_mut() {
            Some(row) if row.key == key => {
                row.tokens.add(&tokens);
                row.models.push(ModelRow {
                    model,
                    tokens,
                    priced,
                });
            }
            _ => report.rows.push(Row {
                key,
                tokens: tokens.clone(),
                models: vec![ModelRow {
                    model,
                    tokens,
                    priced,
                }],
            }),
        }
    }
    Ok(report)
}
