//! Search against real Postgres: transcripts go through the real pipeline, the `search`
//! processor indexes them, and `GET /api/search` over a real socket finds words, phrases,
//! identifiers, paths and error codes, excludes, joins with `or`, filters, pages without
//! overlap, keeps to a key's workspaces, and refuses bad input with its reason.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sessionflow_pipeline::api::{ApiState, Ingest, MAX_TRANSCRIPT, router};
use sessionflow_pipeline::capture::client::encode;
use sessionflow_pipeline::events::{EventProcessor, HandlerRegistry};
use sessionflow_pipeline::processors::Processors;
use sessionflow_pipeline::queue::{PipelineQueue, QueueConfig};
use sessionflow_pipeline::runner::Stages;
use sessionflow_pipeline::search::{
    CANDIDATES, Query, READ_BUDGET, WINDOW, index_terms, index_text,
};
use sessionflow_protocol::ids::Id;
use sessionflow_protocol::keys::Role;
use sessionflow_protocol::search::SearchPage;
use sessionflow_stages::blob::{BlobStore, LocalBlobs, raw_transcript_key};
use sessionflow_stages::store::{Lifecycle, NewSession, Store};
use sessionflow_stages::summarize::ExtractiveSummarizer;
use sqlx::PgPool;

const KEY: &str = "search-test-key";

fn line(value: Value) -> String {
    value.to_string() + "\n"
}

/// Two sessions: s1 (workspace w1, device laptop) about a borrow error, s2 (w2) about Redis.
fn transcripts() -> [(&'static str, &'static str, &'static str, Bytes); 2] {
    let at = |n: u32| format!("2026-12-01T10:00:{n:02}.000Z");
    let s1 = [
        json!({"type": "user", "uuid": "u1", "sessionId": "s1", "timestamp": at(0), "cwd": "/work/app",
               "message": {"role": "user", "content": "the flaky test in the parser fails with E0382"}}),
        json!({"type": "assistant", "uuid": "a1", "sessionId": "s1", "timestamp": at(1), "requestId": "r1",
               "message": {"id": "m1", "role": "assistant", "model": "claude-sonnet-4-5",
                           "usage": {"input_tokens": 10, "output_tokens": 5},
                           "content": [
                               {"type": "thinking", "thinking": "maybe the consumer group is gone"},
                               {"type": "text", "text": "I will look at parse_bytes in src/main.rs"},
                               {"type": "tool_use", "id": "t1", "name": "Bash",
                                "input": {"command": "cargo test -p stages parse_bytes"}}]}}),
        json!({"type": "user", "uuid": "u2", "sessionId": "s1", "timestamp": at(2),
               "message": {"role": "user", "content": [
                   {"type": "tool_result", "tool_use_id": "t1",
                    "content": "error[E0382]: borrow of moved value at /work/app/src/main.rs:42"}]}}),
    ];
    let s2 = [
        json!({"type": "user", "uuid": "v1", "sessionId": "s2", "timestamp": "2026-12-02T09:00:00.000Z", "cwd": "/srv/ops",
               "message": {"role": "user", "content": "a flaky redis connection in production"}}),
    ];
    [
        ("s1", "w1", "laptop", Bytes::from(s1.map(line).concat())),
        ("s2", "w2", "desktop", Bytes::from(s2.map(line).concat())),
    ]
}

/// The transcripts parsed through the real pipeline, then indexed by the search processor.
async fn indexed(pool: &PgPool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobs::new(dir.path()));
    let store = Store::from_pool(pool.clone());
    for (id, workspace, _, body) in transcripts() {
        let key = raw_transcript_key(
            &Id::parse("workspace_id", workspace).unwrap(),
            &Id::parse("session_id", id).unwrap(),
        );
        blobs.put(&key, body).await.unwrap();
        store
            .create_session(&NewSession {
                id,
                workspace_id: workspace,
                lifecycle: Some(Lifecycle::Ended),
                transcript_key: Some(&key),
                ..NewSession::default()
            })
            .await
            .unwrap();
    }
    // The sessions' devices and hashes, as their events and uploads record them (the search
    // entries carry the device; the processors look at the hashes).
    for (id, workspace, device, _) in transcripts() {
        sqlx::query("INSERT INTO devices (id, workspace_id) VALUES ($1, $2)")
            .bind(device)
            .bind(workspace)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE sessions SET device_id = $2, transcript_sha256 = md5(id) WHERE id = $1",
        )
        .bind(id)
        .bind(device)
        .execute(pool)
        .await
        .unwrap();
    }
    let stages = Stages::new(
        &store,
        &blobs,
        Arc::new(ExtractiveSummarizer),
        "test-worker",
    );
    let queue = PipelineQueue::start(stages, QueueConfig::default());
    for (id, ..) in transcripts() {
        assert!(queue.enqueue(id));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sessions WHERE lifecycle IN ('summarized', 'archived')",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if done == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not processed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // By default no message's raw JSON is kept in the database: the blob holds the bytes.
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transcript_messages WHERE raw IS NOT NULL")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(kept, 0);
    let summary = Processors::standard(pool.clone(), blobs)
        .run("search")
        .await
        .unwrap();
    assert_eq!((summary.processed, summary.errors), (2, 0), "{summary:?}");
    dir
}

