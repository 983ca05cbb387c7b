//! `sessionflow demo`: the whole system on this machine in one command. Starts an embedded
//! daemon (Postgres at DATABASE_URL or the default, the local blob directory, extractive
//! summaries, events in-process), generates a corpus (plus the user's own sessions with
//! `--include-mine`), backfills it through the HTTP API, shows the monitor while it flows (plain
//! progress without a terminal), and ends with the processing summary and how to look at the
//! results.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sessionflow_pipeline::capture::backfill::{self, Followed, Options, SendReport};
use sessionflow_pipeline::capture::client::{Client, Patience};
use sessionflow_pipeline::capture::discover::{self, Admission, DEFAULT_MAX_UPLOAD};
use sessionflow_pipeline::modes::{Mode, Service, Settings};
use sessionflow_stages::store::redact;
use tokio_util::sync::CancellationToken;

use sessionflow_pipeline::processors::Processors;
use sessionflow_pipeline::processors::report::{Grouping, Request};
use sessionflow_protocol::reports::UsageReport;
use sessionflow_stages::store::Store;

use crate::backfill::{POLL_EVERY, Report, View};

/// See the whole pipeline work on generated sessions (and, if you like, your own).
#[derive(clap::Args)]
pub struct Args {
    /// Sessions to generate.
    #[arg(long, default_value_t = 60)]
    sessions: u64,
    /// Seed of the generated sessions [default: the clock, so each demo brings new ones].
    #[arg(long)]
    seed: Option<u64>,
    /// Also send your own sessions from ~/.claude/projects (or CLAUDE_CONFIG_DIR).
    #[arg(long)]
    include_mine: bool,
    #[command(flatten)]
    database: crate::options::Database,
    /// Where transcripts go [default: ~/.local/share/sessionflow/blobs].
    #[arg(long, env = "SESSIONFLOW_BLOB")]
    blob: Option<String>,
    /// Print the backfill's JSON report at the end instead of progress.
    #[arg(long)]
    json: bool,
    /// Where the demo's daemon writes its logs.
    #[arg(long, default_value_os_t = crate::service::state_dir().join("demo.log"))]
    pub log_file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(demo(args))
}

