//! The Redis Streams consumer: events from the stream `sessionflow:events`, read by any number of
//! workers through the group `sessionflow-workers`, each recorded and handled once in Postgres.
//!
//! At start and every 30 s while it runs it re-claims what other consumers left: entries idle
//! for over a minute (XAUTOCLAIM, following the cursor), and at once every entry pending on a
//! consumer whose worker's heartbeat went silent; a silent consumer that owns nothing is removed
//! from the group. Between re-claims it reads up to 200 entries at a time (XREADGROUP COUNT 200
//! BLOCK 5000; `SESSIONFLOW_EVENT_BATCH`) and records and handles them as one batch
//! (`EventProcessor::process_batch`). The stream is a signal: the API recorded each event in
//! Postgres before adding it, and workers handle what the stream never brought (see
//! `EventProcessor::handle_unhandled`). An entry is acked only after its Postgres work
//! committed, the batch's together. A failing entry stays pending
//! and is retried; its delivery count comes from Redis (XPENDING), so it survives restarts, and
//! at the third failure the entry is copied to `sessionflow:events:dead` with its error and acked.
//! Redis or Postgres being away is logged and waited out: the loop never ends the process.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fred::prelude::{
    Builder, Client, ClientLike, Config, Error as RedisError, ReconnectPolicy, StreamsInterface,
};
use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventProcessor, ProcessError};

pub const STREAM: &str = "sessionflow:events";
pub const GROUP: &str = "sessionflow-workers";
/// The field of a stream entry that holds the event envelope as JSON.
pub const FIELD: &str = "event";
/// Entries read (and recorded as one batch) at once, unless configured otherwise.
pub const DEFAULT_BATCH: u64 = 200;

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub stream: String,
    pub group: String,
    /// This consumer's name in the group: host-pid by default.
    pub consumer: String,
    /// Entries idle this long are taken from other consumers.
    pub claim_idle: Duration,
    /// How often idle entries and silent consumers' entries are re-claimed.
    pub reclaim_every: Duration,
    pub block: Duration,
    /// Entries read, recorded and handled as one batch at most.
    pub count: u64,
    /// Deliveries after which a failing entry goes to the dead-letter stream.
    pub max_deliveries: u64,
    /// Wait before retrying a failed entry, and before retrying after an outage.
    pub retry_after: Duration,
    pub stats_every: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            stream: STREAM.to_owned(),
            group: GROUP.to_owned(),
            consumer: default_consumer_name(),
            claim_idle: Duration::from_secs(60),
            reclaim_every: Duration::from_secs(30),
            block: Duration::from_secs(5),
            count: DEFAULT_BATCH,
            max_deliveries: 3,
            retry_after: Duration::from_secs(1),
            stats_every: Duration::from_secs(60),
        }
    }
}

impl ConsumerConfig {
    /// The dead-letter stream: `{stream}:dead`.
    pub fn dead_letter_stream(&self) -> String {
        format!("{}:dead", self.stream)
    }
}

/// This process's name as a consumer and a worker: host-pid.
pub fn default_consumer_name() -> String {
    let host = crate::hostname().unwrap_or_else(|| "host".to_owned());
    format!("{host}-{}", std::process::id())
}

/// A Redis client that reconnects forever, with exponential back-off up to 5 s.
pub fn redis_client(url: &str) -> Result<Client, RedisError> {
    let config = Config::from_url(url)?;
    Builder::from_config(config)
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build()
}

/// Appends an event to the stream (what the API does with each accepted event).
pub async fn publish(client: &Client, stream: &str, event: &Event) -> Result<String, RedisError> {
    let json = serde_json::to_string(event)
        .map_err(|e| RedisError::new(fred::error::ErrorKind::InvalidArgument, e.to_string()))?;
    client
        .xadd(stream, false, None::<()>, "*", vec![(FIELD, json)])
        .await
}

type Entry = (String, HashMap<String, String>);

/// XPENDING's summary: count, smallest and largest id, entries per consumer.
type PendingSummary = (u64, Option<String>, Option<String>, Vec<(String, String)>);

/// Entries of `group` delivered and not yet acked.
pub async fn pending(client: &Client, stream: &str, group: &str) -> Result<u64, RedisError> {
    let summary: PendingSummary = client.xpending(stream, group, ()).await?;
    Ok(summary.0)
}

