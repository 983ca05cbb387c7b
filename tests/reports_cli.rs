//! Reports are current when asked for, from the database or through a server: sessions sent
//! to a daemon of the test's own appear in `GET /api/usage` and `/api/tools` (and in
//! `sessionflow usage`/`tools`, with and without `--server`) right after they are processed,
//! with no processor run asked for; by device and by workspace, a response copied onto a
//! second device counts once, for the device of the session that first holds it;
//! `sessionflow search` prints what `GET /api/search` answers, as JSON and as a table. And the
//! API reference describes every route the server serves.

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::url_for;
use daemon::{Daemon, KEY, drop_database, wait_healthy};
use serde_json::{Value, json};

const PORT: &str = "cc2.1.14-headless-python-to-rust-port.jsonl";
const COVERAGE: &str = "cc2.1.14-headless-coverage-test-fix.jsonl";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/transcripts")
            .join(name),
    )
    .unwrap()
}

/// ccusage 20.0.24's token counts for a fixture on its own.
fn ccusage_tokens(name: &str) -> [i64; 4] {
    let all: Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/ccusage-expected.json"),
        )
        .unwrap(),
    )
    .unwrap();
    tokens(&all[name])
}

fn tokens(v: &Value) -> [i64; 4] {
    [
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ]
    .map(|k| v[k].as_i64().unwrap_or_else(|| panic!("no {k} in {v}")))
}

fn event(kind: &str, session: &str, device: &str, workspace: &str, data: Value) -> Value {
    json!({
        "id": ulid::Ulid::generate().to_string(),
        "type": kind,
        "timestamp": Utc::now(),
        "device_id": device,
        "workspace_id": workspace,
        "session_id": session,
        "data": data,
    })
}

struct Server {
    http: reqwest::Client,
    url: String,
}

impl Server {
    async fn call(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.bearer_auth(KEY).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(self.http.get(format!("{}{path}", self.url)))
            .await
    }

    /// Sends a whole session from `device`: start, transcript, end.
    async fn send(&self, session: &str, device: &str, workspace: &str, transcript: Vec<u8>) {
        let ingest = format!("{}/api/events/ingest", self.url);
        let start = event(
            "session.start",
            session,
            device,
            workspace,
            json!({"cc_session_id": session, "source": "startup"}),
        );
        let (status, body) = self
            .call(self.http.post(&ingest).json(&json!({"events": [start]})))
            .await;
        assert_eq!(status, 202, "{body}");
        let upload = format!(
            "{}/api/sessions/{session}/transcript/upload?workspace_id={workspace}",
            self.url
        );
        let (status, body) = self.call(self.http.post(upload).body(transcript)).await;
        assert_eq!(status, 201, "{body}");
        let end = event(
            "session.end",
            session,
            device,
            workspace,
            json!({"cc_session_id": session, "end_reason": "exit"}),
        );
        let (status, body) = self
            .call(self.http.post(&ingest).json(&json!({"events": [end]})))
            .await;
        assert_eq!(status, 202, "{body}");
    }

