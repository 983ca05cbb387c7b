//! Search over every session's messages: the query as people type it (words, `"exact phrase"`,
//! `-exclude`, `or`) run against the `search_entries` index the [`search`
//! processor](crate::processors::search) keeps, ranked, filtered, paged, each hit with a
//! highlighted snippet. The newest [`CANDIDATES`] matches are ranked, so a common word costs
//! no more than a rare one.
//!
//! Code is found as it is written: documents and queries are both split into words at every
//! character that is not a letter or a digit, and a query word holding such characters becomes a
//! phrase of its parts. So `parse_bytes` is the phrase `parse bytes`, `src/main.rs` is `src main
//! rs` (found inside `/work/app/src/main.rs` too) and `E0382` a word; words are not stemmed
//! (Postgres' `simple` configuration), so an identifier is never confused with a stem.

use chrono::{DateTime, Utc};
use sessionflow_protocol::search::{SearchHit, SearchPage};
use sqlx::PgPool;

/// Text indexed per block at most (a tsvector holds at most 1 MB): the start of a longer tool
/// output is found, its end is not.
pub const INDEXED_CHARS: usize = 100_000;

/// Matches ranked at most: the newest this many (by the time of their message). A word found in
/// most blocks is then read newest first along an index instead of every match ranked, so that a
/// search takes milliseconds over millions of messages; a rarer one has every match ranked.
pub const CANDIDATES: i64 = 2_000;

/// Hits per page by default, and at most.
pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// Characters of a snippet before the first match, and in all.
const SNIPPET_BEFORE: usize = 60;
const SNIPPET_CHARS: usize = 200;

/// `text` as the index sees it: every run of characters that are neither letters nor digits
/// becomes one space (at most [`INDEXED_CHARS`] characters are kept).
pub fn index_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(INDEXED_CHARS));
    let mut gap = false;
    for c in text.chars().take(INDEXED_CHARS) {
        if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.push(c);
        } else {
            gap = true;
        }
    }
    out
}

/// What a query says, read the way `websearch_to_tsquery` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The query for `websearch_to_tsquery('simple', …)`, each word and phrase in the index's
    /// form.
    pub tsquery: String,
    /// The words to highlight (those not excluded), lower-cased.
    pub words: Vec<String>,
}

impl Query {
    /// Reads `q`; `None` when it holds no word to look for.
    pub fn parse(q: &str) -> Option<Query> {
        let (mut parts, mut words) = (Vec::new(), Vec::new());
        let mut rest = q.trim_start();
        while !rest.is_empty() {
            let negated = rest.starts_with('-');
            if negated {
                rest = &rest[1..];
            }
            let (term, quoted, after) = match rest.strip_prefix('"') {
                Some(inner) => match inner.find('"') {
                    Some(end) => (&inner[..end], true, &inner[end + 1..]),
                    None => (inner, true, ""),
                },
                None => match rest.find(char::is_whitespace) {
                    Some(end) => (&rest[..end], false, &rest[end..]),
                    None => (rest, false, ""),
                },
            };
            rest = after.trim_start();
            let indexed = index_text(term).to_lowercase();
            if indexed.is_empty() {
                continue;
            }
            if !quoted && !negated && indexed == "or" && term.eq_ignore_ascii_case("or") {
                parts.push("or".to_owned());
                continue;
            }
            let several = indexed.contains(' ');
            if !negated {
                words.extend(indexed.split(' ').map(str::to_owned));
            }
            let sign = if negated { "-" } else { "" };
            parts.push(if several || quoted {
                format!("{sign}\"{indexed}\"")
            } else {
                format!("{sign}{indexed}")
            });
        }
        // `or` joins two terms: at the ends it is a word like any other.
        while parts.first().is_some_and(|p| p == "or") {
            parts.remove(0);
            words.push("or".to_owned());
        }
        while parts.last().is_some_and(|p| p == "or") {
            parts.pop();
            words.push("or".to_owned());
        }
        if words.is_empty() {
            return None;
        }
        words.sort();
        words.dedup();
        Some(Query {
            tsquery: parts.join(" "),
            words,
        })
    }
}

/// A search: the query and its filters.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub q: String,
    /// Only these workspaces (the key's, or the one asked for); none: every workspace.
    pub workspaces: Option<Vec<String>>,
    pub device: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// `user` or `assistant`.
    pub role: Option<String>,
    /// `text`, `thinking`, `tool_input` or `tool_result`.
    pub kind: Option<String>,
    pub tool: Option<String>,
    pub limit: i64,
    pub cursor: Option<String>,
}

/// Why a search was not run.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Where a page ends: the last hit's rank and place.
struct Cursor {
    rank: f32,
    session_id: String,
    ordinal: i32,
    block: i32,
}

