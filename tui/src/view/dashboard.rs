//! The dashboard: lifecycle counts as bars (with the secrets redacted), the queue-depth sparkline, the stages and workers
//! tables, and the latest failure.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Sparkline, Table, Wrap};

use crate::app::App;
use crate::snapshot::LIFECYCLES;

pub(super) fn draw_dashboard(frame: &mut Frame, app: &App, area: Rect) {
    let [waiting, middle, stages, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Min(3),
    ])
    .areas(area);
    let [bars, spark] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(middle);
    draw_waiting(frame, app, waiting);
    draw_lifecycles(frame, app, bars);
    draw_queue(frame, app, spark);
    draw_stages(frame, app, stages);
    let [workers, failure] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(bottom);
    draw_workers(frame, app, workers);
    draw_failure(frame, app, failure);
}

/// One line of what waits: events not yet handled, sessions waiting, sessions stranded with
/// silent workers and stream entries pending on silent consumers, the oldest of them; red when
/// anything is stranded.
fn draw_waiting(frame: &mut Frame, app: &App, area: Rect) {
    let Some(f) = app.monitor.as_ref().map(|m| &m.health.figures) else {
        return;
    };
    let silent: u64 = f
        .stream_pending
        .iter()
        .filter(|c| !c.alive)
        .map(|c| c.pending)
        .sum();
    let text = format!(
        " waiting: {} events, {} sessions · stranded: {} sessions, {} entries · oldest {:.0} s",
        f.events_waiting, f.sessions_waiting, f.sessions_stranded, silent, f.oldest_waiting_seconds,
    );
    let style = if f.sessions_stranded > 0 || silent > 0 {
        Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
    } else {
        Style::default().fg(Color::DarkGray)
    };
    frame.render_widget(Paragraph::new(Line::from(Span::styled(text, style))), area);
}

/// One row per lifecycle: its whole name, its count, and a bar scaled to the largest count,
/// so every state reads in full at any width the monitor draws at.
pub(super) fn draw_lifecycles(frame: &mut Frame, app: &App, area: Rect) {
    let counts = app.monitor.as_ref().map(|m| &m.sessions.by_lifecycle);
    let redacted = app.monitor.as_ref().map_or_else(
        || "none".to_owned(),
        |m| super::redactions(&m.sessions.redactions),
    );
    let count = |name: &str| counts.and_then(|c| c.get(name)).copied().unwrap_or(0);
    let most = LIFECYCLES.iter().map(|n| count(n)).max().unwrap_or(0);
    let label = LIFECYCLES.iter().map(|n| n.len()).max().unwrap_or(0);
    let room = usize::from(area.width.saturating_sub(2)).saturating_sub(label + 9);
    let lines: Vec<Line> = LIFECYCLES
        .iter()
        .map(|name| {
            let n = count(name);
            Line::from(vec![
                Span::raw(format!("{name:>label$} {n:>7} ")),
                Span::styled(bar(n, most, room), Style::default().fg(Color::Cyan)),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(" sessions by lifecycle ")
                .title_bottom(format!(" secrets redacted: {redacted} ")),
        ),
        area,
    );
}

/// `value` of `most` as a bar of up to `width` cells, in eighths of a cell.
fn bar(value: u64, most: u64, width: usize) -> String {
    const EIGHTHS: [char; 8] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];
    if most == 0 || value == 0 || width == 0 {
        return String::new();
    }
    let eighths = ((value as u128 * width as u128 * 8) / most as u128).max(1) as usize;
    let mut out = "█".repeat(eighths / 8);
    if let Some(part) = (eighths % 8).checked_sub(1) {
        out.push(EIGHTHS[part]);
    }
    out
}

pub(super) fn draw_queue(frame: &mut Frame, app: &App, area: Rect) {
    let depth = app.monitor.as_ref().map_or(0, |m| m.queue.depth);
    let dropped = app.monitor.as_ref().map_or(0, |m| m.queue.dropped);
    let data: Vec<u64> = app.depth_history.iter().copied().collect();
    let width = area.width.saturating_sub(2) as usize;
    let shown = &data[data.len().saturating_sub(width)..];
    let spark = Sparkline::default()
        .block(Block::bordered().title(format!(" queue {depth} · dropped {dropped} ")))
        .data(shown)
        .style(Style::default().fg(Color::Cyan));
    frame.render_widget(spark, area);
}

pub(super) fn draw_stages(frame: &mut Frame, app: &App, area: Rect) {
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
            let failed = Cell::from(format!("{}", s.failed)).style(if s.failed > 0 {
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

pub(super) fn draw_workers(frame: &mut Frame, app: &App, area: Rect) {
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

pub(super) fn draw_failure(frame: &mut Frame, app: &App, area: Rect) {
    let text = match app.monitor.as_ref().and_then(|m| m.recent_failures.first()) {
        Some(f) => format!("{} in {}: {}", f.session_id, f.stage, f.error),
        None => "none".to_owned(),
    };
    let paragraph = Paragraph::new(text)
        .wrap(Wrap { trim: true })
        .block(Block::bordered().title(" latest failure "));
    frame.render_widget(paragraph, area);
}
