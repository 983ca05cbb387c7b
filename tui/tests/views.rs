//! The monitor's screens drawn on ratatui's TestBackend with fixed data, compared with stored
//! snapshots (insta), and its keys doing what their help line says.

use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use sessionflow_protocol::reports::UsageReport;
use sessionflow_protocol::search::{SearchHit, SearchPage};
use sessionflow_tui::app::{
    App, Command, ListRequest, Prompt, SessionWindow, Sort, Update, Usage, View, WINDOW,
};
use sessionflow_tui::keys::{Action, INPUT_KEYS, KEYS};
use sessionflow_tui::snapshot::{
    Block, Failure, Health, Message, Monitor, ProcessorRow, QueueSummary, Session, SessionCounts,
    SessionDetail, SessionRow, StageSummary, WorkerRow,
};
use sessionflow_tui::view;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn stage(name: &str, counts: [u64; 3], per_s: f64, p50: f64, p95: f64) -> StageSummary {
    StageSummary {
        name: name.into(),
        in_flight: counts[0],
        done: counts[1],
        failed: counts[2],
        throughput_per_s: per_s,
        p50_latency_ms: p50,
        p95_latency_ms: p95,
    }
}

fn monitor() -> Monitor {
    let by_lifecycle = [
        ("detected", 3),
        ("ended", 2),
        ("parsed", 1),
        ("summarized", 40),
        ("failed", 2),
    ];
    Monitor {
        sessions: SessionCounts {
            by_lifecycle: by_lifecycle
                .into_iter()
                .map(|(k, n)| (k.to_owned(), n))
                .collect(),
            redactions: [("aws_access_key".to_owned(), 2), ("jwt".to_owned(), 1)].into(),
            ..SessionCounts::default()
        },
        queue: QueueSummary {
            depth: 2,
            ..QueueSummary::default()
        },
        stages: vec![
            stage("fetch", [1, 44, 0], 2.0, 1.0, 2.5),
            stage("download", [0, 43, 2], 2.0, 0.5, 1.0),
            stage("parse", [1, 41, 0], 1.8, 2.5, 10.0),
            stage("persist", [0, 41, 0], 1.8, 10.0, 50.0),
            stage("summarize", [0, 41, 0], 1.8, 1.0, 2.5),
            stage("backup", [0, 41, 0], 1.8, 1.0, 2.5),
        ],
        workers: vec![WorkerRow {
            id: "laptop-4242".into(),
            mode: "daemon".into(),
            queue_depth: 2,
            in_flight: 2,
            last_heartbeat: at("2026-11-23T10:00:00Z"),
            ..WorkerRow::default()
        }],
        recent_failures: vec![Failure {
            session_id: "s-7".into(),
            stage: "download".into(),
            error: "S3 download failed: blob transcripts/w1/s-7/raw.jsonl not found; the upload \
                    never finished, or the object was removed from the bucket by a lifecycle rule"
                .into(),
            at: at("2026-11-23T09:59:00Z"),
        }],
        events_per_second: 3.5,
        processors: vec![
            ProcessorRow {
                name: "usage".into(),
                last_run: Some(at("2026-11-23T09:58:00Z")),
                next_run: Some(at("2026-11-23T10:03:00Z")),
                running: false,
                last_result: Some(serde_json::json!(
                    {"scanned": 12, "processed": 11, "skipped": 0, "errors": 1, "items": 840}
                )),
                processed: 40,
                failing: 1,
                parked: 0,
            },
            ProcessorRow {
                name: "tools".into(),
                last_run: Some(at("2026-11-23T09:59:30Z")),
                next_run: None,
                running: true,
                last_result: Some(serde_json::json!({"error": "database: connection refused"})),
                processed: 38,
                failing: 0,
                parked: 2,
            },
        ],
        ..Monitor::default()
    }
}

/// Rows `from..to` of a made-up list.
fn rows(from: u64, to: u64) -> Vec<SessionRow> {
    (from..to)
        .map(|i| SessionRow {
            id: format!("s-{i:03}"),
            lifecycle: if i % 7 == 0 { "failed" } else { "summarized" }.into(),
            parse_status: if i % 7 == 0 { "failed" } else { "completed" }.into(),
            total_messages: 10 + i,
            tokens_out: 1000 * i,
            cost_estimate_usd: i as f64 * 0.25,
            initial_prompt: Some(format!("fix the flaky test number {i}\nin the parser")),
            ..SessionRow::default()
        })
        .collect()
}

