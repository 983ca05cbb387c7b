//! `sessionflow inspect` and `gen-corpus` as a user runs them: the real binary over the real
//! fixtures and over trees made here, checked for exact output, exit status and messages.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sessionflow"))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the sessionflow binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

fn json_lines(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect()
}

const REPLY: &str = r#"{"type":"assistant","uuid":"UUID","sessionId":"SESSION","requestId":"req_1","timestamp":"2026-01-01T00:00:01Z","message":{"id":"msg_1","role":"assistant","model":"MODEL","content":[{"type":"text","text":"done"}],"usage":{"input_tokens":10,"output_tokens":20,"cache_creation_input_tokens":30,"cache_read_input_tokens":40}}}"#;

fn reply(uuid: &str, session: &str, model: &str) -> String {
    REPLY
        .replace("UUID", uuid)
        .replace("SESSION", session)
        .replace("MODEL", model)
}

#[test]
fn json_output_has_exactly_the_promised_keys_and_ccusage_totals() {
    let out = run(bin()
        .arg("inspect")
        .arg("--json")
        .arg(fixtures().join("transcripts")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: BTreeMap<String, Value> =
        serde_json::from_slice(&fs::read(fixtures().join("ccusage-expected.json")).unwrap())
            .unwrap();
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 13);
    for line in &lines {
        // serde_json's map lists keys sorted.
        let keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "content_blocks",
                "file",
                "lines",
                "messages",
                "models",
                "parse_errors",
                "session_id",
                "stats"
            ]
        );
        let stats: Vec<&str> = line["stats"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(stats.len(), 13, "{stats:?}");
        for name in [
            "total_messages",
            "user_messages",
            "assistant_messages",
            "tool_use_count",
            "thinking_blocks",
            "subagent_count",
            "tokens_in",
            "tokens_out",
            "cache_read_tokens",
            "cache_write_tokens",
            "cost_estimate_usd",
            "duration_ms",
            "initial_prompt",
        ] {
            assert!(stats.contains(&name), "stats.{name}");
        }
        let file = line["file"].as_str().unwrap();
        let name = Path::new(file).file_name().unwrap().to_str().unwrap();
        let want = &expected[name];
        assert_eq!(line["stats"]["tokens_in"], want["input_tokens"], "{name}");
        assert_eq!(line["stats"]["tokens_out"], want["output_tokens"], "{name}");
        assert_eq!(
            line["stats"]["cache_write_tokens"], want["cache_creation_input_tokens"],
            "{name}"
        );
        assert_eq!(
            line["stats"]["cache_read_tokens"], want["cache_read_input_tokens"],
            "{name}"
        );
        let model = &line["models"][0];
        let model_keys: Vec<&str> = model
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            model_keys,
            [
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
                "cost_usd",
                "input_tokens",
                "model",
                "output_tokens"
            ]
        );
        assert!(
            want["models"]
                .get(model["model"].as_str().unwrap())
                .is_some(),
            "{name}"
        );
    }
}

#[test]
fn table_lists_every_file_and_a_total() {
    let out = run(bin().arg("inspect").arg(fixtures().join("transcripts")));
    assert!(out.status.success());
    let text = stdout(&out);
    let rows: Vec<&str> = text.lines().collect();
    assert!(
        rows[0].starts_with("FILE") && rows[0].contains("COST USD"),
        "{}",
        rows[0]
    );
    assert_eq!(rows.iter().filter(|r| r.contains(".jsonl")).count(), 13);
    let total = rows
        .iter()
        .find(|r| r.starts_with("TOTAL (13 files)"))
        .expect("a total row");
    // Sum of the 13 ccusage output totals; no response is shared between these files.
    assert!(total.contains("58,490"), "{total}");
    assert!(total.contains("6,038,795"), "{total}");
}

#[test]
fn directories_recurse_into_subagents_and_bad_lines_do_not_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("-home-dev-app");
    fs::create_dir_all(project.join("s1/subagents")).unwrap();
    let user = r#"{"type":"user","uuid":"u1","sessionId":"s1","timestamp":"2026-01-01T00:00:00Z","message":{"role":"user","content":"fix it"}}"#;
    fs::write(
        project.join("s1.jsonl"),
        format!(
            "{user}\n{}\n{{\"type\":\"assistant\",\"mess",
            reply("a1", "s1", "claude-sonnet-4-5")
        ),
    )
    .unwrap();
    fs::write(
        project.join("s1/subagents/agent-1.jsonl"),
        reply("a9", "s1", "claude-sonnet-4-5").replace("msg_1", "msg_9"),
    )
    .unwrap();
    fs::write(project.join("notes.txt"), "not a transcript").unwrap();

    let out = run(bin().args(["inspect", "--json"]).arg(dir.path()));
    assert!(out.status.success(), "bad lines still exit 0");
    let lines = json_lines(&out);
    let files: Vec<&str> = lines.iter().map(|l| l["file"].as_str().unwrap()).collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].ends_with("s1.jsonl") && files[1].ends_with("subagents/agent-1.jsonl"));
    assert_eq!(lines[0]["parse_errors"][0]["line_number"], 3);
    assert!(
        lines[0]["parse_errors"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON")
    );
    assert_eq!(lines[0]["messages"], 2);
    assert_eq!(lines[0]["stats"]["initial_prompt"], "fix it");
}