async fn serve(pool: &PgPool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let state = ApiState {
        store: Store::from_pool(pool.clone()),
        blobs: Arc::new(LocalBlobs::new(dir.path())),
        ingest: Ingest::Embedded(Arc::new(EventProcessor::new(
            pool.clone(),
            HandlerRegistry::new(),
            "test-worker",
        ))),
        api_key: Arc::from(KEY),
        max_transcript: MAX_TRANSCRIPT,
        redact_uploads: false,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _dir = dir;
        axum::serve(listener, router(state)).await.unwrap()
    });
    url
}

async fn get(url: &str, key: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let query: Vec<String> = query
        .iter()
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect();
    let response = reqwest::Client::new()
        .get(format!("{url}/api/search?{}", query.join("&")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn search(url: &str, query: &[(&str, &str)]) -> SearchPage {
    let (status, body) = get(url, KEY, query).await;
    assert_eq!(status, 200, "{query:?}: {body}");
    serde_json::from_value(body).unwrap()
}

/// Every page of a search for `q` (`limit` hits a page, with `filters`), following the cursor:
/// the hits' message ordinals in order, at most `most` (pages that go on fail the test), and
/// how far back they were looked for (the same on every page).
async fn read_pages(
    url: &str,
    q: &str,
    limit: &str,
    filters: &[(&str, String)],
    most: i64,
) -> (Vec<i64>, Option<DateTime<Utc>>) {
    let mut hits = Vec::new();
    let mut cursor: Option<String> = None;
    let mut reached = None;
    loop {
        let mut query: Vec<(&str, &str)> = vec![("q", q), ("limit", limit)];
        query.extend(filters.iter().map(|(k, v)| (*k, v.as_str())));
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor));
        }
        let page = search(url, &query).await;
        if cursor.is_some() {
            assert_eq!(
                page.searched_to, reached,
                "{q}: the same reach on every page"
            );
        }
        reached = page.searched_to;
        hits.extend(page.hits.into_iter().map(|h| h.message_ordinal));
        assert!(hits.len() as i64 <= most, "pages go on");
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return (hits, reached),
        }
    }
}

/// Each hit as `session:kind`.
fn found(page: &SearchPage) -> BTreeSet<String> {
    page.hits
        .iter()
        .map(|h| format!("{}:{}", h.session_id, h.kind))
        .collect()
}

async fn q(url: &str, query: &str) -> BTreeSet<String> {
    found(&search(url, &[("q", query)]).await)
}

