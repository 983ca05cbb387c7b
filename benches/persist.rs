//! Persist throughput in rows (messages + content blocks) per second against a plain `COPY` of
//! the same rows into the same tables with their indexes: the 13 fixtures, four times over, per
//! iteration. Needs Postgres (`DATABASE_URL`'s server; the bench uses its own database
//! `sessionflow_bench`). Run with `scripts/services.sh` sourced, then
//! `cargo bench --bench persist`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::future::join_all;
use sessionflow_stages::store::{Lifecycle, NewSession, Store};
use sessionflow_stages::transcript::{ContentBlock, ParseOptions, ParsedTranscript, parse_bytes};

const ROUNDS: usize = 4;

fn transcripts() -> Vec<ParsedTranscript> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/transcripts");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    let options = ParseOptions {
        keep_raw: true,
        ..ParseOptions::default()
    };
    let mut parsed = Vec::new();
    for _ in 0..ROUNDS {
        for path in &paths {
            parsed.push(parse_bytes(
                &std::fs::read(path).expect("fixture"),
                &options,
            ));
        }
    }
    parsed
}

fn bench_url() -> String {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base);
    format!("{base}/sessionflow_bench")
}

async fn reset(store: &Store, count: usize) {
    sqlx::query("TRUNCATE sessions CASCADE")
        .execute(store.pool())
        .await
        .expect("truncate");
    for i in 0..count {
        let id = format!("bench-{i}");
        store
            .create_session(&NewSession {
                id: &id,
                workspace_id: "bench",
                lifecycle: Some(Lifecycle::Ended),
                transcript_key: Some("k"),
                ..NewSession::default()
            })
            .await
            .expect("session");
        store.claim_for_parse(&id, "bench").await.expect("claim");
    }
    // One claim for every session, so the timed part passes it without looking it up.
    sqlx::query("UPDATE sessions SET claim = 'bench'")
        .execute(store.pool())
        .await
        .expect("claims");
}

/// One CSV field: empty for NULL, quoted otherwise.
fn field(out: &mut String, value: Option<&str>) {
    if let Some(v) = value {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    }
}

fn csv(parsed: &[ParsedTranscript]) -> (String, String) {
    let (mut messages, mut blocks) = (String::new(), String::new());
    for (i, p) in parsed.iter().enumerate() {
        let id = format!("bench-{i}");
        for m in &p.messages {
            let u = m.usage;
            let num = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
            let _ = write!(
                messages,
                "{id},{},{},{},",
                m.ordinal,
                m.line_number,
                m.kind.as_str()
            );
            field(&mut messages, m.role.as_deref());
            messages.push(',');
            field(&mut messages, m.model.as_deref());
            let _ = write!(
                messages,
                ",{},{},{},{},{},{},{},{},{},{},",
                num(u.map(|u| u.input_tokens)),
                num(u.map(|u| u.output_tokens)),
                num(u.map(|u| u.cache_creation_input_tokens)),
                num(u.map(|u| u.cache_read_input_tokens)),
                m.timestamp.map(|t| t.to_rfc3339()).unwrap_or_default(),
                m.is_sidechain,
                m.has_text(),
                m.has_thinking(),
                m.has_tool_use(),
                m.has_tool_result()
            );
            field(&mut messages, m.raw.as_deref());
            messages.push('\n');
            for (order, b) in m.blocks.iter().enumerate() {
                let _ = write!(blocks, "{id},{},{order},{},", m.ordinal, b.block_type());
                let (mut text, mut thinking, mut name, mut use_id, mut input, mut err, mut result) =
                    (None, None, None, None, None, None, None);
                match b {
                    ContentBlock::Text { text: t } => text = Some(t.as_str()),
                    ContentBlock::Thinking { thinking: t } => thinking = Some(t.as_str()),
                    ContentBlock::ToolUse {
                        id,
                        name: n,
                        input: i,
                    } => {
                        name = Some(n.as_str());
                        use_id = Some(id.as_str());
                        input = i.as_ref().map(|r| r.get());
                    }
                    ContentBlock::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    } => {
                        use_id = Some(tool_use_id.as_str());
                        result = Some(content.as_str());
                        err = Some(*is_error);
                    }
                    _ => {}
                }
                for (n, v) in [text, thinking, name, use_id, input]
                    .into_iter()
                    .enumerate()
                {
                    if n > 0 {
                        blocks.push(',');
                    }
                    field(&mut blocks, v);
                }
                let _ = write!(
                    blocks,
                    ",{},",
                    err.map(|e| e.to_string()).unwrap_or_default()
                );
                field(&mut blocks, result);
                blocks.push('\n');
            }
        }
    }
    (messages, blocks)
}

async fn copy_rows(store: &Store, messages: &str, blocks: &str) {
    let mut conn = store.pool().acquire().await.expect("connection");
    let mut tx = sqlx::Connection::begin(&mut *conn).await.expect("begin");
    let mut copy = tx
        .copy_in_raw("COPY transcript_messages FROM STDIN WITH (FORMAT csv)")
        .await
        .expect("copy messages");
    copy.send(messages.as_bytes()).await.expect("send");
    copy.finish().await.expect("finish");
    let mut copy = tx
        .copy_in_raw("COPY content_blocks FROM STDIN WITH (FORMAT csv)")
        .await
        .expect("copy blocks");
    copy.send(blocks.as_bytes()).await.expect("send");
    copy.finish().await.expect("finish");
    tx.commit().await.expect("commit");
}

/// Persists every transcript as session `bench-{i}`, `at_once` sessions concurrently.
async fn persist_all(store: &Store, parsed: &[ParsedTranscript], at_once: usize) {
    let indexed: Vec<(usize, &ParsedTranscript)> = parsed.iter().enumerate().collect();
    for chunk in indexed.chunks(at_once) {
        join_all(chunk.iter().map(|(i, p)| async move {
            store
                .persist(&format!("bench-{i}"), p, "bench")
                .await
                .expect("persist")
        }))
        .await;
    }
}

/// Time of `iters` runs of `work`, each after a fresh set of `sessions` claimed sessions.
fn timed<F: std::future::Future<Output = ()>>(
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    sessions: usize,
    iters: u64,
    work: impl Fn() -> F,
) -> Duration {
    runtime.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            reset(store, sessions).await;
            let started = Instant::now();
            work().await;
            total += started.elapsed();
        }
        total
    })
}

fn persist(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime
        .block_on(Store::open(&bench_url()))
        .expect("Postgres for the bench (source scripts/services.sh)");
    let parsed = transcripts();
    let rows: usize = parsed
        .iter()
        .map(|p| p.messages.len() + p.content_block_count())
        .sum();
    let (messages, blocks) = csv(&parsed);

    let mut group = c.benchmark_group("persist");
    group.throughput(Throughput::Elements(rows as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for (name, at_once) in [("persist_one_at_a_time", 1), ("persist_three_at_a_time", 3)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(&runtime, &store, parsed.len(), iters, || {
                    persist_all(&store, &parsed, at_once)
                })
            })
        });
    }
    group.bench_function("plain_copy", |b| {
        b.iter_custom(|iters| {
            timed(&runtime, &store, parsed.len(), iters, || {
                copy_rows(&store, &messages, &blocks)
            })
        })
    });
    group.finish();
}

criterion_group!(benches, persist);
criterion_main!(benches);
