//! Deleting sessions for good and giving transcripts back, over the real API (a real socket,
//! real Postgres, a blob directory): what a deletion takes and leaves, who may delete, the
//! tombstone against late uploads, retention, and uploads that name their files.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use sessionflow_pipeline::api::{ApiState, Ingest, MAX_TRANSCRIPT, router};
use sessionflow_pipeline::events::{EventProcessor, HandlerRegistry, Runs};
use sessionflow_pipeline::queue::{PipelineQueue, QueueConfig};
use sessionflow_pipeline::runner::Stages;
use sessionflow_protocol::ids::Id;
use sessionflow_protocol::keys::Role;
use sessionflow_protocol::sessions::{BatchStatusResponse, DeletedSession};
use sessionflow_protocol::transcripts::{PARTS_HEADER, Part, Parts, WORKSPACE_HEADER};
use sessionflow_stages::blob::{BlobStore, LocalBlobs};
use sessionflow_stages::store::Store;
use sessionflow_stages::summarize::ExtractiveSummarizer;
use sqlx::PgPool;

const KEY: &str = "test-api-key";

/// A daemon's API and worker over `pool` and a blob directory, served on a free port.
async fn daemon(pool: &PgPool) -> (String, Arc<PipelineQueue>, tempfile::TempDir) {
    let store = Store::from_pool(pool.clone());
    let dir = tempfile::tempdir().unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobs::new(dir.path()));
    let stages = Stages::new(
        &store,
        &blobs,
        Arc::new(ExtractiveSummarizer),
        "test-worker",
    );
    let queue = Arc::new(PipelineQueue::start(stages, QueueConfig::default()));
    let registry =
        HandlerRegistry::standard(Runs::new(store.clone(), Arc::clone(&queue), "test-worker"));
    let state = ApiState {
        store,
        blobs,
        ingest: Ingest::Embedded(Arc::new(EventProcessor::new(
            pool.clone(),
            registry,
            "test-worker",
        ))),
        api_key: Arc::from(KEY),
        max_transcript: MAX_TRANSCRIPT,
        redact_uploads: false,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    (url, queue, dir)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/transcripts")
            .join(name),
    )
    .unwrap()
}

fn event(kind: &str, session: &str, workspace: &str, data: Value) -> Value {
    json!({
        "id": ulid::Ulid::generate().to_string(),
        "type": kind,
        "timestamp": Utc::now(),
        "device_id": "laptop",
        "workspace_id": workspace,
        "session_id": session,
        "data": data,
    })
}

