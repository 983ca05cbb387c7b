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
        QueueConfig::default(),
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
    async fn upload(&self, session: &str) -> bool {
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
    let mut done = Vec::new();
    for _ in 0..20 {
        let (id, outcome) = w.ended().await;
        assert!(outcome.is_ok(), "{id}: {outcome:?}");
        done.push(id);
    }
    done.sort();
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
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM events WHERE handled_at IS NULL"
        )
        .await,
        0
    );
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