    async fn wait_summarized(&self, sessions: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, body) = self
                .call(
                    self.http
                        .post(format!("{}/api/sessions/batch-status", self.url))
                        .json(&json!({"session_ids": sessions})),
                )
                .await;
            let done = sessions
                .iter()
                .all(|s| body["statuses"][s]["lifecycle"] == "summarized");
            if done {
                return;
            }
            assert!(Instant::now() < deadline, "not summarized in time: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The CLI run on the test's database and blobs, none of the caller's own settings.
fn run(args: &[&str], database: &str, blobs: &Path) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
        .args(args)
        .env("DATABASE_URL", url_for(database))
        .env("SESSIONFLOW_BLOB", blobs)
        .env_remove("SESSIONFLOW_SERVER")
        .env_remove("SESSIONFLOW_API_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    out
}

/// What the CLI prints as JSON.
fn sessionflow(args: &[&str], database: &str, blobs: &Path) -> Value {
    serde_json::from_slice(&run(args, database, blobs).stdout).unwrap()
}

async fn query_i64(database: &str, sql: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&url_for(database)).await.unwrap();
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn reports_are_current_and_count_a_copied_response_once_across_devices() {
    let database = format!("sessionflow_reports_{}", std::process::id());
    let blobs = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&database, blobs.path());
    wait_healthy(&daemon.url).await;
    let server = Server {
        http: reqwest::Client::new(),
        url: daemon.url.clone(),
    };
    // s-a on the laptop; s-b on the desktop resumes it: a copy of s-a's conversation (the
    // same responses, starting at the same moment) followed by more.
    server
        .send("s-a", "laptop", "w-home", fixture(COVERAGE))
        .await;
    let mut resumed = fixture(COVERAGE);
    resumed.extend(fixture(PORT));
    server.send("s-b", "desktop", "w-work", resumed).await;
    server.wait_summarized(&["s-a", "s-b"]).await;

    // No processor run was asked for: the report brings the usage processor up to date.
    let (status, by_device) = server.get("/api/usage?by=device&timezone=UTC").await;
    assert_eq!(status, 200, "{by_device}");
    let rows = by_device["rows"].as_array().unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| r["device_id"].clone())
            .collect::<Vec<_>>(),
        [json!("desktop"), json!("laptop")],
        "{by_device}"
    );
    assert_eq!(
        tokens(&rows[1]),
        ccusage_tokens(COVERAGE),
        "the laptop: s-a's own"
    );
    assert_eq!(
        tokens(&rows[0]),
        ccusage_tokens(PORT),
        "the desktop: only what s-b added"
    );
    let once: Vec<i64> = ccusage_tokens(PORT)
        .iter()
        .zip(ccusage_tokens(COVERAGE))
        .map(|(a, b)| a + b)
        .collect();
    assert_eq!(
        tokens(&by_device["totals"]).to_vec(),
        once,
        "each response once"
    );

    let (_, by_workspace) = server.get("/api/usage?by=workspace&timezone=UTC").await;
    let keys: Vec<Value> = by_workspace["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["workspace_id"].clone())
        .collect();
    assert_eq!(keys, [json!("w-home"), json!("w-work")]);
    assert_eq!(tokens(&by_workspace["totals"]).to_vec(), once);
    let (_, daily) = server.get("/api/usage?by=daily&timezone=UTC").await;
    assert_eq!(tokens(&daily["totals"]).to_vec(), once);

    // Asking again with nothing new processes nothing and computes nothing: the kept report.
    let runs = "SELECT (extract(epoch FROM last_run_at) * 1e6)::bigint FROM processor_runs \
                WHERE processor_name = 'usage'";
    let computed = "SELECT (extract(epoch FROM computed_at) * 1e6)::bigint \
                    FROM usage_report_cache WHERE request LIKE 'Device|%'";
    let (last_run, last_computed) = (
        query_i64(&database, runs).await,
        query_i64(&database, computed).await,
    );
    let (_, again) = server.get("/api/usage?by=device&timezone=UTC").await;
    assert_eq!(again, by_device);
    assert_eq!(query_i64(&database, runs).await, last_run);
    assert_eq!(query_i64(&database, computed).await, last_computed);

    // The CLI prints the same, from the database and through the server.
    let from_database = sessionflow(
        &["usage", "device", "--json", "--timezone", "UTC"],
        &database,
        blobs.path(),
    );
    assert_eq!(from_database, by_device);
    let through_server = sessionflow(
        &[
            "usage",
            "device",
            "--json",
            "--timezone",
            "UTC",
            "--server",
            &daemon.url,
            "--api-key",
            KEY,
        ],
        &database,
        blobs.path(),
    );
    assert_eq!(through_server, by_device);

    // Tools, the same way: current without a run, equal from both sides.
    let (status, tools) = server.get("/api/tools").await;
    assert_eq!(status, 200, "{tools}");
    assert!(!tools["tools"].as_array().unwrap().is_empty(), "{tools}");
    assert_eq!(
        sessionflow(&["tools", "--json"], &database, blobs.path()),
        tools
    );
    assert_eq!(
        sessionflow(
            &["tools", "--json", "--server", &daemon.url, "--api-key", KEY],
            &database,
            blobs.path()
        ),
        tools
    );

    // Search: from the database (which brings the search processor up to date first; the
    // server's runs every few seconds) and through the server, the same page. The table gives
    // when, project, session and the snippet with the match marked.
    let search = ["search", "coverage", "--limit", "5", "--json"];
    let found = sessionflow(&search, &database, blobs.path());
    assert_eq!(found["hits"].as_array().unwrap().len(), 5, "{found}");
    let (status, through_api) = server.get("/api/search?q=coverage&limit=5").await;
    assert_eq!((status, &through_api), (200, &found));
    let remote = [&search[..], &["--server", &daemon.url, "--api-key", KEY]].concat();
    assert_eq!(sessionflow(&remote, &database, blobs.path()), found);
    let table = run(&search[..4], &database, blobs.path());
    let (out, err) = (
        String::from_utf8_lossy(&table.stdout),
        String::from_utf8_lossy(&table.stderr),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("when ") && lines[0].ends_with("snippet"),
        "{out}"
    );
    assert_eq!(lines.len(), 6, "{out}");
    let first = &found["hits"][0];
    let session = first["session_id"].as_str().unwrap();
    assert!(lines[1].contains(&session[..8.min(session.len())]), "{out}");
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.to_lowercase().contains("*coverage*")),
        "{out}"
    );
    assert!(err.contains("more: --cursor"), "{err}");

    // Bad requests say what is wrong.
    let (status, body) = server.get("/api/usage?by=weekly").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("weekly"), "{body}");
    let (status, body) = server.get("/api/usage?timezone=Mars/Olympus").await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "unknown time zone \"Mars/Olympus\": give an IANA name such as Europe/Paris or UTC"
    );
    drop(daemon);
    drop_database(&database).await;
}