async fn call(
    method: reqwest::Method,
    url: &str,
    path: &str,
    key: &str,
    body: Option<(Vec<u8>, Option<String>)>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{url}{path}"))
        .bearer_auth(key);
    if let Some((body, parts)) = body {
        request = request
            .header("content-type", "application/octet-stream")
            .body(body);
        if let Some(parts) = parts {
            request = request.header(PARTS_HEADER, parts);
        }
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

async fn json_call(method: reqwest::Method, url: &str, path: &str, key: &str) -> (u16, Value) {
    let (status, _, body) = call(method, url, path, key, None).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn ingest(url: &str, events: Vec<Value>) {
    let response = reqwest::Client::new()
        .post(format!("{url}/api/events/ingest"))
        .bearer_auth(KEY)
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

/// Sends the start of `session` of workspace `w1` (`source` as Claude Code names it).
async fn start(url: &str, session: &str, source: &str) {
    ingest(
        url,
        vec![event(
            "session.start",
            session,
            "w1",
            json!({"cc_session_id": session, "source": source}),
        )],
    )
    .await;
}

/// Starts, uploads and ends `session` of workspace `w1`, and waits until it is summarized.
async fn captured(url: &str, session: &str, transcript: &[u8]) {
    start(url, session, "startup").await;
    let (status, _, body) = call(
        reqwest::Method::POST,
        url,
        &format!("/api/sessions/{session}/transcript/upload?workspace_id=w1"),
        KEY,
        Some((transcript.to_vec(), None)),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    ingest(
        url,
        vec![event(
            "session.end",
            session,
            "w1",
            json!({"cc_session_id": session, "end_reason": "exit"}),
        )],
    )
    .await;
    wait_for(url, session, "summarized").await;
}

async fn wait_for(url: &str, session: &str, lifecycle: &str) {
    let mut last = Value::Null;
    for _ in 0..600 {
        last = json_call(
            reqwest::Method::GET,
            url,
            &format!("/api/sessions/{session}"),
            KEY,
        )
        .await
        .1;
        if last["lifecycle"] == lifecycle {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{session} never became {lifecycle}: {last}");
}

/// Waits until `path` exists (the backup is written after the summary).
async fn wait_for_file(path: &Path) {
    for _ in 0..400 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} never appeared", path.display());
}

/// Rows of `session` in every table that hangs on a session.
async fn rows_of(pool: &PgPool, session: &str) -> Vec<(&'static str, i64)> {
    let mut counts = Vec::new();
    for table in [
        "sessions",
        "transcript_messages",
        "content_blocks",
        "processor_state",
        "usage_responses",
        "usage_sessions",
        "tool_usage",
        "search_entries",
    ] {
        let column = if table == "sessions" {
            "id"
        } else {
            "session_id"
        };
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE {column} = $1"
        )))
        .bind(session)
        .fetch_one(pool)
        .await
        .unwrap();
        counts.push((table, n));
    }
    counts
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_deleted_session_is_gone_everywhere_and_comes_back_only_when_forced(pool: PgPool) {
    let (url, _queue, dir) = daemon(&pool).await;
    let transcript = fixture("cc2.1.14-headless-hello-world-script.jsonl");
    for session in ["s1", "s2"] {
        captured(&url, session, &transcript).await;
        wait_for_file(
            &dir.path()
                .join(format!("transcripts/w1/{session}/parsed.json")),
        )
        .await;
    }
    for processor in ["usage", "tools", "search"] {
        let (status, body) = json_call(
            reqwest::Method::POST,
            &url,
            &format!("/api/admin/run-session-processor?processor={processor}"),
            KEY,
        )
        .await;
        assert_eq!(status, 200, "{processor}: {body}");
    }
    let before = rows_of(&pool, "s1").await;
    assert!(
        before.iter().all(|(_, n)| *n > 0),
        "every table holds rows of s1 before: {before:?}"
    );

    let (status, body) = json_call(reqwest::Method::DELETE, &url, "/api/sessions/s1", KEY).await;
    assert_eq!(status, 200, "{body}");
    let deleted: DeletedSession = serde_json::from_value(body).unwrap();
    assert_eq!(
        (deleted.session_id.as_str(), deleted.workspace_id.as_str()),
        ("s1", "w1")
    );
    assert_eq!(deleted.messages, 8);
    assert!(
        rows_of(&pool, "s1").await.iter().all(|(_, n)| *n == 0),
        "{:?}",
        rows_of(&pool, "s1").await
    );
    assert_eq!(
        rows_of(&pool, "s2").await,
        before,
        "s2 (the same transcript) keeps all its rows"
    );
    assert!(!dir.path().join("transcripts/w1/s1/raw.jsonl").exists());
    assert!(!dir.path().join("transcripts/w1/s1/parsed.json").exists());
    assert!(dir.path().join("transcripts/w1/s2/raw.jsonl").exists());
    assert!(dir.path().join("transcripts/w1/s2/parsed.json").exists());
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM blob_deletions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(queued, 0, "the blobs went at once");

    // What the API says of it now.
    let (status, body) = json_call(reqwest::Method::DELETE, &url, "/api/sessions/s1", KEY).await;
    assert_eq!(status, 410, "{body}");
    assert!(body["error"].as_str().unwrap().contains("was deleted at"));
    let (status, _) = json_call(reqwest::Method::GET, &url, "/api/sessions/s1", KEY).await;
    assert_eq!(status, 410);
    let (status, body) = json_call(
        reqwest::Method::GET,
        &url,
        "/api/sessions/s1/transcript",
        KEY,
    )
    .await;
    assert_eq!(status, 410, "{body}");
    let answer = reqwest::Client::new()
        .post(format!("{url}/api/sessions/batch-status"))
        .bearer_auth(KEY)
        .json(&json!({"session_ids": ["s1", "s2", "s9"]}))
        .send()
        .await
        .unwrap()
        .json::<BatchStatusResponse>()
        .await
        .unwrap();
    assert_eq!(answer.not_found, ["s1", "s9"]);
    assert_eq!(answer.deleted, ["s1"]);
    let metrics = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sessionflow_sessions_deleted_total{reason=\"request\"} 1"),
        "{metrics}"
    );

    // Late capture does not bring it back: events are recorded and change nothing, an upload
    // is refused and leaves nothing behind.
    start(&url, "s1", "resume").await;
    let (status, _) = json_call(reqwest::Method::GET, &url, "/api/sessions/s1", KEY).await;
    assert_eq!(status, 410, "a late start does not make the session again");
    let (status, _, body) = call(
        reqwest::Method::POST,
        &url,
        "/api/sessions/s1/transcript/upload?workspace_id=w1",
        KEY,
        Some((transcript.clone(), None)),
    )
    .await;
    assert_eq!(status, 410, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("force=true"));
    assert!(!dir.path().join("transcripts/w1/s1/raw.jsonl").exists());
    assert_eq!(rows_of(&pool, "s1").await[0], ("sessions", 0));

    // Forced, it is a session again, processed as any other.
    let (status, _, body) = call(
        reqwest::Method::POST,
        &url,
        "/api/sessions/s1/transcript/upload?workspace_id=w1&force=true",
        KEY,
        Some((transcript.clone(), None)),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    ingest(
        &url,
        vec![event(
            "session.end",
            "s1",
            "w1",
            json!({"cc_session_id": "s1", "end_reason": "exit"}),
        )],
    )
    .await;
    wait_for(&url, "s1", "summarized").await;
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_session_deleted_while_its_transcript_streams_in_keeps_nothing_of_it(pool: PgPool) {
    use futures::SinkExt;
    let (url, _queue, dir) = daemon(&pool).await;
    start(&url, "s1", "startup").await;
    let transcript = fixture("cc2.1.14-headless-hello-world-script.jsonl");
    let (head, tail) = transcript.split_at(transcript.len() / 2);
    let (mut body, stream) = futures::channel::mpsc::channel::<std::io::Result<Vec<u8>>>(1);
    let upload = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{url}/api/sessions/s1/transcript/upload"))
            .bearer_auth(KEY)
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(stream))
            .send(),
    );
    body.send(Ok(head.to_vec())).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let staged: i64 = sqlx::query_scalar("SELECT count(*) FROM staged_uploads")
            .fetch_one(&pool)
            .await
            .unwrap();
        if staged == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never staged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body_json) =
        json_call(reqwest::Method::DELETE, &url, "/api/sessions/s1", KEY).await;
    assert_eq!(status, 200, "{body_json}");
    body.send(Ok(tail.to_vec())).await.unwrap();
    drop(body);
    let response = upload.await.unwrap().unwrap();
    assert_eq!(response.status().as_u16(), 410);
    let text = response.text().await.unwrap();
    assert!(text.contains("deleted for good"), "{text}");
    assert!(
        walk(dir.path()).is_empty(),
        "nothing of the upload is kept: {:?}",
        walk(dir.path())
    );
    let left: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM staged_uploads), (SELECT count(*) FROM sessions), \
                (SELECT count(*) FROM events WHERE type = 'transcript.uploaded')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, (0, 0, 0), "staged uploads, sessions, upload events");
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn only_an_admin_or_a_key_scoped_to_the_workspace_deletes(pool: PgPool) {
    let (url, _queue, dir) = daemon(&pool).await;
    captured(
        &url,
        "s1",
        &fixture("cc2.1.14-headless-hello-world-script.jsonl"),
    )
    .await;
    let store = Store::from_pool(pool.clone());
    let (w1, w2) = (
        Id::parse("workspace_id", "w1").unwrap(),
        Id::parse("workspace_id", "w2").unwrap(),
    );
    let key = |role, workspaces: Vec<Id>| {
        let store = store.clone();
        async move {
            store
                .create_key(None, role, &workspaces, None)
                .await
                .unwrap()
                .key
        }
    };
    let read_w1 = key(Role::Read, vec![w1.clone()]).await;
    let ingest_all = key(Role::Ingest, vec![]).await;
    let ingest_w2 = key(Role::Ingest, vec![w2]).await;
    let ingest_w1 = key(Role::Ingest, vec![w1]).await;

    for (who, key, status, reason) in [
        (
            "a read key",
            read_w1.as_str(),
            403,
            "needs ingest (or admin)",
        ),
        (
            "an ingest key for every workspace",
            ingest_all.as_str(),
            403,
            "may not delete sessions",
        ),
        (
            "an ingest key of another workspace",
            ingest_w2.as_str(),
            404,
            "not found",
        ),
        ("no key at all", "wrong", 401, "missing or wrong API key"),
    ] {
        let (got, body) = json_call(reqwest::Method::DELETE, &url, "/api/sessions/s1", key).await;
        assert_eq!(got, status, "{who}: {body}");
        assert!(
            body["error"].as_str().unwrap_or_default().contains(reason),
            "{who}: {body}"
        );
        assert_eq!(rows_of(&pool, "s1").await[0], ("sessions", 1), "{who}");
        assert!(
            dir.path().join("transcripts/w1/s1/raw.jsonl").exists(),
            "{who}"
        );
    }
    for bad in ["a%20b", "x%2Fy", &"z".repeat(129)] {
        let (status, body) = json_call(
            reqwest::Method::DELETE,
            &url,
            &format!("/api/sessions/{bad}"),
            KEY,
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("session_id"),
            "{body}"
        );
    }
    let (status, body) = json_call(
        reqwest::Method::DELETE,
        &url,
        "/api/sessions/s1",
        &ingest_w1,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let by: String = sqlx::query_scalar(
        "SELECT data->>'by' FROM events WHERE type = 'session.deleted' AND session_id = 's1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        by.len() == 26,
        "the key's id is recorded, not the key: {by}"
    );
    let (status, body) = json_call(
        reqwest::Method::DELETE,
        &url,
        "/api/sessions/s1",
        &ingest_w2,
    )
    .await;
    assert_eq!(status, 404, "another workspace's key is not told: {body}");
}

fn part(name: &str, bytes: &[u8]) -> Part {
    let unterminated = bytes.last().is_some_and(|b| *b != b'\n');
    Part {
        name: name.to_owned(),
        size: bytes.len() as u64,
        lines: bytes.iter().filter(|b| **b == b'\n').count() as u64 + u64::from(unterminated),
        unterminated,
    }
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn an_upload_names_its_files_and_the_transcript_comes_back_as_they_were(pool: PgPool) {
    let (url, _queue, dir) = daemon(&pool).await;
    let main = fixture("cc2.1.14-headless-hello-world-script.jsonl");
    let agent_a = b"{\"type\":\"user\",\"agentId\":\"a\"}".to_vec();
    let agent_b = b"{\"type\":\"user\",\"agentId\":\"b\"}\n".to_vec();
    let parts = Parts(vec![
        part("s1.jsonl", &main),
        part("agent-a.jsonl", &agent_a),
        part("agent-b.jsonl", &agent_b),
    ]);
    let mut body = main.clone();
    body.extend_from_slice(&agent_a);
    body.push(b'\n');
    body.extend_from_slice(&agent_b);

    // Headers that do not describe the body are refused, and nothing is stored.
    let mut wrong_size = parts.clone();
    wrong_size.0[1].size += 1;
    let mut wrong_lines = parts.clone();
    wrong_lines.0[2].lines += 1;
    let mut climbing = parts.clone();
    climbing.0[1].name = "../../etc/agent-a.jsonl".into();
    for (what, header, reason) in [
        ("not JSON", "files: 3".to_owned(), "is not a list of"),
        (
            "a size off by one",
            wrong_size.to_header(),
            "x-sessionflow-parts",
        ),
        ("a line too many", wrong_lines.to_header(), "lines"),
        (
            "a name that climbs",
            climbing.to_header(),
            "is not a subagent file name",
        ),
        (
            "another session's main file",
            Parts(vec![part("s2.jsonl", &body)]).to_header(),
            "the first file must be s1.jsonl",
        ),
    ] {
        let (status, _, answer) = call(
            reqwest::Method::POST,
            &url,
            "/api/sessions/s1/transcript/upload?workspace_id=w1",
            KEY,
            Some((body.clone(), Some(header))),
        )
        .await;
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(status, 400, "{what}: {answer}");
        assert!(answer.contains(reason), "{what}: {answer}");
        assert_eq!(rows_of(&pool, "s1").await[0], ("sessions", 0), "{what}");
        let stored: Vec<_> = walk(dir.path());
        assert!(stored.is_empty(), "{what}: {stored:?}");
    }

    let (status, _, answer) = call(
        reqwest::Method::POST,
        &url,
        "/api/sessions/s1/transcript/upload?workspace_id=w1",
        KEY,
        Some((body.clone(), Some(parts.to_header()))),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    let (status, headers, bytes) = call(
        reqwest::Method::GET,
        &url,
        "/api/sessions/s1/transcript",
        KEY,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(bytes, body);
    assert_eq!(headers[WORKSPACE_HEADER], "w1");
    let named = Parts::parse("s1", headers[PARTS_HEADER].to_str().unwrap()).unwrap();
    assert_eq!(named, parts);
    assert_eq!(
        named.split(&bytes).unwrap(),
        [&main[..], &agent_a[..], &agent_b[..]]
    );

    // A read key of another workspace is not told the session exists.
    let store = Store::from_pool(pool.clone());
    let w2 = Id::parse("workspace_id", "w2").unwrap();
    let read_w2 = store
        .create_key(None, Role::Read, &[w2], None)
        .await
        .unwrap()
        .key;
    let (status, _) = json_call(
        reqwest::Method::GET,
        &url,
        "/api/sessions/s1/transcript",
        &read_w2,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = json_call(
        reqwest::Method::GET,
        &url,
        "/api/sessions/s9/transcript",
        KEY,
    )
    .await;
    assert_eq!(status, 404);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn retention_deletes_what_was_last_active_before_its_period(pool: PgPool) {
    let (url, _queue, dir) = daemon(&pool).await;
    let transcript = fixture("cc2.1.14-headless-hello-world-script.jsonl");
    for session in ["old", "new"] {
        captured(&url, session, &transcript).await;
    }
    sqlx::query("UPDATE sessions SET ended_at = now() - interval '3 days' WHERE id = 'old'")
        .execute(&pool)
        .await
        .unwrap();
    let store = Store::from_pool(pool.clone());
    let blobs = LocalBlobs::new(dir.path());
    let deleted = sessionflow_pipeline::deletion::apply_retention(
        &store,
        &blobs,
        Duration::from_secs(2 * 86_400),
    )
    .await
    .unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(rows_of(&pool, "old").await[0], ("sessions", 0));
    assert_eq!(rows_of(&pool, "new").await[0], ("sessions", 1));
    assert!(!dir.path().join("transcripts/w1/old/raw.jsonl").exists());
    let reason: String = sqlx::query_scalar(
        "SELECT data->>'reason' FROM events WHERE type = 'session.deleted' AND session_id = 'old'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(reason, "retention");
    let metrics = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sessionflow_sessions_deleted_total{reason=\"retention\"} 1"),
        "{metrics}"
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn blobs_still_queued_for_removal_are_removed_by_the_sweep(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::new(dir.path());
    let store = Store::from_pool(pool.clone());
    blobs
        .put(
            "transcripts/w1/s1/raw.jsonl",
            bytes::Bytes::from_static(b"x\n"),
        )
        .await
        .unwrap();
    sqlx::query("INSERT INTO blob_deletions (key) VALUES ('transcripts/w1/s1/raw.jsonl')")
        .execute(&pool)
        .await
        .unwrap();
    let removed = sessionflow_pipeline::deletion::remove_queued_blobs(&store, &blobs)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert!(!dir.path().join("transcripts/w1/s1/raw.jsonl").exists());
    assert!(store.blobs_to_delete(10).await.unwrap().is_empty());
}
