//! The processors view: each session processor's state, runs and failing or parked sessions.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};

use super::clock;
use crate::app::App;

pub(super) fn draw_processors(frame: &mut Frame, app: &App, area: Rect) {
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
                Cell::from(clock(&p.last_run)),
                Cell::from(clock(&p.next_run)),
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
