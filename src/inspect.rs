//! `sessionflow inspect`: parses transcript files and directories offline, on every core, and
//! prints what it found per file — a table with a deduplicated total, or one JSON object per line.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use rayon::prelude::*;
use serde::Serialize;
use sessionflow_stages::transcript::{
    LineError, ModelUsage, ParseOptions, PricingTable, Stats, UsageLedger, parse_reader,
};

/// Parse Claude Code transcripts and report messages, blocks, errors, tokens and cost per file.
///
/// Directories are searched recursively for `*.jsonl` (subagent transcripts included). Needs no
/// service. Exits 0 when every path could be read, malformed lines included; 1 otherwise.
#[derive(clap::Args)]
pub struct Args {
    /// One JSON object per file per line, instead of a table.
    #[arg(long)]
    json: bool,
    /// JSON price table whose models extend or replace the embedded ones.
    #[arg(long, env = "SESSIONFLOW_PRICING", value_name = "FILE")]
    pricing: Option<PathBuf>,
    /// Files to parse at once [default: one per core].
    #[arg(long, env = "SESSIONFLOW_JOBS")]
    jobs: Option<usize>,
    /// Transcript files or directories [default: $CLAUDE_CONFIG_DIR/projects or
    /// ~/.claude/projects].
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
}

/// What `--json` prints for one file: exactly these keys.
#[derive(Serialize)]
struct FileReport {
    file: String,
    session_id: Option<String>,
    lines: u64,
    parse_errors: Vec<LineError>,
    messages: usize,
    content_blocks: usize,
    stats: Stats,
    models: Vec<ModelUsage>,
    /// Kept for the table's deduplicated total; not part of the JSON.
    #[serde(skip)]
    usage: UsageLedger,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let pricing = match &args.pricing {
        Some(path) => PricingTable::embedded_with_overrides(path)?,
        None => PricingTable::embedded().clone(),
    };
    let options = ParseOptions {
        keep_raw: false,
        pricing: Arc::new(pricing),
        ..ParseOptions::default()
    };
    let paths = if args.paths.is_empty() {
        vec![default_projects_dir()?]
    } else {
        args.paths.clone()
    };

    let mut unreadable = Vec::new();
    let files = collect_files(&paths, &mut unreadable);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs.unwrap_or(0))
        .build()
        .context("cannot start the parser threads")?;
    let keep_usage = !args.json;
    let results: Vec<Result<FileReport, String>> = pool.install(|| {
        files
            .par_iter()
            .map(|file| inspect_file(file, &options, keep_usage))
            .collect()
    });
    let mut reports = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Ok(report) => reports.push(report),
            Err(error) => unreadable.push(error),
        }
    }

    let stdout = io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    let written = if args.json {
        write_json(&mut out, &reports)
    } else {
        write_table(&mut out, reports, &options.pricing)
    };
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        other => other.context("cannot write the report")?,
    }
    for error in &unreadable {
        eprintln!("sessionflow: {error}");
    }
    Ok(if unreadable.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn default_projects_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR") {
        return Ok(PathBuf::from(dir).join("projects"));
    }
    let home = std::env::var_os("HOME").context("no PATH given and HOME is not set")?;
    Ok(PathBuf::from(home).join(".claude").join("projects"))
}

/// The transcript files under `paths`, in a stable order: files as given, directories searched
/// for `*.jsonl` sorted by path. What cannot be read is reported in `unreadable`.
fn collect_files(paths: &[PathBuf], unreadable: &mut Vec<String>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        match std::fs::metadata(path) {
            Err(e) => unreadable.push(format!("cannot read {}: {e}", path.display())),
            Ok(meta) if meta.is_dir() => {
                let walk = walkdir::WalkDir::new(path)
                    .follow_links(true)
                    .sort_by_file_name();
                for entry in walk {
                    match entry {
                        Ok(entry) => {
                            if entry.file_type().is_file()
                                && entry.path().extension().is_some_and(|e| e == "jsonl")
                            {
                                files.push(entry.into_path());
                            }
                        }
                        Err(e) => unreadable.push(format!("cannot read {e}")),
                    }
                }
            }
            Ok(_) => files.push(path.clone()),
        }
    }
    files
}

