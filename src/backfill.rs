//! `sessionflow backfill [DIR…]`: sends the sessions already on disk to a server and follows
//! their processing. Progress bars on a terminal, plain lines otherwise, one JSON object with
//! `--json`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;
use sessionflow_pipeline::capture::backfill::{
    self, Followed, Options, Processing, Progress, SendReport, Sent, WaitEnd,
};
use sessionflow_pipeline::capture::client::{Client, Patience};
use sessionflow_pipeline::capture::discover;
use sessionflow_pipeline::capture::spool::Spool;

use crate::text::escaped;

/// Send the sessions on this machine to a server, then follow their processing.
#[derive(clap::Args)]
pub struct Args {
    /// Projects folders, project folders or session files [default: ~/.claude/projects and
    /// ~/.config/claude/projects, or each of CLAUDE_CONFIG_DIR's comma-separated paths].
    dirs: Vec<PathBuf>,
    #[command(flatten)]
    server: crate::options::Server,
    #[command(flatten)]
    api_key: crate::options::ApiKey,
    /// Also end sessions whose files changed in the last five minutes.
    #[arg(long)]
    include_live: bool,
    /// Do not wait for the server to process what was sent.
    #[arg(long)]
    no_wait: bool,
    /// How long to follow the processing, like 10m, 90s.
    #[arg(long, default_value = "10m", value_parser = crate::options::parse_duration)]
    wait_timeout: Duration,
    /// Print one JSON object at the end instead of progress.
    #[arg(long)]
    json: bool,
    /// Send sessions the server deleted for good again (they are left out otherwise).
    #[arg(long)]
    force_deleted: bool,
    #[command(flatten)]
    upload: crate::options::Upload,
}

/// How often the processing is checked (each check asks about the sessions still pending, by
/// their ids): the end is reported within a quarter second, not up to a second late.
pub const POLL_EVERY: Duration = Duration::from_millis(250);

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(backfill(args))
}

async fn backfill(args: Args) -> anyhow::Result<ExitCode> {
    let roots = if args.dirs.is_empty() {
        discover::default_roots()
    } else {
        args.dirs.clone()
    };
    if roots.is_empty() {
        anyhow::bail!(
            "no Claude Code projects folder found (looked in ~/.claude/projects, \
             ~/.config/claude/projects and CLAUDE_CONFIG_DIR); name the folders to read"
        );
    }
    let (sessions, unreadable) = discover::discover(&roots);
    let client = Client::new(
        &args.server.server,
        &args.api_key.required()?,
        Patience::BACKFILL,
    )
    .map_err(anyhow::Error::msg)?;
    let view = View::new(args.json);
    for u in &unreadable {
        view.line(&format!("skipped {}: {}", u.path.display(), u.error));
    }
    let options = Options {
        include_live: args.include_live,
        admission: args.upload.admission(&args.dirs),
        force_deleted: args.force_deleted,
        ..Options::default()
    };
    let spool = Spool::new(Spool::default_dir());
    if !spool.waiting().is_empty() {
        let delivered = spool.deliver(&client, &options.admission).await;
        view.line(&format!(
            "spool {}: {} sent, {} refused, {} left",
            spool.dir().display(),
            delivered.sent,
            delivered.rejected,
            delivered.left
        ));
    }
    let started = Instant::now();
    let discovered = sessions.len();
    let local: std::collections::BTreeSet<String> = sessions.iter().map(|s| s.id.clone()).collect();
    let sent = backfill::send_all(&client, sessions, &options, &view)
        .await
        .with_context(|| format!("cannot ask {} what it holds", client.server()))?;
    let sending = started.elapsed();
    view.finish_sending();
    let kept_elsewhere =
        match backfill::kept_on_server_only(&client, &options.device_id, &local).await {
            Ok(kept) => kept,
            Err(e) => {
                view.line(&format!("cannot list what the server keeps: {e}"));
                None
            }
        };
    let follow = sent.to_follow();
    let followed = if args.no_wait || follow.is_empty() {
        None
    } else {
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        Some(backfill::follow(&client, &follow, POLL_EVERY, args.wait_timeout, stop, &view).await)
    };
    view.finish();
    let waited = started.elapsed() - sending;
    let report = Report {
        discovered,
        unreadable: unreadable.len(),
        sent: &sent,
        followed: followed.as_ref(),
        kept_on_server_only: kept_elsewhere.as_deref(),
    };
    if args.json {
        println!("{}", report.json());
    } else {
        report.print(sending, waited);
    }
    Ok(match followed.map(|f| f.end) {
        Some(WaitEnd::Interrupted) => ExitCode::from(130),
        _ => ExitCode::SUCCESS,
    })
}

