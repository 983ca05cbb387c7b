//! Search over every session's messages: the query as people type it (words, `"exact phrase"`,
//! `-exclude`, `or`) run against the `search_entries` index the [`search`
//! processor](crate::processors::search) keeps, ranked, filtered, paged, each hit with a
//! highlighted snippet. The newest [`CANDIDATES`] matches are ranked, so a common word costs
//! no more than a rare one (for a phrase of common words, those found within [`READ_BUDGET`],
//! the page saying how far back that reached).
//!
//! Code is found as it is written: documents and queries are both split into words at every
//! character that is not a letter or a digit, and a query word holding such characters becomes a
//! phrase of its parts. So `parse_bytes` is the phrase `parse bytes`, `src/main.rs` is `src main
//! rs` (found inside `/work/app/src/main.rs` too) and `E0382` a word; words are not stemmed
//! (Postgres' `simple` configuration), so an identifier is never confused with a stem. The
//! splitting is this module's ([`index_terms`] for entries, [`Query::parse`] for queries), not
//! Postgres' parser, so the two always agree; an entry also holds a term for each pair of
//! neighbouring words ([`pair`]), so that the word index finds a phrase by its pairs — few
//! entries hold the pair `token breta` even where most hold `token` — and only those are read
//! to check the phrase.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use sessionflow_protocol::search::{SearchHit, SearchPage};
use sqlx::PgPool;

/// Text indexed per block at most (a tsvector holds at most 1 MB): the start of a longer tool
/// output is found, its end is not.
pub const INDEXED_CHARS: usize = 100_000;

/// Matches ranked at most: the newest this many (by the time of their message). A word found in
/// most blocks is then read newest first along an index instead of every match ranked, so that a
/// search takes milliseconds over millions of messages; a rarer one has every match ranked.
pub const CANDIDATES: i64 = 200;

/// Entries read newest first, at most, looking for [`CANDIDATES`] matches before the word index
/// is asked (see [`candidates`]).
pub const WINDOW: i64 = 2_000;

/// Entries that match a phrase's words in any order read at most, beyond the window, to tell
/// which hold the phrase (only reading them tells): when the newest [`CANDIDATES`] matches lie
/// further back, those found within it are ranked and the page says how far back the search
/// reached (`searched_to`; `until` set to it goes on). So a phrase of the commonest words, or
/// one that is rare although its words are not, costs about what a rare word does.
pub const READ_BUDGET: i64 = 2_000;

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

/// Words a pair of neighbours may each be at most, in characters, for the index to hold a term
/// for the pair (see [`pair`]): longer ones are hashes, encoded data and the like, whose pairs
/// would each be found once (as would those of two numbers: they are not paired either).
pub const PAIRED_CHARS: usize = 20;

/// The terms pairs of words are hashed to: 2²² (see [`pair`]).
const PAIR_BITS: u32 = 22;

/// Postgres' limits for a `tsvector`: a word's bytes, a position, positions kept per word.
const MAX_WORD_BYTES: usize = 2_047;
const MAX_POSITION: usize = 16_383;
const MAX_POSITIONS: usize = 256;

