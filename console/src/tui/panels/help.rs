//! The `?` overlay.

use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

const KEYS: [(&str, &str); 16] = [
    ("s", "start a session / stop the running one"),
    (
        "o",
        "choose the source: cameras found, recent, or type one (checked first)",
    ),
    ("/", "filter the log (substring; empty = all)"),
    ("p", "pause / resume the log"),
    ("\u{2191} \u{2193}", "scroll the log a line"),
    ("PgUp PgDn", "scroll the log a page; Home: oldest"),
    ("f End", "follow the log's newest lines again"),
    ("e", "the latest message, whole"),
    ("c", "clear the people list and the stranger count"),
    (
        "a",
        "--class: switch People / attendance (narrow terminals)",
    ),
    ("j k", "--class: select a person on the People panel"),
    (
        "x m",
        "--class: mark the selected person wrong (absent) / present",
    ),
    ("?", "this help (any key closes it)"),
    ("q", "quit (stops the session first)"),
    ("ctrl-c", "quit; twice: quit at once"),
    ("Esc", "cancel typing"),
];

pub fn draw(frame: &mut Frame, area: Rect) {
    let popup = super::centred(area, 74, KEYS.len() as u16 + 2);
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(key, what)| Line::from(format!(" {key:<9} {what}")))
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Keys ")),
        popup,
    );
}
