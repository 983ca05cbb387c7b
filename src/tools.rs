//! `sessionflow tools`: the most used and the most failing tools over every session, from the
//! `tools` processor's data (brought up to date first) — from the database, or from a server's
//! `GET /api/tools`.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use sessionflow_protocol::reports::{ToolTotals, ToolsReport};

use crate::options::ReportSource;
use crate::text::escaped;

/// The most used and the most failing tools.
#[derive(clap::Args)]
pub struct Args {
    /// Tools listed in each table.
    #[arg(long, default_value_t = 15)]
    top: usize,
    /// `{"tools": [...]}`, every tool, most called first.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: crate::options::Reports,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    let all: Vec<ToolTotals> = runtime.block_on(async {
        match args.source.open().await? {
            ReportSource::Database(processors) => processors
                .tool_totals(None)
                .await
                .context("cannot read the tool totals"),
            ReportSource::Api(client) => {
                let answer = client.get("/api/tools").await.map_err(anyhow::Error::msg)?;
                let report: ToolsReport = serde_json::from_value(answer)
                    .context("the server's /api/tools answer is unreadable")?;
                Ok(report.tools)
            }
        }
    })?;
    if args.json {
        println!("{}", json!(ToolsReport { tools: all }));
        return Ok(ExitCode::SUCCESS);
    }
    if all.is_empty() {
        println!("No tool calls recorded yet.");
        return Ok(ExitCode::SUCCESS);
    }
    println!("Most used");
    println!(
        "{:<28} {:>8} {:>8} {:>8} {:>9}",
        "tool", "calls", "errors", "sessions", "files"
    );
    for t in all.iter().take(args.top) {
        println!(
            "{:<28} {:>8} {:>8} {:>8} {:>9}",
            escaped(&t.tool_name),
            t.calls,
            t.errors,
            t.sessions,
            t.files
        );
    }
    let mut failing: Vec<_> = all.iter().filter(|t| t.errors > 0).collect();
    failing.sort_by(|a, b| b.errors.cmp(&a.errors).then(a.tool_name.cmp(&b.tool_name)));
    println!("\nMost failing");
    println!(
        "{:<28} {:>8} {:>8} {:>8}",
        "tool", "errors", "calls", "rate"
    );
    for t in failing.iter().take(args.top) {
        println!(
            "{:<28} {:>8} {:>8} {:>7.1}%",
            escaped(&t.tool_name),
            t.errors,
            t.calls,
            t.error_rate * 100.0
        );
    }
    Ok(ExitCode::SUCCESS)
}