/// The index's term for the pair of neighbouring words `a b`, when it holds one: `~p` and six
/// hex digits, the pair's 64-bit FNV-1a hash (of `a`, a space, `b`) cut to [`PAIR_BITS`] bits
/// (no document word holds a `~`, see [`index_text`]). Pairs share terms so that the index
/// holds a few million of them, not one for every pair ever written (which made the word index
/// five times its size, most of it terms found once): each term stands for tens of pairs of
/// the index's millions of entries, which an entry holding the phrase's other pairs, or reading
/// it, tells apart. Stored in the index: changing it means indexing every session again.
fn pair(a: &str, b: &str) -> Option<String> {
    let paired = |w: &str| w.chars().count() <= PAIRED_CHARS;
    let number = |w: &str| w.chars().all(|c| c.is_ascii_digit());
    if !paired(a) || !paired(b) || (number(a) && number(b)) {
        return None;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in a.bytes().chain([b' ']).chain(b.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    Some(format!("~p{:06x}", hash & ((1 << PAIR_BITS) - 1)))
}

/// `term` quoted for a `tsvector` or `tsquery` literal.
fn quote(out: &mut String, term: &str) {
    out.push('\'');
    for c in term.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
}

/// What the index holds of `indexed` (the words [`index_text`] leaves): a `tsvector` literal of
/// each word, lower-cased, with its positions, and of a term for each pair of neighbouring words
/// (see [`pair`]) — so that a phrase is found by its pairs, which are rare even where its words
/// are common, instead of by reading every entry that holds its words. Words are split here,
/// not by Postgres' parser, so that a query is split the same way ([`Query::parse`]).
/// Postgres' limits apply as `to_tsvector` applies them: longer words are left out, positions
/// stop at 16 383 and a word keeps its first 256.
pub fn index_terms(indexed: &str) -> String {
    let words: Vec<String> = indexed
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut positions: std::collections::HashMap<&str, Vec<usize>> =
        std::collections::HashMap::new();
    let mut pairs = std::collections::HashSet::new();
    for (at, word) in words.iter().enumerate() {
        if word.len() > MAX_WORD_BYTES {
            continue;
        }
        let position = (at + 1).min(MAX_POSITION);
        let kept = positions.entry(word).or_default();
        if kept.len() < MAX_POSITIONS && kept.last() != Some(&position) {
            kept.push(position);
        }
        if let Some(pair) = at
            .checked_sub(1)
            .and_then(|before| pair(&words[before], word))
        {
            pairs.insert(pair);
        }
    }
    let mut out = String::with_capacity(indexed.len() * 3);
    for (word, kept) in positions {
        quote(&mut out, word);
        for (n, position) in kept.iter().enumerate() {
            out.push(if n == 0 { ':' } else { ',' });
            let _ = write!(out, "{position}");
        }
        out.push(' ');
    }
    for pair in pairs {
        quote(&mut out, &pair);
        out.push(' ');
    }
    out
}

/// What a query says, read the way `websearch_to_tsquery` reads it (words, `"exact phrase"`,
/// `-exclude`, `or`), each word split and lower-cased as [`index_terms`] splits the entries'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The query as a `tsquery` literal: words, phrases (`<->`), `!` and `|`.
    pub tsquery: String,
    /// The words to highlight (those not excluded), lower-cased.
    pub words: Vec<String>,
    /// For a query with a phrase: the same query with each phrase as its pairs of words (see
    /// [`index_terms`]) and the excluded phrases left out, as a `tsquery` literal. The word
    /// index finds the entries that match it, and only reading them tells which hold the
    /// phrase (an entry may hold the pairs `a b` and `b c` apart, or another pair of the same
    /// term).
    pub loose: Option<String>,
}

/// A part of a query: a term, as matched exactly and loosely (`None`: left out), or an `or`.
enum Part {
    Term(String, Option<String>),
    Or,
}

impl Query {
    /// Reads `q`; `None` when it holds no word to look for.
    pub fn parse(q: &str) -> Option<Query> {
        let (mut parts, mut words) = (Vec::new(), Vec::new());
        let mut phrases = false;
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
                parts.push(Part::Or);
                continue;
            }
            let split: Vec<&str> = indexed.split(' ').collect();
            let phrase = split.len() > 1 || quoted;
            phrases |= phrase;
            if !negated {
                words.extend(split.iter().map(|w| (*w).to_owned()));
            }
            let exact = phrase_of(&split);
            let part = match (phrase, negated) {
                (true, true) => Part::Term(format!("!{exact}"), None),
                (true, false) => Part::Term(exact, Some(pairs_of(&split))),
                (false, true) => Part::Term(format!("!{exact}"), Some(format!("!{exact}"))),
                (false, false) => Part::Term(exact.clone(), Some(exact)),
            };
            parts.push(part);
        }
        // `or` joins two terms: at the ends it is a word like any other.
        while matches!(parts.first(), Some(Part::Or)) {
            parts.remove(0);
            words.push("or".to_owned());
        }
        while matches!(parts.last(), Some(Part::Or)) {
            parts.pop();
            words.push("or".to_owned());
        }
        if words.is_empty() {
            return None;
        }
        words.sort();
        words.dedup();
        let exact = parts.iter().map(|part| match part {
            Part::Term(exact, _) => Some(exact.as_str()),
            Part::Or => None,
        });
        let loose = parts.iter().filter_map(|part| match part {
            Part::Term(_, loose) => loose.as_deref().map(Some),
            Part::Or => Some(None),
        });
        Some(Query {
            tsquery: joined(exact),
            words,
            loose: phrases.then(|| joined(loose)),
        })
    }
}

/// `words` as a `tsquery` term: a word, or a phrase of them in parentheses.
fn phrase_of(words: &[&str]) -> String {
    grouped(words, " <-> ")
}

/// The phrase `words` as the index's terms an entry that holds it must hold: its pairs (see
/// [`pair`]), and each word in no pair the index holds.
fn pairs_of(words: &[&str]) -> String {
    let mut terms = Vec::new();
    let mut paired = vec![false; words.len()];
    for at in 1..words.len() {
        if let Some(pair) = pair(words[at - 1], words[at]) {
            terms.push(pair);
            paired[at - 1] = true;
            paired[at] = true;
        }
    }
    terms.extend(
        words
            .iter()
            .zip(&paired)
            .filter(|(_, paired)| !**paired)
            .map(|(word, _)| (*word).to_owned()),
    );
    grouped(&terms, " & ")
}