#[tokio::test]
async fn the_api_reference_describes_every_route_the_server_serves() {
    let database = format!("sessionflow_openapi_{}", std::process::id());
    let blobs = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&database, blobs.path());
    wait_healthy(&daemon.url).await;
    let http = reqwest::Client::new();
    // No key needed.
    let response = http
        .get(format!("{}/api/openapi.json", daemon.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();

    // The interfaces clients script against (ARCHITECTURE) are all described.
    let interfaces = [
        ("post", "/api/events/ingest"),
        ("post", "/api/sessions/{id}/transcript/upload"),
        ("post", "/api/sessions/batch-status"),
        ("post", "/api/sessions/{id}/reparse"),
        ("get", "/api/sessions"),
        ("get", "/api/sessions/{id}"),
        ("get", "/api/sessions/{id}/messages"),
        ("get", "/api/sessions/{id}/transcript"),
        ("delete", "/api/sessions/{id}"),
        ("post", "/api/admin/run-session-processor"),
        ("get", "/api/monitor"),
        ("get", "/api/usage"),
        ("get", "/api/tools"),
        ("get", "/api/search"),
        ("post", "/api/admin/keys"),
        ("get", "/api/admin/keys"),
        ("delete", "/api/admin/keys/{id}"),
        ("get", "/api/openapi.json"),
        ("get", "/healthz"),
        ("get", "/metrics"),
    ];
    for (method, path) in interfaces {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is missing from the API reference"
        );
    }
    // Every described operation is served (not axum's empty 404 or 405), and says what its
    // answers mean.
    let mut operations = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            // A parameter is in the path only if the path names it; the rest are the query's.
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                let place = if path.contains(&format!("{{{name}}}")) {
                    "path"
                } else {
                    "query"
                };
                assert_eq!(parameter["in"], place, "{method} {path}: {name}");
            }
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path} describes no response"
            );
            let concrete = path.replace("{id}", "no-such-session");
            let request = match method.as_str() {
                "get" => http.get(format!("{}{concrete}", daemon.url)),
                "post" => http.post(format!("{}{concrete}", daemon.url)),
                "delete" => http.delete(format!("{}{concrete}", daemon.url)),
                other => panic!("unexpected method {other} on {path}"),
            };
            let response = request.bearer_auth(KEY).send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.bytes().await.unwrap();
            assert!(
                status != 405 && !(status == 404 && body.is_empty()),
                "{method} {path} is described but not served ({status})"
            );
        }
    }
    assert_eq!(operations, interfaces.len(), "{paths:?}");
    // The key is declared, and every /api route but the reference asks for it.
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let secured = operation["security"].is_array();
            let public = !path.starts_with("/api/") || path == "/api/openapi.json";
            assert_eq!(secured, !public, "{method} {path}");
        }
    }
    drop(daemon);
    drop_database(&database).await;
}
