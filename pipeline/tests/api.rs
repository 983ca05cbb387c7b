//! The HTTP API over a real socket, against real Postgres and Redis.

use std::sync::Arc;

use chrono::Utc;
use fred::prelude::{ClientLike, StreamsInterface};
use serde_json::{Value, json};
use sessionflow_pipeline::api::{ApiState, Ingest, MAX_TRANSCRIPT, router};
use sessionflow_pipeline::consumer;
use sessionflow_pipeline::events::{EventProcessor, HandlerRegistry, Runs, SessionStartHandler};
use sessionflow_pipeline::queue::{PipelineQueue, QueueConfig};
use sessionflow_pipeline::runner::Stages;
use sessionflow_stages::blob::BlobStore;
use sessionflow_stages::blob::LocalBlobs;
use sessionflow_stages::store::Store;
use sessionflow_stages::summarize::ExtractiveSummarizer;
use sqlx::PgPool;

const KEY: &str = "test-api-key";

async fn serve(state: ApiState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    url
}

/// The API in embedded mode with a local blob directory that lives as long as the returned
/// guard.
fn embedded(pool: &PgPool) -> (ApiState, tempfile::TempDir) {
    let registry = HandlerRegistry::new().register(
        "session.start",
        SessionStartHandler::new(Store::from_pool(pool.clone())),
    );
    let dir = tempfile::tempdir().unwrap();
    let state = ApiState {
        store: Store::from_pool(pool.clone()),
        blobs: Arc::new(LocalBlobs::new(dir.path())),
        ingest: Ingest::Embedded(Arc::new(EventProcessor::new(
            pool.clone(),
            registry,
            "test-worker",
        ))),
        api_key: Arc::from(KEY),
        max_transcript: MAX_TRANSCRIPT,
        redact_uploads: false,
    };
    (state, dir)
}

fn start_event(session: &str) -> Value {
    json!({
        "id": ulid::Ulid::generate().to_string(),
        "type": "session.start",
        "timestamp": Utc::now(),
        "device_id": "laptop",
        "workspace_id": "w1",
        "session_id": session,
        "data": {"cc_session_id": session, "source": "startup"},
    })
}

fn end_event(session: &str) -> Value {
    json!({
        "id": ulid::Ulid::generate().to_string(),
        "type": "session.end",
        "timestamp": Utc::now(),
        "device_id": "laptop",
        "workspace_id": "w1",
        "session_id": session,
        "data": {"cc_session_id": session, "end_reason": "exit", "duration_ms": 1000},
    })
}

/// One heartbeat of a worker named host-1 running `queue` in `mode`.
async fn beat(pool: &PgPool, mode: &str, queue: &PipelineQueue) {
    let processor = EventProcessor::new(pool.clone(), HandlerRegistry::new(), "test-worker");
    sessionflow_pipeline::heartbeat::beat(
        pool,
        "host-1",
        mode,
        queue,
        processor.stats(),
        &mut Default::default(),
    )
    .await
    .unwrap();
}

