//! The Postgres store against a real server: a fresh database per test (`#[sqlx::test]`, which
//! reads `DATABASE_URL`; `scripts/test.sh` sets it and starts Postgres), migrated with the
//! project's migrations.

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use sessionflow_stages::store::{
    Claim, Lifecycle, NewSession, PERSIST_GROUP_ROWS, ParseStatus, PersistOutcome, Store,
    StoreError,
};
use sessionflow_stages::transcript::{ParseOptions, ParsedTranscript, parse_bytes};
use sqlx::PgPool;

fn fixture(name: &str) -> Vec<u8> {
    fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/transcripts")
            .join(name),
    )
    .expect(name)
}

fn parse(bytes: &[u8]) -> ParsedTranscript {
    let options = ParseOptions {
        keep_raw: true,
        ..ParseOptions::default()
    };
    parse_bytes(bytes, &options)
}

async fn ended_session(store: &Store, id: &str) {
    store
        .create_session(&NewSession {
            id,
            workspace_id: "w1",
            lifecycle: Some(Lifecycle::Ended),
            transcript_key: Some("transcripts/w1/s/raw.jsonl"),
            ..NewSession::default()
        })
        .await
        .expect("create session");
}

async fn rows(pool: &PgPool, id: &str) -> (i64, i64) {
    let messages: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transcript_messages WHERE session_id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    let blocks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM content_blocks WHERE session_id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    (messages, blocks)
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn allowed_transitions_happen_and_others_are_refused_before_any_sql(pool: PgPool) {
    let store = Store::from_pool(pool);
    store
        .create_session(&NewSession {
            id: "s1",
            workspace_id: "w1",
            ..NewSession::default()
        })
        .await
        .unwrap();
    let moved = store
        .transition("s1", &[Lifecycle::Detected], Lifecycle::Capturing)
        .await
        .unwrap();
    assert_eq!(moved.map(|s| s.lifecycle), Some(Lifecycle::Capturing));
    // Not from `detected` any more: no row, the caller stops quietly.
    let lost = store
        .transition("s1", &[Lifecycle::Detected], Lifecycle::Ended)
        .await
        .unwrap();
    assert_eq!(lost, None);
    let refused = store
        .transition("s1", &[Lifecycle::Capturing], Lifecycle::Summarized)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::TransitionRefused { .. }),
        "{refused}"
    );
    assert_eq!(
        refused.to_string(),
        "session s1: moving capturing → summarized is not an allowed transition"
    );
    let row = store.session("s1").await.unwrap().unwrap();
    assert_eq!(
        row.lifecycle,
        Lifecycle::Capturing,
        "the refusal changed nothing"
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_claim_says_why_it_failed_and_changes_nothing(pool: PgPool) {
    let store = Store::from_pool(pool);
    assert_eq!(
        store.claim_for_parse("nope", "test-worker").await.unwrap(),
        Claim::NotFound
    );

    store
        .create_session(&NewSession {
            id: "no-key",
            workspace_id: "w1",
            lifecycle: Some(Lifecycle::Ended),
            ..NewSession::default()
        })
        .await
        .unwrap();
    let before = store.session("no-key").await.unwrap();
    assert_eq!(
        store
            .claim_for_parse("no-key", "test-worker")
            .await
            .unwrap(),
        Claim::NoTranscript
    );
    assert_eq!(store.session("no-key").await.unwrap(), before, "unchanged");

    store
        .create_session(&NewSession {
            id: "live",
            workspace_id: "w1",
            transcript_key: Some("k"),
            ..NewSession::default()
        })
        .await
        .unwrap();
    assert_eq!(
        store.claim_for_parse("live", "test-worker").await.unwrap(),
        Claim::NotEnded(Lifecycle::Detected)
    );

    ended_session(&store, "s1").await;
    let Claim::Claimed(row) = store.claim_for_parse("s1", "test-worker").await.unwrap() else {
        panic!("an ended session with a transcript is claimed")
    };
    assert_eq!(row.parse_status, ParseStatus::Parsing);
    assert_eq!(
        store.claim_for_parse("s1", "test-worker").await.unwrap(),
        Claim::AlreadyParsing
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn concurrent_claims_for_one_session_have_exactly_one_winner(pool: PgPool) {
    let store = Store::from_pool(pool);
    ended_session(&store, "s1").await;
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_for_parse("s1", "test-worker").await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for run in runs {
        match run.await.unwrap() {
            Claim::Claimed(_) => winners += 1,
            Claim::AlreadyParsing => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners, 1);
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn persist_writes_every_message_and_block_and_the_stats_in_one_go(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    ended_session(&store, "s1").await;
    let claim = claim_run(&store, "s1").await;
    let parsed = parse(&fixture(
        "cc1.0.98-interactive-fe5e1c67-53e7-4862-81ae-d0e013e3270b.jsonl",
    ));
    let outcome = store.persist("s1", &parsed, &claim).await.unwrap();
    assert_eq!(
        outcome,
        PersistOutcome::Persisted {
            messages: 346,
            blocks: 438,
            statements: 1
        }
    );
    assert_eq!(rows(&pool, "s1").await, (346, 438));
    let row = store.session("s1").await.unwrap().unwrap();
    assert_eq!(row.lifecycle, Lifecycle::Parsed);
    assert_eq!(row.parse_status, ParseStatus::Completed);
    assert_eq!(row.total_messages, 346);
    assert_eq!((row.tokens_in, row.tokens_out), (818, 51933));
    assert_eq!(
        row.initial_prompt.as_deref(),
        Some("/orchestrator create TODO app by Next.js")
    );
    // The raw line is queryable JSON, and blocks keep their tool inputs.
    let first_type: String = sqlx::query_scalar(
        "SELECT raw->>'type' FROM transcript_messages WHERE session_id = 's1' AND ordinal = 0",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(first_type, "summary");
    let with_input: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM content_blocks WHERE session_id = 's1' AND tool_input IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(with_input, 167, "one per tool_use");
    let found: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM content_blocks WHERE session_id = 's1' AND \
         to_tsvector('simple', coalesce(text, '') || ' ' || coalesce(result_text, '')) @@ plainto_tsquery('simple', 'TodoItem')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(found > 0, "full-text search finds block text");

    // Running again on a parsed session is a no-op.
    assert_eq!(
        store.claim_for_parse("s1", "test-worker").await.unwrap(),
        Claim::NotEnded(Lifecycle::Parsed)
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn persist_without_the_claim_writes_nothing(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    ended_session(&store, "s1").await;
    let parsed = parse(&fixture("cc2.1.14-headless-hello-world-script.jsonl"));
    assert_eq!(
        store.persist("s1", &parsed, "not-a-claim").await.unwrap(),
        PersistOutcome::Lost
    );
    assert_eq!(rows(&pool, "s1").await, (0, 0));
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn an_empty_transcript_is_parsed_with_zero_stats(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    ended_session(&store, "s1").await;
    let claim = claim_run(&store, "s1").await;
    let outcome = store.persist("s1", &parse(b""), &claim).await.unwrap();
    assert_eq!(
        outcome,
        PersistOutcome::Persisted {
            messages: 0,
            blocks: 0,
            statements: 0
        }
    );
    let row = store.session("s1").await.unwrap().unwrap();
    assert_eq!(
        (row.lifecycle, row.total_messages, row.tokens_in),
        (Lifecycle::Parsed, 0, 0)
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn five_thousand_messages_go_in_groups_of_500(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    ended_session(&store, "s1").await;
    let claim = claim_run(&store, "s1").await;
    let mut text = String::new();
    for i in 0..5_200 {
        text.push_str(&format!(
            r#"{{"type":"user","uuid":"u{i}","timestamp":"2026-01-01T00:00:00Z","message":{{"role":"user","content":"message {i} with a nul \u0000 in it"}}}}"#
        ));
        text.push('\n');
    }
    let parsed = parse(text.as_bytes());
    assert_eq!(parsed.messages.len(), 5_200);
    // Without the claim, not one group is written.
    assert_eq!(
        store.persist("s1", &parsed, "not-a-claim").await.unwrap(),
        PersistOutcome::Lost
    );
    assert_eq!(rows(&pool, "s1").await, (0, 0));
    let outcome = store.persist("s1", &parsed, &claim).await.unwrap();
    let groups = 5_200_usize.div_ceil(PERSIST_GROUP_ROWS);
    assert_eq!(
        outcome,
        PersistOutcome::Persisted {
            messages: 5_200,
            blocks: 5_200,
            statements: groups
        }
    );
    assert_eq!(rows(&pool, "s1").await, (5_200, 5_200));
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_reparse_replaces_rows_and_never_duplicates_them(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    ended_session(&store, "s1").await;
    let claim = claim_run(&store, "s1").await;
    let short = fixture("cc2.1.14-headless-hello-world-script.jsonl");
    store.persist("s1", &parse(&short), &claim).await.unwrap();
    assert_eq!(rows(&pool, "s1").await, (8, 8));
    assert!(store.set_summary("s1", "Wrote hello.sh.").await.unwrap());

    // The transcript grew; reparse it.
    assert!(store.reset_for_reparse("s1").await.unwrap());
    let row = store.session("s1").await.unwrap().unwrap();
    assert_eq!(
        (
            row.lifecycle,
            row.parse_status,
            row.total_messages,
            row.summary
        ),
        (Lifecycle::Ended, ParseStatus::Pending, 0, None)
    );
    assert_eq!(rows(&pool, "s1").await, (0, 0));
    let claim = claim_run(&store, "s1").await;
    let long = fixture("cc2.1.14-headless-python-to-rust-port.jsonl");
    store.persist("s1", &parse(&long), &claim).await.unwrap();
    assert_eq!(rows(&pool, "s1").await, (80, 96));
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn claiming_a_session_clears_rows_a_lost_run_left(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    ended_session(&store, "s1").await;
    // Rows left on an ended session (a run that lost its claim, an older build).
    sqlx::query(
        "INSERT INTO transcript_messages (session_id, ordinal, line_number, message_type) \
         SELECT 's1', o, o, 'user' FROM generate_series(0, 199) o",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO content_blocks (session_id, message_ordinal, block_order, block_type) \
         SELECT 's1', o, 0, 'text' FROM generate_series(0, 199) o",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(rows(&pool, "s1").await, (200, 200));
    let claim = claim_run(&store, "s1").await;
    assert_eq!(rows(&pool, "s1").await, (0, 0));
    let short = fixture("cc2.1.14-headless-hello-world-script.jsonl");
    store.persist("s1", &parse(&short), &claim).await.unwrap();
    assert_eq!(rows(&pool, "s1").await, (8, 8));
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn deleting_sessions_deletes_their_messages_and_blocks(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let short = fixture("cc2.1.14-headless-hello-world-script.jsonl");
    for id in ["s1", "s2", "s3"] {
        ended_session(&store, id).await;
        let claim = claim_run(&store, id).await;
        store.persist(id, &parse(&short), &claim).await.unwrap();
    }
    sqlx::query("DELETE FROM sessions WHERE id IN ('s1', 's2')")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(rows(&pool, "s1").await, (0, 0));
    assert_eq!(rows(&pool, "s2").await, (0, 0));
    assert_eq!(
        rows(&pool, "s3").await,
        (8, 8),
        "another session keeps its rows"
    );
    sqlx::query("TRUNCATE sessions CASCADE")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(rows(&pool, "s3").await, (0, 0));
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn failing_stops_at_summarized(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    ended_session(&store, "s1").await;
    assert!(
        store
            .fail_session("s1", "S3 download failed: gone", None)
            .await
            .unwrap()
    );
    let row = store.session("s1").await.unwrap().unwrap();
    assert_eq!(row.lifecycle, Lifecycle::Failed);
    assert_eq!(row.parse_error.as_deref(), Some("S3 download failed: gone"));
    assert!(
        !store.fail_session("s1", "again", None).await.unwrap(),
        "failed is terminal"
    );

    ended_session(&store, "s2").await;
    let claim = claim_run(&store, "s2").await;
    store.persist("s2", &parse(b""), &claim).await.unwrap();
    store.set_summary("s2", "Nothing happened.").await.unwrap();
    assert!(
        !store.fail_session("s2", "late", None).await.unwrap(),
        "a summarized session keeps its data"
    );
}

/// Random transitions by concurrent actors; a trigger records every change the table saw, and
/// every recorded change must be one the lifecycle allows.
async fn race(pool: &PgPool, moves: Vec<Vec<(usize, usize)>>) -> Vec<(String, String)> {
    let store = Store::from_pool(pool.clone());
    sqlx::query("DELETE FROM lifecycle_history")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM sessions")
        .execute(pool)
        .await
        .unwrap();
    store
        .create_session(&NewSession {
            id: "s",
            workspace_id: "w",
            transcript_key: Some("k"),
            ..NewSession::default()
        })
        .await
        .unwrap();
    let actors: Vec<_> = moves
        .into_iter()
        .map(|actor| {
            let store = store.clone();
            tokio::spawn(async move {
                for (from, to) in actor {
                    let (from, to) = (Lifecycle::ALL[from], Lifecycle::ALL[to]);
                    match store.transition("s", &[from], to).await {
                        Ok(_) => {}
                        Err(StoreError::TransitionRefused { .. }) => assert!(!from.can_move_to(to)),
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for actor in actors {
        actor.await.unwrap();
    }
    sqlx::query_as("SELECT old, new FROM lifecycle_history ORDER BY at")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn concurrent_random_transitions_never_reach_a_state_the_table_forbids(pool: PgPool) {
    sqlx::raw_sql(
        "CREATE TABLE lifecycle_history (at bigserial, old text, new text);
         CREATE FUNCTION record_lifecycle() RETURNS trigger AS $$
         BEGIN
             IF NEW.lifecycle IS DISTINCT FROM OLD.lifecycle THEN
                 INSERT INTO lifecycle_history (old, new) VALUES (OLD.lifecycle, NEW.lifecycle);
             END IF;
             RETURN NEW;
         END $$ LANGUAGE plpgsql;
         CREATE TRIGGER lifecycle_history AFTER UPDATE ON sessions
             FOR EACH ROW EXECUTE FUNCTION record_lifecycle();",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Cases come from proptest's generator; each runs against the real database.
    let strategy =
        prop::collection::vec(prop::collection::vec((0usize..7, 0usize..7), 1..12), 2..5);
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..48 {
        let moves = strategy.new_tree(&mut runner).unwrap().current();
        let history = race(&pool, moves.clone()).await;
        for (old, new) in history {
            let (old, new): (Lifecycle, Lifecycle) = (old.parse().unwrap(), new.parse().unwrap());
            assert!(old.can_move_to(new), "{old} → {new} happened in {moves:?}");
        }
    }
}

/// Claims `id` for a run and returns the claim its writes must carry.
async fn claim_run(store: &Store, id: &str) -> String {
    match store.claim_for_parse(id, "test-worker").await.unwrap() {
        Claim::Claimed(row) => row.claim.expect("a claimed session carries its claim"),
        other => panic!("{id} was not claimed: {other:?}"),
    }
}

async fn count(pool: &PgPool, sql: &'static str, id: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn deleting_a_session_takes_its_rows_queues_its_blobs_and_leaves_a_tombstone(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let short = fixture("cc2.1.14-headless-hello-world-script.jsonl");
    for id in ["s1", "s2"] {
        ended_session(&store, id).await;
        let claim = claim_run(&store, id).await;
        store.persist(id, &parse(&short), &claim).await.unwrap();
        sqlx::query(
            "INSERT INTO processor_state (processor_name, session_id, processed_at) \
             VALUES ('tools', $1, now())",
        )
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO tool_usage (session_id, tool_name, calls, errors, files) \
             VALUES ($1, 'Bash', 1, 0, 0)",
        )
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    }
    // A key for another workspace finds nothing to delete.
    let other = ["w2".to_owned()];
    assert_eq!(
        store
            .delete_session("s1", Some(&other), "request", "k1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(rows(&pool, "s1").await, (8, 8));

    let deleted = store
        .delete_session("s1", Some(&["w1".to_owned()]), "request", "k1")
        .await
        .unwrap()
        .expect("s1 is deleted");
    assert_eq!((deleted.workspace_id.as_str(), deleted.messages), ("w1", 8));
    assert_eq!(
        deleted.blobs,
        [
            "transcripts/w1/s/raw.jsonl",
            "transcripts/w1/s1/parsed.json"
        ]
    );
    assert_eq!(rows(&pool, "s1").await, (0, 0));
    for sql in [
        "SELECT count(*) FROM sessions WHERE id = $1",
        "SELECT count(*) FROM processor_state WHERE session_id = $1",
        "SELECT count(*) FROM tool_usage WHERE session_id = $1",
    ] {
        assert_eq!(count(&pool, sql, "s1").await, 0, "{sql}");
        assert_eq!(
            count(&pool, sql, "s2").await,
            1,
            "another session keeps: {sql}"
        );
    }
    assert_eq!(rows(&pool, "s2").await, (8, 8));
    let queued: Vec<String> = sqlx::query_scalar("SELECT key FROM blob_deletions ORDER BY key")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(queued, deleted.blobs);
    assert_eq!(store.blobs_to_delete(10).await.unwrap().len(), 2);
    store.blobs_deleted(&queued).await.unwrap();
    assert!(store.blobs_to_delete(10).await.unwrap().is_empty());

    // The tombstone: in the event log, handled, saying why and who.
    let (data, handled): (serde_json::Value, bool) = sqlx::query_as(
        "SELECT data, handled_at IS NOT NULL FROM events \
         WHERE session_id = 's1' AND type = 'session.deleted'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        data,
        serde_json::json!({"reason": "request", "by": "k1", "messages": 8})
    );
    assert!(handled, "a tombstone is nothing for a worker to handle");
    let tombstone = store.tombstone("s1").await.unwrap().expect("a tombstone");
    assert_eq!(
        (tombstone.workspace_id.as_deref(), tombstone.reason.as_str()),
        (Some("w1"), "request")
    );
    assert_eq!(tombstone.deleted_at, deleted.deleted_at);
    assert_eq!(
        store
            .tombstoned(&["s1".into(), "s2".into(), "s9".into()], None)
            .await
            .unwrap(),
        ["s1"]
    );
    assert!(
        store
            .tombstoned(&["s1".into()], Some(&other))
            .await
            .unwrap()
            .is_empty(),
        "another workspace's key is not told"
    );
    assert_eq!(
        store
            .delete_session("s1", None, "request", "k1")
            .await
            .unwrap(),
        None,
        "deleted once"
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn late_events_and_uploads_do_not_bring_a_deleted_session_back_unless_revived(pool: PgPool) {
    use sessionflow_stages::store::{Ended, Started, Transcript};
    let store = Store::from_pool(pool.clone());
    store.ensure_workspace("w1").await.unwrap();
    sqlx::query("INSERT INTO devices (id, workspace_id) VALUES ('d1', 'w1')")
        .execute(&pool)
        .await
        .unwrap();
    let start = Started {
        id: "s1",
        workspace_id: "w1",
        device_id: "d1",
        cwd: Some("/home/me/p"),
        ..Started::default()
    };
    let end = Ended {
        id: "s1",
        workspace_id: "w1",
        device_id: "d1",
        reason: "exit",
        ..Ended::default()
    };
    let transcript = Transcript {
        key: "transcripts/w1/s1/raw.jsonl",
        size: Some(10),
        sha256: Some("abc"),
        parts: None,
    };
    store.record_start(&start).await.unwrap();
    store
        .delete_session("s1", None, "request", "k1")
        .await
        .unwrap()
        .unwrap();

    store.record_start(&start).await.unwrap();
    assert_eq!(
        store.record_ends(std::slice::from_ref(&end)).await.unwrap(),
        Vec::<String>::new()
    );
    assert!(
        !store
            .record_transcript("w1", "s1", transcript)
            .await
            .unwrap()
    );
    assert_eq!(store.session("s1").await.unwrap(), None, "still deleted");

    // Forced back: a new session under the same id, which events then fill in.
    assert!(store.revive("s1", "w1").await.unwrap());
    assert!(store.tombstone("s1").await.unwrap().is_none());
    assert!(
        !store
            .record_transcript("w1", "s1", transcript)
            .await
            .unwrap()
    );
    store.record_start(&start).await.unwrap();
    assert_eq!(
        store.record_ends(std::slice::from_ref(&end)).await.unwrap(),
        ["s1"],
        "ended with its transcript: ready"
    );
    let cwd: Option<String> = sqlx::query_scalar("SELECT cwd FROM sessions WHERE id = 's1'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(cwd.as_deref(), Some("/home/me/p"));

    // Deleted again: a second tombstone.
    store
        .delete_session("s1", None, "retention", "retention")
        .await
        .unwrap()
        .unwrap();
    let tombstones: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE session_id = 's1' AND type = 'session.deleted'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tombstones, 2);
    assert_eq!(
        store.tombstone("s1").await.unwrap().map(|t| t.reason),
        Some("retention".to_owned()),
        "the newest tombstone tells"
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn sessions_expire_by_their_last_activity(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    for (id, ended, started, created) in [
        ("ended-long-ago", Some(40), Some(41), 1),
        ("started-long-ago", None, Some(40), 1),
        ("recorded-long-ago", None, None, 40),
        ("ended-lately", Some(1), Some(50), 50),
        ("new", None, None, 0),
    ] {
        store
            .create_session(&NewSession {
                id,
                workspace_id: "w1",
                ..NewSession::default()
            })
            .await
            .unwrap();
        sqlx::query(
            "UPDATE sessions SET ended_at = now() - $2 * interval '1 day', \
                 started_at = now() - $3 * interval '1 day', \
                 created_at = now() - $4 * interval '1 day' WHERE id = $1",
        )
        .bind(id)
        .bind(ended.map(f64::from))
        .bind(started.map(f64::from))
        .bind(f64::from(created))
        .execute(&pool)
        .await
        .unwrap();
    }
    let thirty_days = std::time::Duration::from_secs(30 * 86_400);
    let expired = store.expired_sessions(thirty_days, 10).await.unwrap();
    assert_eq!(
        expired.iter().collect::<std::collections::BTreeSet<_>>(),
        ["ended-long-ago", "recorded-long-ago", "started-long-ago"]
            .iter()
            .map(|s| s.to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .iter()
            .collect()
    );
    assert_eq!(
        store.expired_sessions(thirty_days, 1).await.unwrap().len(),
        1
    );
}

#[sqlx::test(migrator = "sessionflow_stages::store::MIGRATOR")]
async fn a_store_for_runs_commits_without_waiting_for_the_disk(pool: PgPool) {
    let store = Store::from_pool(pool);
    let setting = |pool: PgPool| async move {
        sqlx::query_scalar::<_, String>("SHOW synchronous_commit")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(setting(store.for_runs().pool().clone()).await, "off");
    assert_eq!(
        setting(store.pool().clone()).await,
        "on",
        "what a client is told is kept waits for the disk"
    );
}
