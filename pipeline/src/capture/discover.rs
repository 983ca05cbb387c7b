//! Finding sessions on disk: `<projects>/<project-dir>/<uuid>.jsonl` and their subagent files
//! `<project-dir>/<uuid>/subagents/agent-*.jsonl`, and reading one into the body the server
//! stores (the main transcript, then each subagent file) with the facts its events carry.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use sessionflow_protocol::ids::Id;
use sessionflow_protocol::transcripts::{Part, Parts, is_subagent_name, newlines};
use sessionflow_stages::transcript::{ParseOptions, parse_bytes};
use sha2::{Digest, Sha256};

/// Claude Code's configuration folders: each of `CLAUDE_CONFIG_DIR`'s comma-separated paths,
/// else `~/.claude` and `~/.config/claude` (whether or not they exist).
pub fn config_dirs() -> Vec<PathBuf> {
    match std::env::var("CLAUDE_CONFIG_DIR") {
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
    }
}

/// The projects folders to read when none are named: `projects/` in each of [`config_dirs`]
/// that has one.
pub fn default_roots() -> Vec<PathBuf> {
    config_dirs()
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

/// Largest session (main transcript and subagent files together) capture sends unless told
/// otherwise.
pub const DEFAULT_MAX_UPLOAD: u64 = 1024 * 1024 * 1024;

/// What capture may read: where, and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub roots: Roots,
    /// Most bytes of one session (main transcript and subagent files).
    pub max_upload: u64,
}

impl Admission {
    /// The default projects folders and `named`, with `max_upload` bytes per session.
    pub fn new(named: &[PathBuf], max_upload: u64) -> Self {
        Admission {
            roots: Roots::new(named),
            max_upload,
        }
    }

    /// See [`admit`].
    pub fn admit(&self, path: &Path) -> Result<LocalSession, String> {
        admit(path, &self.roots, self.max_upload)
    }
}

/// Where transcripts may be read from: Claude projects folders, with every symlink resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roots(Vec<PathBuf>);

impl Roots {
    /// The default projects folders ([`default_roots`]) and `named` (directories named on the
    /// command line; a file named there stands for its folder), each resolved. Folders that do
    /// not exist are left out.
    pub fn new(named: &[PathBuf]) -> Self {
        let named = named.iter().filter_map(|path| {
            if path.is_file() {
                path.parent().map(Path::to_path_buf)
            } else {
                Some(path.clone())
            }
        });
        let mut dirs: Vec<PathBuf> = default_roots()
            .into_iter()
            .chain(named)
            .filter_map(|dir| std::fs::canonicalize(dir).ok())
            .filter(|dir| dir.is_dir())
            .collect();
        dirs.sort();
        dirs.dedup();
        Roots(dirs)
    }

    /// Whether `resolved` (a path without symlinks) lies inside one of the folders.
    fn hold(&self, resolved: &Path) -> bool {
        self.0
            .iter()
            .any(|root| resolved.starts_with(root) && resolved != root)
    }

