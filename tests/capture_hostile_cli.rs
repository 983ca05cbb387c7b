//! Capture reads only transcripts: the real `sessionflow hook` and `backfill` given paths that
//! are not a Claude Code session inside a projects folder — a symlink to a file of secrets, a
//! file outside every projects folder, a FIFO, a folder, another session's file, a session over
//! the size cap — refuse each with its reason, and nothing of it reaches the server (no
//! transcript stored, no blob holds the secret).

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use daemon::{Daemon, KEY, drop_database, wait_healthy};
use serde_json::{Value, json};

const SECRET: &str = "AKIAIOSFODNN7EXAMPLE-do-not-send";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/transcripts")
        .join(name)
}

/// `sessionflow ARGS` as Claude Code would run it with `CLAUDE_CONFIG_DIR=config`.
fn sessionflow(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sessionflow"));
    command
        .args(args)
        .env("CLAUDE_CONFIG_DIR", config)
        .env("HOME", config)
        .env_remove("SESSIONFLOW_SERVER")
        .env_remove("SESSIONFLOW_MAX_UPLOAD")
        .env("SESSIONFLOW_API_KEY", KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// `sessionflow hook session-end` for `session` whose transcript is said to be at `path`.
fn end_hook(config: &Path, server: &str, session: &str, path: &Path, extra: &[&str]) -> Output {
    use std::io::Write;
    let spool = config.join("spool");
    let mut args = vec!["hook", "session-end", "--server", server, "--spool"];
    args.push(spool.to_str().unwrap());
    args.extend_from_slice(extra);
    let mut child = sessionflow(config, &args).spawn().unwrap();
    let input = json!({"session_id": session, "transcript_path": path, "cwd": "/home/dev/app",
                       "hook_event_name": "SessionEnd", "reason": "prompt_input_exit"});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// What the server holds of `session`: its batch-status entry, if it knows it.
async fn status(url: &str, session: &str) -> Option<Value> {
    let answer: Value = reqwest::Client::new()
        .post(format!("{url}/api/sessions/batch-status"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(json!({ "session_ids": [session] }).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["statuses"].get(session).cloned()
}

/// Every blob file's bytes, to look for the secret in.
fn blob_bytes(blobs: &Path) -> Vec<u8> {
    walkdir::WalkDir::new(blobs)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .flat_map(|e| std::fs::read(e.path()).unwrap())
        .collect()
}

#[tokio::test]
async fn capture_refuses_what_is_not_a_transcript_and_sends_nothing_of_it() {
    let database = format!("sessionflow_capture_hostile_{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("claude");
    let project = config.join("projects/-home-dev-app");
    std::fs::create_dir_all(&project).unwrap();
    let outside = dir.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    let secrets = outside.join("secrets.jsonl");
    std::fs::write(
        &secrets,
        format!("{{\"type\":\"user\",\"key\":\"{SECRET}\"}}\n"),
    )
    .unwrap();
    let blobs = dir.path().join("blobs");
    let daemon = Daemon::start(&database, &blobs);
    wait_healthy(&daemon.url).await;
    let url = daemon.url.clone();

    // A session file in the project that is a symlink to the secrets.
    let linked = project.join("linked-1.jsonl");
    std::os::unix::fs::symlink(&secrets, &linked).unwrap();
    // A file outside every projects folder.
    let stray = outside.join("stray-1.jsonl");
    std::fs::copy(&secrets, &stray).unwrap();
    // A FIFO (reading it would hang) and a folder, both named like transcripts.
    let fifo = project.join("fifo-1.jsonl");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let folder = project.join("folder-1.jsonl");
    std::fs::create_dir_all(&folder).unwrap();
    // Another session's transcript, claimed for this one.
    let other = project.join("other-1.jsonl");
    std::fs::copy(
        fixture("cc2.1.14-headless-hello-world-script.jsonl"),
        &other,
    )
    .unwrap();
    // A real session over a 1 KiB cap.
    let big = project.join("big-1.jsonl");
    std::fs::copy(fixture("cc2.1.14-headless-coverage-test-fix.jsonl"), &big).unwrap();

    let cases: [(&str, &Path, &[&str], &str); 6] = [
        (
            "linked-1",
            &linked,
            &[],
            "is not inside a Claude projects folder",
        ),
        (
            "stray-1",
            &stray,
            &[],
            "is not inside a Claude projects folder",
        ),
        ("fifo-1", &fifo, &[], "is not a regular file"),
        ("folder-1", &folder, &[], "is not a regular file"),
        (
            "victim-1",
            &other,
            &[],
            "is the transcript of session other-1, not of victim-1",
        ),
        (
            "big-1",
            &big,
            &["--max-upload", "1K"],
            "over the 1024-byte cap",
        ),
    ];
    for (session, path, extra, reason) in cases {
        let out = end_hook(&config, &url, session, path, extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{session}: {stderr}");
        assert!(
            stderr.contains("not uploading") && stderr.contains(reason),
            "{session}: wanted {reason:?} in {stderr}"
        );
        // The end is still recorded; no transcript is.
        let held = status(&url, session).await.expect("the session is known");
        assert_eq!(held["transcript_size"], Value::Null, "{session}: {held}");
    }
    assert!(
        !String::from_utf8_lossy(&blob_bytes(&blobs)).contains(SECRET),
        "the secret reached the blob store"
    );
    // A path that would drive the terminal is shown, not obeyed.
    let out = end_hook(
        &config,
        &url,
        "evil-1",
        &project.join("evil-1\u{1b}[2J\u{7}.jsonl"),
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("evil-1\\u{1b}[2J\\u{7}.jsonl") && !stderr.contains('\u{1b}'),
        "{stderr:?}"
    );

    // Backfill of the whole tree: the link, the FIFO and the big one fail with their reasons;
    // the real session is sent.
    let out = sessionflow(
        &config,
        &[
            "backfill",
            "--server",
            &url,
            "--no-wait",
            "--json",
            "--max-upload",
            "20K",
        ],
    )
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let failures: Vec<(String, String)> = report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let text = |k: &str| f[k].as_str().unwrap().to_owned();
            (text("session_id"), text("error"))
        })
        .collect();
    // The FIFO and the folder are not regular files: never opened, not listed.
    assert_eq!(failures.len(), 2, "{report}");
    for ((session, error), reason) in failures.iter().zip([
        "over the 20480-byte cap",
        "is not inside a Claude projects folder",
    ]) {
        assert!(error.contains(reason), "{session}: {error}");
    }
    let sent = status(&url, "other-1").await.expect("other-1 was sent");
    assert_eq!(
        sent["transcript_size"],
        std::fs::metadata(&other).unwrap().len(),
        "{sent}"
    );
    assert!(
        !String::from_utf8_lossy(&blob_bytes(&blobs)).contains(SECRET),
        "the secret reached the blob store"
    );
    // What the server keeps is its owner's alone.
    use std::os::unix::fs::PermissionsExt;
    for entry in walkdir::WalkDir::new(&blobs).into_iter().flatten() {
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        let wanted = if entry.file_type().is_dir() {
            0o700
        } else {
            0o600
        };
        assert_eq!(mode, wanted, "{}", entry.path().display());
    }
    drop(daemon);
    drop_database(&database).await;
}
