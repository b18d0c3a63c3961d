//! Attendance panel (`--class`): present N of the roster, the absent names, the unconfirmed.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use ratatui::Frame;
use rollcall_protocol::terminal_text::terminal_safe;
use rollcall_recognizer::directory::attendance::AttendanceStatus;

use crate::tui::attendance::AttendanceView;

pub fn draw(frame: &mut Frame, area: Rect, view: &AttendanceView) {
    let names = |status| {
        let names: Vec<String> = view
            .with_status(status)
            .map(|r| terminal_safe(&r.name).into_owned())
            .collect();
        if names.is_empty() {
            "-".to_string()
        } else {
            names.join(", ")
        }
    };
    let count = |status| view.with_status(status).count();
    let roster = count(AttendanceStatus::Present)
        + count(AttendanceStatus::Unconfirmed)
        + count(AttendanceStatus::Absent);
    let lines = vec![
        Line::from(Span::styled(
            format!("present {} of {roster}", count(AttendanceStatus::Present)),
            Style::default().fg(Color::Green),
        )),
        Line::from(format!(
            "unconfirmed {}: {}",
            count(AttendanceStatus::Unconfirmed),
            names(AttendanceStatus::Unconfirmed)
        )),
        Line::from(format!(
            "absent {}: {}",
            count(AttendanceStatus::Absent),
            names(AttendanceStatus::Absent)
        )),
        Line::from(format!(
            "visitors {}: {}",
            count(AttendanceStatus::Visitor),
            names(AttendanceStatus::Visitor)
        )),
    ];
    let title = format!(
        " Attendance: {}{} ",
        terminal_safe(&view.class),
        if view.stored_session.is_some() {
            " (stored)"
        } else {
            ""
        }
    );
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(title)),
        area,
    );
}
