//! Drawing: a health line and the view tabs on top; the dashboard (lifecycle counts as bars, the
//! queue-depth sparkline, the stages and workers tables, the latest failure) or one of the other
//! views (the sessions view a window of a list that may hold tens of thousands, with the open
//! session over it); the prompt or last notice at the bottom; the help overlay; and a plain
//! message when the terminal is too small.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Bar, BarChart, BarGroup, Block, Cell, Clear, Paragraph, Row, Sparkline, Table, Wrap,
};

use crate::app::{App, Open, Prompt, View};
use crate::keys::{INPUT_KEYS, KEYS};
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
        View::Processors => draw_processors(frame, app, body),
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

/// Rows of the sessions table that fit in a terminal of `area` (the paging step).
pub fn session_rows(area: Rect) -> usize {
    // Health line, tabs, footer; the table's borders and header.
    usize::from(area.height.saturating_sub(3 + 3)).max(1)
}

/// `text` on one line: control characters as spaces, at most `max` characters, `…` if cut.
fn one_line(text: &str, max: usize) -> String {
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
    let page = session_rows(frame.area());
    let top = (app.selected / page) * page;
    let total = app.total();
    let rows: Vec<Row> = (top..(top + page).min(total))
        .map(|at| {
            let row = match app.window.as_ref().and_then(|w| w.row(at)) {
                Some(s) => Row::new(vec![
                    one_line(&s.id, 13),
                    s.lifecycle.clone(),
                    s.parse_status.clone(),
                    s.total_messages.to_string(),
                    s.tokens_out.to_string(),
                    format!("{:.2}", s.cost_estimate_usd),
                    one_line(s.initial_prompt.as_deref().unwrap_or(""), 200),
                ]),
                None => Row::new(vec!["…".to_owned()]),
            };
            if at == app.selected {
                row.style(Style::default().add_modifier(Modifier::REVERSED))
            } else {
                row
            }
        })
        .collect();
    let widths = [
        Constraint::Length(13),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Fill(1),
    ];
    let list = &app.list;
    let order = if list.ascending { "↑" } else { "↓" };
    let filter = if list.filter.is_empty() {
        String::new()
    } else {
        format!(" matching {:?}", list.filter)
    };
    let position = if total == 0 {
        "none".to_owned()
    } else {
        format!("{} of {total}", app.selected + 1)
    };
    let title = format!(
        " sessions{filter} by {} {order} · {position} ",
        list.sort.name()
    );
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::bordered().title(title));
    frame.render_widget(table, area);
    if let Some(open) = &app.open {
        draw_open(frame, open, area);
    }
}

