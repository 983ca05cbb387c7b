//! `sessionflow usage daily|monthly|session`: token usage and cost from the `usage` processor's
//! data, each API response counted once across all sessions.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};
use sessionflow_pipeline::processors::report::{self, Grouping, Report, Tokens};
use sessionflow_stages::store::Store;

/// Token usage and cost per day, month or session.
#[derive(clap::Args)]
pub struct Args {
    #[arg(value_enum)]
    by: By,
    /// First day included (YYYY-MM-DD, in --timezone).
    #[arg(long)]
    since: Option<chrono::NaiveDate>,
    /// Last day included (YYYY-MM-DD, in --timezone).
    #[arg(long)]
    until: Option<chrono::NaiveDate>,
    /// IANA time zone the days are taken in [default: this machine's].
    #[arg(long)]
    timezone: Option<String>,
    /// `{"rows": [...], "totals": {...}}` instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    database: crate::options::Database,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum By {
    Daily,
    Monthly,
    Session,
}

/// This machine's time zone: `TZ`, `/etc/timezone`, the `/etc/localtime` link, else UTC.
fn local_timezone() -> String {
    if let Ok(tz) = std::env::var("TZ")
        && !tz.is_empty()
    {
        return tz.trim_start_matches(':').to_owned();
    }
    if let Ok(tz) = std::fs::read_to_string("/etc/timezone")
        && !tz.trim().is_empty()
    {
        return tz.trim().to_owned();
    }
    std::fs::read_link("/etc/localtime")
        .ok()
        .and_then(|p| {
            p.to_str()
                .and_then(|s| s.split_once("zoneinfo/").map(|(_, z)| z.to_owned()))
        })
        .unwrap_or_else(|| "UTC".to_owned())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let grouping = match args.by {
        By::Daily => Grouping::Daily,
        By::Monthly => Grouping::Monthly,
        By::Session => Grouping::Session,
    };
    let timezone = args.timezone.clone().unwrap_or_else(local_timezone);
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(async {
        let store = Store::open(&args.database.database_url).await?;
        report::report(store.pool(), grouping, &timezone, args.since, args.until)
            .await
            .with_context(|| format!("cannot build the report (time zone {timezone:?})"))
    })?;
    if !report.unpriced.is_empty() {
        eprintln!(
            "warning: no price for {}: their tokens are counted, their cost is not",
            report.unpriced.join(", ")
        );
    }
    if args.json {
        println!("{}", to_json(&report, grouping));
    } else {
        print_table(&report, grouping, &timezone);
    }
    Ok(ExitCode::SUCCESS)
}

fn tokens_json(t: &Tokens) -> Value {
    json!({
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "cache_creation_input_tokens": t.cache_creation_input_tokens,
        "cache_read_input_tokens": t.cache_read_input_tokens,
        "cost_usd": t.cost_usd,
    })
}

fn to_json(report: &Report, grouping: Grouping) -> Value {
    let rows: Vec<Value> = report
        .rows
        .iter()
        .map(|row| {
            let mut value = tokens_json(&row.tokens);
            value[grouping.key_name()] = json!(row.key);
            value["models"] = row
                .models
                .iter()
                .map(|m| {
                    let mut model = tokens_json(&m.tokens);
                    model["model"] = json!(m.model);
                    if !m.priced {
                        model["cost_usd"] = Value::Null;
                    }
                    model
                })
                .collect();
            value
        })
        .collect();
    json!({"rows": rows, "totals": tokens_json(&report.totals)})
}

fn print_table(report: &Report, grouping: Grouping, timezone: &str) {
    println!(
        "{:<38} {:>12} {:>12} {:>14} {:>14} {:>10}",
        grouping.key_name(),
        "input",
        "output",
        "cache write",
        "cache read",
        "cost $"
    );
    let line = |key: &str, t: &Tokens| {
        println!(
            "{key:<38} {:>12} {:>12} {:>14} {:>14} {:>10.2}",
            t.input_tokens,
            t.output_tokens,
            t.cache_creation_input_tokens,
            t.cache_read_input_tokens,
            t.cost_usd
        );
    };
    for row in &report.rows {
        line(&row.key, &row.tokens);
    }
    line("total", &report.totals);
    if grouping != Grouping::Session {
        println!("(days in {timezone}; each API response counted once across sessions)");
    }
}
