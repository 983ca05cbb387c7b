//! `sessionflow gen-corpus`: writes a `~/.claude/projects`-shaped tree of synthetic transcripts
//! (see `sessionflow_stages::corpus`) for benchmarks, load tests and the demo.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use rayon::prelude::*;
use sessionflow_stages::corpus;

/// Write realistic synthetic transcripts, deterministic by seed.
#[derive(clap::Args)]
pub struct Args {
    /// Number of sessions to generate.
    #[arg(long)]
    sessions: u64,
    /// Directory to write into, laid out like ~/.claude/projects: one folder per project,
    /// `<session>.jsonl` in it and subagent transcripts in `<session>/subagents/`.
    #[arg(long)]
    out: PathBuf,
    /// Seed; the same seed and count write the same bytes.
    #[arg(long, default_value_t = 0, env = "SESSIONFLOW_SEED")]
    seed: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (files, bytes) = generate(&args.out, args.sessions, args.seed)?;
    println!(
        "wrote {} sessions ({files} files, {:.1} MB) to {}",
        args.sessions,
        bytes as f64 / 1e6,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes `sessions` generated sessions under `out`; returns the files and bytes written.
pub fn generate(out: &Path, sessions: u64, seed: u64) -> anyhow::Result<(u64, u64)> {
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let files = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    (0..sessions).into_par_iter().try_for_each(|index| {
        let session = corpus::session(seed, index);
        let project = out.join(&session.project);
        write(
            &project.join(format!("{}.jsonl", session.session_id)),
            &session.transcript,
        )?;
        let mut written = session.transcript.len() as u64;
        for (name, body) in &session.subagents {
            let dir = project.join(&session.session_id).join("subagents");
            write(&dir.join(name), body)?;
            written += body.len() as u64;
        }
        files.fetch_add(1 + session.subagents.len() as u64, Ordering::Relaxed);
        bytes.fetch_add(written, Ordering::Relaxed);
        anyhow::Ok(())
    })?;
    Ok((files.into_inner(), bytes.into_inner()))
}

fn write(path: &Path, body: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::write(path, body).with_context(|| format!("cannot write {}", path.display()))
}
