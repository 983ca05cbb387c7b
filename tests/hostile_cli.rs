//! A hostile or buggy client against the real `sessionflow daemon`: every bad thing gets a 4xx
//! with its reason, nothing is stored or changed (no row, no blob), and the server keeps
//! serving.

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::path::Path;

use chrono::Utc;
use common::url_for;
use daemon::{Daemon, KEY, drop_database, wait_healthy};
use serde_json::{Value, json};

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.bearer_auth(KEY).send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
        )
    }

    /// POSTs `body` to `path` (given raw: percent-escapes reach the server as written).
    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        self.send(self.http.post(format!("{}{path}", self.url)).body(body))
            .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.url)))
            .await
    }

    async fn ingest(&self, events: Value) -> (u16, Value) {
        self.send(
            self.http
                .post(format!("{}/api/events/ingest", self.url))
                .header("content-type", "application/json")
                .body(json!({ "events": events }).to_string()),
        )
        .await
    }
}

fn event(kind: &str, session: &str, workspace: &str, device: &str) -> Value {
    json!({
        "id": ulid::Ulid::generate().to_string(), "type": kind, "timestamp": Utc::now(),
        "device_id": device, "workspace_id": workspace, "session_id": session,
        "data": {"cc_session_id": session, "source": "startup"},
    })
}

/// Everything stored: rows of every table that takes client input, and files under the blobs.
async fn stored(database: &str, blobs: &Path) -> (i64, i64, i64, i64, Vec<String>) {
    let pool = sqlx::PgPool::connect(&url_for(database)).await.unwrap();
    let counts: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM events), \
                (SELECT count(*) FROM workspaces), (SELECT count(*) FROM devices)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    let mut files: Vec<String> = walkdir::WalkDir::new(blobs)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(blobs).unwrap().display().to_string())
        .collect();
    files.sort();
    (counts.0, counts.1, counts.2, counts.3, files)
}

#[tokio::test]
async fn bad_ids_are_refused_before_anything_is_stored() {
    let database = format!("sessionflow_hostile_ids_{}", std::process::id());
    let blobs = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&database, blobs.path());
    wait_healthy(&daemon.url).await;
    let client = Client {
        http: reqwest::Client::new(),
        url: daemon.url.clone(),
    };
    let before = stored(&database, blobs.path()).await;
    let rule =
        "is not a valid id: use 1 to 128 letters, digits, '.', '_' or '-' (not \".\" or \"..\")";
    let long = "x".repeat(300);

    // In an upload's path and query.
    for (path, field) in [
        (
            "/api/sessions/a%2Fb/transcript/upload?workspace_id=w1",
            "session_id \"a/b\"",
        ),
        (
            "/api/sessions/..%2F..%2Fetc/transcript/upload?workspace_id=w1",
            "session_id \"../../etc\"",
        ),
        (
            "/api/sessions/a%00b/transcript/upload?workspace_id=w1",
            "session_id \"a\\0b\"",
        ),
        (
            "/api/sessions/%C3%A9t%C3%A9/transcript/upload?workspace_id=w1",
            "session_id \"été\"",
        ),
        (
            &format!("/api/sessions/{long}/transcript/upload?workspace_id=w1"),
            "session_id \"xxxxxxxx",
        ),
        (
            "/api/sessions/s1/transcript/upload?workspace_id=a%2Fb",
            "workspace_id \"a/b\"",
        ),
        (
            "/api/sessions/s1/transcript/upload?workspace_id=..",
            "workspace_id \"..\"",
        ),
        (
            "/api/sessions/s1/transcript/upload?workspace_id=.",
            "workspace_id \".\"",
        ),
        (
            "/api/sessions/s1/transcript/upload?workspace_id=",
            "workspace_id \"\"",
        ),
    ] {
        let (status, body) = client.post(path, b"{\"type\":\"user\"}\n".to_vec()).await;
        assert_eq!(status, 400, "{path}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.starts_with(field), "{path}: {error}");
        assert!(error.contains(rule), "{path}: {error}");
    }
    // In other paths and queries (a bare `..` segment never reaches a server: URLs resolve it).
    for path in [
        "/api/sessions/a%2Fb",
        "/api/sessions/a%20b",
        "/api/sessions/a%2Fb/messages",
    ] {
        let (status, body) = client.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(rule),
            "{path}: {body}"
        );
    }
    let (status, body) = client.get("/api/sessions?workspace=..%2Fx").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = client.post("/api/sessions/a%2Fb/reparse", Vec::new()).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = client
        .send(
            client
                .http
                .post(format!("{}/api/sessions/batch-status", client.url))
                .header("content-type", "application/json")
                .body(json!({"session_ids": ["ok", "a/b"]}).to_string()),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("session_ids[1] \"a/b\""),
        "{body}"
    );

    // In event envelopes: the whole request is refused, naming the event and the field.
    for (bad, field) in [
        (event("session.start", "a/b", "w1", "d1"), "session_id"),
        (event("session.start", "s1", "..", "d1"), "workspace_id"),
        (event("session.start", "s1", "w1", "d\u{0}1"), "device_id"),
        (event("session.start", &long, "w1", "d1"), "session_id"),
        (event("session.start", "s1", "w 1", "d1"), "workspace_id"),
    ] {
        let (status, body) = client
            .ingest(json!([event("session.start", "fine", "w1", "d1"), bad]))
            .await;
        assert_eq!(status, 400, "{body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("events[1]: event "), "{error}");
        assert!(error.contains(&format!(": {field} \"")), "{error}");
        assert!(error.contains(rule), "{error}");
    }

    assert_eq!(
        stored(&database, blobs.path()).await,
        before,
        "nothing was stored"
    );
    // And the server keeps serving.
    let (status, body) = client
        .ingest(json!([event("session.start", "fine", "w1", "d1")]))
        .await;
    assert_eq!(
        (status, body["accepted"].clone()),
        (202, json!(1)),
        "{body}"
    );
    drop(daemon);
    drop_database(&database).await;
}

