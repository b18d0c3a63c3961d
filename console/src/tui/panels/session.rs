//! Session panel: source, backend, time, clip counters, worker pool, link health and the quit
//! drain. Each value wraps under its label rather than being cut.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use super::{short_duration, wrap};
use crate::plan::report::link_outage_line;
use crate::tui::state::{ConsoleState, Phase};

/// Label column width (`session `).
const LABEL: usize = 8;

/// One labelled value and its style.
struct Row {
    label: &'static str,
    value: String,
    style: Style,
}

/// `latency_row`: the percentiles as a row (the Latency panel is hidden at this width).
fn rows(state: &ConsoleState, latency_row: bool) -> Vec<Row> {
    let plain = |label, value: String| Row {
        label,
        value,
        style: Style::default(),
    };
    let time = match (&state.phase, state.limit) {
        (Phase::Idle, _) => match &state.last_outcome {
            Some(outcome) => outcome.clone(),
            None => "idle: press s to start".to_string(),
        },
        (Phase::Draining, _) => format!(
            "draining: capture stopped, waiting for the answers ({} in all)",
            short_duration(state.elapsed)
        ),
        (_, limit) => {
            let what = "running";
            match limit {
                Some(limit) => format!(
                    "{what} {} / {}, {} left",
                    short_duration(state.elapsed),
                    short_duration(limit),
                    short_duration(limit.saturating_sub(state.elapsed))
                ),
                None => format!(
                    "{what} {} (until the source ends)",
                    short_duration(state.elapsed)
                ),
            }
        }
    };
    let c = &state.clips;
    let mut rows = vec![
        plain("source", state.source.clone()),
        plain(
            "backend",
            format!("{}, device {}", state.backend, state.device),
        ),
        plain("session", time),
        plain(
            "clips",
            format!(
                "captured {}, uploaded {}, spooled {}",
                c.captured, c.uploaded, state.spooled
            ),
        ),
        Row {
            label: "",
            value: format!(
                "results {}, errors {}, lost {}, pending {}",
                c.results, c.errors, c.lost, state.outstanding
            ),
            style: if c.lost > 0 {
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
            } else {
                Style::default()
            },
        },
        plain(
            "workers",
            match &state.pool {
                Some(p) => format!(
                    "{} worker(s), {} busy, backlog {}",
                    p.workers, p.busy, p.backlog
                ),
                None => state.service.clone(),
            },
        ),
        health(state),
    ];
    if let Some(drain) = &state.drain {
        if state.phase != Phase::Idle {
            let pending = state.spooled.max(state.outstanding);
            let mut value = format!(
                "gives up in {} unless a clip moves",
                short_duration(drain.left(state.grace))
            );
            if drain.quitting {
                value.push_str(&format!(
                    "; Ctrl-C again to abandon ({pending} clips stay in the spool)"
                ));
            }
            rows.push(Row {
                label: "drain",
                value,
                style: Style::default().fg(Color::Yellow),
            });
        }
    }
    if latency_row {
        let mut text = super::latency::percentiles_text(state);
        if state
            .latency
            .summary(rollcall_edge::latency::Stage::EndToEnd)
            .is_some()
        {
            text.push_str(" ms");
        }
        rows.push(plain("latency", text));
    }
    if state.gpio != "off" {
        rows.push(plain("gpio", state.gpio.clone()));
    }
    rows
}

/// `store and queue reachable` in green, or the outage in yellow.
fn health(state: &ConsoleState) -> Row {
    match link_outage_line(&state.link, state.spooled) {
        Some(down) => Row {
            label: "link",
            value: down,
            style: Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        },
        None if state.phase == Phase::Idle => Row {
            label: "link",
            value: "no session".to_string(),
            style: Style::default().fg(Color::DarkGray),
        },
        None => Row {
            label: "link",
            value: "store and queue reachable".to_string(),
            style: Style::default().fg(Color::Green),
        },
    }
}

/// `latency_row`: the Latency panel is hidden, its percentiles go here.
fn lines(state: &ConsoleState, width: u16, latency_row: bool) -> Vec<Line<'static>> {
    let value_width = (width.saturating_sub(2) as usize).saturating_sub(LABEL);
    let mut lines = Vec::new();
    for row in rows(state, latency_row) {
        for (i, part) in wrap(&row.value, value_width).into_iter().enumerate() {
            let label = if i == 0 { row.label } else { "" };
            lines.push(Line::from(vec![
                Span::styled(
                    format!("{label:<LABEL$}"),
                    Style::default().fg(Color::DarkGray),
                ),
                Span::styled(part, row.style),
            ]));
        }
    }
    lines
}

/// Rows the panel needs at `width` columns, borders included.
pub fn height(state: &ConsoleState, width: u16, latency_row: bool) -> u16 {
    lines(state, width, latency_row).len() as u16 + 2
}

pub fn draw(frame: &mut Frame, area: Rect, state: &ConsoleState, latency_row: bool) {
    frame.render_widget(
        Paragraph::new(lines(state, area.width, latency_row))
            .block(Block::bordered().title(" Session ")),
        area,
    );
}
