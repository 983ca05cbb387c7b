//! Drawing: a health line and the view tabs on top; the dashboard (lifecycle counts as bars, the
//! queue-depth sparkline, the stages and workers tables, the latest failure) or one of the other
//! views; the help overlay; and a plain message when the terminal is too small.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Bar, BarChart, BarGroup, Block, Cell, Clear, Paragraph, Row, Sparkline, Table, Wrap,
};

use crate::app::{App, View};
use crate::keys::KEYS;
use crate::snapshot::LIFECYCLES;

/// Smallest terminal the dashboard fits in.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "sessionflow needs a terminal of at least {MIN_WIDTH}x{MIN_HEIGHT} (this one is {}x{}).",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let [top, tabs, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(10),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_health(frame, app, top);
    draw_tabs(frame, app, tabs);
    match app.view {
        View::Dashboard => draw_dashboard(frame, app, body),
        View::Sessions => draw_sessions(frame, app, body),
        View::Failures => draw_failures(frame, app, body),
        View::Workers => draw_worker_details(frame, app, body),
        View::Processors => frame.render_widget(
            Paragraph::new("No processors are registered yet.")
                .block(Block::bordered().title(" processors ")),
            body,
        ),
    }
    let paused = if app.paused { "  [paused]" } else { "" };
    frame.render_widget(
        Paragraph::new(format!(
            "{}  ·  ? help  q quit  p pause{paused}",
            app.server
        ))
        .style(Style::default().fg(Color::DarkGray)),
        footer,
    );
    if app.show_help {
        draw_help(frame, area);
    }
}

