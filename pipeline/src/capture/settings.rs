//! Our two hooks in Claude Code's `settings.json`: added next to every other setting and hook,
//! idempotently (a second install updates ours in place), and removed alone by uninstall.
//! Ours are recognised by their command: `… hook session-start` / `… hook session-end` run by a
//! `sessionflow` binary. Also how long Claude Code keeps local transcripts (`cleanupPeriodDays`),
//! which install reports.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Claude Code's hook events and the `sessionflow hook` subcommand for each.
pub const HOOKS: [(&str, &str); 2] = [
    ("SessionStart", "session-start"),
    ("SessionEnd", "session-end"),
];

/// Days Claude Code keeps a transcript after its last change when `cleanupPeriodDays` is unset.
pub const DEFAULT_CLEANUP_DAYS: f64 = 30.0;

/// How long Claude Code keeps local transcripts by these settings: `cleanupPeriodDays`, and
/// whether it was set (unset: [`DEFAULT_CLEANUP_DAYS`]).
pub fn cleanup_period_days(settings: &Value) -> (f64, bool) {
    match settings.get("cleanupPeriodDays").and_then(Value::as_f64) {
        Some(days) if days >= 0.0 => (days, true),
        _ => (DEFAULT_CLEANUP_DAYS, false),
    }
}

/// What to tell whoever installs the hooks about Claude Code's cleanup and what the server
/// keeps.
pub fn cleanup_note(settings: &Value) -> String {
    let (days, set) = cleanup_period_days(settings);
    let source = if set {
        "its cleanupPeriodDays"
    } else {
        "cleanupPeriodDays is not set: the default"
    };
    format!(
        "Claude Code deletes local transcripts {days} days after their last change ({source}); \
         the server keeps every session the hooks send: `sessionflow restore ID` (or --all) \
         writes them back, and `sessionflow backfill` sends what is here now"
    )
}

/// Seconds Claude Code gives each of our hooks.
const HOOK_TIMEOUT_S: u64 = 15;

/// Whether `command` is one of ours.
fn is_ours(command: &str) -> bool {
    command.contains("sessionflow")
        && HOOKS
            .iter()
            .any(|(_, sub)| command.contains(&format!(" hook {sub}")))
}

/// The command for `sub`: `{binary} hook {sub}` and the extra arguments, each quoted for the
/// shell Claude Code runs it with (a server URL with `&` or `;` stays one argument). `None` when
/// an argument cannot be quoted (it holds a NUL).
pub fn command(binary: &str, sub: &str, extra: &[String]) -> Option<String> {
    let words = [binary, "hook", sub]
        .into_iter()
        .chain(extra.iter().map(String::as_str));
    shlex::try_join(words).ok()
}

/// How many backups of `settings.json` are kept.
pub const BACKUPS: usize = 5;

/// Writes `contents` to `path` with care: the old file (if any) is copied to a timestamped
/// backup first (the newest [`BACKUPS`] are kept), the new one is written to an exclusive
/// temporary file with the old one's mode and owner (0600 for a new file: settings often hold
/// secrets), flushed to disk and renamed over `path`. Returns the backup written.
pub fn save(path: &Path, contents: &str) -> std::io::Result<Option<PathBuf>> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the settings path names no file"))?
        .to_string_lossy()
        .into_owned();
    let old = match std::fs::metadata(path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let backup = match &old {
        Some(meta) => {
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
            let backup = dir.join(format!("{name}.sessionflow-backup-{stamp}"));
            write_exclusive(&backup, &std::fs::read(path)?, Some(meta))?;
            prune_backups(&dir, &name)?;
            Some(backup)
        }
        None => None,
    };
    let aside = dir.join(format!(".{name}.sessionflow-{}", std::process::id()));
    let _ = std::fs::remove_file(&aside);
    write_exclusive(&aside, contents.as_bytes(), old.as_ref())?;
    if let Err(e) = std::fs::rename(&aside, path) {
        let _ = std::fs::remove_file(&aside);
        return Err(e);
    }
    // The rename itself is durable once the folder is.
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(backup)
}

/// Creates `path` (it must not exist), writes `bytes` and syncs; with `like`'s mode and owner,
/// else mode 0600.
fn write_exclusive(
    path: &Path,
    bytes: &[u8],
    like: Option<&std::fs::Metadata>,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let mode = like.map_or(0o600, |meta| meta.mode() & 0o7777);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    // The umask may have narrowed the mode; the old file's is what is wanted.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    if let Some(meta) = like
        && let Err(e) = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))
    {
        // Another user's file: it is not given away silently.
        let _ = std::fs::remove_file(path);
        return Err(std::io::Error::new(
            e.kind(),
            format!(
                "cannot keep the file's owner {}:{}: {e}",
                meta.uid(),
                meta.gid()
            ),
        ));
    }
    file.write_all(bytes)?;
    file.sync_all()
}

/// Removes all but the newest [`BACKUPS`] backups of `name` in `dir`.
fn prune_backups(dir: &Path, name: &str) -> std::io::Result<()> {
    let prefix = format!("{name}.sessionflow-backup-");
    let mut backups: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|entry| entry.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect();
    // The timestamps sort as text.
    backups.sort();
    let extra = backups.len().saturating_sub(BACKUPS);
    for old in &backups[..extra] {
        std::fs::remove_file(old)?;
    }
    Ok(())
}