/// `terms`, each quoted, joined by `operator`, in parentheses when more than one.
fn grouped(terms: &[impl AsRef<str>], operator: &str) -> String {
    let mut out = String::new();
    for (n, term) in terms.iter().enumerate() {
        out.push_str(if n == 0 { "" } else { operator });
        quote(&mut out, term.as_ref());
    }
    if terms.len() > 1 {
        out = format!("({out})");
    }
    out
}

/// Terms (`Some`) and `or`s (`None`) joined as a `tsquery`: `&` between two terms, `|` for an
/// `or` that joins two (one at either end, or after another, joins nothing).
fn joined<'a>(parts: impl Iterator<Item = Option<&'a str>>) -> String {
    let mut kept: Vec<Option<&str>> = Vec::new();
    for part in parts {
        if part.is_some() || kept.last().is_some_and(Option::is_some) {
            kept.push(part);
        }
    }
    while kept.last() == Some(&None) {
        kept.pop();
    }
    let mut out = String::new();
    for (n, part) in kept.iter().enumerate() {
        match part {
            None => out.push_str(" | "),
            Some(term) => {
                if n > 0 && kept[n - 1].is_some() {
                    out.push_str(" & ");
                }
                out.push_str(term);
            }
        }
    }
    out
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
    let candidates = candidates(pool, request, &query).await?;
    // The candidates ranked, the page cut from them, each hit with its session and its text.
    let rows: Vec<HitRow> = sqlx::query_as(
        "WITH hits AS ( \
             SELECT e.*, ts_rank_cd(e.terms, $1::tsquery) AS rank \
             FROM unnest($2::text[], $3::int[], $4::int[]) AS c(session_id, ordinal, block) \
             JOIN search_entries e ON e.session_id = c.session_id \
                  AND e.message_ordinal = c.ordinal AND e.block_order = c.block), \
         page AS ( \
             SELECT * FROM hits \
             WHERE $5::real IS NULL OR rank < $5 \
                OR (rank = $5 AND (session_id, message_ordinal, block_order) > ($6, $7, $8)) \
             ORDER BY rank DESC, session_id, message_ordinal, block_order LIMIT $9) \
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
    .bind(&candidates.sessions)
    .bind(&candidates.ordinals)
    .bind(&candidates.blocks)
    .bind(cursor.as_ref().map(|c| c.rank))
    .bind(cursor.as_ref().map(|c| c.session_id.as_str()))
    .bind(cursor.as_ref().map(|c| c.ordinal))
    .bind(cursor.as_ref().map(|c| c.block))
    .bind(request.limit)
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
    Ok(SearchPage {
        hits,
        next_cursor,
        searched_to: candidates.searched_to,
    })
}

/// The entries a search ranks, as parallel columns of their keys.
#[derive(Default)]
struct Candidates {
    sessions: Vec<String>,
    ordinals: Vec<i32>,
    blocks: Vec<i32>,
    /// How far back matches were looked for, when not to the first entry.
    searched_to: Option<DateTime<Utc>>,
}

/// A search's words (`$1`), as a condition on an entry `e`.
const WORDS: &str = "e.terms @@ $1::tsquery";

/// A search's filters (`$2` to `$8`), as a condition on an entry `e`.
const FILTERS: &str = "($2::text[] IS NULL OR e.workspace_id = ANY($2)) \
     AND ($3::text IS NULL OR e.device_id = $3) \
     AND ($4::timestamptz IS NULL OR e.\"timestamp\" >= $4) \
     AND ($5::timestamptz IS NULL OR e.\"timestamp\" < $5) \
     AND ($6::text IS NULL OR e.role = $6) \
     AND ($7::text IS NULL OR e.kind = $7) \
     AND ($8::text IS NULL OR e.tool_name = $8)";

/// An entry's key, and its time.
type Entry = (String, i32, i32, Option<DateTime<Utc>>);

/// `sql` with the words (`$1`), the filters (`$2` to `$8`) and [`CANDIDATES`] (`$9`) bound,
/// planned with its values each time (an unnamed statement, not a cached generic plan) so that
/// the filters' selectivity is seen.
fn matching<'q, Row>(
    sql: String,
    request: &'q Request,
    query: &'q Query,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, Row, sqlx::postgres::PgArguments>
where
    Row: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    // Made of this module's constants only.
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&query.tsquery)
        .bind(&request.workspaces)
        .bind(&request.device)
        .bind(request.since)
        .bind(request.until)
        .bind(&request.role)
        .bind(&request.kind)
        .bind(&request.tool)
        .bind(CANDIDATES)
        .persistent(false)
}

