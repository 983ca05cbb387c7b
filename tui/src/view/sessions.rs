//! The sessions view: a window of a list that may hold tens of thousands of sessions, with the
//! open session drawn over it.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Row, Table, Wrap};

use super::{one_line, redactions, stamp};
use crate::app::{App, Open};

/// Rows of the sessions table that fit in a terminal of `area` (the paging step).
pub fn session_rows(area: Rect) -> usize {
    // Health line, tabs, footer; the table's borders and header.
    usize::from(area.height.saturating_sub(3 + 3)).max(1)
}

pub(super) fn draw_sessions(frame: &mut Frame, app: &App, area: Rect) {
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
pub(super) fn draw_open(frame: &mut Frame, open: &Open, area: Rect) {
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
                    stamp(&s.started_at),
                    stamp(&s.ended_at),
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
            lines.push(field("redacted", redactions(&s.redactions)));
            if let Some(error) = &s.parse_error {
                lines.push(Line::from(vec![
                    Span::styled("parse error ", bold.fg(Color::Red)),
                    Span::styled(error.clone(), Style::default().fg(Color::Red)),
                ]));
            }
            lines.push(field("prompt", or_dash(&s.initial_prompt)));
            lines.push(field("summary", or_dash(&s.summary)));
            lines.push(Line::from(""));
            lines.push(Line::from(Span::styled(
                match detail.from_ordinal {
                    Some(at) => format!("messages from #{at} (the hit)"),
                    None => "first messages".to_owned(),
                },
                bold,
            )));
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
