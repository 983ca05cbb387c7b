//! Secrets out of transcripts: a table of named rules (AWS keys, GitHub/GitLab/Anthropic/OpenAI/
//! Slack/Google/Stripe tokens, private key blocks, JWTs, passwords in URLs, `KEY=value`
//! assignments whose name says secret), compiled once into one [`RegexSet`] that tells in a
//! single pass which rules can match; only those then replace their matches with
//! `[REDACTED:kind]`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::{Regex, RegexSet};

use crate::transcript::{ContentBlock, ParsedTranscript};

/// One rule: its kind (as it appears in `[REDACTED:kind]` and in the counts) and its pattern.
/// A pattern with a group named `secret` replaces that group only (the rest is context).
struct Rule {
    kind: &'static str,
    pattern: &'static str,
}

/// The rules, most specific first: a text is replaced rule by rule in this order, so a later,
/// broader rule never sees what an earlier one took. Word boundaries are ASCII (`(?-u:\b)`):
/// a Unicode one keeps the whole set off the fast DFA engines (70× slower on transcripts).
const RULES: &[Rule] = &[
    Rule {
        kind: "private_key",
        pattern: r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
    },
    Rule {
        kind: "aws_access_key",
        pattern: r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?-u:\b)",
    },
    Rule {
        kind: "aws_secret_key",
        pattern: r#"(?i)aws_?secret_?(?:access_?)?key["']?\s*[:=]\s*["']?(?P<secret>[A-Za-z0-9/+=]{40})(?-u:\b)"#,
    },
    Rule {
        kind: "github_token",
        pattern: r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?-u:\b)",
    },
    Rule {
        kind: "gitlab_token",
        pattern: r"(?-u:\b)glpat-[A-Za-z0-9_-]{20,}(?-u:\b)",
    },
    Rule {
        kind: "anthropic_key",
        pattern: r"(?-u:\b)sk-ant-[A-Za-z0-9_-]{20,}",
    },
    Rule {
        kind: "openai_key",
        pattern: r"(?-u:\b)sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
    },
    Rule {
        kind: "slack_webhook",
        pattern: r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_/-]{20,}",
    },
    Rule {
        kind: "slack_token",
        pattern: r"(?-u:\b)xox[abposr]-[A-Za-z0-9-]{10,}",
    },
    Rule {
        kind: "google_api_key",
        pattern: r"(?-u:\b)AIza[0-9A-Za-z_-]{35}",
    },
    Rule {
        kind: "stripe_key",
        pattern: r"(?-u:\b)(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}",
    },
    Rule {
        kind: "jwt",
        pattern: r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    },
    Rule {
        kind: "url_password",
        pattern: r"(?-u:\b)[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^/\s:@]{1,64}:(?P<secret>[^/\s@]{3,128})@",
    },
    Rule {
        kind: "secret_assignment",
        pattern: r#"(?i)(?-u:\b)[a-z0-9_.-]*(?:secret|token|passwd|password|api_?key|access_?key|private_?key)[a-z0-9_.-]*["']?\s*[:=]\s*["']?(?P<secret>[^\s"'`,;{}()\[\]<>]{8,})"#,
    },
];

/// What was found, by kind.
pub type Counts = BTreeMap<&'static str, u64>;

/// What is redacted (`SESSIONFLOW_REDACT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Nothing.
    Off,
    /// Everything stored and sent but the uploaded transcript, kept byte for byte.
    #[default]
    Rows,
    /// The uploaded transcript too, as it arrives: no secret is ever written.
    All,
}

impl Mode {
    /// Whether the parse stage redacts what it parses.
    pub fn rows(self) -> bool {
        self != Mode::Off
    }

    /// Whether an uploaded transcript is stored redacted.
    pub fn blob(self) -> bool {
        self == Mode::All
    }
}

/// What a secret becomes.
const MARKER: &str = "[REDACTED:";

struct Compiled {
    set: RegexSet,
    each: Vec<Regex>,
}

static COMPILED: LazyLock<Compiled> = LazyLock::new(|| Compiled {
    set: RegexSet::new(RULES.iter().map(|r| r.pattern)).expect("the rules are valid"),
    each: RULES
        .iter()
        .map(|r| Regex::new(r.pattern).expect("the rules are valid"))
        .collect(),
});

