//! Log panel: the recognition function's log tail, filtered, pausable.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;
use rollcall_protocol::terminal_text::terminal_safe;

use crate::logs::LogLevel;

use super::clock_s;
use crate::tui::state::ConsoleState;

pub fn draw(frame: &mut Frame, area: Rect, state: &ConsoleState) {
    let logs = &state.logs;
    let mut title = format!(" Function log: {} ", logs.origin);
    if !logs.filter.is_empty() {
        title.push_str(&format!("[filter: {}] ", logs.filter));
    }
    if logs.paused {
        title.push_str(&format!("[PAUSED, {} new] ", logs.held()));
    }
    let height = area.height.saturating_sub(2) as usize;
    let visible: Vec<_> = logs.visible().collect();
    let lines: Vec<Line> = visible[visible.len().saturating_sub(height)..]
        .iter()
        .map(|l| {
            let colour = match l.level {
                Some(LogLevel::Error) => Color::Red,
                Some(LogLevel::Warn) => Color::Yellow,
                _ => Color::DarkGray,
            };
            let level = l.level.map_or("", LogLevel::as_str);
            let at_ns = (l.timestamp_ms.max(0) as u64).saturating_mul(1_000_000);
            Line::from(vec![
                Span::styled(
                    format!("{} {level:<5} ", clock_s(at_ns)),
                    Style::default().fg(colour),
                ),
                // Lines from other machines' logs may quote records: one line each, escaped.
                Span::raw(terminal_safe(&l.message).into_owned()),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        area,
    );
}