fn draw_tabs(frame: &mut Frame, app: &App, area: Rect) {
    let spans: Vec<Span> = View::ALL
        .iter()
        .enumerate()
        .map(|(i, view)| {
            let text = format!(" {} {} ", i + 1, view.title());
            if *view == app.view {
                Span::styled(text, Style::default().add_modifier(Modifier::REVERSED))
            } else {
                Span::raw(text)
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_dashboard(frame: &mut Frame, app: &App, area: Rect) {
    let [middle, stages, bottom] = Layout::vertical([
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Min(3),
    ])
    .areas(area);
    let [bars, spark] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(middle);
    draw_lifecycles(frame, app, bars);
    draw_queue(frame, app, spark);
    draw_stages(frame, app, stages);
    let [workers, failure] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(bottom);
    draw_workers(frame, app, workers);
    draw_failure(frame, app, failure);
}

fn draw_sessions(frame: &mut Frame, app: &App, area: Rect) {
    let header = Row::new([
        "session",
        "lifecycle",
        "parse",
        "msgs",
        "out tokens",
        "cost $",
        "prompt",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows: Vec<Row> = app
        .sessions
        .iter()
        .skip(app.scroll)
        .map(|s| {
            let prompt: String = s
                .initial_prompt
                .as_deref()
                .unwrap_or("")
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(200)
                .collect();
            Row::new(vec![
                s.id.clone(),
                s.lifecycle.clone(),
                s.parse_status.clone(),
                s.total_messages.to_string(),
                s.tokens_out.to_string(),
                format!("{:.2}", s.cost_estimate_usd),
                prompt,
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(14),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Fill(1),
    ];
    let title = format!(" sessions: {} newest ", app.sessions.len());
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::bordered().title(title));
    frame.render_widget(table, area);
}

fn draw_failures(frame: &mut Frame, app: &App, area: Rect) {
    let failures = app.monitor.iter().flat_map(|m| &m.recent_failures);
    let mut lines: Vec<Line> = Vec::new();
    for f in failures.skip(app.scroll) {
        lines.push(Line::from(Span::styled(
            format!("{} · {} · {}", f.session_id, f.stage, f.at),
            Style::default().add_modifier(Modifier::BOLD),
        )));
        lines.push(Line::from(format!("  {}", f.error)));
        lines.push(Line::from(""));
    }
    if lines.is_empty() {
        lines.push(Line::from("No failed sessions."));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" failures ")),
        area,
    );
}

fn draw_worker_details(frame: &mut Frame, app: &App, area: Rect) {
    let header = Row::new([
        "worker",
        "host",
        "mode",
        "version",
        "last heartbeat",
        "queue",
        "running",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows: Vec<Row> = app
        .monitor
        .iter()
        .flat_map(|m| &m.workers)
        .skip(app.scroll)
        .map(|w| {
            Row::new(vec![
                w.id.clone(),
                w.host.clone().unwrap_or_default(),
                w.mode.clone(),
                w.version.clone().unwrap_or_default(),
                w.last_heartbeat.clone(),
                w.queue_depth.to_string(),
                w.in_flight.to_string(),
            ])
        })
        .collect();
    let widths = [
        Constraint::Fill(1),
        Constraint::Length(12),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(33),
        Constraint::Length(6),
        Constraint::Length(8),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::bordered().title(" workers alive (heartbeat in the last 30 s) "));
    frame.render_widget(table, area);
}

fn draw_health(frame: &mut Frame, app: &App, area: Rect) {
    let line = match (&app.problem, &app.health) {
        (Some(problem), _) => Line::from(vec![
            Span::styled(
                " UNREACHABLE ",
                Style::default().bg(Color::Red).fg(Color::White),
            ),
            Span::raw(format!(" {problem} — retrying")),
        ]),
        (None, None) => Line::from(" waiting for the first snapshot…"),
        (None, Some(h)) if h.is_ok() => {
            let eps = app.monitor.as_ref().map_or(0.0, |m| m.events_per_second);
            Line::from(vec![
                Span::styled(
                    " HEALTHY ",
                    Style::default().bg(Color::Green).fg(Color::Black),
                ),
                Span::raw(format!(" {eps:.1} events/s")),
            ])
        }
        (None, Some(h)) => Line::from(vec![
            Span::styled(
                " DEGRADED ",
                Style::default().bg(Color::Yellow).fg(Color::Black),
            ),
            Span::raw(format!(" {}", h.reasons.join("; "))),
        ]),
    };
    frame.render_widget(Paragraph::new(line).wrap(Wrap { trim: true }), area);
}

fn draw_lifecycles(frame: &mut Frame, app: &App, area: Rect) {
    let counts = app.monitor.as_ref().map(|m| &m.sessions.by_lifecycle);
    let bars: Vec<Bar> = LIFECYCLES
        .iter()
        .map(|name| {
            let n = counts.and_then(|c| c.get(*name)).copied().unwrap_or(0);
            Bar::default()
                .value(n)
                .label(Line::from(&name[..name.len().min(6)]))
                .text_value(n.to_string())
        })
        .collect();
    let chart = BarChart::default()
        .block(Block::bordered().title(" sessions by lifecycle "))
        .bar_width(6)
        .bar_gap(1)
        .data(BarGroup::default().bars(&bars));
    frame.render_widget(chart, area);
}

fn draw_queue(frame: &mut Frame, app: &App, area: Rect) {
    let depth = app.monitor.as_ref().map_or(0, |m| m.queue.depth);
    let dropped = app.monitor.as_ref().map_or(0.0, |m| m.queue.dropped);
    let data: Vec<u64> = app.depth_history.iter().copied().collect();
    let width = area.width.saturating_sub(2) as usize;
    let shown = &data[data.len().saturating_sub(width)..];
    let spark = Sparkline::default()
        .block(Block::bordered().title(format!(" queue {depth} · dropped {dropped} ")))
        .data(shown)
        .style(Style::default().fg(Color::Cyan));
    frame.render_widget(spark, area);
}

fn draw_stages(frame: &mut Frame, app: &App, area: Rect) {
    let header = Row::new([
        "stage",
        "in flight",
        "done",
        "failed",
        "per s",
        "p50 ms",
        "p95 ms",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows: Vec<Row> = app
        .monitor
        .iter()
        .flat_map(|m| &m.stages)
        .map(|s| {
            let failed = Cell::from(format!("{}", s.failed)).style(if s.failed > 0.0 {
                Style::default().fg(Color::Red)
            } else {
                Style::default()
            });
            Row::new(vec![
                Cell::from(s.name.clone()),
                Cell::from(format!("{}", s.in_flight)),
                Cell::from(format!("{}", s.done)),
                failed,
                Cell::from(format!("{:.1}", s.throughput_per_s)),
                Cell::from(format!("{:.1}", s.p50_latency_ms)),
                Cell::from(format!("{:.1}", s.p95_latency_ms)),
            ])
        })
        .collect();
    let widths = [Constraint::Length(10); 7];
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::bordered().title(" stages "));
    frame.render_widget(table, area);
}

fn draw_workers(frame: &mut Frame, app: &App, area: Rect) {
    let header = Row::new(["worker", "mode", "queue", "running"])
        .style(Style::default().add_modifier(Modifier::BOLD));
    let rows: Vec<Row> = app
        .monitor
        .iter()
        .flat_map(|m| &m.workers)
        .map(|w| {
            Row::new(vec![
                w.id.clone(),
                w.mode.clone(),
                w.queue_depth.to_string(),
                w.in_flight.to_string(),
            ])
        })
        .collect();
    let empty = rows.is_empty();
    let table = Table::new(
        rows,
        [
            Constraint::Fill(1),
            Constraint::Length(7),
            Constraint::Length(6),
            Constraint::Length(8),
        ],
    )
    .header(header)
    .block(Block::bordered().title(if empty {
        " workers: none alive "
    } else {
        " workers "
    }));
    frame.render_widget(table, area);
}

fn draw_failure(frame: &mut Frame, app: &App, area: Rect) {
    let text = match app.monitor.as_ref().and_then(|m| m.recent_failures.first()) {
        Some(f) => format!("{} in {}: {}", f.session_id, f.stage, f.error),
        None => "none".to_owned(),
    };
    let paragraph = Paragraph::new(text)
        .wrap(Wrap { trim: true })
        .block(Block::bordered().title(" latest failure "));
    frame.render_widget(paragraph, area);
}

fn draw_help(frame: &mut Frame, area: Rect) {
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(_, label, _, what)| Line::from(format!("  {label:<5} {what}")))
        .collect();
    let height = lines.len() as u16 + 2;
    let popup = Rect {
        x: area.x + area.width / 4,
        y: area.y + area.height / 3,
        width: area.width / 2,
        height,
    };
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys ")),
        popup,
    );
}
