//! The runner: sessions flow through the six stages as one stream, each stage a
//! `buffer_unordered` step, reading top to bottom like the data flow.
//!
//! A run holds a permit from the moment it is taken off the queue until it ends, so at most
//! `max_runs` sessions are anywhere in the pipeline at once; the stream is pulled, so a slow
//! stage (a summarizer waiting on a rate-limited API) holds back the stages before it and the
//! queue behind them instead of letting work pile up in memory.
//!
//! Stages return outcomes; the runner records how a run ended: a stage that fails a session has
//! it marked `failed` here, with the stage's name (`failed_stage`).

use std::sync::Arc;
use std::time::Instant;

use futures::{Stream, StreamExt};
use sessionflow_stages::blob::BlobStore;
use sessionflow_stages::stage::{
    Backup, Download, Fetch, Parse, Persist, RunEnd, RunReport, Stage, Summarize,
};
use sessionflow_stages::store::Store;
use sessionflow_stages::summarize::Summarizer;
use sessionflow_stages::transcript::ParseOptions;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::PipelineMetrics;

/// The six stages, each with the ports it uses, and the store the runner records outcomes in.
pub struct Stages {
    pub store: Store,
    pub fetch: Fetch,
    pub download: Download,
    pub parse: Parse,
    pub persist: Persist,
    pub summarize: Summarize,
    pub backup: Backup,
}

impl Stages {
    /// The stages of `worker`'s runs over one store (its connections for runs, see
    /// [`Store::for_runs`]), one blob store and one summarizer (messages' raw JSON is not kept
    /// unless [`Parse::set_keep_raw`] says so).
    pub fn new(
        store: &Store,
        blobs: &Arc<dyn BlobStore>,
        summarizer: Arc<dyn Summarizer>,
        worker: &str,
    ) -> Self {
        let store = &store.for_runs();
        let options = ParseOptions::default();
        Stages {
            store: store.clone(),
            fetch: Fetch::new(store.clone(), worker),
            download: Download::new(Arc::clone(blobs)),
            parse: Parse::new(options),
            persist: Persist::new(store.clone()),
            summarize: Summarize::new(store.clone(), summarizer),
            backup: Backup::new(store.clone(), Arc::clone(blobs)),
        }
    }
}

/// One session on its way through the stages.
struct Run<T> {
    session_id: String,
    state: Result<T, RunEnd>,
    /// Released when the run ends, wherever that is.
    _permit: OwnedSemaphorePermit,
}

/// `.stage(…)`: runs a stage over every live run of the stream, `concurrency` at a time,
/// measuring it and recording a session it failed; runs that already ended pass through
/// untouched.
trait StageStream<T>: Stream<Item = Run<T>> + Sized + Send + 'static
where
    T: Send + 'static,
{
    fn stage<S: Stage<Input = T>>(
        self,
        stage: S,
        store: &Store,
        metrics: Arc<PipelineMetrics>,
        concurrency: usize,
    ) -> impl Stream<Item = Run<S::Output>> + Send + 'static {
        let stage = Arc::new(stage);
        let store = store.clone();
        self.map(move |run| {
            let stage = Arc::clone(&stage);
            let metrics = Arc::clone(&metrics);
            let store = store.clone();
            async move {
                let Run {
                    session_id,
                    state,
                    _permit,
                } = run;
                let state = match state {
                    Ok(input) => {
                        let counters = metrics.stage(stage.name());
                        counters.enter();
                        let started = Instant::now();
                        let outcome = stage.run(input).await;
                        counters.leave(&outcome, started.elapsed());
                        match outcome {
                            Err(RunEnd::Failed(reason)) => {
                                record_failure(&store, &session_id, reason, stage.name()).await
                            }
                            outcome => outcome,
                        }
                    }
                    Err(end) => Err(end),
                };
                Run {
                    session_id,
                    state,
                    _permit,
                }
            }
        })
        .buffer_unordered(concurrency)
    }
}

impl<T: Send + 'static, St: Stream<Item = Run<T>> + Send + 'static> StageStream<T> for St {}

/// Marks the session failed by `stage`; if even that cannot be written, the run is deferred to
/// the recovery sweep.
async fn record_failure<T>(
    store: &Store,
    session_id: &str,
    reason: String,
    stage: &str,
) -> Result<T, RunEnd> {
    match store.fail_session(session_id, &reason, Some(stage)).await {
        Ok(_) => Err(RunEnd::Failed(reason)),
        Err(e) => Err(RunEnd::Deferred(format!(
            "{reason}; and recording that failed: {e}"
        ))),
    }
}

/// Runs every session id `ids` yields through `stages`, at most `max_runs` at once, calling
/// `on_end` as each run ends. Returns when `ids` ends and every run taken from it has ended.
pub async fn run(
    ids: impl Stream<Item = String> + Send + 'static,
    stages: Stages,
    max_runs: usize,
    metrics: Arc<PipelineMetrics>,
    mut on_end: impl FnMut(&str, &Result<RunReport, RunEnd>) + Send,
) {
    let permits = Arc::new(Semaphore::new(max_runs.max(1)));
    let started = Arc::clone(&metrics);
    let runs = ids.then(move |session_id| {
        let permits = Arc::clone(&permits);
        let metrics = Arc::clone(&started);
        async move {
            // The semaphore is never closed, so acquiring can only wait, not fail.
            let permit = permits
                .acquire_owned()
                .await
                .expect("the run semaphore is never closed");
            metrics.run_started();
            Run {
                state: Ok(session_id.clone()),
                session_id,
                _permit: permit,
            }
        }
    });
    let n = max_runs.max(1);
    let Stages {
        store,
        fetch,
        download,
        parse,
        persist,
        summarize,
        backup,
    } = stages;
    runs.stage(fetch, &store, Arc::clone(&metrics), n)
        .stage(download, &store, Arc::clone(&metrics), n)
        .stage(parse, &store, Arc::clone(&metrics), n)
        .stage(persist, &store, Arc::clone(&metrics), n)
        .stage(summarize, &store, Arc::clone(&metrics), n)
        .stage(backup, &store, Arc::clone(&metrics), n)
        .for_each(|run| {
            metrics.run_ended(&run.state);
            match &run.state {
                Ok(report) => tracing::info!(
                    session = %run.session_id,
                    messages = report.messages,
                    summarized = report.summarized,
                    backed_up = report.backed_up,
                    "session processed"
                ),
                Err(end @ RunEnd::Stopped(_)) => {
                    tracing::info!(session = %run.session_id, "run {end}")
                }
                Err(end) => tracing::warn!(session = %run.session_id, "run {end}"),
            }
            on_end(&run.session_id, &run.state);
            futures::future::ready(())
        })
        .await;
}