/// The newest [`CANDIDATES`] entries that match `query` and the filters, found in up to three
/// steps, each cheap where the others are not:
/// 1. the newest [`WINDOW`] entries (that pass the filters) are read newest first, along the
///    time index, until enough match: quick for a common word, however many millions of
///    entries hold it;
/// 2. when some but not enough match there, the word index is asked for the matches in the time
///    before the window that should hold the rest (estimated from how many the window held),
///    narrowed to it inside the index by the entries' time words ([`time_words`]), so that only
///    those matches are read;
/// 3. when still not enough (or none matched in the window: a rare word), the word index gives
///    every older match, and the newest are kept: quick for a rare word.
///
/// A query with a phrase takes steps 2 and 3 in spans within [`READ_BUDGET`] instead
/// ([`older_phrase_matches`]): the word index cannot tell which entries hold a phrase.
///
/// Postgres' planner chooses between the time and the word index itself from its estimate of
/// how common the words are, but an estimate can be wrong by a factor of ten either way, and so
/// is the time a search takes; these steps bound what a wrong guess costs.
async fn candidates(
    pool: &PgPool,
    request: &Request,
    query: &Query,
) -> Result<Candidates, SearchError> {
    // The window's matches, and its first and last entries (`place` 1 and WINDOW) as markers;
    // for a query with a phrase, also how many entries of the window match it loosely.
    let newest = |loosely: &str| {
        format!(
            "SELECT e.session_id, e.message_ordinal, e.block_order, e.\"timestamp\", \
                    {WORDS} AS hit, {loosely} \
                    row_number() OVER (ORDER BY e.\"timestamp\" DESC NULLS LAST) AS place \
             FROM search_entries e WHERE {FILTERS} \
             ORDER BY e.\"timestamp\" DESC NULLS LAST LIMIT $10"
        )
    };
    // Counting the loose matches reads the whole window: only a phrase needs it.
    let counted = match query.loose {
        Some(_) => format!(
            "SELECT w.*, count(*) FILTER (WHERE w.loosely) OVER () AS loose FROM ({}) w",
            newest("e.terms @@ $11::tsquery AS loosely,")
        ),
        None => format!("SELECT w.*, NULL::bigint AS loose FROM ({}) w", newest("")),
    };
    let window = format!(
        "SELECT session_id, message_ordinal, block_order, \"timestamp\", hit, place, loose \
         FROM ({counted}) w WHERE hit OR place = 1 OR place = $10 LIMIT $9 + 1"
    );
    /// An entry of the window: its key, time, whether it matches, its place, and how many
    /// entries of the window match loosely.
    type WindowRow = (
        String,
        i32,
        i32,
        Option<DateTime<Utc>>,
        bool,
        i64,
        Option<i64>,
    );
    let mut statement = matching(window, request, query).bind(WINDOW);
    if let Some(loose) = &query.loose {
        statement = statement.bind(loose);
    }
    let rows: Vec<WindowRow> = statement.fetch_all(pool).await?;
    let newest = rows.iter().find(|r| r.5 == 1).and_then(|r| r.3);
    // Present when the window was read to its end and more entries may lie before it.
    let edge = rows.iter().find(|r| r.5 == WINDOW).map(|r| r.3);
    let loose = rows.first().and_then(|r| r.6);
    let mut found: Vec<Entry> = rows
        .into_iter()
        .filter(|r| r.4)
        .map(|(session, ordinal, block, at, ..)| (session, ordinal, block, at))
        .collect();
    let Some(edge) = edge else {
        return Ok(Candidates::newest(found, None));
    };
    if found.len() as i64 >= CANDIDATES {
        return Ok(Candidates::newest(found, None));
    }
    // The first entry with a time, where a phrase's spans end (read along the time index).
    let first: Option<DateTime<Utc>> = match query.loose {
        Some(_) => {
            sqlx::query_scalar("SELECT min(\"timestamp\") FROM search_entries")
                .fetch_one(pool)
                .await?
        }
        None => None,
    };
    let mut tx = pool.begin().await?;
    // Bitmap scans of the word index only, for this transaction.
    sqlx::query(
        "SELECT set_config('enable_indexscan', 'off', true), \
                set_config('enable_seqscan', 'off', true)",
    )
    .execute(&mut *tx)
    .await?;
    let seen = Seen {
        newest,
        edge,
        hits: found.len() as i64,
        loose: loose.unwrap_or(0),
    };
    let searched_to = match (&query.loose, edge) {
        (Some(loose), Some(edge)) => {
            let span = (first, edge);
            older_phrase_matches(&mut tx, request, query, loose, seen, span, &mut found).await?
        }
        // Every entry with a time was in the window: those without one are left.
        (Some(_), None) => {
            let more = matching(timeless(), request, query)
                .fetch_all(&mut *tx)
                .await?;
            add(&mut found, more);
            None
        }
        (None, _) => {
            older_word_matches(&mut tx, request, query, seen, &mut found).await?;
            None
        }
    };
    tx.rollback().await?;
    Ok(Candidates::newest(found, searched_to))
}

/// What the window showed: its newest and last entries' times, how many of its entries match,
/// and how many match a phrase's words in any order.
#[derive(Clone, Copy)]
struct Seen {
    newest: Option<DateTime<Utc>>,
    edge: Option<DateTime<Utc>>,
    hits: i64,
    loose: i64,
}