    fn describe(&self) -> String {
        if self.0.is_empty() {
            return "there is none on this machine".to_owned();
        }
        self.0
            .iter()
            .map(|root| root.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The session `path` belongs to, if capture may read it: after resolving symlinks it is a
/// regular file inside one of `roots`, named `<session id>.jsonl` in its project folder (or one
/// of that session's `subagents/agent-*.jsonl`, which stands for the session), its subagent
/// files are regular files inside `roots` too, and all of it together is at most `max` bytes.
/// Otherwise the reason, for the log; nothing of a refused path is ever sent.
pub fn admit(path: &Path, roots: &Roots, max: u64) -> Result<LocalSession, String> {
    let shown = path.display();
    let resolved = std::fs::canonicalize(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let regular = |resolved: &Path, shown: &dyn std::fmt::Display| -> Result<u64, String> {
        if !roots.hold(resolved) {
            return Err(format!(
                "{shown} is not inside a Claude projects folder ({})",
                roots.describe()
            ));
        }
        let meta = std::fs::metadata(resolved).map_err(|e| format!("cannot read {shown}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{shown} is not a regular file"));
        }
        Ok(meta.len())
    };
    let mut size = regular(&resolved, &shown)?;
    // A subagent file stands for its session: <project>/<id>/subagents/agent-*.jsonl.
    let main = match subagent_owner(&resolved) {
        Some(main) => {
            let main = std::fs::canonicalize(&main).map_err(|e| {
                format!(
                    "{shown} is a subagent file whose session {} cannot be read: {e}",
                    main.display()
                )
            })?;
            // The subagent file is counted with the others below.
            size = regular(&main, &main.display())?;
            main
        }
        None => resolved,
    };
    let session = session_at(&main)
        .ok_or_else(|| format!("{shown} is not a session transcript (<session id>.jsonl)"))?;
    Id::parse("session_id", &session.id).map_err(|e| format!("{shown}: {e}"))?;
    Id::parse("workspace_id", &session.workspace_id).map_err(|e| format!("{shown}: {e}"))?;
    let mut subagents = Vec::with_capacity(session.subagents.len());
    for part in &session.subagents {
        let resolved = std::fs::canonicalize(part)
            .map_err(|e| format!("cannot read {}: {e}", part.display()))?;
        size += regular(&resolved, &part.display())?;
        subagents.push(resolved);
    }
    if size > max {
        return Err(format!(
            "{shown} is {size} bytes with its subagent files, over the {max}-byte cap \
             (--max-upload, SESSIONFLOW_MAX_UPLOAD)"
        ));
    }
    Ok(LocalSession {
        subagents,
        ..session
    })
}

/// `<project>/<id>.jsonl` for a path `<project>/<id>/subagents/agent-*.jsonl`.
fn subagent_owner(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    if !(name.starts_with("agent-") && name.ends_with(".jsonl")) {
        return None;
    }
    let subagents = path.parent()?;
    if subagents.file_name()? != "subagents" {
        return None;
    }
    let session = subagents.parent()?;
    let id = session.file_name()?.to_str()?;
    Some(session.with_file_name(format!("{id}.jsonl")))
}

/// What capture knows of a session on disk without holding it: what the server will compute
/// of the body (size, SHA-256) and what the events say about it.
#[derive(Debug, Clone)]
pub struct Transcript {
    /// Bytes of the body: the main transcript, then each subagent file on a line of its own.
    pub size: u64,
    /// Hex SHA-256 of the body, as the server records it.
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

/// Read at once from disk, and held at most.
const CHUNK: usize = 256 * 1024;
/// The start of the main transcript parsed for its facts (cwd, branch, version, model, first
/// time: its first lines hold them), and its end (the last time). Parsing whole transcripts up
/// to 1 MB made parsing most of what a backfill's client spent.
const HEAD: usize = 64 * 1024;
const TAIL: u64 = 64 * 1024;

/// The files of a session in upload order, joined into one body: each part after the first
/// starts on a line of its own. `each` sees the body chunk by chunk (at most [`CHUNK`] bytes).
pub fn stream_body(
    parts: &[PathBuf],
    each: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let files: Vec<(&Path, Option<u64>)> = parts.iter().map(|p| (p.as_path(), None)).collect();
    stream_files(&files, each)
}

/// [`stream_body`] of each file's first `size` bytes (all of it for none): what was measured
/// is what is sent, however the files grow meanwhile; a file now shorter is an error.
pub fn stream_files(
    files: &[(&Path, Option<u64>)],
    mut each: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Read;
    let mut last: Option<u8> = None;
    let mut buf = vec![0u8; CHUNK];
    for (i, (path, size)) in files.iter().enumerate() {
        let mut file = std::fs::File::open(path)?.take(size.unwrap_or(u64::MAX));
        if i > 0 && last.is_some_and(|b| b != b'\n') {
            each(b"\n")?;
            last = Some(b'\n');
        }
        let mut read = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            read += n as u64;
            last = Some(buf[n - 1]);
            each(&buf[..n])?;
        }
        if size.is_some_and(|size| read < size) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} shrank while it was sent", path.display()),
            ));
        }
    }
    Ok(())
}

