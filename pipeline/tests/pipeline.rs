//! The pipeline end to end against real Postgres (a fresh database per test), the local blob
//! store and the real S3-compatible s3s-fs: fetch → download → parse → persist → summarize →
//! backup, the queue's bounds, and the sweeps.

// These tests talk to S3: without the feature they would have nothing to run, so the suite
// refuses to build rather than skip them (scripts/test.sh builds with --all-features).
#[cfg(not(feature = "s3"))]
compile_error!("the S3 tests need the `s3` feature: cargo test --all-features");

use sessionflow_protocol::ids::Id;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use sessionflow_pipeline::events::{EventProcessor, HandlerRegistry};
use sessionflow_pipeline::queue::{PipelineQueue, QueueConfig};
use sessionflow_pipeline::runner::Stages;
use sessionflow_pipeline::sweeps;
use sessionflow_stages::blob::{self, BlobStore, LocalBlobs, parsed_key, raw_transcript_key};
use sessionflow_stages::stage::{RunEnd, RunReport};
use sessionflow_stages::store::{Lifecycle, NewSession, ParseStatus, Store};
use sessionflow_stages::summarize::{
    AnthropicConfig, AnthropicSummarizer, ExtractiveSummarizer, Summarizer, SummaryError,
};
use sessionflow_stages::transcript::ParsedTranscript;
use sqlx::PgPool;
use tokio::sync::mpsc;

type Outcome = (String, Result<RunReport, RunEnd>);

fn fixture(name: &str) -> Bytes {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/transcripts")
        .join(name);
    Bytes::from(std::fs::read(path).expect(name))
}

const HELLO: &str = "cc2.1.14-headless-hello-world-script.jsonl";
const PORT: &str = "cc2.1.14-headless-python-to-rust-port.jsonl";

struct Harness {
    store: Store,
    blobs: Arc<dyn BlobStore>,
    queue: PipelineQueue,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    _dir: Option<tempfile::TempDir>,
}

async fn harness_with(
    pool: PgPool,
    blobs: Option<Arc<dyn BlobStore>>,
    summarizer: Arc<dyn Summarizer>,
    config: QueueConfig,
) -> Harness {
    let store = Store::from_pool(pool);
    // The harness's runs are those of a live worker, as far as the rescue can tell.
    sqlx::query(
        "INSERT INTO workers (id, mode) VALUES ('test-worker', 'test') \
         ON CONFLICT (id) DO UPDATE SET last_seen = now()",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let (dir, blobs) = match blobs {
        Some(blobs) => (None, blobs),
        None => {
            let dir = tempfile::tempdir().unwrap();
            let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobs::new(dir.path()));
            (Some(dir), blobs)
        }
    };
    let (tx, outcomes) = mpsc::unbounded_channel();
    let queue = PipelineQueue::start_with_hook(
        Stages::new(&store, &blobs, summarizer, "test-worker"),
        config,
        Box::new(move |id, outcome| {
            let _ = tx.send((id.to_owned(), outcome.clone()));
        }),
    );
    Harness {
        store,
        blobs,
        queue,
        outcomes,
        _dir: dir,
    }
}

async fn harness(pool: PgPool) -> Harness {
    harness_with(
        pool,
        None,
        Arc::new(ExtractiveSummarizer),
        QueueConfig::default(),
    )
    .await
}

impl Harness {
    /// An ended session whose transcript (if any) is in the blob store.
    async fn session(&self, id: &str, transcript: Option<Bytes>) {
        let key = raw_transcript_key(
            &Id::parse("workspace_id", "w1").unwrap(),
            &Id::parse("session_id", id).unwrap(),
        );
        if let Some(bytes) = transcript {
            self.blobs.put(&key, bytes).await.unwrap();
        }
        self.store
            .create_session(&NewSession {
                id,
                workspace_id: "w1",
                lifecycle: Some(Lifecycle::Ended),
                transcript_key: Some(&key),
                ..NewSession::default()
            })
            .await
            .unwrap();
    }

    async fn next_outcome(&mut self) -> Outcome {
        tokio::time::timeout(Duration::from_secs(30), self.outcomes.recv())
            .await
            .expect("a run ends within 30 s")
            .expect("the runner is alive")
    }