impl Seen {
    /// The window's time (a minute at least, so that entries of one moment spread out).
    fn window_time(&self) -> chrono::Duration {
        match (self.newest, self.edge) {
            (Some(newest), Some(edge)) => (newest - edge).max(chrono::Duration::minutes(1)),
            _ => chrono::Duration::minutes(1),
        }
    }
}

/// The entries without a time that match (none holds time words): read first, then checked.
fn timeless() -> String {
    format!(
        "WITH timeless AS MATERIALIZED ( \
             SELECT e.session_id, e.message_ordinal, e.block_order, e.\"timestamp\", e.terms \
             FROM search_entries e WHERE e.\"timestamp\" IS NULL AND {FILTERS}) \
         SELECT e.session_id, e.message_ordinal, e.block_order, e.\"timestamp\" \
         FROM timeless e WHERE {WORDS} LIMIT $9"
    )
}

/// An entry `e` that matches the query `words` (a parameter) and lies in the span from `$11` to
/// `$12`, whose time words (`$10`) narrow the word index to it.
fn in_span(words: &str) -> String {
    format!(
        "e.terms @@ ({words}::tsquery && $10::tsquery) \
         AND e.\"timestamp\" >= $11 AND e.\"timestamp\" <= $12"
    )
}

/// Steps 2 and 3 of [`candidates`] for words (no phrase): the word index tells which entries
/// match without reading them, so every older match is cheap to find.
async fn older_word_matches(
    tx: &mut sqlx::PgConnection,
    request: &Request,
    query: &Query,
    seen: Seen,
    found: &mut Vec<Entry>,
) -> Result<(), SearchError> {
    let mut older_than = None;
    if let (Some(edge), Some(_), hits @ 1..) = (seen.edge, seen.newest, seen.hits) {
        // The window's time holds `hits` matches; the rest should be in the time before it
        // that many windows long (twice, to be safe).
        let windows = (2.0 * (CANDIDATES - hits) as f64 / hits as f64).clamp(1.0, 1_000.0);
        let span = chrono::Duration::milliseconds(
            (seen.window_time().num_milliseconds() as f64 * windows) as i64,
        );
        let from = edge
            .checked_sub_signed(span)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let within = format!(
            "SELECT e.session_id, e.message_ordinal, e.block_order, e.\"timestamp\" \
             FROM search_entries e \
             WHERE {} AND {FILTERS} \
             ORDER BY e.\"timestamp\" DESC LIMIT $9",
            in_span("$1")
        );
        let more = matching(within, request, query)
            .bind(time_words(from.date_naive(), edge.date_naive()).join(" | "))
            .bind(from)
            .bind(edge)
            .fetch_all(&mut *tx)
            .await?;
        add(found, more);
        older_than = Some(from);
    }
    if (found.len() as i64) < CANDIDATES {
        let every = format!(
            "SELECT e.session_id, e.message_ordinal, e.block_order, e.\"timestamp\" \
             FROM search_entries e \
             WHERE {WORDS} AND {FILTERS} \
               AND ($10::timestamptz IS NULL OR e.\"timestamp\" < $10 \
                    OR e.\"timestamp\" IS NULL) \
             ORDER BY e.\"timestamp\" DESC NULLS LAST LIMIT $9"
        );
        let more = matching(every, request, query)
            .bind(older_than)
            .fetch_all(&mut *tx)
            .await?;
        add(found, more);
    }
    Ok(())
}

/// Spans of time [`older_phrase_matches`] reads at most.
const SPANS: usize = 8;

