//! The `sessionflow` command line: parses arguments and hands each command to its module.
//! No domain logic lives here; it is in the library crates.

mod gen_corpus;
mod inspect;
mod migrate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Captures Claude Code sessions and turns their transcripts into queryable data.
#[derive(Parser)]
#[command(name = "sessionflow", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Inspect(inspect::Args),
    GenCorpus(gen_corpus::Args),
    Migrate(migrate::Args),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Inspect(args) => inspect::run(args),
        Command::GenCorpus(args) => gen_corpus::run(args),
        Command::Migrate(args) => migrate::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("sessionflow: {error:#}");
            ExitCode::FAILURE
        }
    }
}
