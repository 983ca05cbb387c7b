//! The parser against the real Claude Code transcripts in `../shared/fixtures/`: token totals
//! must equal what ccusage 20.0.24 reports for each file, per model too, and cost must agree
//! within 1%.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sessionflow_stages::transcript::{ParseOptions, ParsedTranscript, parse_bytes, parse_reader};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

#[derive(Deserialize)]
struct Tokens {
    input_tokens: u64,
    output_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    cost_usd: f64,
}

#[derive(Deserialize)]
struct Expected {
    #[serde(flatten)]
    total: Tokens,
    models: BTreeMap<String, Tokens>,
}

fn expected() -> BTreeMap<String, Expected> {
    let text = fs::read(fixtures().join("ccusage-expected.json")).expect("ccusage-expected.json");
    serde_json::from_slice(&text).expect("ccusage-expected.json parses")
}

fn parse(name: &str) -> ParsedTranscript {
    let bytes = fs::read(fixtures().join("transcripts").join(name)).expect(name);
    parse_bytes(&bytes, &ParseOptions::default())
}

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= expected.abs() * 0.01
}

#[test]
fn token_totals_equal_ccusage_for_every_fixture_and_model() {
    let expected = expected();
    assert_eq!(expected.len(), 13, "all 13 fixtures have expectations");
    for (name, want) in &expected {
        let parsed = parse(name);
        let s = &parsed.stats;
        assert_eq!(
            (
                s.tokens_in,
                s.tokens_out,
                s.cache_write_tokens,
                s.cache_read_tokens
            ),
            (
                want.total.input_tokens,
                want.total.output_tokens,
                want.total.cache_creation_input_tokens,
                want.total.cache_read_input_tokens
            ),
            "{name}: totals"
        );
        assert!(
            close(s.cost_estimate_usd, want.total.cost_usd),
            "{name}: cost {} vs ccusage {}",
            s.cost_estimate_usd,
            want.total.cost_usd
        );
        let got: BTreeMap<&str, _> = parsed
            .models
            .iter()
            .map(|m| (m.model.as_str(), m))
            .collect();
        assert_eq!(
            got.keys().copied().collect::<Vec<_>>(),
            want.models.keys().map(String::as_str).collect::<Vec<_>>(),
            "{name}: models"
        );
        for (model, want) in &want.models {
            let m = got[model.as_str()];
            assert_eq!(
                (
                    m.input_tokens,
                    m.output_tokens,
                    m.cache_creation_input_tokens,
                    m.cache_read_input_tokens
                ),
                (
                    want.input_tokens,
                    want.output_tokens,
                    want.cache_creation_input_tokens,
                    want.cache_read_input_tokens
                ),
                "{name}: {model}"
            );
            let cost = m.cost_usd.expect("fixture models are priced");
            assert!(
                close(cost, want.cost_usd),
                "{name}: {model} cost {cost} vs {}",
                want.cost_usd
            );
        }
        assert!(
            parsed.line_errors.is_empty(),
            "{name}: {:?}",
            parsed.line_errors
        );
    }
}

#[test]
fn streaming_and_in_memory_parses_agree() {
    for name in expected().keys() {
        let path = fixtures().join("transcripts").join(name);
        let streamed =
            parse_reader(fs::File::open(&path).expect(name), &ParseOptions::default()).expect(name);
        let whole = parse(name);
        assert_eq!(streamed.stats, whole.stats, "{name}");
        assert_eq!(streamed.records, whole.records, "{name}");
        assert_eq!(streamed.metadata, whole.metadata, "{name}");
        assert_eq!(streamed.messages.len(), whole.messages.len(), "{name}");
    }
}

