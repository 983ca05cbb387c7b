//! `sessionflow process [--processor NAME] [DIR…]`: runs session processors over transcript
//! files on disk, offline, keeping their state in the database like a server run does.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use sessionflow_pipeline::capture::discover;
use sessionflow_pipeline::processors::Processors;
use sessionflow_stages::blob::LocalBlobs;

/// Run session processors over transcript files, without a server.
#[derive(clap::Args)]
pub struct Args {
    /// Projects folders, project folders or session files [default: as backfill].
    dirs: Vec<PathBuf>,
    /// Only this processor [default: every one that works from files].
    #[arg(long)]
    processor: Option<String>,
    #[command(flatten)]
    database: crate::options::Database,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let roots = if args.dirs.is_empty() {
        discover::default_roots()
    } else {
        args.dirs.clone()
    };
    let (sessions, unreadable) = discover::discover(&roots);
    for u in &unreadable {
        eprintln!("skipped {}: {}", u.path.display(), u.error);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = args.database.open().await?;
        // Offline processors read files, never the blob store.
        let blobs = Arc::new(LocalBlobs::new(std::env::temp_dir()));
        let processors = Processors::standard(store.pool().clone(), blobs);
        let names: Vec<String> = match &args.processor {
            Some(name) => vec![name.clone()],
            None => processors
                .all()
                .iter()
                .filter(|p| p.works_offline())
                .map(|p| p.name().to_owned())
                .collect(),
        };
        for name in names {
            let summary = processors.run_offline(&name, &sessions).await?;
            println!(
                "{name}: {} sessions looked at, {} processed, {} unchanged, {} errors, {} items",
                summary.scanned, summary.processed, summary.skipped, summary.errors, summary.items
            );
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
