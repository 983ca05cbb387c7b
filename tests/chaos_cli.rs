//! Nothing lost or stranded when a worker or Redis dies, with the real binaries, a Redis of the
//! test's own (no persistence, restartable) and Postgres:
//!
//! - `serve` and two `worker`s take a backfill of generated sessions while workers are killed
//!   with SIGKILL at seeded random moments (one while it is writing a session's rows) and
//!   replaced, and Redis is killed and restarted once: every session ends summarized or failed
//!   with a reason, every event is handled exactly once, no session has duplicate or missing
//!   rows, `/healthz` says so while work is stranded and is 200 at the end;
//! - `serve` alone takes a finished session: health is degraded within 45 s, naming the missing
//!   worker; Redis then loses everything; a worker started afterwards handles every accepted
//!   event from Postgres, and health returns to 200.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::url_for;
use serde_json::Value;

const KEY: &str = "chaos-test-key";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server of the test's own that keeps nothing on disk, as Redis often runs.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (Debian's redis-server package)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis { port, child }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, then a new server on the same port: everything it held is gone.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self = Redis::start(self.port);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The processes of one deployment: the API and its workers, killed when the test ends.
struct Deployment {
    database: String,
    blobs: tempfile::TempDir,
    redis_url: String,
    api: Option<Child>,
    port: u16,
    workers: Vec<Child>,
}

impl Deployment {
    fn new(database: &str, redis_url: &str) -> Deployment {
        Deployment {
            database: database.to_owned(),
            blobs: tempfile::tempdir().unwrap(),
            redis_url: redis_url.to_owned(),
            api: None,
            port: free_port(),
            workers: Vec::new(),
        }
    }