/// The window `app` asks for, answered from a list of `total` made-up sessions.
fn answer(app: &mut App, total: u64) {
    let request = app.list.clone();
    let from = request.offset as u64;
    let to = (from + WINDOW as u64).min(total);
    app.apply(Update::Sessions(SessionWindow {
        request,
        total: total as usize,
        rows: rows(from, to),
    }));
}

fn healthy() -> Health {
    Health {
        status: "ok".into(),
        reasons: vec![],
    }
}

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| view::draw(frame, app)).unwrap();
    terminal.backend().to_string()
}

fn app_with(update: Option<Update>) -> App {
    let mut app = App::new("http://127.0.0.1:8080");
    if let Some(update) = update {
        app.apply(update);
    }
    app
}

#[test]
fn dashboard_healthy() {
    let mut app = app_with(None);
    for depth in [0, 1, 3, 5, 2] {
        let mut m = monitor();
        m.queue.depth = depth;
        app.apply(Update::Snapshot(Box::new(m), healthy()));
    }
    insta::assert_snapshot!(render(&app, 100, 32));
}

#[test]
fn dashboard_degraded_with_reasons() {
    let health = Health {
        status: "degraded".into(),
        reasons: vec!["no worker has sent a heartbeat for 30 s while 2 sessions wait".into()],
    };
    let mut m = monitor();
    m.workers.clear();
    m.health = serde_json::from_value(serde_json::json!({
        "status": "degraded", "reasons": [],
        "figures": {"live_workers": 0, "events_waiting": 3, "oldest_event_seconds": 41.0,
                    "stream_lag": 3, "sessions_stranded": 2, "sessions_waiting": 2,
                    "oldest_waiting_seconds": 41.0,
                    "stream_pending": [{"consumer": "laptop-4242", "pending": 6, "alive": false}],
                    "stranded_by": [{"worker": "laptop-4242", "sessions": 2, "silent_seconds": 35.0}]}
    }))
    .unwrap();
    let app = app_with(Some(Update::Snapshot(Box::new(m), health)));
    let screen = render(&app, 100, 32);
    assert!(
        screen.contains(
            "waiting: 3 events, 2 sessions · stranded: 2 sessions, 6 entries · oldest 41 s"
        ),
        "{screen}"
    );
    insta::assert_snapshot!(screen);
    // The smallest terminal still shows every part of the dashboard.
    insta::assert_snapshot!("dashboard_degraded_80x24", render(&app, 80, 24));
}

#[test]
fn empty_before_the_first_snapshot() {
    insta::assert_snapshot!(render(&app_with(None), 80, 24));
}

#[test]
fn server_unreachable_keeps_the_last_data_and_says_so() {
    let mut app = app_with(Some(Update::Snapshot(Box::new(monitor()), healthy())));
    app.apply(Update::Unreachable(
        "http://127.0.0.1:8080 refused the API key (401)".into(),
    ));
    let screen = render(&app, 100, 32);
    assert!(screen.contains("UNREACHABLE"), "{screen}");
    assert!(
        screen.contains("refused the API key (401) — retrying"),
        "{screen}"
    );
    assert!(
        screen.contains("laptop-4242"),
        "the last data stays on screen"
    );
}

#[test]
fn too_small_a_terminal_asks_for_room() {
    let screen = render(&app_with(None), 60, 10);
    let text: Vec<&str> = screen
        .lines()
        .map(|l| l.trim_matches(|c| c == '"' || c == ' '))
        .collect();
    assert!(
        text.join(" ")
            .contains("needs a terminal of at least 80x24 (this one is 60x10)"),
        "{screen}"
    );
}

