//! End-to-end pipeline throughput: 1 000 sessions through fetch → download → parse → persist →
//! summarize → backup with the local blob store and the extractive summarizer, three at a time,
//! into Postgres (database `sessionflow_bench` on `DATABASE_URL`'s server). Two corpora: the 13
//! fixtures cycled (the reference pipeline's benchmark) and 1 000 generated sessions. Prints
//! sessions/s, messages/s, rows/s and the peak resident memory of the run.
//!
//! Run with `scripts/services.sh` sourced, then `cargo bench --bench pipeline`.

use sessionflow_protocol::ids::Id;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use sessionflow_pipeline::queue::{PipelineQueue, QueueConfig};
use sessionflow_pipeline::runner::Stages;
use sessionflow_stages::blob::{BlobStore, LocalBlobs, raw_transcript_key};
use sessionflow_stages::store::{Lifecycle, NewSession, Store};
use sessionflow_stages::summarize::ExtractiveSummarizer;
use sessionflow_stages::{corpus, redact};
use tokio::sync::mpsc;

const SESSIONS: usize = 1_000;

fn bench_url() -> String {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base);
    format!("{base}/sessionflow_bench")
}

/// Peak resident memory (kB) since the last [`reset_peak_memory`].
fn peak_memory_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn reset_peak_memory() {
    // Writing 5 to clear_refs resets the peak resident set size (Linux).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// `transcripts` is consumed lazily, each uploaded as it is made, so the corpus is never held
/// in memory.
/// Runs the sessions through the pipeline, secrets redacted or not.
async fn run(name: &str, store: &Store, transcripts: impl Iterator<Item = Bytes>, redact: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobs::new(dir.path()));
    sqlx::query("TRUNCATE sessions CASCADE")
        .execute(store.pool())
        .await
        .expect("truncate");
    let mut bytes = 0;
    for (i, transcript) in transcripts.enumerate() {
        bytes += transcript.len();
        let id = format!("{name}-{i}");
        let key = raw_transcript_key(
            &Id::parse("workspace_id", "bench").unwrap(),
            &Id::parse("session_id", &id).unwrap(),
        );
        blobs.put(&key, transcript).await.expect("upload");
        store
            .create_session(&NewSession {
                id: &id,
                workspace_id: "bench",
                lifecycle: Some(Lifecycle::Ended),
                transcript_key: Some(&key),
                ..NewSession::default()
            })
            .await
            .expect("session");
    }
    let mut stages = Stages::new(store, &blobs, Arc::new(ExtractiveSummarizer), "test-worker");
    stages.parse.set_redaction(if redact {
        redact::Mode::Rows
    } else {
        redact::Mode::Off
    });
    let (tx, mut ended) = mpsc::unbounded_channel();
    let config = QueueConfig {
        capacity: SESSIONS,
        max_runs: 3,
    };
    reset_peak_memory();
    let started = Instant::now();
    let queue = PipelineQueue::start_with_hook(
        stages,
        config,
        Box::new(move |_, outcome| {
            let _ = tx.send(outcome.is_ok());
        }),
    );
    for i in 0..SESSIONS {
        assert!(queue.enqueue(format!("{name}-{i}")));
    }
    let mut ok = 0;
    for _ in 0..SESSIONS {
        if ended.recv().await.expect("runner alive") {
            ok += 1;
        }
    }
    let took = started.elapsed();
    queue.stop().await;
    let peak = peak_memory_kb();
    let (messages, blocks): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM transcript_messages), (SELECT count(*) FROM content_blocks)",
    )
    .fetch_one(store.pool())
    .await
    .expect("counts");
    let secs = took.as_secs_f64();
    println!(
        "{name}: {ok}/{SESSIONS} sessions completed, {:.1} MB, in {:.2} s: {:.1} sessions/s, \
         {:.0} messages/s, {:.0} rows/s ({messages} messages + {blocks} blocks); peak RSS {} MB",
        bytes as f64 / 1e6,
        secs,
        SESSIONS as f64 / secs,
        messages as f64 / secs,
        (messages + blocks) as f64 / secs,
        peak / 1024
    );
    let snapshot = queue.metrics().snapshot();
    for stage in snapshot.stages {
        println!(
            "  {:<9} done {:>5}  mean {:>8.2?}  max {:>8.2?}",
            stage.name, stage.done, stage.mean_latency, stage.max_latency
        );
    }
    assert_eq!(ok, SESSIONS, "every session completes");
    drop(dir);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing: run only on bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = Store::open(&bench_url())
            .await
            .expect("Postgres for the bench (source scripts/services.sh)");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/transcripts");
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .expect("fixtures")
            .map(|e| e.expect("entry").path())
            .collect();
        paths.sort();
        let fixtures: Vec<Bytes> = paths
            .iter()
            .map(|p| Bytes::from(std::fs::read(p).expect("fixture")))
            .collect();
        // Redaction on (the default) and off, one after the other, to compare in one sitting.
        for (name, redact) in [("fixtures", true), ("fixtures-unredacted", false)] {
            let cycled = (0..SESSIONS).map(|i| fixtures[i % fixtures.len()].clone());
            run(name, &store, cycled, redact).await;
        }
        for (name, redact) in [("generated", true), ("generated-unredacted", false)] {
            let generated =
                (0..SESSIONS as u64).map(|i| Bytes::from(corpus::session(1, i).transcript));
            run(name, &store, generated, redact).await;
        }
    });
}