impl LocalSession {
    /// The files to upload, main transcript first.
    pub fn parts(&self) -> Vec<PathBuf> {
        std::iter::once(self.main.clone())
            .chain(self.subagents.iter().cloned())
            .collect()
    }

    /// The files' names, sizes and lines as they are now: what an upload sends (and names in
    /// its [`PARTS_HEADER`](sessionflow_protocol::transcripts::PARTS_HEADER)).
    pub fn measure(&self) -> std::io::Result<Parts> {
        use std::io::Read;
        let mut parts = Vec::with_capacity(1 + self.subagents.len());
        let mut buf = vec![0u8; CHUNK];
        for path in self.parts() {
            // Named as Claude Code names them (a file reached through a link may have another
            // name where it lies).
            let name = match path.file_name().and_then(|n| n.to_str()) {
                _ if parts.is_empty() => format!("{}.jsonl", self.id),
                Some(name) if is_subagent_name(name) => name.to_owned(),
                _ => format!("agent-{}.jsonl", parts.len()),
            };
            let mut file = std::fs::File::open(&path)?;
            let (mut size, mut lines, mut last) = (0u64, 0u64, None);
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                lines += newlines(&buf[..n]);
                last = Some(buf[n - 1]);
            }
            let unterminated = last.is_some_and(|b| b != b'\n');
            parts.push(Part {
                name,
                size,
                lines: lines + u64::from(unterminated),
                unterminated,
            });
        }
        Ok(Parts(parts))
    }

    /// The whole body in memory, for those who parse it (the offline processors).
    pub fn body(&self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        stream_body(&self.parts(), |chunk| {
            body.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(body)
    }

    /// Reads the session's files once, in chunks (memory does not grow with their size): the
    /// body's size and hash, and the facts its events carry from the main transcript's start
    /// and end.
    pub fn scan(&self) -> std::io::Result<Transcript> {
        use std::io::{Read, Seek, SeekFrom};
        let mut modified = std::fs::metadata(&self.main)?.modified()?;
        for path in &self.subagents {
            modified = modified.max(std::fs::metadata(path)?.modified()?);
        }
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        stream_body(&self.parts(), |chunk| {
            hasher.update(chunk);
            size += chunk.len() as u64;
            Ok(())
        })?;

        let mut file = std::fs::File::open(&self.main)?;
        let mut head = Vec::with_capacity(HEAD.min(size as usize));
        (&mut file).take(HEAD as u64).read_to_end(&mut head)?;
        let whole = head.len() < HEAD;
        if !whole {
            // Whole lines only.
            let end = head
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |at| at + 1);
            head.truncate(end);
        }
        let parsed = parse_bytes(&head, &ParseOptions::default());
        let mut last_timestamp = parsed.metadata.last_timestamp;
        if !whole {
            let length = file.metadata()?.len();
            file.seek(SeekFrom::Start(length.saturating_sub(TAIL)))?;
            let mut tail = Vec::with_capacity(TAIL as usize);
            file.take(TAIL).read_to_end(&mut tail)?;
            let start = tail
                .iter()
                .position(|b| *b == b'\n')
                .map_or(tail.len(), |at| at + 1);
            let end = parse_bytes(&tail[start..], &ParseOptions::default());
            last_timestamp = end.metadata.last_timestamp.max(last_timestamp);
        }
        let model = parsed
            .messages
            .iter()
            .filter_map(|m| m.model.as_deref())
            .find(|m| !m.starts_with('<'))
            .map(str::to_owned);
        let meta = parsed.metadata;
        Ok(Transcript {
            size,
            sha256: format!("{:x}", hasher.finalize()),
            modified,
            cwd: meta.cwd,
            git_branch: meta.git_branch,
            cc_version: meta.version,
            model,
            first_timestamp: meta.first_timestamp,
            last_timestamp,
        })
    }
}
