//! Two `sessionflow worker` processes sharing one Redis group, one Postgres database and one
//! blob directory: 2 000 events for 200 sessions, every event recorded once, every session
//! summarized, none parsed twice.

mod common;

use common::{admin_url, url_for};

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fred::prelude::{ClientLike, KeysInterface, StreamsInterface};
use serde_json::{Value, json};

const SESSIONS: usize = 200;
const FIXTURES: [&str; 4] = [
    "cc2.1.14-headless-hello-world-script.jsonl",
    "cc2.1.14-headless-stop-hook-fast-path-clean.jsonl",
    "cc2.1.14-headless-stop-hook-uncommitted-changes.jsonl",
    "cc2.1.14-headless-stop-hook-reflection-first-stop.jsonl",
];

fn worker(database: &str, blobs: &std::path::Path, stream: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sessionflow"))
        .args(["worker", "--log-format", "json"])
        .env("DATABASE_URL", url_for(database))
        .env(
            "REDIS_URL",
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        )
        .env("SESSIONFLOW_BLOB", blobs)
        .env("SESSIONFLOW_STREAM", stream)
        .env_remove("ANTHROPIC_API_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Drains a worker's log as it is written, so the pipe never fills.
fn drain(child: &mut Child) -> std::thread::JoinHandle<String> {
    let mut stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut logs = String::new();
        let _ = stderr.read_to_string(&mut logs);
        logs
    })
}

/// Kills the workers if the test ends early.
struct Workers([Child; 2]);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn event(kind: &str, session: &str, data: Value) -> String {
    json!({
        "id": ulid::Ulid::generate().to_string(), "type": kind, "timestamp": chrono::Utc::now(),
        "device_id": "laptop", "workspace_id": "w1", "session_id": session, "data": data,
    })
    .to_string()
}

#[tokio::test]
async fn two_workers_share_2000_events_and_parse_each_session_once() {
    let database = format!("sessionflow_workers_{}", std::process::id());
    let blobs = tempfile::tempdir().unwrap();
    let stream = format!("sf:test:workers:{}", ulid::Ulid::generate());
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/transcripts");
    for i in 0..SESSIONS {
        let dir = blobs.path().join(format!("transcripts/w1/s{i:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(
            fixtures.join(FIXTURES[i % FIXTURES.len()]),
            dir.join("raw.jsonl"),
        )
        .unwrap();
    }
    let mut workers = Workers([
        worker(&database, blobs.path(), &stream),
        worker(&database, blobs.path(), &stream),
    ]);
    let logs: Vec<_> = workers.0.iter_mut().map(drain).collect();

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let redis = sessionflow_pipeline::consumer::redis_client(&url).unwrap();
    redis
        .init()
        .await
        .expect("Redis is up (scripts/services.sh)");
    let mut published = 0;
    for round in 0..10 {
        for i in 0..SESSIONS {
            let s = format!("s{i:03}");
            let body = match round {
                0 => event(
                    "session.start",
                    &s,
                    json!({"cc_session_id": s, "source": "startup"}),
                ),
                8 => event(
                    "session.end",
                    &s,
                    json!({"cc_session_id": s, "end_reason": "exit"}),
                ),
                9 => event(
                    "transcript.uploaded",
                    &s,
                    json!({"key": format!("transcripts/w1/{s}/raw.jsonl"), "size": 1, "sha256": "x"}),
                ),
                _ => event("tool.used", &s, json!({"tool": "Bash", "round": round})),
            };
            let _: String = redis
                .xadd(&stream, false, None::<()>, "*", vec![("event", body)])
                .await
                .unwrap();
            published += 1;
        }
    }
    assert_eq!(published, 2_000);

    // Wait for the database the workers created — until both have beaten, which they do once
    // their migrations are done (reading tables a migration is altering can deadlock with it) —
    // then for every session to be summarized.
    let deadline = Instant::now() + Duration::from_secs(120);
    let pool = loop {
        if let Ok(pool) = sqlx::PgPool::connect(&url_for(&database)).await
            && sqlx::query_scalar::<_, i64>("SELECT count(*) FROM workers")
                .fetch_one(&pool)
                .await
                .is_ok_and(|beaten| beaten >= 2)
        {
            break pool;
        }
        assert!(
            Instant::now() < deadline,
            "the workers never migrated the database and beat"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    loop {
        let (events, summarized): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM events), \
                    (SELECT count(*) FROM sessions WHERE lifecycle = 'summarized')",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if events == 2_000 && summarized == SESSIONS as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{events} events, {summarized} summarized after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unhandled: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE handled_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(unhandled, 0);

    let mut processed: HashMap<String, usize> = HashMap::new();
    let mut handled_by = Vec::new();
    for (child, logs) in workers.0.iter_mut().zip(logs) {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        let logs = logs.join().unwrap();
        let tail: Vec<&str> = logs.lines().rev().take(5).collect();
        assert!(status.success(), "{status:?}: {tail:#?}");
        let mut mine = 0;
        for line in logs.lines() {
            let Ok(entry) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if entry["fields"]["message"] == "session processed" {
                let session = entry["span"]["session"]
                    .as_str()
                    .or(entry["fields"]["session"].as_str());
                *processed
                    .entry(session.unwrap_or("?").to_owned())
                    .or_default() += 1;
                mine += 1;
            }
        }
        handled_by.push(mine);
    }
    assert_eq!(
        processed.len(),
        SESSIONS,
        "every session processed: {handled_by:?}"
    );
    assert!(processed.values().all(|&n| n == 1), "none parsed twice");
    eprintln!("sessions processed per worker: {handled_by:?}");
    pool.close().await;
    let admin = sqlx::PgPool::connect(&admin_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {database} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
    let _: i64 = redis.del(&stream).await.unwrap_or(0);
}