/// Steps 2 and 3 of [`candidates`] for a query with a phrase, whose matches only reading tells:
/// the time before the window is read newest first, span by span, each span as long as should
/// hold the matches still wanted but no longer than should hold what is left of
/// [`READ_BUDGET`] in entries that match `loose` (the phrase's words in any order) — both
/// estimated from what the window and the spans before showed, the word index narrowed to the
/// span by the entries' time words. Ends with the newest [`CANDIDATES`] matches, at the first
/// entry, or when the budget is spent: then the time it reached, every entry since looked at.
async fn older_phrase_matches(
    tx: &mut sqlx::PgConnection,
    request: &Request,
    query: &Query,
    loose: &str,
    seen: Seen,
    (first, edge): (Option<DateTime<Utc>>, DateTime<Utc>),
    found: &mut Vec<Entry>,
) -> Result<Option<DateTime<Utc>>, SearchError> {
    // The span's matches (the newest CANDIDATES), and how many entries match loosely: on every
    // row, and on a row of its own (`place` 1) when none matches.
    let span = format!(
        "SELECT session_id, message_ordinal, block_order, \"timestamp\", hit, loose FROM ( \
             SELECT e.session_id, e.message_ordinal, e.block_order, e.\"timestamp\", \
                    {WORDS} AS hit, count(*) OVER () AS loose, row_number() OVER () AS place \
             FROM search_entries e \
             WHERE {} AND {FILTERS}) s \
         WHERE hit OR place = 1 ORDER BY hit DESC, \"timestamp\" DESC LIMIT $9 + 1",
        in_span("$13")
    );
    type SpanRow = (String, i32, i32, Option<DateTime<Utc>>, bool, i64);
    let floor = first.max(request.since).unwrap_or(edge);
    // What has been read: the time, how many entries of it match, and loosely.
    let mut time = seen.window_time();
    let (mut hits, mut read, mut read_beyond) = (seen.hits, seen.loose, 0);
    let mut to = edge;
    for _ in 0..SPANS {
        let wanted = CANDIDATES - found.len() as i64;
        let left = READ_BUDGET - read_beyond;
        if wanted <= 0 {
            return Ok(None);
        }
        if left <= 0 {
            return Ok(Some(to));
        }
        // Long enough for twice the matches wanted, no longer than the budget affords, at
        // the densities seen so far (at least one match and one loose match: a phrase or
        // words not seen yet are rare, and a span reaches far back).
        let per_ms = |n: i64| n.max(1) as f64 / time.num_milliseconds().max(1) as f64;
        let length = (2.0 * wanted as f64 / per_ms(hits)).min(left as f64 / per_ms(read));
        let length = chrono::Duration::milliseconds(length.clamp(60_000.0, 1e15) as i64);
        // What would be left before the span, if less than half a span, is read with it.
        let from = to
            .checked_sub_signed(length + length / 2)
            .map_or(floor, |from| from.max(floor));
        let from = if from > floor { to - length } else { from };
        let rows: Vec<SpanRow> = matching(span.clone(), request, query)
            .bind(time_words(from.date_naive(), to.date_naive()).join(" | "))
            .bind(from)
            .bind(to)
            .bind(loose)
            .fetch_all(&mut *tx)
            .await?;
        let loosely = rows.first().map_or(0, |r| r.5);
        let more: Vec<Entry> = rows
            .into_iter()
            .filter(|r| r.4)
            .map(|(session, ordinal, block, at, ..)| (session, ordinal, block, at))
            .collect();
        hits += more.len() as i64;
        read += loosely;
        read_beyond += loosely;
        time += to - from;
        add(found, more);
        if from <= floor {
            // Back to the first entry: those without a time are left.
            let more = matching(timeless(), request, query)
                .fetch_all(&mut *tx)
                .await?;
            add(found, more);
            return Ok(None);
        }
        to = from;
    }
    Ok((CANDIDATES > found.len() as i64).then_some(to))
}

/// Adds to `found` the entries of `more` it does not hold yet (a step may find again the
/// window's matches that share its last entry's time).
fn add(found: &mut Vec<Entry>, more: Vec<Entry>) {
    let known: std::collections::HashSet<(String, i32, i32)> = found
        .iter()
        .map(|(s, o, b, _)| (s.clone(), *o, *b))
        .collect();
    found.extend(
        more.into_iter()
            .filter(|(s, o, b, _)| !known.contains(&(s.clone(), *o, *b))),
    );
}

impl Candidates {
    /// The newest [`CANDIDATES`] of `found`, and how far back they were looked for.
    fn newest(mut found: Vec<Entry>, searched_to: Option<DateTime<Utc>>) -> Candidates {
        // Newest first, those without a time last.
        found.sort_by_key(|entry| std::cmp::Reverse(entry.3));
        found.truncate(CANDIDATES as usize);
        let mut candidates = Candidates {
            searched_to,
            ..Candidates::default()
        };
        for (session, ordinal, block, _) in found {
            candidates.sessions.push(session);
            candidates.ordinals.push(ordinal);
            candidates.blocks.push(block);
        }
        candidates
    }
}

/// Time words a span is covered by at most (see [`time_words`]): the word index checks every
/// word of a query for every entry it considers, so fifty days' words cost it more than the
/// entries they would leave out.
pub const TIME_WORDS: usize = 8;

