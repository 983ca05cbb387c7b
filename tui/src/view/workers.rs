//! The workers view: every live worker and its last heartbeat.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Row, Table};

use super::clock;
use crate::app::App;

pub(super) fn draw_worker_details(frame: &mut Frame, app: &App, area: Rect) {
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
                w.host.clone(),
                w.mode.clone(),
                w.version.clone(),
                clock(&Some(w.last_heartbeat)),
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
