//! `sessionflow migrate`: creates the database if it is missing and applies every pending
//! migration. Every command that needs the database does the same on start.

use std::process::ExitCode;

use sessionflow_stages::store::MIGRATOR;

/// Create the database if missing and bring its schema up to date.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    database: crate::options::Database,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = args.database.open().await?;
        store.pool().close().await;
        anyhow::Ok(())
    })?;
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or_default();
    println!("database is up to date (schema version {latest})");
    Ok(ExitCode::SUCCESS)
}
