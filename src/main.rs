//! The `sessionflow` command line: parses arguments and hands each command to its module.
//! No domain logic lives here; it is in the library crates.

mod backfill;
mod delete;
mod demo;
mod gen_corpus;
mod hook;
mod inspect;
mod keys;
mod migrate;
mod options;
mod process;
mod restore;
mod search;
mod service;
mod text;
mod tools;
mod tui;
mod usage;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use sessionflow_pipeline::modes::Mode;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// Captures Claude Code sessions and turns their transcripts into queryable data.
#[derive(Parser)]
#[command(name = "sessionflow", version, about, propagate_version = true)]
struct Cli {
    /// Log lines as text, or as one JSON object per line for machines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SESSIONFLOW_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    Inspect(inspect::Args),
    GenCorpus(gen_corpus::Args),
    Migrate(migrate::Args),
    /// The HTTP API; accepted events go to Redis for the workers (needs REDIS_URL).
    Serve(service::Args),
    /// Reads events from Redis and runs the pipeline, the sweeps and the heartbeat.
    Worker(service::Args),
    /// The API and a worker in one process; without REDIS_URL, fully embedded.
    Daemon(service::Args),
    Tui(tui::Args),
    Backfill(backfill::Args),
    Hook(hook::HookArgs),
    Hooks(hook::HooksArgs),
    Demo(demo::Args),
    Usage(usage::Args),
    Tools(tools::Args),
    Search(search::Args),
    Process(process::Args),
    Restore(restore::Args),
    Delete(delete::Args),
    /// API keys: make one for a role and workspaces, list them, revoke one.
    Keys(keys::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Inspect(_) | Command::Usage(_) | Command::Tools(_) | Command::Search(_)
    ) {
        // `sessionflow tools | head` ends quietly when the reader goes, like any Unix filter,
        // instead of panicking on the broken pipe. Only for commands that print and exit:
        // servers and hooks keep ignoring SIGPIPE.
        // SAFETY: restores a signal's default disposition before any other thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // Postgres notices ("relation … already exists, skipping") and sqlx's slow-statement
    // warnings (a first usage report takes seconds) are for whoever asks for them by name, e.g.
    // RUST_LOG=info,sqlx=warn.
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if !std::env::var("RUST_LOG").is_ok_and(|f| f.contains("sqlx")) {
        for quiet in ["sqlx::postgres::notice=warn", "sqlx::query=error"] {
            filter = filter.add_directive(quiet.parse().expect("a constant, valid directive"));
        }
    }
    let log_file = match &cli.command {
        Command::Daemon(args) => args.log_file(),
        Command::Demo(args) => Some(args.log_file.clone()),
        _ => None,
    };
    let writer = match log_file.as_deref().map(open_log) {
        None => BoxMakeWriter::new(std::io::stderr),
        Some(Ok(file)) => BoxMakeWriter::new(std::sync::Mutex::new(file)),
        Some(Err(e)) => {
            eprintln!("sessionflow: {}", describe(&e));
            return ExitCode::FAILURE;
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(log_file.is_none() && colour(&std::io::stderr()))
        .with_env_filter(filter);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let outcome = match cli.command {
        Command::Inspect(args) => inspect::run(args),
        Command::GenCorpus(args) => gen_corpus::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Serve(args) => service::run(Mode::Serve, args),
        Command::Worker(args) => service::run(Mode::Worker, args),
        Command::Daemon(args) => service::run(Mode::Daemon, args),
        Command::Tui(args) => tui::run(args),
        Command::Backfill(args) => backfill::run(args),
        Command::Hook(args) => hook::run_hook(args),
        Command::Hooks(args) => hook::run_hooks(args),
        Command::Demo(args) => demo::run(args),
        Command::Usage(args) => usage::run(args),
        Command::Tools(args) => tools::run(args),
        Command::Search(args) => search::run(args),
        Command::Process(args) => process::run(args),
        Command::Restore(args) => restore::run(args),
        Command::Delete(args) => delete::run(args),
        Command::Keys(args) => keys::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("sessionflow: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// Colour only on a terminal, and never when `NO_COLOR` is set (<https://no-color.org>).
fn colour(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The error and its causes on one line, each said once: a cause whose text its parent already
/// quotes is left out.
pub fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let said = cause.to_string();
        if text.contains(said.as_str()) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&said);
    }
    text
}

/// Opens (appending) the file logs go to, making its directory.
fn open_log(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the log directory {}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the log file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::describe;

    /// An error that quotes its cause in its own text, as many libraries' errors do.
    #[derive(Debug)]
    struct Quoting(std::io::Error);

    impl std::fmt::Display for Quoting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot reach the database: {}", self.0)
        }
    }

    impl std::error::Error for Quoting {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_its_parent_already_quotes_is_said_once() {
        let quoted = anyhow::Error::new(Quoting(std::io::Error::other("connection refused")));
        assert_eq!(
            describe(&quoted),
            "cannot reach the database: connection refused"
        );
        let chained = anyhow::Error::new(std::io::Error::other("connection refused"))
            .context("the demo's daemon could not start");
        assert_eq!(
            describe(&chained),
            "the demo's daemon could not start: connection refused"
        );
    }
}