#[test]
fn an_unreadable_path_fails_clearly_after_reporting_the_rest() {
    let good = fixtures().join("transcripts/cc2.1.14-headless-hello-world-script.jsonl");
    let out = run(bin()
        .args(["inspect", "--json"])
        .arg(&good)
        .arg("/no/such/dir"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        json_lines(&out).len(),
        1,
        "the readable file is still reported"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read /no/such/dir: No such file or directory"),
        "{err}"
    );
}

#[test]
fn a_response_repeated_in_a_resumed_session_counts_once_in_the_total() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("a.jsonl"),
        reply("a1", "first", "claude-sonnet-4-5"),
    )
    .unwrap();
    // The resumed session repeats the first session's response (same message.id and requestId).
    fs::write(
        dir.path().join("b.jsonl"),
        reply("a1", "resumed", "claude-sonnet-4-5"),
    )
    .unwrap();
    let out = run(bin().arg("inspect").arg(dir.path()));
    let text = stdout(&out);
    let rows: Vec<&str> = text.lines().filter(|r| r.contains(".jsonl")).collect();
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert!(
            row.split_whitespace().any(|c| c == "20"),
            "each file shows its own output: {row}"
        );
    }
    let total = text.lines().find(|r| r.starts_with("TOTAL")).unwrap();
    let cells: Vec<&str> = total.split_whitespace().collect();
    // TOTAL (2 files) LINES ERRORS MESSAGES BLOCKS INPUT OUTPUT CACHE-WRITE CACHE-READ COST
    assert_eq!(
        &cells[3..],
        ["2", "0", "2", "2", "10", "20", "30", "40", "0.00"],
        "{total}"
    );
    assert!(
        text.contains("1 API responses appear in more than one file"),
        "{text}"
    );
}

#[test]
fn unknown_models_are_unpriced_until_a_pricing_file_prices_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.jsonl");
    fs::write(&file, reply("a1", "s", "claude-future-9")).unwrap();
    let out = run(bin().args(["inspect", "--json"]).arg(&file));
    let line = &json_lines(&out)[0];
    assert_eq!(line["models"][0]["cost_usd"], Value::Null);
    assert_eq!(line["stats"]["cost_estimate_usd"], 0.0);
    let table = stdout(&run(bin().arg("inspect").arg(&file)));
    assert!(
        table.contains("unpriced models, tokens counted but no cost: claude-future-9"),
        "{table}"
    );
    // Nothing priced: said as such, never as "-0.00*" (an empty sum of floats is -0.0).
    assert!(!table.contains("-0.00"), "{table}");
    assert_eq!(
        table.matches("unpriced*").count(),
        2,
        "file row and total: {table}"
    );

    let prices = dir.path().join("prices.json");
    fs::write(
        &prices,
        r#"{"models":{"claude-future-9":{"input":1000000,"output":0,"cache_write_5m":0,"cache_write_1h":0,"cache_read":0}}}"#,
    )
    .unwrap();
    let out = run(bin()
        .args(["inspect", "--json"])
        .arg(&file)
        .env("SESSIONFLOW_PRICING", &prices));
    assert_eq!(json_lines(&out)[0]["models"][0]["cost_usd"], 10.0);

    let out = run(bin()
        .args(["inspect", "--pricing", "/no/prices.json"])
        .arg(&file));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read pricing file /no/prices.json")
    );
}

#[test]
fn a_new_model_of_a_known_family_is_priced_as_an_estimate() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.jsonl");
    fs::write(&file, reply("a1", "s", "claude-opus-9-9-20300101")).unwrap();
    let line = &json_lines(&run(bin().args(["inspect", "--json"]).arg(&file)))[0];
    let model = &line["models"][0];
    assert!(model["cost_usd"].as_f64().unwrap() > 0.0, "{model}");
    assert_eq!(model["cost_estimated"], true, "{model}");
    let table = stdout(&run(bin().arg("inspect").arg(&file)));
    assert!(
        table.contains("≈ priced at their family's newest rates (not in the price table): claude-opus-9-9-20300101"),
        "{table}"
    );
    assert_eq!(
        table.matches('≈').count(),
        3,
        "file row, total, legend: {table}"
    );
}

#[test]
fn gen_corpus_is_deterministic_and_inspects_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let generate = |out: &Path, seed: &str| {
        let o = run(bin()
            .args(["gen-corpus", "--sessions", "30", "--seed", seed, "--out"])
            .arg(out));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    generate(&a, "5");
    generate(&b, "5");
    generate(&c, "6");
    let tree = |root: &Path| -> BTreeMap<PathBuf, Vec<u8>> {
        walk(root)
            .into_iter()
            .map(|p| {
                (
                    p.strip_prefix(root).unwrap().to_owned(),
                    fs::read(&p).unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(tree(&a), tree(&b), "same seed, same bytes");
    assert_ne!(tree(&a), tree(&c));
    assert!(
        tree(&a)
            .keys()
            .all(|p| p.extension().is_some_and(|e| e == "jsonl"))
    );

    let out = run(bin().args(["inspect", "--json"]).arg(&a));
    assert!(out.status.success());
    for line in json_lines(&out) {
        assert!(
            line["parse_errors"].as_array().unwrap().len() <= 1,
            "at most a half-written last line"
        );
        assert!(line["stats"]["assistant_messages"].as_u64().unwrap() > 0);
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn every_command_has_help_and_the_binary_a_version() {
    let out = run(bin().arg("--version"));
    assert_eq!(
        stdout(&out).trim(),
        format!("sessionflow {}", env!("CARGO_PKG_VERSION"))
    );
    for command in [
        "inspect",
        "gen-corpus",
        "migrate",
        "serve",
        "worker",
        "daemon",
        "tui",
    ] {
        let out = run(bin().args([command, "--help"]));
        assert!(out.status.success());
        assert!(stdout(&out).contains("Usage: sessionflow"), "{command}");
    }
}
