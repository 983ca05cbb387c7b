//! Keeping every session, as a user does it with the real binary: a tree backfilled to a daemon
//! of the test's own, deleted locally (Claude Code's cleanup), restored byte for byte with its
//! subagent files — through the API and from the database — then deleted for good, refused on
//! re-upload unless forced; and retention deleting what is past its period.

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::url_for;
use daemon::{Daemon, KEY, drop_database, wait_healthy};
use serde_json::{Value, json};

fn sessionflow() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sessionflow"));
    command
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("SESSIONFLOW_SERVER")
        .env_remove("SESSIONFLOW_API_KEY")
        .env_remove("SESSIONFLOW_BLOB")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null());
    command
}

/// Every file under `root`, by its path below it, with its bytes.
fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(root).unwrap().to_path_buf(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn run(command: &mut Command) -> (Output, String) {
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// A generated tree of `sessions` sessions, aged an hour (nothing live).
fn generated_tree(projects: &Path, sessions: u64) {
    let (out, text) = run(sessionflow()
        .args([
            "gen-corpus",
            "--sessions",
            &sessions.to_string(),
            "--seed",
            "7",
            "--out",
        ])
        .arg(projects));
    assert!(out.status.success(), "{text}");
    for entry in walkdir::WalkDir::new(projects).into_iter().flatten() {
        if entry.file_type().is_file() {
            let file = std::fs::File::options()
                .write(true)
                .open(entry.path())
                .unwrap();
            file.set_modified(SystemTime::now() - Duration::from_secs(3600))
                .unwrap();
        }
    }
}

#[tokio::test]
async fn a_tree_deleted_locally_is_restored_byte_for_byte_and_deletion_is_for_good() {
    let database = format!("sessionflow_restore_{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs");
    let daemon = Daemon::start(&database, &blobs);
    let projects = dir.path().join("projects");
    generated_tree(&projects, 12);
    let original = files(&projects);
    assert!(
        original
            .keys()
            .any(|p| p.to_string_lossy().contains("/subagents/agent-")),
        "the tree has subagent files"
    );
    wait_healthy(&daemon.url).await;
    let (out, text) = run(sessionflow()
        .args([
            "backfill",
            "--server",
            &daemon.url,
            "--api-key",
            KEY,
            "--json",
        ])
        .arg(&projects));
    assert!(out.status.success(), "{text}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["processing"]["summarized"], 12, "{report}");

    // Claude Code's cleanup: every local transcript gone.
    std::fs::remove_dir_all(&projects).unwrap();
    let restore = |args: &[&str]| {
        run(sessionflow()
            .args(["restore", "--server", &daemon.url, "--api-key", KEY, "--to"])
            .arg(&projects)
            .args(args))
    };
    let (out, text) = restore(&["--all"]);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("12 restored, 0 already there, 0 not restored"),
        "{text}"
    );
    assert_eq!(
        files(&projects),
        original,
        "byte for byte, subagent files included"
    );

    // Again: nothing to do. A local file that differs is never overwritten.
    let (out, text) = restore(&["--all"]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("0 restored, 12 already there"), "{text}");
    let (changed, bytes) = original
        .iter()
        .find(|(p, _)| p.to_string_lossy().contains("/subagents/"))
        .unwrap();
    let session = changed
        .components()
        .nth(1)
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    std::fs::write(projects.join(changed), b"edited locally\n").unwrap();
    let (out, text) = restore(&[&session]);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("15 bytes here, {} stored", bytes.len())),
        "{text}"
    );
    assert_eq!(
        std::fs::read(projects.join(changed)).unwrap(),
        b"edited locally\n"
    );
    std::fs::write(projects.join(changed), bytes).unwrap();

    // A session whose files are gone is listed by backfill as kept on the server only.
    let gone = projects.join(changed.components().next().unwrap().as_os_str());
    std::fs::remove_file(gone.join(format!("{session}.jsonl"))).unwrap();
    std::fs::remove_dir_all(gone.join(&session)).unwrap();
    let (out, text) = run(sessionflow()
        .args([
            "backfill",
            "--server",
            &daemon.url,
            "--api-key",
            KEY,
            "--json",
        ])
        .arg(&projects));
    assert!(out.status.success(), "{text}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["kept_on_server_only"], json!([session]), "{report}");
    let (out, text) = restore(&[&session]);
    assert!(out.status.success(), "{text}");
    assert_eq!(files(&projects), original);

    // From the database and blob store, without a server.
    let elsewhere = dir.path().join("elsewhere");
    let (out, text) = run(sessionflow()
        .args(["restore", &session, "--to"])
        .arg(&elsewhere)
        .env("DATABASE_URL", url_for(&database))
        .env("SESSIONFLOW_BLOB", &blobs));
    assert!(out.status.success(), "{text}");
    let restored = files(&elsewhere);
    assert!(!restored.is_empty());
    for (path, bytes) in &restored {
        assert_eq!(original.get(path), Some(bytes), "{}", path.display());
    }

    // Deleted for good through the API: not restorable, left out by backfill unless forced.
    let (out, text) = run(sessionflow().args([
        "delete",
        &session,
        "--server",
        &daemon.url,
        "--api-key",
        KEY,
        "--json",
    ]));
    assert!(out.status.success(), "{text}");
    let deleted: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(deleted["session_id"], session.as_str(), "{deleted}");
    assert!(
        walkdir::WalkDir::new(&blobs)
            .into_iter()
            .flatten()
            .all(|e| !e.path().to_string_lossy().contains(&session)),
        "no blob of {session} is left"
    );
    let (out, text) = restore(&[&session]);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("deleted"), "{text}");
    let (out, text) = run(sessionflow().args([
        "delete",
        &session,
        "--server",
        &daemon.url,
        "--api-key",
        KEY,
    ]));
    assert!(!out.status.success(), "{text}");

    let backfill = |extra: &[&str]| {
        let (out, text) = run(sessionflow()
            .args([
                "backfill",
                "--server",
                &daemon.url,
                "--api-key",
                KEY,
                "--json",
            ])
            .args(extra)
            .arg(&projects));
        assert!(out.status.success(), "{text}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let report = backfill(&[]);
    assert_eq!(
        (
            report["deleted_on_server"].clone(),
            report["uploaded"].clone()
        ),
        (json!(1), json!(0)),
        "{report}"
    );
    // (Restored files are new: without --include-live, backfill takes them for live sessions.)
    let report = backfill(&["--force-deleted", "--include-live"]);
    assert_eq!(
        (
            report["deleted_on_server"].clone(),
            report["uploaded"].clone()
        ),
        (json!(0), json!(1)),
        "{report}"
    );
    let processed = |state: &str| report["processing"][state].as_u64().unwrap();
    assert_eq!(
        (
            processed("summarized") + processed("parsed"),
            processed("failed")
        ),
        (12, 0),
        "{report}"
    );
    let (out, text) = restore(&["--all"]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("0 restored, 12 already there"), "{text}");

    drop(daemon);
    drop_database(&database).await;
}

#[tokio::test]
async fn retention_deletes_sessions_past_its_period_while_the_daemon_runs() {
    let database = format!("sessionflow_retention_{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs");
    // A period of about 4 s: checked at start and every period.
    let daemon = Daemon::start_with(
        &database,
        &blobs,
        &[("SESSIONFLOW_RETENTION_DAYS", "0.00005")],
    );
    wait_healthy(&daemon.url).await;
    let http = reqwest::Client::new();
    let event = |kind: &str, session: &str, at: chrono::DateTime<chrono::Utc>, data: Value| {
        json!({"id": ulid::Ulid::generate().to_string(), "type": kind, "timestamp": at,
               "device_id": "laptop", "workspace_id": "w1", "session_id": session, "data": data})
    };
    let now = chrono::Utc::now();
    let events: Vec<Value> = [
        ("old", now - chrono::Duration::days(3)),
        ("new", now + chrono::Duration::hours(1)),
    ]
    .into_iter()
    .flat_map(|(session, at)| {
        [
            event(
                "session.start",
                session,
                at,
                json!({"cc_session_id": session, "source": "startup"}),
            ),
            event(
                "session.end",
                session,
                at,
                json!({"cc_session_id": session, "end_reason": "exit"}),
            ),
        ]
    })
    .collect();
    let answer = http
        .post(format!("{}/api/events/ingest", daemon.url))
        .bearer_auth(KEY)
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let gone = |session: &'static str| {
        let http = http.clone();
        let url = daemon.url.clone();
        async move {
            http.get(format!("{url}/api/sessions/{session}"))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap()
                .status()
                == 410
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !gone("old").await {
        assert!(
            Instant::now() < deadline,
            "retention never deleted the old session"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!gone("new").await, "a session within the period stays");
    let metrics = http
        .get(format!("{}/metrics", daemon.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sessionflow_sessions_deleted_total{reason=\"retention\"} 1"),
        "{metrics}"
    );
    drop(daemon);
    drop_database(&database).await;
}
