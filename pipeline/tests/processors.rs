//! Session processors against real Postgres and a local blob store: the usage processor and its
//! reports (each response once across sessions, checked against ccusage's per-file figures),
//! invalidation, failure isolation and parking, and the advisory lock behind the admin route.

use sessionflow_protocol::ids::Id;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use sessionflow_pipeline::api::{ApiState, Ingest, MAX_TRANSCRIPT, router};
use sessionflow_pipeline::events::{EventProcessor, HandlerRegistry};
use sessionflow_pipeline::processors::report::{self, Grouping, Request};
use sessionflow_pipeline::processors::{
    MAX_ATTEMPTS, MAX_YIELD, Processor, Processors, RunError, RunSummary, SessionInput,
};
use sessionflow_protocol::reports::UsageReport;
use sessionflow_stages::blob::{BlobStore, LocalBlobs, raw_transcript_key};
use sessionflow_stages::store::{Lifecycle, NewSession, Store};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

const PORT: &str = "cc2.1.14-headless-python-to-rust-port.jsonl";
const COVERAGE: &str = "cc2.1.14-headless-coverage-test-fix.jsonl";

fn fixtures() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures"
    ))
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("transcripts").join(name)).expect(name)
}

/// ccusage 20.0.24's figures for a fixture (shared/fixtures/ccusage-expected.json).
fn expected(name: &str) -> Value {
    let all: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("ccusage-expected.json")).unwrap())
            .unwrap();
    all[name].clone()
}

struct World {
    pool: PgPool,
    blobs: Arc<dyn BlobStore>,
    _dir: tempfile::TempDir,
}

impl World {
    fn new(pool: PgPool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        World {
            pool,
            blobs: Arc::new(LocalBlobs::new(dir.path())),
            _dir: dir,
        }
    }

    /// A parsed session with `transcript` stored, as the pipeline leaves it.
    async fn session(&self, id: &str, transcript: Vec<u8>) {
        let key = raw_transcript_key(
            &Id::parse("workspace_id", "w1").unwrap(),
            &Id::parse("session_id", id).unwrap(),
        );
        let sha = format!("{:x}", Sha256::digest(&transcript));
        self.blobs.put(&key, Bytes::from(transcript)).await.unwrap();
        Store::from_pool(self.pool.clone())
            .create_session(&NewSession {
                id,
                workspace_id: "w1",
                lifecycle: Some(Lifecycle::Ended),
                transcript_key: Some(&key),
                ..NewSession::default()
            })
            .await
            .ok();
        sqlx::query(
            "UPDATE sessions SET parse_status = 'completed', lifecycle = 'summarized', \
                    transcript_sha256 = $2, updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(sha)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    fn processors(&self, list: Vec<Arc<dyn Processor>>) -> Processors {
        Processors::new(self.pool.clone(), Arc::clone(&self.blobs), list)
    }

    fn standard(&self) -> Processors {
        Processors::standard(self.pool.clone(), Arc::clone(&self.blobs))
    }
}

fn tokens(row: &impl serde::Serialize) -> [i64; 4] {
    let v = serde_json::to_value(row).unwrap();
    [
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ]
    .map(|k| v[k].as_i64().unwrap())
}

fn ccusage_tokens(name: &str) -> [i64; 4] {
    let e = expected(name);
    [
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ]
    .map(|k| e[k].as_i64().unwrap())
}

fn add(a: [i64; 4], b: [i64; 4]) -> [i64; 4] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]]
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_response_copied_into_a_resumed_session_is_counted_once(pool: PgPool) {
    let world = World::new(pool);
    // b-resumed holds all of a-original (as Claude Code copies it on resume), then a later
    // conversation whose responses c-other (which starts later than b) holds too.
    world.session("a-original", fixture(COVERAGE)).await;
    let mut resumed = fixture(COVERAGE);
    resumed.extend(fixture(PORT));
    world.session("b-resumed", resumed).await;
    world.session("c-other", fixture(PORT)).await;

    let summary = world.standard().run("usage").await.unwrap();
    assert_eq!(
        (summary.scanned, summary.processed, summary.errors),
        (3, 3, 0)
    );

    let by_session = usage_report(&world.pool, Grouping::Session, "UTC")
        .await
        .unwrap();
    let row = |id: &str| {
        by_session
            .rows
            .iter()
            .find(|r| r.key.value() == id)
            .map(|r| tokens(&r.tokens))
    };
    assert_eq!(
        row("a-original"),
        Some(ccusage_tokens(COVERAGE)),
        "ccusage's figures"
    );
    // The shared responses go to the session that starts first: a-original for the copied
    // ones, b-resumed (which starts before c-other) for the later conversation.
    assert_eq!(row("b-resumed"), Some(ccusage_tokens(PORT)));
    assert_eq!(row("c-other"), None);
    let once = add(ccusage_tokens(PORT), ccusage_tokens(COVERAGE));
    assert_eq!(tokens(&by_session.totals), once, "every response once");
    // Daily, monthly and session totals are the same figures.
    for grouping in [Grouping::Daily, Grouping::Monthly] {
        for tz in ["UTC", "Pacific/Auckland"] {
            let other = usage_report(&world.pool, grouping, tz).await.unwrap();
            assert_eq!(
                tokens(&other.totals),
                tokens(&by_session.totals),
                "{grouping:?} in {tz}"
            );
            assert!((other.totals.cost() - by_session.totals.cost()).abs() < 1e-9);
        }
    }
    assert!(
        by_session.unpriced().is_empty(),
        "{:?}",
        by_session.unpriced()
    );
    let cost = expected(PORT)["cost_usd"].as_f64().unwrap()
        + expected(COVERAGE)["cost_usd"].as_f64().unwrap();
    assert!(
        (by_session.totals.cost() - cost).abs() < cost * 0.01,
        "{} vs ccusage {cost}",
        by_session.totals.cost()
    );
}

