//! `sessionflow search QUERY`: every session's messages searched — from the database (the
//! `search` processor brought up to date first), or from a server's `GET /api/search` — printed
//! as a table (when, project, session, snippet) or as JSON.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sessionflow_pipeline::capture::client::encode;
use sessionflow_pipeline::search::{DEFAULT_LIMIT, Request};
use sessionflow_protocol::search::{SearchHit, SearchPage};

use crate::options::ReportSource;
use crate::text::escaped;

/// Search every session: words, "an exact phrase", -excluded, or; identifiers and paths as
/// written (parse_bytes, src/main.rs).
#[derive(clap::Args)]
pub struct Args {
    /// What to look for (several arguments are one query).
    #[arg(required = true)]
    query: Vec<String>,
    /// Only this workspace.
    #[arg(long)]
    workspace: Option<String>,
    /// Only this device.
    #[arg(long)]
    device: Option<String>,
    /// Messages written at or after this time (RFC 3339, or a date: 2026-12-01).
    #[arg(long, value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    /// Messages written before this time (RFC 3339, or a date).
    #[arg(long, value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    /// user or assistant.
    #[arg(long)]
    role: Option<String>,
    /// text, thinking, tool_input or tool_result.
    #[arg(long)]
    kind: Option<String>,
    /// Only this tool's inputs and results (Bash, Edit, …).
    #[arg(long)]
    tool: Option<String>,
    /// Hits shown, 1 to 100.
    #[arg(long, default_value_t = DEFAULT_LIMIT)]
    limit: i64,
    /// Where the previous page ended (its `next_cursor`).
    #[arg(long)]
    cursor: Option<String>,
    /// The page as JSON: `{"hits": [...], "next_cursor": ..., "searched_to": ...}`.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: crate::options::Reports,
}

pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|day| day.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| format!("{text:?} is neither RFC 3339 nor YYYY-MM-DD"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let request = Request {
        q: args.query.join(" "),
        workspaces: args.workspace.clone().map(|w| vec![w]),
        device: args.device.clone(),
        since: args.since,
        until: args.until,
        role: args.role.clone(),
        kind: args.kind.clone(),
        tool: args.tool.clone(),
        limit: args.limit,
        cursor: args.cursor.clone(),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let page: SearchPage = runtime.block_on(async {
        match args.source.open().await? {
            ReportSource::Database(processors) => processors
                .search(&request)
                .await
                .map_err(anyhow::Error::msg),
            ReportSource::Api(client) => {
                let answer = client
                    .get(&api_path(&request))
                    .await
                    .map_err(anyhow::Error::msg)?;
                serde_json::from_value(answer).context("the server's search answer is unreadable")
            }
        }
    })?;
    if args.json {
        println!("{}", serde_json::json!(page));
    } else {
        print_table(&page, std::io::stdout().is_terminal());
    }
    Ok(ExitCode::SUCCESS)
}

/// `GET /api/search` with the request's query.
fn api_path(request: &Request) -> String {
    let mut path = format!(
        "/api/search?q={}&limit={}",
        encode(&request.q),
        request.limit
    );
    let mut add = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            path.push_str(&format!("&{name}={}", encode(&value)));
        }
    };
    add(
        "workspace",
        request.workspaces.as_ref().and_then(|w| w.first().cloned()),
    );
    add("device", request.device.clone());
    add("since", request.since.map(|t| t.to_rfc3339()));
    add("until", request.until.map(|t| t.to_rfc3339()));
    add("role", request.role.clone());
    add("kind", request.kind.clone());
    add("tool", request.tool.clone());
    add("cursor", request.cursor.clone());
    path
}

fn print_table(page: &SearchPage, bold: bool) {
    if page.hits.is_empty() {
        println!("Nothing found.");
    } else {
        println!("{:<16} {:<20} {:<14} snippet", "when", "project", "session");
    }
    for hit in &page.hits {
        println!(
            "{:<16} {:<20} {:<14} {}",
            hit.timestamp
                .map_or("–".to_owned(), |t| t.format("%Y-%m-%d %H:%M").to_string()),
            clip(hit.project(), 20),
            clip(&format!("{}#{}", hit.session_id, hit.message_ordinal), 14),
            marked(hit, bold)
        );
    }
    if let Some(cursor) = &page.next_cursor {
        eprintln!("more: --cursor '{cursor}'");
    }
    if let Some(to) = page.searched_to {
        eprintln!(
            "searched back to {}; older: --until {}",
            to.format("%Y-%m-%d %H:%M"),
            to.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        );
    }
}

fn clip(text: &str, width: usize) -> String {
    let text = escaped(text).into_owned();
    if text.chars().count() <= width {
        return text;
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// The snippet with its matches in bold on a terminal, `*between stars*` elsewhere.
fn marked(hit: &SearchHit, bold: bool) -> String {
    let (open, close) = if bold {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("*", "*")
    };
    hit.pieces()
        .into_iter()
        .map(|(text, matched)| {
            if matched {
                format!("{open}{}{close}", escaped(&text))
            } else {
                escaped(&text).into_owned()
            }
        })
        .collect()
}