/// `text` with every secret replaced by `[REDACTED:kind]`, counting each in `counts`; `None`
/// when nothing was found (the common case costs one pass of the set, asked only whether any
/// rule matches: that search stops at the first match and need not track which rules do). A
/// marker is never taken for a secret, so redacting twice changes nothing.
pub fn redact(text: &str, counts: &mut Counts) -> Option<String> {
    let compiled = &*COMPILED;
    if !compiled.set.is_match(text) {
        return None;
    }
    let matched = compiled.set.matches(text);
    let mut out = text.to_owned();
    let mut changed = false;
    for at in matched.iter() {
        let (rule, regex) = (&RULES[at], &compiled.each[at]);
        let mut found = 0u64;
        let markers = markers(&out);
        let replaced = regex.replace_all(&out, |caps: &regex::Captures<'_>| {
            let whole = caps.get(0).expect("a match");
            let secret = caps.name("secret").unwrap_or(whole);
            if markers
                .iter()
                .any(|m| m.start < secret.end() && secret.start() < m.end)
            {
                return whole.as_str().to_owned();
            }
            found += 1;
            // Keep the context (the name, the URL), replace the secret.
            format!(
                "{}[REDACTED:{}]{}",
                &whole.as_str()[..secret.start() - whole.start()],
                rule.kind,
                &whole.as_str()[secret.end() - whole.start()..]
            )
        });
        if found > 0 {
            out = replaced.into_owned();
            changed = true;
            *counts.entry(rule.kind).or_default() += found;
        }
    }
    changed.then_some(out)
}

/// Where the `[REDACTED:…]` markers of `text` are.
fn markers(text: &str) -> Vec<std::ops::Range<usize>> {
    memchr::memmem::find_iter(text.as_bytes(), MARKER)
        .filter_map(|at| {
            let end = text[at..].find(']')?;
            Some(at..at + end + 1)
        })
        .collect()
}

/// Every rule's kind, in the order they apply.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    RULES.iter().map(|r| r.kind)
}

/// A JSON document (a tool's input, a transcript line) with the secrets in its strings
/// replaced; `None` when nothing was found. Only the strings that held a secret change (each
/// decoded, redacted and encoded again, so a replacement never breaks an escape sequence); every
/// other byte, key order included, stays as it was.
pub fn redact_json(json: &str, counts: &mut Counts) -> Option<String> {
    let set = &COMPILED.set;
    if !set.is_match(json) {
        return None;
    }
    let bytes = json.as_bytes();
    let mut out = String::new();
    let (mut copied, mut at) = (0, 0);
    while let Some(open) = memchr::memchr(b'"', &bytes[at..]) {
        let start = at + open;
        let (mut end, mut escaped, mut escapes) = (start + 1, false, false);
        while end < bytes.len() {
            let b = bytes[end];
            end += 1;
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                (escaped, escapes) = (true, true);
            } else if b == b'"' {
                break;
            }
        }
        at = end;
        let token = &json[start..end];
        // A secret written with escapes (`\n` in a key block, `\u0041`) is found decoded.
        if !escapes && !set.is_match(token) {
            continue;
        }
        let Ok(text) = serde_json::from_str::<String>(token) else {
            continue;
        };
        if let Some(clean) = redact(&text, counts) {
            out.push_str(&json[copied..start]);
            out.push_str(&serde_json::Value::String(clean).to_string());
            copied = end;
        }
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&json[copied..]);
    Some(out)
}

/// Redacts a transcript as it streams by, line by line (a line is redacted as JSON, or as
/// text when it is not an object), for storing it redacted (`SESSIONFLOW_REDACT=all`).
#[derive(Default)]
pub struct LineRedactor {
    /// The line begun in an earlier chunk.
    pending: Vec<u8>,
    /// What was taken out so far.
    pub counts: Counts,
}

impl LineRedactor {
    /// The complete lines `chunk` ends, redacted; the rest waits for the next chunk.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let Some(last) = memchr::memrchr(b'\n', chunk) else {
            self.pending.extend_from_slice(chunk);
            return Vec::new();
        };
        let mut lines = std::mem::take(&mut self.pending);
        lines.extend_from_slice(&chunk[..=last]);
        self.pending.extend_from_slice(&chunk[last + 1..]);
        let mut out = Vec::with_capacity(lines.len());
        for line in lines.split_inclusive(|b| *b == b'\n') {
            self.line(line, &mut out);
        }
        out
    }

    /// The last line, if the transcript does not end with a newline.
    pub fn finish(&mut self) -> Vec<u8> {
        let line = std::mem::take(&mut self.pending);
        let mut out = Vec::with_capacity(line.len());
        self.line(&line, &mut out);
        out
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let text = String::from_utf8_lossy(body);
        let clean = if text.trim_start().starts_with('{') {
            redact_json(&text, &mut self.counts)
        } else {
            redact(&text, &mut self.counts)
        };
        match clean {
            Some(clean) => {
                out.extend_from_slice(clean.as_bytes());
                out.extend_from_slice(&line[body.len()..]);
            }
            None => out.extend_from_slice(line),
        }
    }
}

