//! The monitor's screens drawn on ratatui's TestBackend with fixed data, compared with stored
//! snapshots (insta), and its keys doing what their help line says.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use sessionflow_tui::app::View;
use sessionflow_tui::app::{App, Update};
use sessionflow_tui::keys::{self, Action, KEYS};
use sessionflow_tui::snapshot::{Health, Monitor, SessionRow};
use sessionflow_tui::view;

fn monitor() -> Monitor {
    serde_json::from_value(serde_json::json!({
        "sessions": {"by_lifecycle": {"detected": 3, "ended": 2, "parsed": 1, "summarized": 40, "failed": 2}},
        "queue": {"depth": 2, "dropped": 0.0},
        "stages": [
            {"name": "fetch", "in_flight": 1.0, "done": 44.0, "failed": 0.0, "throughput_per_s": 2.0, "p50_latency_ms": 1.0, "p95_latency_ms": 2.5},
            {"name": "download", "in_flight": 0.0, "done": 43.0, "failed": 2.0, "throughput_per_s": 2.0, "p50_latency_ms": 0.5, "p95_latency_ms": 1.0},
            {"name": "parse", "in_flight": 1.0, "done": 41.0, "failed": 0.0, "throughput_per_s": 1.8, "p50_latency_ms": 2.5, "p95_latency_ms": 10.0},
            {"name": "persist", "in_flight": 0.0, "done": 41.0, "failed": 0.0, "throughput_per_s": 1.8, "p50_latency_ms": 10.0, "p95_latency_ms": 50.0},
            {"name": "summarize", "in_flight": 0.0, "done": 41.0, "failed": 0.0, "throughput_per_s": 1.8, "p50_latency_ms": 1.0, "p95_latency_ms": 2.5},
            {"name": "backup", "in_flight": 0.0, "done": 41.0, "failed": 0.0, "throughput_per_s": 1.8, "p50_latency_ms": 1.0, "p95_latency_ms": 2.5}
        ],
        "workers": [{"id": "laptop-4242", "mode": "daemon", "queue_depth": 2, "in_flight": 2.0, "last_heartbeat": "2026-11-23T10:00:00Z"}],
        "recent_failures": [{"session_id": "s-7", "stage": "download", "error": "S3 download failed: blob transcripts/w1/s-7/raw.jsonl not found; the upload never finished, or the object was removed from the bucket by a lifecycle rule", "at": "2026-11-23T09:59:00Z"}],
        "events_per_second": 3.5
    }))
    .unwrap()
}

fn sessions() -> Vec<SessionRow> {
    (0..30)
        .map(|i| SessionRow {
            id: format!("s-{i:03}"),
            lifecycle: if i % 7 == 0 { "failed" } else { "summarized" }.into(),
            parse_status: if i % 7 == 0 { "failed" } else { "completed" }.into(),
            total_messages: 10 + i,
            tokens_out: 1000 * i,
            cost_estimate_usd: i as f64 * 0.25,
            initial_prompt: Some(format!("fix the flaky test number {i}\nin the parser")),
        })
        .collect()
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
        app.apply(Update::Snapshot(Box::new(m), healthy(), sessions()));
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
    let app = app_with(Some(Update::Snapshot(Box::new(m), health, vec![])));
    insta::assert_snapshot!(render(&app, 100, 32));
}

#[test]
fn empty_before_the_first_snapshot() {
    insta::assert_snapshot!(render(&app_with(None), 80, 24));
}

#[test]
fn server_unreachable_keeps_the_last_data_and_says_so() {
    let mut app = app_with(Some(Update::Snapshot(
        Box::new(monitor()),
        healthy(),
        sessions(),
    )));
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
    let mut app = app_with(Some(Update::Snapshot(
        Box::new(monitor()),
        healthy(),
        sessions(),
    )));
    app.act(Action::ToggleHelp);
    let screen = render(&app, 100, 32);
    for (_, label, _, what) in KEYS {
        assert!(
            screen.contains(&format!("{label:<5} {what}")),
            "{label}: {screen}"
        );
    }
    insta::assert_snapshot!(screen);
}

fn press(app: &mut App, code: KeyCode, modifiers: KeyModifiers) {
    if let Some(action) = keys::action(KeyEvent::new(code, modifiers)) {
        app.act(action);
    }
}

#[test]
fn every_key_does_what_its_help_says() {
    let mut app = app_with(None);
    press(&mut app, KeyCode::Char('?'), KeyModifiers::NONE);
    assert!(app.show_help, "? shows the help");
    press(&mut app, KeyCode::Char('q'), KeyModifiers::NONE);
    assert!(!app.show_help && !app.quit, "q closes the help first");
    press(&mut app, KeyCode::Char('p'), KeyModifiers::NONE);
    assert!(app.paused, "p pauses");
    app.apply(Update::Snapshot(Box::new(monitor()), healthy(), sessions()));
    assert!(app.monitor.is_none(), "a paused monitor does not refresh");
    press(&mut app, KeyCode::Char('p'), KeyModifiers::NONE);
    assert!(!app.paused, "p resumes");
    press(&mut app, KeyCode::Char('x'), KeyModifiers::NONE);
    assert!(!app.quit, "unbound keys do nothing");
    press(&mut app, KeyCode::Esc, KeyModifiers::NONE);
    assert!(app.quit, "Esc quits");
    let mut app = app_with(None);
    press(&mut app, KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(app.quit, "Ctrl-C quits");
}

#[test]
fn the_other_views() {
    let mut app = app_with(Some(Update::Snapshot(
        Box::new(monitor()),
        healthy(),
        sessions(),
    )));
    for view in [
        View::Sessions,
        View::Failures,
        View::Workers,
        View::Processors,
    ] {
        app.act(Action::Show(view));
        insta::assert_snapshot!(view.title(), render(&app, 100, 26));
    }
}

#[test]
fn tab_cycles_the_views_and_scrolling_moves_the_list() {
    let mut app = app_with(Some(Update::Snapshot(
        Box::new(monitor()),
        healthy(),
        sessions(),
    )));
    let mut seen = vec![app.view];
    for _ in 0..5 {
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
            View::Dashboard
        ]
    );
    press(&mut app, KeyCode::Char('2'), KeyModifiers::NONE);
    assert_eq!(app.view, View::Sessions, "2 shows the sessions");
    assert!(render(&app, 100, 26).contains("s-000"));
    for _ in 0..3 {
        press(&mut app, KeyCode::Down, KeyModifiers::NONE);
    }
    press(&mut app, KeyCode::Char('j'), KeyModifiers::NONE);
    press(&mut app, KeyCode::Char('k'), KeyModifiers::NONE);
    assert_eq!(app.scroll, 3);
    let screen = render(&app, 100, 26);
    assert!(
        !screen.contains("s-002") && screen.contains("s-003"),
        "{screen}"
    );
    press(&mut app, KeyCode::Up, KeyModifiers::NONE);
    assert_eq!(app.scroll, 2);
    press(&mut app, KeyCode::Char('1'), KeyModifiers::NONE);
    assert_eq!(
        (app.view, app.scroll),
        (View::Dashboard, 0),
        "a new view starts at the top"
    );
}
