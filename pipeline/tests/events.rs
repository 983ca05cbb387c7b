//! Events against real Postgres: recorded exactly once, handlers driving the lifecycle, and the
//! pipeline started exactly once by whichever of session.end and the upload comes last.

mod common;

use common::event;
use sessionflow_protocol::ids::Id;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;
use sessionflow_pipeline::events::{
    Event, EventProcessor, Handler, HandlerError, HandlerRegistry, Payload, ProcessError,
    Processed, Runs, transcript_uploaded,
};
use sessionflow_pipeline::queue::{PipelineQueue, QueueConfig};
use sessionflow_pipeline::runner::Stages;
use sessionflow_stages::blob::{BlobStore, LocalBlobs, raw_transcript_key};
use sessionflow_stages::stage::{RunEnd, RunReport};
use sessionflow_stages::store::{Lifecycle, Store, Transcript};
use sessionflow_stages::summarize::ExtractiveSummarizer;
use sqlx::PgPool;
use tokio::sync::mpsc;

fn start(session: &str) -> Event {
    event(
        "session.start",
        session,
        json!({"cc_session_id": session, "cwd": "/src/app", "git_branch": "main", "model": "claude-opus-4-5", "source": "startup"}),
    )
}

fn end(session: &str) -> Event {
    event(
        "session.end",
        session,
        json!({"cc_session_id": session, "duration_ms": 5000, "end_reason": "exit"}),
    )
}

struct World {
    runs: Runs,
    store: Store,
    blobs: Arc<dyn BlobStore>,
    queue: Arc<PipelineQueue>,
    processor: EventProcessor,
    outcomes: mpsc::UnboundedReceiver<(String, Result<RunReport, RunEnd>)>,
    _dir: tempfile::TempDir,
}

fn world(pool: PgPool) -> World {
    world_with(pool, QueueConfig::default())
}

fn world_with(pool: PgPool, config: QueueConfig) -> World {
    let store = Store::from_pool(pool.clone());
    let dir = tempfile::tempdir().unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobs::new(dir.path()));
    let stages = Stages::new(
        &store,
        &blobs,
        Arc::new(ExtractiveSummarizer),
        "test-worker",
    );
    let (tx, outcomes) = mpsc::unbounded_channel();
    let queue = Arc::new(PipelineQueue::start_with_hook(
        stages,
        config,
        Box::new(move |id, outcome| {
            let _ = tx.send((id.to_owned(), outcome.clone()));
        }),
    ));
    let runs = Runs::new(
        Store::from_pool(pool.clone()),
        Arc::clone(&queue),
        "test-worker",
    );
    let processor =
        EventProcessor::new(pool, HandlerRegistry::standard(runs.clone()), "test-worker");
    World {
        runs,
        store,
        blobs,
        queue,
        processor,
        outcomes,
        _dir: dir,
    }
}

impl World {
    /// Stores a transcript for `session`, as the API does before it records it: its key.
    async fn put_transcript(&self, session: &str) -> String {
        let key = raw_transcript_key(
            &Id::parse("workspace_id", "w1").unwrap(),
            &Id::parse("session_id", session).unwrap(),
        );
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/transcripts/cc2.1.14-headless-hello-world-script.jsonl");
        self.blobs
            .put(&key, Bytes::from(std::fs::read(path).unwrap()))
            .await
            .unwrap();
        key
    }

    async fn upload(&self, session: &str) -> bool {
        let key = self.put_transcript(session).await;
        let upload = Transcript {
            key: &key,
            size: None,
            sha256: None,
            parts: None,
        };
        transcript_uploaded(&self.runs, "w1", session, upload)
            .await
            .unwrap()
    }

    async fn lifecycle(&self, session: &str) -> Option<Lifecycle> {
        self.store
            .session(session)
            .await
            .unwrap()
            .map(|s| s.lifecycle)
    }

    /// The sessions of the next `n` runs to end, each of which must have succeeded, sorted.
    async fn succeeded(&mut self, n: usize) -> Vec<String> {
        let mut done = Vec::new();
        for _ in 0..n {
            let (id, outcome) = self.ended().await;
            assert!(outcome.is_ok(), "{id}: {outcome:?}");
            done.push(id);
        }
        done.sort();
        done
    }