pub struct Report<'a> {
    pub discovered: usize,
    pub unreadable: usize,
    pub sent: &'a SendReport,
    pub followed: Option<&'a Followed>,
    /// Sessions of this device the server keeps whose files are gone from here; none when the
    /// key may not list them.
    pub kept_on_server_only: Option<&'a [String]>,
}

impl Report<'_> {
    /// Failed uploads, then sessions whose processing failed, with their errors.
    fn failures(&self) -> Vec<(String, String)> {
        let mut failures: Vec<(String, String)> = self
            .sent
            .outcomes
            .iter()
            .filter_map(|(id, o)| match o {
                Sent::Failed(e) => Some((id.clone(), e.clone())),
                _ => None,
            })
            .collect();
        if let Some(f) = self.followed {
            failures.extend(
                f.statuses
                    .iter()
                    .filter(|(_, s)| s.lifecycle == "failed")
                    .map(|(id, s)| {
                        let error = s.parse_error.clone().unwrap_or_else(|| "failed".into());
                        (id.clone(), error)
                    }),
            );
        }
        failures
    }

    pub fn json(&self) -> serde_json::Value {
        let counts = self.followed.map(|f| f.counts.clone()).unwrap_or_default();
        json!({
            "discovered": self.discovered,
            "skipped": self.sent.count(|o| matches!(o, Sent::Skipped { .. })),
            "deleted_on_server": self.sent.count(|o| *o == Sent::Deleted),
            "kept_on_server_only": self.kept_on_server_only,
            "uploaded": self.sent.count(|o| matches!(o, Sent::Uploaded | Sent::Live)),
            "upload_failures": self.sent.count(|o| matches!(o, Sent::Failed(_))) + self.unreadable,
            "processing": {
                "summarized": counts.summarized,
                "parsed": counts.parsed,
                "failed": counts.failed,
                "pending": counts.pending,
                "timed_out": self.followed.is_some_and(|f| f.end == WaitEnd::TimedOut),
            },
            "failures": self.failures().into_iter()
                .map(|(session_id, error)| json!({"session_id": session_id, "error": error}))
                .collect::<Vec<_>>(),
        })
    }

    pub fn print(&self, sending: Duration, waited: Duration) {
        let live = self.sent.count(|o| *o == Sent::Live);
        let deleted = self.sent.count(|o| *o == Sent::Deleted);
        println!(
            "Sent {} of {} sessions in {:.1} s ({} already on the server{}).",
            self.sent
                .count(|o| matches!(o, Sent::Uploaded | Sent::Live)),
            self.discovered,
            sending.as_secs_f64(),
            self.sent.count(|o| matches!(o, Sent::Skipped { .. })),
            if live > 0 {
                format!(", {live} live: started, not ended")
            } else {
                String::new()
            }
        );
        if let Some(kept) = self.kept_on_server_only.filter(|k| !k.is_empty()) {
            println!(
                "Kept on the server only: {} session{} of this machine whose files are gone \
                 from here (`sessionflow restore ID…` or `--all` writes them back): {}{}",
                kept.len(),
                if kept.len() == 1 { "" } else { "s" },
                kept.iter()
                    .take(5)
                    .map(|id| escaped(id))
                    .collect::<Vec<_>>()
                    .join(", "),
                if kept.len() > 5 { ", …" } else { "" }
            );
        }
        if deleted > 0 {
            println!(
                "Left out {deleted} session{} the server deleted for good (--force-deleted sends \
                 them again).",
                if deleted == 1 { "" } else { "s" }
            );
        }
        match self.followed {
            None => println!("Not waiting: the server processes them on its own."),
            Some(f) => {
                match f.end {
                    WaitEnd::Finished => {
                        println!("Processing complete! ({:.1} s)", waited.as_secs_f64())
                    }
                    WaitEnd::TimedOut => println!(
                        "warning: stopped waiting after {:.0} s with {} sessions still pending; \
                         the server keeps processing them",
                        waited.as_secs_f64(),
                        f.counts.pending
                    ),
                    WaitEnd::Interrupted => println!(
                        "Interrupted: stopped waiting; the server keeps processing the {} \
                         sessions still pending.",
                        f.counts.pending
                    ),
                }
                println!("  Summarized: {}", f.counts.summarized);
                println!("  Parsed:     {}", f.counts.parsed);
                println!("  Failed:     {}", f.counts.failed);
                if f.counts.pending > 0 {
                    println!("  Pending:    {}", f.counts.pending);
                }
            }
        }
        let failures = self.failures();
        if !failures.is_empty() {
            println!("Failures:");
            for (id, error) in failures {
                println!("  {}: {}", escaped(&id), escaped(&error));
            }
        }
    }
}

