//! Log panel: the recognition function's log tail, filtered, pausable, wrapped and scrollable
//! (arrows, PgUp/PgDn, Home/End; `f` follows the tail again).

use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;
use rollcall_protocol::terminal_text::terminal_safe;

use crate::logs::LogLevel;

use super::{clock_s, wrap};
use crate::tui::state::ConsoleState;

/// `hh:mm:ss LEVEL ` before each line.
const PREFIX: usize = 9 + 6;

pub fn draw(frame: &mut Frame, area: Rect, state: &ConsoleState) {
    let logs = &state.logs;
    let height = area.height.saturating_sub(2) as usize;
    let width = area.width.saturating_sub(2) as usize;
    logs.page.set(height);
    // Every visible line, wrapped under its text column.
    let mut rows: Vec<Line> = Vec::new();
    for l in logs.visible() {
        let colour = match l.level {
            Some(LogLevel::Error) => Color::Red,
            Some(LogLevel::Warn) => Color::Yellow,
            _ => Color::DarkGray,
        };
        let level = l.level.map_or("", LogLevel::as_str);
        let at_ns = (l.timestamp_ms.max(0) as u64).saturating_mul(1_000_000);
        // Lines from other machines' logs may quote records: escaped.
        let text = terminal_safe(l.text_without_level()).into_owned();
        for (i, part) in wrap(&text, width.saturating_sub(PREFIX).max(10))
            .into_iter()
            .enumerate()
        {
            let prefix = if i == 0 {
                format!("{} {level:<5} ", clock_s(at_ns))
            } else {
                " ".repeat(PREFIX)
            };
            rows.push(Line::from(vec![
                Span::styled(prefix, Style::default().fg(colour)),
                Span::raw(part),
            ]));
        }
    }
    let scroll = logs.scroll.min(rows.len().saturating_sub(height));
    let mut title = format!(" Function log: {} ", logs.origin);
    if !logs.filter.is_empty() {
        title.push_str(&format!("[filter: {}] ", logs.filter));
    }
    if logs.paused {
        title.push_str(&format!("[PAUSED, {} new] ", logs.held()));
    }
    if scroll > 0 {
        title.push_str(&format!("[{scroll} rows up, f: follow] "));
    }
    if rows.is_empty() {
        let why = if !logs.filter.is_empty() && !logs.is_empty() {
            format!(
                "no line matches the filter {:?} ({} line(s) hidden; / then Enter on an empty filter shows all)",
                logs.filter,
                logs.len()
            )
        } else {
            "no log lines yet".to_string()
        };
        rows = wrap(&why, width)
            .into_iter()
            .map(|row| Line::from(Span::styled(row, Style::default().fg(Color::DarkGray))))
            .collect();
    }
    let end = rows.len() - scroll;
    let start = end.saturating_sub(height);
    let shown: Vec<Line> = rows.drain(start..end).collect();
    frame.render_widget(
        Paragraph::new(shown).block(Block::bordered().title(title)),
        area,
    );
}
