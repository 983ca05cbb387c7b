//! Parser throughput in bytes per second: the 13 real fixtures and one large generated
//! transcript, each beside the same bytes parsed line by line into `serde_json::Value` — the
//! cost of merely reading the JSON, which the typed parser should beat — and the redactor's
//! throughput over the same transcripts once parsed.
//!
//! Run with `cargo bench --bench parser`.

use std::fs;
use std::hint::black_box;
use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sessionflow_stages::corpus;
use sessionflow_stages::redact::redact_transcript;
use sessionflow_stages::transcript::{ParseOptions, parse_bytes};

fn fixtures() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/transcripts");
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .expect("../shared/fixtures/transcripts beside the project")
        .map(|entry| entry.expect("fixture entry").path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| fs::read(path).expect("fixture"))
        .collect()
}

/// The reference: every line into a `serde_json::Value`, nothing more.
fn values(bytes: &[u8]) -> usize {
    bytes
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .count()
}

fn bench(c: &mut Criterion, name: &str, files: &[Vec<u8>]) {
    let bytes: usize = files.iter().map(Vec::len).sum();
    let options = ParseOptions::default();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(20);
    group.bench_function("typed", |b| {
        b.iter(|| {
            for file in files {
                black_box(parse_bytes(black_box(file), &options));
            }
        })
    });
    // The redactor alone, over transcripts parsed as the pipeline parses them (raw lines kept):
    // its bytes per second are the transcript's.
    let kept = ParseOptions {
        keep_raw: true,
        ..ParseOptions::default()
    };
    group.bench_function("redact", |b| {
        b.iter_batched(
            || {
                files
                    .iter()
                    .map(|f| parse_bytes(f, &kept))
                    .collect::<Vec<_>>()
            },
            |mut parsed| {
                for transcript in &mut parsed {
                    redact_transcript(transcript, false);
                    black_box(&transcript.redactions);
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("serde_json_value", |b| {
        b.iter(|| {
            for file in files {
                black_box(values(black_box(file)));
            }
        })
    });
    group.finish();
}

fn parser(c: &mut Criterion) {
    bench(c, "fixtures", &fixtures());
    bench(
        c,
        "generated_8mb",
        &[corpus::large_transcript(1, 8_000_000)],
    );
}

criterion_group!(benches, parser);
criterion_main!(benches);
