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
    let mut report = if args.json {
        Report::Json
    } else {
        Report::Table(Box::default())
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let mut write = || -> io::Result<()> {
        report.start(&mut out)?;
        // Files are parsed a batch at a time and printed in order, so memory holds one batch of
        // small reports, never the corpus.
        for batch in files.chunks(BATCH) {
            let results: Vec<Result<FileReport, String>> = pool.install(|| {
                batch
                    .par_iter()
                    .map(|file| inspect_file(file, &options, keep_usage))
                    .collect()
            });
            for result in results {
                match result {
                    Ok(file) => report.row(&mut out, file)?,
                    Err(error) => unreadable.push(error),
                }
            }
        }
        report.finish(&mut out, &options.pricing)?;
        out.flush()
    };
    match write() {
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
/// for `*.jsonl` and sorted by path. What cannot be read is reported in `unreadable`.
fn collect_files(paths: &[PathBuf], unreadable: &mut Vec<String>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        match std::fs::metadata(path) {
            Err(e) => unreadable.push(format!("cannot read {}: {e}", path.display())),
            Ok(meta) if meta.is_dir() => {
                let first = files.len();
                let walk = walkdir::WalkDir::new(path).follow_links(true);
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
                // By path as text, so `<session>.jsonl` comes before `<session>/subagents/…`.
                files[first..].sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
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

/// Files parsed at once before their rows are printed.
const BATCH: usize = 256;

const FILE_WIDTH: usize = 48;

/// Where reports go: JSON lines, or a table with a running, deduplicated total.
enum Report {
    Json,
    Table(Box<Totals>),
}

#[derive(Default)]
struct Totals {
    files: u64,
    lines: u64,
    errors: u64,
    messages: u64,
    blocks: u64,
    /// Responses counted file by file, before deduplication across files.
    responses: usize,
    usage: UsageLedger,
}

impl Report {
    fn start(&self, out: &mut impl Write) -> io::Result<()> {
        match self {
            Report::Json => Ok(()),
            Report::Table(_) => writeln!(
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
            ),
        }
    }

    fn row(&mut self, out: &mut impl Write, report: FileReport) -> io::Result<()> {
        let totals = match self {
            Report::Json => {
                serde_json::to_writer(&mut *out, &report)?;
                return out.write_all(b"\n");
            }
            Report::Table(totals) => totals,
        };
        let s = &report.stats;
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
            cost(s.cost_estimate_usd, Mark::of(&report.models)),
        )?;
        totals.files += 1;
        totals.lines += report.lines;
        totals.errors += report.parse_errors.len() as u64;
        totals.messages += report.messages as u64;
        totals.blocks += report.content_blocks as u64;
        totals.responses += report.usage.len();
        totals.usage.merge(report.usage);
        Ok(())
    }

    fn finish(&mut self, out: &mut impl Write, pricing: &PricingTable) -> io::Result<()> {
        let Report::Table(totals) = self else {
            return Ok(());
        };
        let models = totals.usage.by_model(pricing);
        let tokens = totals.usage.totals();
        let priced: f64 = models.iter().filter_map(|m| m.cost_usd).sum();
        let unpriced: Vec<&str> = models
            .iter()
            .filter(|m| m.cost_usd.is_none())
            .map(|m| m.model.as_str())
            .collect();
        writeln!(
            out,
            "{:<FILE_WIDTH$}  {:<8}  {:>7}  {:>6}  {:>8}  {:>8}  {:>11}  {:>11}  {:>13}  {:>15}  {:>10}",
            format!("TOTAL ({} files)", group(totals.files)),
            "",
            group(totals.lines),
            group(totals.errors),
            group(totals.messages),
            group(totals.blocks),
            group(tokens.input_tokens),
            group(tokens.output_tokens),
            group(tokens.cache_creation_input_tokens),
            group(tokens.cache_read_input_tokens),
            cost(priced, Mark::of(&models)),
        )?;
        let repeated = totals.responses - totals.usage.len();
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
        let estimated: Vec<&str> = models
            .iter()
            .filter(|m| m.cost_estimated)
            .map(|m| m.model.as_str())
            .collect();
        if !estimated.is_empty() {
            writeln!(
                out,
                "≈ priced at their family's newest rates (not in the price table): {}",
                estimated.join(", ")
            )?;
        }
        Ok(())
    }
}

/// How sure a cost is.
struct Mark {
    /// Some tokens have no price: the cost leaves them out (`*`).
    unpriced: bool,
    /// No token has a price.
    nothing_priced: bool,
    /// Some prices are a family's newest rates (`≈`).
    estimated: bool,
}

impl Mark {
    fn of(models: &[ModelUsage]) -> Mark {
        Mark {
            unpriced: models.iter().any(|m| m.cost_usd.is_none()),
            nothing_priced: !models.is_empty() && models.iter().all(|m| m.cost_usd.is_none()),
            estimated: models.iter().any(|m| m.cost_estimated),
        }
    }
}

fn cost(usd: f64, mark: Mark) -> String {
    if mark.nothing_priced {
        return "unpriced*".to_owned();
    }
    // An empty sum of floats is -0.0; never show "-0.00".
    let usd = usd + 0.0;
    format!(
        "{}{usd:.2}{}",
        if mark.estimated { "≈" } else { "" },
        if mark.unpriced { "*" } else { "" }
    )
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
