//! Synthetic Claude Code transcripts, realistic in shape and size, deterministic by seed.
//!
//! Benchmarks, load tests and the demo need years of history that nobody has to hand over. A
//! generated session has what real ones have: assistant replies split over lines that share
//! `message.id` and `requestId` with partial usage first and the final usage last, tool_use and
//! tool_result pairs with `toolUseResult` copies, thinking, inline sidechains and subagent files,
//! compaction boundaries, progress and snapshot bookkeeping, record types no parser knows yet,
//! resumed sessions that repeat an earlier session's responses, and now and then a half-written
//! last line. Sizes follow a log-normal spread with a median about 100 KB, plus 1% marathons of 2 to 10 MB.
//!
//! Session `i` of seed `s` depends on nothing but `(s, i)`, so sessions can be made in parallel.

use std::fmt::Write as _;
use std::ops::Range;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

/// Median target size in bytes; sessions end on a whole turn, which lands the median of the
/// written files near 100 KB.
const MEDIAN_BYTES: f64 = 80_000.0;
/// Share of marathon sessions, 2 to 10 MB.
const MARATHON_SHARE: f64 = 0.01;
const SIZE_SIGMA: f64 = 1.0;
const MIN_BYTES: usize = 2_000;
const MAX_BYTES: usize = 12_000_000;

const MODELS: [&str; 3] = [
    "claude-sonnet-4-5-20250929",
    "claude-opus-4-5-20251101",
    "claude-haiku-4-5-20251001",
];
const TOOLS: [&str; 6] = ["Read", "Bash", "Edit", "Grep", "Write", "Glob"];
const WORDS: [&str; 48] = [
    "the",
    "build",
    "fails",
    "because",
    "parser",
    "session",
    "token",
    "usage",
    "we",
    "should",
    "check",
    "error",
    "handling",
    "in",
    "stream",
    "module",
    "test",
    "passes",
    "now",
    "refactor",
    "function",
    "return",
    "value",
    "config",
    "path",
    "file",
    "read",
    "write",
    "async",
    "queue",
    "worker",
    "commit",
    "branch",
    "schema",
    "index",
    "latency",
    "cache",
    "retry",
    "timeout",
    "deploy",
    "löschen",
    "日本語の",
    "テスト",
    "café",
    "naïve",
    "résumé",
    "🚀",
    "✓",
];
/// Words are drawn from one vocabulary whose frequencies fall off as in real text (Zipf: the
/// word of rank r is drawn in proportion to 1/r): the named [`WORDS`] are its commonest ranks,
/// then [`TAIL_WORDS`] made-up words, so that a search finds some words in most sessions and most
/// words in a few, as in a real history. The 48 commonest words are then 39 % of all words drawn
/// (the fixtures' 48 commonest are 38 % of their words); drawing them uniformly for three words in
/// four, as this did before, made them 75 % and nearly every block held nearly every one.
const TAIL_WORDS: usize = 50_000;
const SYLLABLES: [&str; 40] = [
    "ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "da", "gu", "ho", "ze", "bi", "fa", "ju",
    "ke", "lu", "mo", "ni", "pa", "qu", "ro", "si", "te", "vo", "wa", "xi", "ya", "zo", "bre",
    "cla", "dri", "flo", "gra", "ple", "sto", "tri", "spa", "ver",
];

/// The made-up word of `rank` (0 the most frequent): its digits in base 40, one syllable each.
fn tail_word(rank: usize) -> String {
    let mut word = String::new();
    let mut n = rank + SYLLABLES.len();
    while n > 0 {
        word.push_str(SYLLABLES[n % SYLLABLES.len()]);
        n /= SYLLABLES.len();
    }
    word
}

/// The cumulative Zipf weights of the vocabulary's ranks ([`WORDS`], then the tail), normalized
/// to end at 1.
fn word_cdf() -> &'static [f64] {
    static CDF: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    CDF.get_or_init(|| {
        let mut sum = 0.0;
        let mut cdf: Vec<f64> = (1..=WORDS.len() + TAIL_WORDS)
            .map(|r| {
                sum += 1.0 / r as f64;
                sum
            })
            .collect();
        for w in &mut cdf {
            *w /= sum;
        }
        cdf
    })
}

const CODE: [&str; 8] = [
    "fn main() {\n    println!(\"hello {}\", name);\n}",
    "if (x === undefined) { throw new Error(`bad: ${x}`); }",
    "\tfor i in range(10):\n\t\tprint(\"\\\\n\", i)",
    "SELECT id, lifecycle FROM sessions WHERE lifecycle = 'ended';",
    "const re = /\\d+\\.\\d+/g; // \"quoted\"",
    "<div class=\"app\">{children}</div>",
    "$ cargo test -- --nocapture 2>&1 | tail -n 20",
    "{\"key\": [1, 2, 3], \"nested\": {\"ok\": true}}",
];

