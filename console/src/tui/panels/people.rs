//! People panel: everyone recognised in this session, most recent first.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::{clock_s, wrap};
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
    let block = Block::bordered().title(format!(" People: {} recognised ", state.people.len()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let strangers: Vec<Line> = wrap(&strangers_text(state), inner.width as usize)
        .into_iter()
        .map(Line::from)
        .collect();
    let [strangers_area, table_area] = Layout::vertical([
        Constraint::Length(strangers.len() as u16),
        Constraint::Fill(1),
    ])
    .areas(inner);
    frame.render_widget(
        Paragraph::new(strangers).style(Style::default().fg(Color::DarkGray)),
        strangers_area,
    );
    let name_width = state
        .people
        .values()
        .map(|p| p.name.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 30) as u16;
    let table = Table::new(
        rows,
        [
            Constraint::Length(name_width),
            Constraint::Length(5),
            Constraint::Length(8),
            Constraint::Length(5),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(vec!["name", "sim", "last", "seen", "academic record"])
            .style(Style::default().add_modifier(Modifier::UNDERLINED)),
    );
    frame.render_widget(table, table_area);
}

/// Rows the panel needs to show everyone at `width` columns: borders, the strangers line,
/// the header and one row per person.
pub fn height(state: &ConsoleState, width: u16) -> u16 {
    let strangers = wrap(&strangers_text(state), width.saturating_sub(2) as usize).len();
    (2 + strangers + 1 + state.people.len()) as u16
}

/// What is known about strangers. A result counts the distinct strangers of its clip; no
/// result follows a stranger into the next clip, so the session total is a sum over clips and
/// the most in one clip is the only lower bound on distinct people.
fn strangers_text(state: &ConsoleState) -> String {
    if state.unknown_faces == 0 {
        return "no stranger seen".to_string();
    }
    format!(
        "strangers: at most {} per clip, {} summed over clips (not tracked across clips)",
        state.strangers_in_one_clip, state.unknown_faces
    )
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
