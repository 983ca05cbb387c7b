//! Writing a stored session back where Claude Code reads it — `<projects>/<workspace>/<id>.jsonl`
//! and `<projects>/<workspace>/<id>/subagents/agent-….jsonl` — so that `claude --resume <id>`
//! works again after Claude Code's cleanup removed the local files.
//!
//! Nothing local is ever overwritten: a file with the same bytes is left as it is, and a session
//! with any file that differs is refused whole, naming both sizes. Files are written aside and
//! renamed into place, so a reader never sees half of one. The workspace and file names come from
//! the server and are checked (the id rule, `agent-….jsonl`) before they become paths.

use std::path::{Path, PathBuf};

use sessionflow_protocol::ids::Id;
use sessionflow_protocol::transcripts::{Parts, is_subagent_name};

use super::client::Stored;

/// What became of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOutcome {
    Written,
    /// The local file has the same bytes already.
    Same,
}

/// A session restored: each file and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub files: Vec<(PathBuf, FileOutcome)>,
}

impl Restored {
    pub fn written(&self) -> usize {
        self.files
            .iter()
            .filter(|(_, outcome)| *outcome == FileOutcome::Written)
            .count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Local files differ from the stored ones: nothing of the session was written.
    #[error("{}", describe_conflicts(.0))]
    Conflict(Vec<Conflict>),
    #[error("the stored transcript cannot be restored: {0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A local file that differs from the stored one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub path: PathBuf,
    pub local_size: u64,
    pub stored_size: u64,
}

fn describe_conflicts(conflicts: &[Conflict]) -> String {
    conflicts
        .iter()
        .map(|c| {
            format!(
                "{} differs from the stored file ({} bytes here, {} stored); not overwritten",
                c.path.display(),
                c.local_size,
                c.stored_size
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The files of session `id` as `stored` holds them, with where each goes under `projects`.
pub fn plan<'s>(
    projects: &Path,
    id: &str,
    stored: &'s Stored,
) -> Result<Vec<(PathBuf, &'s [u8])>, RestoreError> {
    let invalid = |e: String| RestoreError::Invalid(e);
    let id = Id::parse("session_id", id).map_err(|e| invalid(e.to_string()))?;
    let workspace =
        Id::parse("workspace_id", &stored.workspace_id).map_err(|e| invalid(e.to_string()))?;
    let folder = projects.join(workspace.as_str());
    let main = folder.join(format!("{id}.jsonl"));
    let Some(parts) = stored.parts.as_ref().filter(|p| !p.is_single()) else {
        return Ok(vec![(main, &stored.bytes[..])]);
    };
    // Checked again here: the names become paths.
    let parts = Parts::parse(id.as_str(), &parts.to_header()).map_err(invalid)?;
    let files = parts.split(&stored.bytes).map_err(invalid)?;
    let subagents = folder.join(id.as_str()).join("subagents");
    Ok(parts
        .0
        .iter()
        .zip(files)
        .enumerate()
        .map(|(i, (part, bytes))| {
            let path = if i == 0 {
                main.clone()
            } else {
                debug_assert!(is_subagent_name(&part.name));
                subagents.join(&part.name)
            };
            (path, bytes)
        })
        .collect())
}

/// Writes session `id` back under `projects` (see the module doc).
pub fn restore(projects: &Path, id: &str, stored: &Stored) -> Result<Restored, RestoreError> {
    let files = plan(projects, id, stored)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RestoreError::Io { path, source }
    };
    let mut outcomes = Vec::with_capacity(files.len());
    let mut conflicts = Vec::new();
    for (path, bytes) in &files {
        match std::fs::symlink_metadata(path) {
            Ok(meta) => {
                let same = meta.is_file()
                    && meta.len() == bytes.len() as u64
                    && std::fs::read(path).map_err(io(path))? == *bytes;
                if same {
                    outcomes.push((path.clone(), FileOutcome::Same));
                } else {
                    conflicts.push(Conflict {
                        path: path.clone(),
                        local_size: meta.len(),
                        stored_size: bytes.len() as u64,
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                outcomes.push((path.clone(), FileOutcome::Written));
            }
            Err(e) => return Err(io(path)(e)),
        }
    }
    if !conflicts.is_empty() {
        return Err(RestoreError::Conflict(conflicts));
    }
    for ((path, bytes), (_, outcome)) in files.iter().zip(&outcomes) {
        if *outcome == FileOutcome::Written {
            write_new(path, bytes).map_err(io(path))?;
        }
    }
    Ok(Restored { files: outcomes })
}

/// Writes `bytes` to a new file at `path` (its folders made as needed): aside, synced, then
/// linked into place, which fails rather than replace a file that appeared meanwhile.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let folder = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no folder"))?;
    std::fs::create_dir_all(folder)?;
    let aside = folder.join(format!(
        ".{}.sessionflow-restore-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        ulid::Ulid::generate()
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&aside)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::hard_link(&aside, path)
    })();
    let _ = std::fs::remove_file(&aside);
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessionflow_protocol::transcripts::Part;

    fn stored(workspace: &str, parts: Option<Parts>, bytes: &[u8]) -> Stored {
        Stored {
            workspace_id: workspace.to_owned(),
            parts,
            bytes: bytes::Bytes::copy_from_slice(bytes),
        }
    }

    fn part(name: &str, size: u64, lines: u64, unterminated: bool) -> Part {
        Part {
            name: name.to_owned(),
            size,
            lines,
            unterminated,
        }
    }

    #[test]
    fn names_from_the_server_cannot_leave_the_projects_folder() {
        let root = Path::new("/projects");
        for workspace in ["..", "a/b", "/etc", ""] {
            assert!(
                plan(root, "s", &stored(workspace, None, b"x\n")).is_err(),
                "{workspace}"
            );
        }
        assert!(plan(root, "../s", &stored("w", None, b"x\n")).is_err());
        let climbing = Parts(vec![
            part("s.jsonl", 2, 1, false),
            part("../x.jsonl", 2, 1, false),
        ]);
        assert!(plan(root, "s", &stored("w", Some(climbing), b"x\ny\n")).is_err());
        let two = stored(
            "w",
            Some(Parts(vec![
                part("s.jsonl", 1, 1, true),
                part("agent-1.jsonl", 2, 1, false),
            ])),
            b"x\ny\n",
        );
        let files = plan(root, "s", &two).unwrap();
        assert_eq!(
            files,
            [
                (PathBuf::from("/projects/w/s.jsonl"), &b"x"[..]),
                (
                    PathBuf::from("/projects/w/s/subagents/agent-1.jsonl"),
                    &b"y\n"[..]
                ),
            ]
        );
    }

    #[test]
    fn same_files_are_skipped_and_different_ones_refuse_the_whole_session() {
        let dir = tempfile::tempdir().unwrap();
        let parts = Parts(vec![
            part("s.jsonl", 2, 1, false),
            part("agent-1.jsonl", 2, 1, false),
        ]);
        let session = stored("w", Some(parts), b"a\nb\n");
        let first = restore(dir.path(), "s", &session).unwrap();
        assert_eq!(first.written(), 2);
        let again = restore(dir.path(), "s", &session).unwrap();
        assert_eq!(again.written(), 0, "{again:?}");

        let subagent = dir.path().join("w/s/subagents/agent-1.jsonl");
        std::fs::write(&subagent, b"changed\n").unwrap();
        std::fs::remove_file(dir.path().join("w/s.jsonl")).unwrap();
        match restore(dir.path(), "s", &session) {
            Err(RestoreError::Conflict(conflicts)) => assert_eq!(
                conflicts,
                [Conflict {
                    path: subagent.clone(),
                    local_size: 8,
                    stored_size: 2
                }]
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            !dir.path().join("w/s.jsonl").exists(),
            "nothing of a refused session is written"
        );
        assert_eq!(std::fs::read(&subagent).unwrap(), b"changed\n");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("w"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