/// One generated session: its project folder, its id, the main transcript and its subagent
/// transcripts (file name, bytes).
pub struct GeneratedSession {
    pub project: String,
    pub session_id: String,
    pub transcript: Vec<u8>,
    pub subagents: Vec<(String, Vec<u8>)>,
}

/// Session `index` of the corpus with `seed`.
pub fn session(seed: u64, index: u64) -> GeneratedSession {
    let mut rng = rng_for(seed, index);
    let target = target_size(&mut rng);
    let session_id = uuid(&mut rng);
    let project = format!("-home-dev-src-project-{:02}", rng.random_range(0..40u32));
    let mut writer = Writer::new(rng, session_id.clone(), index);

    // A resumed session starts with a copy of the previous session's opening responses.
    // Its lines keep their responses' ids, so their usage must be counted once across files.
    if index > 0 && writer.rng.random_bool(0.05) {
        let previous = session(seed, index - 1);
        let keep = previous.transcript.len() / 3;
        let cut = previous.transcript[..keep]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        let copied = String::from_utf8_lossy(&previous.transcript[..cut])
            .replace(&previous.session_id, &session_id);
        writer.out.extend_from_slice(copied.as_bytes());
    }
    let subagents = writer.write_session(target);
    let transcript = writer.finish();
    GeneratedSession {
        project,
        session_id,
        transcript,
        subagents,
    }
}

/// One large transcript of about `bytes` bytes (for benchmarks), without a truncated end.
pub fn large_transcript(seed: u64, bytes: usize) -> Vec<u8> {
    let rng = rng_for(seed, u64::MAX);
    let mut writer = Writer::new(rng, "00000000-0000-4000-8000-000000000000".into(), 0);
    writer.truncate_end = false;
    writer.write_session(bytes);
    writer.finish()
}