/// The time words that cover the days `from` to `to` (both included, UTC), as a tsquery's
/// terms: whole years as `~y2026`, whole months as `~m202611`, other days as `~d20261130`.
/// Each entry holds the three of its time (`search_time_words` in the schema), so the word index
/// can keep to a span without reading the entries outside it. No document word looks like one:
/// documents are split at every character that is not a letter or digit.
///
/// At most [`TIME_WORDS`] (or a word a year, for a span of more years than that): the fewest
/// words that cover the days exactly, then, while too many, the days (or months) at one end
/// become their month (or year) — the end that adds the less time. So the words may cover more
/// than the span (a query keeps to it by the entries' times).
pub fn time_words(from: chrono::NaiveDate, to: chrono::NaiveDate) -> Vec<String> {
    let mut units = exact_cover(from, to);
    while units.len() > TIME_WORDS {
        let widened = |run: &[Unit]| -> Option<(Unit, i64)> {
            let parent = run.first()?.parent()?;
            let covered: i64 = run.iter().map(Unit::days).sum();
            Some((parent, parent.days() - covered))
        };
        let head = units
            .iter()
            .take_while(|u| u.0 == units[0].0 && u.parent() == units[0].parent())
            .count();
        let last = units[units.len() - 1];
        let tail = units
            .iter()
            .rev()
            .take_while(|u| u.0 == last.0 && u.parent() == last.parent())
            .count();
        let at_head = widened(&units[..head]);
        let at_tail = widened(&units[units.len() - tail..]);
        match (at_head, at_tail) {
            (Some((parent, added)), tail_widened)
                if tail_widened.is_none_or(|(_, other)| added <= other) =>
            {
                units.drain(..head);
                units.insert(0, parent);
            }
            (_, Some((parent, _))) => {
                units.truncate(units.len() - tail);
                units.push(parent);
            }
            // Whole years at both ends: no coarser word.
            (_, None) => break,
        }
    }
    units.iter().map(Unit::word).collect()
}

/// How long a [`Unit`] of time is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Year,
    Month,
    Day,
}

/// A year, a month or a day, by its first day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unit(Level, chrono::NaiveDate);

impl Unit {
    fn parent(&self) -> Option<Unit> {
        use chrono::Datelike;
        let Unit(level, day) = *self;
        match level {
            Level::Day => Some(Unit(Level::Month, day.with_day(1)?)),
            Level::Month => Some(Unit(Level::Year, day.with_ordinal(1)?)),
            Level::Year => None,
        }
    }

    fn days(&self) -> i64 {
        use chrono::{Datelike, Months};
        let Unit(level, day) = *self;
        let next = match level {
            Level::Year => day.with_year(day.year() + 1),
            Level::Month => day.checked_add_months(Months::new(1)),
            Level::Day => day.succ_opt(),
        };
        next.map_or(1, |next| (next - day).num_days())
    }

    fn word(&self) -> String {
        let Unit(level, day) = *self;
        match level {
            Level::Year => format!("'~y{}'", day.format("%Y")),
            Level::Month => format!("'~m{}'", day.format("%Y%m")),
            Level::Day => format!("'~d{}'", day.format("%Y%m%d")),
        }
    }
}