impl Cursor {
    fn encode(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.rank, self.ordinal, self.block, self.session_id
        )
    }

    fn decode(text: &str) -> Result<Cursor, SearchError> {
        let bad = || SearchError::Invalid(format!("cursor {text:?} is not one this server gave"));
        let mut parts = text.splitn(4, ':');
        let mut next = || parts.next().ok_or_else(bad);
        let rank = next()?.parse().map_err(|_| bad())?;
        let ordinal = next()?.parse().map_err(|_| bad())?;
        let block = next()?.parse().map_err(|_| bad())?;
        let session_id = next()?.to_owned();
        Ok(Cursor {
            rank,
            session_id,
            ordinal,
            block,
        })
    }
}

/// Kinds of block that are searched.
pub const KINDS: &[&str] = &["text", "thinking", "tool_input", "tool_result"];

type HitRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
    i32,
    i32,
    Option<String>,
    String,
    Option<String>,
    f32,
    Option<String>,
);

/// Runs `request`: the best hits first (then by place, so pages never overlap).
pub async fn search(pool: &PgPool, request: &Request) -> Result<SearchPage, SearchError> {
    let query = Query::parse(&request.q).ok_or_else(|| {
        SearchError::Invalid("q must hold a word to look for (letters or digits)".into())
    })?;
    if let Some(kind) = request.kind.as_deref()
        && !KINDS.contains(&kind)
    {
        return Err(SearchError::Invalid(format!(
            "kind must be one of {}, not {kind:?}",
            KINDS.join(", ")
        )));
    }
    if let Some(role) = request.role.as_deref()
        && !matches!(role, "user" | "assistant")
    {
        return Err(SearchError::Invalid(format!(
            "role must be user or assistant, not {role:?}"
        )));
    }
    if !(1..=MAX_LIMIT).contains(&request.limit) {
        return Err(SearchError::Invalid(format!(
            "limit must be 1 to {MAX_LIMIT}, not {}",
            request.limit
        )));
    }
    let cursor = request.cursor.as_deref().map(Cursor::decode).transpose()?;
    // Planned for each search with its values (an unnamed statement, not a cached generic
    // plan): how common the words are decides between the word index (rare words: every match,
    // then the newest) and the time index (common words: newest first until enough match).
    let rows: Vec<HitRow> = sqlx::query_as(
        "WITH candidates AS ( \
             SELECT e.* FROM search_entries e \
             WHERE e.terms @@ websearch_to_tsquery('simple', $1) \
               AND ($2::text[] IS NULL OR e.workspace_id = ANY($2)) \
               AND ($3::text IS NULL OR e.device_id = $3) \
               AND ($4::timestamptz IS NULL OR e.\"timestamp\" >= $4) \
               AND ($5::timestamptz IS NULL OR e.\"timestamp\" < $5) \
               AND ($6::text IS NULL OR e.role = $6) \
               AND ($7::text IS NULL OR e.kind = $7) \
               AND ($8::text IS NULL OR e.tool_name = $8) \
             ORDER BY e.\"timestamp\" DESC NULLS LAST LIMIT $14), \
         hits AS ( \
             SELECT c.*, ts_rank_cd(c.terms, websearch_to_tsquery('simple', $1)) AS rank \
             FROM candidates c), \
         page AS ( \
             SELECT * FROM hits \
             WHERE $9::real IS NULL OR rank < $9 \
                OR (rank = $9 AND (session_id, message_ordinal, block_order) > ($10, $11, $12)) \
             ORDER BY rank DESC, session_id, message_ordinal, block_order LIMIT $13) \
         SELECT p.session_id, p.workspace_id, p.device_id, s.cwd, p.\"timestamp\", \
                p.message_ordinal, p.block_order, p.role, p.kind, p.tool_name, p.rank, \
                CASE p.kind WHEN 'text' THEN b.text WHEN 'thinking' THEN b.thinking \
                            WHEN 'tool_result' THEN b.result_text \
                            ELSE b.tool_input::text END \
         FROM page p \
         JOIN sessions s ON s.id = p.session_id \
         LEFT JOIN content_blocks b ON b.session_id = p.session_id \
              AND b.message_ordinal = p.message_ordinal AND b.block_order = p.block_order \
         ORDER BY p.rank DESC, p.session_id, p.message_ordinal, p.block_order",
    )
    .bind(&query.tsquery)
    .bind(&request.workspaces)
    .bind(&request.device)
    .bind(request.since)
    .bind(request.until)
    .bind(&request.role)
    .bind(&request.kind)
    .bind(&request.tool)
    .bind(cursor.as_ref().map(|c| c.rank))
    .bind(cursor.as_ref().map(|c| c.session_id.as_str()))
    .bind(cursor.as_ref().map(|c| c.ordinal))
    .bind(cursor.as_ref().map(|c| c.block))
    .bind(request.limit)
    .bind(CANDIDATES)
    .persistent(false)
    .fetch_all(pool)
    .await?;
    let next_cursor = (rows.len() as i64 == request.limit)
        .then(|| {
            rows.last().map(|r| {
                Cursor {
                    rank: r.10,
                    session_id: r.0.clone(),
                    ordinal: r.5,
                    block: r.6,
                }
                .encode()
            })
        })
        .flatten();
    let hits = rows
        .into_iter()
        .map(|r| {
            let (snippet, highlights) = snippet(r.11.as_deref().unwrap_or(""), &query.words);
            SearchHit {
                session_id: r.0,
                workspace_id: r.1,
                device_id: r.2,
                cwd: r.3,
                timestamp: r.4,
                message_ordinal: i64::from(r.5),
                block_order: i64::from(r.6),
                role: r.7,
                kind: r.8,
                tool_name: r.9,
                rank: f64::from(r.10),
                snippet,
                highlights,
            }
        })
        .collect();
    Ok(SearchPage { hits, next_cursor })
}