/// Progress on a terminal (two bars), as plain lines elsewhere, or nothing (`--json`).
pub struct View {
    multi: Option<MultiProgress>,
    sending: Option<ProgressBar>,
    processing: Mutex<Option<ProgressBar>>,
    quiet: bool,
    /// Plain mode: sessions found and sent so far, and the tenths last reported.
    plain: Mutex<PlainState>,
}

#[derive(Default)]
struct PlainState {
    total: usize,
    sent: usize,
    sent_tenth: Option<usize>,
    done_tenth: Option<usize>,
}

fn bar_style(prefix: &str) -> ProgressStyle {
    ProgressStyle::with_template(&format!("{prefix} [{{bar:24}}] {{pos}}/{{len}} {{msg}}"))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("█░ ")
}

/// The tenth of the way `done` of `total` is, if it is not `last`.
fn new_tenth(last: &mut Option<usize>, done: usize, total: usize) -> bool {
    let tenth = (done * 10).checked_div(total).unwrap_or(10);
    let new = *last != Some(tenth);
    *last = Some(tenth);
    new
}

impl View {
    pub fn new(json: bool) -> Self {
        let multi = (!json && std::io::stderr().is_terminal()).then(MultiProgress::new);
        let sending = multi
            .as_ref()
            .map(|m| m.add(ProgressBar::new(0).with_style(bar_style("Backfilling:"))));
        View {
            multi,
            sending,
            processing: Mutex::new(None),
            quiet: json,
            plain: Mutex::new(PlainState::default()),
        }
    }

    /// Prints a line of progress; what it quotes (paths, the server's reasons) is escaped.
    pub fn line(&self, text: &str) {
        let text = escaped(text);
        let text = text.as_ref();
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None if !self.quiet => eprintln!("{text}"),
            None => {}
        }
    }

    fn plain(&self) -> std::sync::MutexGuard<'_, PlainState> {
        self.plain.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn finish_sending(&self) {
        if let Some(sending) = &self.sending {
            sending.finish_with_message("✓");
        }
    }

    pub fn finish(&self) {
        if let Some(processing) = self
            .processing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            processing.abandon();
        }
    }
}

impl Progress for View {
    fn sending(&self, total: usize) {
        match &self.sending {
            Some(sending) => sending.set_length(total as u64),
            None => {
                self.plain().total = total;
                self.line(&format!("Backfilling: {total} sessions found"));
            }
        }
    }

    fn sent(&self, session_id: &str, outcome: &Sent) {
        if let Sent::Failed(error) = outcome {
            self.line(&format!("  {session_id}: {error}"));
        }
        match &self.sending {
            Some(sending) => sending.inc(1),
            None => {
                let mut plain = self.plain();
                plain.sent += 1;
                let (sent, total) = (plain.sent, plain.total);
                if new_tenth(&mut plain.sent_tenth, sent, total) {
                    drop(plain);
                    self.line(&format!("Backfilling: {sent}/{total}"));
                }
            }
        }
    }

    fn processing(&self, counts: &Processing) {
        let detail = format!("{} parsing, {} queued", counts.parsing, counts.queued);
        match &self.multi {
            Some(multi) => {
                let mut slot = self.processing.lock().unwrap_or_else(|e| e.into_inner());
                let bar = slot.get_or_insert_with(|| {
                    multi.add(ProgressBar::new(0).with_style(bar_style("Processing: ")))
                });
                bar.set_length(counts.total as u64);
                bar.set_position(counts.done() as u64);
                bar.set_message(detail);
            }
            None => {
                let mut plain = self.plain();
                if new_tenth(&mut plain.done_tenth, counts.done(), counts.total) {
                    drop(plain);
                    self.line(&format!(
                        "Processing: {}/{} done, {detail}",
                        counts.done(),
                        counts.total
                    ));
                }
            }
        }
    }
}
