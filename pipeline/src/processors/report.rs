//! Usage reports from what the `usage` processor stored: per day, month, session, device or
//! workspace, each API response counted once across all sessions — for the session whose
//! transcript starts first (ties: the smaller session id), with its final figures (a copy cut
//! short in a resumed session may hold only a partial usage line; the largest is the
//! response's) — so every grouping's totals agree, and a response copied onto several devices
//! counts for the device of its first session.
//!
//! A report computed once is kept (`usage_report_cache`) under the generation of the usage data
//! it was computed from, which moves in the same transaction as any change to that data: asking
//! again with nothing new is two indexed lookups.

use serde::{Deserialize, Serialize};
use sessionflow_protocol::reports::{ModelUsage, RowKey, Tokens, UsageReport, UsageRow};
use sessionflow_stages::transcript::PricingTable;
use sqlx::PgPool;

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Grouping {
    Daily,
    Monthly,
    Session,
    Device,
    Workspace,
}

impl Grouping {
    /// The JSON key naming a row.
    pub fn key_name(self) -> &'static str {
        match self {
            Grouping::Daily => "date",
            Grouping::Monthly => "month",
            Grouping::Session => "session_id",
            Grouping::Device => "device_id",
            Grouping::Workspace => "workspace_id",
        }
    }

    /// Whether rows are periods of time (taken in a time zone).
    pub fn is_period(self) -> bool {
        matches!(self, Grouping::Daily | Grouping::Monthly)
    }

    fn row_key(self, key: String) -> RowKey {
        match self {
            Grouping::Daily => RowKey::Date(key),
            Grouping::Monthly => RowKey::Month(key),
            Grouping::Session => RowKey::SessionId(key),
            Grouping::Device => RowKey::DeviceId(key),
            Grouping::Workspace => RowKey::WorkspaceId(key),
        }
    }

    /// The SQL that names a chosen response's row.
    fn key_sql(self) -> &'static str {
        match self {
            Grouping::Daily => "to_char(c.\"timestamp\" AT TIME ZONE $1, 'YYYY-MM-DD')",
            Grouping::Monthly => "to_char(c.\"timestamp\" AT TIME ZONE $1, 'YYYY-MM')",
            Grouping::Session => "c.session_id",
            Grouping::Device => "s.device_id",
            Grouping::Workspace => "s.workspace_id",
        }
    }
}

/// What a report is asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub grouping: Grouping,
    /// IANA time zone days are taken in.
    pub timezone: String,
    /// First and last day included, in `timezone`.
    pub since: Option<chrono::NaiveDate>,
    pub until: Option<chrono::NaiveDate>,
    /// Only the responses counted for these sessions (not kept in the cache).
    pub sessions: Option<Vec<String>>,
    /// Only the responses counted for sessions of these workspaces (a scoped key's report):
    /// a response is still counted once, for the session whose transcript starts first
    /// whatever its workspace.
    pub workspaces: Option<Vec<String>>,
}

