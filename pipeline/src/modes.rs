//! The service modes: `serve` (the HTTP API, events to Redis), `worker` (the Redis consumer, the
//! pipeline, the sweeps and the heartbeat) and `daemon` (both; with no Redis, fully embedded,
//! events handled in-process). Each runs until its stop token is cancelled, then stops taking
//! work and lets the runs in flight finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::ClientLike;
use sessionflow_stages::blob::{self, BlobError, BlobStore};
use sessionflow_stages::store::{Store, StoreError};
use sessionflow_stages::summarize::{
    AnthropicConfig, AnthropicSummarizer, ExtractiveSummarizer, Summarizer, SummaryError,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState, Ingest};
use crate::consumer::{self, ConsumerConfig, EventConsumer};
use crate::events::{EventProcessor, HandlerRegistry, Runs};
use crate::processors::{self, Processors};
use crate::queue::{PipelineQueue, QueueConfig};
use crate::runner::Stages;
use crate::{heartbeat, sweeps};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    Worker,
    Daemon,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Serve => "serve",
            Mode::Worker => "worker",
            Mode::Daemon => "daemon",
        }
    }
}

/// An API key shorter than this is warned about at start.
pub const MIN_KEY_CHARS: usize = 32;

/// Everything the modes are configured with (from the command line and environment).
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub redis_url: Option<String>,
    /// `s3://bucket/prefix` or a directory.
    pub blob: String,
    pub api_key: Option<String>,
    pub listen: SocketAddr,
    pub anthropic_api_key: Option<String>,
    /// The Messages API's address, when not Anthropic's own.
    pub anthropic_base_url: Option<String>,
    pub summary_model: Option<String>,
    pub max_runs: usize,
    /// The Redis stream of events (`sessionflow:events`).
    pub stream: String,
    /// Stream entries left idle this long by another consumer are taken over (60 s).
    pub claim_idle: Duration,
    /// Stream entries read and recorded as one batch at most (`SESSIONFLOW_EVENT_BATCH`, 200).
    pub event_batch: u64,
    /// Session processors' intervals by name, over their defaults.
    pub processor_intervals: std::collections::HashMap<String, Duration>,
    /// How the API guards itself.
    pub limits: api::Limits,
    /// Secrets taken out of rows, summaries and answers (`SESSIONFLOW_REDACT=rows`, the
    /// default), of the stored transcripts too (`all`), or not (`off`).
    pub redact: sessionflow_stages::redact::Mode,
    /// Each message's JSON line kept in `transcript_messages.raw` (`SESSIONFLOW_KEEP_RAW`).
    pub keep_raw: bool,
    /// Sessions last active longer ago are deleted, daily (`SESSIONFLOW_RETENTION_DAYS`); none:
    /// kept forever.
    pub retention: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum ModeError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Summary(#[from] SummaryError),
    #[error("Redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Runs `mode` until `stop` is cancelled.
pub async fn run(mode: Mode, settings: Settings, stop: CancellationToken) -> Result<(), ModeError> {
    Service::start(mode, settings, stop).await?.run().await
}

/// A started mode: its worker running, its API (if it has one) bound but not yet serving.
pub struct Service {
    worker: Option<Worker>,
    api: Option<(tokio::net::TcpListener, ApiState, api::Limits)>,
    stop: CancellationToken,
}

impl Service {
    /// Checks the settings, opens the store and blob store, starts the worker parts and binds
    /// the API's address, so that every configuration error shows before anything serves.
    pub async fn start(
        mode: Mode,
        settings: Settings,
        stop: CancellationToken,
    ) -> Result<Service, ModeError> {
        if mode == Mode::Serve && settings.redis_url.is_none() {
            return Err(ModeError::Config(
                "serve needs REDIS_URL: without Redis no worker would ever see the events it \
                 accepts (run `sessionflow daemon` for one process that does both)"
                    .into(),
            ));
        }
        if mode == Mode::Worker && settings.redis_url.is_none() {
            return Err(ModeError::Config(
                "worker needs REDIS_URL: it reads events from the stream (run `sessionflow \
                 daemon` for one process without Redis)"
                    .into(),
            ));
        }
        // None: no API (a worker); Some(None): an API without a bootstrap key.
        let api_key = match (mode, &settings.api_key) {
            (Mode::Worker, _) => None,
            (_, Some(key)) if !key.is_empty() => {
                if key.chars().count() < MIN_KEY_CHARS {
                    tracing::warn!(
                        "SESSIONFLOW_API_KEY is {} characters; anyone who guesses it reads every \
                         transcript: use at least {MIN_KEY_CHARS} random ones (openssl rand -hex 32)",
                        key.chars().count()
                    );
                }
                Some(Some(key.clone()))
            }
            _ => Some(None),
        };
        // This process's name as a worker (its heartbeat, its consumer, its claims) and in
        // Postgres' pg_stat_activity.
        let name = consumer::default_consumer_name();
        let store = Store::open_as(
            &settings.database_url,
            &format!("sessionflow {} {name}", mode.name()),
        )
        .await?;
        // Without a bootstrap key, callers bring keys from `sessionflow keys create`, and the
        // process's own monitor a random key that never leaves it.
        let api_key = match api_key {
            None => None,
            Some(Some(key)) => Some(key),
            Some(None) => {
                if store.live_keys().await? == 0 {
                    return Err(ModeError::Config(format!(
                        "no API key: {} needs SESSIONFLOW_API_KEY or a key in the database \
                         (`sessionflow keys create --role admin`)",
                        mode.name()
                    )));
                }
                tracing::info!(
                    "no SESSIONFLOW_API_KEY: only keys from `sessionflow keys` are accepted"
                );
                Some(sessionflow_stages::store::random_secret()?)
            }
        };
        let blobs: Arc<dyn BlobStore> = Arc::from(blob::open(&settings.blob).await?);
        tracing::info!(mode = mode.name(), blobs = %blobs.describe(), "sessionflow starting");

        let worker = match mode {
            Mode::Serve => None,
            Mode::Worker | Mode::Daemon => {
                Some(Worker::start(mode, &name, &settings, &store, &blobs, stop.clone()).await?)
            }
        };
        let api = match api_key {
            None => None,
            Some(key) => {
                let ingest = match (&settings.redis_url, &worker) {
                    (Some(url), _) => {
                        let client = consumer::redis_client(url)?;
                        let _connection = client.connect();
                        Ingest::Redis {
                            client,
                            stream: settings.stream.clone(),
                        }
                    }
                    (None, Some(worker)) => Ingest::Embedded(Arc::clone(&worker.processor)),
                    (None, None) => unreachable!("serve without Redis was refused above"),
                };
                let state = ApiState {
                    store: store.clone(),
                    blobs: Arc::clone(&blobs),
                    ingest,
                    api_key: Arc::from(key.as_str()),
                    max_transcript: api::MAX_TRANSCRIPT,
                    redact_uploads: settings.redact.blob(),
                };
                let addr = settings.listen;
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| ModeError::Listen { addr, source })?;
                Some((listener, state, settings.limits.clone()))
            }
        };
        Ok(Service { worker, api, stop })
    }

    /// Where the API listens (the port the system chose, when asked for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.api
            .as_ref()
            .and_then(|(listener, ..)| listener.local_addr().ok())
    }

    /// The API's routes and key, to call in-process (the daemon's own monitor).
    pub fn api(&self) -> Option<(axum::Router, Arc<str>)> {
        self.api.as_ref().map(|(_, state, limits)| {
            (
                api::router_with(state.clone(), limits),
                Arc::clone(&state.api_key),
            )
        })
    }

    /// Serves until the stop token is cancelled, then lets the worker's runs in flight finish.
    pub async fn run(self) -> Result<(), ModeError> {
        let served = match self.api {
            None => {
                self.stop.cancelled().await;
                Ok(())
            }
            Some((listener, state, limits)) => {
                serve(listener, state, &limits, self.stop.clone()).await
            }
        };
        if let Some(worker) = self.worker {
            worker.stop().await;
        }
        tracing::info!("sessionflow stopped");
        served
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    limits: &api::Limits,
    stop: CancellationToken,
) -> Result<(), ModeError> {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    tracing::info!("API listening on http://{addr}");
    axum::serve(listener, api::router_with(state, limits))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
        .map_err(|source| ModeError::Listen { addr, source })
}