/// Counts its calls; fails or panics on the sessions it is told to.
struct Probe {
    calls: AtomicUsize,
    fail: &'static str,
    panic: &'static str,
}

impl Probe {
    fn new(fail: &'static str, panic: &'static str) -> Arc<Self> {
        Arc::new(Probe {
            calls: AtomicUsize::new(0),
            fail,
            panic,
        })
    }
}

impl Processor for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn default_interval(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn process<'a>(&'a self, session: &'a SessionInput) -> BoxFuture<'a, Result<u64, String>> {
        async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if session.id == self.panic {
                panic!("probe panics on {}", session.id);
            }
            if session.id == self.fail {
                return Err(format!("probe refuses {}", session.id));
            }
            // Reading the content is what a skipped session must not need.
            let bytes = session.transcript().await?;
            Ok(bytes.len() as u64 % 7)
        }
        .boxed()
    }
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn failures_and_panics_stay_with_their_session_and_park_after_five(pool: PgPool) {
    let world = World::new(pool);
    for id in ["s1", "s2", "s3"] {
        world.session(id, fixture(COVERAGE)).await;
    }
    let probe = Probe::new("s2", "s3");
    let processors = world.processors(vec![probe.clone()]);
    let first = processors.run("probe").await.unwrap();
    assert_eq!(
        (first.scanned, first.processed, first.errors),
        (3, 1, 2),
        "s1 done despite s2 failing and s3 panicking"
    );
    let error: String = sqlx::query_scalar(
        "SELECT last_error FROM processor_state WHERE processor_name = 'probe' AND session_id = 's3'",
    )
    .fetch_one(&world.pool)
    .await
    .unwrap();
    assert_eq!(error, "the processor panicked: probe panics on s3");
    // Failed sessions are tried again each run until the fifth failure parks them.
    for _ in 1..MAX_ATTEMPTS {
        let run = processors.run("probe").await.unwrap();
        assert_eq!((run.scanned, run.errors), (2, 2));
    }
    let parked = processors.run("probe").await.unwrap();
    assert_eq!(parked, RunSummary::default(), "parked, not retried forever");
    let attempts: Vec<i32> = sqlx::query_scalar(
        "SELECT attempts FROM processor_state WHERE processor_name = 'probe' ORDER BY session_id",
    )
    .fetch_all(&world.pool)
    .await
    .unwrap();
    assert_eq!(attempts, [0, MAX_ATTEMPTS, MAX_ATTEMPTS]);
    // A new transcript gives a parked session a fresh count.
    world.session("s2", fixture(PORT)).await;
    let retried = processors.run("probe").await.unwrap();
    assert_eq!((retried.scanned, retried.errors), (1, 1), "only s2, again");
    let attempts: i32 = sqlx::query_scalar(
        "SELECT attempts FROM processor_state WHERE processor_name = 'probe' AND session_id = 's2'",
    )
    .fetch_one(&world.pool)
    .await
    .unwrap();
    assert_eq!(attempts, 1);
}