#[test]
fn help_lists_every_key_from_the_table() {
    let mut app = app_with(Some(Update::Snapshot(Box::new(monitor()), healthy())));
    app.act(Action::ToggleHelp);
    let screen = render(&app, 100, 32);
    for binding in &KEYS {
        let line = format!("{:<6} {}", binding.label, binding.what);
        assert!(screen.contains(&line), "{line}: {screen}");
    }
    for (_, label, _, what) in INPUT_KEYS {
        let line = format!("{label:<6} {what}");
        assert!(screen.contains(&line), "{line}: {screen}");
    }
    insta::assert_snapshot!(screen);
    let small = render(&app, 80, 24);
    assert!(
        small.contains(&format!(
            "{:<6} {}",
            KEYS[KEYS.len() - 1].label,
            KEYS[KEYS.len() - 1].what
        )),
        "the help fits the smallest terminal: {small}"
    );
}

fn press(app: &mut App, code: KeyCode, modifiers: KeyModifiers) {
    app.key(KeyEvent::new(code, modifiers));
}

fn key_of(code: KeyCode) -> KeyModifiers {
    match code {
        KeyCode::Char(c) if c.is_ascii_uppercase() => KeyModifiers::SHIFT,
        _ => KeyModifiers::NONE,
    }
}

/// A monitor showing the sessions view over 1 000 sessions, the 10th selected.
fn browsing() -> App {
    let mut app = app_with(Some(Update::Snapshot(Box::new(monitor()), healthy())));
    app.act(Action::Show(View::Sessions));
    answer(&mut app, 1000);
    for _ in 0..10 {
        app.act(Action::Down);
    }
    app
}

/// Every binding, pressed with each of its keys, does what its help line says. The match has
/// no catch-all: a new action cannot join the table without a check here.
#[test]
fn every_binding_does_what_its_help_says() {
    for binding in &KEYS {
        for key in binding.keys {
            let mut app = browsing();
            let modifiers = if key.ctrl {
                KeyModifiers::CONTROL
            } else {
                key_of(key.code)
            };
            let before_list = app.list.clone();
            press(&mut app, key.code, modifiers);
            let what = format!("{} ({:?})", binding.label, key.code);
            match binding.action {
                Action::Quit => assert!(app.quit, "{what}"),
                Action::Back => {
                    // Nothing open: Esc neither quits nor changes anything.
                    assert!(!app.quit && app.open.is_none(), "{what}");
                }
                Action::ToggleHelp => assert!(app.show_help, "{what}"),
                Action::TogglePause => assert!(app.paused && app.wanted().paused, "{what}"),
                Action::NextView => assert_eq!(app.view, View::Failures, "{what}"),
                Action::Show(view) => assert_eq!(app.view, view, "{what}"),
                Action::Up => assert_eq!(app.selected, 9, "{what}"),
                Action::Down => assert_eq!(app.selected, 11, "{what}"),
                Action::PageUp => assert_eq!(app.selected, 0, "{what}"),
                Action::PageDown => assert_eq!(app.selected, 10 + app.page_rows, "{what}"),
                Action::Top => assert_eq!(app.selected, 0, "{what}"),
                Action::Bottom => assert_eq!(app.selected, 999, "{what}"),
                Action::Open => {
                    assert_eq!(app.outbox, [Command::Detail("s-010".into())], "{what}");
                    assert_eq!(app.open.as_ref().map(|o| o.id.as_str()), Some("s-010"));
                }
                Action::Reparse => {
                    // s-010 is summarized: not offered, and the screen says why.
                    assert!(app.prompt.is_none(), "{what}");
                    assert!(
                        app.notice
                            .as_deref()
                            .unwrap()
                            .contains("s-010 is summarized"),
                        "{what}"
                    );
                }
                Action::Filter => {
                    assert!(matches!(app.prompt, Some(Prompt::Filter { .. })), "{what}")
                }
                Action::NextSort => {
                    assert_eq!((app.list.sort, app.selected), (Sort::Cost, 0), "{what}")
                }
                Action::ReverseOrder => assert_eq!(
                    (app.list.ascending, before_list.ascending),
                    (true, false),
                    "{what}"
                ),
            }
        }
    }
}

