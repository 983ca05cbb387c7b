//! `sessionflow tools`: the most used and the most failing tools over every session, from the
//! `tools` processor's data.

use std::process::ExitCode;

use serde_json::json;
use sessionflow_pipeline::processors::tools;
use sessionflow_stages::store::Store;

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
    database: crate::options::Database,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    let all = runtime.block_on(async {
        let store = Store::open(&args.database.database_url).await?;
        anyhow::Ok(tools::totals(store.pool()).await?)
    })?;
    if args.json {
        println!("{}", json!({ "tools": all }));
        return Ok(ExitCode::SUCCESS);
    }
    if all.is_empty() {
        println!("No tool calls recorded yet (the tools processor runs in every worker).");
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
            t.tool_name, t.calls, t.errors, t.sessions, t.files
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
            t.tool_name,
            t.errors,
            t.calls,
            t.error_rate * 100.0
        );
    }
    Ok(ExitCode::SUCCESS)
}