/// Redacts a parsed transcript in place, before anything of it is stored or sent: message
/// text, thinking, tool inputs and results, the raw lines kept for the database, and the
/// initial prompt taken from them. What was found, by kind, goes to
/// [`ParsedTranscript::redactions`]; with `markers`, the `[REDACTED:kind]` the text holds
/// already count too (the transcript was stored redacted, `SESSIONFLOW_REDACT=all`).
pub fn redact_transcript(parsed: &mut ParsedTranscript, markers: bool) {
    let mut counts = Counts::new();
    let replace = |text: &mut String, counts: &mut Counts| {
        if markers {
            count_markers(text, counts);
        }
        if let Some(clean) = redact(text, counts) {
            *text = clean;
        }
    };
    for message in &mut parsed.messages {
        for block in &mut message.blocks {
            match block {
                ContentBlock::Text { text } => replace(text, &mut counts),
                ContentBlock::Thinking { thinking } => replace(thinking, &mut counts),
                ContentBlock::ToolResult { content, .. } => replace(content, &mut counts),
                ContentBlock::ToolUse {
                    input: Some(input), ..
                } => {
                    if markers {
                        count_markers(input.get(), &mut counts);
                    }
                    if let Some(clean) = redact_json(input.get(), &mut counts)
                        && let Ok(raw) = serde_json::value::RawValue::from_string(clean)
                    {
                        *input = raw;
                    }
                }
                _ => {}
            }
        }
        // The same content as the blocks: counted there already.
        if let Some(raw) = &mut message.raw
            && let Some(clean) = redact_json(raw, &mut Counts::new())
        {
            *raw = clean;
        }
    }
    // Derived from the messages: counted there already.
    if let Some(prompt) = &mut parsed.stats.initial_prompt
        && let Some(clean) = redact(prompt, &mut Counts::new())
    {
        *prompt = clean;
    }
    parsed.redactions = counts;
}