#[test]
fn help_closes_before_quitting_and_pausing_holds_the_snapshot() {
    let mut app = app_with(None);
    press(&mut app, KeyCode::Char('?'), KeyModifiers::NONE);
    press(&mut app, KeyCode::Char('q'), KeyModifiers::NONE);
    assert!(!app.show_help && !app.quit, "q closes the help first");
    press(&mut app, KeyCode::Char('?'), KeyModifiers::NONE);
    press(&mut app, KeyCode::Esc, KeyModifiers::NONE);
    assert!(!app.show_help && !app.quit, "so does Esc");
    press(&mut app, KeyCode::Char('p'), KeyModifiers::NONE);
    app.apply(Update::Snapshot(Box::new(monitor()), healthy()));
    assert!(app.monitor.is_none(), "a paused monitor does not refresh");
    press(&mut app, KeyCode::Char('p'), KeyModifiers::NONE);
    assert!(!app.paused, "p resumes");
    press(&mut app, KeyCode::Char('x'), KeyModifiers::NONE);
    assert!(!app.quit, "unbound keys do nothing");
}

#[test]
fn the_other_views() {
    let mut app = app_with(Some(Update::Snapshot(Box::new(monitor()), healthy())));
    for view in [
        View::Sessions,
        View::Failures,
        View::Workers,
        View::Processors,
    ] {
        app.act(Action::Show(view));
        if view == View::Sessions {
            answer(&mut app, 30);
        }
        insta::assert_snapshot!(view.title(), render(&app, 100, 26));
    }
}

/// Two days of usage: one with two models (one priced by its family's newest rates, one
/// unpriced), one with one; the later day in the current month.
fn usage() -> Usage {
    let report: UsageReport = serde_json::from_value(serde_json::json!({
        "rows": [
            {"date": "2026-11-30", "input_tokens": 1200, "output_tokens": 34000,
             "cache_creation_input_tokens": 50000, "cache_read_input_tokens": 1250000,
             "cost_usd": 3.5, "models": [
                {"model": "claude-opus-4-8", "input_tokens": 1200, "output_tokens": 34000,
                 "cache_creation_input_tokens": 50000, "cache_read_input_tokens": 1250000,
                 "cost_usd": 3.5}]},
            {"date": "2026-12-01", "input_tokens": 300, "output_tokens": 9000,
             "cache_creation_input_tokens": 20000, "cache_read_input_tokens": 400000,
             "cost_usd": 1.25, "models": [
                {"model": "claude-opus-9-1", "input_tokens": 100, "output_tokens": 4000,
                 "cache_creation_input_tokens": 10000, "cache_read_input_tokens": 200000,
                 "cost_usd": 1.25, "cost_estimated": true},
                {"model": "house-model", "input_tokens": 200, "output_tokens": 5000,
                 "cache_creation_input_tokens": 10000, "cache_read_input_tokens": 200000,
                 "cost_usd": null}]}
        ],
        "totals": {"input_tokens": 1500, "output_tokens": 43000,
                   "cache_creation_input_tokens": 70000, "cache_read_input_tokens": 1650000,
                   "cost_usd": 4.75}
    }))
    .unwrap();
    Usage {
        report,
        this_month: "2026-12".into(),
    }
}

#[test]
fn the_usage_view_shows_days_models_and_this_month() {
    let mut app = app_with(Some(Update::Snapshot(Box::new(monitor()), healthy())));
    press(&mut app, KeyCode::Char('6'), KeyModifiers::NONE);
    assert_eq!(app.view, View::Usage);
    assert!(app.wanted().usage, "the usage view asks for the report");
    insta::assert_snapshot!("usage_waiting", render(&app, 100, 26));
    app.apply(Update::Usage(Box::new(usage())));
    let screen = render(&app, 100, 26);
    assert!(
        screen.contains("2026-12 so far: ≈$1.25 · 429,300 tokens"),
        "{screen}"
    );
    insta::assert_snapshot!("usage", screen);
}

