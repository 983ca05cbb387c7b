//! `sessionflow restore SESSION_ID… | --all | --since D`: stored sessions written back where
//! Claude Code reads them (after its cleanup removed them), from a server's API or the local
//! database and blob store. Nothing local is overwritten; see
//! [`sessionflow_pipeline::capture::restore`].

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use serde_json::json;
use sessionflow_pipeline::capture::discover::{config_dirs, default_roots};
use sessionflow_pipeline::capture::restore::{RestoreError, restore};

use crate::options::Archive;

/// Write stored sessions back into Claude Code's projects folder, so `claude --resume ID` works
/// again after Claude Code deleted them.
#[derive(clap::Args)]
pub struct Args {
    /// The sessions to restore.
    #[arg(required_unless_present_any = ["all", "since"])]
    ids: Vec<String>,
    /// Every stored session.
    #[arg(long, conflicts_with = "ids")]
    all: bool,
    /// Every stored session started at or after this time (RFC 3339, or a date: 2026-11-01).
    #[arg(long, value_parser = crate::search::parse_time, conflicts_with = "ids")]
    since: Option<DateTime<Utc>>,
    /// The projects folder to write into [default: Claude Code's: the first of
    /// CLAUDE_CONFIG_DIR's, else ~/.claude/projects].
    #[arg(long)]
    to: Option<PathBuf>,
    /// One JSON object per session instead of lines for people.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: crate::options::Reports,
}

/// Claude Code's projects folder: an existing one, else the first it would make.
fn projects_folder() -> anyhow::Result<PathBuf> {
    default_roots()
        .into_iter()
        .next()
        .or_else(|| config_dirs().first().map(|config| config.join("projects")))
        .ok_or_else(|| anyhow::anyhow!("HOME is not set: name the folder with --to"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let projects = match &args.to {
        Some(to) => to.clone(),
        None => projects_folder()?,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let archive = args.source.open_archive().await?;
        let ids: Vec<String> = if args.ids.is_empty() {
            archive
                .sessions()
                .await?
                .into_iter()
                .filter(|kept| args.since.is_none_or(|since| kept.at >= since))
                .map(|kept| kept.id)
                .collect()
        } else {
            args.ids.clone()
        };
        let mut failed = 0;
        let (mut written, mut same) = (0, 0);
        for id in &ids {
            let outcome = restore_one(&archive, &projects, id).await;
            match &outcome {
                Ok(restored) if restored.written() > 0 => written += 1,
                Ok(_) => same += 1,
                Err(_) => failed += 1,
            }
            report(id, &outcome, args.json);
        }
        if !args.json {
            println!(
                "{written} restored, {same} already there, {failed} not restored, into {}",
                projects.display()
            );
        }
        Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

async fn restore_one(
    archive: &Archive,
    projects: &std::path::Path,
    id: &str,
) -> anyhow::Result<sessionflow_pipeline::capture::restore::Restored> {
    let stored = archive
        .transcript(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no stored transcript"))?;
    let projects = projects.to_path_buf();
    let id = id.to_owned();
    tokio::task::spawn_blocking(move || restore(&projects, &id, &stored))
        .await?
        .map_err(|e: RestoreError| anyhow::anyhow!(e))
}

fn report(
    id: &str,
    outcome: &anyhow::Result<sessionflow_pipeline::capture::restore::Restored>,
    as_json: bool,
) {
    match (outcome, as_json) {
        (Ok(restored), true) => println!(
            "{}",
            json!({
                "session_id": id,
                "restored": restored.written() > 0,
                "files": restored.files.iter().map(|(path, outcome)| json!({
                    "path": path,
                    "written": *outcome == sessionflow_pipeline::capture::restore::FileOutcome::Written,
                })).collect::<Vec<_>>(),
            })
        ),
        (Err(e), true) => println!("{}", json!({"session_id": id, "error": format!("{e:#}")})),
        (Ok(restored), false) => {
            let main = restored
                .files
                .first()
                .map(|(path, _)| path.display().to_string())
                .unwrap_or_default();
            let files = restored.files.len();
            if restored.written() > 0 {
                println!(
                    "restored {id} → {main} ({files} file{})",
                    if files == 1 { "" } else { "s" }
                );
            } else {
                println!("{id}: already there ({main})");
            }
        }
        (Err(e), false) => eprintln!("{id}: not restored: {e:#}"),
    }
}