    async fn run(&mut self, id: &str) -> Result<RunReport, RunEnd> {
        assert!(self.queue.enqueue(id));
        let (ended, outcome) = self.next_outcome().await;
        assert_eq!(ended, id);
        outcome
    }

    async fn rows(&self, id: &str) -> (i64, i64) {
        let pool = self.store.pool();
        let m =
            sqlx::query_scalar("SELECT count(*) FROM transcript_messages WHERE session_id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap();
        let b = sqlx::query_scalar("SELECT count(*) FROM content_blocks WHERE session_id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
        (m, b)
    }
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_full_run_ends_summarized_with_stats_rows_and_a_backup(pool: PgPool) {
    let mut h = harness(pool).await;
    h.session("s1", Some(fixture(PORT))).await;
    let report = h.run("s1").await.unwrap();
    assert_eq!(
        report,
        RunReport {
            session_id: "s1".into(),
            messages: 80,
            summarized: true,
            backed_up: true
        }
    );
    let row = h.store.session("s1").await.unwrap().unwrap();
    assert_eq!(row.lifecycle, Lifecycle::Summarized);
    assert_eq!(row.parse_status, ParseStatus::Completed);
    assert_eq!(row.total_messages, 80);
    assert_eq!((row.tokens_in, row.tokens_out), (38, 563));
    assert!(
        row.initial_prompt
            .as_deref()
            .unwrap()
            .starts_with("Port this Python project to Rust.")
    );
    assert!(
        row.summary
            .as_deref()
            .unwrap()
            .starts_with("Asked: Port this Python project")
    );
    assert_eq!(h.rows("s1").await, (80, 96));
    let backup = h
        .blobs
        .get(&parsed_key(
            &Id::parse("workspace_id", "w1").unwrap(),
            &Id::parse("session_id", "s1").unwrap(),
        ))
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&backup).unwrap();
    assert_eq!(json["stats"]["total_messages"], 80);
    let snapshot = h.queue.metrics().snapshot();
    assert_eq!(snapshot.completed, 1);
    assert!(
        snapshot
            .stages
            .iter()
            .all(|s| s.done == 1 && s.in_flight == 0 && s.failed == 0)
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_full_run_through_s3(pool: PgPool) {
    for (name, value) in [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
        ("AWS_ACCESS_KEY_ID", "sessionflow"),
        ("AWS_SECRET_ACCESS_KEY", "sessionflow-secret"),
    ] {
        if std::env::var_os(name).is_none() {
            // SAFETY: set before this test starts any thread that reads the environment.
            unsafe { std::env::set_var(name, value) };
        }
    }
    let bucket = format!("pipeline-{}-{}", std::process::id(), rand_suffix());
    let s3 = blob::S3Blobs::from_env(&format!("{bucket}/sf"), &format!("s3://{bucket}/sf"))
        .await
        .unwrap();
    s3.create_bucket_if_missing()
        .await
        .expect("s3s-fs is up (scripts/services.sh)");
    let mut h = harness_with(
        pool,
        Some(Arc::new(s3)),
        Arc::new(ExtractiveSummarizer),
        QueueConfig::default(),
    )
    .await;
    h.session("s1", Some(fixture(HELLO))).await;
    let report = h.run("s1").await.unwrap();
    assert!(report.summarized && report.backed_up);
    assert_eq!(h.rows("s1").await, (8, 8));
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn no_transcript_key_stops_and_changes_nothing(pool: PgPool) {
    let mut h = harness(pool).await;
    h.store
        .create_session(&NewSession {
            id: "s1",
            workspace_id: "w1",
            lifecycle: Some(Lifecycle::Ended),
            ..NewSession::default()
        })
        .await
        .unwrap();
    let before = h.store.session("s1").await.unwrap();
    let outcome = h.run("s1").await;
    assert_eq!(
        outcome,
        Err(RunEnd::Stopped(
            "session s1 has no transcript uploaded".into()
        ))
    );
    assert_eq!(h.store.session("s1").await.unwrap(), before);
    assert_eq!(
        h.run("unknown").await,
        Err(RunEnd::Stopped("session unknown not found".into()))
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_failed_download_fails_the_session_with_the_reason(pool: PgPool) {
    let mut h = harness(pool).await;
    h.session("s1", None).await;
    let outcome = h.run("s1").await;
    let expected = "S3 download failed: blob transcripts/w1/s1/raw.jsonl not found";
    assert_eq!(outcome, Err(RunEnd::Failed(expected.into())));
    let row = h.store.session("s1").await.unwrap().unwrap();
    assert_eq!(row.lifecycle, Lifecycle::Failed);
    assert_eq!(row.parse_status, ParseStatus::Failed);
    assert_eq!(row.parse_error.as_deref(), Some(expected));
    assert_eq!(h.queue.metrics().snapshot().stages[1].failed, 1);
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn corrupt_lines_are_skipped_and_the_session_still_parses(pool: PgPool) {
    let mut h = harness(pool).await;
    let mut bytes = fixture(HELLO).to_vec();
    bytes.extend_from_slice(b"{\"type\":\"user\",\"message\":{\"content\":\"cut off\n");
    bytes.extend_from_slice(b"not json\n");
    h.session("s1", Some(Bytes::from(bytes))).await;
    assert!(h.run("s1").await.is_ok());
    let row = h.store.session("s1").await.unwrap().unwrap();
    assert_eq!(row.lifecycle, Lifecycle::Summarized);
    assert_eq!(row.total_messages, 8, "only the valid lines count");
    assert_eq!(h.rows("s1").await, (8, 8));
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_failed_summary_leaves_the_session_parsed_with_its_data(pool: PgPool) {
    // The real Anthropic summarizer, pointed at a port where nothing listens.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut config = AnthropicConfig::new("key".into(), None);
    config.base_url = closed;
    let summarizer = Arc::new(AnthropicSummarizer::new(config).unwrap());
    let mut h = harness_with(pool, None, summarizer, QueueConfig::default()).await;
    h.session("s1", Some(fixture(HELLO))).await;
    let report = h.run("s1").await.unwrap();
    assert!(!report.summarized && report.backed_up);
    let row = h.store.session("s1").await.unwrap().unwrap();
    assert_eq!(
        (row.lifecycle, row.parse_status),
        (Lifecycle::Parsed, ParseStatus::Completed)
    );
    assert_eq!(row.summary, None);
    assert_eq!(h.rows("s1").await, (8, 8));

    // Ten minutes later the retry sweep summarizes it, without touching its rows.
    sqlx::query("UPDATE sessions SET updated_at = now() - interval '11 minutes' WHERE id = 's1'")
        .execute(h.store.pool())
        .await
        .unwrap();
    let done = sweeps::retry_summaries(
        &h.store,
        h.blobs.as_ref(),
        &ExtractiveSummarizer,
        sweeps::SUMMARY_RETRY_AFTER,
        "test-worker",
    )
    .await
    .unwrap();
    assert_eq!(done, 1);
    let row = h.store.session("s1").await.unwrap().unwrap();
    assert_eq!(row.lifecycle, Lifecycle::Summarized);
    assert!(
        row.summary
            .unwrap()
            .starts_with("Asked: Write a shell script")
    );
    assert_eq!(h.rows("s1").await, (8, 8));
}

/// A summarizer during whose work a reparse of the session is asked for (the store's own reset,
/// as `POST /api/sessions/{id}/reparse` does it).
struct ReparsedMeanwhile {
    store: Store,
}

impl Summarizer for ReparsedMeanwhile {
    fn summarize<'a>(
        &'a self,
        _parsed: &'a ParsedTranscript,
    ) -> BoxFuture<'a, Result<String, SummaryError>> {
        async move {
            assert!(self.store.reset_for_reparse("s1").await.unwrap());
            Ok("a summary of rows that are gone".to_owned())
        }
        .boxed()
    }

    fn name(&self) -> &'static str {
        "reparsed"
    }
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_session_reset_while_summarizing_is_not_reported_summarized(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let summarizer = Arc::new(ReparsedMeanwhile { store });
    let mut h = harness_with(pool, None, summarizer, QueueConfig::default()).await;
    h.session("s1", Some(fixture(HELLO))).await;
    let report = h.run("s1").await.unwrap();
    assert!(!report.summarized, "no summary for rows that are gone");
    let row = h.store.session("s1").await.unwrap().unwrap();
    assert_eq!(
        (row.lifecycle, row.parse_status, row.summary, row.claim),
        (Lifecycle::Ended, ParseStatus::Pending, None, None)
    );
    assert_eq!(h.rows("s1").await, (0, 0));
    // The reparse it waits for makes the rows and the summary again.
    let mut again = harness_with(
        h.store.pool().clone(),
        Some(Arc::clone(&h.blobs)),
        Arc::new(ExtractiveSummarizer),
        QueueConfig::default(),
    )
    .await;
    let report = again.run("s1").await.unwrap();
    assert!(report.summarized);
    assert_eq!(again.rows("s1").await, (8, 8));
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn running_a_parsed_session_again_is_a_no_op(pool: PgPool) {
    let mut h = harness(pool).await;
    h.session("s1", Some(fixture(HELLO))).await;
    h.run("s1").await.unwrap();
    let before = h.store.session("s1").await.unwrap();
    assert_eq!(
        h.run("s1").await,
        Err(RunEnd::Stopped(
            "session s1 is summarized, not ended".into()
        ))
    );
    assert_eq!(h.store.session("s1").await.unwrap(), before);
    assert_eq!(h.rows("s1").await, (8, 8));
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn concurrent_runs_for_one_session_parse_it_once(pool: PgPool) {
    let mut h = harness(pool).await;
    h.session("s1", Some(fixture(PORT))).await;
    for _ in 0..6 {
        assert!(h.queue.enqueue("s1"));
    }
    let mut completed = 0;
    for _ in 0..6 {
        match h.next_outcome().await.1 {
            Ok(_) => completed += 1,
            Err(RunEnd::Stopped(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(completed, 1);
    assert_eq!(h.rows("s1").await, (80, 96), "no duplicate rows");
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn an_empty_transcript_parses_to_zero_stats(pool: PgPool) {
    let mut h = harness(pool).await;
    h.session("s1", Some(Bytes::new())).await;
    h.run("s1").await.unwrap();
    let row = h.store.session("s1").await.unwrap().unwrap();
    assert_eq!(row.lifecycle, Lifecycle::Summarized);
    assert_eq!(
        (row.total_messages, row.tokens_in, row.tokens_out),
        (0, 0, 0)
    );
    assert_eq!(row.summary.as_deref(), Some("No prompt was recorded."));
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_reparse_after_the_transcript_changed_replaces_the_rows(pool: PgPool) {
    let mut h = harness(pool).await;
    h.session("s1", Some(fixture(HELLO))).await;
    h.run("s1").await.unwrap();
    assert_eq!(h.rows("s1").await, (8, 8));
    h.blobs
        .put(
            &raw_transcript_key(
                &Id::parse("workspace_id", "w1").unwrap(),
                &Id::parse("session_id", "s1").unwrap(),
            ),
            fixture(PORT),
        )
        .await
        .unwrap();
    assert!(h.store.reset_for_reparse("s1").await.unwrap());
    h.run("s1").await.unwrap();
    assert_eq!(h.rows("s1").await, (80, 96));
    let row = h.store.session("s1").await.unwrap().unwrap();
    assert_eq!(
        (row.lifecycle, row.total_messages),
        (Lifecycle::Summarized, 80)
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_run_abandoned_by_a_dead_worker_is_recovered_by_the_sweep(pool: PgPool) {
    let mut h = harness(pool).await;
    h.session("s1", Some(fixture(HELLO))).await;
    // A worker claimed it and died: parse_status stays `parsing`.
    h.store.claim_for_parse("s1", "test-worker").await.unwrap();
    assert_eq!(
        sweeps::recover(
            &h.store,
            &h.queue,
            sweeps::REQUEUE_AFTER,
            sweeps::STUCK_PARSING,
            "test-worker"
        )
        .await
        .unwrap(),
        0,
        "not stuck yet"
    );
    sqlx::query("UPDATE sessions SET updated_at = now() - interval '11 minutes' WHERE id = 's1'")
        .execute(h.store.pool())
        .await
        .unwrap();
    // An ended session whose run was never enqueued is found too.
    h.session("s2", Some(fixture(HELLO))).await;
    let enqueued = sweeps::recover(
        &h.store,
        &h.queue,
        sweeps::REQUEUE_AFTER,
        sweeps::STUCK_PARSING,
        "test-worker",
    )
    .await
    .unwrap();
    assert_eq!(enqueued, 2);
    let mut ended = vec![h.next_outcome().await, h.next_outcome().await];
    ended.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        ended.iter().all(|(_, outcome)| outcome.is_ok()),
        "{ended:?}"
    );
    for id in ["s1", "s2"] {
        let row = h.store.session(id).await.unwrap().unwrap();
        assert_eq!(row.lifecycle, Lifecycle::Summarized, "{id}");
    }
    // A second sweep finds nothing: none is run twice.
    assert_eq!(
        sweeps::recover(
            &h.store,
            &h.queue,
            sweeps::REQUEUE_AFTER,
            sweeps::STUCK_PARSING,
            "test-worker"
        )
        .await
        .unwrap(),
        0
    );
}

/// A summarizer that takes its time and counts how many summaries run at once.
struct SlowSummarizer {
    delay: Duration,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl SlowSummarizer {
    fn new(delay: Duration) -> Self {
        SlowSummarizer {
            delay,
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }
}

impl Summarizer for SlowSummarizer {
    fn summarize<'a>(
        &'a self,
        _parsed: &'a ParsedTranscript,
    ) -> BoxFuture<'a, Result<String, SummaryError>> {
        async move {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            Ok("slowly summarized".to_owned())
        }
        .boxed()
    }

    fn name(&self) -> &'static str {
        "slow"
    }
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_slow_summarizer_holds_the_pipeline_within_its_bounds(pool: PgPool) {
    let slow = Arc::new(SlowSummarizer::new(Duration::from_millis(150)));
    let config = QueueConfig {
        capacity: 50,
        max_runs: 3,
    };
    let mut h = harness_with(pool, None, Arc::clone(&slow) as Arc<dyn Summarizer>, config).await;
    for i in 0..60 {
        h.session(&format!("s{i:02}"), Some(fixture(HELLO))).await;
    }
    let mut accepted = 0;
    let mut peak_in_stages = 0;
    for i in 0..60 {
        if h.queue.enqueue(format!("s{i:02}")) {
            accepted += 1;
        }
        assert!(h.queue.depth() <= 50);
    }
    let snapshot = h.queue.metrics().snapshot();
    assert_eq!(snapshot.enqueued + snapshot.dropped, 60);
    assert_eq!(snapshot.enqueued, accepted);
    assert!(snapshot.dropped >= 60 - 50 - 3 - 1, "{snapshot:?}");
    for _ in 0..accepted {
        let in_stages: u64 = h
            .queue
            .metrics()
            .snapshot()
            .stages
            .iter()
            .map(|s| s.in_flight)
            .sum();
        peak_in_stages = peak_in_stages.max(in_stages);
        assert!(h.next_outcome().await.1.is_ok());
    }
    let snapshot = h.queue.metrics().snapshot();
    assert!(snapshot.runs_peak <= 3, "{snapshot:?}");
    assert_eq!(
        snapshot.runs_peak, 3,
        "the slow stage kept all three slots busy"
    );
    assert!(peak_in_stages <= 3, "{peak_in_stages}");
    assert!(slow.peak.load(Ordering::SeqCst) <= 3);
    assert_eq!(snapshot.completed, accepted);

    // The dropped ones are not lost: the recovery sweep enqueues them.
    let recovered = sweeps::recover(
        &h.store,
        &h.queue,
        sweeps::REQUEUE_AFTER,
        sweeps::STUCK_PARSING,
        "test-worker",
    )
    .await
    .unwrap() as u64;
    assert_eq!(recovered, snapshot.dropped);
    for _ in 0..recovered {
        assert!(h.next_outcome().await.1.is_ok());
    }
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE lifecycle <> 'summarized'")
            .fetch_one(h.store.pool())
            .await
            .unwrap();
    assert_eq!(left, 0);
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn stop_finishes_runs_in_flight_and_discards_the_waiting(pool: PgPool) {
    let slow = Arc::new(SlowSummarizer::new(Duration::from_millis(300)));
    let config = QueueConfig {
        capacity: 50,
        max_runs: 1,
    };
    let mut h = harness_with(pool, None, Arc::clone(&slow) as Arc<dyn Summarizer>, config).await;
    for i in 0..5 {
        h.session(&format!("s{i}"), Some(fixture(HELLO))).await;
        assert!(h.queue.enqueue(format!("s{i}")));
    }
    // Wait until the first run is summarizing, then stop.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while slow.running.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no run reached the summarizer"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.queue.stop().await;
    let (id, outcome) = h.next_outcome().await;
    assert_eq!(id, "s0");
    assert!(outcome.is_ok(), "the run in flight finished");
    assert!(h.outcomes.recv().await.is_none(), "nothing else ran");
    assert!(!h.queue.enqueue("s9"), "a stopped queue takes nothing");
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sessions WHERE lifecycle = 'ended' AND parse_status = 'pending'",
    )
    .fetch_one(h.store.pool())
    .await
    .unwrap();
    assert_eq!(waiting, 4, "left for the recovery sweep");
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn two_workers_sweeping_at_once_split_the_sessions(pool: PgPool) {
    let mut a = harness(pool.clone()).await;
    // Two workers share the database and the blob store.
    let mut b = harness_with(
        pool,
        Some(Arc::clone(&a.blobs)),
        Arc::new(ExtractiveSummarizer),
        QueueConfig::default(),
    )
    .await;
    for i in 0..30 {
        a.session(&format!("s{i:02}"), Some(fixture(HELLO))).await;
    }
    // Both are live workers (a worker beats before it takes work): neither may take what the
    // other just queued as a silent worker's.
    for worker in ["test-worker", "worker-b"] {
        sqlx::query(
            "INSERT INTO workers (id, mode, queue_depth, pipeline) VALUES ($1, 'worker', 0, '{}') ON CONFLICT (id) DO UPDATE SET last_seen = now()",
        )
        .bind(worker)
        .execute(a.store.pool())
        .await
        .unwrap();
    }
    let (got_a, got_b) = tokio::join!(
        sweeps::recover(
            &a.store,
            &a.queue,
            sweeps::REQUEUE_AFTER,
            sweeps::STUCK_PARSING,
            "test-worker"
        ),
        sweeps::recover(
            &b.store,
            &b.queue,
            sweeps::REQUEUE_AFTER,
            sweeps::STUCK_PARSING,
            "worker-b"
        ),
    );
    assert_eq!(
        got_a.unwrap() + got_b.unwrap(),
        30,
        "each session taken by one sweep"
    );
    let mut completed = 0;
    for h in [&mut a, &mut b] {
        let n = h.queue.metrics().snapshot().enqueued;
        for _ in 0..n {
            if h.next_outcome().await.1.is_ok() {
                completed += 1;
            }
        }
    }
    assert_eq!(completed, 30, "every session parsed exactly once");
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn the_sweep_loop_recovers_at_start_and_stops_when_told(pool: PgPool) {
    let store = Store::from_pool(pool);
    let dir = tempfile::tempdir().unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobs::new(dir.path()));
    let key = raw_transcript_key(
        &Id::parse("workspace_id", "w1").unwrap(),
        &Id::parse("session_id", "s1").unwrap(),
    );
    blobs.put(&key, fixture(HELLO)).await.unwrap();
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
    let (tx, mut outcomes) = mpsc::unbounded_channel::<Outcome>();
    let summarizer: Arc<dyn Summarizer> = Arc::new(ExtractiveSummarizer);
    let queue = Arc::new(PipelineQueue::start_with_hook(
        Stages::new(&store, &blobs, Arc::clone(&summarizer), "test-worker"),
        QueueConfig::default(),
        Box::new(move |id, outcome| {
            let _ = tx.send((id.to_owned(), outcome.clone()));
        }),
    ));
    let stop = tokio_util::sync::CancellationToken::new();
    let sweeping = sweeps::spawn(
        sweeps::Sweeper {
            events: Arc::new(EventProcessor::new(
                store.pool().clone(),
                HandlerRegistry::new(),
                "test-worker",
            )),
            store: store.clone(),
            queue: Arc::clone(&queue),
            blobs,
            summarizer,
            worker: "test-worker".to_owned(),
            every: Duration::from_secs(60),
        },
        stop.clone(),
    );
    let (id, outcome) = tokio::time::timeout(Duration::from_secs(30), outcomes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(id, "s1");
    assert!(outcome.is_ok());
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), sweeping)
        .await
        .unwrap()
        .unwrap();
}

/// A backlog far larger than the queue (a backfill) drains at the pipeline's pace: each time
/// the queue is half empty after a drop, the sweep takes the next part, without waiting for its
/// hourly tick here.
#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_backlog_larger_than_the_queue_drains_without_waiting_for_the_clock(pool: PgPool) {
    let config = QueueConfig {
        capacity: 5,
        max_runs: 2,
    };
    let h = harness_with(pool, None, Arc::new(ExtractiveSummarizer), config).await;
    for i in 0..40 {
        h.session(&format!("s{i:02}"), Some(fixture(HELLO))).await;
    }
    let queue = Arc::new(h.queue);
    let stop = tokio_util::sync::CancellationToken::new();
    let sweeping = sweeps::spawn(
        sweeps::Sweeper {
            events: Arc::new(EventProcessor::new(
                h.store.pool().clone(),
                HandlerRegistry::new(),
                "test-worker",
            )),
            store: h.store.clone(),
            queue: Arc::clone(&queue),
            blobs: Arc::clone(&h.blobs),
            summarizer: Arc::new(ExtractiveSummarizer),
            worker: "test-worker".to_owned(),
            every: Duration::from_secs(3600),
        },
        stop.clone(),
    );
    // What a burst of session.end events does: most are dropped.
    let accepted = (0..40)
        .filter(|i| queue.enqueue(format!("s{i:02}")))
        .count();
    assert!(accepted <= 5 + 2, "{accepted}");
    let mut outcomes = h.outcomes;
    let mut summarized = std::collections::BTreeSet::new();
    while summarized.len() < 40 {
        let (id, outcome) = tokio::time::timeout(Duration::from_secs(30), outcomes.recv())
            .await
            .expect("the backlog keeps moving without the hourly sweep")
            .unwrap();
        if outcome.is_ok() {
            summarized.insert(id);
        }
    }
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE lifecycle <> 'summarized'")
            .fetch_one(h.store.pool())
            .await
            .unwrap();
    assert_eq!(left, 0);
    stop.cancel();
    sweeping.await.unwrap();
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn an_upload_staged_by_a_writer_that_died_is_removed_after_an_hour(pool: PgPool) {
    let h = harness(pool).await;
    let stale = "transcripts/w1/s1/upload-01STALE.tmp";
    let fresh = "transcripts/w1/s2/upload-01FRESH.tmp";
    for key in [stale, fresh] {
        h.blobs.put(key, Bytes::from_static(b"half")).await.unwrap();
        h.store.stage_upload(key).await.unwrap();
    }
    sqlx::query(
        "UPDATE staged_uploads SET started_at = now() - interval '61 minutes' WHERE key = $1",
    )
    .bind(stale)
    .execute(h.store.pool())
    .await
    .unwrap();
    let removed = sweeps::remove_stale_uploads(&h.store, h.blobs.as_ref(), sweeps::STALE_UPLOAD)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert!(
        h.blobs.size(stale).await.unwrap().is_none(),
        "the stale one is gone"
    );
    assert_eq!(
        h.blobs.size(fresh).await.unwrap(),
        Some(4),
        "a recent one stays"
    );
    let left: Vec<String> = sqlx::query_scalar("SELECT key FROM staged_uploads")
        .fetch_all(h.store.pool())
        .await
        .unwrap();
    assert_eq!(left, [fresh]);
}
