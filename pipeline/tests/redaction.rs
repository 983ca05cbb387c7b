//! No planted secret reaches Postgres or the summarizer: a transcript holding one secret of
//! every kind the redactor knows — in a prompt, thinking, a tool's input and its result — goes
//! through the real pipeline (fetch → … → backup) into a fresh database; then every text column
//! of every table, and everything the summarizer was handed, is searched for each secret. With
//! redaction off the same search finds them (so the search can fail), and the uploaded
//! transcript is kept as it came, unless `SESSIONFLOW_REDACT=all` stores it redacted as it is
//! uploaded. What was taken out is counted by kind on the session.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;
use sessionflow_pipeline::api::{ApiState, Ingest, MAX_TRANSCRIPT, router};
use sessionflow_pipeline::events::{EventProcessor, HandlerRegistry, Runs};
use sessionflow_pipeline::processors::Processors;
use sessionflow_pipeline::queue::{PipelineQueue, QueueConfig};
use sessionflow_pipeline::runner::Stages;
use sessionflow_protocol::ids::Id;
use sessionflow_stages::blob::{BlobStore, LocalBlobs, raw_transcript_key};
use sessionflow_stages::redact::Mode;
use sessionflow_stages::store::{Lifecycle, NewSession, Store};
use sessionflow_stages::summarize::{Summarizer, SummaryError, render};
use sessionflow_stages::transcript::ParsedTranscript;
use sqlx::PgPool;

/// One secret of every kind, as a developer's session would hold them.
const SECRETS: &[&str] = &[
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "glpat-x8Yz3kQ9vLm2Np4Rt6Ws",
    "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx",
    "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKl",
    "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "MIIEpAIBAAKCAQEA7vPlantedKeyBody",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "hunter2hunter2",
    "3f9a8b7c6d5e4f3a2b1c",
];

/// A Claude Code transcript with the secrets spread over every kind of block.
fn transcript() -> Bytes {
    let s = SECRETS;
    let at = |n: u32| format!("2026-12-01T10:00:{n:02}.000Z");
    let lines = [
        json!({"type": "user", "uuid": "u1", "sessionId": "s1", "timestamp": at(0), "cwd": "/home/dev/app",
               "message": {"role": "user", "content": format!(
                   "deploy with AWS_ACCESS_KEY_ID={} and aws_secret_access_key = {}", s[0], s[1])}}),
        json!({"type": "assistant", "uuid": "a1", "sessionId": "s1", "timestamp": at(1), "requestId": "r1",
               "message": {"id": "m1", "role": "assistant", "model": "claude-sonnet-4-5",
                           "usage": {"input_tokens": 10, "output_tokens": 5},
                           "content": [
                               {"type": "thinking", "thinking": format!("the JWT {} and key {}", s[11], s[4])},
                               {"type": "text", "text": format!("I will use {} and {}", s[2], s[3])},
                               {"type": "tool_use", "id": "t1", "name": "Bash", "input": {
                                   "command": format!("curl -H 'Authorization: {}' {} && psql postgres://app:{}@db/x", s[5], s[6], s[12])}}]}}),
        json!({"type": "user", "uuid": "u2", "sessionId": "s1", "timestamp": at(2),
               "message": {"role": "user", "content": [
                   {"type": "tool_result", "tool_use_id": "t1", "content": format!(
                       "SLACK={}\nmaps key={}\nstripe {}\n-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\nMY_SERVICE_TOKEN={}",
                       s[7], s[8], s[9], s[10], s[13])}]}}),
    ];
    let mut body = String::new();
    for line in lines {
        body.push_str(&line.to_string());
        body.push('\n');
    }
    Bytes::from(body)
}

/// A summarizer that keeps what it would send to a model (the rendered transcript).
#[derive(Default)]
struct Listening {
    heard: Mutex<Vec<String>>,
}

impl Summarizer for Listening {
    fn summarize<'a>(
        &'a self,
        parsed: &'a ParsedTranscript,
    ) -> BoxFuture<'a, Result<String, SummaryError>> {
        let text = render(parsed, 100_000);
        self.heard.lock().unwrap().push(text.clone());
        async move { Ok(text.chars().take(200).collect()) }.boxed()
    }

    fn name(&self) -> &'static str {
        "listening"
    }
}

