//! Capture from a developer's machine as it runs: `sessionflow backfill` against a daemon of
//! the test's own (and against a server that never finishes, and a stub that answers 429 and
//! 503), the Claude Code hooks with the server down and then up, `hooks install`, and the demo.

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::url_for;
use daemon::{Daemon, KEY, drop_database, free_port, wait_healthy};
use serde_json::{Value, json};

fn sessionflow() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sessionflow"));
    command
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("SESSIONFLOW_SERVER")
        .env_remove("SESSIONFLOW_API_KEY")
        .stdin(Stdio::null());
    command
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/transcripts")
        .join(name)
}

/// Sets a file's modification time `ago` in the past.
fn age(path: &Path, ago: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - ago).unwrap();
}

/// A generated tree aged an hour (nothing live), with `sessions` sessions.
fn generated_tree(dir: &Path, sessions: u64) -> PathBuf {
    let projects = dir.join("projects");
    let out = sessionflow()
        .args([
            "gen-corpus",
            "--sessions",
            &sessions.to_string(),
            "--seed",
            "7",
            "--out",
        ])
        .arg(&projects)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for entry in walkdir::WalkDir::new(&projects) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            age(entry.path(), Duration::from_secs(3600));
        }
    }
    projects
}

fn backfill(server: &str, args: &[&str]) -> (Output, Value) {
    backfill_with(KEY, server, args)
}

fn backfill_with(key: &str, server: &str, args: &[&str]) -> (Output, Value) {
    let out = sessionflow()
        .args(["backfill", "--server", server, "--api-key", key, "--json"])
        .args(args)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, report)
}

async fn query<
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
>(
    database: &str,
    sql: &'static str,
) -> T {
    let pool = sqlx::PgPool::connect(&url_for(database)).await.unwrap();
    let value = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    value
}

