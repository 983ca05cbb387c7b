//! The Redis Streams consumer against real Redis (a unique stream per test, and a redis-server
//! of the test's own for the restart case) and real Postgres.

mod common;

use common::event;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use fred::prelude::{Client, ClientLike, StreamsInterface};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;
use sessionflow_pipeline::consumer::{self, ConsumerConfig, EventConsumer};
use sessionflow_pipeline::events::{
    Event, EventProcessor, Handler, HandlerError, HandlerRegistry, Payload, SessionStartHandler,
};
use sessionflow_stages::store::Store;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

type Entries = Vec<(String, HashMap<String, String>)>;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}:{}:{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn config(stream: &str, consumer: &str) -> ConsumerConfig {
    ConsumerConfig {
        stream: stream.to_owned(),
        consumer: consumer.to_owned(),
        block: Duration::from_millis(200),
        retry_after: Duration::from_millis(50),
        claim_idle: Duration::from_millis(300),
        ..ConsumerConfig::default()
    }
}

fn start(session: &str) -> Event {
    event(
        "session.start",
        session,
        json!({"cc_session_id": session, "source": "startup"}),
    )
}

async fn client(url: &str) -> Client {
    let client = consumer::redis_client(url).unwrap();
    client
        .init()
        .await
        .expect("Redis is up (scripts/services.sh)");
    client
}

fn spawn(
    url: &str,
    processor: Arc<EventProcessor>,
    config: ConsumerConfig,
) -> (CancellationToken, JoinHandle<()>) {
    let stop = CancellationToken::new();
    let consumer = EventConsumer::new(consumer::redis_client(url).unwrap(), processor, config);
    let task = tokio::spawn(consumer.run(stop.clone()));
    (stop, task)
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 20 s");
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn pending(client: &Client, stream: &str) -> u64 {
    consumer::pending(client, stream, consumer::GROUP)
        .await
        .unwrap()
}

/// The real session.start handler; these tests send no session.end, which needs the pipeline.
fn standard_processor(pool: &PgPool) -> Arc<EventProcessor> {
    let registry = HandlerRegistry::new().register(
        "session.start",
        SessionStartHandler::new(Store::from_pool(pool.clone())),
    );
    Arc::new(EventProcessor::new(pool.clone(), registry, "test-worker"))
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn an_added_event_is_recorded_once_even_when_added_twice(pool: PgPool) {
    let url = redis_url();
    let stream = unique("sf:test:events");
    let redis = client(&url).await;
    let processor = standard_processor(&pool);
    let (stop, task) = spawn(&url, Arc::clone(&processor), config(&stream, "c1"));
    let e = start("s1");
    consumer::publish(&redis, &stream, &e).await.unwrap();
    consumer::publish(&redis, &stream, &e).await.unwrap();
    eventually("both entries handled", async || {
        processor.stats().duplicates.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(count(&pool, "SELECT count(*) FROM events").await, 1);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM sessions WHERE lifecycle = 'detected'"
        )
        .await,
        1
    );
    assert_eq!(pending(&redis, &stream).await, 0, "both acked");
    let stopping = Instant::now();
    stop.cancel();
    task.await.unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(10));
}

struct AlwaysFails(AtomicU32);

impl Handler for AlwaysFails {
    fn handle<'a>(
        &'a self,
        _: &'a Event,
        _: &'a Payload,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        async { Err(HandlerError("the handler is broken".into())) }.boxed()
    }
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_handler_failing_three_times_sends_the_event_to_the_dead_letter_stream(pool: PgPool) {
    let url = redis_url();
    let stream = unique("sf:test:events");
    let redis = client(&url).await;
    let calls = Arc::new(AlwaysFails(AtomicU32::new(0)));
    struct Shared(Arc<AlwaysFails>);
    impl Handler for Shared {
        fn handle<'a>(
            &'a self,
            e: &'a Event,
            p: &'a Payload,
        ) -> BoxFuture<'a, Result<(), HandlerError>> {
            self.0.handle(e, p)
        }
    }
    let registry = HandlerRegistry::new().register("tool.used", Shared(Arc::clone(&calls)));
    let processor = Arc::new(EventProcessor::new(pool.clone(), registry, "test-worker"));
    let cfg = config(&stream, "c1");
    let dead = cfg.dead_letter_stream();
    let (stop, task) = spawn(&url, processor, cfg);
    let e = event("tool.used", "s1", json!({}));
    consumer::publish(&redis, &stream, &e).await.unwrap();
    eventually("a dead letter", async || {
        let len: u64 = redis.xlen(&dead).await.unwrap();
        len == 1
    })
    .await;
    assert_eq!(calls.0.load(Ordering::SeqCst), 3, "three attempts, no more");
    let letters: Entries = redis.xrange(&dead, "-", "+", None).await.unwrap();
    let fields = &letters[0].1;
    assert_eq!(fields["attempts"], "3");
    assert!(
        fields["error"].ends_with("handler failed: the handler is broken"),
        "{fields:?}"
    );
    assert_eq!(serde_json::from_str::<Event>(&fields["event"]).unwrap(), e);
    assert_eq!(pending(&redis, &stream).await, 0, "acked");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(calls.0.load(Ordering::SeqCst), 3, "not retried after");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM events WHERE handler_error IS NOT NULL"
        )
        .await,
        1
    );
    stop.cancel();
    task.await.unwrap();
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn an_entry_left_unacked_by_a_dead_consumer_is_reclaimed_and_processed_once(pool: PgPool) {
    let url = redis_url();
    let stream = unique("sf:test:events");
    let redis = client(&url).await;
    let _: () = redis
        .xgroup_create(&stream, consumer::GROUP, "$", true)
        .await
        .unwrap();
    consumer::publish(&redis, &stream, &start("s1"))
        .await
        .unwrap();
    // A consumer reads the entry and dies before acking it.
    let taken: HashMap<String, Entries> = redis
        .xreadgroup_map(
            consumer::GROUP,
            "dead-worker",
            Some(10),
            None,
            false,
            &stream,
            ">",
        )
        .await
        .unwrap();
    assert_eq!(taken[&stream].len(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;

    let processor = standard_processor(&pool);
    let (stop, task) = spawn(&url, Arc::clone(&processor), config(&stream, "survivor"));
    eventually("the abandoned entry processed", async || {
        processor.stats().processed.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(pending(&redis, &stream).await, 0);
    assert_eq!(count(&pool, "SELECT count(*) FROM events").await, 1);
    stop.cancel();
    task.await.unwrap();
}

/// A redis-server of the test's own, on a free port, keeping nothing on disk.
struct OwnRedis {
    port: u16,
    child: Child,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        OwnRedis { port, child }
    }

    async fn wait(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "own redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_redis_restart_is_survived_and_later_events_are_processed(pool: PgPool) {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let redis_server = OwnRedis::start(port);
    redis_server.wait().await;
    let stream = unique("sf:test:events");
    let processor = standard_processor(&pool);
    let (stop, task) = spawn(&url, Arc::clone(&processor), config(&stream, "c1"));
    let redis = client(&url).await;
    consumer::publish(&redis, &stream, &start("before"))
        .await
        .unwrap();
    eventually("the first event", async || {
        processor.stats().processed.load(Ordering::Relaxed) == 1
    })
    .await;

    drop(redis_server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!task.is_finished(), "the consumer survives the outage");
    let restarted = OwnRedis::start(port);
    restarted.wait().await;
    // The restarted server has no data: the consumer recreates its group and goes on.
    let redis = client(&url).await;
    eventually("the group recreated", async || {
        let groups: Result<Vec<HashMap<String, fred::types::Value>>, _> =
            redis.xinfo_groups(&stream).await;
        groups.is_ok_and(|g| !g.is_empty())
    })
    .await;
    for session in ["after-1", "after-2"] {
        consumer::publish(&redis, &stream, &start(session))
            .await
            .unwrap();
    }
    eventually("both later events", async || {
        processor.stats().processed.load(Ordering::Relaxed) == 3
    })
    .await;
    assert_eq!(count(&pool, "SELECT count(*) FROM sessions").await, 3);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

/// A TCP proxy to Postgres that the test can cut and restore.
struct Proxy {
    port: u16,
    cut: Arc<std::sync::atomic::AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let generation = Arc::new(tokio::sync::watch::channel(0u64).0);
        let (cut2, generation2) = (Arc::clone(&cut), Arc::clone(&generation));
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if cut2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut_signal = generation2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_signal.changed() => {}
                    }
                });
            }
        });
        Proxy {
            port,
            cut,
            generation,
        }
    }

    /// Drops every connection and refuses new ones.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_postgres_outage_is_waited_out_and_nothing_is_lost(pool: PgPool) {
    let database: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    let proxy = Proxy::start(5432).await;
    let through_proxy = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect(&format!(
            "postgres://postgres@127.0.0.1:{}/{database}",
            proxy.port
        ))
        .await
        .unwrap();
    let url = redis_url();
    let stream = unique("sf:test:events");
    let redis = client(&url).await;
    let processor = standard_processor(&through_proxy);
    let cfg = config(&stream, "c1");
    let dead = cfg.dead_letter_stream();
    let (stop, task) = spawn(&url, Arc::clone(&processor), cfg);
    consumer::publish(&redis, &stream, &start("before"))
        .await
        .unwrap();
    eventually("the first event", async || {
        processor.stats().processed.load(Ordering::Relaxed) == 1
    })
    .await;

    proxy.cut();
    for session in ["during-1", "during-2"] {
        consumer::publish(&redis, &stream, &start(session))
            .await
            .unwrap();
    }
    eventually("failures during the outage", async || {
        processor.stats().errors.load(Ordering::Relaxed) >= 4
    })
    .await;
    assert!(!task.is_finished(), "the consumer survives the outage");
    proxy.restore();
    eventually("the events held back", async || {
        processor.stats().processed.load(Ordering::Relaxed) == 3
    })
    .await;
    assert_eq!(count(&pool, "SELECT count(*) FROM events").await, 3);
    assert_eq!(count(&pool, "SELECT count(*) FROM sessions").await, 3);
    let letters: u64 = redis.xlen(&dead).await.unwrap();
    assert_eq!(letters, 0, "an outage sends nothing to the dead letters");
    assert_eq!(pending(&redis, &stream).await, 0);
    stop.cancel();
    task.await.unwrap();
}
