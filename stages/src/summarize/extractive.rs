//! The summary built from the transcript itself: what was asked, which files and tools were
//! touched, and how it ended — at most three sentences, the same every time.

use std::collections::BTreeMap;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{Summarizer, SummaryError, cut};
use crate::transcript::{ContentBlock, MessageKind, ParsedTranscript};

/// Tool input fields that name a file.
const PATH_FIELDS: [&str; 3] = ["file_path", "notebook_path", "path"];

#[derive(Debug, Default, Clone, Copy)]
pub struct ExtractiveSummarizer;

impl Summarizer for ExtractiveSummarizer {
    fn summarize<'a>(
        &'a self,
        parsed: &'a ParsedTranscript,
    ) -> BoxFuture<'a, Result<String, SummaryError>> {
        async move { Ok(summary(parsed)) }.boxed()
    }

    fn name(&self) -> &'static str {
        "extractive"
    }
}

fn summary(parsed: &ParsedTranscript) -> String {
    let mut sentences = Vec::new();
    match &parsed.stats.initial_prompt {
        Some(prompt) => sentences.push(format!("Asked: {}", sentence(prompt, 200))),
        None => sentences.push("No prompt was recorded.".to_owned()),
    }

    let mut tools: BTreeMap<&str, usize> = BTreeMap::new();
    let mut files: Vec<String> = Vec::new();
    for block in parsed.messages.iter().flat_map(|m| &m.blocks) {
        if let ContentBlock::ToolUse { name, input, .. } = block {
            *tools.entry(name.as_str()).or_default() += 1;
            let path = input
                .as_ref()
                .and_then(|raw| serde_json::from_str::<serde_json::Value>(raw.get()).ok())
                .and_then(|v| {
                    PATH_FIELDS
                        .iter()
                        .find_map(|f| v.get(f)?.as_str().map(str::to_owned))
                });
            if let Some(path) = path
                && !files.contains(&path)
            {
                files.push(path);
            }
        }
    }
    if !tools.is_empty() {
        let mut ranked: Vec<(&str, usize)> = tools.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let tools: Vec<String> = ranked
            .iter()
            .take(4)
            .map(|(n, c)| format!("{n} ×{c}"))
            .collect();
        let files = match files.len() {
            0 => String::new(),
            n => {
                let names: Vec<&str> = files
                    .iter()
                    .take(3)
                    .map(|p| p.rsplit('/').next().unwrap_or(p))
                    .collect();
                let more = if n > 3 {
                    format!(" and {} more", n - 3)
                } else {
                    String::new()
                };
                format!(
                    " on {n} file{} ({}{more})",
                    if n == 1 { "" } else { "s" },
                    names.join(", ")
                )
            }
        };
        sentences.push(format!("Used {}{files}.", tools.join(", ")));
    }

    let last_words = parsed
        .messages
        .iter()
        .rev()
        .filter(|m| m.kind == MessageKind::Assistant && !m.is_sidechain)
        .flat_map(|m| m.blocks.iter().rev())
        .find_map(|b| match b {
            ContentBlock::Text { text } if !text.trim().is_empty() => Some(text.trim()),
            _ => None,
        });
    if let Some(text) = last_words {
        sentences.push(format!("Ended with: {}", sentence(text, 200)));
    }
    sentences.join(" ")
}

/// The first line of `text`, cut to `max` characters and closed with a full stop.
fn sentence(text: &str, max: usize) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut s = cut(line, max);
    if !s.ends_with(['.', '!', '?', '…']) {
        s.push('.');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::{ParseOptions, parse_bytes};

    #[test]
    fn says_what_was_asked_touched_and_how_it_ended() {
        let lines = [
            r#"{"type":"user","uuid":"u1","message":{"role":"user","content":"Fix the flaky test\nin the parser"}}"#,
            r#"{"type":"assistant","uuid":"a1","message":{"id":"m1","role":"assistant","content":[{"type":"tool_use","id":"t1","name":"Read","input":{"file_path":"/src/parse.rs"}}]}}"#,
            r#"{"type":"assistant","uuid":"a2","message":{"id":"m2","role":"assistant","content":[{"type":"tool_use","id":"t2","name":"Edit","input":{"file_path":"/src/parse.rs"}}]}}"#,
            r#"{"type":"assistant","uuid":"a3","message":{"id":"m3","role":"assistant","content":[{"type":"tool_use","id":"t3","name":"Bash","input":{"command":"cargo test"}}]}}"#,
            r#"{"type":"assistant","uuid":"a4","message":{"id":"m4","role":"assistant","content":[{"type":"tool_use","id":"t4","name":"Edit","input":{"file_path":"/src/lib.rs"}}]}}"#,
            r#"{"type":"assistant","uuid":"a5","message":{"id":"m5","role":"assistant","content":[{"type":"text","text":"The test passes now"}]}}"#,
        ];
        let parsed = parse_bytes(lines.join("\n").as_bytes(), &ParseOptions::default());
        assert_eq!(
            summary(&parsed),
            "Asked: Fix the flaky test. Used Edit ×2, Bash ×1, Read ×1 on 2 files (parse.rs, lib.rs). \
             Ended with: The test passes now."
        );
        assert_eq!(
            summary(&parse_bytes(b"", &ParseOptions::default())),
            "No prompt was recorded."
        );
    }
}
