//! The real client: a pinned Claude Code (installed from npm by `scripts/services.sh`, path in
//! `CLAUDE_CODE`) runs `claude -p` in a temporary HOME against a local stand-in for the
//! Messages API (streaming, its own token counts), with the hooks `sessionflow hooks install`
//! wrote. The session reaches a daemon of the test's own and ends summarized with exactly the
//! stand-in's tokens, priced. Then its local file is deleted (Claude Code's cleanup),
//! `sessionflow restore` writes it back, and `claude --resume` continues the conversation.

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use daemon::{Daemon, KEY, drop_database, wait_healthy};
use serde_json::{Value, json};

/// What the stand-in answered: message id, model and usage of each response.
type Answered = Arc<Mutex<Vec<(String, String, [u64; 4])>>>;
/// The bodies of the requests the stand-in was sent.
type Asked = Arc<Mutex<Vec<String>>>;

/// `POST /v1/messages`: one text reply, streamed as server-sent events (or whole, when the
/// request does not stream), with token counts of its own for each response.
async fn messages(State((answered, asked)): State<(Answered, Asked)>, body: Bytes) -> Response {
    asked
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&body).into_owned());
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = request["model"]
        .as_str()
        .unwrap_or("claude-opus-4-8")
        .to_owned();
    let (id, usage) = {
        let mut answered = answered.lock().unwrap();
        let n = answered.len() as u64 + 1;
        let id = format!("msg_standin_{n:04}");
        // input, cache write, cache read, output
        let usage = [1000 + n, 2000 + n, 30_000 + n, 400 + n];
        answered.push((id.clone(), model.clone(), usage));
        (id, usage)
    };
    let text = "The stand-in says hello.";
    let full_usage = json!({"input_tokens": usage[0], "cache_creation_input_tokens": usage[1],
                            "cache_read_input_tokens": usage[2], "output_tokens": usage[3]});
    if request["stream"] != true {
        let message = json!({"id": id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "stop_sequence": null, "usage": full_usage});
        return axum::Json(message).into_response();
    }
    let mut start_usage = full_usage.clone();
    start_usage["output_tokens"] = json!(1);
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": id, "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": start_usage}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": text}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": usage[3]}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let body: String = events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    ([(CONTENT_TYPE, "text/event-stream")], body).into_response()
}

async fn stand_in() -> (String, Answered, Asked) {
    let answered: Answered = Arc::default();
    let asked: Asked = Arc::default();
    let app = Router::new()
        .route("/v1/messages", post(messages))
        .with_state((Arc::clone(&answered), Arc::clone(&asked)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, answered, asked)
}

/// The session files Claude Code wrote under `home`.
fn transcripts(home: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(home.join(".claude/projects"))
        .into_iter()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .map(|e| e.into_path())
        .collect()
}

#[tokio::test]
async fn claude_code_with_our_hooks_lands_a_summarized_priced_session() {
    let claude = std::env::var("CLAUDE_CODE").expect(
        "CLAUDE_CODE is not set: scripts/services.sh installs Claude Code 2.1.197 and sets it",
    );
    let database = format!("sessionflow_claude_{}", std::process::id());
    let blobs = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&database, blobs.path());
    wait_healthy(&daemon.url).await;
    let (api, answered, asked) = stand_in().await;
    let home = tempfile::tempdir().unwrap();
    let work = home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
        .args(["hooks", "install", "--server", &daemon.url])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let claude_run = |args: Vec<String>| {
        let (home, work, api, claude) = (
            home.path().to_owned(),
            work.clone(),
            api.clone(),
            claude.clone(),
        );
        async move {
            let run = tokio::task::spawn_blocking(move || {
                Command::new(claude)
                    .args(args)
                    .current_dir(&work)
                    .env_clear()
                    .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                    .env("HOME", &home)
                    .env("ANTHROPIC_BASE_URL", &api)
                    .env("ANTHROPIC_API_KEY", "sk-ant-stand-in")
                    .env("SESSIONFLOW_API_KEY", KEY)
                    .env("DISABLE_AUTOUPDATER", "1")
                    .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
                    .output()
                    .unwrap()
            });
            tokio::time::timeout(Duration::from_secs(120), run)
                .await
                .expect("claude did not finish in 2 minutes")
                .unwrap()
        }
    };
    let out = claude_run(vec!["-p".into(), "Say hello to the stand-in.".into()]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("The stand-in says hello."),
        "{out:?}"
    );

    let files = transcripts(home.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let transcript = std::fs::read_to_string(&files[0]).unwrap();
    let session = files[0].file_stem().unwrap().to_str().unwrap().to_owned();
    // The responses the transcript holds, and the counts the stand-in gave them.
    let answered = answered.lock().unwrap().clone();
    let kept: Vec<&(String, String, [u64; 4])> = answered
        .iter()
        .filter(|(id, _, _)| transcript.contains(id.as_str()))
        .collect();
    assert!(!kept.is_empty(), "no stand-in response in the transcript");
    let sum = |i: usize| kept.iter().map(|(_, _, u)| u[i] as i64).sum::<i64>();

    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let row = loop {
        let response = http
            .get(format!("{}/api/sessions/{session}", daemon.url))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let row: Value = response.json().await.unwrap_or(Value::Null);
        if row["lifecycle"] == "summarized" {
            break row;
        }
        assert!(
            Instant::now() < deadline,
            "the session never reached summarized: {row}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(row["tokens_in"], sum(0), "{row}");
    assert_eq!(row["cache_write_tokens"], sum(1), "{row}");
    assert_eq!(row["cache_read_tokens"], sum(2), "{row}");
    assert_eq!(row["tokens_out"], sum(3), "{row}");
    assert!(row["cost_estimate_usd"].as_f64().unwrap() > 0.0, "{row}");
    assert_eq!(row["end_reason"], "other", "{row}");

    // Usage reports it with its model priced from the table (not unpriced, not estimated).
    let usage: Value = http
        .get(format!("{}/api/usage?by=session&timezone=UTC", daemon.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = usage["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{usage}");
    assert_eq!(rows[0]["session_id"], session.as_str());
    assert_eq!(rows[0]["output_tokens"], sum(3));
    for model in rows[0]["models"].as_array().unwrap() {
        assert_eq!(model["model"], kept[0].1.as_str(), "{usage}");
        assert!(model["cost_usd"].as_f64().unwrap() > 0.0, "{usage}");
        assert!(model.get("cost_estimated").is_none(), "{usage}");
    }

    // Claude Code's cleanup takes the local file; the server gives it back, and Claude Code
    // goes on with the conversation.
    let stored = http
        .get(format!("{}/api/sessions/{session}/transcript", daemon.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    std::fs::remove_file(&files[0]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
        .args([
            "restore",
            &session,
            "--server",
            &daemon.url,
            "--api-key",
            KEY,
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read(&files[0]).unwrap(),
        stored,
        "restored as stored"
    );
    assert_eq!(
        String::from_utf8_lossy(&stored),
        transcript,
        "the server holds the transcript Claude Code wrote"
    );
    let before = asked.lock().unwrap().len();
    let out = claude_run(vec![
        "--resume".into(),
        session.clone(),
        "-p".into(),
        "Say hello again.".into(),
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let resumed = asked.lock().unwrap()[before..].to_vec();
    assert!(
        resumed
            .iter()
            .any(|body| body.contains("Say hello again.")
                && body.contains("Say hello to the stand-in.")),
        "the resumed conversation carries the restored one: {resumed:?}"
    );
    drop(daemon);
    drop_database(&database).await;
}