impl Request {
    fn cache_key(&self) -> String {
        let mut workspaces = self.workspaces.clone();
        if let Some(workspaces) = &mut workspaces {
            workspaces.sort();
        }
        format!(
            "{:?}|{}|{}|{}{}",
            self.grouping,
            self.timezone,
            self.since.map(|d| d.to_string()).unwrap_or_default(),
            self.until.map(|d| d.to_string()).unwrap_or_default(),
            workspaces.map_or_else(String::new, |w| format!("|{}", w.join(",")))
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("unknown time zone {0:?}: give an IANA name such as Europe/Paris or UTC")]
    TimeZone(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// One (row, model) sum as the database computes it; what the cache keeps.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
struct Line {
    key: String,
    model: String,
    input: i64,
    output: i64,
    write: i64,
    read: i64,
    cost: f64,
    priced: bool,
}

/// The report asked for, from the cache when the usage data has not changed since it was
/// computed.
pub async fn report(pool: &PgPool, request: &Request) -> Result<UsageReport, ReportError> {
    let mut tx = pool.begin().await?;
    // One snapshot for the generation and the data it stands for.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let generation: i64 = sqlx::query_scalar("SELECT n FROM usage_generation")
        .fetch_one(&mut *tx)
        .await?;
    let key = request.sessions.is_none().then(|| request.cache_key());
    let cached: Option<sqlx::types::Json<Vec<Line>>> = match &key {
        Some(key) => {
            sqlx::query_scalar(
                "SELECT lines FROM usage_report_cache WHERE request = $1 AND generation = $2",
            )
            .bind(key)
            .bind(generation)
            .fetch_optional(&mut *tx)
            .await?
        }
        None => None,
    };
    let lines = match cached {
        Some(lines) => {
            tx.commit().await?;
            lines.0
        }
        None => {
            let lines = compute(&mut tx, request).await?;
            tx.commit().await?;
            if let Some(key) = &key {
                store(pool, key, generation, &lines).await?;
            }
            lines
        }
    };
    Ok(assemble(request.grouping, lines))
}

async fn compute(tx: &mut sqlx::PgConnection, request: &Request) -> Result<Vec<Line>, ReportError> {
    let zone = sqlx::query("SELECT now() AT TIME ZONE $1")
        .bind(&request.timezone)
        .execute(&mut *tx)
        .await;
    match zone {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("22023") => {
            return Err(ReportError::TimeZone(request.timezone.clone()));
        }
        other => other?,
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
         SELECT COALESCE({key}, {missing}) AS key, COALESCE(c.model, 'unknown') AS model, \
                sum(c.input_tokens)::bigint AS input, sum(c.output_tokens)::bigint AS output, \
                sum(c.cache_creation_input_tokens)::bigint AS write, \
                sum(c.cache_read_input_tokens)::bigint AS read, \
                COALESCE(sum(c.cost_usd), 0)::float8 AS cost, \
                bool_and(c.cost_usd IS NOT NULL) AS priced \
         FROM chosen c LEFT JOIN sessions s ON s.id = c.session_id \
         WHERE ($2::date IS NULL OR (c.\"timestamp\" AT TIME ZONE $1)::date >= $2) \
           AND ($3::date IS NULL OR (c.\"timestamp\" AT TIME ZONE $1)::date <= $3) \
           AND ($4::text[] IS NULL OR c.session_id = ANY($4)) \
           AND ($5::text[] IS NULL OR s.workspace_id = ANY($5)) \
         GROUP BY 1, 2 ORDER BY 1, 2",
        key = request.grouping.key_sql(),
        missing = if request.grouping.is_period() {
            "'undated'"
        } else {
            "'unknown'"
        },
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&request.timezone)
        .bind(request.since)
        .bind(request.until)
        .bind(&request.sessions)
        .bind(&request.workspaces)
        .fetch_all(&mut *tx)
        .await?)
}

/// Keeps `lines` for `request` at `generation`, and drops what older data computed.
async fn store(
    pool: &PgPool,
    key: &str,
    generation: i64,
    lines: &[Line],
) -> Result<(), ReportError> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM usage_report_cache WHERE generation < $1")
        .bind(generation)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO usage_report_cache (request, generation, lines) VALUES ($1, $2, $3) \
         ON CONFLICT (request) DO UPDATE SET generation = EXCLUDED.generation, \
             lines = EXCLUDED.lines, computed_at = now() \
         WHERE usage_report_cache.generation <= EXCLUDED.generation",
    )
    .bind(key)
    .bind(generation)
    .bind(sqlx::types::Json(lines))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

fn assemble(grouping: Grouping, lines: Vec<Line>) -> UsageReport {
    let pricing = PricingTable::embedded();
    let mut report = UsageReport::default();
    for line in lines {
        let tokens = Tokens {
            input_tokens: line.input,
            output_tokens: line.output,
            cache_creation_input_tokens: line.write,
            cache_read_input_tokens: line.read,
            cost_usd: Some(line.cost),
        };
        report.totals.add(&tokens);
        let model = ModelUsage {
            cost_estimated: line.priced && pricing.is_estimated(&line.model),
            model: line.model,
            tokens: Tokens {
                cost_usd: line.priced.then_some(line.cost),
                ..tokens.clone()
            },
        };
        match report.rows.last_mut() {
            Some(row) if row.key.value() == line.key => {
                row.tokens.add(&tokens);
                row.models.push(model);
            }
            _ => report.rows.push(UsageRow {
                key: grouping.row_key(line.key),
                tokens,
                models: vec![model],
            }),
        }
    }
    report
}