fn inspect_file(
    path: &Path,
    options: &ParseOptions,
    keep_usage: bool,
) -> Result<FileReport, String> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let parsed = parse_reader(file, options).map_err(|e| format!("cannot read {shown}: {e}"))?;
    Ok(FileReport {
        session_id: parsed.metadata.session_id.clone(),
        lines: parsed.records.lines,
        messages: parsed.messages.len(),
        content_blocks: parsed.content_block_count(),
        file: shown,
        parse_errors: parsed.line_errors,
        stats: parsed.stats,
        models: parsed.models,
        usage: if keep_usage {
            parsed.usage
        } else {
            UsageLedger::new()
        },
    })
}

fn write_json(out: &mut impl Write, reports: &[FileReport]) -> io::Result<()> {
    for report in reports {
        serde_json::to_writer(&mut *out, report)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

const FILE_WIDTH: usize = 48;

fn write_table(
    out: &mut impl Write,
    reports: Vec<FileReport>,
    pricing: &PricingTable,
) -> io::Result<()> {
    writeln!(
        out,
        "{:<FILE_WIDTH$}  {:<8}  {:>7}  {:>6}  {:>8}  {:>8}  {:>11}  {:>11}  {:>13}  {:>15}  {:>10}",
        "FILE",
        "SESSION",
        "LINES",
        "ERRORS",
        "MESSAGES",
        "BLOCKS",
        "INPUT",
        "OUTPUT",
        "CACHE WRITE",
        "CACHE READ",
        "COST USD"
    )?;
    let file_count = reports.len();
    let mut total = UsageLedger::new();
    let (mut lines, mut errors, mut messages, mut blocks) = (0, 0, 0, 0);
    let mut summed_responses = 0;
    for report in reports.iter() {
        let s = &report.stats;
        let unpriced = report.models.iter().any(|m| m.cost_usd.is_none());
        writeln!(
            out,
            "{:<FILE_WIDTH$}  {:<8}  {:>7}  {:>6}  {:>8}  {:>8}  {:>11}  {:>11}  {:>13}  {:>15}  {:>10}",
            shorten(&report.file, FILE_WIDTH),
            report
                .session_id
                .as_deref()
                .map_or("-", |id| &id[..id.len().min(8)]),
            group(report.lines),
            group(report.parse_errors.len() as u64),
            group(report.messages as u64),
            group(report.content_blocks as u64),
            group(s.tokens_in),
            group(s.tokens_out),
            group(s.cache_write_tokens),
            group(s.cache_read_tokens),
            cost(s.cost_estimate_usd, unpriced),
        )?;
        lines += report.lines;
        errors += report.parse_errors.len() as u64;
        messages += report.messages as u64;
        blocks += report.content_blocks as u64;
        summed_responses += report.usage.len();
    }
    for report in reports {
        total.merge(report.usage);
    }
    let models = total.by_model(pricing);
    let tokens = total.totals();
    let priced: f64 = models.iter().filter_map(|m| m.cost_usd).sum();
    let unpriced: Vec<&str> = models
        .iter()
        .filter(|m| m.cost_usd.is_none())
        .map(|m| m.model.as_str())
        .collect();
    writeln!(
        out,
        "{:<FILE_WIDTH$}  {:<8}  {:>7}  {:>6}  {:>8}  {:>8}  {:>11}  {:>11}  {:>13}  {:>15}  {:>10}",
        format!("TOTAL ({} files)", group(file_count as u64)),
        "",
        group(lines),
        group(errors),
        group(messages),
        group(blocks),
        group(tokens.input_tokens),
        group(tokens.output_tokens),
        group(tokens.cache_creation_input_tokens),
        group(tokens.cache_read_input_tokens),
        cost(priced, !unpriced.is_empty()),
    )?;
    let repeated = summed_responses - total.len();
    if repeated > 0 {
        writeln!(
            out,
            "{repeated} API responses appear in more than one file (resumed or forked sessions); the total counts each once."
        )?;
    }
    if !unpriced.is_empty() {
        writeln!(
            out,
            "* unpriced models, tokens counted but no cost: {} (add them with --pricing FILE)",
            unpriced.join(", ")
        )?;
    }
    Ok(())
}

fn cost(usd: f64, unpriced: bool) -> String {
    format!("{usd:.2}{}", if unpriced { "*" } else { "" })
}

/// `1234567` as `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Keeps the end of a long path, where the session id is.
fn shorten(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        return text.to_owned();
    }
    let tail: String = text.chars().skip(count - (width - 1)).collect();
    format!("…{tail}")
}