/// The fewest years, months and days that cover `from` to `to` exactly, oldest first.
fn exact_cover(from: chrono::NaiveDate, to: chrono::NaiveDate) -> Vec<Unit> {
    use chrono::{Datelike, Months, NaiveDate};
    let mut units = Vec::new();
    let mut day = from;
    while day <= to {
        let next_year = NaiveDate::from_ymd_opt(day.year() + 1, 1, 1);
        let next_month = day.checked_add_months(Months::new(1));
        if day.ordinal() == 1
            && let Some(next) = next_year
            && next.pred_opt().is_some_and(|last| last <= to)
        {
            units.push(Unit(Level::Year, day));
            day = next;
        } else if day.day() == 1
            && let Some(next) = next_month
            && next.pred_opt().is_some_and(|last| last <= to)
        {
            units.push(Unit(Level::Month, day));
            day = next;
        } else {
            units.push(Unit(Level::Day, day));
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
    }
    units
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
        assert_eq!(q("flaky test").as_deref(), Some("'flaky' & 'test'"));
        assert_eq!(q("parse_bytes").as_deref(), Some("('parse' <-> 'bytes')"));
        assert_eq!(
            q("src/main.rs").as_deref(),
            Some("('src' <-> 'main' <-> 'rs')")
        );
        assert_eq!(
            q("\"exact Phrase\" -skip -\"not this\" or E0382").as_deref(),
            Some("('exact' <-> 'phrase') & !'skip' & !('not' <-> 'this') | 'e0382'")
        );
        assert_eq!(q("redis or").as_deref(), Some("'redis'"));
        assert_eq!(q("a or or b").as_deref(), Some("'a' | 'b'"));
        assert_eq!(q("\"one\"").as_deref(), Some("'one'"));
        assert_eq!(q("  ;; \"\" -").as_deref(), None);
        assert_eq!(q("-only").as_deref(), None, "nothing to look for");
        let loose = |text: &str| Query::parse(text).and_then(|q| q.loose);
        let p = |a: &str, b: &str| pair(a, b).unwrap();
        assert_eq!(
            loose("flaky -test or redis"),
            None,
            "no phrase: nothing to loosen"
        );
        assert_eq!(
            loose("parse_bytes"),
            Some(format!("'{}'", p("parse", "bytes")))
        );
        assert_eq!(
            loose("src/main.rs"),
            Some(format!("('{}' & '{}')", p("src", "main"), p("main", "rs")))
        );
        assert_eq!(
            loose("\"exact Phrase\" -skip -\"not this\" or E0382"),
            Some(format!("'{}' & !'skip' | 'e0382'", p("exact", "phrase")))
        );
        assert_eq!(
            loose("-\"not this\" or redis or -\"nor that\"").as_deref(),
            Some("'redis'")
        );
        // A word too long to be paired is looked for alone; its neighbours' pair still is.
        let long = "x".repeat(PAIRED_CHARS + 1);
        assert_eq!(
            loose(&format!("\"{long} cargo test\"")),
            Some(format!("('{}' & '{long}')", p("cargo", "test")))
        );
        // A number is paired with a word, not with another number.
        assert_eq!(
            loose("\"error 404 1 at\""),
            Some(format!("('{}' & '{}')", p("error", "404"), p("1", "at")))
        );
        assert_eq!(pair("404", "1"), None);
        let words = Query::parse("parse_bytes -skip \"Exact phrase\"")
            .unwrap()
            .words;
        assert_eq!(words, ["bytes", "exact", "parse", "phrase"]);
    }

    #[test]
    fn an_entry_holds_its_words_where_they_are_and_its_pairs() {
        // The pairs' terms are stored: the hash never changes.
        assert_eq!(pair("parse", "bytes").as_deref(), Some("~p33bc67"));
        let mut terms: Vec<String> = index_terms("Call parse bytes then parse it 42 7")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        terms.sort();
        let p = |a: &str, b: &str| format!("'{}'", pair(a, b).unwrap());
        let mut expected = vec![
            "'42':7".to_owned(),
            "'7':8".to_owned(),
            "'bytes':3".to_owned(),
            "'call':1".to_owned(),
            "'it':6".to_owned(),
            "'parse':2,5".to_owned(),
            "'then':4".to_owned(),
            p("call", "parse"),
            p("parse", "bytes"),
            p("bytes", "then"),
            p("then", "parse"),
            p("parse", "it"),
            p("it", "42"),
        ];
        expected.sort();
        assert_eq!(terms, expected);
        // Postgres' limits, as `to_tsvector` keeps them: positions to 16 383, 256 a word.
        let many = "w ".repeat(20_000);
        let terms = index_terms(&many);
        assert!(terms.starts_with("'w':1,2,3,"), "{}", &terms[..20]);
        assert_eq!(terms.matches(',').count(), 255);
        assert_eq!(index_terms(""), "");
        let long = format!("{} {}", "y".repeat(MAX_WORD_BYTES + 1), "z");
        assert_eq!(index_terms(&long).trim(), "'z':2");
    }

    #[test]
    fn a_span_is_covered_by_its_fewest_time_words() {
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(
            time_words(day(2025, 12, 30), day(2027, 2, 2)),
            [
                "'~d20251230'",
                "'~d20251231'",
                "'~y2026'",
                "'~m202701'",
                "'~d20270201'",
                "'~d20270202'"
            ]
        );
        assert_eq!(
            time_words(day(2026, 11, 1), day(2026, 11, 30)),
            ["'~m202611'"]
        );
        assert_eq!(
            time_words(day(2026, 11, 5), day(2026, 11, 5)),
            ["'~d20261105'"]
        );
        assert!(time_words(day(2026, 11, 6), day(2026, 11, 5)).is_empty());
        // Fifty days' words are too many: the end that adds the less time widens first.
        assert_eq!(
            time_words(day(2030, 4, 7), day(2034, 2, 12)),
            [
                "'~y2030'",
                "'~y2031'",
                "'~y2032'",
                "'~y2033'",
                "'~m203401'",
                "'~m203402'"
            ]
        );
        assert_eq!(
            time_words(day(2030, 4, 28), day(2030, 6, 20)),
            [
                "'~d20300428'",
                "'~d20300429'",
                "'~d20300430'",
                "'~m203005'",
                "'~m203006'"
            ]
        );
    }

    proptest::proptest! {
        /// However long, a span's words are few and cover every day of it.
        #[test]
        fn time_words_are_few_and_cover_the_span(start in 0i64..20_000, length in 0i64..5_000) {
            let epoch = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
            let from = epoch + chrono::Duration::days(start);
            let to = from + chrono::Duration::days(length);
            let words = time_words(from, to);
            let years = (chrono::Datelike::year(&to) - chrono::Datelike::year(&from) + 1) as usize;
            proptest::prop_assert!(!words.is_empty(), "{from} to {to}");
            proptest::prop_assert!(words.len() <= TIME_WORDS.max(years), "{words:?}");
            let mut day = from;
            while day <= to {
                let own = [
                    format!("'~y{}'", day.format("%Y")),
                    format!("'~m{}'", day.format("%Y%m")),
                    format!("'~d{}'", day.format("%Y%m%d")),
                ];
                proptest::prop_assert!(own.iter().any(|w| words.contains(w)), "{day}: {words:?}");
                day = day.succ_opt().unwrap();
            }
        }
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