async fn post(url: &str, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(url: &str, path: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!("{url}{path}"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn every_api_route_needs_the_key_and_health_does_not(pool: PgPool) {
    let (state, _dir) = embedded(&pool);
    let url = serve(state).await;
    let (status, body) = get(&url, "/api/sessions/s1", None).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    assert_eq!(
        get(&url, "/api/sessions/s1", Some("wrong-key")).await.0,
        401
    );
    assert_eq!(get(&url, "/api/sessions/s1", Some(KEY)).await.0, 404);
    let (status, body) = get(&url, "/healthz", None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn ingest_records_events_once_and_reports_duplicates(pool: PgPool) {
    let (state, _dir) = embedded(&pool);
    let url = serve(state).await;
    let batch = json!({"events": [start_event("s1"), start_event("s2")]});
    let (status, body) = post(&url, "/api/events/ingest", batch.to_string()).await;
    assert_eq!(
        (status, body),
        (202, json!({"accepted": 2, "duplicates": 0}))
    );
    let (status, body) = post(&url, "/api/events/ingest", batch.to_string()).await;
    assert_eq!(
        (status, body),
        (202, json!({"accepted": 0, "duplicates": 2}))
    );
    let (status, session) = get(&url, "/api/sessions/s1", Some(KEY)).await;
    assert_eq!(status, 200);
    assert_eq!(session["lifecycle"], "detected");
    assert_eq!(session["source"], "startup");
    assert_eq!(session["total_messages"], 0);
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn bad_ingest_requests_get_a_400_or_413_with_the_reason(pool: PgPool) {
    let (state, _dir) = embedded(&pool);
    let url = serve(state).await;
    let (status, body) = post(&url, "/api/events/ingest", "{not json").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON"),
        "{body}"
    );

    let (status, body) = post(
        &url,
        "/api/events/ingest",
        json!({"events": []}).to_string(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "send 1 to 100 events, not 0")
    );
    let many: Vec<Value> = (0..101).map(|i| start_event(&format!("s{i}"))).collect();
    let (status, body) = post(
        &url,
        "/api/events/ingest",
        json!({"events": many}).to_string(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "send 1 to 100 events, not 101")
    );

    let mut bad = start_event("s1");
    bad["data"]["source"] = json!("teleport");
    let batch = json!({"events": [start_event("s0"), bad]});
    let (status, body) = post(&url, "/api/events/ingest", batch.to_string()).await;
    assert_eq!(status, 400);
    let reason = body["error"].as_str().unwrap();
    assert!(
        reason.starts_with("events[1]: event ") && reason.contains("unknown variant `teleport`"),
        "{reason}"
    );
    assert_eq!(
        get(&url, "/api/sessions/s0", Some(KEY)).await.0,
        404,
        "a bad batch records nothing"
    );

    let huge = format!(
        "{{\"events\": [], \"pad\": \"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let (status, body) = post(&url, "/api/events/ingest", huge).await;
    assert_eq!(status, 413, "{body}");
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn batch_status_answers_within_its_bounds(pool: PgPool) {
    let (state, _dir) = embedded(&pool);
    let url = serve(state).await;
    let batch = json!({"events": [start_event("s1")]});
    post(&url, "/api/events/ingest", batch.to_string()).await;
    let ask = json!({"session_ids": ["s1", "nope", "nope"]});
    let (status, body) = post(&url, "/api/sessions/batch-status", ask.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"statuses": {"s1": {"lifecycle": "detected", "parse_status": "pending",
                                   "transcript_size": null, "transcript_sha256": null,
                                   "parse_error": null}},
               "not_found": ["nope"]})
    );
    for n in [0, 501] {
        let ids: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        let (status, body) = post(
            &url,
            "/api/sessions/batch-status",
            json!({"session_ids": ids}).to_string(),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], format!("send 1 to 500 session_ids, not {n}"));
    }
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn with_redis_ingest_adds_to_the_stream(pool: PgPool) {
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = consumer::redis_client(&redis_url).unwrap();
    client
        .init()
        .await
        .expect("Redis is up (scripts/services.sh)");
    let stream = format!("sf:test:api:{}", ulid::Ulid::generate());
    let (base, _dir) = embedded(&pool);
    let state = ApiState {
        ingest: Ingest::Redis {
            client: client.clone(),
            stream: stream.clone(),
        },
        ..base
    };
    let url = serve(state).await;
    let batch = json!({"events": [start_event("s1"), start_event("s2")]});
    let (status, body) = post(&url, "/api/events/ingest", batch.to_string()).await;
    assert_eq!(
        (status, body),
        (202, json!({"accepted": 2, "duplicates": 0}))
    );
    let len: u64 = client.xlen(&stream).await.unwrap();
    assert_eq!(len, 2);
    assert_eq!(get(&url, "/healthz", None).await.0, 200);
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn health_is_degraded_with_reasons(pool: PgPool) {
    let (state, _dir) = embedded(&pool);
    let url = serve(state).await;
    sqlx::query("INSERT INTO workspaces (id) VALUES ('w1')")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO sessions (id, workspace_id, lifecycle, transcript_key, updated_at) \
         VALUES ('stuck', 'w1', 'ended', 'k', now() - interval '11 minutes')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (status, body) = get(&url, "/healthz", None).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "degraded", "{body}");
    let reasons = body["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{body}");
    assert!(
        reasons[0]
            .as_str()
            .unwrap()
            .starts_with("1 sessions have waited over 10 minutes to be processed, the oldest 6"),
        "{body}"
    );

    // A configured Redis that cannot be reached.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = consumer::redis_client(&format!("redis://127.0.0.1:{port}")).unwrap();
    let _connection = unreachable.connect();
    let (base, _dir) = embedded(&pool);
    let state = ApiState {
        ingest: Ingest::Redis {
            client: unreachable,
            stream: "unused".into(),
        },
        ..base
    };
    let url = serve(state).await;
    let (status, body) = get(&url, "/healthz", None).await;
    assert_eq!(status, 503);
    let reasons = body["reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().unwrap().starts_with("Redis")),
        "{body}"
    );
}

/// The API in embedded mode with the standard handlers and a running pipeline.
fn daemon_like(pool: &PgPool) -> (ApiState, Arc<PipelineQueue>, tempfile::TempDir) {
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
    let registry = HandlerRegistry::standard(Runs::new(
        Store::from_pool(pool.clone()),
        Arc::clone(&queue),
        "test-worker",
    ));
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
    (state, queue, dir)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/transcripts")
            .join(name),
    )
    .unwrap()
}

async fn wait_for_lifecycle(url: &str, session: &str, lifecycle: &str) -> Value {
    let mut body = Value::Null;
    for _ in 0..400 {
        body = get(url, &format!("/api/sessions/{session}"), Some(KEY))
            .await
            .1;
        if body["lifecycle"] == lifecycle {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{session} never became {lifecycle}: {body}");
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn an_upload_after_the_end_runs_the_pipeline_and_re_uploads_are_judged(pool: PgPool) {
    let (state, _queue, _dir) = daemon_like(&pool);
    let url = serve(state).await;
    let end = end_event("s1");
    let batch = json!({"events": [start_event("s1"), end]});
    assert_eq!(
        post(&url, "/api/events/ingest", batch.to_string()).await.0,
        202
    );

    let transcript = fixture("cc2.1.14-headless-hello-world-script.jsonl");
    let (status, body) = post(
        &url,
        "/api/sessions/s1/transcript/upload",
        transcript.clone(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["already_uploaded"], false);
    assert_eq!(body["key"], "transcripts/w1/s1/raw.jsonl");
    assert_eq!(body["size"], transcript.len());
    let session = wait_for_lifecycle(&url, "s1", "summarized").await;
    assert_eq!(session["total_messages"], 8);
    assert_eq!(session["parse_status"], "completed");

    let (status, body) = post(
        &url,
        "/api/sessions/s1/transcript/upload",
        transcript.clone(),
    )
    .await;
    assert_eq!(
        (status, body["already_uploaded"].clone()),
        (200, json!(true))
    );
    let (status, body) = post(&url, "/api/sessions/s1/transcript/upload", b"{}\n".to_vec()).await;
    assert_eq!(status, 409);
    assert_eq!(
        body["error"],
        format!(
            "session s1 already has a different transcript ({} bytes stored, 3 sent): a re-upload \
             must begin with the stored bytes and be longer (a live session's transcript only grows)",
            transcript.len()
        )
    );
    // Larger, but not a continuation of what is stored: refused too, nothing replaced.
    let mut other = fixture("cc2.1.14-headless-stop-hook-fast-path-clean.jsonl");
    other.extend_from_slice(&transcript);
    let (status, body) = post(&url, "/api/sessions/s1/transcript/upload", other.clone()).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains(&format!(
            "({} bytes stored, {} sent)",
            transcript.len(),
            other.len()
        )),
        "{body}"
    );
    let stored: (i64, String) =
        sqlx::query_as("SELECT transcript_size, transcript_sha256 FROM sessions WHERE id = 's1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        stored.0,
        transcript.len() as i64,
        "the stored transcript stays"
    );
    let mut grown = transcript.clone();
    grown.extend_from_slice(&fixture(
        "cc2.1.14-headless-stop-hook-fast-path-clean.jsonl",
    ));
    let (status, body) = post(&url, "/api/sessions/s1/transcript/upload", grown.clone()).await;
    assert_eq!((status, body["size"].clone()), (201, json!(grown.len())));
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn uploads_for_unknown_sessions_need_a_workspace_and_big_ones_are_refused(pool: PgPool) {
    let (mut state, _dir) = embedded(&pool);
    state.max_transcript = 100_000;
    let url = serve(state).await;
    let (status, body) = post(
        &url,
        "/api/sessions/new/transcript/upload",
        b"{}\n".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "session new is not known yet: pass ?workspace_id=…"
    );
    let (status, _) = post(
        &url,
        "/api/sessions/new/transcript/upload?workspace_id=w9",
        b"{}\n".to_vec(),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = post(
        &url,
        "/api/sessions/big/transcript/upload?workspace_id=w9",
        vec![b'x'; 300_000],
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        body["error"],
        "the request body is over the 100000 byte limit"
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn messages_page_through_in_order_and_reparse_runs_again(pool: PgPool) {
    let (state, _queue, _dir) = daemon_like(&pool);
    let url = serve(state).await;
    let end = end_event("s1");
    let batch = json!({"events": [start_event("s1"), end, start_event("live")]});
    post(&url, "/api/events/ingest", batch.to_string()).await;
    let transcript = fixture("cc2.1.14-headless-hello-world-script.jsonl");
    assert_eq!(
        post(&url, "/api/sessions/s1/transcript/upload", transcript)
            .await
            .0,
        201
    );
    wait_for_lifecycle(&url, "s1", "summarized").await;

    let (status, page) = get(&url, "/api/sessions/s1/messages?limit=5", Some(KEY)).await;
    assert_eq!(status, 200);
    let first = page["messages"].as_array().unwrap();
    assert_eq!(first.len(), 5);
    assert_eq!(page["next_after"], 4);
    assert_eq!(first[0]["message_type"], "user");
    assert_eq!(first[0]["blocks"][0]["block_type"], "text");
    assert!(
        first[1]["blocks"][0]["tool_name"].is_string(),
        "{}",
        first[1]
    );
    let (_, rest) = get(&url, "/api/sessions/s1/messages?limit=5&after=4", Some(KEY)).await;
    let ordinals: Vec<i64> = rest["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["ordinal"].as_i64().unwrap())
        .collect();
    assert_eq!(
        (ordinals, rest["next_after"].clone()),
        (vec![5, 6, 7], Value::Null)
    );
    assert_eq!(
        get(&url, "/api/sessions/nope/messages", Some(KEY)).await.0,
        404
    );

    let (status, body) = post(&url, "/api/sessions/s1/reparse", "").await;
    assert_eq!((status, body["lifecycle"].clone()), (202, json!("ended")));
    let session = wait_for_lifecycle(&url, "s1", "summarized").await;
    assert_eq!(session["total_messages"], 8);
    let (_, all) = get(&url, "/api/sessions/s1/messages?limit=200", Some(KEY)).await;
    assert_eq!(
        all["messages"].as_array().unwrap().len(),
        8,
        "replaced, not duplicated"
    );
    assert_eq!(post(&url, "/api/sessions/nope/reparse", "").await.0, 404);
    let (status, body) = post(&url, "/api/sessions/live/reparse", "").await;
    assert_eq!(status, 409, "{body}");
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn sessions_list_newest_first_with_filters_and_a_cursor(pool: PgPool) {
    let (state, _dir) = embedded(&pool);
    let url = serve(state).await;
    for s in ["a", "b", "c"] {
        let batch = json!({"events": [start_event(s)]});
        post(&url, "/api/events/ingest", batch.to_string()).await;
    }
    let (status, page) = get(&url, "/api/sessions?limit=2", Some(KEY)).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = page["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c", "b"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = get(
        &url,
        &format!("/api/sessions?limit=2&cursor={cursor}"),
        Some(KEY),
    )
    .await;
    assert_eq!(rest["sessions"][0]["id"], "a");
    assert_eq!(rest["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);

    let (_, filtered) = get(&url, "/api/sessions?lifecycle=summarized", Some(KEY)).await;
    assert_eq!(filtered["sessions"], json!([]));
    let (_, by_workspace) = get(
        &url,
        "/api/sessions?workspace=w1&since=2020-01-01T00:00:00Z",
        Some(KEY),
    )
    .await;
    assert_eq!(by_workspace["sessions"].as_array().unwrap().len(), 3);
    for (query, reason) in [
        ("lifecycle=gone", "unknown session state `gone`"),
        ("limit=0", "limit must be 1 to 200, not 0"),
        ("cursor=xyz", "cursor \"xyz\" is not one this API gave out"),
    ] {
        let (status, body) = get(&url, &format!("/api/sessions?{query}"), Some(KEY)).await;
        assert_eq!(
            (status, body["error"].as_str().unwrap()),
            (400, reason),
            "{query}"
        );
    }
    assert_eq!(
        get(&url, "/api/sessions?since=yesterday", Some(KEY))
            .await
            .0,
        400
    );
}

/// Ids of a page of `GET /api/sessions`, and its cursor and total.
async fn list_ids(url: &str, query: &str) -> (Vec<String>, Value, Value) {
    let (status, page) = get(url, &format!("/api/sessions?{query}"), Some(KEY)).await;
    assert_eq!(status, 200, "{query}: {page}");
    let ids = page["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    (ids, page["next_cursor"].clone(), page["total"].clone())
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn sessions_list_searches_sorts_and_jumps(pool: PgPool) {
    let (state, _dir) = embedded(&pool);
    let url = serve(state).await;
    for s in ["s1", "s2", "s3", "s4", "s5", "t_6"] {
        let batch = json!({"events": [start_event(s)]});
        post(&url, "/api/events/ingest", batch.to_string()).await;
    }
    // Costs that do not follow creation order, two of them equal (ties fall back on time).
    for (id, cost, prompt) in [
        ("s1", 3.0, "Fix the LOGIN page"),
        ("s2", 1.0, "write docs"),
        ("s3", 5.0, "login again"),
        ("s4", 1.0, "100% done"),
        ("s5", 2.0, "other"),
        ("t_6", 0.5, "tests"),
    ] {
        sqlx::query(
            "UPDATE sessions SET cost_estimate_usd = $2, initial_prompt = $3, \
                    tokens_out = (100 * $2)::bigint WHERE id = $1",
        )
        .bind(id)
        .bind(cost)
        .bind(prompt)
        .execute(&pool)
        .await
        .unwrap();
    }
    let (ids, _, total) = list_ids(&url, "q=login").await;
    assert_eq!((ids, total), (vec!["s3".into(), "s1".into()], json!(2)));
    // Pattern characters are literal: `_` and `%` match only themselves.
    assert_eq!(list_ids(&url, "q=t_").await.0, ["t_6"]);
    assert_eq!(list_ids(&url, "q=100%25").await.0, ["s4"]);
    assert_eq!(list_ids(&url, "q=DETECT").await.2, json!(6));

    let by_cost = ["s3", "s1", "s5", "s4", "s2", "t_6"];
    let (ids, _, total) = list_ids(&url, "sort=cost").await;
    assert_eq!((ids, total), (by_cost.map(String::from).to_vec(), json!(6)));
    let (ids, _, _) = list_ids(&url, "sort=tokens&order=asc").await;
    assert_eq!(ids, ["t_6", "s2", "s4", "s5", "s1", "s3"]);
    // Reading on with cursors in a sorted order gives the same rows, each once.
    let mut read = Vec::new();
    let mut cursor = String::new();
    loop {
        let (ids, next, total) = list_ids(&url, &format!("sort=cost&limit=2{cursor}")).await;
        assert_eq!(
            total.is_null(),
            !cursor.is_empty(),
            "total on the first page only"
        );
        read.extend(ids);
        match next.as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
        assert!(read.len() <= by_cost.len(), "pages go on: {read:?}");
    }
    assert_eq!(read, by_cost);
    // Offsets jump into the middle.
    let (ids, _, total) = list_ids(&url, "sort=cost&offset=4&limit=5").await;
    assert_eq!((ids, total), (vec!["s2".into(), "t_6".into()], json!(6)));

    let (_, first, _) = list_ids(&url, "sort=cost&limit=1").await;
    let created_cursor = list_ids(&url, "limit=1").await.1;
    for (query, reason) in [
        (
            "sort=size",
            "sort must be created, cost, tokens or messages, not \"size\"",
        ),
        ("order=up", "order must be asc or desc, not \"up\""),
        ("offset=-1", "offset must not be negative, not -1"),
        (
            &format!("offset=1&cursor={}", created_cursor.as_str().unwrap()),
            "give a cursor or an offset, not both",
        ),
        (
            &format!("cursor={}", first.as_str().unwrap()),
            &format!(
                "cursor {:?} belongs to a list in another order",
                first.as_str().unwrap()
            ),
        ),
    ] {
        let (status, body) = get(&url, &format!("/api/sessions?{query}"), Some(KEY)).await;
        assert_eq!(
            (status, body["error"].as_str().unwrap()),
            (400, reason),
            "{query}"
        );
    }
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn metrics_are_prometheus_text_without_a_key(pool: PgPool) {
    let (state, queue, _dir) = daemon_like(&pool);
    let url = serve(state).await;
    let batch = json!({"events": [start_event("s1"), start_event("s2")]});
    post(&url, "/api/events/ingest", batch.to_string()).await;
    beat(&pool, "worker", &queue).await;
    let response = reqwest::get(format!("{url}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for line in [
        "sessionflow_sessions{lifecycle=\"detected\"} 2",
        "sessionflow_events{outcome=\"handled\"} 2",
        "sessionflow_workers 1",
        "sessionflow_queue_depth{worker=\"host-1\"} 0",
        "sessionflow_runs_total{worker=\"host-1\",outcome=\"completed\"} 0",
        "sessionflow_stage_runs_total{worker=\"host-1\",stage=\"persist\"} 0",
        "# TYPE sessionflow_stage_latency_seconds gauge",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn health_is_degraded_when_sessions_wait_and_no_worker_reports(pool: PgPool) {
    let (state, queue, _dir) = daemon_like(&pool);
    let url = serve(state).await;
    sqlx::query("INSERT INTO workspaces (id) VALUES ('w1')")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO sessions (id, workspace_id, lifecycle, transcript_key) \
         VALUES ('waiting', 'w1', 'ended', 'k')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (status, body) = get(&url, "/healthz", None).await;
    assert_eq!(status, 503);
    assert_eq!(
        body["reasons"],
        json!(["no worker has sent a heartbeat for 30 s while 1 sessions wait"])
    );
    beat(&pool, "worker", &queue).await;
    assert_eq!(
        get(&url, "/healthz", None).await.0,
        200,
        "a live worker will take it"
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn the_monitor_snapshot_shows_lifecycles_stages_workers_and_failures(pool: PgPool) {
    let (state, queue, _dir) = daemon_like(&pool);
    let url = serve(state).await;
    let end = end_event("s1");
    let batch = json!({"events": [start_event("s1"), end, start_event("live")]});
    post(&url, "/api/events/ingest", batch.to_string()).await;
    let transcript = fixture("cc2.1.14-headless-hello-world-script.jsonl");
    post(&url, "/api/sessions/s1/transcript/upload", transcript).await;
    wait_for_lifecycle(&url, "s1", "summarized").await;
    // A session whose transcript vanished from the store fails in download.
    sqlx::query(
        "INSERT INTO sessions (id, workspace_id, lifecycle, transcript_key) VALUES ('gone', 'w1', 'ended', 'transcripts/w1/gone/raw.jsonl')",
    )
    .execute(&pool)
    .await
    .unwrap();
    queue.enqueue("gone");
    wait_for_lifecycle(&url, "gone", "failed").await;
    beat(&pool, "daemon", &queue).await;

    let (status, m) = get(&url, "/api/monitor", Some(KEY)).await;
    assert_eq!(status, 200);
    assert_eq!(
        m["sessions"]["by_lifecycle"],
        json!({"detected": 1, "failed": 1, "summarized": 1})
    );
    assert_eq!(
        m["sessions"]["by_parse_status"],
        json!({"completed": 1, "failed": 1, "pending": 1})
    );
    assert_eq!(m["queue"]["depth"], 0);
    assert_eq!(m["workers"][0]["id"], "host-1");
    assert_eq!(m["workers"][0]["mode"], "daemon");
    assert_eq!(m["workers"][0]["version"], env!("CARGO_PKG_VERSION"));
    let stages = m["stages"].as_array().unwrap();
    let names: Vec<&str> = stages.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "fetch",
            "download",
            "parse",
            "persist",
            "summarize",
            "backup"
        ]
    );
    assert_eq!(stages[1]["done"], 2.0);
    assert_eq!(stages[1]["failed"], 1.0);
    assert!(stages[3]["p95_latency_ms"].as_f64().unwrap() > 0.0);
    let failure = &m["recent_failures"][0];
    assert_eq!(failure["session_id"], "gone");
    assert_eq!(failure["stage"], "download");
    assert!(
        failure["error"]
            .as_str()
            .unwrap()
            .starts_with("S3 download failed: blob")
    );
    assert_eq!(m["stuck"], json!([]));
    assert!(m["events_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(get(&url, "/api/monitor", None).await.0, 401);
}

/// Reads `raw` as the shared type `T` (strict: unknown or missing fields fail) and checks that
/// writing it back gives the same JSON, so nothing the server sent was dropped or defaulted.
fn contract<T: serde::de::DeserializeOwned + serde::Serialize>(route: &str, raw: &Value) -> T {
    let typed: T = serde_json::from_value(raw.clone())
        .unwrap_or_else(|e| panic!("{route} does not read as its protocol type: {e}\n{raw}"));
    assert_eq!(
        &serde_json::to_value(&typed).unwrap(),
        raw,
        "{route} changed on a round trip through its protocol type"
    );
    typed
}

/// The contract between the server and its clients (capture, tui): every answer a client reads
/// is one of `sessionflow_protocol`'s types, field for field, with real data in every part
/// (a worker's heartbeat, a processor's run, a failure, messages with tool calls).
#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn every_answer_reads_as_the_shared_protocol_types(pool: PgPool) {
    use sessionflow_protocol::health::Healthz;
    use sessionflow_protocol::heartbeat::WorkerGauges;
    use sessionflow_protocol::monitor::MonitorSnapshot;
    use sessionflow_protocol::sessions::{BatchStatusResponse, MessagePage, Session, SessionPage};

    let (state, queue, dir) = daemon_like(&pool);
    let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobs::new(dir.path()));
    let url = serve(state).await;
    let batch = json!({"events": [start_event("s1"), end_event("s1"), start_event("live")]});
    post(&url, "/api/events/ingest", batch.to_string()).await;
    let transcript = fixture("cc2.1.14-headless-hello-world-script.jsonl");
    post(&url, "/api/sessions/s1/transcript/upload", transcript).await;
    wait_for_lifecycle(&url, "s1", "summarized").await;
    sqlx::query(
        "INSERT INTO sessions (id, workspace_id, lifecycle, transcript_key) \
         VALUES ('gone', 'w1', 'ended', 'transcripts/w1/gone/raw.jsonl')",
    )
    .execute(&pool)
    .await
    .unwrap();
    queue.enqueue("gone");
    wait_for_lifecycle(&url, "gone", "failed").await;
    beat(&pool, "daemon", &queue).await;
    sessionflow_pipeline::processors::Processors::standard(pool.clone(), blobs)
        .run("usage")
        .await
        .unwrap();

    let (status, raw) = get(&url, "/api/monitor", Some(KEY)).await;
    assert_eq!(status, 200);
    let m: MonitorSnapshot = contract("/api/monitor", &raw);
    assert_eq!(m.workers.len(), 1);
    assert_eq!(m.recent_failures.len(), 1);
    assert_eq!(m.processors.len(), 1);
    assert_eq!(m.stages.len(), 6);

    let (_, raw) = get(&url, "/healthz", None).await;
    let health: Healthz = contract("/healthz", &raw);
    assert!(health.is_ok(), "{raw}");

    let (_, raw) = get(&url, "/api/sessions?limit=2", Some(KEY)).await;
    let page: SessionPage = contract("/api/sessions", &raw);
    assert_eq!(page.total, Some(3));
    let cursor = page.next_cursor.expect("a second page");
    let (_, raw) = get(
        &url,
        &format!("/api/sessions?limit=2&cursor={cursor}"),
        Some(KEY),
    )
    .await;
    let next: SessionPage = contract("/api/sessions?cursor", &raw);
    assert_eq!((next.sessions.len(), next.total), (1, None));

    for id in ["s1", "gone", "live"] {
        let (_, raw) = get(&url, &format!("/api/sessions/{id}"), Some(KEY)).await;
        let session: Session = contract("/api/sessions/{id}", &raw);
        assert_eq!(session.id, id);
    }
    let (_, raw) = get(&url, "/api/sessions/s1/messages", Some(KEY)).await;
    let messages: MessagePage = contract("/api/sessions/{id}/messages", &raw);
    assert!(
        messages.messages.iter().any(|m| !m.blocks.is_empty()),
        "{raw}"
    );

    let ids = json!({"session_ids": ["s1", "gone", "nobody"]});
    let (_, raw) = post(&url, "/api/sessions/batch-status", ids.to_string()).await;
    let statuses: BatchStatusResponse = contract("/api/sessions/batch-status", &raw);
    assert_eq!(statuses.not_found, ["nobody"]);

    let gauges: Value = sqlx::query_scalar("SELECT pipeline FROM workers WHERE id = 'host-1'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let gauges: WorkerGauges = contract("the heartbeat", &gauges);
    assert_eq!(gauges.stages.len(), 6);
}