/// A scheduled run gives way to a busy pipeline (a session just ended, waiting to be parsed):
/// it waits up to [`MAX_YIELD`] before its first session, processes it, and ends there, not
/// counted as a sweep of every session (so its lock is held seconds, not for the whole
/// backlog); a run asked for (the admin route's) does not wait, nor a scheduled one once the
/// pipeline is idle.
#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_scheduled_run_gives_way_to_a_busy_pipeline_but_not_for_long(pool: PgPool) {
    let world = World::new(pool.clone());
    world.session("first", fixture(COVERAGE)).await;
    world.session("second", fixture(PORT)).await;
    Store::from_pool(pool.clone())
        .create_session(&NewSession {
            id: "queued",
            workspace_id: "w1",
            lifecycle: Some(Lifecycle::Ended),
            transcript_key: Some("raw/w1/queued"),
            ..NewSession::default()
        })
        .await
        .unwrap();
    // The pipeline stays busy: sessions keep ending.
    let stop = tokio_util::sync::CancellationToken::new();
    let toucher = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                sqlx::query("UPDATE sessions SET updated_at = now() WHERE id = 'queued'")
                    .execute(&pool)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let swept = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT swept_at IS NOT NULL FROM processor_runs WHERE processor_name = 'probe'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let probe = Probe::new("", "");
    let processors = world.processors(vec![probe.clone()]);
    let started = std::time::Instant::now();
    let run = processors.run_scheduled("probe").await.unwrap();
    assert_eq!(run.processed, 1, "one session, then it gives way: {run:?}");
    assert!(
        started.elapsed() >= MAX_YIELD,
        "processed after {:?}, while the pipeline was busy",
        started.elapsed()
    );
    assert!(!swept().await, "not a sweep of every session");

    let started = std::time::Instant::now();
    assert_eq!(processors.run("probe").await.unwrap().processed, 1);
    assert!(
        started.elapsed() < MAX_YIELD,
        "a run asked for waits for nothing"
    );

    stop.cancel();
    toucher.await.unwrap();
    sqlx::query("UPDATE sessions SET lifecycle = 'summarized' WHERE id = 'queued'")
        .execute(&pool)
        .await
        .unwrap();
    world.session("third", fixture(PORT)).await;
    let started = std::time::Instant::now();
    assert_eq!(
        processors.run_scheduled("probe").await.unwrap().processed,
        1
    );
    assert!(
        started.elapsed() < MAX_YIELD,
        "an idle pipeline is not waited for"
    );
    assert!(swept().await);
    assert_eq!(probe.calls.load(Ordering::SeqCst), 3);
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_grown_transcript_is_processed_again_and_a_stable_one_is_not_read(pool: PgPool) {
    let world = World::new(pool);
    world.session("grows", fixture(PORT)).await;
    world.session("stable", fixture(COVERAGE)).await;
    let probe = Probe::new("", "");
    let processors = world.processors(vec![probe.clone()]);
    assert_eq!(processors.run("probe").await.unwrap().processed, 2);
    let nothing = processors.run("probe").await.unwrap();
    assert_eq!(
        nothing,
        RunSummary::default(),
        "nothing changed: nothing looked at"
    );

    // The pipeline touches both (a summary retry, say); one also got a longer transcript.
    let mut longer = fixture(PORT);
    longer.extend(fixture(COVERAGE));
    world.session("grows", longer).await;
    sqlx::query("UPDATE sessions SET updated_at = now() WHERE id = 'stable'")
        .execute(&world.pool)
        .await
        .unwrap();
    // If the stable session's content were read now, the run would fail on it.
    world
        .blobs
        .delete(&raw_transcript_key(
            &Id::parse("workspace_id", "w1").unwrap(),
            &Id::parse("session_id", "stable").unwrap(),
        ))
        .await
        .unwrap();
    let calls = probe.calls.load(Ordering::SeqCst);
    let run = processors.run("probe").await.unwrap();
    assert_eq!(
        (run.scanned, run.processed, run.skipped, run.errors),
        (2, 1, 1, 0),
        "{run:?}"
    );
    assert_eq!(
        probe.calls.load(Ordering::SeqCst),
        calls + 1,
        "only the grown one"
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_catch_up_looks_at_sessions_changed_since_the_last_full_run_began(pool: PgPool) {
    let world = World::new(pool);
    world.session("first", fixture(PORT)).await;
    let probe = Probe::new("", "");
    let processors = world.processors(vec![probe.clone()]);
    // Before any full run, a catch-up looks at every session.
    assert_eq!(processors.catch_up("probe").await.unwrap().processed, 1);
    assert_eq!(processors.run("probe").await.unwrap().scanned, 0);
    // Parsed after the full run began: caught up at once.
    world.session("new", fixture(COVERAGE)).await;
    let caught = processors.catch_up("probe").await.unwrap();
    assert_eq!((caught.scanned, caught.processed), (1, 1), "{caught:?}");
    // A session whose last change is older than the full run's start (less a minute) is not
    // a catch-up's to look for (an index read instead of every session); the next full run
    // takes it.
    world.session("slipped", fixture(COVERAGE)).await;
    sqlx::query("UPDATE sessions SET updated_at = now() - interval '1 hour' WHERE id = 'slipped'")
        .execute(&world.pool)
        .await
        .unwrap();
    let caught = processors.catch_up("probe").await.unwrap();
    assert_eq!(caught.scanned, 0, "{caught:?}");
    let run = processors.run("probe").await.unwrap();
    assert_eq!((run.scanned, run.processed), (1, 1), "{run:?}");
    // The mark is where the last full run began.
    let (swept, started): (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) = sqlx::query_as(
        "SELECT swept_at, run_started_at FROM processor_runs WHERE processor_name = 'probe'",
    )
    .fetch_one(&world.pool)
    .await
    .unwrap();
    assert!(swept.is_some() && swept == started, "{swept:?} {started:?}");
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn the_admin_route_runs_a_processor_once_at_a_time(pool: PgPool) {
    let world = World::new(pool.clone());
    world.session("s1", fixture(COVERAGE)).await;
    let state = ApiState {
        store: Store::from_pool(pool.clone()),
        blobs: Arc::clone(&world.blobs),
        ingest: Ingest::Embedded(Arc::new(EventProcessor::new(
            pool.clone(),
            HandlerRegistry::new(),
            "test-worker",
        ))),
        api_key: Arc::from("k"),
        max_transcript: MAX_TRANSCRIPT,
        redact_uploads: false,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    let call = |name: &str| {
        let request = reqwest::Client::new()
            .post(format!(
                "{url}/api/admin/run-session-processor?processor={name}"
            ))
            .bearer_auth("k")
            .send();
        async move {
            let response = request.await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = call("usage").await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"scanned": 1, "processed": 1, "skipped": 0, "errors": 0, "items": 14})
        )
    );
    let (status, body) = call("nope").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["error"],
        "no processor is called \"nope\"; known: usage, tools, search"
    );

    // While another process holds the lock: 409, and free again once it lets go.
    let mut holder = pool.acquire().await.unwrap();
    let taken: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_lock(hashtext('sessionflow-processor'), hashtext('usage'))",
    )
    .fetch_one(&mut *holder)
    .await
    .unwrap();
    assert!(taken);
    let (status, body) = call("usage").await;
    assert_eq!(
        (status, body["error"].clone()),
        (409, json!("processor usage is already running"))
    );
    sqlx::query("SELECT pg_advisory_unlock(hashtext('sessionflow-processor'), hashtext('usage'))")
        .execute(&mut *holder)
        .await
        .unwrap();
    let (status, _) = call("usage").await;
    assert_eq!(status, 200);

    // Two at once: one runs, the other is refused.
    let both = futures::future::join(call("usage"), call("usage")).await;
    let mut statuses = [both.0.0, both.1.0];
    statuses.sort();
    assert!(
        statuses == [200, 409] || statuses == [200, 200],
        "{statuses:?}"
    );
    // After a failing run the lock is free: a processor that fails everywhere, then any run.
    let failing = world.processors(vec![Probe::new("s1", "")]);
    assert_eq!(failing.run("probe").await.unwrap().errors, 1);
    assert!(!matches!(
        failing.run("probe").await,
        Err(RunError::Busy(_))
    ));
}