/// Counts worked out independently (a short Python script over the same files) for each fixture:
/// messages, blocks, user, assistant, tool uses, thinking blocks, subagents, duration in ms.
const COUNTS: [(&str, [u64; 8]); 13] = [
    (
        "cc1.0.108-interactive-5c0375b4-57a5-4f26-b12d-d022ee4e51b7.jsonl",
        [45, 53, 25, 20, 21, 0, 3, 143428],
    ),
    (
        "cc1.0.98-interactive-1af7fc5e-8455-4414-9ccd-011d40f70b2a.jsonl",
        [21, 29, 14, 7, 12, 0, 0, 32971],
    ),
    (
        "cc1.0.98-interactive-fe5e1c67-53e7-4862-81ae-d0e013e3270b.jsonl",
        [346, 438, 175, 170, 167, 0, 5, 572448],
    ),
    (
        "cc2.0.28-interactive-agent-test-hash-123.jsonl",
        [2, 2, 1, 1, 0, 0, 0, 2247],
    ),
    (
        "cc2.0.28-interactive-agent-test-hash-456.jsonl",
        [2, 2, 1, 1, 0, 0, 0, 2247],
    ),
    (
        "cc2.1.14-headless-coverage-test-fix.jsonl",
        [30, 37, 16, 14, 13, 0, 0, 51220],
    ),
    (
        "cc2.1.14-headless-hello-world-script.jsonl",
        [8, 8, 4, 4, 2, 0, 0, 13665],
    ),
    (
        "cc2.1.14-headless-python-to-rust-port.jsonl",
        [80, 96, 41, 39, 39, 0, 1, 225785],
    ),
    (
        "cc2.1.14-headless-stop-hook-fast-path-clean.jsonl",
        [4, 4, 2, 2, 1, 0, 0, 5358],
    ),
    (
        "cc2.1.14-headless-stop-hook-reflection-first-stop.jsonl",
        [12, 13, 6, 6, 4, 0, 0, 21136],
    ),
    (
        "cc2.1.14-headless-stop-hook-reflection-second-stop.jsonl",
        [2, 2, 1, 1, 0, 0, 0, 1982],
    ),
    (
        "cc2.1.14-headless-stop-hook-uncommitted-changes.jsonl",
        [8, 8, 4, 4, 2, 0, 0, 10716],
    ),
    (
        "cc2.1.78-interactive-186a0ba09c.jsonl",
        [33, 31, 16, 11, 6, 3, 0, 524450],
    ),
];

#[test]
fn message_block_and_stat_counts_match_an_independent_count() {
    for (name, want) in COUNTS {
        let p = parse(name);
        let s = &p.stats;
        let got = [
            p.messages.len() as u64,
            p.content_block_count() as u64,
            s.user_messages,
            s.assistant_messages,
            s.tool_use_count,
            s.thinking_blocks,
            s.subagent_count,
            s.duration_ms.unwrap_or_default(),
        ];
        assert_eq!(got, want, "{name}");
        assert_eq!(s.total_messages, want[0], "{name}");
    }
}

#[test]
fn split_replies_become_one_message_with_their_blocks_in_order() {
    let p = parse("cc1.0.98-interactive-fe5e1c67-53e7-4862-81ae-d0e013e3270b.jsonl");
    assert_eq!(p.records.merged, 92);
    let mut ids = std::collections::HashSet::new();
    for m in p.messages.iter().filter(|m| m.api_message_id.is_some()) {
        assert!(
            ids.insert(m.api_message_id.clone()),
            "one message per message.id"
        );
    }
    // The summary line and the 405 inline sidechain lines are kept, flagged.
    assert_eq!(p.messages[0].kind.as_str(), "summary");
    assert!(p.messages.iter().any(|m| m.is_sidechain));
}

#[test]
fn metadata_and_initial_prompts() {
    let p = parse("cc2.1.78-interactive-186a0ba09c.jsonl");
    assert_eq!(
        p.metadata.session_id.as_deref(),
        Some("11241c18-c0e4-4df0-8e65-dc32ec91df2b")
    );
    assert_eq!(p.metadata.version.as_deref(), Some("2.1.78"));
    assert_eq!(p.metadata.git_branch.as_deref(), Some("main"));
    assert_eq!(
        p.metadata.cwd.as_deref(),
        Some("/Users/yang.liu/Envato/others/tail-claude-gui")
    );
    assert_eq!(
        p.metadata
            .first_timestamp
            .map(|t| t.to_rfc3339())
            .as_deref(),
        Some("2026-03-18T09:31:35.209+00:00")
    );
    assert_eq!(
        p.stats.initial_prompt.as_deref(),
        Some("Gitnexus analyze codebase")
    );
    assert_eq!(p.records.bookkeeping.get("progress"), Some(&22));
    assert_eq!(p.records.bookkeeping.get("file-history-snapshot"), Some(&7));

    let prompts = [
        (
            "cc1.0.98-interactive-1af7fc5e-8455-4414-9ccd-011d40f70b2a.jsonl",
            Some("/init"),
        ),
        (
            "cc1.0.98-interactive-fe5e1c67-53e7-4862-81ae-d0e013e3270b.jsonl",
            Some("/orchestrator create TODO app by Next.js"),
        ),
        (
            "cc2.1.14-headless-stop-hook-fast-path-clean.jsonl",
            Some("Read the README.md file and tell me what it says. Then stop."),
        ),
        // Subagent files: their prompt is the parent's, not a person's.
        ("cc2.0.28-interactive-agent-test-hash-123.jsonl", None),
    ];
    for (name, want) in prompts {
        assert_eq!(parse(name).stats.initial_prompt.as_deref(), want, "{name}");
    }
}