/// Adds (or updates) our hooks; `commands(sub)` gives each one's command. Returns whether the
/// settings changed.
pub fn install(settings: &mut Value, commands: impl Fn(&str) -> String) -> Result<bool, String> {
    let before = settings.clone();
    let root = settings
        .as_object_mut()
        .ok_or("settings.json does not hold a JSON object")?;
    let hooks = root
        .entry("hooks")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or("settings.json's \"hooks\" is not an object")?;
    for (event, sub) in HOOKS {
        let wanted =
            json!({"type": "command", "command": commands(sub), "timeout": HOOK_TIMEOUT_S});
        let groups = hooks
            .entry(event)
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .ok_or_else(|| format!("settings.json's hooks.{event} is not a list"))?;
        let mut found = false;
        for group in groups.iter_mut() {
            let Some(list) = group.get_mut("hooks").and_then(Value::as_array_mut) else {
                continue;
            };
            for hook in list.iter_mut() {
                if hook["command"].as_str().is_some_and(is_ours) {
                    if found {
                        *hook = Value::Null; // a duplicate of ours from an old install
                    } else {
                        *hook = wanted.clone();
                        found = true;
                    }
                }
            }
            list.retain(|h| !h.is_null());
        }
        groups.retain(|g| g["hooks"].as_array().is_none_or(|l| !l.is_empty()));
        if !found {
            groups.push(json!({"hooks": [wanted]}));
        }
    }
    Ok(*settings != before)
}

/// Removes our hooks and nothing else (groups and lists left empty by that go too). Returns
/// whether the settings changed.
pub fn uninstall(settings: &mut Value) -> bool {
    let before = settings.clone();
    if let Some(hooks) = settings.get_mut("hooks").and_then(Value::as_object_mut) {
        for (event, _) in HOOKS {
            let Some(groups) = hooks.get_mut(event).and_then(Value::as_array_mut) else {
                continue;
            };
            for group in groups.iter_mut() {
                if let Some(list) = group.get_mut("hooks").and_then(Value::as_array_mut) {
                    list.retain(|h| !h["command"].as_str().is_some_and(is_ours));
                }
            }
            groups.retain(|g| g["hooks"].as_array().is_none_or(|l| !l.is_empty()));
            if groups.is_empty() {
                hooks.remove(event);
            }
        }
        if hooks.is_empty()
            && let Some(root) = settings.as_object_mut()
        {
            root.remove("hooks");
        }
    }
    *settings != before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(sub: &str) -> String {
        let extra = ["--server".to_owned(), "http://h:8080".to_owned()];
        command("/usr/local/bin/sessionflow", sub, &extra).unwrap()
    }

    fn foreign() -> Value {
        json!({
            "model": "opus",
            "permissions": {"allow": ["Bash(ls:*)"]},
            "hooks": {
                "SessionStart": [{"matcher": "startup", "hooks": [{"type": "command", "command": "echo hi"}]}],
                "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "lint.sh"}]}]
            }
        })
    }

    #[test]
    fn install_keeps_foreign_settings_and_is_idempotent() {
        let mut settings = foreign();
        assert_eq!(install(&mut settings, ours), Ok(true));
        let once = settings.clone();
        assert_eq!(
            install(&mut settings, ours),
            Ok(false),
            "a second install changes nothing"
        );
        assert_eq!(settings, once);
        assert_eq!(settings["model"], "opus");
        assert_eq!(settings["permissions"], foreign()["permissions"]);
        assert_eq!(
            settings["hooks"]["PreToolUse"],
            foreign()["hooks"]["PreToolUse"]
        );
        let start = settings["hooks"]["SessionStart"].as_array().unwrap();
        assert_eq!(
            start[0],
            foreign()["hooks"]["SessionStart"][0],
            "the foreign hook stays"
        );
        assert_eq!(start[1]["hooks"][0]["command"], ours("session-start"));
        assert_eq!(
            settings["hooks"]["SessionEnd"][0]["hooks"][0]["command"],
            ours("session-end")
        );
        // A new server updates ours in place.
        let moved = |sub: &str| {
            let extra = ["--server".to_owned(), "http://new:1".to_owned()];
            command("/usr/local/bin/sessionflow", sub, &extra).unwrap()
        };
        assert_eq!(install(&mut settings, moved), Ok(true));
        assert_eq!(
            settings["hooks"]["SessionStart"].as_array().unwrap().len(),
            2
        );
        assert_eq!(
            settings["hooks"]["SessionStart"][1]["hooks"][0]["command"],
            moved("session-start")
        );
    }

    #[test]
    fn uninstall_removes_only_ours() {
        let mut settings = foreign();
        install(&mut settings, ours).unwrap();
        assert!(uninstall(&mut settings));
        assert_eq!(settings, foreign());
        assert!(!uninstall(&mut settings), "nothing left to remove");
        let mut bare = json!({});
        install(&mut bare, ours).unwrap();
        uninstall(&mut bare);
        assert_eq!(bare, json!({}), "empty lists and objects go too");
    }

    #[test]
    fn install_refuses_settings_it_cannot_merge_into() {
        assert!(install(&mut json!([1]), ours).is_err());
        assert!(install(&mut json!({"hooks": []}), ours).is_err());
        assert!(install(&mut json!({"hooks": {"SessionEnd": {}}}), ours).is_err());
    }
}

#[cfg(test)]
mod cleanup_tests {
    use super::*;

    #[test]
    fn the_cleanup_period_is_read_or_defaults_to_thirty_days() {
        assert_eq!(cleanup_period_days(&json!({})), (30.0, false));
        assert_eq!(
            cleanup_period_days(&json!({"cleanupPeriodDays": 7})),
            (7.0, true)
        );
        assert_eq!(
            cleanup_period_days(&json!({"cleanupPeriodDays": "soon"})),
            (30.0, false)
        );
        assert!(cleanup_note(&json!({"cleanupPeriodDays": 7})).contains("7 days"));
        assert!(cleanup_note(&json!({})).contains("the default"));
    }
}
