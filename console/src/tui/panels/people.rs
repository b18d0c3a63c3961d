//! People panel: everyone recognised in this session, most recent first.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, Cell, Row, Table};
use ratatui::Frame;

use super::clock_s;
use crate::tui::state::{ConsoleState, IN_VIEW_FOR};

pub fn draw(frame: &mut Frame, area: Rect, state: &ConsoleState) {
    let now = rollcall_edge::source::now_ns();
    // With --class, the selected row is the one `x` / `m` mark.
    let selected = state.attendance.as_ref().map(|a| a.selected);
    let rows: Vec<Row> = state
        .people_by_recency()
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let details = record_text(&p.details);
            let in_view = now.saturating_sub(p.last_seen_ns) <= IN_VIEW_FOR.as_nanos() as u64;
            let style = if in_view {
                Style::default()
                    .fg(Color::Green)
                    .add_modifier(Modifier::BOLD)
            } else {
                Style::default()
            };
            let style = if selected == Some(i) {
                style.add_modifier(Modifier::REVERSED)
            } else {
                style
            };
            Row::new(vec![
                Cell::from(p.name.clone()),
                Cell::from(format!("{:.2}", p.similarity)),
                Cell::from(clock_s(p.last_seen_ns)),
                Cell::from(p.times_seen.to_string()),
                Cell::from(if details.is_empty() {
                    format!("{} (no academic record)", p.person_id)
                } else {
                    details
                }),
            ])
            .style(style)
        })
        .collect();
    let title = format!(
        " People: {} recognised, {} unknown face(s) ",
        state.people.len(),
        state.unknown_faces
    );
    let table = Table::new(
        rows,
        [
            Constraint::Length(18),
            Constraint::Length(5),
            Constraint::Length(8),
            Constraint::Length(5),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(vec!["name", "sim", "last", "seen", "academic record"])
            .style(Style::default().add_modifier(Modifier::UNDERLINED)),
    )
    .block(Block::bordered().title(title));
    frame.render_widget(table, area);
}

/// The academic record, compact for a narrow terminal: student id, programme and year first
/// (values only), then the other fields as `name: value`.
fn record_text(details: &std::collections::BTreeMap<String, String>) -> String {
    const FIRST: [&str; 3] = ["student_id", "programme", "year"];
    let mut parts: Vec<String> = Vec::new();
    for key in FIRST {
        if let Some(value) = details.get(key) {
            parts.push(if key == "year" {
                format!("year {value}")
            } else {
                value.clone()
            });
        }
    }
    parts.extend(
        details
            .iter()
            .filter(|(k, _)| !FIRST.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}: {v}")),
    );
    parts.join(", ")
}