fn rng_for(seed: u64, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn target_size(rng: &mut ChaCha8Rng) -> usize {
    if rng.random_bool(MARATHON_SHARE) {
        return rng.random_range(2_000_000..10_000_000);
    }
    // Box-Muller: one standard normal sample.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let size = (MEDIAN_BYTES.ln() + SIZE_SIGMA * normal).exp();
    (size as usize).clamp(MIN_BYTES, MAX_BYTES)
}

fn uuid(rng: &mut ChaCha8Rng) -> String {
    let a: u128 = rng.random();
    let h = format!("{a:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn base62(rng: &mut ChaCha8Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

struct Writer {
    rng: ChaCha8Rng,
    out: Vec<u8>,
    session_id: String,
    cwd: String,
    model: &'static str,
    parent: Option<String>,
    clock_ms: i64,
    cache_read: u64,
    truncate_end: bool,
    sidechain: bool,
    agent_id: Option<String>,
}

impl Writer {
    fn new(mut rng: ChaCha8Rng, session_id: String, index: u64) -> Self {
        let model = MODELS[rng.random_range(0..MODELS.len())];
        let cwd = format!("/home/dev/src/project-{}", rng.random_range(0..40u32));
        // 2025-01-01T00:00:00Z plus a few hours per session.
        let clock_ms = 1_735_689_600_000 + (index as i64) * 3_600_000 * 5;
        let truncate_end = rng.random_bool(0.03);
        Writer {
            rng,
            out: Vec::new(),
            session_id,
            cwd,
            model,
            parent: None,
            clock_ms,
            cache_read: 15_000,
            truncate_end,
            sidechain: false,
            agent_id: None,
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.truncate_end && self.out.len() > 2 {
            // A live session: the last line is only half written.
            let end = self.out.len() - 1;
            let start = self.out[..end]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |at| at + 1);
            self.out.truncate(start + (end - start) / 2);
        }
        self.out
    }

    fn timestamp(&mut self) -> String {
        self.clock_ms += self.rng.random_range(200..20_000);
        let secs = self.clock_ms.div_euclid(1000);
        let ms = self.clock_ms.rem_euclid(1000);
        let t = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
        format!("{}.{ms:03}Z", t.format("%Y-%m-%dT%H:%M:%S"))
    }

    fn sentence(&mut self, words: Range<usize>) -> String {
        let words = self.rng.random_range(words);
        let mut s = String::new();
        for i in 0..words {
            if i > 0 {
                s.push(if self.rng.random_bool(0.05) {
                    '\n'
                } else {
                    ' '
                });
            }
            let draw: f64 = self.rng.random();
            let rank = word_cdf().partition_point(|&w| w < draw);
            match WORDS.get(rank) {
                Some(word) => s.push_str(word),
                None => s.push_str(&tail_word((rank - WORDS.len()).min(TAIL_WORDS - 1))),
            }
        }
        s.push('.');
        s
    }

    fn file_body(&mut self, lines: Range<usize>) -> String {
        let lines = self.rng.random_range(lines);
        let mut s = String::new();
        for n in 1..=lines {
            let line = if self.rng.random_bool(0.3) {
                CODE[self.rng.random_range(0..CODE.len())].to_owned()
            } else {
                self.sentence(3..14)
            };
            let _ = writeln!(s, "{n:>6}\u{2192}{line}");
        }
        s
    }

    /// Writes one record with the envelope fields every message line has.
    fn record(&mut self, kind: &str, extra: Value) -> String {
        let uuid = uuid(&mut self.rng);
        let mut line = json!({
            "parentUuid": self.parent,
            "isSidechain": self.sidechain,
            "userType": "external",
            "cwd": self.cwd,
            "sessionId": self.session_id,
            "version": "2.1.40",
            "gitBranch": "main",
            "type": kind,
            "uuid": uuid,
            "timestamp": self.timestamp(),
        });
        if let (Value::Object(line), Value::Object(extra)) = (&mut line, extra) {
            line.extend(extra);
            if let Some(agent) = &self.agent_id {
                line.insert("agentId".into(), Value::String(agent.clone()));
            }
        }
        self.emit(&line);
        self.parent = Some(uuid.clone());
        uuid
    }

    fn emit(&mut self, line: &Value) {
        // Writing a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.out, line);
        self.out.push(b'\n');
    }

    fn user_text(&mut self, text: String) {
        self.record(
            "user",
            json!({ "message": { "role": "user", "content": text } }),
        );
    }

    /// One API response written as Claude Code does: a line per content block, all sharing
    /// `message.id` and `requestId`, early lines with partial usage and the last one final.
    fn reply(&mut self, with_tool: bool) -> Option<(String, &'static str)> {
        let message_id = format!("msg_01{}", base62(&mut self.rng, 22));
        let request_id = format!("req_011C{}", base62(&mut self.rng, 18));
        let mut blocks = Vec::new();
        if self.rng.random_bool(0.25) {
            let thinking = self.sentence(20..200);
            blocks.push(json!({ "type": "thinking", "thinking": thinking, "signature": base62(&mut self.rng, 120) }));
        }
        let text = self.sentence(5..120);
        blocks.push(json!({ "type": "text", "text": text }));
        let mut tool = None;
        if with_tool {
            let name = TOOLS[self.rng.random_range(0..TOOLS.len())];
            let id = format!("toolu_01{}", base62(&mut self.rng, 22));
            let input = match name {
                "Bash" => json!({ "command": CODE[6], "description": self.sentence(5..6) }),
                "Edit" => {
                    json!({ "file_path": format!("{}/src/lib.rs", self.cwd), "old_string": self.file_body(3..4), "new_string": self.file_body(4..5) })
                }
                "Write" => {
                    json!({ "file_path": format!("{}/src/new.rs", self.cwd), "content": self.file_body(30..31) })
                }
                _ => json!({ "file_path": format!("{}/src/main.rs", self.cwd) }),
            };
            blocks.push(json!({ "type": "tool_use", "id": id, "name": name, "input": input }));
            tool = Some((id, name));
        }
        let creation = self.rng.random_range(0..4_000u64);
        let output = self.rng.random_range(20..2_000u64);
        let last = blocks.len() - 1;
        for (i, block) in blocks.into_iter().enumerate() {
            let out_tokens = if i == last {
                output
            } else {
                self.rng.random_range(1..10)
            };
            let usage = json!({
                "input_tokens": self.rng.random_range(1..10u64),
                "cache_creation_input_tokens": creation,
                "cache_read_input_tokens": self.cache_read,
                "cache_creation": { "ephemeral_5m_input_tokens": creation, "ephemeral_1h_input_tokens": 0 },
                "output_tokens": out_tokens,
                "service_tier": "standard",
            });
            self.record(
                "assistant",
                json!({
                    "message": {
                        "model": self.model, "id": message_id, "type": "message", "role": "assistant",
                        "content": [block], "stop_reason": if i == last { Value::from("tool_use") } else { Value::Null },
                        "stop_sequence": null, "usage": usage,
                    },
                    "requestId": request_id,
                }),
            );
        }
        self.cache_read += creation;
        tool
    }

    fn tool_result(&mut self, id: String, name: &str) {
        let (content, result) = match name {
            "Read" => {
                let body = self.file_body(10..300);
                (
                    body.clone(),
                    json!({ "type": "text", "file": { "filePath": format!("{}/src/main.rs", self.cwd), "content": body, "numLines": 100, "startLine": 1, "totalLines": 100 } }),
                )
            }
            "Bash" => {
                let out = self.file_body(2..80);
                (
                    out.clone(),
                    json!({ "stdout": out, "stderr": "", "interrupted": false, "isImage": false }),
                )
            }
            _ => {
                let msg = format!("The file {}/src/lib.rs has been updated.", self.cwd);
                (
                    msg.clone(),
                    json!({ "filePath": format!("{}/src/lib.rs", self.cwd), "message": msg }),
                )
            }
        };
        let is_error = self.rng.random_bool(0.04);
        self.record(
            "user",
            json!({
                "message": { "role": "user", "content": [{ "tool_use_id": id, "type": "tool_result", "content": content, "is_error": is_error }] },
                "toolUseResult": result,
            }),
        );
    }

    fn bookkeeping(&mut self) {
        match self.rng.random_range(0..4u32) {
            0 => {
                let ts = self.timestamp();
                let id = uuid(&mut self.rng);
                self.emit(&json!({ "type": "file-history-snapshot", "messageId": id, "snapshot": { "messageId": id, "trackedFileBackups": {}, "timestamp": ts }, "isSnapshotUpdate": false }));
            }
            1 => {
                let ts = self.timestamp();
                let id = uuid(&mut self.rng);
                self.emit(&json!({ "type": "progress", "data": { "type": "hook_progress", "hookEvent": "PostToolUse", "command": "~/.claude/hooks/fmt.sh" }, "toolUseID": id, "timestamp": ts, "sessionId": self.session_id }));
            }
            2 => {
                self.record("system", json!({ "subtype": "stop_hook_summary", "hookCount": 1, "hookInfos": [{ "command": "~/.claude/hooks/stop.sh" }], "hookErrors": [], "preventedContinuation": false, "stopReason": "", "hasOutput": false, "level": "suggestion" }));
            }
            _ => {
                let ts = self.timestamp();
                self.emit(&json!({ "type": "x-telemetry-2027", "timestamp": ts, "payload": { "counters": [1, 2, 3] } }));
            }
        }
    }

    fn compaction(&mut self) {
        self.record("system", json!({ "subtype": "compact_boundary", "content": "Conversation compacted", "compactMetadata": { "trigger": "auto", "preTokens": 155_000 }, "level": "info" }));
        let summary = format!(
            "This session is being continued from a previous conversation that ran out of context. {}",
            self.sentence(120..121)
        );
        self.record(
            "user",
            json!({ "message": { "role": "user", "content": summary }, "isCompactSummary": true }),
        );
        self.cache_read = 15_000;
    }

    /// A turn run by a subagent, written inline (older Claude Code) as sidechain lines.
    fn inline_sidechain(&mut self) {
        let saved = self.parent.take();
        self.sidechain = true;
        let prompt = self.sentence(30..31);
        self.user_text(prompt);
        for _ in 0..self.rng.random_range(1..4) {
            if let Some((id, name)) = self.reply(true) {
                self.tool_result(id, name);
            }
        }
        self.reply(false);
        self.sidechain = false;
        self.parent = saved;
    }

    /// Writes turns until the transcript reaches `target` bytes; returns the subagent files.
    fn write_session(&mut self, target: usize) -> Vec<(String, Vec<u8>)> {
        let mut subagents = Vec::new();
        if self.rng.random_bool(0.1) {
            let ts = self.timestamp();
            self.emit(&json!({ "type": "queue-operation", "operation": "dequeue", "timestamp": ts, "sessionId": self.session_id }));
        }
        let opening = if self.rng.random_bool(0.15) {
            format!(
                "<command-message>review is running…</command-message>\n<command-name>/review</command-name>\n<command-args>{}</command-args>",
                self.sentence(8..9)
            )
        } else {
            self.sentence(8..60)
        };
        self.user_text(opening);
        while self.out.len() < target {
            let steps = self.rng.random_range(1..8);
            for _ in 0..steps {
                if let Some((id, name)) = self.reply(true) {
                    if self.rng.random_bool(0.03) {
                        subagents.push(self.subagent());
                    }
                    self.tool_result(id, name);
                }
                if self.rng.random_bool(0.3) {
                    self.bookkeeping();
                }
            }
            self.reply(false);
            if self.rng.random_bool(0.02) {
                self.inline_sidechain();
            }
            // Near the context window Claude Code compacts the conversation.
            if self.cache_read > self.rng.random_range(120_000..170_000) {
                self.compaction();
            }
            let prompt = self.sentence(4..80);
            self.user_text(prompt);
        }
        subagents
    }

    /// A subagent's own transcript, as Claude Code 2.x writes it beside the session.
    fn subagent(&mut self) -> (String, Vec<u8>) {
        let agent = format!("{:08x}", self.rng.random::<u32>());
        let rng = ChaCha8Rng::seed_from_u64(self.rng.random());
        let mut sub = Writer::new(rng, self.session_id.clone(), 0);
        sub.clock_ms = self.clock_ms;
        sub.model = self.model;
        sub.sidechain = true;
        sub.agent_id = Some(agent.clone());
        sub.truncate_end = false;
        let prompt = sub.sentence(40..41);
        sub.user_text(prompt);
        let target = sub.rng.random_range(5_000..60_000);
        while sub.out.len() < target {
            if let Some((id, name)) = sub.reply(true) {
                sub.tool_result(id, name);
            }
        }
        sub.reply(false);
        (format!("agent-{agent}.jsonl"), sub.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::{ParseOptions, parse_bytes};

    #[test]
    fn the_same_seed_makes_the_same_session() {
        let a = session(7, 3);
        let b = session(7, 3);
        assert_eq!(a.transcript, b.transcript);
        assert_eq!(a.session_id, b.session_id);
        assert_ne!(session(8, 3).transcript, a.transcript);
    }

    #[test]
    fn generated_sessions_parse_with_split_replies_and_bookkeeping() {
        let mut merged = 0;
        let mut bookkeeping = 0;
        let mut unknown = 0;
        let mut truncated = 0;
        for index in 0..60 {
            let s = session(42, index);
            let p = parse_bytes(&s.transcript, &ParseOptions::default());
            assert!(
                p.line_errors.len() <= 1,
                "at most the half-written last line"
            );
            truncated += p.line_errors.len();
            assert!(p.stats.assistant_messages > 0);
            assert!(p.stats.tokens_out > 0);
            assert_eq!(
                p.metadata.session_id.as_deref(),
                Some(s.session_id.as_str())
            );
            merged += p.records.merged;
            bookkeeping += p.records.bookkeeping.values().sum::<u64>();
            unknown += p.records.unknown.values().sum::<u64>();
            for (_, sub) in &s.subagents {
                let sp = parse_bytes(sub, &ParseOptions::default());
                assert!(sp.line_errors.is_empty());
                assert!(sp.messages.iter().all(|m| m.is_sidechain));
            }
        }
        assert!(
            merged > 0 && bookkeeping > 0 && unknown > 0,
            "{merged} {bookkeeping} {unknown}"
        );
        assert!(truncated < 60);
    }

    #[test]
    fn the_long_tail_has_distinct_words_and_the_first_is_the_most_drawn() {
        let words: std::collections::HashSet<String> = (0..TAIL_WORDS).map(tail_word).collect();
        assert_eq!(words.len(), TAIL_WORDS);
        assert!(
            words
                .iter()
                .all(|w| w.chars().all(|c| c.is_ascii_lowercase()))
        );
        let text = String::from_utf8(session(3, 1).transcript).unwrap();
        let count = |word: &str| text.matches(&format!(" {word} ")).count();
        assert!(
            count(&tail_word(0)) > count(&tail_word(100)),
            "Zipf: rank 0 beats rank 100"
        );
        assert!(count(&tail_word(0)) > 0);
    }

    #[test]
    fn the_commonest_words_are_as_common_as_in_real_transcripts() {
        let mut writer = Writer::new(ChaCha8Rng::seed_from_u64(5), "s".into(), 0);
        let (mut common, mut all) = (0, 0);
        for _ in 0..2_000 {
            for word in writer.sentence(3..14).split([' ', '\n', '.']) {
                all += 1;
                common += usize::from(WORDS.contains(&word));
            }
        }
        let share = common as f64 / all as f64;
        // The fixtures' 48 commonest words are 38 % of their words.
        assert!((0.3..0.5).contains(&share), "{share}");
    }

    #[test]
    fn a_large_transcript_reaches_its_size() {
        let bytes = large_transcript(1, 3_000_000);
        assert!(
            bytes.len() >= 3_000_000 && bytes.len() < 3_500_000,
            "{}",
            bytes.len()
        );
        let p = parse_bytes(&bytes, &ParseOptions::default());
        assert!(p.line_errors.is_empty());
    }
}
