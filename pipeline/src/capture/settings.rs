//! Our two hooks in Claude Code's `settings.json`: added next to every other setting and hook,
//! idempotently (a second install updates ours in place), and removed alone by uninstall.
//! Ours are recognised by their command: `… hook session-start` / `… hook session-end` run by a
//! `sessionflow` binary.

use serde_json::{Value, json};

/// Claude Code's hook events and the `sessionflow hook` subcommand for each.
pub const HOOKS: [(&str, &str); 2] = [
    ("SessionStart", "session-start"),
    ("SessionEnd", "session-end"),
];

/// Seconds Claude Code gives each of our hooks.
const HOOK_TIMEOUT_S: u64 = 15;

/// Whether `command` is one of ours.
fn is_ours(command: &str) -> bool {
    command.contains("sessionflow")
        && HOOKS
            .iter()
            .any(|(_, sub)| command.contains(&format!(" hook {sub}")))
}

/// The command for `sub`: `{binary} hook {sub}` and the extra arguments.
pub fn command(binary: &str, sub: &str, extra: &str) -> String {
    let binary = if binary.contains(' ') {
        format!("\"{binary}\"")
    } else {
        binary.to_owned()
    };
    format!("{binary} hook {sub}{extra}")
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
        command("/usr/local/bin/sessionflow", sub, " --server http://h:8080")
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
        let moved =
            |sub: &str| command("/usr/local/bin/sessionflow", sub, " --server http://new:1");
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
