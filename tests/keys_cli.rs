//! Keys scoped to roles and workspaces against the real `sessionflow daemon`: every route ×
//! role × workspace answers as it should — an ingest key of A cannot read A, a read key of A
//! cannot ingest or see B, a revoked or expired key is 401, an admin sees all — and a session
//! id of one workspace cannot be taken over from another. Keys are made with `sessionflow keys`
//! against the database and through the server.

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::process::Command;

use chrono::Utc;
use common::url_for;
use daemon::{Daemon, KEY, drop_database, wait_healthy};
use serde_json::{Value, json};

fn keys(database: &str, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
        .arg("keys")
        .args(args)
        .env("DATABASE_URL", url_for(database))
        .env_remove("SESSIONFLOW_SERVER")
        .env_remove("SESSIONFLOW_API_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "keys {args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

struct Caller {
    http: reqwest::Client,
    url: String,
}

impl Caller {
    async fn call(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        self.call(key, reqwest::Method::GET, path, None).await
    }

    async fn post(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        self.call(key, reqwest::Method::POST, path, Some(body))
            .await
    }

    async fn start(&self, key: &str, session: &str, workspace: &str) -> (u16, Value) {
        let event = json!({
            "id": ulid::Ulid::generate().to_string(), "type": "session.start",
            "timestamp": Utc::now(), "device_id": "laptop", "workspace_id": workspace,
            "session_id": session, "data": {"cc_session_id": session, "source": "startup"},
        });
        self.post(key, "/api/events/ingest", json!({ "events": [event] }))
            .await
    }
}

fn ids(page: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> = page["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn keys_see_their_workspaces_only_and_do_only_what_their_role_allows() {
    let database = format!("sessionflow_keys_{}", std::process::id());
    let blobs = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&database, blobs.path());
    wait_healthy(&daemon.url).await;
    let api = Caller {
        http: reqwest::Client::new(),
        url: daemon.url.clone(),
    };

    // Keys from the database, and through the server with the bootstrap admin key.
    let made = |value: Value| value["key"].as_str().unwrap().to_owned();
    let ingest_a = made(keys(
        &database,
        &[
            "create",
            "--role",
            "ingest",
            "--workspace",
            "team-a",
            "--json",
        ],
    ));
    let ingest_b = made(keys(
        &database,
        &[
            "create",
            "--role",
            "ingest",
            "--workspace",
            "team-b",
            "--json",
        ],
    ));
    // Claude Code's project folders start with a dash.
    let dashed = keys(
        &database,
        &[
            "create",
            "--role",
            "read",
            "--workspace",
            "-home-dev-app",
            "--json",
        ],
    );
    assert_eq!(dashed["workspaces"], json!(["-home-dev-app"]));
    let read_a = made(keys(
        &database,
        &[
            "create",
            "--role",
            "read",
            "--workspace",
            "team-a",
            "--json",
        ],
    ));
    let (status, created) = api
        .post(
            KEY,
            "/api/admin/keys",
            json!({"role": "read", "workspaces": ["team-b"], "name": "lead of b"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let read_b = made(created);
    let (_, created) = api
        .post(KEY, "/api/admin/keys", json!({"role": "admin"}))
        .await;
    let admin = made(created);
    let (_, created) = api
        .post(
            KEY,
            "/api/admin/keys",
            json!({"role": "read", "expires_at": Utc::now() - chrono::Duration::minutes(1)}),
        )
        .await;
    let expired = made(created);
    let revoked = keys(&database, &["create", "--role", "read", "--json"]);
    let out = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
        .args(["keys", "revoke", revoked["id"].as_str().unwrap()])
        .args(["--server", &daemon.url, "--api-key", &admin])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let revoked = made(revoked);

    // Ingest keys send to their own workspace only.
    assert_eq!(api.start(&ingest_a, "a-1", "team-a").await.0, 202);
    assert_eq!(api.start(&ingest_b, "b-1", "team-b").await.0, 202);
    let (status, body) = api.start(&ingest_a, "a-2", "team-b").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("does not cover workspace team-b")
    );
    // A session of team-a cannot be taken over from team-b, by any key.
    for key in [&ingest_b, &admin] {
        let (status, body) = api.start(key, "a-1", "team-b").await;
        assert_eq!(status, 409, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("belongs to another workspace")
        );
    }
    let upload = |key: &str, workspace: &str| {
        api.http
            .post(format!(
                "{}/api/sessions/a-1/transcript/upload?workspace_id={workspace}",
                api.url
            ))
            .bearer_auth(key.to_owned())
            .body("{\"type\":\"user\"}\n")
            .send()
    };
    assert_eq!(upload(&ingest_b, "team-b").await.unwrap().status(), 409);
    assert_eq!(upload(&ingest_b, "team-a").await.unwrap().status(), 409);
    // batch-status answers for the key's own workspaces; the others are not found.
    let (status, statuses) = api
        .post(
            &ingest_a,
            "/api/sessions/batch-status",
            json!({"session_ids": ["a-1", "b-1"]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(statuses["not_found"], json!(["b-1"]));
    assert_eq!(statuses["statuses"]["a-1"]["lifecycle"], "detected");
    // An ingest key cannot read, even its own workspace.
    let (status, body) = api.get(&ingest_a, "/api/sessions").await;
    assert_eq!(status, 403);
    assert!(
        body["error"].as_str().unwrap().contains("needs read"),
        "{body}"
    );

    // Read keys see their workspace, and nothing of another.
    let (status, page) = api.get(&read_a, "/api/sessions").await;
    assert_eq!((status, ids(&page)), (200, vec!["a-1"]));
    assert_eq!(page["total"], 1);
    let (_, page) = api.get(&read_a, "/api/sessions?workspace=team-b").await;
    assert_eq!(ids(&page), Vec::<&str>::new());
    assert_eq!(api.get(&read_a, "/api/sessions/a-1").await.0, 200);
    assert_eq!(api.get(&read_a, "/api/sessions/b-1").await.0, 404);
    assert_eq!(api.get(&read_a, "/api/sessions/b-1/messages").await.0, 404);
    assert_eq!(api.get(&read_b, "/api/sessions/a-1").await.0, 404);
    let (_, page) = api.get(&read_b, "/api/sessions").await;
    assert_eq!(ids(&page), vec!["b-1"]);
    assert_eq!(api.start(&read_a, "a-3", "team-a").await.0, 403);
    // Monitor, usage and tools keep to the key's workspaces too: each team's session gets a
    // transcript (team-a's without a tool call) and is processed.
    for (key, session, fixture) in [
        (
            &ingest_a,
            "a-1",
            "cc2.1.14-headless-stop-hook-reflection-second-stop.jsonl",
        ),
        (
            &ingest_b,
            "b-1",
            "cc2.1.14-headless-hello-world-script.jsonl",
        ),
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/transcripts")
            .join(fixture);
        let response = api
            .http
            .post(format!(
                "{}/api/sessions/{session}/transcript/upload",
                api.url
            ))
            .bearer_auth(key.as_str())
            .body(std::fs::read(path).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{session}");
        let end = json!({
            "id": ulid::Ulid::generate().to_string(), "type": "session.end",
            "timestamp": Utc::now(), "device_id": "laptop",
            "workspace_id": if session == "a-1" { "team-a" } else { "team-b" },
            "session_id": session, "data": {"cc_session_id": session, "end_reason": "exit"},
        });
        let (status, body) = api
            .post(key, "/api/events/ingest", json!({ "events": [end] }))
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, monitor) = api.get(&admin, "/api/monitor").await;
        if monitor["sessions"]["by_lifecycle"]["summarized"] == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{monitor}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, monitor) = api.get(&read_a, "/api/monitor").await;
    assert_eq!(status, 200, "{monitor}");
    assert_eq!(
        monitor["sessions"]["by_lifecycle"],
        json!({"summarized": 1})
    );
    let usage_rows = |report: &Value| -> Vec<String> {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["session_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, usage) = api.get(&read_a, "/api/usage?by=session").await;
    assert_eq!((status, usage_rows(&usage)), (200, vec!["a-1".to_owned()]));
    let (_, usage) = api.get(&read_b, "/api/usage?by=session").await;
    assert_eq!(usage_rows(&usage), vec!["b-1".to_owned()]);
    let (_, usage) = api.get(&admin, "/api/usage?by=session").await;
    assert_eq!(usage_rows(&usage), vec!["a-1".to_owned(), "b-1".to_owned()]);
    let (status, tools) = api.get(&read_a, "/api/tools").await;
    assert_eq!((status, &tools["tools"]), (200, &json!([])));
    let (_, tools) = api.get(&read_b, "/api/tools").await;
    assert!(!tools["tools"].as_array().unwrap().is_empty(), "{tools}");
    let (_, all_tools) = api.get(&admin, "/api/tools").await;
    assert_eq!(all_tools, tools);
    for path in ["/api/monitor", "/api/usage", "/api/tools"] {
        let (status, body) = api.get(&ingest_a, path).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, _) = api
        .call(
            &read_a,
            reqwest::Method::POST,
            "/api/sessions/a-1/reparse",
            None,
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(api.get(&read_a, "/api/admin/keys").await.0, 403);

    // An admin sees all; a revoked or expired key, or a made-up one, opens nothing.
    let (_, page) = api.get(&admin, "/api/sessions").await;
    assert_eq!(ids(&page), vec!["a-1", "b-1"]);
    assert_eq!(api.get(&admin, "/api/monitor").await.0, 200);
    for key in [&revoked, &expired, &format!("sfk_{}", "0".repeat(64))] {
        assert_eq!(api.get(key, "/api/sessions").await.0, 401, "{key}");
    }

    // The list says who holds what, never the keys.
    let (status, list) = api.get(&admin, "/api/admin/keys").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 8);
    let listed = list.to_string();
    for key in [&ingest_a, &read_a, &admin, &revoked] {
        assert!(!listed.contains(key.as_str()));
    }
    let from_cli = keys(&database, &["list", "--json"]);
    assert_eq!(from_cli.as_array().unwrap().len(), 8);
    let lead = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "lead of b")
        .unwrap();
    assert_eq!(lead["role"], "read");
    assert_eq!(lead["workspaces"], json!(["team-b"]));
    assert!(
        !lead["last_used_at"].is_null(),
        "its use was recorded: {lead}"
    );
    // Clients read the key from a file of their own (0600), or refuse it.
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join(".config/sessionflow/key");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, format!("{admin}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let list_with_file = || {
        Command::new(env!("CARGO_BIN_EXE_sessionflow"))
            .args(["keys", "list", "--json", "--server", &daemon.url])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .output()
            .unwrap()
    };
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = list_with_file();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is readable by others (mode 644)"),
        "{out:?}"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = list_with_file();
    assert!(out.status.success(), "{out:?}");
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 8);

    // Only the hash is stored.
    let pool = sqlx::PgPool::connect(&url_for(&database)).await.unwrap();
    let hashes: Vec<Vec<u8>> = sqlx::query_scalar("SELECT key_hash FROM api_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert!(hashes.iter().all(|h| h.len() == 32));
    drop(daemon);
    drop_database(&database).await;
}

#[tokio::test]
async fn a_server_without_a_bootstrap_key_takes_the_keys_in_its_database() {
    let database = format!("sessionflow_keys_nobootstrap_{}", std::process::id());
    let blobs = tempfile::tempdir().unwrap();
    let no_key = [("SESSIONFLOW_API_KEY", "")];

    // No key anywhere: it refuses to start, saying how to make one.
    let mut refused = Daemon::start_with(&database, blobs.path(), &no_key);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = refused.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a daemon with no key at all kept running"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(!status.success());
    let mut stderr = String::new();
    use std::io::Read;
    refused
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("no API key") && stderr.contains("sessionflow keys create --role admin"),
        "{stderr}"
    );

    // With an admin key in the database it serves that key (and nothing else).
    let admin = keys(&database, &["create", "--role", "admin", "--json"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let daemon = Daemon::start_with(&database, blobs.path(), &no_key);
    wait_healthy(&daemon.url).await;
    let api = Caller {
        http: reqwest::Client::new(),
        url: daemon.url.clone(),
    };
    assert_eq!(api.get(&admin, "/api/sessions").await.0, 200);
    assert_eq!(api.get(KEY, "/api/sessions").await.0, 401);
    assert_eq!(api.get("", "/api/sessions").await.0, 401);
    drop(daemon);
    drop_database(&database).await;
}