/// A consumer of the group, as XINFO CONSUMERS describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerInfo {
    pub name: String,
    /// Entries delivered to it and not acked.
    pub pending: u64,
    /// Since its last attempted interaction.
    pub idle: Duration,
}

/// The consumers of `group` (none when the group or the stream does not exist).
pub async fn consumers(
    client: &Client,
    stream: &str,
    group: &str,
) -> Result<Vec<ConsumerInfo>, RedisError> {
    let listed: Result<Vec<HashMap<String, fred::types::Value>>, RedisError> =
        client.xinfo_consumers(stream, group).await;
    let listed = match listed {
        Ok(listed) => listed,
        Err(e) if e.details().contains("NOGROUP") || e.details().contains("no such key") => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    Ok(listed
        .into_iter()
        .map(|c| {
            let number = |key: &str| c.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
            ConsumerInfo {
                name: c
                    .get("name")
                    .and_then(|v| v.as_string())
                    .unwrap_or_default(),
                pending: number("pending"),
                idle: Duration::from_millis(number("idle")),
            }
        })
        .collect())
}

/// Entries waiting for another try.
#[derive(Default)]
struct Retries {
    /// Failed by a handler: claimed again (raising their delivery count) after a pause.
    failed: Vec<String>,
    /// Hit a database outage: processed again from memory, without counting a delivery.
    stalled: Vec<Entry>,
}

impl Retries {
    fn is_empty(&self) -> bool {
        self.failed.is_empty() && self.stalled.is_empty()
    }
}

pub struct EventConsumer {
    client: Client,
    processor: Arc<EventProcessor>,
    config: ConsumerConfig,
}

impl EventConsumer {
    pub fn new(client: Client, processor: Arc<EventProcessor>, config: ConsumerConfig) -> Self {
        EventConsumer {
            client,
            processor,
            config,
        }
    }

    /// Runs until `stop` is cancelled; returns within a read's block time after that.
    pub async fn run(self, stop: CancellationToken) {
        // The client connects and reconnects by itself, for as long as it takes.
        let _connection = self.client.connect();
        loop {
            let connected = tokio::select! {
                _ = stop.cancelled() => return,
                connected = self.connect() => connected,
            };
            match connected {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!("event consumer: Redis unavailable, retrying: {e}");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(self.config.retry_after) => {}
                    }
                }
            }
        }
        tracing::info!(consumer = %self.config.consumer, stream = %self.config.stream, "Event consumer started");
        let mut last_reclaim: Option<Instant> = None;
        let mut retry = Retries::default();
        let mut last_stats = Instant::now();
        while !stop.is_cancelled() {
            let step = async {
                if last_reclaim.is_none_or(|at| at.elapsed() >= self.config.reclaim_every) {
                    self.claim_abandoned(&mut retry).await?;
                    self.claim_from_silent(&mut retry).await?;
                    last_reclaim = Some(Instant::now());
                }
                if !retry.is_empty() {
                    tokio::time::sleep(self.config.retry_after).await;
                    let stalled = std::mem::take(&mut retry.stalled);
                    self.handle_all(stalled, &mut retry).await?;
                    let failed = std::mem::take(&mut retry.failed);
                    if !failed.is_empty() {
                        self.retry(failed, &mut retry).await?;
                    }
                }
                self.read_new(&mut retry).await
            };
            let outcome = tokio::select! {
                _ = stop.cancelled() => break,
                outcome = step => outcome,
            };
            if let Err(e) = outcome {
                tracing::warn!("event consumer: Redis unavailable, retrying: {e}");
                // A Redis that restarted without its data has lost the group too.
                if e.details().contains("NOGROUP") {
                    let _ = self.connect_group().await;
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(self.config.retry_after) => {}
                }
            }
            if last_stats.elapsed() >= self.config.stats_every {
                self.log_stats().await;
                last_stats = Instant::now();
            }
        }
        tracing::info!("event consumer stopped");
    }

    async fn connect(&self) -> Result<(), RedisError> {
        self.client.wait_for_connect().await?;
        self.connect_group().await
    }

    /// Creates the group (and the stream) unless it exists. A new group starts at the beginning
    /// of the stream: events added before any worker ran are not lost (and recording is
    /// idempotent, so none counts twice).
    async fn connect_group(&self) -> Result<(), RedisError> {
        let created: Result<(), RedisError> = self
            .client
            .xgroup_create(&self.config.stream, &self.config.group, "0", true)
            .await;
        match created {
            Err(e) if !e.details().contains("BUSYGROUP") => Err(e),
            _ => Ok(()),
        }
    }

    /// Entries left idle by consumers that died, taken over and processed first.
    async fn claim_abandoned(&self, retry: &mut Retries) -> Result<(), RedisError> {
        let mut cursor = "0-0".to_owned();
        loop {
            let (next, entries): (String, Vec<Entry>) = self
                .client
                .xautoclaim_values(
                    &self.config.stream,
                    &self.config.group,
                    &self.config.consumer,
                    self.config.claim_idle.as_millis() as u64,
                    cursor.as_str(),
                    Some(self.config.count),
                    false,
                )
                .await?;
            if !entries.is_empty() {
                tracing::info!(count = entries.len(), "claimed abandoned events");
            }
            self.handle_all(entries, retry).await?;
            if next == "0-0" {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// Entries pending on consumers whose worker's heartbeat went silent, taken at once (not
    /// after the idle time); a silent consumer that owns nothing is removed from the group.
    async fn claim_from_silent(&self, retry: &mut Retries) -> Result<(), RedisError> {
        let live = match crate::heartbeat::live_workers(self.processor.pool()).await {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!("cannot tell which workers live, re-claim waits: {e}");
                return Ok(());
            }
        };
        for consumer in consumers(&self.client, &self.config.stream, &self.config.group).await? {
            if consumer.name == self.config.consumer || live.contains(&consumer.name) {
                continue;
            }
            if consumer.pending == 0 {
                if consumer.idle >= crate::heartbeat::SILENT_AFTER {
                    let _: i64 = self
                        .client
                        .xgroup_delconsumer(&self.config.stream, &self.config.group, &consumer.name)
                        .await?;
                    tracing::info!(consumer = %consumer.name, "removed a silent consumer that owned nothing");
                }
                continue;
            }
            let pending: Vec<(String, String, u64, u64)> = self
                .client
                .xpending(
                    &self.config.stream,
                    &self.config.group,
                    ("-", "+", self.config.count.max(100), consumer.name.as_str()),
                )
                .await?;
            let ids: Vec<String> = pending.into_iter().map(|(id, ..)| id).collect();
            if ids.is_empty() {
                continue;
            }
            let entries: Vec<Entry> = self
                .client
                .xclaim_values(
                    &self.config.stream,
                    &self.config.group,
                    &self.config.consumer,
                    0,
                    ids,
                    None,
                    None,
                    None,
                    false,
                    false,
                )
                .await?;
            tracing::warn!(
                consumer = %consumer.name,
                count = entries.len(),
                "took over the events of a consumer whose worker went silent"
            );
            self.handle_all(entries, retry).await?;
        }
        Ok(())
    }

    async fn read_new(&self, retry: &mut Retries) -> Result<(), RedisError> {
        let response: HashMap<String, Vec<Entry>> = self
            .client
            .xreadgroup_map(
                &self.config.group,
                &self.config.consumer,
                Some(self.config.count),
                Some(self.config.block.as_millis() as u64),
                false,
                &self.config.stream,
                ">",
            )
            .await?;
        for (_, entries) in response {
            self.handle_all(entries, retry).await?;
        }
        Ok(())
    }

    /// Claims this consumer's failed entries again, which raises their delivery count.
    async fn retry(&self, ids: Vec<String>, retry: &mut Retries) -> Result<(), RedisError> {
        let entries: Vec<Entry> = self
            .client
            .xclaim_values(
                &self.config.stream,
                &self.config.group,
                &self.config.consumer,
                0,
                ids,
                None,
                None,
                None,
                false,
                false,
            )
            .await?;
        self.handle_all(entries, retry).await
    }

    /// Records and handles `entries` as one batch ([`EventProcessor::process_batch`]), then
    /// acks together those whose work committed; each failure is settled alone.
    async fn handle_all(&self, entries: Vec<Entry>, retry: &mut Retries) -> Result<(), RedisError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut events = Vec::with_capacity(entries.len());
        let mut outcomes: Vec<Option<Result<(), Failure>>> = Vec::with_capacity(entries.len());
        for (_, fields) in &entries {
            match fields
                .get(FIELD)
                .map(|json| serde_json::from_str::<Event>(json))
            {
                None => outcomes.push(Some(Err(Failure::Permanent(format!(
                    "entry has no `{FIELD}` field"
                ))))),
                Some(Err(e)) => outcomes.push(Some(Err(Failure::Permanent(format!(
                    "not an event envelope: {e}"
                ))))),
                Some(Ok(event)) => {
                    events.push(event);
                    outcomes.push(None);
                }
            }
        }
        let mut processed = self
            .processor
            .process_batch(&events)
            .await
            .into_iter()
            .zip(events);
        let mut acks = Vec::with_capacity(entries.len());
        for ((id, fields), outcome) in entries.into_iter().zip(outcomes) {
            let outcome = match outcome {
                Some(failure) => failure,
                // Handled here, before, or by a live worker holding it: the entry has done its
                // part.
                None => match processed.next() {
                    Some((Ok(_), _)) => Ok(()),
                    Some((Err(ProcessError::Invalid(e)), _)) => {
                        Err(Failure::Permanent(e.to_string()))
                    }
                    Some((Err(e @ ProcessError::Database { .. }), _)) => {
                        Err(Failure::Outage(e.to_string()))
                    }
                    Some((Err(e), event)) => Err(Failure::Transient(event.id, e.to_string())),
                    None => Err(Failure::Outage("the batch lost an event".into())),
                },
            };
            match outcome {
                Ok(()) => acks.push(id),
                Err(failure) => self.settle(id, fields, failure, retry).await?,
            }
        }
        if !acks.is_empty() {
            let _: i64 = self
                .client
                .xack(&self.config.stream, &self.config.group, acks)
                .await?;
        }
        Ok(())
    }

    /// What becomes of an entry that failed: kept for another try from memory (the database was
    /// away), dead-lettered (malformed, or failing for the last time), or claimed again later.
    async fn settle(
        &self,
        id: String,
        fields: HashMap<String, String>,
        failure: Failure,
        retry: &mut Retries,
    ) -> Result<(), RedisError> {
        match failure {
            Failure::Outage(error) => {
                tracing::warn!(entry = %id, "database unavailable, will retry: {error}");
                retry.stalled.push((id, fields));
            }
            Failure::Permanent(error) => {
                self.dead_letter(&id, &id, fields.get(FIELD), &error, 1)
                    .await?;
            }
            Failure::Transient(event_id, error) => {
                let deliveries = self.deliveries(&id).await?;
                if deliveries >= self.config.max_deliveries {
                    self.dead_letter(&id, &event_id, fields.get(FIELD), &error, deliveries)
                        .await?;
                } else {
                    tracing::warn!(entry = %id, event = %event_id, deliveries, "event failed, will retry: {error}");
                    retry.failed.push(id);
                }
            }
        }
        Ok(())
    }

    /// How many times Redis has delivered the entry.
    async fn deliveries(&self, id: &str) -> Result<u64, RedisError> {
        let pending: Vec<(String, String, u64, u64)> = self
            .client
            .xpending(&self.config.stream, &self.config.group, (id, id, 1))
            .await?;
        Ok(pending.first().map_or(1, |entry| entry.3))
    }

    async fn dead_letter(
        &self,
        entry: &str,
        event_id: &str,
        event: Option<&String>,
        error: &str,
        attempts: u64,
    ) -> Result<(), RedisError> {
        let _: String = self
            .client
            .xadd(
                self.config.dead_letter_stream(),
                false,
                None::<()>,
                "*",
                vec![
                    (FIELD, event.cloned().unwrap_or_default()),
                    ("error", error.to_owned()),
                    ("entry", entry.to_owned()),
                    ("attempts", attempts.to_string()),
                ],
            )
            .await?;
        let _: i64 = self
            .client
            .xack(&self.config.stream, &self.config.group, entry)
            .await?;
        tracing::error!("Event {event_id} permanently failed after {attempts} attempts: {error}");
        Ok(())
    }

    async fn log_stats(&self) {
        let stats = self.processor.stats();
        let pending = pending(&self.client, &self.config.stream, &self.config.group).await;
        tracing::info!(
            "Consumer stats: {} processed, {} duplicates, {} errors, {} pending",
            stats.processed.load(Ordering::Relaxed),
            stats.duplicates.load(Ordering::Relaxed),
            stats.errors.load(Ordering::Relaxed),
            pending
                .map(|p| p.to_string())
                .unwrap_or_else(|_| "?".to_owned()),
        );
    }
}

enum Failure {
    /// Retrying cannot help: a malformed entry.
    Permanent(String),
    /// A handler failed: retry, up to the delivery limit.
    Transient(String, String),
    /// The database is unreachable: retry until it is back, however long.
    Outage(String),
}
