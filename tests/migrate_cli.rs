//! `sessionflow migrate` against the real Postgres: it creates a missing database, applies the
//! schema, and is idempotent.

mod common;

use common::{admin_url, url_for};

use std::process::Command;

#[tokio::test]
async fn migrate_creates_the_database_and_is_idempotent() {
    let database = format!("sessionflow_migrate_{}", std::process::id());
    let url = url_for(&database);
    for round in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .output()
            .expect("binary runs");
        assert!(
            out.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("database is up to date"));
    }
    let pool = sqlx::PgPool::connect(&url)
        .await
        .expect("the database exists now");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            "_sqlx_migrations",
            "api_keys",
            "blob_deletions",
            "content_blocks",
            "devices",
            "events",
            "offline_files",
            "processor_runs",
            "processor_state",
            "search_entries",
            "sessions",
            "staged_uploads",
            "tool_usage",
            "transcript_messages",
            "usage_generation",
            "usage_report_cache",
            "usage_responses",
            "usage_sessions",
            "workers",
            "workspaces"
        ]
    );
    // Large text is compressed with lz4 (this server has it).
    let compression: Vec<(String, String)> = sqlx::query_as(
        "SELECT attname::text, attcompression::text FROM pg_attribute \
         WHERE attrelid = 'content_blocks'::regclass \
           AND attname IN ('text', 'thinking', 'result_text', 'tool_input') ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        compression.len() == 4 && compression.iter().all(|(_, c)| c == "l"),
        "{compression:?}"
    );
    pool.close().await;
    let admin = sqlx::PgPool::connect(&admin_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {database}")))
        .execute(&admin)
        .await
        .unwrap();
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
        .arg("migrate")
        .env("DATABASE_URL", "postgres://nobody:secret@127.0.0.1:1/none")
        .output()
        .expect("binary runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(
            "sessionflow: cannot reach the database postgres://nobody:***@127.0.0.1:1/none"
        ),
        "{err}"
    );
    assert!(!err.contains("secret"));
}
