//! `sessionflow serve`, `worker` and `daemon`: reads the settings, starts the runtime, and stops
//! the mode on SIGINT or SIGTERM — taking no new work, letting runs in flight finish, and
//! exiting within 10 s. `daemon --tui` shows the live monitor over the daemon's own API,
//! in-process, with the logs in a file; quitting the monitor stops the daemon.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use futures::future::BoxFuture;
use sessionflow_pipeline::api::Limits;
use sessionflow_pipeline::modes::{Mode, Service, Settings};
use sessionflow_stages::redact;
use sessionflow_tui::source::{Method, Reply, Transport};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a stop may take before the process exits anyway.
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// What `--redact` takes out.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Redact {
    Rows,
    All,
    Off,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    database: crate::options::Database,
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
    /// Where the Messages API is (a gateway or proxy in front of Anthropic's)
    /// [default: https://api.anthropic.com].
    #[arg(long, env = "ANTHROPIC_BASE_URL")]
    anthropic_base_url: Option<String>,
    /// Model for Anthropic summaries.
    #[arg(long, env = "SUMMARY_MODEL")]
    summary_model: Option<String>,
    /// Sessions processed at once.
    #[arg(long, env = "SESSIONFLOW_MAX_RUNS", default_value_t = 3)]
    max_runs: usize,
    /// The Redis stream events travel through.
    #[arg(long, env = "SESSIONFLOW_STREAM", default_value = sessionflow_pipeline::consumer::STREAM)]
    stream: String,
    /// Stream entries another consumer left idle this long are taken over, like 60s or 2m
    /// (entries of a consumer whose worker went silent are taken at once).
    #[arg(long, env = "SESSIONFLOW_CLAIM_IDLE", default_value = "60s", value_parser = crate::options::parse_duration)]
    claim_idle: Duration,
    /// Stream entries a worker reads, records and handles as one batch at most.
    #[arg(long, env = "SESSIONFLOW_EVENT_BATCH", default_value_t = sessionflow_pipeline::consumer::DEFAULT_BATCH)]
    event_batch: u64,
    /// Secrets in transcripts: `rows` takes them out of everything stored and sent (rows,
    /// search, summaries, answers; the uploaded transcript is kept as it came), `all` out of
    /// the stored transcript too (as it arrives), `off` keeps them.
    #[arg(long, env = "SESSIONFLOW_REDACT", value_enum, default_value = "rows")]
    redact: Redact,
    /// Keep each message's JSON line in transcript_messages.raw (the stored transcript holds
    /// every byte either way; keeping them costs persist about a third of its speed).
    #[arg(long, env = "SESSIONFLOW_KEEP_RAW")]
    keep_raw: bool,
    /// Delete sessions last active more than this many days ago (fractions allowed), checked
    /// at start and daily; unset: keep every session forever.
    #[arg(long, env = "SESSIONFLOW_RETENTION_DAYS", value_parser = parse_days)]
    retention_days: Option<Duration>,
    /// API requests handled at once; more get 503 with Retry-After.
    #[arg(long, env = "SESSIONFLOW_MAX_CONCURRENT", default_value_t = 256)]
    max_concurrent: usize,
    /// Time for one API request, like 30s (more: 408).
    #[arg(long, env = "SESSIONFLOW_REQUEST_TIMEOUT", default_value = "30s", value_parser = crate::options::parse_duration)]
    request_timeout: Duration,
    /// Time for one transcript upload, like 10m (more: 408).
    #[arg(long, env = "SESSIONFLOW_UPLOAD_TIMEOUT", default_value = "10m", value_parser = crate::options::parse_duration)]
    upload_timeout: Duration,
    /// The bearer key /metrics needs; unset, /metrics is open (bind it to a private address).
    #[arg(long, env = "SESSIONFLOW_METRICS_KEY", hide_env_values = true)]
    metrics_key: Option<String>,
    /// Session processors' intervals, like usage=5m,tools=10m (over their defaults).
    #[arg(long, env = "SESSIONFLOW_PROCESSOR_INTERVALS", value_parser = parse_intervals, default_value = "")]
    processor_intervals: Intervals,
    /// Show the live monitor in this terminal (daemon only); logs go to --log-file.
    #[arg(long)]
    tui: bool,
    /// Where logs go while the monitor holds the terminal
    /// [default: ~/.local/state/sessionflow/daemon.log].
    #[arg(long, env = "SESSIONFLOW_LOG_FILE", requires = "tui")]
    log_file: Option<PathBuf>,
}

impl Args {
    /// The file logs must go to instead of the terminal: with `--tui` only.
    pub fn log_file(&self) -> Option<PathBuf> {
        self.tui.then(|| {
            self.log_file
                .clone()
                .unwrap_or_else(|| state_dir().join("daemon.log"))
        })
    }
}

/// Processor intervals by name.
#[derive(Debug, Clone, Default)]
pub struct Intervals(pub HashMap<String, Duration>);

fn parse_intervals(text: &str) -> Result<Intervals, String> {
    let mut intervals = HashMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, every) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not NAME=INTERVAL, like usage=5m"))?;
        intervals.insert(
            name.trim().to_owned(),
            crate::options::parse_duration(every.trim())?,
        );
    }
    Ok(Intervals(intervals))
}

