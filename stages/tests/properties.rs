//! Properties of the parser over inputs no one wrote by hand: it never panics, whatever the bytes
//! or the JSON, and what it counts does not move when blank lines or repeated split-reply lines
//! are added.

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use serde_json::{Map, Value};
use sessionflow_stages::transcript::{ParseOptions, ParsedTranscript, parse_bytes, parse_reader};

fn options() -> ParseOptions {
    ParseOptions {
        keep_raw: true,
        ..ParseOptions::default()
    }
}

/// Strings drawn from the words transcripts are made of, so that generated JSON often lands on
/// real field names and record types.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "type",
            "user",
            "assistant",
            "system",
            "summary",
            "message",
            "content",
            "text",
            "tool_use",
            "tool_result",
            "thinking",
            "image",
            "usage",
            "input_tokens",
            "output_tokens",
            "id",
            "requestId",
            "uuid",
            "timestamp",
            "model",
            "role",
            "input",
            "is_error",
            "tool_use_id",
            "isSidechain",
            "isMeta",
            "progress",
            "sessionId",
            "2026-01-01T00:00:00Z",
            "source",
            "media_type",
        ])
        .prop_map(str::to_owned),
        ".{0,12}",
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn fixture_lines(name: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/transcripts")
        .join(name);
    fs::read_to_string(path)
        .expect(name)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn counts(p: &ParsedTranscript) -> (usize, usize, u64, u64, u64) {
    (
        p.messages.len(),
        p.content_block_count(),
        p.stats.tokens_in,
        p.stats.tokens_out,
        p.stats.cache_read_tokens,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let whole = parse_bytes(&bytes, &options());
        let streamed = parse_reader(&bytes[..], &options()).unwrap();
        prop_assert_eq!(whole.records, streamed.records);
    }

    #[test]
    fn never_panics_on_arbitrary_json_lines(lines in prop::collection::vec(json(), 0..24)) {
        let text: Vec<String> = lines.iter().map(Value::to_string).collect();
        let p = parse_bytes(text.join("\n").as_bytes(), &options());
        let r = &p.records;
        let accounted = r.blank + r.messages + r.merged + r.duplicates + r.errors
            + r.bookkeeping.values().sum::<u64>() + r.unknown.values().sum::<u64>();
        prop_assert_eq!(accounted, r.lines, "every line lands in one bucket");
    }

    #[test]
    fn never_panics_on_mangled_real_lines(
        picks in prop::collection::vec((0usize..97, 0usize..4000, any::<u8>()), 1..40)
    ) {
        let lines = fixture_lines("cc2.1.14-headless-python-to-rust-port.jsonl");
        let mut bytes = Vec::new();
        for (line, at, byte) in picks {
            let mut l = lines[line % lines.len()].clone().into_bytes();
            let at = at % (l.len() + 1);
            l.insert(at, byte);
            bytes.extend_from_slice(&l);
            bytes.push(b'\n');
        }
        parse_bytes(&bytes, &options());
    }

    #[test]
    fn counts_ignore_blank_lines_and_repeated_split_usage_lines(
        fixture in prop::sample::select(vec![
            "cc1.0.98-interactive-fe5e1c67-53e7-4862-81ae-d0e013e3270b.jsonl",
            "cc1.0.108-interactive-5c0375b4-57a5-4f26-b12d-d022ee4e51b7.jsonl",
            "cc2.1.78-interactive-186a0ba09c.jsonl",
            "cc2.1.14-headless-python-to-rust-port.jsonl",
        ]),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<bool>(), 0usize..3), 1..30),
    ) {
        let lines = fixture_lines(fixture);
        let baseline = parse_bytes(lines.join("\n").as_bytes(), &options());

        let usage_lines: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].contains("\"usage\""))
            .collect();
        let mut edited = lines.clone();
        for (index, repeat, blanks) in edits {
            if repeat && !usage_lines.is_empty() {
                // Repeat a usage line right after itself or later in the file.
                let from = usage_lines[index.index(usage_lines.len())];
                let line = lines[from].clone();
                let at = (from + 1 + blanks * 7).min(edited.len());
                edited.insert(at, line);
            } else {
                let at = index.index(edited.len() + 1);
                edited.insert(at, [" ", "", "\t"][blanks].to_owned());
            }
        }
        let changed = parse_bytes(edited.join("\n").as_bytes(), &options());
        prop_assert_eq!(counts(&changed), counts(&baseline));
        prop_assert_eq!(changed.stats.assistant_messages, baseline.stats.assistant_messages);
    }
}