#[test]
fn tab_cycles_the_views_and_only_the_sessions_view_asks_for_rows() {
    let mut app = app_with(Some(Update::Snapshot(Box::new(monitor()), healthy())));
    let mut seen = vec![app.view];
    for _ in 0..7 {
        assert_eq!(app.wanted().list.is_some(), app.view == View::Sessions);
        assert_eq!(app.wanted().usage, app.view == View::Usage);
        assert_eq!(app.wanted().search, None, "nothing typed");
        press(&mut app, KeyCode::Tab, KeyModifiers::NONE);
        seen.push(app.view);
    }
    assert_eq!(
        seen,
        [
            View::Dashboard,
            View::Sessions,
            View::Failures,
            View::Workers,
            View::Processors,
            View::Usage,
            View::Search,
            View::Dashboard
        ]
    );
    press(&mut app, KeyCode::Char('3'), KeyModifiers::NONE);
    press(&mut app, KeyCode::Down, KeyModifiers::NONE);
    assert_eq!(app.scroll, 1, "the failures view scrolls");
    press(&mut app, KeyCode::Char('1'), KeyModifiers::NONE);
    assert_eq!(app.scroll, 0, "a new view starts at the top");
}

#[test]
fn scrolling_tens_of_thousands_asks_for_windows_around_the_selection() {
    let mut app = browsing();
    answer(&mut app, 50_000);
    assert_eq!(app.list.offset, 0, "near the top, the first window serves");
    let screen = render(&app, 100, 30);
    assert!(screen.contains("11 of 50000"), "{screen}");
    press(&mut app, KeyCode::End, KeyModifiers::NONE);
    assert_eq!(app.selected, 49_999);
    assert_eq!(
        app.list.offset,
        49_999 - WINDOW / 2,
        "a window around the end"
    );
    let screen = render(&app, 100, 30);
    assert!(
        screen.contains("50000 of 50000") && screen.contains("…"),
        "rows not yet fetched show as … : {screen}"
    );
    answer(&mut app, 50_000);
    let screen = render(&app, 100, 30);
    assert!(screen.contains("s-49999"), "{screen}");
    // Moving within the window asks for nothing new; nearing its edge re-centres it.
    let held = app.list.offset;
    for _ in 0..10 {
        press(&mut app, KeyCode::Up, KeyModifiers::NONE);
    }
    assert_eq!(app.list.offset, held);
    for _ in 0..100 {
        press(&mut app, KeyCode::Up, KeyModifiers::NONE);
    }
    assert_eq!(app.selected, 49_889);
    assert_eq!(app.list.offset, 49_889 - WINDOW / 2);
    // An answer to an older request arriving late is ignored.
    let stale = SessionWindow {
        request: ListRequest {
            offset: 0,
            ..app.list.clone()
        },
        total: 50_000,
        rows: rows(0, 200),
    };
    let before = app.window.clone();
    app.apply(Update::Sessions(stale));
    assert_eq!(app.window, before);
}