/// Sleeps on every session.
struct Sleepy;

impl Processor for Sleepy {
    fn name(&self) -> &'static str {
        "sleepy"
    }

    fn default_interval(&self) -> Duration {
        Duration::from_millis(100)
    }

    fn process<'a>(&'a self, _session: &'a SessionInput) -> BoxFuture<'a, Result<u64, String>> {
        async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(0)
        }
        .boxed()
    }
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn the_scheduler_keeps_each_processor_to_itself(pool: PgPool) {
    let world = World::new(pool);
    for id in ["s1", "s2", "s3"] {
        world.session(id, fixture(COVERAGE)).await;
    }
    let panicky = Probe::new("", "s1");
    let processors = world.processors(vec![
        panicky.clone(),
        Arc::new(Sleepy),
        Arc::new(sessionflow_pipeline::processors::usage::UsageProcessor),
    ]);
    let intervals = [
        ("probe".to_owned(), Duration::from_millis(200)),
        ("usage".to_owned(), Duration::from_millis(200)),
    ]
    .into();
    let stop = tokio_util::sync::CancellationToken::new();
    let (scheduler, launches) =
        sessionflow_pipeline::processors::scheduler::spawn(processors, &intervals, stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;

    // usage finished its sessions while sleepy sleeps and probe panics on s1 each run.
    let usage_done: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM processor_state WHERE processor_name = 'usage' AND attempts = 0",
    )
    .fetch_one(&world.pool)
    .await
    .unwrap();
    assert_eq!(usage_done, 3);
    assert_eq!(
        launches.launched("sleepy"),
        1,
        "never a second instance while it runs"
    );
    assert_eq!(launches.busy("sleepy"), 0);
    assert!(
        launches.launched("probe") >= 5,
        "a failing processor keeps its cadence: {}",
        launches.launched("probe")
    );
    let (attempts, last_run): (i32, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "SELECT p.attempts, r.last_run_at FROM processor_state p \
         JOIN processor_runs r ON r.processor_name = p.processor_name \
         WHERE p.processor_name = 'probe' AND p.session_id = 's1'",
    )
    .fetch_one(&world.pool)
    .await
    .unwrap();
    assert_eq!(attempts, MAX_ATTEMPTS, "parked after five panics");
    assert!(
        last_run.is_some(),
        "the last run advances despite the failures"
    );
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), scheduler)
        .await
        .expect("stops at once, abandoning the sleeper")
        .unwrap();
    let running: bool =
        sqlx::query_scalar("SELECT running FROM processor_runs WHERE processor_name = 'sleepy'")
            .fetch_one(&world.pool)
            .await
            .unwrap();
    assert!(!running, "the abandoned run is not shown as running");
}