async fn f(url: &str, filters: &[(&str, &str)]) -> BTreeSet<String> {
    found(&search(url, filters).await)
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn words_phrases_identifiers_and_paths_are_found(pool: PgPool) {
    let _blobs = indexed(&pool).await;
    let url = serve(&pool).await;

    assert_eq!(q(&url, "flaky").await, set(&["s1:text", "s2:text"]));
    assert_eq!(q(&url, "FLAKY -redis").await, set(&["s1:text"]));
    assert_eq!(
        q(&url, "\"borrow of moved\"").await,
        set(&["s1:tool_result"])
    );
    assert_eq!(
        q(&url, "\"moved of borrow\"").await,
        set(&[]),
        "a phrase is in order"
    );
    assert_eq!(
        q(&url, "parse_bytes").await,
        set(&["s1:text", "s1:tool_input"])
    );
    assert_eq!(
        q(&url, "src/main.rs").await,
        set(&["s1:text", "s1:tool_result"])
    );
    assert_eq!(q(&url, "E0382").await, set(&["s1:text", "s1:tool_result"]));
    assert_eq!(q(&url, "consumer").await, set(&["s1:thinking"]));
    assert_eq!(
        q(&url, "production or consumer").await,
        set(&["s1:thinking", "s2:text"])
    );
    assert_eq!(q(&url, "nowhere").await, set(&[]));

    // Where each hit is, and what it shows.
    let page = search(&url, &[("q", "parse_bytes"), ("kind", "text")]).await;
    let hit = &page.hits[0];
    assert_eq!(
        (
            hit.session_id.as_str(),
            hit.workspace_id.as_str(),
            hit.device_id.as_deref(),
            hit.cwd.as_deref(),
            hit.message_ordinal,
            hit.role.as_deref()
        ),
        (
            "s1",
            "w1",
            Some("laptop"),
            Some("/work/app"),
            1,
            Some("assistant")
        )
    );
    assert_eq!(hit.snippet, "I will look at parse_bytes in src/main.rs");
    let chars: Vec<char> = hit.snippet.chars().collect();
    let marked: Vec<String> = hit
        .highlights
        .iter()
        .map(|[s, e]| chars[*s..*e].iter().collect())
        .collect();
    assert_eq!(marked, ["parse", "bytes"]);
    assert!(hit.rank > 0.0);

    // Filters.
    assert_eq!(
        f(&url, &[("q", "E0382"), ("kind", "tool_result")]).await,
        set(&["s1:tool_result"])
    );
    assert_eq!(
        f(&url, &[("q", "parse_bytes"), ("tool", "Bash")]).await,
        set(&["s1:tool_input"])
    );
    assert_eq!(
        f(&url, &[("q", "E0382"), ("role", "user")]).await,
        set(&["s1:text", "s1:tool_result"])
    );
    assert_eq!(
        f(&url, &[("q", "parse_bytes"), ("role", "user")]).await,
        set(&[])
    );
    assert_eq!(
        f(&url, &[("q", "flaky"), ("workspace", "w2")]).await,
        set(&["s2:text"])
    );
    assert_eq!(
        f(&url, &[("q", "flaky"), ("device", "laptop")]).await,
        set(&["s1:text"])
    );
    assert_eq!(
        f(&url, &[("q", "flaky"), ("since", "2026-12-02T00:00:00Z")]).await,
        set(&["s2:text"])
    );
    assert_eq!(
        f(&url, &[("q", "flaky"), ("until", "2026-12-02T00:00:00Z")]).await,
        set(&["s1:text"])
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn pages_follow_each_other_without_overlap(pool: PgPool) {
    let _blobs = indexed(&pool).await;
    let url = serve(&pool).await;
    let all = search(&url, &[("q", "s1 or flaky or E0382 or parse_bytes")]).await;
    assert!(all.hits.len() >= 4, "{all:?}");
    assert!(all.hits.windows(2).all(|w| w[0].rank >= w[1].rank));
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("q", "s1 or flaky or E0382 or parse_bytes"), ("limit", "1")];
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.as_str()));
        }
        let page = search(&url, &query).await;
        paged.extend(page.hits.clone());
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(paged.len() <= all.hits.len(), "pages go on: {paged:?}");
    }
    assert_eq!(paged, all.hits);
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_key_searches_its_workspaces_and_bad_searches_say_why(pool: PgPool) {
    let _blobs = indexed(&pool).await;
    let url = serve(&pool).await;
    let store = Store::from_pool(pool.clone());
    let w1 = Id::parse("workspace_id", "w1").unwrap();
    let read_w1 = store
        .create_key(None, Role::Read, std::slice::from_ref(&w1), None)
        .await
        .unwrap()
        .key;
    let ingest_w1 = store
        .create_key(None, Role::Ingest, &[w1], None)
        .await
        .unwrap()
        .key;
    let (status, body) = get(&url, &read_w1, &[("q", "flaky")]).await;
    assert_eq!(status, 200);
    let page: SearchPage = serde_json::from_value(body).unwrap();
    assert_eq!(found(&page), set(&["s1:text"]));
    let (_, body) = get(&url, &read_w1, &[("q", "flaky"), ("workspace", "w2")]).await;
    assert_eq!(body["hits"], json!([]), "another workspace, asked by name");
    let (status, body) = get(&url, &ingest_w1, &[("q", "flaky")]).await;
    assert_eq!(status, 403, "{body}");

    for (query, reason) in [
        (vec![("q", "")], "q must hold a word"),
        (vec![("q", " ;; -\"\" ")], "q must hold a word"),
        (vec![("q", "-flaky")], "q must hold a word"),
        (vec![("q", "x"), ("kind", "image")], "kind must be one of"),
        (
            vec![("q", "x"), ("role", "system")],
            "role must be user or assistant",
        ),
        (vec![("q", "x"), ("limit", "0")], "limit must be 1 to 100"),
        (vec![("q", "x"), ("limit", "101")], "limit must be 1 to 100"),
        (
            vec![("q", "x"), ("cursor", "garbage")],
            "is not one this server gave",
        ),
        (vec![("q", "x"), ("workspace", "../w1")], "workspace"),
        (vec![("q", "x"), ("since", "yesterday")], "since"),
        (vec![], "q"),
    ] {
        let (status, body) = get(&url, KEY, &query).await;
        assert_eq!(status, 400, "{query:?}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{query:?}: {error}");
    }
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn the_newest_matches_are_ranked_and_until_reaches_older_ones(pool: PgPool) {
    let _blobs = indexed(&pool).await;
    // The processor wrote each entry with the words of its day (a span's search reads them).
    let (timed, with_day): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE terms @@ \
             ('''~d' || to_char(\"timestamp\" AT TIME ZONE 'UTC', 'YYYYMMDD') || '''')::tsquery) \
         FROM search_entries WHERE \"timestamp\" IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(timed > 0 && with_day == timed, "{with_day} of {timed}");
    let url = serve(&pool).await;
    let (candidates, window) = (CANDIDATES, WINDOW);
    // Blocks of s2, an hour apart (over two years), oldest first: `candidates + 50` say
    // "scarce" (the oldest 50 three times, so they would rank first if every match were
    // ranked), then a window's worth say "filler", then `candidates + 100` say "plentiful"
    // (three times for the oldest 100) — so the newest matches of "plentiful" are found in the
    // window read newest first, and those of "scarce" only through the word index. Every 150th
    // also says "sparse": fewer in the window than are ranked, the rest before it.
    let (plentiful, scarce) = (candidates + 100, candidates + 50);
    let all = scarce + window + plentiful;
    sqlx::query(
        "INSERT INTO search_entries (session_id, message_ordinal, block_order, workspace_id, \
                                     \"timestamp\", role, kind, terms) \
         SELECT 's2', 1000 + n, 0, 'w2', at, 'user', 'text', \
                to_tsvector('simple', CASE \
                    WHEN n < 50 THEN 'scarce scarce scarce' \
                    WHEN n < $1 THEN 'scarce' \
                    WHEN n < $1 + $2 THEN 'filler' \
                    WHEN n < $1 + $2 + 100 THEN 'plentiful plentiful plentiful' \
                    ELSE 'plentiful' END \
                    || CASE WHEN n % 150 = 0 THEN ' sparse' ELSE '' END) \
                || search_time_words(at) \
         FROM generate_series(0, $3 - 1) n, \
              LATERAL (SELECT timestamptz '2025-01-01 00:00:00+00' + n * interval '1 hour') t(at)",
    )
    .bind(scarce)
    .bind(window)
    .bind(all)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE search_entries")
        .execute(&pool)
        .await
        .unwrap();
    let read_all = |word: &'static str, filters: Vec<(&'static str, String)>| {
        let url = url.clone();
        async move {
            let (hits, reached) = read_pages(&url, word, "100", &filters, 2 * candidates).await;
            assert_eq!(
                reached, None,
                "{word}: words are looked for back to the first entry"
            );
            hits
        }
    };
    let sparse = read_all("sparse", Vec::new()).await;
    let every_150th: BTreeSet<i64> = (0..all).step_by(150).map(|n| 1_000 + n).collect();
    assert_eq!(sparse.iter().copied().collect::<BTreeSet<_>>(), every_150th);
    assert_eq!(sparse.len(), every_150th.len(), "no hit twice");
    for (word, matches, first) in [
        ("plentiful", plentiful, 1_000 + scarce + window),
        ("scarce", scarce, 1_000),
    ] {
        let hits = read_all(word, Vec::new()).await;
        assert_eq!(
            hits.len() as i64,
            candidates,
            "{word}: the newest matches are ranked"
        );
        let distinct = hits.iter().collect::<BTreeSet<_>>();
        assert_eq!(distinct.len() as i64, candidates, "{word}: no hit twice");
        let oldest = first + matches - candidates;
        assert_eq!(
            *hits.iter().min().unwrap(),
            oldest,
            "{word}: not the older ones"
        );
        // Before the newest: the older matches, those said three times.
        let until = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").unwrap()
            + chrono::Duration::hours(oldest - 1_000);
        let older = read_all(word, vec![("until", until.to_rfc3339())]).await;
        assert_eq!(older.len() as i64, matches - candidates, "{word}");
        assert!(older.iter().all(|&o| o < oldest), "{word}: {older:?}");
    }
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_phrase_of_common_words_is_looked_for_within_the_budget_and_until_goes_on(pool: PgPool) {
    let _blobs = indexed(&pool).await;
    let url = serve(&pool).await;
    // Entries an hour apart, oldest first and newer than the fixtures', their words as the
    // processor indexes them: every one holds the pairs of "alpha beta gamma" and of "delta
    // epsilon zeta" (each phrase's pairs apart); every 100th says "alpha beta gamma" as well,
    // and only the oldest "delta epsilon zeta". The window holds a few of the first phrase's
    // matches and none of the second's, and each is found only by reading entries that hold
    // its pairs: more of them than the budget allows in one search.
    let all = 4 * WINDOW;
    assert!(
        all - WINDOW > READ_BUDGET,
        "more to read than one search may"
    );
    let start = chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let terms: Vec<String> = (0..all)
        .map(|n| {
            let mut text = "alpha beta and beta gamma delta epsilon and epsilon zeta".to_owned();
            if n % 100 == 0 {
                text.push_str(" and alpha beta gamma");
            }
            if n == 0 {
                text.push_str(" and delta epsilon zeta");
            }
            index_terms(&text)
        })
        .collect();
    sqlx::query(
        "INSERT INTO search_entries (session_id, message_ordinal, block_order, workspace_id, \
                                     \"timestamp\", role, kind, terms) \
         SELECT 's2', 1000 + n, 0, 'w2', at, 'user', 'text', \
                t.terms::tsvector || search_time_words(at) \
         FROM unnest($1::text[]) WITH ORDINALITY AS t(terms, o), \
              LATERAL (SELECT o - 1 AS n) i, \
              LATERAL (SELECT $2 + n * interval '1 hour') a(at)",
    )
    .bind(&terms)
    .bind(start)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE search_entries")
        .execute(&pool)
        .await
        .unwrap();
    let time = |ordinal: i64| start + chrono::Duration::hours(ordinal - 1_000);
    // A search and the next ones, each `until` where the one before reached: the hits of each,
    // and their reach.
    let follow = |phrase: &'static str| {
        let url = url.clone();
        async move {
            let mut searches = Vec::new();
            let mut until: Option<DateTime<Utc>> = None;
            loop {
                let filters: Vec<(&str, String)> =
                    until.iter().map(|u| ("until", u.to_rfc3339())).collect();
                let (hits, reached) = read_pages(&url, phrase, "20", &filters, CANDIDATES).await;
                searches.push((hits, reached));
                assert!(
                    searches.len() <= 10,
                    "{phrase}: the searches go on: {searches:?}"
                );
                match reached {
                    Some(reached) => {
                        assert!(until.is_none_or(|u| reached < u), "{phrase}: back in time");
                        until = Some(reached);
                    }
                    None => return searches,
                }
            }
        }
    };

    // A span the budget covers is searched to its start.
    let since = time(1_000 + all - 3 * WINDOW / 2);
    let (hits, reached) = read_pages(
        &url,
        "\"alpha beta gamma\"",
        "100",
        &[("since", since.to_rfc3339())],
        CANDIDATES,
    )
    .await;
    assert_eq!(reached, None, "searched back to {since}");
    let expected: BTreeSet<i64> = (0..all)
        .filter(|n| n % 100 == 0 && time(1_000 + n) >= since)
        .map(|n| 1_000 + n)
        .collect();
    assert_eq!(hits.into_iter().collect::<BTreeSet<_>>(), expected);

    let searches = follow("\"alpha beta gamma\"").await;
    let newest_first: Vec<i64> = (0..all)
        .rev()
        .filter(|n| n % 100 == 0)
        .map(|n| 1_000 + n)
        .collect();
    let (hits, reached) = &searches[0];
    let reached = reached.expect("the budget ends the first search");
    // The first search: more than the window's own and fewer than are ranked — every match
    // from the time it reached on, newest first, and none older.
    let in_window = (WINDOW / 100) as usize;
    assert!(
        hits.len() > in_window && (hits.len() as i64) < CANDIDATES,
        "{} hits ({in_window} in the window, budget {READ_BUDGET})",
        hits.len()
    );
    let since_reached: Vec<i64> = newest_first
        .iter()
        .copied()
        .filter(|&o| time(o) >= reached)
        .collect();
    assert_eq!(
        hits.iter().copied().collect::<BTreeSet<_>>(),
        since_reached.iter().copied().collect::<BTreeSet<_>>(),
        "every match since {reached}, and only those"
    );
    // Searched on, `until` where each search reached: every match, once, newest first.
    let every: Vec<i64> = searches
        .iter()
        .flat_map(|(hits, _)| {
            let mut hits = hits.clone();
            hits.sort_unstable_by(|a, b| b.cmp(a));
            hits
        })
        .collect();
    assert_eq!(every, newest_first);
    assert!(searches.len() >= 2, "{searches:?}");

    // A phrase none of the newest entries holds, whose words all of them hold: each search reads
    // within the budget, and the searches reach its one match, at the first entry.
    let searches = follow("\"delta epsilon zeta\"").await;
    assert!(searches.len() >= 2, "within the budget: {searches:?}");
    let found: Vec<i64> = searches.iter().flat_map(|(hits, _)| hits.clone()).collect();
    assert_eq!(found, [1_000]);
    assert!(searches[0].0.is_empty(), "{searches:?}");
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn every_phrase_of_a_text_is_found_by_its_pairs_and_in_order(pool: PgPool) {
    // Texts the index must split as queries are split: code, paths, numbers, letters whose
    // lower case is longer (`İ`), words Postgres' parser would split (`2e4z`), quotes and
    // backslashes, a word too long to be paired, a word repeated.
    let long = "k".repeat(40);
    let texts = [
        "call parse_bytes(&buf) in /work/src/main.rs: error[E0382] at line 42".to_owned(),
        "İstanbul STRASSE straße café—naïve 2e4z x86_64 v1.2.3".to_owned(),
        format!("it's a \\back\\slash and 'quoted' {long} hash then the the the end"),
        "retry after 404 404 then give up; 1 2 3 four".to_owned(),
    ];
    let matches = |terms: String, query: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>("SELECT $1::tsvector @@ $2::tsquery")
                .bind(&terms)
                .bind(&query)
                .fetch_one(&pool)
                .await
                .unwrap_or_else(|e| panic!("{terms} @@ {query}: {e}"))
        }
    };
    for text in &texts {
        let terms = index_terms(&index_text(text));
        let words: Vec<&str> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        for length in 1..=3 {
            for phrase in words.windows(length) {
                let query = Query::parse(&format!("\"{}\"", phrase.join(" "))).unwrap();
                assert!(
                    matches(terms.clone(), query.tsquery.clone()).await,
                    "{text}: {phrase:?} as {}",
                    query.tsquery
                );
                let loose = query.loose.unwrap();
                assert!(
                    matches(terms.clone(), loose.clone()).await,
                    "{text}: {phrase:?} loosely as {loose}"
                );
                // The words the other way round are not the phrase (unless the same).
                let reversed: Vec<&str> = phrase.iter().rev().copied().collect();
                if length > 1 && reversed != phrase && !text.contains(&reversed.join(" ")) {
                    let query = Query::parse(&format!("\"{}\"", reversed.join(" "))).unwrap();
                    assert!(
                        !matches(terms.clone(), query.tsquery.clone()).await,
                        "{text}: {reversed:?}"
                    );
                }
            }
        }
        // As typed, unquoted: identifiers and paths are phrases of their parts.
        for typed in text.split_whitespace() {
            if let Some(query) = Query::parse(typed) {
                assert!(
                    matches(terms.clone(), query.tsquery.clone()).await,
                    "{text}: {typed}"
                );
            }
        }
    }
}
