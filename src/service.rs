//! `sessionflow serve`, `worker` and `daemon`: reads the settings, starts the runtime, and stops
//! the mode on SIGINT or SIGTERM — taking no new work, letting runs in flight finish, and
//! exiting within 10 s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sessionflow_pipeline::modes::{self, Mode, Settings};
use tokio_util::sync::CancellationToken;

/// How long a stop may take before the process exits anyway.
const STOP_WITHIN: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct Args {
    /// Postgres connection URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://localhost/sessionflow",
        hide_env_values = true
    )]
    database_url: String,
    /// Redis URL; unset, events are handled in-process (daemon only).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Where transcripts go: s3://bucket/prefix or a directory
    /// [default: ~/.local/share/sessionflow/blobs].
    #[arg(long, env = "SESSIONFLOW_BLOB")]
    blob: Option<String>,
    /// The bearer key every /api request must carry.
    #[arg(long, env = "SESSIONFLOW_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Address the API listens on.
    #[arg(long, env = "SESSIONFLOW_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Anthropic API key; unset, summaries are extractive (no network).
    #[arg(long, env = "ANTHROPIC_API_KEY", hide_env_values = true)]
    anthropic_api_key: Option<String>,
    /// Model for Anthropic summaries.
    #[arg(long, env = "SUMMARY_MODEL")]
    summary_model: Option<String>,
    /// Sessions processed at once.
    #[arg(long, env = "SESSIONFLOW_MAX_RUNS", default_value_t = 3)]
    max_runs: usize,
    /// The Redis stream events travel through.
    #[arg(long, env = "SESSIONFLOW_STREAM", default_value = sessionflow_pipeline::consumer::STREAM)]
    stream: String,
}

fn default_blob_dir() -> String {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("sessionflow/blobs").display().to_string()
}

pub fn run(mode: Mode, args: Args) -> anyhow::Result<ExitCode> {
    let settings = Settings {
        database_url: args.database_url,
        redis_url: args.redis_url.filter(|u| !u.is_empty()),
        blob: args.blob.unwrap_or_else(default_blob_dir),
        api_key: args.api_key,
        listen: args.listen,
        anthropic_api_key: args.anthropic_api_key,
        summary_model: args.summary_model,
        max_runs: args.max_runs,
        stream: args.stream,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let stop = CancellationToken::new();
        let mut service = tokio::spawn(modes::run(mode, settings, stop.clone()));
        tokio::select! {
            result = &mut service => return Ok(result??),
            () = shutdown_signal() => {}
        }
        tracing::info!("stopping: finishing the runs in flight");
        stop.cancel();
        match tokio::time::timeout(STOP_WITHIN, service).await {
            Ok(result) => result??,
            Err(_) => tracing::warn!("did not stop within 10 s; exiting anyway"),
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process can still be killed; wait forever.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}