/// A number of days (`30`, `0.5`) as a duration.
fn parse_days(text: &str) -> Result<Duration, String> {
    let days: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of days"))?;
    if !(days > 0.0 && days <= 36_500.0) {
        return Err(format!(
            "{text:?}: retention must be more than 0 and at most 36500 days"
        ));
    }
    Ok(Duration::from_secs_f64(days * 86_400.0))
}

/// `$XDG_STATE_HOME/sessionflow`, else `~/.local/state/sessionflow`.
pub fn state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("sessionflow")
}

pub fn default_blob_dir() -> String {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("sessionflow/blobs").display().to_string()
}

pub fn run(mode: Mode, args: Args) -> anyhow::Result<ExitCode> {
    let log_file = args.log_file();
    if args.tui {
        if mode != Mode::Daemon {
            anyhow::bail!(
                "--tui is for `sessionflow daemon`; watch other modes with `sessionflow tui`"
            );
        }
        crate::tui::require_terminal("daemon --tui")?;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let settings = Settings {
            database_url: args.database.url().await?,
            redis_url: args.redis_url.filter(|u| !u.is_empty()),
            blob: args.blob.unwrap_or_else(default_blob_dir),
            api_key: args.api_key,
            listen: args.listen,
            anthropic_api_key: args.anthropic_api_key,
            anthropic_base_url: args.anthropic_base_url.filter(|u| !u.is_empty()),
            summary_model: args.summary_model,
            max_runs: args.max_runs,
            stream: args.stream,
            claim_idle: args.claim_idle,
            event_batch: args.event_batch,
            processor_intervals: args.processor_intervals.0,
            redact: match args.redact {
                Redact::Rows => redact::Mode::Rows,
                Redact::All => redact::Mode::All,
                Redact::Off => redact::Mode::Off,
            },
            keep_raw: args.keep_raw,
            retention: args.retention_days,
            limits: Limits {
                max_concurrent: args.max_concurrent.max(1),
                request_timeout: args.request_timeout,
                upload_timeout: args.upload_timeout,
                metrics_key: args
                    .metrics_key
                    .filter(|k| !k.is_empty())
                    .map(|k| Arc::from(k.as_str())),
            },
        };
        let stop = CancellationToken::new();
        let service = Service::start(mode, settings, stop.clone()).await?;
        let monitor = args.tui.then(|| service.api()).flatten();
        let mut running = tokio::spawn(service.run());
        let mut ended = None;
        match monitor {
            None => tokio::select! {
                result = &mut running => ended = Some(result),
                () = shutdown_signal() => {}
            },
            Some((router, api_key)) => {
                let config = sessionflow_tui::Config {
                    transport: Arc::new(InProcess::new(router, api_key)),
                    interval: Duration::from_secs(1),
                    timezone: crate::usage::local_timezone(),
                };
                let until = async {
                    tokio::select! {
                        result = &mut running => ended = Some(result),
                        () = shutdown_signal() => {}
                    }
                };
                sessionflow_tui::run(config, until)
                    .await
                    .context("the monitor's terminal failed")?;
                if let Some(log) = &log_file {
                    println!(
                        "stopping the daemon: finishing the runs in flight (logs: {})",
                        log.display()
                    );
                }
            }
        }
        if let Some(result) = ended {
            return Ok(result??);
        }
        tracing::info!("stopping: finishing the runs in flight");
        stop.cancel();
        match tokio::time::timeout(STOP_WITHIN, running).await {
            Ok(result) => result??,
            Err(_) => tracing::warn!("did not stop within 10 s; exiting anyway"),
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The daemon's own API, called in-process by its monitor: the same routes and snapshot a
/// remote `sessionflow tui` reads, without a socket.
pub struct InProcess {
    router: axum::Router,
    api_key: Arc<str>,
}

impl InProcess {
    pub fn new(router: axum::Router, api_key: Arc<str>) -> Self {
        InProcess { router, api_key }
    }
}

impl Transport for InProcess {
    fn call<'a>(&'a self, method: Method, path: &'a str) -> BoxFuture<'a, Result<Reply, String>> {
        Box::pin(async move {
            let request = axum::http::Request::builder()
                .method(match method {
                    Method::Get => axum::http::Method::GET,
                    Method::Post => axum::http::Method::POST,
                })
                .uri(path)
                .header("authorization", format!("Bearer {}", self.api_key))
                .body(axum::body::Body::empty())
                .map_err(|e| format!("bad request {path}: {e}"))?;
            let response = self
                .router
                .clone()
                .oneshot(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = axum::body::to_bytes(response.into_body(), MAX_REPLY)
                .await
                .map_err(|e| format!("reading the answer to {path}: {e}"))?;
            Ok(Reply {
                status,
                body: body.to_vec(),
            })
        })
    }

    fn describe(&self) -> String {
        "this daemon (in-process)".to_owned()
    }
}

/// Largest answer the in-process monitor reads.
const MAX_REPLY: usize = 64 * 1024 * 1024;

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
