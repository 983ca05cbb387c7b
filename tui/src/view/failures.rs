//! The failures view: failed sessions with their stage and whole error text.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use crate::app::App;

pub(super) fn draw_failures(frame: &mut Frame, app: &App, area: Rect) {
    let failures = app.monitor.iter().flat_map(|m| &m.recent_failures);
    let mut lines: Vec<Line> = Vec::new();
    for f in failures.skip(app.scroll) {
        lines.push(Line::from(Span::styled(
            format!(
                "{} · {} · {}",
                f.session_id,
                f.stage,
                f.at.format("%Y-%m-%d %H:%M:%S")
            ),
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