    fn command(&self, mode: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sessionflow"));
        command
            .args([mode, "--log-format", "json"])
            .env("DATABASE_URL", url_for(&self.database))
            .env("REDIS_URL", &self.redis_url)
            .env("SESSIONFLOW_BLOB", self.blobs.path())
            .env("SESSIONFLOW_API_KEY", KEY)
            .env("SESSIONFLOW_LISTEN", format!("127.0.0.1:{}", self.port))
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("SESSIONFLOW_STREAM")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start_api(&mut self) {
        self.api = Some(self.command("serve").spawn().unwrap());
    }

    fn start_worker(&mut self) -> u32 {
        self.start_worker_with(&[])
    }

    fn start_worker_with(&mut self, env: &[(&str, &str)]) -> u32 {
        let child = self
            .command("worker")
            .envs(env.iter().copied())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.workers.push(child);
        pid
    }

    /// SIGKILL: no hand-back, no goodbye.
    fn kill_worker(&mut self, pid: u32) {
        if let Some(at) = self.workers.iter().position(|w| w.id() == pid) {
            let mut child = self.workers.remove(at);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn worker_pids(&self) -> Vec<u32> {
        self.workers.iter().map(Child::id).collect()
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for child in self.workers.iter_mut().chain(self.api.as_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn pool(database: &str) -> sqlx::PgPool {
    sqlx::PgPool::connect(&url_for(database)).await.unwrap()
}

async fn drop_database(database: &str) {
    let admin = sqlx::PgPool::connect(&common::admin_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
}

async fn health(url: &str) -> (u16, Value) {
    match reqwest::Client::new()
        .get(format!("{url}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

async fn wait_for_api(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while health(url).await.0 == 0 {
        assert!(Instant::now() < deadline, "the API never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts every time an event is marked handled: an event handled twice shows twice.
async fn watch_handling(pool: &sqlx::PgPool) {
    sqlx::raw_sql(
        "CREATE TABLE handled_log (event_id text NOT NULL, at timestamptz NOT NULL DEFAULT now());
         CREATE FUNCTION log_handled() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.handled_at IS NOT NULL THEN
                 INSERT INTO handled_log (event_id) VALUES (NEW.id);
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER events_handled AFTER INSERT OR UPDATE OF handled_at ON events
             FOR EACH ROW EXECUTE FUNCTION log_handled();",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// Generates `sessions` sessions aged an hour (none live) and backfills them to `url` without
/// waiting for their processing.
fn backfill(dir: &Path, url: &str, sessions: u64, seed: u64) -> Value {
    let projects = dir.join("projects");
    let out = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
        .args(["gen-corpus", "--sessions", &sessions.to_string()])
        .args(["--seed", &seed.to_string(), "--out"])
        .arg(&projects)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for entry in walkdir::WalkDir::new(&projects).into_iter().flatten() {
        if entry.file_type().is_file() {
            std::fs::File::options()
                .write(true)
                .open(entry.path())
                .unwrap()
                .set_modified(hour_ago)
                .unwrap();
        }
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_sessionflow"));
    command
        .args([
            "backfill",
            "--no-wait",
            "--json",
            "--server",
            url,
            "--api-key",
            KEY,
        ])
        .arg(&projects)
        .env_remove("CLAUDE_CONFIG_DIR");
    let out = output_within(command, Duration::from_secs(240));
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `command` to its end, or kills it and fails the test once `limit` has passed: a
/// backfill that hangs must fail the test, not hold the suite until CI gives up.
fn output_within(mut command: Command, limit: Duration) -> std::process::Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} did not end within {limit:?}; it wrote: {}",
                String::from_utf8_lossy(&stderr.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// A small, seeded generator (xorshift): the kill times repeat for a seed.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.next() % (to - from))
    }
}

/// Waits until some worker is writing a session's rows (its connection, named after it,
/// inserting messages or blocks) and returns that worker's pid.
async fn worker_mid_persist(pool: &sqlx::PgPool, pids: &[u32], within: Duration) -> Option<u32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT application_name FROM pg_stat_activity \
             WHERE state = 'active' AND application_name LIKE 'sessionflow worker %' \
               AND (query LIKE '%INSERT INTO transcript_messages%' \
                    OR query LIKE '%INSERT INTO content_blocks%')",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        for name in names {
            if let Some(pid) = pids.iter().find(|pid| name.ends_with(&format!("-{pid}"))) {
                return Some(*pid);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

struct Ends {
    summarized: i64,
    failed_without_reason: i64,
    other: i64,
}

async fn ends(pool: &sqlx::PgPool) -> Ends {
    let (summarized, failed_without_reason, other): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE lifecycle = 'summarized'), \
                count(*) FILTER (WHERE lifecycle = 'failed' AND parse_error IS NULL), \
                count(*) FILTER (WHERE lifecycle NOT IN ('summarized', 'failed')) FROM sessions",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    Ends {
        summarized,
        failed_without_reason,
        other,
    }
}

/// One chaos run at a time: each already keeps two cores busy.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_and_a_lost_redis_strand_nothing_seed_1() {
    chaos(0x5e55_10f1_0e55_a1de).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_and_a_lost_redis_strand_nothing_seed_2() {
    chaos(0x0bad_c0ff_ee15_0001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_and_a_lost_redis_strand_nothing_seed_3() {
    chaos(0x2026_1202_0000_0003).await;
}

/// Sends `signal` to process `pid`.
fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) with a pid of a child this test started; no memory is involved.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Events recorded and not handled yet, nor taken by any worker.
async fn unread(db: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE handled_at IS NULL AND leased_by IS NULL")
        .fetch_one(db)
        .await
        .unwrap()
}

/// 220 sessions through `serve` and two workers; a worker killed while it writes a session's
/// rows, two more at moments `seed` picks, each replaced at once; Redis lost once (with events
/// in it no worker had read).
async fn chaos(seed: u64) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let database = format!("sessionflow_chaos_{}_{seed:x}", std::process::id());
    let mut redis = Redis::start(free_port());
    let mut deployment = Deployment::new(&database, &redis.url());
    deployment.start_api();
    wait_for_api(&deployment.url()).await;
    let db = pool(&database).await;
    watch_handling(&db).await;
    deployment.start_worker();
    deployment.start_worker();

    // Health is watched the whole time: degraded must be seen while work is stranded.
    let watched_url = deployment.url();
    let done = Arc::new(AtomicBool::new(false));
    let watching = tokio::spawn({
        let done = Arc::clone(&done);
        async move {
            let mut seen: Vec<String> = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let (status, body) = health(&watched_url).await;
                if status == 503 {
                    for reason in body["reasons"].as_array().into_iter().flatten() {
                        let reason = reason.as_str().unwrap_or_default().to_owned();
                        if !seen.contains(&reason) {
                            seen.push(reason);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            seen
        }
    });

    let corpus = tempfile::tempdir().unwrap();
    let sent_url = deployment.url();
    let sending = tokio::task::spawn_blocking({
        let dir = corpus.path().to_owned();
        move || backfill(&dir, &sent_url, 220, seed % 1000)
    });

    // Kills: one while a worker writes a session's rows, then two more at seeded moments, each
    // dead worker replaced at once; Redis is lost once in between.
    let mut dice = Dice(seed);
    let mut kills = Vec::new();
    let victim = worker_mid_persist(&db, &deployment.worker_pids(), Duration::from_secs(90))
        .await
        .expect("a worker was seen writing a session's rows");
    deployment.kill_worker(victim);
    kills.push(Instant::now());
    deployment.start_worker();
    for round in 0..2 {
        tokio::time::sleep(dice.millis(300, 2_500)).await;
        let pids = deployment.worker_pids();
        let victim = pids[(dice.next() % pids.len() as u64) as usize];
        deployment.kill_worker(victim);
        kills.push(Instant::now());
        deployment.start_worker();
        if round == 0 {
            tokio::time::sleep(dice.millis(200, 1_500)).await;
            // The workers paused while Redis goes, so that the stream holds events no worker
            // has read (batched, they otherwise keep it all but empty): those are lost with it.
            // (Events a worker had read before it paused may still be unleased in Postgres:
            // only those recorded after the pause are surely unread.)
            let paused = deployment.worker_pids();
            for pid in &paused {
                signal(*pid, libc::SIGSTOP);
            }
            let before = unread(&db).await;
            let deadline = Instant::now() + Duration::from_secs(30);
            while unread(&db).await <= before && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                unread(&db).await > before,
                "no event arrived while the workers were paused (the backfill ended too soon?)"
            );
            redis.restart();
            for pid in &paused {
                signal(*pid, libc::SIGCONT);
            }
        }
    }
    let sent = sending.await.unwrap();
    let sessions = sent["discovered"].as_i64().unwrap();
    assert_eq!(sent["upload_failures"], 0, "{sent}");

    // Every session ends, each summarized or failed with its reason, and every event is
    // handled (those Redis lost by the sweep, which may come after their sessions ended: a
    // session's end does not need its start or upload event).
    let deadline = Instant::now() + Duration::from_secs(300);
    let last_kill = *kills.last().unwrap();
    loop {
        let e = ends(&db).await;
        let (total, unhandled): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM sessions), \
                    (SELECT count(*) FROM events WHERE handled_at IS NULL)",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        if e.other == 0 && total == sessions && unhandled == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not done {} s after the last kill: {} summarized, {} other, {unhandled} events \
             unhandled",
            last_kill.elapsed().as_secs(),
            e.summarized,
            e.other
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let e = ends(&db).await;
    assert_eq!(e.failed_without_reason, 0, "a failed session says why");
    let failed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE lifecycle = 'failed'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(e.summarized + failed, sessions);
    assert_eq!(failed, 0, "generated sessions all parse");

    // Every accepted event handled, exactly once.
    let (events, unhandled): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE handled_at IS NULL) FROM events")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(
        events >= 3 * sessions,
        "{events} events for {sessions} sessions"
    );
    assert_eq!(unhandled, 0);
    let twice: Vec<(String, i64)> =
        sqlx::query_as("SELECT event_id, count(*) FROM handled_log GROUP BY 1 HAVING count(*) > 1")
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
    let logged: i64 = sqlx::query_scalar("SELECT count(DISTINCT event_id) FROM handled_log")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(logged, events);

    // Each session's rows are exactly what its stats say: none twice, none missing.
    let mismatched: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT s.id, s.total_messages, count(m.ordinal) FROM sessions s \
         LEFT JOIN transcript_messages m ON m.session_id = s.id \
         GROUP BY s.id, s.total_messages HAVING s.total_messages <> count(m.ordinal)",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(mismatched.is_empty(), "{mismatched:?}");

    // Nothing stranded, and health says so by itself.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, body) = health(&deployment.url()).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "health never came back: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    done.store(true, Ordering::Relaxed);
    let seen = watching.await.unwrap();
    eprintln!(
        "all done {:.1} s after the last kill; health said: {seen:#?}",
        last_kill.elapsed().as_secs_f64()
    );
    assert!(
        seen.iter().any(|r| r.contains("silent")),
        "health never said work was held by a dead worker: {seen:?}"
    );
    assert!(
        seen.iter().any(|r| r.contains("events waiting for")),
        "health never said accepted events waited (Redis lost them): {seen:?}"
    );
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sessions WHERE claimed_by IS NOT NULL OR enqueued_by IS NOT NULL",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(held, 0, "finished sessions hold no claim");
    db.close().await;
    drop(deployment);
    drop_database(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_alone_says_so_and_a_later_worker_handles_what_redis_lost() {
    let database = format!("sessionflow_alone_{}", std::process::id());
    let mut redis = Redis::start(free_port());
    let mut deployment = Deployment::new(&database, &redis.url());
    deployment.start_api();
    wait_for_api(&deployment.url()).await;
    let db = pool(&database).await;
    watch_handling(&db).await;
    assert_eq!(health(&deployment.url()).await.0, 200, "nothing waits yet");

    let corpus = tempfile::tempdir().unwrap();
    let url = deployment.url();
    let sent = tokio::task::spawn_blocking({
        let dir = corpus.path().to_owned();
        move || backfill(&dir, &url, 3, 7)
    })
    .await
    .unwrap();
    let sent_at = Instant::now();
    assert_eq!(sent["uploaded"], 3, "{sent}");

    // No worker anywhere: degraded within 45 s, naming what is missing.
    let reasons = loop {
        let (status, body) = health(&deployment.url()).await;
        if status == 503 {
            break body["reasons"].clone();
        }
        assert!(
            sent_at.elapsed() < Duration::from_secs(45),
            "still healthy 45 s after work nobody reads: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let reason = reasons[0].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("no worker is reading sessionflow:events: 9 events waiting for "),
        "{reasons}"
    );

    // Redis loses everything it was told; the accepted events are in Postgres.
    redis.restart();
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE handled_at IS NULL")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(recorded, 9, "3 sessions × start, upload, end");

    deployment.start_worker();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let e = ends(&db).await;
        if e.summarized == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} summarized, {} not done",
            e.summarized,
            e.other
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT event_id FROM handled_log GROUP BY 1 HAVING count(*) > 1) t",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(twice, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = health(&deployment.url()).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "health stays {status}: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    db.close().await;
    drop(deployment);
    drop_database(&database).await;
}

/// A Messages API stand-in that answers every request with a one-line summary after `delay`;
/// returns its base URL.
async fn slow_messages_api(delay: Duration) -> String {
    let app = axum::Router::new().route(
        "/v1/messages",
        axum::routing::post(move || async move {
            tokio::time::sleep(delay).await;
            axum::Json(serde_json::json!({
                "type": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": "A session, summarized slowly."}],
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_hands_back_its_queue_at_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let database = format!("sessionflow_handback_{}", std::process::id());
    let redis = Redis::start(free_port());
    let mut deployment = Deployment::new(&database, &redis.url());
    deployment.start_api();
    wait_for_api(&deployment.url()).await;
    let db = pool(&database).await;
    // One run at a time, each waiting a second on its summary: sessions wait in its queue
    // however fast the machine parses.
    let summaries = slow_messages_api(Duration::from_secs(1)).await;
    let first = deployment.start_worker_with(&[
        ("SESSIONFLOW_MAX_RUNS", "1"),
        ("ANTHROPIC_API_KEY", "stand-in"),
        ("ANTHROPIC_BASE_URL", &summaries),
    ]);
    let corpus = tempfile::tempdir().unwrap();
    let url = deployment.url();
    let sending = tokio::task::spawn_blocking({
        let dir = corpus.path().to_owned();
        move || backfill(&dir, &url, 40, 3)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let name: String = loop {
        let held: Option<(String, i64)> = sqlx::query_as(
            "SELECT enqueued_by, count(*) FROM sessions \
             WHERE enqueued_by IS NOT NULL AND parse_status = 'pending' GROUP BY 1",
        )
        .fetch_optional(&db)
        .await
        .unwrap();
        if let Some((name, n)) = held
            && n >= 5
        {
            break name;
        }
        if Instant::now() >= deadline {
            let states: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT lifecycle, parse_status, count(*) FROM sessions GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .fetch_all(&db)
            .await
            .unwrap();
            panic!("the worker never had 5 sessions waiting in its queue within 120 s: {states:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(name.ends_with(&format!("-{first}")), "{name}");
    let status = Command::new("kill")
        .args(["-TERM", &first.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut worker = deployment.workers.remove(0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while worker.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the worker did not stop within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing stays with it: what it had only queued is free for anyone at once.
    let kept: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sessions WHERE enqueued_by = $1 OR claimed_by = $1",
    )
    .bind(&name)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(kept, 0);
    let gone: i64 = sqlx::query_scalar("SELECT count(*) FROM workers WHERE id = $1")
        .bind(&name)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(gone, 0, "a stopped worker leaves no heartbeat");
    sending.await.unwrap();

    // Another worker takes everything at once, without the 10 minutes a queued session waits.
    deployment.start_worker();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let e = ends(&db).await;
        if e.other == 0 && e.summarized == 40 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} summarized, {} not done",
            e.summarized,
            e.other
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    db.close().await;
    drop(deployment);
    drop_database(&database).await;
}