async fn demo(args: Args) -> anyhow::Result<ExitCode> {
    let api_key = ulid::Ulid::generate().to_string();
    let database_url = args.database.url().await?;
    let blob = args
        .blob
        .clone()
        .unwrap_or_else(crate::service::default_blob_dir);
    let settings = Settings {
        database_url: database_url.clone(),
        redis_url: None,
        blob: blob.clone(),
        api_key: Some(api_key.clone()),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        anthropic_api_key: None,
        anthropic_base_url: None,
        summary_model: None,
        max_runs: 3,
        stream: sessionflow_pipeline::consumer::STREAM.to_owned(),
        claim_idle: Duration::from_secs(60),
        event_batch: sessionflow_pipeline::consumer::DEFAULT_BATCH,
        processor_intervals: Default::default(),
        limits: Default::default(),
        redact: sessionflow_stages::redact::Mode::Rows,
        keep_raw: false,
        retention: None,
    };
    let say = |text: String| {
        if !args.json {
            println!("{text}");
        }
    };
    say(format!(
        "Starting an embedded daemon on {} (logs: {})",
        redact(&database_url),
        args.log_file.display()
    ));
    let stop = CancellationToken::new();
    let service = Service::start(Mode::Daemon, settings, stop.clone())
        .await
        .context("the demo's daemon could not start")?;
    let addr = service.local_addr().context("the daemon has no API")?;
    let monitor = service.api();
    let running = tokio::spawn(service.run());

    let corpus = tempfile::tempdir().context("cannot make a folder for the corpus")?;
    let projects = corpus.path().join("projects");
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let (files, bytes) = tokio::task::spawn_blocking({
        let projects = projects.clone();
        let sessions = args.sessions;
        move || crate::gen_corpus::generate(&projects, sessions, seed)
    })
    .await??;
    say(format!(
        "Generated {} sessions ({files} files, {:.1} MB, seed {seed})",
        args.sessions,
        bytes as f64 / 1e6
    ));
    let mut roots = vec![projects];
    if args.include_mine {
        roots.extend(discover::default_roots());
    }
    let (sessions, _) = discover::discover(&roots);
    let client = Client::new(&format!("http://{addr}"), &api_key, Patience::BACKFILL)
        .map_err(anyhow::Error::msg)?;
    let discovered = sessions.len();
    let options = Options {
        include_live: true,
        admission: Admission::new(&roots, DEFAULT_MAX_UPLOAD),
        ..Options::default()
    };
    let started = Instant::now();

    let show_monitor =
        !args.json && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let view = View::new(args.json || show_monitor);
    let work = async {
        let sent = backfill::send_all(&client, sessions, &options, &view).await?;
        let sending = started.elapsed();
        let follow = sent.to_follow();
        let followed = backfill::follow(
            &client,
            &follow,
            POLL_EVERY,
            Duration::from_secs(600),
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
            &view,
        )
        .await;
        anyhow::Ok((sent, followed, sending))
    };
    let outcome: Option<anyhow::Result<(SendReport, Followed, Duration)>> =
        match (show_monitor, monitor) {
            (true, Some((router, key))) => {
                let mut result = None;
                let config = sessionflow_tui::Config {
                    transport: Arc::new(crate::service::InProcess::new(router, key)),
                    interval: Duration::from_millis(500),
                    timezone: crate::usage::local_timezone(),
                };
                let until = async {
                    result = Some(work.await);
                    // Let the last counts show a moment before the summary.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                };
                sessionflow_tui::run(config, until)
                    .await
                    .context("the monitor's terminal failed")?;
                result
            }
            _ => Some(work.await),
        };
    view.finish();
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), running).await;
    let Some(outcome) = outcome else {
        println!("Demo stopped before the sessions were processed.");
        return Ok(ExitCode::from(130));
    };
    let (sent, followed, sending) = outcome?;
    let report = Report {
        discovered,
        unreadable: 0,
        sent: &sent,
        followed: Some(&followed),
        kept_on_server_only: None,
    };
    let usage = usage_of(&database_url, &blob, sent.to_follow()).await?;
    if args.json {
        let mut json = report.json();
        json["session_ids"] = serde_json::json!(sent.to_follow());
        json["usage"] = serde_json::json!(usage);
        println!("{json}");
        return Ok(ExitCode::SUCCESS);
    }
    report.print(sending, started.elapsed() - sending);
    println!("\nUsage of these sessions by day (each API response counted once):");
    crate::usage::print(&usage, &usage_request(None), false);
    println!(
        "\nThe results are in Postgres ({}). To look at them:\n  \
         psql {} -c \"SELECT id, lifecycle, total_messages, tokens_out, cost_estimate_usd, \
         left(summary, 60) FROM sessions ORDER BY created_at DESC LIMIT 10\"\n  \
         SESSIONFLOW_API_KEY=… sessionflow daemon   # then: sessionflow tui, or \
         curl -H \"Authorization: Bearer $SESSIONFLOW_API_KEY\" http://127.0.0.1:8080/api/sessions",
        redact(&database_url),
        redact(&database_url)
    );
    Ok(ExitCode::SUCCESS)
}

fn usage_request(sessions: Option<Vec<String>>) -> Request {
    Request {
        grouping: Grouping::Daily,
        timezone: crate::usage::local_timezone(),
        since: None,
        until: None,
        sessions,
        workspaces: None,
    }
}

/// The usage report of `sessions`, the usage processor brought up to date first.
async fn usage_of(
    database_url: &str,
    blob: &str,
    sessions: Vec<String>,
) -> anyhow::Result<UsageReport> {
    let store = Store::open(database_url).await?;
    let blobs = sessionflow_stages::blob::open(blob).await?;
    let processors = Processors::standard(store.pool().clone(), Arc::from(blobs));
    let report = processors
        .usage_report(&usage_request(Some(sessions)))
        .await
        .context("cannot build the usage report")?;
    store.pool().close().await;
    Ok(report)
}
