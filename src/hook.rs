//! `sessionflow hook session-start|session-end`: Claude Code's hooks. They read the hook's JSON
//! from stdin and send the matching event (session-end also uploads the transcript). A hook
//! never slows or breaks Claude Code: short timeouts, exit 0 whatever happens, and whatever could
//! not be sent is spooled and sent by the next hook call or backfill.
//!
//! `sessionflow hooks install|uninstall` adds our two hooks to `~/.claude/settings.json` (or
//! removes them), keeping every other setting, with a backup of the file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::Deserialize;
use serde_json::{Value, json};
use sessionflow_pipeline::capture::backfill::device_id;
use sessionflow_pipeline::capture::client::{Client, Patience};
use sessionflow_pipeline::capture::discover::Admission;

use crate::text::escaped;
use sessionflow_pipeline::capture::settings;
use sessionflow_pipeline::capture::spool::{Item, Spool};
use sessionflow_pipeline::events::Event;

/// Run as a Claude Code hook (reads the hook's JSON on stdin; always exits 0).
#[derive(clap::Args)]
pub struct HookArgs {
    #[arg(value_enum)]
    event: HookEvent,
    #[command(flatten)]
    target: Target,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum HookEvent {
    SessionStart,
    SessionEnd,
}

#[derive(clap::Args)]
struct Target {
    #[command(flatten)]
    server: crate::options::Server,
    /// Without a key, everything is spooled until one is set.
    #[command(flatten)]
    api_key: crate::options::ApiKey,
    /// Where unsent events and uploads wait [default: ~/.local/state/sessionflow/spool].
    #[arg(long, env = "SESSIONFLOW_SPOOL")]
    spool: Option<PathBuf>,
    #[command(flatten)]
    upload: crate::options::Upload,
}

/// What Claude Code writes on a hook's stdin (fields we do not use are ignored).
#[derive(Deserialize)]
struct HookInput {
    session_id: String,
    #[serde(default)]
    transcript_path: Option<PathBuf>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// Longest hook input read.
const MAX_INPUT: u64 = 1024 * 1024;

pub fn run_hook(args: HookArgs) -> anyhow::Result<ExitCode> {
    if let Err(e) = hook(args) {
        eprintln!("sessionflow hook: {}", escaped(&crate::describe(&e)));
    }
    Ok(ExitCode::SUCCESS)
}

fn hook(args: HookArgs) -> anyhow::Result<()> {
    let mut raw = String::new();
    std::io::stdin()
        .take(MAX_INPUT)
        .read_to_string(&mut raw)
        .context("cannot read the hook's input")?;
    let input: HookInput =
        serde_json::from_str(&raw).context("the hook's input is not Claude Code's JSON")?;
    let spool = Spool::new(args.target.spool.clone().unwrap_or_else(Spool::default_dir));
    let admission = args.target.upload.admission(&[]);
    let items = items_for(args.event, &input, &admission);
    // A key file that cannot be used is said, and what the hook carries is spooled.
    let key = args.target.api_key.get().unwrap_or_else(|e| {
        eprintln!("sessionflow hook: {}", escaped(&crate::describe(&e)));
        None
    });
    let client = match key {
        Some(key) => Some(Client::new(
            &args.target.server.server,
            &key,
            Patience::HOOK,
        )?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // What earlier hooks could not send goes first, in order; if the server cannot take it
        // now, the new items wait behind it.
        let mut unsent = match &client {
            None => Some("no API key (put it in ~/.config/sessionflow/key, mode 0600)".to_owned()),
            Some(client) => {
                let delivered = spool.deliver(client, &admission).await;
                (delivered.left > 0).then(|| format!("{} cannot be reached", client.server()))
            }
        };
        for item in items {
            if let (None, Some(client)) = (&unsent, &client)
                && let Err(e) = item.send(client, &admission).await
            {
                unsent = Some(e.to_string());
            }
            if let Some(why) = &unsent {
                spool
                    .push(&item)
                    .with_context(|| format!("cannot spool into {}", spool.dir().display()))?;
                eprintln!("sessionflow hook: {}; spooled for later", escaped(why));
            }
        }
        anyhow::Ok(())
    })
}

/// The events (and upload) a hook sends.
fn items_for(event: HookEvent, input: &HookInput, admission: &Admission) -> Vec<Item> {
    let workspace_id = workspace_of(input);
    let envelope = |kind: &str, data: Value| Event {
        id: ulid::Ulid::generate().to_string(),
        kind: kind.to_owned(),
        timestamp: chrono::Utc::now(),
        device_id: device_id(),
        workspace_id: workspace_id.clone(),
        session_id: Some(input.session_id.clone()),
        data,
        blob_refs: Vec::new(),
    };
    let path = input
        .transcript_path
        .as_ref()
        .map(|p| p.display().to_string());
    match event {
        HookEvent::SessionStart => {
            let source = input
                .source
                .as_deref()
                .filter(|s| matches!(*s, "startup" | "resume" | "clear" | "compact"))
                .unwrap_or("startup");
            vec![Item::Events {
                events: vec![envelope(
                    "session.start",
                    json!({"cc_session_id": input.session_id, "source": source,
                           "cwd": input.cwd, "transcript_path": path}),
                )],
            }]
        }
        HookEvent::SessionEnd => {
            let reason = match input.reason.as_deref() {
                Some("clear") => "clear",
                Some("logout") => "logout",
                Some("prompt_input_exit" | "exit") => "exit",
                _ => "other",
            };
            let mut items = Vec::new();
            // Only a transcript of this session, inside a Claude projects folder, is sent;
            // anything else is said and left alone (the end is sent all the same).
            match input
                .transcript_path
                .as_deref()
                .map(|p| (p, admission.admit(p)))
            {
                Some((path, Ok(session))) if session.id == input.session_id => {
                    items.push(Item::Upload {
                        session_id: session.id,
                        workspace_id: session.workspace_id,
                        transcript_path: path.to_path_buf(),
                    });
                }
                Some((path, Ok(session))) => eprintln!(
                    "sessionflow hook: not uploading {}: it is the transcript of session {}, \
                     not of {}",
                    escaped(&path.display().to_string()),
                    escaped(&session.id),
                    escaped(&input.session_id)
                ),
                Some((_, Err(why))) => {
                    eprintln!("sessionflow hook: not uploading: {}", escaped(&why));
                }
                None => {}
            }
            items.push(Item::Events {
                events: vec![envelope(
                    "session.end",
                    json!({"cc_session_id": input.session_id, "end_reason": reason,
                           "transcript_path": path}),
                )],
            });
            items
        }
    }
}

/// The project folder the transcript is in (as backfill names workspaces), else the working
/// directory encoded the way Claude Code names that folder (every character but a letter or a
/// digit as `-`, which also keeps the id rule).
fn workspace_of(input: &HookInput) -> String {
    input
        .transcript_path
        .as_deref()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .or_else(|| {
            input.cwd.as_ref().map(|cwd| {
                cwd.chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .take(sessionflow_protocol::ids::MAX_ID)
                    .collect()
            })
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Add sessionflow's hooks to Claude Code's settings, or remove them.
#[derive(clap::Args)]
pub struct HooksArgs {
    #[command(subcommand)]
    action: HooksAction,
}

#[derive(clap::Subcommand)]
enum HooksAction {
    /// Add the SessionStart and SessionEnd hooks (again: update them), keeping everything else.
    Install {
        /// The API the hooks send to.
        #[arg(long, env = "SESSIONFLOW_SERVER")]
        server: Option<String>,
        /// The settings file [default: ~/.claude/settings.json].
        #[arg(long)]
        settings: Option<PathBuf>,
    },
    /// Remove sessionflow's hooks and nothing else.
    Uninstall {
        /// The settings file [default: ~/.claude/settings.json].
        #[arg(long)]
        settings: Option<PathBuf>,
    },
}

fn default_settings() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set; pass --settings")?;
    Ok(PathBuf::from(home).join(".claude/settings.json"))
}

pub fn run_hooks(args: HooksArgs) -> anyhow::Result<ExitCode> {
    let (path, install_for) = match args.action {
        HooksAction::Install { server, settings } => (settings, Some(server)),
        HooksAction::Uninstall { settings } => (settings, None),
    };
    let path = match path {
        Some(path) => path,
        None => default_settings()?,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut value: Value = match &text {
        Some(text) if !text.trim().is_empty() => serde_json::from_str(text)
            .with_context(|| format!("{} is not valid JSON; left as it is", path.display()))?,
        _ => json!({}),
    };
    let changed = match &install_for {
        Some(server) => {
            let binary = std::env::current_exe()
                .context("cannot tell where this sessionflow binary is")?
                .display()
                .to_string();
            let extra: Vec<String> = server
                .iter()
                .flat_map(|s| ["--server".to_owned(), s.clone()])
                .collect();
            let commands = settings::HOOKS
                .iter()
                .map(|(_, sub)| {
                    settings::command(&binary, sub, &extra)
                        .map(|c| (*sub, c))
                        .context("the hook command cannot hold a NUL character")
                })
                .collect::<anyhow::Result<std::collections::HashMap<_, _>>>()?;
            settings::install(&mut value, |sub| commands[sub].clone())
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("cannot add hooks to {}", path.display()))?
        }
        None => settings::uninstall(&mut value),
    };
    if !changed {
        println!(
            "{} already {}",
            path.display(),
            match install_for {
                Some(_) => "has sessionflow's hooks",
                None => "has no sessionflow hooks",
            }
        );
        if install_for.is_some() {
            println!("{}", settings::cleanup_note(&value));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let backup = settings::save(&path, &(serde_json::to_string_pretty(&value)? + "\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(backup) = backup {
        println!(
            "backed up {} to {} (the newest {} backups are kept)",
            path.display(),
            backup.display(),
            settings::BACKUPS
        );
    }
    match install_for {
        Some(_) => println!(
            "added the SessionStart and SessionEnd hooks to {}; they read their key from \
             ~/.config/sessionflow/key (mode 0600; `sessionflow keys create --role ingest`) and \
             spool until it is there",
            path.display()
        ),
        None => println!("removed sessionflow's hooks from {}", path.display()),
    }
    if install_for.is_some() {
        println!("{}", settings::cleanup_note(&value));
    }
    Ok(ExitCode::SUCCESS)
}