/// Per tool in a transcript, counted straight off its JSON lines: (calls, failed calls, files).
fn tools_in(transcript: &[u8]) -> std::collections::BTreeMap<String, (i64, i64, i64)> {
    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
    let mut uses: HashMap<String, (String, Option<String>)> = HashMap::new();
    let mut failed: HashSet<String> = HashSet::new();
    let mut seen_lines: HashSet<String> = HashSet::new();
    for line in transcript.split(|b| *b == b'\n') {
        let Ok(record) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        if let Some(uuid) = record["uuid"].as_str()
            && !seen_lines.insert(uuid.to_owned())
        {
            continue;
        }
        for block in record["message"]["content"]
            .as_array()
            .into_iter()
            .flatten()
        {
            match block["type"].as_str() {
                Some("tool_use") => {
                    let input = &block["input"];
                    let file = ["file_path", "notebook_path", "path"]
                        .iter()
                        .find_map(|k| input[*k].as_str().map(str::to_owned));
                    uses.insert(
                        block["id"].as_str().unwrap_or_default().to_owned(),
                        (block["name"].as_str().unwrap_or_default().to_owned(), file),
                    );
                }
                Some("tool_result") if block["is_error"] == true => {
                    failed.insert(block["tool_use_id"].as_str().unwrap_or_default().to_owned());
                }
                _ => {}
            }
        }
    }
    let mut files: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut out: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    for (id, (name, file)) in &uses {
        let entry = out.entry(name.clone()).or_default();
        entry.0 += 1;
        entry.1 += i64::from(failed.contains(id));
        if let Some(file) = file {
            files.entry(name.clone()).or_default().insert(file.clone());
        }
    }
    for (name, entry) in out.iter_mut() {
        entry.2 = files.get(name).map_or(0, |f| f.len() as i64);
    }
    out
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn the_tools_processor_counts_calls_failures_and_files_from_the_stored_rows(pool: PgPool) {
    use sessionflow_pipeline::queue::{PipelineQueue, QueueConfig};
    use sessionflow_pipeline::runner::Stages;
    use sessionflow_stages::summarize::ExtractiveSummarizer;
    let world = World::new(pool.clone());
    const INTERACTIVE: &str = "cc1.0.98-interactive-fe5e1c67-53e7-4862-81ae-d0e013e3270b.jsonl";
    world.session("t1", fixture(INTERACTIVE)).await;
    sqlx::query(
        "UPDATE sessions SET lifecycle = 'ended', parse_status = 'pending' WHERE id = 't1'",
    )
    .execute(&pool)
    .await
    .unwrap();
    // The real pipeline stores the rows the processor reads.
    let (tx, mut ended) = tokio::sync::mpsc::unbounded_channel();
    let store = Store::from_pool(pool.clone());
    let queue = PipelineQueue::start_with_hook(
        Stages::new(
            &store,
            &world.blobs,
            Arc::new(ExtractiveSummarizer),
            "test-worker",
        ),
        QueueConfig::default(),
        Box::new(move |_, outcome| {
            let _ = tx.send(outcome.is_ok());
        }),
    );
    assert!(queue.enqueue("t1"));
    assert_eq!(ended.recv().await, Some(true));

    let summary = world.standard().run("tools").await.unwrap();
    assert_eq!((summary.processed, summary.errors), (1, 0));
    let stored: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT tool_name, calls, errors, files FROM tool_usage WHERE session_id = 't1' \
         ORDER BY tool_name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected: Vec<(String, i64, i64, i64)> = tools_in(&fixture(INTERACTIVE))
        .into_iter()
        .map(|(name, (calls, errors, files))| (name, calls, errors, files))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(stored, expected);
    assert_eq!(summary.items, expected.len() as u64);
    let totals = sessionflow_pipeline::processors::tools::totals(&pool, None)
        .await
        .unwrap();
    assert_eq!(totals.len(), expected.len());
    assert!(
        totals.windows(2).all(|w| w[0].calls >= w[1].calls),
        "most called first"
    );
}

/// One response in a generated history: (session, key index, day offset, tokens, with a
/// request id or not).
type GenResponse = (usize, usize, i64, [i64; 4], bool);

fn history() -> impl proptest::strategy::Strategy<Value = (Vec<i64>, Vec<GenResponse>)> {
    use proptest::prelude::*;
    (
        // Each session's start, in hours from 2026-01-01.
        prop::collection::vec(0i64..24 * 90, 1..6),
        // Responses drawn from a small pool of keys, so sessions copy each other's.
        prop::collection::vec(
            (
                0usize..6,
                0usize..12,
                0i64..24 * 120,
                [0i64..5_000, 0i64..5_000, 0i64..50_000, 0i64..500_000],
                any::<bool>(),
            ),
            0..40,
        ),
    )
}

/// A database of this test's own, migrated, dropped by the caller.
async fn fresh_database(name: &str) -> (PgPool, PgPool) {
    let admin_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin = PgPool::connect(&admin_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(b, _)| b);
    let pool = PgPool::connect(&format!("{base}/{name}")).await.unwrap();
    sessionflow_stages::store::MIGRATOR
        .run(&pool)
        .await
        .unwrap();
    (admin, pool)
}

#[test]
fn daily_monthly_and_session_totals_agree_on_any_history() {
    use proptest::test_runner::{Config, TestRunner};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let name = format!("sessionflow_prop_usage_{}", std::process::id());
    let (admin, pool) = runtime.block_on(fresh_database(&name));
    let world = World::new(pool.clone());
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let result = runner.run(&history(), |(starts, responses)| {
        let pool = pool.clone();
        let world = &world;
        {
            runtime.block_on(async move {
                sqlx::query("TRUNCATE usage_responses, usage_sessions")
                    .execute(&pool)
                    .await
                    .unwrap();
                let origin = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                    .unwrap()
                    .to_utc();
                for (i, start) in starts.iter().enumerate() {
                    let id = format!("s{i}");
                    world.session(&id, b"{}".to_vec()).await;
                    sqlx::query("INSERT INTO usage_sessions VALUES ($1, $2)")
                        .bind(&id)
                        .bind(origin + chrono::Duration::hours(*start))
                        .execute(&pool)
                        .await
                        .unwrap();
                }
                // What each session's transcript holds: a response once per session (the
                // processor collapses split lines), the largest figures winning.
                let mut rows: BTreeMap<(String, String), (i64, [i64; 4])> = BTreeMap::new();
                for (session, key, hour, tokens, with_request) in &responses {
                    let session = format!("s{}", session % starts.len());
                    let key = if *with_request {
                        format!("msg{key}:req{key}")
                    } else {
                        format!("session:{session}:msg{key}")
                    };
                    let entry = rows.entry((session, key)).or_insert((*hour, *tokens));
                    if tokens.iter().sum::<i64>() > entry.1.iter().sum::<i64>() {
                        *entry = (*hour, *tokens);
                    }
                }
                for ((session, key), (hour, t)) in &rows {
                    sqlx::query(
                        "INSERT INTO usage_responses VALUES ($1, $2, 'claude-sonnet-4-5', $3, \
                         $4, $5, $6, $7, 0.001)",
                    )
                    .bind(session)
                    .bind(key)
                    .bind(origin + chrono::Duration::hours(*hour))
                    .bind(t[0])
                    .bind(t[1])
                    .bind(t[2])
                    .bind(t[3])
                    .execute(&pool)
                    .await
                    .unwrap();
                }
                // Independently: each key once, with its largest figures.
                let mut once: BTreeMap<&str, [i64; 4]> = BTreeMap::new();
                for ((_, key), (_, t)) in &rows {
                    let best = once.entry(key.as_str()).or_insert(*t);
                    if t.iter().sum::<i64>() > best.iter().sum::<i64>() {
                        *best = *t;
                    }
                }
                let expected = once.values().fold([0i64; 4], |a, t| add(a, *t));
                for grouping in [Grouping::Session, Grouping::Daily, Grouping::Monthly] {
                    for tz in ["UTC", "America/Los_Angeles", "Asia/Kolkata"] {
                        let report = usage_report(&pool, grouping, tz).await.unwrap();
                        let rows_sum = report
                            .rows
                            .iter()
                            .fold([0i64; 4], |a, r| add(a, tokens(&r.tokens)));
                        proptest::prop_assert_eq!(tokens(&report.totals), expected);
                        proptest::prop_assert_eq!(rows_sum, expected);
                    }
                }
                Ok(())
            })
        }
    });
    runtime.block_on(async {
        pool.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .execute(&admin)
        .await
        .unwrap();
    });
    result.unwrap();
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn offline_runs_trust_unchanged_files_and_redo_changed_ones(pool: PgPool) {
    use sessionflow_pipeline::capture::discover;
    let world = World::new(pool.clone());
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("projects/-home-dev-app");
    std::fs::create_dir_all(&project).unwrap();
    let first = project.join("off-1.jsonl");
    std::fs::write(&first, fixture(COVERAGE)).unwrap();
    std::fs::write(project.join("off-2.jsonl"), fixture(PORT)).unwrap();
    let processors = world.standard();
    let sessions = || discover::discover(&[dir.path().join("projects")]).0;

    let run = processors.run_offline("usage", &sessions()).await.unwrap();
    assert_eq!((run.scanned, run.processed, run.items), (2, 2, 14 + 39));
    let (state, source): (String, String) =
        sqlx::query_as("SELECT lifecycle, source FROM sessions WHERE id = 'off-1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((state.as_str(), source.as_str()), ("detected", "offline"));

    // Same size and modification time: trusted without reading, even if the bytes changed.
    let modified = std::fs::metadata(&first).unwrap().modified().unwrap();
    let mut bytes = fixture(COVERAGE);
    let at = bytes.iter().position(|b| *b == b'{').unwrap();
    bytes[at] = b' ';
    std::fs::write(&first, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&first)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let run = processors.run_offline("usage", &sessions()).await.unwrap();
    assert_eq!((run.processed, run.skipped), (0, 2), "no file read again");
    // A new modification time: hashed, found changed, processed again.
    std::fs::File::options()
        .write(true)
        .open(&first)
        .unwrap()
        .set_modified(modified + Duration::from_secs(5))
        .unwrap();
    let run = processors.run_offline("usage", &sessions()).await.unwrap();
    assert_eq!((run.processed, run.skipped), (1, 1));
    // The tools processor needs the pipeline's rows: refused offline, with the reason.
    assert_eq!(
        processors
            .run_offline("tools", &sessions())
            .await
            .unwrap_err()
            .to_string(),
        "processor tools reads the rows the pipeline stores; run it on a server"
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn an_unpriced_model_is_reported_as_such_not_as_free(pool: PgPool) {
    let world = World::new(pool);
    // The fixture's responses, as if a model the pricing table does not know wrote them.
    let text = String::from_utf8(fixture(COVERAGE)).unwrap();
    let model = "claude-opus-4-5-20251101";
    assert!(text.contains(model));
    world
        .session(
            "future",
            text.replace(model, "claude-future-9").into_bytes(),
        )
        .await;
    world.session("known", fixture(PORT)).await;
    world.standard().run("usage").await.unwrap();
    let report = usage_report(&world.pool, Grouping::Session, "UTC")
        .await
        .unwrap();
    assert_eq!(report.unpriced(), ["claude-future-9"]);
    let future = report
        .rows
        .iter()
        .find(|r| r.key.value() == "future")
        .unwrap();
    assert!(future.models.iter().all(|m| m.tokens.cost_usd.is_none()));
    assert_eq!(
        future.tokens.cost_usd,
        Some(0.0),
        "no price is not counted as a cost"
    );
    assert_eq!(
        tokens(&future.tokens),
        ccusage_tokens(COVERAGE),
        "its tokens still count"
    );
    let known = expected(PORT)["cost_usd"].as_f64().unwrap();
    assert!((report.totals.cost() - known).abs() < known * 0.01);
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn two_runs_at_once_one_runs_one_is_refused(pool: PgPool) {
    let world = World::new(pool);
    world.session("s1", fixture(COVERAGE)).await;
    let processors = world.processors(vec![Arc::new(Sleepy)]);
    let first = tokio::spawn({
        let processors = processors.clone();
        async move { processors.run("sleepy").await }
    });
    // The first holds the lock while it sleeps on s1.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(matches!(
        processors.run("sleepy").await,
        Err(RunError::Busy(_))
    ));
    first.abort();
    let _ = first.await;
    // Abandoned mid-run (a cancelled request, a stopping worker): the lock goes with the closed
    // connection, as soon as the server notices.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout(Duration::from_millis(500), processors.run("sleepy")).await {
            Err(_) => break, // it took the lock and sleeps on s1
            Ok(Err(RunError::Busy(_))) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("the abandoned run's lock was not freed: {other:?}"),
        }
    }
}

/// The usage report by `grouping`, days in `timezone`, over everything.
async fn usage_report(
    pool: &PgPool,
    grouping: Grouping,
    timezone: &str,
) -> Result<UsageReport, report::ReportError> {
    let request = Request {
        grouping,
        timezone: timezone.to_owned(),
        since: None,
        until: None,
        sessions: None,
        workspaces: None,
    };
    report::report(pool, &request).await
}
