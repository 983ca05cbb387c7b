//! `sessionflow delete SESSION_ID…`: sessions deleted for good — rows, transcript and backup,
//! processor state, search entries — through a server's API or in the local database and blob
//! store, leaving a tombstone that refuses a late re-upload unless forced.

use std::process::ExitCode;

use serde_json::json;

/// Delete sessions for good (their rows, transcripts, backups and search entries).
#[derive(clap::Args)]
pub struct Args {
    /// The sessions to delete.
    #[arg(required = true)]
    ids: Vec<String>,
    /// One JSON object per session instead of lines for people.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: crate::options::Reports,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let archive = args.source.open_archive().await?;
        let mut failed = 0;
        for id in &args.ids {
            match archive.delete(id).await {
                Ok(Some(deleted)) if args.json => println!("{}", json!(deleted)),
                Ok(Some(deleted)) => println!(
                    "deleted {} of {} ({} messages)",
                    deleted.session_id, deleted.workspace_id, deleted.messages
                ),
                Ok(None) => {
                    failed += 1;
                    if args.json {
                        println!("{}", json!({"session_id": id, "error": "not found"}));
                    } else {
                        eprintln!("{id}: not found");
                    }
                }
                Err(e) => {
                    failed += 1;
                    if args.json {
                        println!("{}", json!({"session_id": id, "error": format!("{e:#}")}));
                    } else {
                        eprintln!("{id}: not deleted: {e:#}");
                    }
                }
            }
        }
        Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}