/// The parts of a worker: pipeline, handlers, consumer (with Redis), sweeps, heartbeat.
struct Worker {
    /// Its name as a consumer and in `workers` (host-pid): what its claims carry.
    name: String,
    store: Store,
    queue: Arc<PipelineQueue>,
    processor: Arc<EventProcessor>,
    tasks: Vec<JoinHandle<()>>,
}

impl Worker {
    async fn start(
        mode: Mode,
        name: &str,
        settings: &Settings,
        store: &Store,
        blobs: &Arc<dyn BlobStore>,
        stop: CancellationToken,
    ) -> Result<Self, ModeError> {
        let summarizer: Arc<dyn Summarizer> = match &settings.anthropic_api_key {
            Some(key) if !key.is_empty() => {
                let mut config = AnthropicConfig::new(key.clone(), settings.summary_model.clone());
                if let Some(url) = &settings.anthropic_base_url {
                    config.base_url.clone_from(url);
                }
                Arc::new(AnthropicSummarizer::new(config)?)
            }
            _ => Arc::new(ExtractiveSummarizer),
        };
        tracing::info!(summarizer = summarizer.name(), "summaries");
        let consumer_config = ConsumerConfig {
            stream: settings.stream.clone(),
            consumer: name.to_owned(),
            claim_idle: settings.claim_idle,
            count: settings.event_batch.max(1),
            ..ConsumerConfig::default()
        };
        let name = name.to_owned();
        let mut stages = Stages::new(store, blobs, Arc::clone(&summarizer), &name);
        stages.parse.set_redaction(settings.redact);
        stages.parse.set_keep_raw(settings.keep_raw);
        let config = QueueConfig {
            max_runs: settings.max_runs,
            ..QueueConfig::default()
        };
        let queue = Arc::new(PipelineQueue::start(stages, config));
        let pool = store.pool().clone();
        let registry =
            HandlerRegistry::standard(Runs::new(store.clone(), Arc::clone(&queue), &name));
        let processor = Arc::new(EventProcessor::new(pool.clone(), registry, &name));
        // Alive before it takes any work: until its first heartbeat, its leases and claims would
        // look like a silent worker's, and another worker would take them over (and handle an
        // event a second time).
        if let Err(e) = heartbeat::beat(
            &pool,
            &name,
            mode.name(),
            &queue,
            processor.stats(),
            &mut heartbeat::Rates::default(),
        )
        .await
        {
            tracing::warn!("first heartbeat failed, will retry: {e}");
        }
        let mut tasks = Vec::new();
        match &settings.redis_url {
            Some(url) => {
                let consumer = EventConsumer::new(
                    consumer::redis_client(url)?,
                    Arc::clone(&processor),
                    consumer_config,
                );
                tasks.push(tokio::spawn(consumer.run(stop.clone())));
            }
            None => tracing::info!(
                "Event consumer started (embedded: the API processes events in-process)"
            ),
        }
        tasks.push(sweeps::spawn(
            sweeps::Sweeper {
                store: store.clone(),
                queue: Arc::clone(&queue),
                blobs: Arc::clone(blobs),
                summarizer,
                events: Arc::clone(&processor),
                worker: name.clone(),
                every: sweeps::RECOVER_EVERY,
            },
            stop.clone(),
        ));
        let (scheduler, _) = processors::scheduler::spawn(
            Processors::standard(store.pool().clone(), Arc::clone(blobs)),
            &settings.processor_intervals,
            stop.clone(),
        );
        tasks.push(scheduler);
        if let Some(keep) = settings.retention {
            tasks.push(crate::deletion::spawn_retention(
                store.clone(),
                Arc::clone(blobs),
                keep,
                stop.clone(),
            ));
        }
        tasks.push(heartbeat::spawn(
            pool,
            name.clone(),
            mode.name(),
            Arc::clone(&queue),
            Arc::clone(&processor),
            stop,
        ));
        Ok(Worker {
            name,
            store: store.clone(),
            queue,
            processor,
            tasks,
        })
    }

    /// Waits for the background tasks (they watch the same stop token), lets the runs in
    /// flight finish, and hands back the sessions it had queued but not started, so that any
    /// other worker takes them at once.
    async fn stop(self) {
        for task in self.tasks {
            let _ = task.await;
        }
        self.queue.stop().await;
        match self.store.release_queued(&self.name, None).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "handed back the sessions queued here"),
            Err(e) => tracing::warn!("could not hand back the sessions queued here: {e}"),
        }
        if let Err(e) = heartbeat::remove(self.store.pool(), &self.name).await {
            tracing::warn!("could not remove this worker's heartbeat: {e}");
        }
    }
}
