//! Frame time of the sessions view over a list of 50 000 sessions: drawing a 200x50 frame with
//! the selection deep in the list, and a scroll key's work (moving the selection and deciding
//! which window to ask for). Neither depends on the list's length: only a 200-row window is
//! held. The API side of scrolling (one window query) is measured by scripts/bench-monitor.sh.

use criterion::{Criterion, criterion_group, criterion_main};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use sessionflow_tui::app::{App, SessionWindow, Update, View, WINDOW};
use sessionflow_tui::keys::Action;
use sessionflow_tui::snapshot::SessionRow;
use sessionflow_tui::view;

const TOTAL: usize = 50_000;

fn window(app: &App) -> SessionWindow {
    let request = app.list.clone();
    let rows = (request.offset..(request.offset + WINDOW).min(TOTAL))
        .map(|i| SessionRow {
            id: format!("0b6f3c2e-{i:04}-4d8e-9f1a-3c5e7a9b1d2f"),
            lifecycle: "summarized".into(),
            parse_status: "completed".into(),
            total_messages: 40 + i as u64 % 300,
            tokens_out: 12_000 + i as u64,
            cost_estimate_usd: (i % 97) as f64 * 0.13,
            initial_prompt: Some(format!(
                "refactor the persist stage so that group {i} is written with one statement"
            )),
            ..SessionRow::default()
        })
        .collect();
    SessionWindow {
        request,
        total: TOTAL,
        rows,
    }
}

fn frames(c: &mut Criterion) {
    let mut app = App::new("http://127.0.0.1:8080");
    app.act(Action::Show(View::Sessions));
    let first = window(&app);
    app.apply(Update::Sessions(first));
    for _ in 0..25_000 {
        app.act(Action::Down);
    }
    let deep = window(&app);
    app.apply(Update::Sessions(deep));
    let mut terminal = Terminal::new(TestBackend::new(200, 50)).unwrap();
    c.bench_function("draw sessions view, 50 000 sessions, 200x50", |b| {
        b.iter(|| {
            terminal.draw(|frame| view::draw(frame, &app)).unwrap();
        });
    });
    c.bench_function("scroll key over 50 000 sessions", |b| {
        let mut down = true;
        b.iter(|| {
            let code = if down { KeyCode::Down } else { KeyCode::Up };
            down = !down;
            app.key(KeyEvent::new(code, KeyModifiers::NONE));
            app.wanted()
        });
    });
}

criterion_group!(benches, frames);
criterion_main!(benches);
