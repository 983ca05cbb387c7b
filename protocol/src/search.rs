//! Search over every session's messages: what `GET /api/search` answers and
//! `sessionflow search --json` prints.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One page of hits, best first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    /// For the next page (`cursor=`); none on the last.
    pub next_cursor: Option<String>,
    /// Set when older matches were not looked for: a phrase of common words is checked in only
    /// so many entries, newest first, and this is the time the search reached. The pages hold
    /// the matches from then on; `until` set to it searches the time before.
    pub searched_to: Option<DateTime<Utc>>,
}

/// One block that matches: where it is, and a piece of it around the match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchHit {
    pub session_id: String,
    pub workspace_id: String,
    pub device_id: Option<String>,
    /// The session's working directory (its project).
    pub cwd: Option<String>,
    /// When the message was written.
    pub timestamp: Option<DateTime<Utc>>,
    pub message_ordinal: i64,
    pub block_order: i64,
    /// `user` or `assistant`.
    pub role: Option<String>,
    /// `text`, `thinking`, `tool_input` or `tool_result`.
    pub kind: String,
    /// The tool called (for a tool's input or result).
    pub tool_name: Option<String>,
    /// Relevance (higher is better), comparable within one search.
    pub rank: f64,
    /// Up to about 200 characters of the block around the first match.
    pub snippet: String,
    /// The matched words in `snippet`, as `[start, end)` character offsets.
    pub highlights: Vec<[usize; 2]>,
}

impl SearchHit {
    /// The project the hit is from: the last folder of its session's working directory, or its
    /// workspace.
    pub fn project(&self) -> &str {
        self.cwd
            .as_deref()
            .and_then(|cwd| cwd.trim_end_matches('/').rsplit('/').next())
            .filter(|name| !name.is_empty())
            .unwrap_or(&self.workspace_id)
    }

    /// The snippet in pieces, each with whether it is a match (to show in bold).
    pub fn pieces(&self) -> Vec<(String, bool)> {
        let chars: Vec<char> = self.snippet.chars().collect();
        let text = |from: usize, to: usize| chars[from..to].iter().collect::<String>();
        let mut pieces = Vec::new();
        let mut at = 0;
        for [start, end] in &self.highlights {
            let (start, end) = ((*start).min(chars.len()), (*end).min(chars.len()));
            if start < at || start >= end {
                continue;
            }
            if start > at {
                pieces.push((text(at, start), false));
            }
            pieces.push((text(start, end), true));
            at = end;
        }
        if at < chars.len() {
            pieces.push((text(at, chars.len()), false));
        }
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::SearchHit;

    #[test]
    fn a_snippet_comes_apart_at_its_matches() {
        let hit = SearchHit {
            snippet: "call parse_bytes(é) now".into(),
            highlights: vec![[5, 10], [11, 16], [3, 4], [30, 40]],
            workspace_id: "w1".into(),
            cwd: Some("/work/app/".into()),
            ..SearchHit::default()
        };
        let pieces = hit.pieces();
        let pieces: Vec<(&str, bool)> = pieces.iter().map(|(t, b)| (t.as_str(), *b)).collect();
        let expected = vec![
            ("call ", false),
            ("parse", true),
            ("_", false),
            ("bytes", true),
            ("(é) now", false),
        ];
        assert_eq!(pieces, expected);
        assert_eq!(hit.project(), "app");
        assert_eq!(
            SearchHit {
                workspace_id: "w1".into(),
                ..SearchHit::default()
            }
            .project(),
            "w1"
        );
    }
}
