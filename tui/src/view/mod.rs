//! Drawing: a health line and the view tabs on top; the dashboard (lifecycle counts as bars, the
//! queue-depth sparkline, the stages and workers tables, the latest failure) or one of the other
//! views (the sessions view a window of a list that may hold tens of thousands, with the open
//! session over it; the search view, whose hits open the same way); the prompt or last notice at the bottom; the help overlay; and a plain
//! message when the terminal is too small. Each view draws in its own file.

mod dashboard;
mod failures;
mod processors;
mod search;
mod sessions;
mod usage;
mod workers;

pub use sessions::session_rows;

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use crate::app::{App, Prompt, View};
use crate::keys::{INPUT_KEYS, KEYS};

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
        View::Dashboard => dashboard::draw_dashboard(frame, app, body),
        View::Sessions => sessions::draw_sessions(frame, app, body),
        View::Failures => failures::draw_failures(frame, app, body),
        View::Workers => workers::draw_worker_details(frame, app, body),
        View::Processors => processors::draw_processors(frame, app, body),
        View::Usage => usage::draw_usage(frame, app, body),
        View::Search => search::draw_search(frame, app, body),
    }
    draw_footer(frame, app, footer);
    if app.show_help {
        draw_help(frame, area);
    }
}

/// The bottom line: the prompt being answered, else the last notice, else where we look.
fn draw_footer(frame: &mut Frame, app: &App, area: Rect) {
    let line = match (&app.prompt, &app.notice) {
        (Some(Prompt::Filter { .. }), _) => Line::from(vec![
            Span::styled("/", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(app.list.filter.clone()),
            Span::styled("▏", Style::default().add_modifier(Modifier::SLOW_BLINK)),
            Span::styled(
                "   Enter keep · Esc drop",
                Style::default().fg(Color::DarkGray),
            ),
        ]),
        (Some(Prompt::Search { .. }), _) => Line::from(vec![
            Span::styled("search: ", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(app.search.clone()),
            Span::styled("▏", Style::default().add_modifier(Modifier::SLOW_BLINK)),
            Span::styled(
                "   Enter keep · Esc drop · words \"phrase\" -not or",
                Style::default().fg(Color::DarkGray),
            ),
        ]),
        (Some(Prompt::ConfirmReparse(id)), _) => Line::from(Span::styled(
            format!("Reparse {id}? Its rows are replaced. y to confirm, any other key cancels."),
            Style::default().fg(Color::Black).bg(Color::Yellow),
        )),
        (None, Some(notice)) => Line::from(notice.clone()),
        (None, None) => {
            let paused = if app.paused { "  [paused]" } else { "" };
            Line::from(Span::styled(
                format!("{}  ·  ? help  q quit  p pause{paused}", app.server),
                Style::default().fg(Color::DarkGray),
            ))
        }
    };
    frame.render_widget(Paragraph::new(line), area);
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

/// `text` on one line: control characters as spaces, at most `max` characters, `…` if cut.
/// A time of day, as the tables show it (UTC).
pub(super) fn clock(at: &Option<DateTime<Utc>>) -> String {
    at.map_or("–".to_owned(), |t| t.format("%H:%M:%S").to_string())
}

/// A date and time, as the detail view shows it (UTC).
pub(super) fn stamp(at: &Option<DateTime<Utc>>) -> String {
    at.map_or("–".to_owned(), |t| {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    })
}

pub(super) fn one_line(text: &str, max: usize) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max + 1)
        .collect();
    if line.chars().count() > max {
        line = line.chars().take(max.saturating_sub(1)).collect();
        line.push('…');
    }
    line
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

fn draw_help(frame: &mut Frame, area: Rect) {
    let entry = |label: &str, what: &str| Line::from(format!(" {label:<6} {what}"));
    let keys: Vec<Line> = KEYS.iter().map(|b| entry(b.label, b.what)).collect();
    let half = keys.len().div_ceil(2);
    let left = keys[..half].to_vec();
    let mut right = keys[half..].to_vec();
    right.push(Line::from(""));
    right.push(Line::from(Span::styled(
        " typing a filter or answering:",
        Style::default().add_modifier(Modifier::BOLD),
    )));
    right.extend(
        INPUT_KEYS
            .iter()
            .map(|(_, label, _, what)| entry(label, what)),
    );
    let height = (left.len().max(right.len()) as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + 1,
        y: area.y + area.height.saturating_sub(height) / 2,
        width: area.width.saturating_sub(2),
        height,
    };
    frame.render_widget(Clear, popup);
    let block = Block::bordered().title(" keys ");
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let [l, r] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(inner);
    frame.render_widget(Paragraph::new(left), l);
    frame.render_widget(Paragraph::new(right), r);
}

/// Secrets redacted, by kind: `3 (2 aws_access_key, 1 jwt)`, or `none`.
fn redactions(counts: &std::collections::BTreeMap<String, u64>) -> String {
    let total: u64 = counts.values().sum();
    if total == 0 {
        return "none".to_owned();
    }
    let kinds: Vec<String> = counts
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    format!("{total} ({})", kinds.join(", "))
}