#[test]
fn typing_a_filter_narrows_the_list_and_esc_brings_the_old_one_back() {
    let mut app = browsing();
    press(&mut app, KeyCode::Char('/'), KeyModifiers::NONE);
    for c in "flaky".chars() {
        press(&mut app, KeyCode::Char(c), KeyModifiers::NONE);
    }
    assert_eq!((app.list.filter.as_str(), app.selected), ("flaky", 0));
    assert_eq!(app.wanted().list.unwrap().filter, "flaky", "asked as typed");
    assert!(render(&app, 100, 30).contains("/flaky"));
    press(&mut app, KeyCode::Char('q'), KeyModifiers::NONE);
    assert!(!app.quit, "q is typed into the filter, not a quit");
    press(&mut app, KeyCode::Backspace, KeyModifiers::NONE);
    press(&mut app, KeyCode::Enter, KeyModifiers::NONE);
    assert_eq!((app.list.filter.as_str(), &app.prompt), ("flaky", &None));
    answer(&mut app, 12);
    let screen = render(&app, 100, 30);
    assert!(
        screen.contains("matching \"flaky\" by created ↓ · 1 of 12"),
        "{screen}"
    );
    press(&mut app, KeyCode::Char('/'), KeyModifiers::NONE);
    press(&mut app, KeyCode::Char('x'), KeyModifiers::NONE);
    press(&mut app, KeyCode::Esc, KeyModifiers::NONE);
    assert_eq!(app.list.filter, "flaky", "Esc drops what was typed");
    press(&mut app, KeyCode::Esc, KeyModifiers::NONE);
    assert_eq!(app.list.filter, "", "Esc again clears the filter");
    press(&mut app, KeyCode::Char('/'), KeyModifiers::NONE);
    press(&mut app, KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(app.quit, "Ctrl-C quits even while typing");
}

fn detail(lifecycle: &str) -> SessionDetail {
    SessionDetail {
        info: Session {
            id: "s-007".into(),
            workspace_id: "w1".into(),
            lifecycle: lifecycle.into(),
            parse_status: "failed".into(),
            parse_error: Some("Persist failed: database unavailable: connection refused".into()),
            started_at: Some(at("2026-11-23T09:00:00Z")),
            ended_at: Some(at("2026-11-23T09:30:00Z")),
            duration_ms: Some(1_800_000),
            end_reason: Some("exit".into()),
            cwd: Some("/home/dev/sessionflow".into()),
            git_branch: Some("main".into()),
            model: Some("claude-sonnet-4-5".into()),
            transcript_size: Some(48_213),
            total_messages: 17,
            tokens_out: 7000,
            cost_estimate_usd: 1.75,
            initial_prompt: Some("fix the flaky test number 7".into()),
            redactions: [("github_token".to_owned(), 1)].into(),
            ..Session::default()
        },
        first_messages: vec![
            Message {
                ordinal: 0,
                message_type: "user".into(),
                role: Some("user".into()),
                blocks: vec![Block {
                    block_type: "text".into(),
                    text: Some("fix the flaky test number 7".into()),
                    ..Block::default()
                }],
                ..Message::default()
            },
            Message {
                ordinal: 1,
                message_type: "assistant".into(),
                role: Some("assistant".into()),
                blocks: vec![
                    Block {
                        block_type: "text".into(),
                        text: Some("Let me look at the test.".into()),
                        ..Block::default()
                    },
                    Block {
                        block_type: "tool_use".into(),
                        tool_name: Some("Read".into()),
                        ..Block::default()
                    },
                ],
                ..Message::default()
            },
        ],
        from_ordinal: None,
    }
}

#[test]
fn enter_opens_a_session_and_r_reparses_it_after_a_yes() {
    let mut app = browsing();
    for _ in 0..3 {
        press(&mut app, KeyCode::Up, KeyModifiers::NONE);
    }
    press(&mut app, KeyCode::Enter, KeyModifiers::NONE);
    assert_eq!(
        app.outbox.drain(..).collect::<Vec<_>>(),
        [Command::Detail("s-007".into())]
    );
    assert!(render(&app, 100, 30).contains("loading…"));
    press(&mut app, KeyCode::Char('r'), KeyModifiers::NONE);
    assert!(
        app.prompt.is_none(),
        "nothing to confirm before the detail arrives"
    );
    app.apply(Update::Detail(Box::new(detail("failed"))));
    insta::assert_snapshot!("session_detail", render(&app, 100, 30));
    press(&mut app, KeyCode::Char('r'), KeyModifiers::NONE);
    assert_eq!(app.prompt, Some(Prompt::ConfirmReparse("s-007".into())));
    assert!(render(&app, 100, 30).contains("Reparse s-007? Its rows are replaced. y to confirm"));
    press(&mut app, KeyCode::Char('n'), KeyModifiers::NONE);
    assert!(
        app.outbox.is_empty() && app.prompt.is_none(),
        "anything but y cancels"
    );
    assert_eq!(app.notice.as_deref(), Some("reparse of s-007 cancelled"));
    press(&mut app, KeyCode::Char('r'), KeyModifiers::NONE);
    press(&mut app, KeyCode::Char('y'), KeyModifiers::NONE);
    assert_eq!(app.outbox, [Command::Reparse("s-007".into())]);
    app.apply(Update::Notice("s-007 is queued to be parsed again".into()));
    assert!(render(&app, 100, 30).contains("s-007 is queued to be parsed again"));
    press(&mut app, KeyCode::Esc, KeyModifiers::NONE);
    assert!(app.open.is_none(), "Esc closes the session");
    // A parsed row can be reparsed straight from the list too; a summarized one cannot.
    let mut app = browsing();
    app.window.as_mut().unwrap().rows[10].lifecycle = "parsed".into();
    press(&mut app, KeyCode::Char('r'), KeyModifiers::NONE);
    assert_eq!(app.prompt, Some(Prompt::ConfirmReparse("s-010".into())));
}

fn hits(query: &str) -> SearchPage {
    let hit = |session: &str, ordinal: i64, kind: &str, snippet: &str, marks: Vec<[usize; 2]>| {
        SearchHit {
            session_id: session.into(),
            workspace_id: "w1".into(),
            cwd: Some("/home/dev/sessionflow".into()),
            timestamp: Some(at("2026-11-23T09:00:00Z")),
            message_ordinal: ordinal,
            kind: kind.into(),
            role: Some("assistant".into()),
            rank: 0.5,
            snippet: snippet.into(),
            highlights: marks,
            ..SearchHit::default()
        }
    };
    assert_eq!(query, "parse_bytes");
    SearchPage {
        hits: vec![
            hit(
                "s-007",
                3,
                "text",
                "I will look at parse_bytes in src/main.rs",
                vec![[15, 20], [21, 26]],
            ),
            hit(
                "s-012",
                14,
                "tool_input",
                "{\"command\":\"cargo test parse_bytes\"}",
                vec![[23, 28], [29, 34]],
            ),
        ],
        next_cursor: None,
        // A phrase of common words looked for back to a time only.
        searched_to: Some(at("2026-10-01T08:30:00Z")),
    }
}

#[test]
fn slash_searches_every_session_as_you_type_and_enter_opens_the_hit() {
    let mut app = app_with(Some(Update::Snapshot(Box::new(monitor()), healthy())));
    press(&mut app, KeyCode::Char('/'), KeyModifiers::NONE);
    assert_eq!(app.view, View::Search);
    assert!(matches!(app.prompt, Some(Prompt::Search { .. })));
    assert_eq!(app.wanted().search, None, "nothing typed, nothing asked");
    for c in "parse_bytex".chars() {
        press(&mut app, KeyCode::Char(c), key_of(KeyCode::Char(c)));
    }
    press(&mut app, KeyCode::Backspace, KeyModifiers::NONE);
    press(&mut app, KeyCode::Char('s'), KeyModifiers::NONE);
    assert_eq!(app.wanted().search.as_deref(), Some("parse_bytes"));
    assert!(render(&app, 100, 30).contains("searching…"));
    // An answer to an older search is not shown over the newer one.
    app.apply(Update::Search("parse".into(), Box::default()));
    assert!(app.hits.is_none());
    app.apply(Update::Search(
        "parse_bytes".into(),
        Box::new(hits("parse_bytes")),
    ));
    press(&mut app, KeyCode::Enter, KeyModifiers::NONE);
    assert!(app.prompt.is_none(), "Enter keeps the search typed");
    insta::assert_snapshot!("search_hits", render(&app, 100, 30));
    press(&mut app, KeyCode::Down, KeyModifiers::NONE);
    press(&mut app, KeyCode::Enter, KeyModifiers::NONE);
    assert_eq!(app.outbox, [Command::DetailAt("s-012".into(), 14)]);
    let mut opened = detail("summarized");
    opened.info.id = "s-012".into();
    opened.from_ordinal = Some(14);
    app.apply(Update::Detail(Box::new(opened)));
    assert!(render(&app, 100, 30).contains("messages from #14 (the hit)"));
    press(&mut app, KeyCode::Esc, KeyModifiers::NONE);
    assert!(app.open.is_none());
    // Esc while typing brings the previous search back; 7 shows the view too.
    press(&mut app, KeyCode::Char('/'), KeyModifiers::NONE);
    press(&mut app, KeyCode::Char('x'), KeyModifiers::NONE);
    press(&mut app, KeyCode::Esc, KeyModifiers::NONE);
    assert_eq!(app.search, "parse_bytes");
    app.act(Action::Show(View::Dashboard));
    assert_eq!(app.wanted().search, None, "only the search view asks");
    press(&mut app, KeyCode::Char('7'), KeyModifiers::NONE);
    assert_eq!(app.view, View::Search);
}