    async fn ended(&mut self) -> (String, Result<RunReport, RunEnd>) {
        tokio::time::timeout(Duration::from_secs(30), self.outcomes.recv())
            .await
            .unwrap()
            .unwrap()
    }
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Two text columns of the one row `sql` selects.
async fn texts(pool: &PgPool, sql: &'static str) -> (Option<String>, Option<String>) {
    sqlx::query_as(sql).fetch_one(pool).await.unwrap()
}

/// Events recorded and not handled.
async fn unhandled(pool: &PgPool) -> i64 {
    count(pool, "SELECT count(*) FROM events WHERE handled_at IS NULL").await
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn an_event_is_recorded_once_and_session_start_creates_the_session(pool: PgPool) {
    let w = world(pool.clone());
    let e = start("s1");
    assert_eq!(w.processor.process(&e).await.unwrap(), Processed::Handled);
    assert_eq!(w.processor.process(&e).await.unwrap(), Processed::Duplicate);
    assert_eq!(count(&pool, "SELECT count(*) FROM events").await, 1);
    assert_eq!(w.lifecycle("s1").await, Some(Lifecycle::Detected));
    let (cwd, model, source): (String, String, String) =
        sqlx::query_as("SELECT cwd, model, source FROM sessions WHERE id = 's1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (cwd.as_str(), model.as_str(), source.as_str()),
        ("/src/app", "claude-opus-4-5", "startup")
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM devices WHERE id = 'laptop'").await,
        1
    );
    let stats = w.processor.stats();
    assert_eq!(
        stats.processed.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        stats.duplicates.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn end_then_upload_starts_the_pipeline(pool: PgPool) {
    let mut w = world(pool);
    w.processor.process(&start("s1")).await.unwrap();
    w.processor.process(&end("s1")).await.unwrap();
    assert_eq!(w.lifecycle("s1").await, Some(Lifecycle::Ended));
    assert_eq!(
        w.queue.metrics().snapshot().enqueued,
        0,
        "no transcript yet"
    );
    assert!(
        w.upload("s1").await,
        "the upload came last: it starts the run"
    );
    let (id, outcome) = w.ended().await;
    assert_eq!(id, "s1");
    assert!(outcome.unwrap().summarized);
    assert_eq!(w.lifecycle("s1").await, Some(Lifecycle::Summarized));
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn upload_then_end_starts_the_pipeline(pool: PgPool) {
    let mut w = world(pool);
    w.processor.process(&start("s1")).await.unwrap();
    assert!(!w.upload("s1").await, "not ended yet");
    w.processor.process(&end("s1")).await.unwrap();
    let (id, outcome) = w.ended().await;
    assert_eq!(id, "s1");
    assert!(outcome.is_ok());
    assert_eq!(w.queue.metrics().snapshot().enqueued, 1);
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn racing_end_and_upload_start_each_pipeline_exactly_once(pool: PgPool) {
    let mut w = world(pool);
    let sessions: Vec<String> = (0..20).map(|i| format!("s{i:02}")).collect();
    for s in &sessions {
        w.processor.process(&start(s)).await.unwrap();
    }
    let w_ref = &w;
    let races = sessions.iter().map(|s| async move {
        let e = end(s);
        tokio::join!(w_ref.processor.process(&e), w_ref.upload(s))
    });
    for (processed, _) in futures::future::join_all(races).await {
        processed.unwrap();
    }
    let done = w.succeeded(20).await;
    assert_eq!(done, sessions);
    assert_eq!(
        w.queue.metrics().snapshot().enqueued,
        20,
        "each exactly once"
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn an_end_without_a_start_creates_an_ended_session(pool: PgPool) {
    let w = world(pool);
    w.processor.process(&end("s1")).await.unwrap();
    assert_eq!(w.lifecycle("s1").await, Some(Lifecycle::Ended));
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn other_types_are_stored_and_invalid_events_are_refused(pool: PgPool) {
    let w = world(pool.clone());
    let custom = event("tool.used", "s1", json!({"tool": "Bash"}));
    assert_eq!(
        w.processor.process(&custom).await.unwrap(),
        Processed::Stored
    );
    let compact = event("session.compact", "s1", json!({"cc_session_id": "s1"}));
    assert_eq!(
        w.processor.process(&compact).await.unwrap(),
        Processed::Stored
    );
    let bad = event("session.end", "s1", json!({"end_reason": "exit"}));
    let err = w.processor.process(&bad).await.unwrap_err();
    assert!(matches!(err, ProcessError::Invalid(_)), "{err}");
    assert!(
        err.to_string().contains("missing field `cc_session_id`"),
        "{err}"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM events").await, 2);
    assert_eq!(unhandled(&pool).await, 0);
}

/// A handler that fails a set number of times, then succeeds.
struct Flaky {
    failures_left: std::sync::atomic::AtomicU32,
}

impl Handler for Flaky {
    fn handle<'a>(
        &'a self,
        _: &'a Event,
        _: &'a Payload,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        async move {
            let left = self.failures_left.load(std::sync::atomic::Ordering::SeqCst);
            if left > 0 {
                self.failures_left
                    .store(left - 1, std::sync::atomic::Ordering::SeqCst);
                return Err(HandlerError("downstream unavailable".into()));
            }
            Ok(())
        }
        .boxed()
    }
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_failed_handler_keeps_the_event_and_runs_again_on_redelivery(pool: PgPool) {
    let registry = HandlerRegistry::new().register(
        "tool.used",
        Flaky {
            failures_left: 1.into(),
        },
    );
    let processor = EventProcessor::new(pool.clone(), registry, "test-worker");
    let e = event("tool.used", "s1", json!({}));
    let err = processor.process(&e).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "event {} (tool.used): handler failed: downstream unavailable",
            e.id
        )
    );
    let error: Option<String> = sqlx::query_scalar("SELECT handler_error FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        error.as_deref(),
        Some("downstream unavailable"),
        "the event stays recorded"
    );
    assert_eq!(
        processor.process(&e).await.unwrap(),
        Processed::Handled,
        "redelivery runs it again"
    );
    assert_eq!(processor.process(&e).await.unwrap(), Processed::Duplicate);
}

/// Fails the events of session `bad`; records the order it saw the others in.
struct FailsOne {
    seen: std::sync::Mutex<Vec<String>>,
}

impl Handler for FailsOne {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        _: &'a Payload,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        async move {
            if event.session_id.as_deref() == Some("bad") {
                return Err(HandlerError("this one is broken".into()));
            }
            self.seen.lock().unwrap().push(event.id.clone());
            Ok(())
        }
        .boxed()
    }
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_batch_records_every_event_once_and_a_failure_stays_its_own(pool: PgPool) {
    let registry = HandlerRegistry::new().register(
        "tool.used",
        FailsOne {
            seen: Default::default(),
        },
    );
    let processor = EventProcessor::new(pool.clone(), registry, "test-worker");
    let batch: Vec<Event> = ["a", "bad", "b", "c"]
        .iter()
        .map(|s| event("tool.used", s, json!({})))
        .chain([event("note.kept", "d", json!({}))])
        .collect();
    let mut with_copies = batch.clone();
    with_copies.push(batch[0].clone());
    let outcomes = processor.process_batch(&with_copies).await;
    assert_eq!(outcomes.len(), 6);
    assert_eq!(outcomes[0].as_ref().unwrap(), &Processed::Handled);
    assert!(
        matches!(&outcomes[1], Err(ProcessError::Handler { error, .. }) if error == "this one is broken"),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(outcomes[2].as_ref().unwrap(), &Processed::Handled);
    assert_eq!(outcomes[3].as_ref().unwrap(), &Processed::Handled);
    assert_eq!(outcomes[4].as_ref().unwrap(), &Processed::Stored);
    assert_eq!(
        outcomes[5].as_ref().unwrap(),
        &Processed::Duplicate,
        "a copy in the same batch"
    );
    let rows: Vec<(String, bool, Option<String>)> =
        sqlx::query_as("SELECT id, handled_at IS NOT NULL, handler_error FROM events ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 5, "each event recorded once");
    for (id, handled, error) in rows {
        if id == batch[1].id {
            assert_eq!(
                (handled, error.as_deref()),
                (false, Some("this one is broken"))
            );
        } else {
            assert_eq!((handled, error), (true, None), "{id}");
        }
    }
    // Again: the handled ones are duplicates, the failed one runs again (and fails again).
    let again = processor.process_batch(&batch).await;
    assert_eq!(again[0].as_ref().unwrap(), &Processed::Duplicate);
    assert!(again[1].is_err());
    assert_eq!(again[4].as_ref().unwrap(), &Processed::Duplicate);
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn starts_go_together_and_each_session_keeps_its_order(pool: PgPool) {
    let w = world(pool.clone());
    // s1 ends before it starts in this batch: its start must not jump ahead of its end.
    let mut batch: Vec<Event> = (0..50).map(|i| start(&format!("s{i:02}"))).collect();
    batch.insert(0, end("s01"));
    batch.push(start("s02"));
    let outcomes = w.processor.process_batch(&batch).await;
    assert!(
        outcomes.iter().all(|o| matches!(o, Ok(Processed::Handled))),
        "{outcomes:?}"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM sessions").await, 50);
    let (lifecycle, cwd): (String, Option<String>) =
        sqlx::query_as("SELECT lifecycle, cwd FROM sessions WHERE id = 's01'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (lifecycle.as_str(), cwd.as_deref()),
        ("ended", Some("/src/app")),
        "ended by its end, filled in by its start"
    );
    assert_eq!(
        texts(
            &pool,
            "SELECT source, git_branch FROM sessions WHERE id = 's33'"
        )
        .await,
        (Some("startup".into()), Some("main".into()))
    );
    assert_eq!(unhandled(&pool).await, 0);
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn ends_go_together_and_start_each_ready_session_once(pool: PgPool) {
    let mut w = world(pool.clone());
    let sessions: Vec<String> = (0..30).map(|i| format!("s{i:02}")).collect();
    let starts: Vec<Event> = sessions.iter().map(|s| start(s)).collect();
    w.processor.process_batch(&starts).await;
    for s in &sessions[..20] {
        assert!(!w.upload(s).await, "{s} has not ended yet");
    }
    let mut batch: Vec<Event> = sessions.iter().map(|s| end(s)).collect();
    // A second end of s05 later in the batch is handled alone and starts nothing; s40's end
    // comes after its start.
    batch.extend([end("s05"), start("s40"), end("s40")]);
    let outcomes = w.processor.process_batch(&batch).await;
    assert!(
        outcomes.iter().all(|o| matches!(o, Ok(Processed::Handled))),
        "{outcomes:?}"
    );
    assert_eq!(
        w.queue.metrics().snapshot().enqueued,
        20,
        "each session with its transcript, once"
    );
    let done = w.succeeded(20).await;
    assert_eq!(done, sessions[..20]);
    for s in sessions[20..].iter().map(String::as_str).chain(["s40"]) {
        assert_eq!(w.lifecycle(s).await, Some(Lifecycle::Ended), "{s}");
    }
    assert_eq!(
        texts(
            &pool,
            "SELECT source, end_reason FROM sessions WHERE id = 's40'"
        )
        .await,
        (Some("startup".into()), Some("exit".into()))
    );
    assert!(w.upload("s25").await, "s25 ended: its upload starts it");
    assert_eq!(w.ended().await.0, "s25");
    assert_eq!(unhandled(&pool).await, 0);
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn sessions_ready_beyond_the_queues_room_wait_for_the_sweep_and_run_once(pool: PgPool) {
    let config = QueueConfig {
        capacity: 4,
        max_runs: 1,
    };
    let mut w = world_with(pool.clone(), config);
    let sessions: Vec<String> = (0..12).map(|i| format!("s{i:02}")).collect();
    for s in &sessions {
        w.processor.process(&start(s)).await.unwrap();
        w.upload(s).await;
    }
    let ends: Vec<Event> = sessions.iter().map(|s| end(s)).collect();
    for outcome in w.processor.process_batch(&ends).await {
        outcome.unwrap();
    }
    let queued = w.queue.metrics().snapshot();
    assert!(queued.dropped > 0, "{queued:?}");
    assert_eq!(queued.enqueued + queued.dropped, 12, "{queued:?}");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM sessions WHERE enqueued_at IS NULL"
        )
        .await,
        queued.dropped as i64,
        "only those the queue took are marked queued"
    );
    let mut done = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while done.len() < 12 {
        assert!(tokio::time::Instant::now() < deadline, "ran only {done:?}");
        sessionflow_pipeline::sweeps::recover(
            &w.store,
            &w.queue,
            Duration::from_secs(600),
            Duration::from_secs(600),
            "test-worker",
        )
        .await
        .unwrap();
        while let Ok(Some((id, outcome))) =
            tokio::time::timeout(Duration::from_millis(200), w.outcomes.recv()).await
        {
            assert!(outcome.is_ok(), "{id}: {outcome:?}");
            done.push(id);
        }
    }
    done.sort();
    assert_eq!(done, sessions, "each once");
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn an_event_the_server_raises_is_recorded_and_handled_in_one_commit(pool: PgPool) {
    let mut w = world(pool.clone());
    w.processor.process(&start("s1")).await.unwrap();
    w.processor.process(&end("s1")).await.unwrap();
    let key = w.put_transcript("s1").await;
    let uploaded = event(
        "transcript.uploaded",
        "s1",
        json!({"key": key, "size": 1, "sha256": "ab"}),
    );
    assert_eq!(
        w.processor.process_own(&uploaded).await.unwrap(),
        Processed::Handled
    );
    let recorded: (bool, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT handled_at IS NOT NULL, handler_error, leased_by FROM events WHERE id = $1",
    )
    .bind(&uploaded.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        recorded,
        (true, None, None),
        "recorded handled, leased to no one"
    );
    let (id, outcome) = w.ended().await;
    assert_eq!(id, "s1");
    assert!(
        outcome.unwrap().summarized,
        "the upload came last: it started the run"
    );
    assert_eq!(
        w.processor.process_own(&uploaded).await.unwrap(),
        Processed::Duplicate
    );
    assert_eq!(w.queue.metrics().snapshot().enqueued, 1, "started once");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM events WHERE type = 'transcript.uploaded'"
        )
        .await,
        1
    );
    // A type whose handler cannot act inside the transaction goes the usual way.
    let reparse = event("session.reparse", "s1", json!({}));
    assert_eq!(
        w.processor.process_own(&reparse).await.unwrap(),
        Processed::Handled,
        "a type without handling inside the transaction goes the usual way"
    );
}

/// A session.start handler whose batch statement always fails: each start then goes alone.
struct NoBatches(Store);

impl Handler for NoBatches {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        _: &'a Payload,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        async move {
            let id = event.session_id.as_deref().unwrap_or_default();
            self.0
                .create_session(&sessionflow_stages::store::NewSession {
                    id,
                    workspace_id: "w1",
                    ..Default::default()
                })
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn handle_many<'a>(
        &'a self,
        _: &'a [(&'a Event, &'a Payload)],
    ) -> Option<BoxFuture<'a, Result<(), HandlerError>>> {
        Some(async { Err(HandlerError("the batch statement failed".into())) }.boxed())
    }
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn starts_that_fail_together_are_handled_one_by_one(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.ensure_workspace("w1").await.unwrap();
    let registry = HandlerRegistry::new().register("session.start", NoBatches(store));
    let processor = EventProcessor::new(pool.clone(), registry, "test-worker");
    let batch: Vec<Event> = (0..5).map(|i| start(&format!("s{i}"))).collect();
    let outcomes = processor.process_batch(&batch).await;
    assert!(
        outcomes.iter().all(|o| matches!(o, Ok(Processed::Handled))),
        "{outcomes:?}"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM sessions").await, 5);
}
