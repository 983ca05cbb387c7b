//! The usage view: tokens and cost per day and per model, newest day first, and this month's
//! total in the title; each API response counted once across sessions and devices (the server's
//! `GET /api/usage?by=daily`).

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Text;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};
use sessionflow_protocol::reports::{Tokens, UsageReport};

use crate::app::App;

pub(super) fn draw_usage(frame: &mut Frame, app: &App, area: Rect) {
    let Some(usage) = &app.usage else {
        frame.render_widget(
            Paragraph::new("asking the server for the usage report…")
                .block(Block::bordered().title(" usage ")),
            area,
        );
        return;
    };
    let report = &usage.report;
    let month = month_total(report, &usage.this_month);
    let title = format!(
        " usage by day · {} so far: {}${:.2} · {} tokens{} ",
        usage.this_month,
        if month_estimated(report, &usage.this_month) {
            "≈"
        } else {
            ""
        },
        month.cost(),
        group(total_tokens(&month)),
        if report.unpriced().is_empty() {
            ""
        } else {
            " · * unpriced models left out"
        }
    );
    let header = Row::new(vec![
        Cell::from("day"),
        Cell::from("model"),
        number("input".into()),
        number("output".into()),
        number("cache write".into()),
        number("cache read".into()),
        number("cost $".into()),
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let mut rows: Vec<Row> = Vec::new();
    for day in report.rows.iter().rev() {
        let many = day.models.len() > 1;
        for (i, m) in day.models.iter().enumerate() {
            let cost = match m.tokens.cost_usd {
                None => "*".to_owned(),
                Some(_) => money(&m.tokens, !m.cost_estimated),
            };
            rows.push(Row::new(vec![
                Cell::from(if i == 0 { day.key.value() } else { "" }.to_owned()),
                Cell::from(m.model.clone()),
                number(group(m.tokens.input_tokens)),
                number(group(m.tokens.output_tokens)),
                number(group(m.tokens.cache_creation_input_tokens)),
                number(group(m.tokens.cache_read_input_tokens)),
                number(cost),
            ]));
        }
        if many {
            let exact = day.models.iter().all(|m| !m.cost_estimated);
            rows.push(
                Row::new(vec![
                    Cell::from(""),
                    Cell::from("day total"),
                    number(group(day.tokens.input_tokens)),
                    number(group(day.tokens.output_tokens)),
                    number(group(day.tokens.cache_creation_input_tokens)),
                    number(group(day.tokens.cache_read_input_tokens)),
                    number(money(&day.tokens, exact)),
                ])
                .style(Style::default().add_modifier(Modifier::DIM)),
            );
        }
    }
    if rows.is_empty() {
        frame.render_widget(
            Paragraph::new("No usage recorded yet.").block(Block::bordered().title(title)),
            area,
        );
        return;
    }
    let rows: Vec<Row> = rows.into_iter().skip(app.scroll).collect();
    let widths = [
        Constraint::Length(10),
        Constraint::Fill(1),
        Constraint::Length(12),
        Constraint::Length(11),
        Constraint::Length(13),
        Constraint::Length(14),
        Constraint::Length(10),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::bordered().title(title));
    frame.render_widget(table, area);
}

/// A right-aligned cell.
fn number(text: String) -> Cell<'static> {
    Cell::from(Text::from(text).alignment(Alignment::Right))
}

/// The rows of `month` (`YYYY-MM`) added up.
fn month_total(report: &UsageReport, month: &str) -> Tokens {
    let mut total = Tokens {
        cost_usd: Some(0.0),
        ..Tokens::default()
    };
    for row in report
        .rows
        .iter()
        .filter(|r| r.key.value().starts_with(month))
    {
        total.add(&row.tokens);
    }
    total
}

/// Whether any of `month`'s cost is a family estimate.
fn month_estimated(report: &UsageReport, month: &str) -> bool {
    report
        .rows
        .iter()
        .filter(|r| r.key.value().starts_with(month))
        .flat_map(|r| &r.models)
        .any(|m| m.cost_estimated)
}

fn total_tokens(t: &Tokens) -> i64 {
    t.input_tokens + t.output_tokens + t.cache_creation_input_tokens + t.cache_read_input_tokens
}

/// `12.34`, or `≈12.34` when some of it is priced by a family estimate.
fn money(t: &Tokens, exact: bool) -> String {
    format!("{}{:.2}", if exact { "" } else { "≈" }, t.cost())
}

/// `1234567` as `1,234,567`.
fn group(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