/// Every secret found in any text, JSON, varchar or tsvector column of any table (a search
/// index holds a secret as words: each secret's longest run of letters and digits is looked
/// for too).
async fn secrets_in_database(pool: &PgPool) -> Vec<String> {
    let mut needles: Vec<String> = SECRETS.iter().map(|s| (*s).to_owned()).collect();
    needles.extend(SECRETS.iter().map(|s| {
        s.split(|c: char| !c.is_ascii_alphanumeric())
            .max_by_key(|run| run.len())
            .unwrap_or_default()
            .to_owned()
    }));
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' \
           AND data_type IN ('text', 'jsonb', 'json', 'character varying', 'ARRAY', 'tsvector')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(columns.len() > 20, "the columns were found: {columns:?}");
    let mut found = Vec::new();
    for (table, column) in columns {
        let holds: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT s FROM unnest($1::text[]) s WHERE EXISTS \
             (SELECT 1 FROM \"{table}\" WHERE strpos(lower(\"{column}\"::text), lower(s)) > 0)"
        )))
        .bind(&needles)
        .fetch_all(pool)
        .await
        .unwrap();
        found.extend(holds.into_iter().map(|s| format!("{table}.{column}: {s}")));
    }
    found
}

/// Runs the transcript through the pipeline, redaction on or off; what the summarizer heard.
async fn run(
    pool: &PgPool,
    redact: Mode,
) -> (Vec<String>, Arc<dyn BlobStore>, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobs::new(dir.path()));
    let store = Store::from_pool(pool.clone());
    let key = raw_transcript_key(
        &Id::parse("workspace_id", "w1").unwrap(),
        &Id::parse("session_id", "s1").unwrap(),
    );
    blobs.put(&key, transcript()).await.unwrap();
    store
        .create_session(&NewSession {
            id: "s1",
            workspace_id: "w1",
            lifecycle: Some(Lifecycle::Ended),
            transcript_key: Some(&key),
            ..NewSession::default()
        })
        .await
        .unwrap();
    let listening = Arc::new(Listening::default());
    let mut stages = Stages::new(&store, &blobs, listening.clone(), "test-worker");
    stages.parse.set_redaction(redact);
    // Raw lines kept, to be searched too.
    stages.parse.set_keep_raw(true);
    let queue = PipelineQueue::start(stages, QueueConfig::default());
    assert!(queue.enqueue("s1"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let lifecycle: String =
            sqlx::query_scalar("SELECT lifecycle FROM sessions WHERE id = 's1'")
                .fetch_one(pool)
                .await
                .unwrap();
        if lifecycle == "summarized" || lifecycle == "archived" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "s1 is still {lifecycle}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The search index is made from the rows, and searched too.
    sqlx::query("UPDATE sessions SET transcript_sha256 = 'planted'")
        .execute(pool)
        .await
        .unwrap();
    let indexed = Processors::standard(pool.clone(), Arc::clone(&blobs))
        .run("search")
        .await
        .unwrap();
    assert_eq!(indexed.processed, 1, "{indexed:?}");
    let heard = listening.heard.lock().unwrap().clone();
    (heard, blobs, key, dir)
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn no_planted_secret_reaches_postgres_or_the_summarizer(pool: PgPool) {
    let (heard, blobs, key, _dir) = run(&pool, Mode::Rows).await;
    assert_eq!(secrets_in_database(&pool).await, Vec::<String>::new());
    assert_eq!(heard.len(), 1);
    for secret in SECRETS {
        assert!(!heard[0].contains(secret), "the summarizer heard {secret}");
    }
    // The rows say what was there.
    let text: Vec<String> =
        sqlx::query_scalar("SELECT text FROM content_blocks WHERE text IS NOT NULL")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        text.iter().any(|t| t.contains("[REDACTED:github_token]")),
        "{text:?}"
    );
    // The uploaded transcript is kept as it came, to be restored byte for byte.
    assert_eq!(blobs.get(&key).await.unwrap(), transcript());
    // What was taken out, by kind, is kept with the session.
    assert_eq!(redactions(&pool, "s1").await, every_kind_once());
    // The raw lines were kept (SESSIONFLOW_KEEP_RAW), so the search above went through them.
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transcript_messages WHERE raw IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(kept, 3);
}

/// The session's redaction counts, as stored.
async fn redactions(pool: &PgPool, session: &str) -> serde_json::Value {
    sqlx::query_scalar("SELECT redactions FROM sessions WHERE id = $1")
        .bind(session)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The planted transcript holds one secret of each kind.
fn every_kind_once() -> serde_json::Value {
    serde_json::Value::Object(
        sessionflow_stages::redact::kinds()
            .map(|kind| (kind.to_owned(), json!(1)))
            .collect(),
    )
}

async fn upload(url: &str, session: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!(
            "{url}/api/sessions/{session}/transcript/upload?workspace_id=w1"
        ))
        .bearer_auth("test-key")
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn with_redact_all_the_stored_transcript_holds_no_secret_either(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let dir = tempfile::tempdir().unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobs::new(dir.path()));
    let listening = Arc::new(Listening::default());
    let mut stages = Stages::new(&store, &blobs, listening.clone(), "test-worker");
    stages.parse.set_redaction(Mode::All);
    let queue = Arc::new(PipelineQueue::start(stages, QueueConfig::default()));
    let registry = HandlerRegistry::standard(Runs::new(store.clone(), queue, "test-worker"));
    let state = ApiState {
        store,
        blobs: Arc::clone(&blobs),
        ingest: Ingest::Embedded(Arc::new(EventProcessor::new(
            pool.clone(),
            registry,
            "test-worker",
        ))),
        api_key: Arc::from("test-key"),
        max_transcript: MAX_TRANSCRIPT,
        redact_uploads: true,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });

    // Stored redacted, line for line; the answer and the session keep what was sent.
    let sent = transcript().to_vec();
    let (status, body) = upload(&url, "s1", sent.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["size"], json!(sent.len()));
    let key = body["key"].as_str().unwrap().to_owned();
    let stored = blobs.get(&key).await.unwrap();
    let stored = String::from_utf8(stored.to_vec()).unwrap();
    for secret in SECRETS {
        assert!(!stored.contains(secret), "{secret} was stored");
    }
    assert_eq!(stored.lines().count(), 3);
    for line in stored.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    assert!(stored.contains("[REDACTED:github_token]"), "{stored}");
    // Nothing of it was written anywhere in the blob directory.
    for file in walk(dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        for secret in SECRETS {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in {file:?}"
            );
        }
    }

    // The same bytes again are known; a grown transcript replaces it.
    assert_eq!(upload(&url, "s1", sent.clone()).await.0, 200);
    let mut grown = sent.clone();
    grown.extend_from_slice(
        json!({"type": "user", "uuid": "u3", "sessionId": "s1", "timestamp": "2026-12-01T10:00:03.000Z",
               "message": {"role": "user", "content": format!("and {}", SECRETS[2])}})
        .to_string()
        .as_bytes(),
    );
    grown.push(b'\n');
    let (status, body) = upload(&url, "s1", grown.clone()).await;
    assert_eq!((status, body["size"].clone()), (201, json!(grown.len())));

    // Ended, parsed and summarized from the redacted transcript: the markers count.
    let end = json!({"events": [{
        "id": ulid::Ulid::generate().to_string(), "type": "session.end",
        "timestamp": chrono::Utc::now(), "device_id": "laptop", "workspace_id": "w1",
        "session_id": "s1", "data": {"cc_session_id": "s1", "end_reason": "exit"},
    }]});
    let response = reqwest::Client::new()
        .post(format!("{url}/api/events/ingest"))
        .bearer_auth("test-key")
        .json(&end)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut expected = every_kind_once();
    expected["github_token"] = json!(2);
    while redactions(&pool, "s1").await != expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            redactions(&pool, "s1").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(secrets_in_database(&pool).await, Vec::<String>::new());
    let heard = listening.heard.lock().unwrap().clone();
    assert!(!heard.is_empty());
    for secret in SECRETS {
        assert!(
            !heard.iter().any(|h| h.contains(secret)),
            "the summarizer heard {secret}"
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn with_redaction_off_the_same_search_finds_them(pool: PgPool) {
    let (heard, _, _, _dir) = run(&pool, Mode::Off).await;
    assert_eq!(redactions(&pool, "s1").await, json!({}));
    let found = secrets_in_database(&pool).await;
    for secret in SECRETS {
        assert!(
            found.iter().any(|f| f.ends_with(secret)),
            "{secret} not found with redaction off: {found:?}"
        );
    }
    assert!(heard[0].contains(SECRETS[2]));
}
