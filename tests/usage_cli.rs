//! `sessionflow usage` against the reference: the same tree backfilled into a daemon, the usage
//! processor run, and the report compared with `ccusage session --json --offline` (20.0.24,
//! installed by scripts/services.sh as $CCUSAGE): totals equal exactly, and every session whose
//! responses no other session shares equals ccusage's row. Runs on the fixtures laid out as a
//! config dir and on a generated history where a third of the sessions are resumed copies.

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::url_for;
use daemon::{Daemon, KEY, drop_database, wait_healthy};
use serde_json::Value;

type Tokens = [i64; 4];

/// `ccusage REPORT --json --offline` over `config`, days in UTC.
fn run_ccusage(config: &Path, report: &str) -> Value {
    let binary = std::env::var("CCUSAGE")
        .expect("CCUSAGE is not set: scripts/services.sh installs ccusage 20.0.24 and sets it");
    let out = Command::new(&binary)
        .args([report, "--json", "--offline", "--timezone", "UTC"])
        .env("CLAUDE_CONFIG_DIR", config)
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"));
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ccusage_tokens(v: &Value) -> Tokens {
    [
        "inputTokens",
        "outputTokens",
        "cacheCreationTokens",
        "cacheReadTokens",
    ]
    .map(|k| v[k].as_i64().unwrap())
}

fn ccusage(config: &Path) -> (Tokens, BTreeMap<String, Tokens>) {
    let report = run_ccusage(config, "session");
    let tokens = ccusage_tokens;
    let rows = report["session"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["period"].as_str().unwrap().to_owned(), tokens(s)))
        .collect();
    (tokens(&report["totals"]), rows)
}

fn ours(database: &str, by: &str) -> (Tokens, BTreeMap<String, Tokens>) {
    let out = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
        .args(["usage", by, "--json", "--timezone", "UTC"])
        .env("DATABASE_URL", url_for(database))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tokens = |v: &Value| -> Tokens {
        [
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ]
        .map(|k| v[k].as_i64().unwrap())
    };
    let key = match by {
        "daily" => "date",
        "monthly" => "month",
        _ => "session_id",
    };
    let rows = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[key].as_str().unwrap().to_owned(), tokens(r)))
        .collect();
    (tokens(&report["totals"]), rows)
}

