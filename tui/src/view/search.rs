//! The search view: the hits for what is typed (`/` from anywhere but the sessions view, or
//! `7`), best first — when, project, session and message, kind, and the snippet with its matches
//! in bold; Enter opens the session at the hit's message.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};
use sessionflow_protocol::search::SearchHit;

use super::one_line;
use super::sessions::draw_open;
use crate::app::App;

pub(super) fn draw_search(frame: &mut Frame, app: &App, area: Rect) {
    let block = Block::bordered().title(format!(" search: {} ", one_line(&app.search, 60)));
    let page = match &app.hits {
        _ if app.search.trim().is_empty() => {
            let help = "Type / and what to look for: words, \"an exact phrase\", -excluded, or; \
                        identifiers and paths as written (parse_bytes, src/main.rs).";
            frame.render_widget(Paragraph::new(help).block(block), area);
            return;
        }
        Some((query, page)) if *query == app.search => page,
        _ => {
            frame.render_widget(Paragraph::new("searching…").block(block), area);
            return;
        }
    };
    // A phrase of common words is looked for back to a time only.
    let reached = page.searched_to.map_or(String::new(), |to| {
        format!(" · searched back to {}", to.format("%Y-%m-%d %H:%M"))
    });
    if page.hits.is_empty() {
        let text = format!("nothing found{reached}");
        frame.render_widget(Paragraph::new(text).block(block), area);
        return;
    }
    let header = Row::new(["when", "project", "session", "kind", "snippet"])
        .style(Style::default().add_modifier(Modifier::BOLD));
    let visible = usize::from(area.height.saturating_sub(3)).max(1);
    let first = app.hit.saturating_sub(visible - 1);
    let rows: Vec<Row> = page
        .hits
        .iter()
        .enumerate()
        .skip(first)
        .take(visible)
        .map(|(i, hit)| {
            let row = Row::new(vec![
                Cell::from(
                    hit.timestamp
                        .map_or("–".to_owned(), |t| t.format("%m-%d %H:%M").to_string()),
                ),
                Cell::from(one_line(hit.project(), 16)),
                Cell::from(format!(
                    "{}#{}",
                    one_line(&hit.session_id, 12),
                    hit.message_ordinal
                )),
                Cell::from(hit.kind.replace("tool_", "tool ")),
                Cell::from(marked(hit)),
            ]);
            if i == app.hit {
                row.style(Style::default().add_modifier(Modifier::REVERSED))
            } else {
                row
            }
        })
        .collect();
    let more = if page.next_cursor.is_some() {
        " (more: narrow the search)"
    } else {
        ""
    };
    let table = Table::new(
        rows,
        [
            Constraint::Length(11),
            Constraint::Length(16),
            Constraint::Length(16),
            Constraint::Length(11),
            Constraint::Min(20),
        ],
    )
    .header(header)
    .block(
        block
            .title_bottom(format!(
                " {} hits{more}{reached} · Enter opens ",
                page.hits.len()
            ))
            .border_style(Style::default().fg(Color::Reset)),
    );
    frame.render_widget(table, area);
    if let Some(open) = &app.open {
        draw_open(frame, open, area);
    }
}

/// The snippet on one line with its matches in bold.
fn marked(hit: &SearchHit) -> Line<'static> {
    let bold = Style::default()
        .add_modifier(Modifier::BOLD)
        .fg(Color::Yellow);
    Line::from(
        hit.pieces()
            .into_iter()
            .map(|(text, matched)| {
                let text = one_line(&text, 400);
                if matched {
                    Span::styled(text, bold)
                } else {
                    Span::raw(text)
                }
            })
            .collect::<Vec<_>>(),
    )
}
