//! The README's first command as a newcomer runs it: the release binary's demo with nothing but
//! `PATH` and a fresh `HOME` (no `DATABASE_URL`, `PGUSER` or `USER`), against this machine's
//! Postgres; then `sessionflow usage` showing what the demo processed. And what a newcomer sees
//! when the database cannot be reached: one short error, said once, with the command that fixes
//! it.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// The release binary `scripts/test.sh` builds (the README's command runs it).
fn release_binary() -> String {
    let path = std::env::var("SESSIONFLOW_RELEASE_BIN").expect(
        "SESSIONFLOW_RELEASE_BIN is not set: scripts/test.sh builds the release binary and sets it",
    );
    assert!(Path::new(&path).is_file(), "no release binary at {path}");
    path
}

/// `binary ARGS` with nothing of the caller's environment but `PATH`, and `home` as `HOME`.
fn scrubbed(binary: &str, home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(binary);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home);
    command
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn the_demo_runs_on_a_fresh_machine_with_no_variable_set_and_usage_shows_it() {
    let binary = release_binary();
    let home = tempfile::tempdir().unwrap();
    let out = scrubbed(
        &binary,
        home.path(),
        &["demo", "--sessions", "10", "--json"],
    )
    .output()
    .unwrap();
    let report = json(&out);
    assert_eq!(report["processing"]["summarized"], 10, "{report}");
    assert_eq!(report["processing"]["failed"], 0, "{report}");
    assert_eq!(report["processing"]["pending"], 0, "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("already exists"),
        "a notice leaked: {stderr}"
    );

    // The demo's own usage table: its sessions, each response once, priced.
    let demo_usage = &report["usage"];
    let tokens = |v: &Value| {
        [
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ]
        .iter()
        .map(|k| v[*k].as_i64().unwrap_or_default())
        .collect::<Vec<_>>()
    };
    let demo_totals = tokens(&demo_usage["totals"]);
    assert!(
        demo_totals[1] > 0,
        "the demo's usage is empty: {demo_usage}"
    );
    assert!(
        demo_usage["totals"]["cost_usd"]
            .as_f64()
            .unwrap_or_default()
            > 0.0,
        "{demo_usage}"
    );

    // Right after, `usage session` from the same database holds those sessions, with the
    // figures the demo printed (nothing waits for a processor's schedule).
    let out = scrubbed(&binary, home.path(), &["usage", "session", "--json"])
        .output()
        .unwrap();
    let all = json(&out);
    let rows = all["rows"].as_array().expect("rows");
    let mut sum = vec![0i64; 4];
    let mut found = 0;
    for demo_row in demo_usage["rows"].as_array().expect("demo rows") {
        for model in demo_row["models"].as_array().unwrap() {
            assert!(!model["cost_usd"].is_null(), "unpriced: {model}");
        }
    }
    let demo_sessions: Vec<String> = report["session_ids"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(demo_sessions.len(), 10, "{report}");
    for row in rows {
        if demo_sessions
            .iter()
            .any(|id| row["session_id"] == id.as_str())
        {
            found += 1;
            for (total, n) in sum.iter_mut().zip(tokens(row)) {
                *total += n;
            }
        }
    }
    // A generated session that resumes another holds only responses counted for the first.
    assert!(found > 0, "usage session lacks the demo's sessions: {all}");
    assert_eq!(sum, demo_totals, "{all}");
}

#[test]
fn the_default_build_says_how_to_get_s3_when_asked_for_it() {
    let home = tempfile::tempdir().unwrap();
    let mut daemon = scrubbed(&release_binary(), home.path(), &["daemon"])
        .env("SESSIONFLOW_BLOB", "s3://transcripts/team")
        .env("SESSIONFLOW_API_KEY", "a-key-for-this-test")
        .env("SESSIONFLOW_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A binary built with S3 would start and serve: it must not hang the suite.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while daemon.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = daemon.kill();
            panic!("the release binary started a daemon on S3: was it built with --features s3?");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = daemon.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "blob store \"s3://transcripts/team\" is not valid: this sessionflow was built \
             without S3 support; build it with `cargo build --release --features s3`"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn commands_say_nothing_on_stderr_when_all_is_well_and_never_colour_a_pipe() {
    let home = tempfile::tempdir().unwrap();
    let database = format!("sessionflow_quiet_{}", std::process::id());
    let url = common::url_for(&database);
    for _ in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .env("HOME", home.path())
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        // The second run once printed `INFO sqlx::postgres::notice: relation
        // "_sqlx_migrations" already exists, skipping`, in colour.
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    }
    // Logs to a pipe carry no colour codes.
    let out = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
        .args(["serve"])
        .env("DATABASE_URL", &url)
        .env("HOME", home.path())
        .env("RUST_LOG", "info")
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("serve needs REDIS_URL"), "{stderr}");
    let logged = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
        .args(["usage", "daily", "--timezone", "UTC"])
        .env("DATABASE_URL", &url)
        .env("HOME", home.path())
        .env("RUST_LOG", "debug")
        .env_remove("SESSIONFLOW_SERVER")
        .output()
        .unwrap();
    assert!(logged.status.success(), "{logged:?}");
    let stderr = String::from_utf8_lossy(&logged.stderr);
    assert!(stderr.contains("DEBUG"), "debug logs asked for: {stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "colour codes in a pipe: {stderr:?}"
    );
    let admin = sqlx::PgPool::connect(&common::admin_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
}

#[test]
fn a_missing_role_is_one_error_that_says_how_to_create_it() {
    let home = tempfile::tempdir().unwrap();
    let out = scrubbed(env!("CARGO_BIN_EXE_sessionflow"), home.path(), &["migrate"])
        .env("PGUSER", "sessionflow_no_such_role")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(
            "sessionflow: no Postgres let user \"sessionflow_no_such_role\" in on port 5432: tried "
        ),
        "{err}"
    );
    assert!(
        err.contains("role \"sessionflow_no_such_role\" does not exist"),
        "{err}"
    );
    assert!(
        err.contains(
            "Create the role: sudo -u postgres createuser --createdb sessionflow_no_such_role"
        ),
        "{err}"
    );
    assert_eq!(
        err.matches("sessionflow:").count(),
        1,
        "said more than once: {err}"
    );
    assert!(!err.contains("anonymous"), "{err}");
    assert!(!err.contains("at line"), "{err}");
}

#[test]
fn a_stopped_server_is_one_error_that_says_how_to_start_it() {
    let home = tempfile::tempdir().unwrap();
    // Nothing listens on port 1, on a socket or over TCP.
    let out = scrubbed(env!("CARGO_BIN_EXE_sessionflow"), home.path(), &["migrate"])
        .env("PGPORT", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let user = whoami();
    assert_eq!(
        err.lines().next().unwrap_or_default(),
        format!(
            "sessionflow: no Postgres let user \"{user}\" in on port 1: tried 127.0.0.1 (no server)"
        ),
        "{err}"
    );
    assert!(err.contains("Start Postgres"), "{err}");
    assert!(err.contains("or set DATABASE_URL="), "{err}");
    assert_eq!(err.lines().count(), 3, "{err}");
}

/// The account running the tests, as `id -un` says.
fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
