//! Finding sessions on disk: `<projects>/<project-dir>/<uuid>.jsonl` and their subagent files
//! `<project-dir>/<uuid>/subagents/agent-*.jsonl`, and reading one into the body the server
//! stores (the main transcript, then each subagent file) with the facts its events carry.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use sessionflow_protocol::ids::Id;
use sessionflow_stages::transcript::{ParseOptions, parse_bytes};
use sha2::{Digest, Sha256};

/// The projects folders to read when none are named: each of `CLAUDE_CONFIG_DIR`'s
/// comma-separated paths, else `~/.claude` and `~/.config/claude`; each with `projects/` in it.
pub fn default_roots() -> Vec<PathBuf> {
    let configs: Vec<PathBuf> = match std::env::var("CLAUDE_CONFIG_DIR") {
        Ok(dirs) if !dirs.trim().is_empty() => dirs
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect(),
        _ => match std::env::var_os("HOME") {
            Some(home) => {
                let home = PathBuf::from(home);
                vec![home.join(".claude"), home.join(".config/claude")]
            }
            None => Vec::new(),
        },
    };
    configs
        .into_iter()
        .map(|config| config.join("projects"))
        .filter(|projects| projects.is_dir())
        .collect()
}

/// One session found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSession {
    /// The file's stem: Claude Code's session id.
    pub id: String,
    /// The project folder's name (Claude Code's encoding of the working directory).
    pub workspace_id: String,
    pub main: PathBuf,
    /// Subagent transcripts, sorted by name.
    pub subagents: Vec<PathBuf>,
}

/// What could not be looked at, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub path: PathBuf,
    pub error: String,
}

/// Every session under `roots` (each a projects folder, or one project folder, or one file).
pub fn discover(roots: &[PathBuf]) -> (Vec<LocalSession>, Vec<Unreadable>) {
    let mut sessions = Vec::new();
    let mut unreadable = Vec::new();
    for root in roots {
        if root.is_file() {
            match session_at(root) {
                Some(session) => keep(session, &mut sessions, &mut unreadable),
                None => unreadable.push(Unreadable {
                    path: root.clone(),
                    error: "not a <session>.jsonl file".into(),
                }),
            }
            continue;
        }
        let walker = walkdir::WalkDir::new(root)
            .min_depth(1)
            .max_depth(2)
            .sort_by_file_name();
        for entry in walker {
            match entry {
                // A link is followed when read: a dangling one is reported then, not lost.
                Ok(entry) if entry.file_type().is_file() || entry.path_is_symlink() => {
                    if let Some(session) = session_at(entry.path()) {
                        keep(session, &mut sessions, &mut unreadable);
                    }
                }
                Ok(_) => {}
                Err(e) => unreadable.push(Unreadable {
                    path: e.path().map_or_else(|| root.clone(), Path::to_path_buf),
                    error: e.to_string(),
                }),
            }
        }
    }
    sessions.sort_by(|a, b| a.id.cmp(&b.id));
    sessions.dedup_by(|a, b| a.id == b.id);
    (sessions, unreadable)
}

/// Keeps `session` if its ids keep the id rule (the server refuses others), else says why.
fn keep(session: LocalSession, sessions: &mut Vec<LocalSession>, unreadable: &mut Vec<Unreadable>) {
    let checked = Id::parse("session_id", &session.id)
        .and_then(|_| Id::parse("workspace_id", &session.workspace_id));
    match checked {
        Ok(_) => sessions.push(session),
        Err(e) => unreadable.push(Unreadable {
            path: session.main,
            error: e.to_string(),
        }),
    }
}

/// The session whose main transcript is `path`, with its subagent files.
pub fn session_at(path: &Path) -> Option<LocalSession> {
    if path.extension().is_none_or(|e| e != "jsonl") {
        return None;
    }
    let id = path.file_stem()?.to_str()?.to_owned();
    let project = path.parent()?;
    let workspace_id = project.file_name()?.to_str()?.to_owned();
    let mut subagents: Vec<PathBuf> = std::fs::read_dir(project.join(&id).join("subagents"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("agent-") && n.ends_with(".jsonl"))
        })
        .collect();
    subagents.sort();
    Some(LocalSession {
        id,
        workspace_id,
        main: path.to_path_buf(),
        subagents,
    })
}

/// A session read off disk: the body to upload and what the events say about it.
#[derive(Debug, Clone)]
pub struct Transcript {
    pub body: Vec<u8>,
    /// Hex SHA-256 of `body`, as the server records it.
    pub sha256: String,
    /// When any of its files last changed.
    pub modified: SystemTime,
    pub cwd: Option<String>,
    pub git_branch: Option<String>,
    pub cc_version: Option<String>,
    pub model: Option<String>,
    pub first_timestamp: Option<DateTime<Utc>>,
    pub last_timestamp: Option<DateTime<Utc>>,
}

impl LocalSession {
    /// Reads the main transcript and its subagent files into one JSONL body.
    pub fn read(&self) -> std::io::Result<Transcript> {
        let mut body = std::fs::read(&self.main)?;
        let mut modified = std::fs::metadata(&self.main)?.modified()?;
        let parsed = parse_bytes(&body, &ParseOptions::default());
        for path in &self.subagents {
            let part = std::fs::read(path)?;
            modified = modified.max(std::fs::metadata(path)?.modified()?);
            if !body.is_empty() && !body.ends_with(b"\n") {
                body.push(b'\n');
            }
            body.extend_from_slice(&part);
        }
        let model = parsed
            .messages
            .iter()
            .filter_map(|m| m.model.as_deref())
            .find(|m| !m.starts_with('<'))
            .map(str::to_owned);
        let meta = parsed.metadata;
        Ok(Transcript {
            sha256: format!("{:x}", Sha256::digest(&body)),
            body,
            modified,
            cwd: meta.cwd,
            git_branch: meta.git_branch,
            cc_version: meta.version,
            model,
            first_timestamp: meta.first_timestamp,
            last_timestamp: meta.last_timestamp,
        })
    }
}