/// Counts the `[REDACTED:kind]` markers of known kinds in `text`.
fn count_markers(text: &str, counts: &mut Counts) {
    for at in memchr::memmem::find_iter(text.as_bytes(), MARKER) {
        let rest = &text[at + MARKER.len()..];
        if let Some(kind) = rest
            .split_once(']')
            .and_then(|(kind, _)| kinds().find(|k| *k == kind))
        {
            *counts.entry(kind).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Counts, kinds, redact};

    /// Each rule: a secret it must catch, and a look-alike it must leave alone.
    const CASES: &[(&str, &str, &str)] = &[
        (
            "private_key",
            "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7v\n-----END RSA PRIVATE KEY-----\nok",
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0B\n-----END PUBLIC KEY-----",
        ),
        (
            "aws_access_key",
            "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
            "the id AKIAIOSFODNN7 is too short",
        ),
        (
            "aws_secret_key",
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_region = us-east-1",
        ),
        (
            "github_token",
            "git clone https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/o/r",
            "the branch ghp_fix is merged",
        ),
        (
            "gitlab_token",
            "PRIVATE-TOKEN: glpat-x8Yz3kQ9vLm2Np4Rt6Ws",
            "glpat- is the prefix of GitLab tokens",
        ),
        (
            "anthropic_key",
            "ANTHROPIC_KEY sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345",
            "the sk-ant prefix",
        ),
        (
            "openai_key",
            "client = OpenAI(api='sk-proj-AbCdEfGhIjKlMnOpQrStUvWx')",
            "task-list and sk-learn are words",
        ),
        (
            "slack_webhook",
            "curl https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "see https://hooks.slack.com/ for docs",
        ),
        (
            "slack_token",
            "SLACK=xoxb-123456789012-1234567890123-AbCdEfGhIjKl",
            "xox is a game",
        ),
        (
            "google_api_key",
            "maps?key=AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
            "AIza is how Google keys begin",
        ),
        (
            "stripe_key",
            "Stripe.apiKey = \"sk_live_4eC39HqLyjWDarjtT1zdp7dc\";",
            "sk_live_ is the live prefix",
        ),
        (
            "jwt",
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "eyJ alone is base64 of {\"",
        ),
        (
            "url_password",
            "DATABASE_URL=postgres://app:hunter2hunter2@db.internal:5432/prod",
            "postgres://app@db.internal:5432/prod and http://example.com:8080/x",
        ),
        (
            "secret_assignment",
            "MY_SERVICE_TOKEN=3f9a8b7c6d5e4f3a2b1c",
            "token = None  # filled in later",
        ),
    ];

    #[test]
    fn every_rule_catches_its_secret_and_leaves_its_look_alike() {
        let covered: Vec<&str> = CASES.iter().map(|c| c.0).collect();
        assert_eq!(
            covered,
            kinds().collect::<Vec<_>>(),
            "a case per rule, in order"
        );
        for (kind, secret, look_alike) in CASES {
            let mut counts = Counts::new();
            let out = redact(secret, &mut counts)
                .unwrap_or_else(|| panic!("{kind}: nothing found in {secret:?}"));
            assert!(
                out.contains(&format!("[REDACTED:{kind}]")),
                "{kind}: {out:?} ({counts:?})"
            );
            assert!(counts[kind] >= 1, "{kind}: {counts:?}");
            let mut none = Counts::new();
            assert_eq!(
                redact(look_alike, &mut none),
                None,
                "{kind}: the look-alike {look_alike:?} was taken ({none:?})"
            );
        }
    }

    #[test]
    fn json_stays_json_whatever_the_secret_sits_next_to() {
        let mut counts = Counts::new();
        let input = r#"{"command":"export PASSWORD=abcdefgh\\\"quoted\" && curl -H 'x: sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx'","n":1}"#;
        let out = super::redact_json(input, &mut counts).unwrap();
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        let command = value["command"].as_str().unwrap();
        assert!(command.contains("[REDACTED:anthropic_key]"), "{command}");
        assert!(
            command.contains("PASSWORD=[REDACTED:secret_assignment]"),
            "{command}"
        );
        assert_eq!(value["n"], 1);
        assert_eq!(
            super::redact_json(r#"{"command":"ls -la"}"#, &mut counts),
            None
        );
    }

    #[test]
    fn redacting_twice_changes_nothing_and_counts_nothing() {
        for (kind, secret, _) in CASES {
            let once = redact(secret, &mut Counts::new()).unwrap();
            let mut again = Counts::new();
            assert_eq!(redact(&once, &mut again), None, "{kind}: {once:?}");
            assert!(again.is_empty(), "{kind}: {again:?}");
        }
    }

    #[test]
    fn a_json_line_keeps_every_byte_but_the_secret() {
        let line = r#"{"z":1,"type":"user","message":{"content":"token=abcdefgh12345678 \u00e9\n"},"a":"AKIAIOSFODNN7EXAMPLE","b":"plain \"quoted\""}"#;
        let out = super::redact_json(line, &mut Counts::new()).unwrap();
        assert_eq!(
            out,
            r#"{"z":1,"type":"user","message":{"content":"token=[REDACTED:secret_assignment] é\n"},"a":"[REDACTED:aws_access_key]","b":"plain \"quoted\""}"#
        );
    }

    #[test]
    fn a_stream_is_redacted_the_same_whatever_its_chunks() {
        let lines = [
            r#"{"type":"user","message":{"content":"export GITHUB=ghp_abcdefghijklmnopqrstuvwxyz0123456789"}}"#,
            r#"{"type":"assistant","message":{"content":"nothing here"}}"#,
            "not json: sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            r#"{"type":"user","message":{"content":"key -----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----"}}"#,
        ];
        let body = lines.join("\n");
        let mut whole = super::LineRedactor::default();
        let mut expected = whole.push(body.as_bytes());
        expected.extend(whole.finish());
        let text = String::from_utf8(expected.clone()).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        for secret in ["ghp_abc", "sk_live_4e", "MIIEv"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("nothing here"));
        for line in text.lines().filter(|l| l.starts_with('{')) {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
        assert_eq!(whole.counts.values().sum::<u64>(), 3, "{:?}", whole.counts);
        for size in [1, 2, 7, 64, 100] {
            let mut parts = super::LineRedactor::default();
            let mut out = Vec::new();
            for chunk in body.as_bytes().chunks(size) {
                out.extend(parts.push(chunk));
            }
            out.extend(parts.finish());
            assert_eq!(out, expected, "chunks of {size}");
            assert_eq!(parts.counts, whole.counts);
        }
    }

    #[test]
    fn markers_of_known_kinds_count_as_redactions() {
        let mut counts = Counts::new();
        super::count_markers(
            "a [REDACTED:jwt] b [REDACTED:jwt] [REDACTED:made_up] [REDACTED:stripe_key",
            &mut counts,
        );
        assert_eq!(counts, Counts::from([("jwt", 2)]));
    }

    #[test]
    fn the_context_stays_and_only_the_secret_goes() {
        let mut counts = Counts::new();
        let out = redact(
            "psql postgres://app:hunter2hunter2@db:5432/x && export API_KEY=abcdefgh12345678",
            &mut counts,
        )
        .unwrap();
        assert_eq!(
            out,
            "psql postgres://app:[REDACTED:url_password]@db:5432/x && export \
             API_KEY=[REDACTED:secret_assignment]"
        );
        assert!(!out.contains("hunter2"));
    }
}