/// About [`SNIPPET_CHARS`] characters of `text` around the first of `words` it holds (its
/// start when none), on one line, with each of `words` found in it as `[start, end)` character
/// offsets.
pub fn snippet(text: &str, words: &[String]) -> (String, Vec<[usize; 2]>) {
    let chars: Vec<char> = text.chars().collect();
    // The words of the text: runs of letters and digits, as character ranges.
    let mut found = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        if !chars[at].is_alphanumeric() {
            at += 1;
            continue;
        }
        let start = at;
        while at < chars.len() && chars[at].is_alphanumeric() {
            at += 1;
        }
        let word: String = chars[start..at].iter().collect::<String>().to_lowercase();
        if words.contains(&word) {
            found.push([start, at]);
        }
    }
    let from = found
        .first()
        .map_or(0, |[start, _]| start.saturating_sub(SNIPPET_BEFORE));
    // Start at a word's beginning, unless that is far back.
    let from = (from.saturating_sub(15)..=from)
        .rev()
        .find(|&i| i == 0 || !chars[i - 1].is_alphanumeric())
        .unwrap_or(from);
    let to = (from + SNIPPET_CHARS).min(chars.len());
    let mut snippet = String::new();
    let mut offsets = Vec::with_capacity(to - from);
    let lead = from > 0;
    if lead {
        snippet.push('…');
    }
    for c in &chars[from..to] {
        offsets.push(snippet.chars().count());
        snippet.push(if c.is_whitespace() || c.is_control() {
            ' '
        } else {
            *c
        });
    }
    if to < chars.len() {
        snippet.push('…');
    }
    let highlights = found
        .into_iter()
        .filter(|[start, end]| *start >= from && *end <= to)
        .map(|[start, end]| {
            [
                start - from + usize::from(lead),
                end - from + usize::from(lead),
            ]
        })
        .collect();
    (snippet, highlights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_indexed_as_words() {
        assert_eq!(
            index_text("call parse_bytes(&buf) in /work/src/main.rs: E0382!"),
            "call parse bytes buf in work src main rs E0382"
        );
        assert_eq!(index_text("  café—naïve  "), "café naïve");
        assert_eq!(index_text("()"), "");
    }

    #[test]
    fn queries_read_as_typed_with_code_as_phrases() {
        let q = |text: &str| Query::parse(text).map(|q| q.tsquery);
        assert_eq!(q("flaky test").as_deref(), Some("flaky test"));
        assert_eq!(q("parse_bytes").as_deref(), Some("\"parse bytes\""));
        assert_eq!(q("src/main.rs").as_deref(), Some("\"src main rs\""));
        assert_eq!(
            q("\"exact Phrase\" -skip -\"not this\" or E0382").as_deref(),
            Some("\"exact phrase\" -skip -\"not this\" or e0382")
        );
        assert_eq!(q("redis or").as_deref(), Some("redis"));
        assert_eq!(q("  ;; \"\" -").as_deref(), None);
        assert_eq!(q("-only").as_deref(), None, "nothing to look for");
        let words = Query::parse("parse_bytes -skip \"Exact phrase\"")
            .unwrap()
            .words;
        assert_eq!(words, ["bytes", "exact", "parse", "phrase"]);
    }

    #[test]
    fn the_snippet_shows_the_match_and_where_it_is() {
        let text = format!(
            "{}the call to parse_bytes failed\nwith E0382 here {}",
            "lorem ipsum ".repeat(20),
            "dolor ".repeat(50)
        );
        let words = vec!["parse".to_owned(), "bytes".to_owned()];
        let (snippet, highlights) = snippet(&text, &words);
        assert!(
            snippet.starts_with('…') && snippet.ends_with('…'),
            "{snippet}"
        );
        assert!(!snippet.contains('\n'));
        let chars: Vec<char> = snippet.chars().collect();
        let marked: Vec<String> = highlights
            .iter()
            .map(|[s, e]| chars[*s..*e].iter().collect())
            .collect();
        assert_eq!(marked, ["parse", "bytes"]);
        assert!(snippet.chars().count() <= SNIPPET_CHARS + 2);
        let (whole, none) = super::snippet("short text", &words);
        assert_eq!((whole.as_str(), none.len()), ("short text", 0));
    }
}