#[tokio::test]
async fn forged_events_and_broken_bodies_change_nothing() {
    let database = format!("sessionflow_hostile_events_{}", std::process::id());
    let blobs = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&database, blobs.path());
    wait_healthy(&daemon.url).await;
    let client = Client {
        http: reqwest::Client::new(),
        url: daemon.url.clone(),
    };
    // A real session to aim at.
    let (status, body) = client
        .ingest(json!([event("session.start", "victim", "w1", "d1")]))
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = client
        .post(
            "/api/sessions/victim/transcript/upload?workspace_id=w1",
            b"{\"type\":\"user\",\"uuid\":\"u1\",\"message\":{\"role\":\"user\",\"content\":\"hi\"}}\n".to_vec(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let before = stored(&database, blobs.path()).await;

    // Events only the server raises cannot be sent, whatever they carry.
    for (kind, data) in [
        (
            "transcript.uploaded",
            json!({"key": "transcripts/w1/victim/raw.jsonl", "size": 1, "sha256": "forged"}),
        ),
        ("session.reparse", json!({})),
        ("x.custom", json!({})),
    ] {
        let mut forged = event(kind, "victim", "w1", "d1");
        forged["data"] = data;
        let (status, body) = client.ingest(json!([forged])).await;
        assert_eq!(status, 400, "{kind}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("events[0]: event ")
                && error.contains(&format!("unknown variant `{kind}`, expected one of `session.start`, `session.end`, `session.compact`")),
            "{error}"
        );
    }

    // Bodies that are not what they say.
    let ingest = format!("{}/api/events/ingest", client.url);
    let truncated = json!({"events": [event("session.start", "s2", "w1", "d1")]}).to_string();
    let deep = format!(
        "{{\"events\": {}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    for (what, request) in [
        (
            "truncated JSON",
            client
                .http
                .post(&ingest)
                .body(truncated[..truncated.len() / 2].to_owned()),
        ),
        ("deep JSON", client.http.post(&ingest).body(deep)),
        (
            "JSON declared as text",
            client
                .http
                .post(&ingest)
                .header("content-type", "text/plain")
                .body(truncated.clone()),
        ),
        (
            "batch-status as a form",
            client
                .http
                .post(format!("{}/api/sessions/batch-status", client.url))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("session_ids=s2"),
        ),
        (
            "a transcript wrapped in a form",
            client
                .http
                .post(format!(
                    "{}/api/sessions/s2/transcript/upload?workspace_id=w1",
                    client.url
                ))
                .header("content-type", "multipart/form-data; boundary=x")
                .body("--x\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n{}\r\n--x--\r\n"),
        ),
        ("not JSON", client.http.post(&ingest).body("events=1")),
        (
            "an array",
            client.http.post(&ingest).body(json!([1, 2]).to_string()),
        ),
        (
            "over 1 MiB",
            client.http.post(&ingest).body(format!(
                "{{\"events\": [], \"pad\": \"{}\"}}",
                "x".repeat(1_100_000)
            )),
        ),
    ] {
        let (status, body) = client.send(request).await;
        assert!((400..500).contains(&status), "{what}: {status} {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what} gets a reason: {body}"
        );
    }

    // An upload that breaks off midway stores nothing (checked with the rest at the end).
    let cut = stalled(
        &client.url,
        "POST /api/sessions/cut/transcript/upload?workspace_id=w1",
        1000,
        b"{\"type\":\"user\",\"message\":\"half\"}\n",
    )
    .await;
    drop(cut);

    // A replayed event is recognised, not applied again.
    let start = event("session.start", "s3", "w1", "d1");
    let (_, first) = client.ingest(json!([start.clone()])).await;
    let after_first = stored(&database, blobs.path()).await;
    let (status, again) = client.ingest(json!([start])).await;
    assert_eq!(first, json!({"accepted": 1, "duplicates": 0}));
    assert_eq!(
        (status, again),
        (202, json!({"accepted": 0, "duplicates": 1}))
    );
    assert_eq!(stored(&database, blobs.path()).await, after_first);

    // The victim kept its transcript; nothing else was stored by the refused requests.
    let pool = sqlx::PgPool::connect(&url_for(&database)).await.unwrap();
    let (key, sha): (String, String) = sqlx::query_as(
        "SELECT transcript_key, transcript_sha256 FROM sessions WHERE id = 'victim'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(key, "transcripts/w1/victim/raw.jsonl");
    assert_ne!(sha, "forged");
    let (sessions, events, _, _, files) = stored(&database, blobs.path()).await;
    assert_eq!(
        (sessions, events - 1, files),
        (before.0 + 1, before.1, before.4.clone())
    );
    drop(daemon);
    drop_database(&database).await;
}

/// A request written by hand on its own connection: headers announcing `length` body bytes,
/// then only `first` of them. The server waits for the rest until the connection is dropped
/// (the body broke off) or its time limit.
async fn stalled(
    url: &str,
    method_path: &str,
    length: usize,
    first: &[u8],
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let host = url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "{method_path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(first).await.unwrap();
    socket.flush().await.unwrap();
    socket
}

/// The status line's code of what `socket` is answered.
async fn answer(mut socket: tokio::net::TcpStream) -> u16 {
    use tokio::io::AsyncReadExt;
    let mut reply = vec![0u8; 1024];
    let n = socket.read(&mut reply).await.unwrap();
    let line = String::from_utf8_lossy(&reply[..n]).into_owned();
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {line:?}"))
}

#[tokio::test]
async fn the_server_sheds_load_times_out_stalled_bodies_and_guards_metrics() {
    let database = format!("sessionflow_hostile_limits_{}", std::process::id());
    let blobs = tempfile::tempdir().unwrap();
    let metrics_key = "metrics-key-0123456789abcdef0123456789";
    let mut daemon = Daemon::start_with(
        &database,
        blobs.path(),
        &[
            ("SESSIONFLOW_MAX_CONCURRENT", "2"),
            ("SESSIONFLOW_REQUEST_TIMEOUT", "2s"),
            ("SESSIONFLOW_UPLOAD_TIMEOUT", "2m"),
            ("SESSIONFLOW_METRICS_KEY", metrics_key),
        ],
    );
    wait_healthy(&daemon.url).await;
    let client = Client {
        http: reqwest::Client::new(),
        url: daemon.url.clone(),
    };
    let before = stored(&database, blobs.path()).await;

    // Two uploads that stall after their first bytes hold both places. The server takes
    // connections concurrently, so one of them may lose the race for a place to a monitor
    // request and be refused: it is sent again until both are held.
    let upload = "POST /api/sessions/stalled/transcript/upload?workspace_id=w1";
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(stalled(&client.url, upload, 1000, b"{\"type\":\"user\"}\n").await);
    }
    // While they are held, any other /api request is refused at once, with when to retry.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let refused = loop {
        for socket in held.iter_mut() {
            let mut answer = [0u8; 16];
            match socket.try_read(&mut answer) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                _ => *socket = stalled(&client.url, upload, 1000, b"{\"type\":\"user\"}\n").await,
            }
        }
        let response = client
            .http
            .get(format!("{}/api/monitor", client.url))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        if response.status() == 503 {
            break response;
        }
        assert!(std::time::Instant::now() < deadline, "never saturated");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(refused.headers()["retry-after"], "1");
    let reason: Value = refused.json().await.unwrap();
    assert!(
        reason["error"]
            .as_str()
            .unwrap()
            .contains("limit of 2 requests"),
        "{reason}"
    );
    // Health stays answerable while the API is saturated.
    assert_eq!(client.get("/healthz").await.0, 200);

    // The uploads break off: they store nothing, and their places are free again.
    drop(held);
    // A stalled body ends at the time limit with 408 (once the broken uploads' places are
    // given back, which the server sees at once or nearly).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (started, status) = loop {
        let started = std::time::Instant::now();
        let socket = stalled(
            &client.url,
            "POST /api/events/ingest",
            1000,
            b"{\"events\": [",
        )
        .await;
        let status = answer(socket).await;
        if status != 503 || std::time::Instant::now() > deadline {
            break (started, status);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status, 408);
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    assert_eq!(client.get("/api/monitor").await.0, 200);
    assert_eq!(stored(&database, blobs.path()).await, before);

    // /metrics needs its own key when one is set: not none, not the API key.
    let metrics = |key: Option<&'static str>| {
        let request = client.http.get(format!("{}/metrics", client.url));
        let request = match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(metrics(None).await, 401);
    assert_eq!(metrics(Some(KEY)).await, 401);
    assert_eq!(metrics(Some(metrics_key)).await, 200);

    // The test key is short: the daemon said so when it started.
    let _ = daemon.child.kill();
    let mut logs = String::new();
    use std::io::Read;
    daemon
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(
        logs.contains("SESSIONFLOW_API_KEY is 15 characters"),
        "{logs}"
    );
    drop(daemon);
    drop_database(&database).await;
}