/// The open session over the list: metadata, stats, summary, parse error, first messages.
fn draw_open(frame: &mut Frame, open: &Open, area: Rect) {
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let mut lines: Vec<Line> = Vec::new();
    match &open.detail {
        None => lines.push(Line::from("loading…")),
        Some(detail) => {
            let s = &detail.info;
            let field = |name: &str, value: String| {
                Line::from(vec![
                    Span::styled(format!("{name:<12}"), bold),
                    Span::raw(value),
                ])
            };
            let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "–".to_owned());
            lines.push(field(
                "state",
                format!("{} · parse {}", s.lifecycle, s.parse_status),
            ));
            lines.push(field("workspace", s.workspace_id.clone()));
            lines.push(field("cwd", or_dash(&s.cwd)));
            lines.push(field(
                "branch",
                format!(
                    "{} · model {} · Claude Code {}",
                    or_dash(&s.git_branch),
                    or_dash(&s.model),
                    or_dash(&s.cc_version)
                ),
            ));
            lines.push(field(
                "time",
                format!(
                    "{} → {} ({}; {})",
                    or_dash(&s.started_at),
                    or_dash(&s.ended_at),
                    s.duration_ms.map_or("–".to_owned(), |ms| format!(
                        "{:.0} s",
                        ms as f64 / 1000.0
                    )),
                    or_dash(&s.end_reason)
                ),
            ));
            lines.push(field(
                "messages",
                format!(
                    "{} ({} user, {} assistant) · {} tool calls · {} thinking · {} subagents",
                    s.total_messages,
                    s.user_messages,
                    s.assistant_messages,
                    s.tool_use_count,
                    s.thinking_blocks,
                    s.subagent_count
                ),
            ));
            lines.push(field(
                "tokens",
                format!(
                    "{} in · {} out · {} cache write · {} cache read · ${:.4}",
                    s.tokens_in,
                    s.tokens_out,
                    s.cache_write_tokens,
                    s.cache_read_tokens,
                    s.cost_estimate_usd
                ),
            ));
            lines.push(field(
                "transcript",
                s.transcript_size
                    .map_or("not uploaded".to_owned(), |n| format!("{n} bytes")),
            ));
            if let Some(error) = &s.parse_error {
                lines.push(Line::from(vec![
                    Span::styled("parse error ", bold.fg(Color::Red)),
                    Span::styled(error.clone(), Style::default().fg(Color::Red)),
                ]));
            }
            lines.push(field("prompt", or_dash(&s.initial_prompt)));
            lines.push(field("summary", or_dash(&s.summary)));
            lines.push(Line::from(""));
            lines.push(Line::from(Span::styled("first messages", bold)));
            if detail.first_messages.is_empty() {
                lines.push(Line::from("  none stored"));
            }
            for m in &detail.first_messages {
                let gist: Vec<String> = m.blocks.iter().map(|b| b.gist()).collect();
                let who = m.role.clone().unwrap_or_else(|| m.message_type.clone());
                lines.push(Line::from(format!(
                    "  {:>3} {who:<9} {}",
                    m.ordinal,
                    one_line(&gist.join(" "), 300)
                )));
            }
        }
    }
    let popup = Rect {
        x: area.x + 1,
        y: area.y + 1,
        width: area.width.saturating_sub(2),
        height: area.height.saturating_sub(2),
    };
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((u16::try_from(open.scroll).unwrap_or(u16::MAX), 0))
            .block(
                Block::bordered()
                    .title(format!(" session {} ", open.id))
                    .title_bottom(" Esc back · r reparse · ↑↓ scroll "),
            ),
        popup,
    );
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

fn draw_processors(frame: &mut Frame, app: &App, area: Rect) {
    let processors: Vec<_> = app.monitor.iter().flat_map(|m| &m.processors).collect();
    if processors.is_empty() {
        frame.render_widget(
            Paragraph::new("No processor has run yet.")
                .block(Block::bordered().title(" processors ")),
            area,
        );
        return;
    }
    let header = Row::new([
        "processor",
        "state",
        "last run",
        "next run",
        "done",
        "failing",
        "parked",
        "last result",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let time = |t: &Option<String>| {
        t.as_deref()
            .map_or("–".to_owned(), |t| t.chars().skip(11).take(8).collect())
    };
    let rows: Vec<Row> = processors
        .into_iter()
        .map(|p| {
            let result = p
                .last_result
                .as_ref()
                .map_or(String::new(), |r| match r.get("error") {
                    Some(error) => format!("error: {}", error.as_str().unwrap_or_default()),
                    None => format!(
                        "{} scanned, {} processed, {} errors",
                        r["scanned"], r["processed"], r["errors"]
                    ),
                });
            let parked = Cell::from(p.parked.to_string()).style(if p.parked > 0 {
                Style::default().fg(Color::Red)
            } else {
                Style::default()
            });
            Row::new(vec![
                Cell::from(p.name.clone()),
                Cell::from(if p.running { "running" } else { "idle" }),
                Cell::from(time(&p.last_run)),
                Cell::from(time(&p.next_run)),
                Cell::from(p.processed.to_string()),
                Cell::from(p.failing.to_string()),
                parked,
                Cell::from(result),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Fill(1),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::bordered().title(" processors (times UTC) "));
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
