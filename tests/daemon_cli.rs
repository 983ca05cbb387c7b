//! The service modes as an operator runs them: the real binary, real Postgres, a local blob
//! directory, signals.

mod common;

use common::{admin_url, url_for};

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const KEY: &str = "daemon-test-key";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serve_without_redis_refuses_and_says_why() {
    let out = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
        .arg("serve")
        .env_remove("REDIS_URL")
        .env("SESSIONFLOW_API_KEY", KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("serve needs REDIS_URL: without Redis no worker would ever see"),
        "{err}"
    );
}

struct Daemon {
    child: Child,
    url: String,
}

impl Daemon {
    fn start(database: &str, blobs: &std::path::Path) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
            .args(["daemon", "--log-format", "json"])
            .env("DATABASE_URL", url_for(database))
            .env_remove("REDIS_URL")
            .env_remove("ANTHROPIC_API_KEY")
            .env("SESSIONFLOW_BLOB", blobs)
            .env("SESSIONFLOW_API_KEY", KEY)
            .env("SESSIONFLOW_LISTEN", format!("127.0.0.1:{port}"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Daemon {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    fn terminate(&mut self) -> (std::process::ExitStatus, Duration, String) {
        let started = Instant::now();
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        let mut logs = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            stderr.read_to_string(&mut logs).unwrap();
        }
        (status, started.elapsed(), logs)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[tokio::test]
async fn the_embedded_daemon_takes_a_session_from_events_to_summarized_and_stops_cleanly() {
    let database = format!("sessionflow_daemon_{}", std::process::id());
    let blobs = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(&database, blobs.path());
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match http.get(format!("{}/healthz", daemon.url)).send().await {
            Ok(r) if r.status() == 200 => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("the daemon never became healthy: {other:?}"),
        }
    }
    let event = |kind: &str, data: Value| {
        json!({"id": ulid::Ulid::generate().to_string(), "type": kind, "timestamp": chrono::Utc::now(),
               "device_id": "laptop", "workspace_id": "w1", "session_id": "s1", "data": data})
    };
    let events = json!({"events": [
        event("session.start", json!({"cc_session_id": "s1", "source": "startup"})),
        event("session.end", json!({"cc_session_id": "s1", "end_reason": "exit"})),
    ]});
    let r = http
        .post(format!("{}/api/events/ingest", daemon.url))
        .bearer_auth(KEY)
        .json(&events)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let transcript = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/transcripts/cc2.1.14-headless-python-to-rust-port.jsonl"),
    )
    .unwrap();
    let r = http
        .post(format!("{}/api/sessions/s1/transcript/upload", daemon.url))
        .bearer_auth(KEY)
        .body(transcript)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut session = Value::Null;
    while Instant::now() < deadline {
        session = http
            .get(format!("{}/api/sessions/s1", daemon.url))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if session["lifecycle"] == "summarized" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(session["lifecycle"], "summarized", "{session}");
    assert_eq!(session["total_messages"], 80);
    assert_eq!(
        (session["tokens_in"].clone(), session["tokens_out"].clone()),
        (json!(38), json!(563))
    );

    let (status, took, logs) = daemon.terminate();
    assert!(status.success(), "{status:?}\n{logs}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    for expected in [
        "registered handlers: session.end, session.reparse, session.start, transcript.uploaded",
        "Event consumer started",
        "sessionflow stopped",
    ] {
        assert!(logs.contains(expected), "missing {expected:?} in\n{logs}");
    }
    assert!(
        logs.lines()
            .all(|l| l.trim().is_empty() || serde_json::from_str::<Value>(l).is_ok()),
        "--log-format json writes JSON lines:\n{logs}"
    );

    let admin = sqlx::PgPool::connect(&admin_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {database} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
}
