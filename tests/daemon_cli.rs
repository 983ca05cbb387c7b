//! The service modes as an operator runs them: the real binary, real Postgres, a local blob
//! directory, signals — and the monitor in a real terminal (tmux), over HTTP and in-process.

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use common::url_for;
use daemon::{Daemon, KEY, drop_database, free_port, wait_healthy};

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[test]
fn serve_without_redis_refuses_and_says_why() {
    let out = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
        .arg("serve")
        .env_remove("REDIS_URL")
        .env("SESSIONFLOW_API_KEY", KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("serve needs REDIS_URL: without Redis no worker would ever see"),
        "{err}"
    );
}

impl Daemon {
    fn terminate(&mut self) -> (std::process::ExitStatus, Duration, String) {
        let started = Instant::now();
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        let mut logs = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            stderr.read_to_string(&mut logs).unwrap();
        }
        (status, started.elapsed(), logs)
    }
}

#[tokio::test]
async fn the_embedded_daemon_takes_a_session_from_events_to_summarized_and_stops_cleanly() {
    let database = format!("sessionflow_daemon_{}", std::process::id());
    let blobs = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(&database, blobs.path());
    wait_healthy(&daemon.url).await;
    let http = reqwest::Client::new();
    feed(
        &http,
        &daemon.url,
        "s1",
        "cc2.1.14-headless-python-to-rust-port.jsonl",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut session = Value::Null;
    while Instant::now() < deadline {
        session = http
            .get(format!("{}/api/sessions/s1", daemon.url))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if session["lifecycle"] == "summarized" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(session["lifecycle"], "summarized", "{session}");
    assert_eq!(session["total_messages"], 80);
    assert_eq!(
        (session["tokens_in"].clone(), session["tokens_out"].clone()),
        (json!(38), json!(563))
    );

    let (status, took, logs) = daemon.terminate();
    assert!(status.success(), "{status:?}\n{logs}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    for expected in [
        "registered handlers: session.end, session.reparse, session.start, transcript.uploaded",
        "Event consumer started",
        "sessionflow stopped",
    ] {
        assert!(logs.contains(expected), "missing {expected:?} in\n{logs}");
    }
    assert!(
        logs.lines()
            .all(|l| l.trim().is_empty() || serde_json::from_str::<Value>(l).is_ok()),
        "--log-format json writes JSON lines:\n{logs}"
    );

    drop_database(&database).await;
}

/// A tmux server of the test's own (its own socket), one 120x40 window running a plain shell.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(name: &str, env: &[(&str, String)]) -> Self {
        let tmux = Tmux {
            socket: format!("sessionflow-{name}-{}", std::process::id()),
        };
        let mut args = vec![
            "new-session".to_owned(),
            "-d".into(),
            "-x".into(),
            "120".into(),
            "-y".into(),
            "40".into(),
        ];
        for (key, value) in env {
            args.extend(["-e".into(), format!("{key}={value}")]);
        }
        args.extend(["sh".into()]);
        tmux.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs");
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` and Enter into the shell.
    fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-l", text]);
        self.run(&["send-keys", "Enter"]);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p"])
    }

    fn flag(&self, name: &str) -> String {
        self.run(&["display-message", "-p", &format!("#{{{name}}}")])
            .trim()
            .to_owned()
    }

    /// Waits for `until` to hold on the screen; every screen seen goes through `check`.
    fn wait_for(&self, what: &str, check: impl Fn(&str), until: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            check(&screen);
            if until(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "never saw {what}:\n{screen}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// The count the dashboard's lifecycle bars show for `lifecycle` (0 when its bar is empty).
fn lifecycle_count(screen: &str, lifecycle: &str) -> Option<u64> {
    // The dashboard's "sessions by lifecycle" box: `│ summarized       4 ████`.
    screen.lines().find_map(|line| {
        let inside = line.split('│').nth(1)?;
        let mut words = inside.split_whitespace();
        (words.next()? == lifecycle)
            .then(|| words.next()?.parse().ok())
            .flatten()
    })
}

/// Sends `session.start`, `session.end` and the transcript of `fixture` for `id`.
async fn feed(http: &reqwest::Client, url: &str, id: &str, fixture: &str) {
    let event = |kind: &str, data: Value| {
        json!({"id": ulid::Ulid::generate().to_string(), "type": kind, "timestamp": chrono::Utc::now(),
               "device_id": "laptop", "workspace_id": "w1", "session_id": id, "data": data})
    };
    let events = json!({"events": [
        event("session.start", json!({"cc_session_id": id, "source": "startup"})),
        event("session.end", json!({"cc_session_id": id, "end_reason": "exit"})),
    ]});
    let r = http
        .post(format!("{url}/api/events/ingest"))
        .bearer_auth(KEY)
        .json(&events)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let transcript = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/transcripts")
            .join(fixture),
    )
    .unwrap();
    let r = http
        .post(format!("{url}/api/sessions/{id}/transcript/upload"))
        .bearer_auth(KEY)
        .body(transcript)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

const FIXTURES: [&str; 4] = [
    "cc2.1.14-headless-python-to-rust-port.jsonl",
    "cc2.1.14-headless-hello-world-script.jsonl",
    "cc2.1.14-headless-coverage-test-fix.jsonl",
    "cc2.1.78-interactive-186a0ba09c.jsonl",
];

/// After `q` the monitor's command has returned 0 and the shell's screen is back: no
/// alternate screen, the cursor shown, what was typed before still there.
fn assert_restored(tmux: &Tmux, typed: &str) {
    tmux.run(&["send-keys", "q"]);
    let screen = tmux.wait_for("the monitor exit", |_| {}, |s| s.contains("exited 0"));
    assert_eq!(tmux.flag("alternate_on"), "0", "left the alternate screen");
    assert_eq!(tmux.flag("cursor_flag"), "1", "the cursor is shown again");
    assert!(
        screen.contains(typed),
        "the shell's screen is back:\n{screen}"
    );
}

#[tokio::test]
async fn the_monitor_in_a_terminal_shows_sessions_flowing_to_summarized() {
    let database = format!("sessionflow_tui_{}", std::process::id());
    let blobs = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&database, blobs.path());
    wait_healthy(&daemon.url).await;
    let tmux = Tmux::start("tui", &[]);
    let command = format!(
        "{} tui --server {} --api-key {KEY} --interval 300ms; echo exited $?",
        env!("CARGO_BIN_EXE_sessionflow"),
        daemon.url
    );
    tmux.type_line(&command);
    tmux.wait_for("the dashboard", |_| {}, |s| s.contains("HEALTHY"));
    assert_eq!(
        tmux.flag("alternate_on"),
        "1",
        "the monitor draws on the alternate screen"
    );
    let http = reqwest::Client::new();
    for (i, fixture) in FIXTURES.iter().enumerate() {
        feed(&http, &daemon.url, &format!("tmux-{i}"), fixture).await;
    }
    let screen = tmux.wait_for(
        "four sessions summarized",
        |_| {},
        |s| lifecycle_count(s, "summarized") == Some(FIXTURES.len() as u64),
    );
    assert!(screen.contains("sessions by lifecycle"), "{screen}");
    // The sessions view lists them; Enter opens one.
    tmux.run(&["send-keys", "2"]);
    tmux.wait_for(
        "the list",
        |_| {},
        |s| s.contains("1 of 4") && s.contains("tmux-3"),
    );
    tmux.run(&["send-keys", "Enter"]);
    tmux.wait_for(
        "the open session",
        |_| {},
        |s| s.contains("session tmux-3") && s.contains("first messages"),
    );
    tmux.run(&["send-keys", "Escape"]);
    assert_restored(&tmux, &command[..40]);
    drop(daemon);
    drop_database(&database).await;
}

#[tokio::test]
async fn daemon_tui_shows_its_own_pipeline_and_keeps_logs_off_the_screen() {
    let database = format!("sessionflow_dtui_{}", std::process::id());
    let blobs = tempfile::tempdir().unwrap();
    let logs = blobs.path().join("daemon.log");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let tmux = Tmux::start(
        "dtui",
        &[
            ("DATABASE_URL", url_for(&database)),
            (
                "SESSIONFLOW_BLOB",
                blobs.path().join("blobs").display().to_string(),
            ),
            ("SESSIONFLOW_API_KEY", KEY.to_owned()),
            ("SESSIONFLOW_LISTEN", format!("127.0.0.1:{port}")),
        ],
    );
    let command = format!(
        "env -u REDIS_URL -u ANTHROPIC_API_KEY {} daemon --tui --log-file {}; echo exited $?",
        env!("CARGO_BIN_EXE_sessionflow"),
        logs.display()
    );
    tmux.type_line(&command);
    wait_healthy(&url).await;
    let no_logs = |screen: &str| {
        for marker in [
            " INFO ",
            " WARN ",
            "ERROR",
            "sessionflow starting",
            "\"level\"",
        ] {
            assert!(
                !screen.contains(marker),
                "a log line reached the screen:\n{screen}"
            );
        }
    };
    tmux.wait_for("the dashboard", no_logs, |s| {
        s.contains("this daemon (in-process)")
    });
    let http = reqwest::Client::new();
    for (i, fixture) in FIXTURES.iter().enumerate() {
        feed(&http, &url, &format!("dtui-{i}"), fixture).await;
    }
    tmux.wait_for("four sessions summarized", no_logs, |s| {
        lifecycle_count(s, "summarized") == Some(FIXTURES.len() as u64)
    });
    assert_restored(&tmux, &command[..40]);
    let written = std::fs::read_to_string(&logs).unwrap();
    for expected in ["sessionflow starting", "sessionflow stopped"] {
        assert!(
            written.contains(expected),
            "missing {expected:?} in the log file:\n{written}"
        );
    }
    assert!(
        reqwest::get(format!("{url}/healthz")).await.is_err(),
        "quitting the monitor stopped the daemon"
    );
    drop_database(&database).await;
}

#[test]
fn the_monitors_refuse_without_a_terminal() {
    for args in [&["daemon", "--tui"][..], &["tui", "--api-key", KEY]] {
        let out = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
            .args(args)
            .env("SESSIONFLOW_API_KEY", KEY)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("needs a terminal (stdin and stdout must be a TTY)"),
            "{args:?}: {err}"
        );
    }
}