#[tokio::test]
async fn backfill_sends_a_tree_once_follows_it_and_leaves_live_sessions_open() {
    let database = format!("sessionflow_backfill_{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&database, &dir.path().join("blobs"));
    let projects = generated_tree(dir.path(), 12);
    let project = projects.read_dir().unwrap().next().unwrap().unwrap().path();
    // A live session (written a moment ago) and a file that cannot be read.
    let live = project.join("live-session.jsonl");
    std::fs::copy(fixture("cc2.1.14-headless-hello-world-script.jsonl"), &live).unwrap();
    std::os::unix::fs::symlink("/nonexistent/transcript", project.join("broken.jsonl")).unwrap();
    let with_subagents = walkdir::WalkDir::new(&projects)
        .into_iter()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("agent-"))
        .expect("the generated tree has subagent files");
    wait_healthy(&daemon.url).await;

    let (out, report) = backfill(&daemon.url, &[projects.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{report}");
    assert_eq!(failures[0]["session_id"], "broken");
    assert!(
        failures[0]["error"]
            .as_str()
            .unwrap()
            .contains("cannot read"),
        "{report}"
    );
    assert_eq!(
        (
            report["discovered"].clone(),
            report["uploaded"].clone(),
            report["skipped"].clone(),
            report["upload_failures"].clone(),
            report["processing"].clone()
        ),
        (
            json!(14),
            json!(13),
            json!(0),
            json!(1),
            json!({"summarized": 12, "parsed": 0, "failed": 0, "pending": 0, "timed_out": false})
        ),
        "{report}"
    );
    // The counts are what the server holds.
    let summarized: i64 = query(
        &database,
        "SELECT count(*) FROM sessions WHERE lifecycle = 'summarized'",
    )
    .await;
    assert_eq!(summarized, 12);
    let live_state: String = query(
        &database,
        "SELECT lifecycle FROM sessions WHERE id = 'live-session'",
    )
    .await;
    assert_eq!(live_state, "detected", "a live session gets no end");
    // A session's subagent files travel with it.
    let parent = with_subagents.path().parent().unwrap().parent().unwrap();
    let parent_id = parent.file_name().unwrap().to_str().unwrap().to_owned();
    let mut expected = std::fs::metadata(parent.with_extension("jsonl"))
        .unwrap()
        .len();
    for agent in std::fs::read_dir(with_subagents.path().parent().unwrap()).unwrap() {
        expected += std::fs::metadata(agent.unwrap().path()).unwrap().len();
    }
    let pool = sqlx::PgPool::connect(&url_for(&database)).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT transcript_size FROM sessions WHERE id = $1")
        .bind(&parent_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        stored as u64, expected,
        "main transcript and subagent files, whole"
    );
    let events_before: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();

    // A re-run sends nothing again.
    let (out, report) = backfill(&daemon.url, &[projects.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        (report["uploaded"].clone(), report["skipped"].clone()),
        (json!(0), json!(13)),
        "{report}"
    );
    let events_after: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(events_after, events_before, "nothing sent twice");

    // --include-live ends the live one.
    let (_, report) = backfill(&daemon.url, &["--include-live", projects.to_str().unwrap()]);
    assert_eq!(report["uploaded"], 1, "{report}");
    assert_eq!(report["processing"]["summarized"], 13, "{report}");
    pool.close().await;
    drop(daemon);
    drop_database(&database).await;
}

/// Sessions go in groups whose events share a request; a key that covers one project of a
/// machine that holds several backfills that project, and every other session fails alone with
/// the server's reason (the group's request refused, its events sent again one by one), over
/// more than one group. Nothing of the other projects is stored.
#[tokio::test]
async fn a_key_for_one_project_backfills_it_and_the_others_fail_each_with_its_reason() {
    let database = format!("sessionflow_backfill_scoped_{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&database, &dir.path().join("blobs"));
    let sessions = 55;
    let projects = generated_tree(dir.path(), sessions);
    let per_project: Vec<(String, usize)> = projects
        .read_dir()
        .unwrap()
        .map(|project| {
            let project = project.unwrap();
            let files = project
                .path()
                .read_dir()
                .unwrap()
                .filter(|f| f.as_ref().unwrap().path().extension() == Some("jsonl".as_ref()))
                .count();
            (project.file_name().to_string_lossy().into_owned(), files)
        })
        .collect();
    assert!(per_project.len() > 1, "{per_project:?}");
    // The project with the most sessions.
    let (covered, own) = per_project.iter().max_by_key(|p| p.1).unwrap().clone();
    wait_healthy(&daemon.url).await;
    let out = sessionflow()
        .args([
            "keys",
            "create",
            "--role",
            "ingest",
            "--workspace",
            &covered,
            "--json",
        ])
        .env("DATABASE_URL", url_for(&database))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();

    let (out, report) = backfill_with(
        key["key"].as_str().unwrap(),
        &daemon.url,
        &[projects.to_str().unwrap()],
    );
    assert!(out.status.success(), "{out:?}");
    let others = sessions as usize - own;
    assert_eq!(
        (
            report["uploaded"].clone(),
            report["upload_failures"].clone(),
            report["processing"]["summarized"].clone()
        ),
        (json!(own), json!(others), json!(own)),
        "{report}"
    );
    for failure in report["failures"].as_array().unwrap() {
        assert!(
            failure["error"]
                .as_str()
                .unwrap()
                .contains("does not cover workspace"),
            "{failure}"
        );
    }
    let pool = sqlx::PgPool::connect(&url_for(&database)).await.unwrap();
    let stored: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT 'sessions', workspace_id, count(*) FROM sessions GROUP BY workspace_id \
         UNION ALL SELECT type, workspace_id, count(*) FROM events GROUP BY type, workspace_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let stored: std::collections::BTreeSet<_> = stored.into_iter().collect();
    assert_eq!(
        stored,
        [
            "sessions",
            "session.start",
            "transcript.uploaded",
            "session.end"
        ]
        .map(|kind| (kind.to_owned(), covered.clone(), own as i64))
        .into(),
        "each covered session with its start, upload and end, nothing of the others"
    );
    pool.close().await;
    drop(daemon);
    drop_database(&database).await;
}

/// A `serve` on a stream no worker reads: sessions are accepted and never processed.
fn serve_without_workers(database: &str, blobs: &Path) -> (std::process::Child, String) {
    let port = free_port();
    let child = sessionflow()
        .arg("serve")
        .env("DATABASE_URL", url_for(database))
        .env(
            "REDIS_URL",
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        )
        .env(
            "SESSIONFLOW_STREAM",
            format!("sessionflow:test-nobody-{port}"),
        )
        .env("SESSIONFLOW_BLOB", blobs)
        .env("SESSIONFLOW_API_KEY", KEY)
        .env("SESSIONFLOW_LISTEN", format!("127.0.0.1:{port}"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{port}"))
}

#[tokio::test]
async fn the_wait_times_out_or_is_interrupted_and_says_the_server_goes_on() {
    let database = format!("sessionflow_bfwait_{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = serve_without_workers(&database, &dir.path().join("blobs"));
    let projects = generated_tree(dir.path(), 3);
    wait_healthy(&url).await;

    let (out, report) = backfill(&url, &["--wait-timeout", "2s", projects.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        report["processing"],
        json!({"summarized": 0, "parsed": 0, "failed": 0, "pending": 3, "timed_out": true}),
        "{report}"
    );

    let waiting = sessionflow()
        .args(["backfill", "--server", &url, "--api-key", KEY])
        .arg(&projects)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    Command::new("kill")
        .args(["-INT", &waiting.id().to_string()])
        .status()
        .unwrap();
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Interrupted: stopped waiting; the server keeps processing the 3 sessions still pending."),
        "{text}"
    );
    let _ = server.kill();
    let _ = server.wait();
    drop_database(&database).await;
}

/// How often each (path, body) was asked.
type Tries = HashMap<(String, Vec<u8>), usize>;

/// A stand-in API that answers every distinct request 429, then 503, then success.
async fn stormy_server(hits: Arc<AtomicUsize>) -> String {
    use axum::http::{StatusCode, Uri};
    let seen: Arc<Mutex<Tries>> = Arc::default();
    let answer = move |uri: Uri, body: axum::body::Bytes| {
        let seen = Arc::clone(&seen);
        let hits = Arc::clone(&hits);
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            let path = uri.path().to_owned();
            let tries = {
                let mut seen = seen.lock().unwrap();
                let n = seen.entry((path.clone(), body.to_vec())).or_default();
                *n += 1;
                *n
            };
            let (status, retry_after, answer) = match tries {
                1 => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "1",
                    json!({"error": "slow down"}),
                ),
                2 => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "0",
                    json!({"error": "busy"}),
                ),
                _ if path.ends_with("batch-status") => (
                    StatusCode::OK,
                    "0",
                    json!({"statuses": {}, "not_found": []}),
                ),
                _ if path.ends_with("upload") => {
                    (StatusCode::CREATED, "0", json!({"already_uploaded": false}))
                }
                _ if path == "/api/sessions" => (
                    StatusCode::OK,
                    "0",
                    json!({"sessions": [], "next_cursor": null}),
                ),
                _ => (
                    StatusCode::ACCEPTED,
                    "0",
                    json!({"accepted": 1, "duplicates": 0}),
                ),
            };
            (status, [("retry-after", retry_after)], axum::Json(answer))
        }
    };
    let app = axum::Router::new().fallback(answer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_is_waited_out_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let projects = generated_tree(dir.path(), 4);
    let hits = Arc::new(AtomicUsize::new(0));
    let url = stormy_server(Arc::clone(&hits)).await;
    let started = std::time::Instant::now();
    let projects_arg = projects.to_str().unwrap().to_owned();
    let (out, report) =
        tokio::task::spawn_blocking(move || backfill(&url, &["--no-wait", &projects_arg]))
            .await
            .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        (
            report["uploaded"].clone(),
            report["upload_failures"].clone()
        ),
        (json!(4), json!(0)),
        "{report}"
    );
    // 1 status, the 4 sessions' starts in one request, 4 uploads, their ends in one request and
    // the list of what the server keeps answered, two refusals before each success.
    assert_eq!(hits.load(Ordering::SeqCst), 8 * 3);
    assert_eq!(report["kept_on_server_only"], json!([]), "{report}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the retry-after pause was kept"
    );
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.contains("answered HTTP 429 Too Many Requests: slow down; retrying"),
        "{logs}"
    );
}

/// Runs `sessionflow hook SUB` with `input` on stdin, as Claude Code configured with
/// `CLAUDE_CONFIG_DIR` = the spool's folder (its `projects/` holds the transcripts).
fn hook(sub: &str, server: &str, spool: &Path, input: &Value) -> Output {
    use std::io::Write;
    let mut child = sessionflow()
        .args(["hook", sub, "--server", server, "--api-key", KEY, "--spool"])
        .arg(spool)
        .env("CLAUDE_CONFIG_DIR", spool.parent().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn spooled(spool: &Path) -> usize {
    std::fs::read_dir(spool)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn hooks_spool_while_the_server_is_down_and_deliver_exactly_once_later() {
    let database = format!("sessionflow_hooks_{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("projects/-home-dev-app");
    std::fs::create_dir_all(&project).unwrap();
    let transcript = project.join("hook-1.jsonl");
    std::fs::copy(
        fixture("cc2.1.14-headless-coverage-test-fix.jsonl"),
        &transcript,
    )
    .unwrap();
    let spool = dir.path().join("spool");
    // Claude Code's own payloads.
    let start = json!({"session_id": "hook-1", "transcript_path": transcript, "cwd": "/home/dev/app",
                       "hook_event_name": "SessionStart", "source": "startup"});
    let end = json!({"session_id": "hook-1", "transcript_path": transcript, "cwd": "/home/dev/app",
                     "hook_event_name": "SessionEnd", "reason": "prompt_input_exit"});

    let down = format!("http://127.0.0.1:{}", free_port());
    for (sub, input) in [("session-start", &start), ("session-end", &end)] {
        let out = hook(sub, &down, &spool, input);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("spooled for later"));
    }
    assert_eq!(
        spooled(&spool),
        3,
        "start, upload and end wait in the spool"
    );
    let bad = hook("session-start", &down, &spool, &json!("not a hook payload"));
    assert_eq!(
        bad.status.code(),
        Some(0),
        "even nonsense never fails Claude Code"
    );

    let daemon = Daemon::start(&database, &dir.path().join("blobs"));
    wait_healthy(&daemon.url).await;
    let other = json!({"session_id": "hook-2", "transcript_path": project.join("hook-2.jsonl"),
                       "cwd": "/home/dev/app", "hook_event_name": "SessionStart", "source": "resume"});
    for _ in 0..2 {
        let out = hook("session-start", &daemon.url, &spool, &other);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
    }
    assert_eq!(
        spooled(&spool),
        0,
        "the next hook call sent what was spooled"
    );
    let pool = sqlx::PgPool::connect(&url_for(&database)).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let state: Option<String> =
            sqlx::query_scalar("SELECT lifecycle FROM sessions WHERE id = 'hook-1'")
                .fetch_optional(&pool)
                .await
                .unwrap();
        if state.as_deref() == Some("summarized") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "hook-1 is {state:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events: Vec<(String, i64)> = sqlx::query_as(
        "SELECT type, count(*) FROM events WHERE session_id = 'hook-1' \
         AND type IN ('session.start', 'session.end', 'transcript.uploaded') \
         GROUP BY type ORDER BY type",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        events,
        [
            ("session.end".to_owned(), 1),
            ("session.start".to_owned(), 1),
            ("transcript.uploaded".to_owned(), 1)
        ],
        "each delivered exactly once"
    );
    let (workspace, reason): (String, String) =
        sqlx::query_as("SELECT workspace_id, end_reason FROM sessions WHERE id = 'hook-1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (workspace.as_str(), reason.as_str()),
        ("-home-dev-app", "exit")
    );
    pool.close().await;
    drop(daemon);
    drop_database(&database).await;
}

#[test]
fn hooks_install_merges_into_settings_and_uninstall_takes_only_ours() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.json");
    let foreign = json!({"model": "opus", "hooks": {"SessionStart": [
        {"matcher": "startup", "hooks": [{"type": "command", "command": "echo hello"}]}]}});
    std::fs::write(&settings, foreign.to_string()).unwrap();
    // Settings often hold secrets: a private file stays private.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&settings, std::fs::Permissions::from_mode(0o640)).unwrap();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let backups = || {
        let mut found: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("settings.json.sessionflow-backup-")
            })
            .collect();
        found.sort();
        found
    };
    let run = |args: &[&str]| {
        let out = sessionflow()
            .arg("hooks")
            .args(args)
            .arg("--settings")
            .arg(&settings)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = run(&["install", "--server", "http://sessions.internal:8080"]);
    assert!(
        said.contains("deletes local transcripts 30 days after their last change")
            && said.contains("cleanupPeriodDays is not set")
            && said.contains("sessionflow restore"),
        "install says how long Claude Code keeps transcripts: {said}"
    );
    let installed: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    assert_eq!(mode(&settings), 0o640, "the mode is kept");
    let first = backups();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(mode(&first[0]), 0o640, "the backup is as private");
    let backup: Value = serde_json::from_slice(&std::fs::read(&first[0]).unwrap()).unwrap();
    assert_eq!(backup, foreign, "the original is backed up");
    assert_eq!(installed["model"], "opus");
    assert_eq!(
        installed["hooks"]["SessionStart"][0],
        foreign["hooks"]["SessionStart"][0]
    );
    let ours = installed["hooks"]["SessionEnd"][0]["hooks"][0]["command"]
        .as_str()
        .unwrap();
    assert!(
        ours.ends_with("sessionflow hook session-end --server http://sessions.internal:8080"),
        "{ours}"
    );
    assert!(run(&["install", "--server", "http://sessions.internal:8080"]).contains("already has"));
    assert_eq!(
        serde_json::from_slice::<Value>(&std::fs::read(&settings).unwrap()).unwrap(),
        installed,
        "installing twice changes nothing"
    );
    run(&["uninstall"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&std::fs::read(&settings).unwrap()).unwrap(),
        foreign
    );

    // A server URL the shell would split or run is one quoted argument.
    let url = "http://h:1/x?a=1&b=$(touch pwned); echo hi";
    run(&["install", "--server", url]);
    let installed: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    let ours = installed["hooks"]["SessionStart"][1]["hooks"][0]["command"]
        .as_str()
        .unwrap()
        .to_owned();
    let words = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf '%s\\n' {}",
            ours.split_once(' ').unwrap().1
        ))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&words.stdout),
        format!("hook\nsession-start\n--server\n{url}\n"),
        "{ours}"
    );
    assert!(!dir.path().join("pwned").exists());

    // Each change keeps a backup; the newest five stay.
    for _ in 0..3 {
        run(&["uninstall"]);
        run(&["install"]);
    }
    assert_eq!(backups().len(), 5, "{:?}", backups());
    assert_eq!(mode(&settings), 0o640);

    // A settings file that does not exist yet is made private.
    let fresh = dir.path().join("fresh/settings.json");
    let out = sessionflow()
        .args(["hooks", "install", "--settings"])
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&fresh), 0o600);
}

#[tokio::test]
async fn the_demo_runs_without_a_terminal_and_summarizes_every_session() {
    let database = format!("sessionflow_demo_{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let out = sessionflow()
        .args([
            "demo",
            "--sessions",
            "15",
            "--seed",
            "11",
            "--json",
            "--log-file",
        ])
        .arg(dir.path().join("demo.log"))
        .env("DATABASE_URL", url_for(&database))
        .env("SESSIONFLOW_BLOB", dir.path().join("blobs"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["processing"],
        json!({"summarized": 15, "parsed": 0, "failed": 0, "pending": 0, "timed_out": false}),
        "{report}"
    );
    let summarized: i64 = query(
        &database,
        "SELECT count(*) FROM sessions WHERE lifecycle = 'summarized'",
    )
    .await;
    assert_eq!(summarized, 15);
    drop_database(&database).await;
}
