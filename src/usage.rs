//! `sessionflow usage daily|monthly|session|device|workspace`: token usage and cost from the
//! `usage` processor's data (brought up to date first), each API response counted once across
//! all sessions and devices — from the database, or from a server's `GET /api/usage`.

use std::process::ExitCode;

use anyhow::Context;
use sessionflow_pipeline::capture::client::encode;
use sessionflow_pipeline::processors::report::{Grouping, Request};
use sessionflow_protocol::reports::{Tokens, UsageReport};

use crate::options::ReportSource;

/// Token usage and cost per day, month, session, device or workspace.
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
    source: crate::options::Reports,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum By {
    Daily,
    Monthly,
    Session,
    Device,
    Workspace,
}
/// This machine's time zone: `TZ`, `/etc/timezone`, the `/etc/localtime` link, else UTC.
pub fn local_timezone() -> String {
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
    let request = Request {
        grouping: match args.by {
            By::Daily => Grouping::Daily,
            By::Monthly => Grouping::Monthly,
            By::Session => Grouping::Session,
            By::Device => Grouping::Device,
            By::Workspace => Grouping::Workspace,
        },
        timezone: args.timezone.clone().unwrap_or_else(local_timezone),
        since: args.since,
        until: args.until,
        sessions: None,
        workspaces: None,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(async {
        match args.source.open().await? {
            ReportSource::Database(processors) => processors
                .usage_report(&request)
                .await
                .context("cannot build the usage report"),
            ReportSource::Api(client) => {
                let answer = client
                    .get(&api_path(&request))
                    .await
                    .map_err(anyhow::Error::msg)?;
                serde_json::from_value(answer).context("the server's usage report is unreadable")
            }
        }
    })?;
    print(&report, &request, args.json);
    Ok(ExitCode::SUCCESS)
}

/// `GET /api/usage` with the request's query.
fn api_path(request: &Request) -> String {
    let by = serde_json::to_value(request.grouping)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut path = format!("/api/usage?by={by}&timezone={}", encode(&request.timezone));
    if let Some(since) = request.since {
        path.push_str(&format!("&since={since}"));
    }
    if let Some(until) = request.until {
        path.push_str(&format!("&until={until}"));
    }
    path
}

/// The report as a table (or JSON), with what is unpriced or estimated said on stderr.
pub fn print(report: &UsageReport, request: &Request, json: bool) {
    let unpriced = report.unpriced();
    if !unpriced.is_empty() {
        eprintln!(
            "warning: no price for {}: their tokens are counted, their cost is not",
            unpriced.join(", ")
        );
    }
    let estimated = report.estimated();
    if !estimated.is_empty() {
        eprintln!(
            "note: {} priced at their family's newest rates (≈): the price table lacks them",
            estimated.join(", ")
        );
    }
    if json {
        println!("{}", serde_json::json!(report));
    } else {
        print_table(report, request);
    }
}

fn print_table(report: &UsageReport, request: &Request) {
    let grouping = request.grouping;
    println!(
        "{:<38} {:>12} {:>12} {:>14} {:>14} {:>10}",
        grouping.key_name(),
        "input",
        "output",
        "cache write",
        "cache read",
        "cost $"
    );
    let line = |key: &str, t: &Tokens, mark: &str| {
        println!(
            "{key:<38} {:>12} {:>12} {:>14} {:>14} {:>10}",
            t.input_tokens,
            t.output_tokens,
            t.cache_creation_input_tokens,
            t.cache_read_input_tokens,
            format!("{mark}{:.2}", t.cost())
        );
    };
    let mark = |estimated: bool| if estimated { "≈" } else { "" };
    for row in &report.rows {
        let estimated = row.models.iter().any(|m| m.cost_estimated);
        line(row.key.value(), &row.tokens, mark(estimated));
    }
    line(
        "total",
        &report.totals,
        mark(!report.estimated().is_empty()),
    );
    if grouping.is_period() {
        println!(
            "(days in {}; each API response counted once across sessions)",
            request.timezone
        );
    } else {
        println!("(each API response counted once, for the session that first holds it)");
    }
}