/// Backfills `config/projects` into a daemon of its own, runs the usage processor, and checks
/// our reports against ccusage's.
async fn compare(name: &str, config: &Path) {
    let database = format!("sessionflow_usage_{name}_{}", std::process::id());
    let blobs = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&database, blobs.path());
    wait_healthy(&daemon.url).await;
    let out = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
        .args([
            "backfill",
            "--json",
            "--include-live",
            "--server",
            &daemon.url,
            "--api-key",
            KEY,
        ])
        .arg(config.join("projects"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let backfill: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(backfill["processing"]["pending"], 0, "{backfill}");
    let run = reqwest::Client::new()
        .post(format!(
            "{}/api/admin/run-session-processor?processor=usage",
            daemon.url
        ))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), 200);

    let (reference_total, reference_rows) = ccusage(config);
    let (total, rows) = ours(&database, "session");
    assert_eq!(
        total, reference_total,
        "{name}: totals equal ccusage's exactly"
    );
    for by in ["daily", "monthly"] {
        assert_eq!(
            ours(&database, by).0,
            total,
            "{name}: {by} totals equal the session totals"
        );
    }
    // Sessions that share no response with another (and have no subagent files, which ccusage
    // reports apart) must equal ccusage's rows.
    let pool = sqlx::PgPool::connect(&url_for(&database)).await.unwrap();
    let shared: BTreeSet<String> = sqlx::query_scalar(
        "SELECT DISTINCT u.session_id FROM usage_responses u \
         WHERE EXISTS (SELECT 1 FROM usage_responses o \
                       WHERE o.response_key = u.response_key AND o.session_id <> u.session_id)",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    pool.close().await;
    let with_subagents: BTreeSet<String> = walkdir::WalkDir::new(config.join("projects"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_name() == "subagents")
        .filter_map(|e| {
            let session = e.path().parent()?.file_name()?.to_str()?.to_owned();
            Some(session)
        })
        .collect();
    let mut compared = 0;
    for (session, tokens) in &reference_rows {
        if shared.contains(session) || with_subagents.contains(session) {
            continue;
        }
        assert_eq!(rows.get(session), Some(tokens), "{name}: session {session}");
        compared += 1;
    }
    assert!(compared > 0, "{name}: no session to compare");
    drop(daemon);
    drop_database(&database).await;
}

#[tokio::test]
async fn the_fixtures_equal_ccusage() {
    let config = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/transcripts");
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        let project = config.path().join("projects").join(format!(
            "-fixtures-{}",
            path.file_stem().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(&project).unwrap();
        std::fs::copy(&path, project.join(path.file_name().unwrap())).unwrap();
    }
    compare("fixtures", config.path()).await;
}

#[tokio::test]
async fn a_history_with_resumed_copies_equals_ccusage_and_counts_each_response_once() {
    let config = tempfile::tempdir().unwrap();
    let projects = config.path().join("projects");
    let out = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
        .args(["gen-corpus", "--sessions", "24", "--seed", "9", "--out"])
        .arg(&projects)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // A third more sessions: each a resumed copy of one above (its first half, ids kept, the
    // session id changed), in the same project.
    let originals: Vec<_> = walkdir::WalkDir::new(&projects)
        .min_depth(2)
        .max_depth(2)
        .into_iter()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .map(|e| e.into_path())
        .collect();
    for (i, original) in originals.iter().take(originals.len() / 2).enumerate() {
        // (The generator writes a few invalid UTF-8 bytes on purpose; both tools read the copy.)
        let text = String::from_utf8_lossy(&std::fs::read(original).unwrap()).into_owned();
        let id = original.file_stem().unwrap().to_string_lossy().into_owned();
        let copy_id = format!("00000000-0000-4000-8000-{i:012}");
        let half: String = text
            .lines()
            .take(text.lines().count() / 2)
            .map(|l| format!("{}\n", l.replace(&id, &copy_id)))
            .collect();
        std::fs::write(original.with_file_name(format!("{copy_id}.jsonl")), half).unwrap();
    }
    // Nothing live: every file an hour old.
    for entry in walkdir::WalkDir::new(&projects).into_iter().flatten() {
        if entry.file_type().is_file() {
            let file = std::fs::File::options()
                .write(true)
                .open(entry.path())
                .unwrap();
            file.set_modified(SystemTime::now() - Duration::from_secs(3600))
                .unwrap();
        }
    }
    compare("resumed", config.path()).await;
}

/// ccusage 20.0.24's daily report counts a response split over lines without `requestId` once
/// per day its lines fall on; its session report (and every report of ours) counts it once.
#[tokio::test]
async fn a_split_response_without_request_id_across_midnight_counts_once() {
    let config = tempfile::tempdir().unwrap();
    let project = config.path().join("projects/-home-dev-quirk");
    std::fs::create_dir_all(&project).unwrap();
    let fixture = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/transcripts/cc2.1.14-headless-hello-world-script.jsonl"),
    )
    .unwrap();
    let reply: Value = fixture
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "assistant" && v["message"]["usage"].is_object())
        .unwrap();
    let mut lines = String::new();
    for (i, (at, output, text)) in [
        ("2026-02-01T23:59:59.000Z", 5, "part one"),
        ("2026-02-02T00:00:01.000Z", 50, "part two"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut line = reply.clone();
        let object = line.as_object_mut().unwrap();
        object.remove("requestId");
        object.insert(
            "uuid".into(),
            format!("00000000-0000-4000-8000-00000000000{i}").into(),
        );
        object.insert("sessionId".into(), "quirk-1".into());
        object.insert("timestamp".into(), at.into());
        line["message"]["usage"]["output_tokens"] = output.into();
        line["message"]["content"] = serde_json::json!([{"type": "text", "text": text}]);
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    let transcript = project.join("quirk-1.jsonl");
    std::fs::write(&transcript, lines).unwrap();
    let file = std::fs::File::options()
        .write(true)
        .open(&transcript)
        .unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();

    let session = ccusage_tokens(&run_ccusage(config.path(), "session")["totals"]);
    let daily = ccusage_tokens(&run_ccusage(config.path(), "daily")["totals"]);
    assert_eq!(
        session[1], 50,
        "ccusage's session report: the response once"
    );
    assert_eq!(
        daily[1], 55,
        "ccusage's daily report: once per day its lines fall on"
    );
    // Ours: equal to ccusage's session report, in every grouping (compare checks daily and
    // monthly against session).
    compare("quirk", config.path()).await;
}
