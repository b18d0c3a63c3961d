//! Session panel: source, backend, time, clip counters, worker pool.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use super::short_duration;
use crate::plan::durations::clock;
use crate::tui::state::{ConsoleState, Phase};

pub fn draw(frame: &mut Frame, area: Rect, state: &ConsoleState) {
    let label = |s: &'static str| Span::styled(s, Style::default().fg(Color::DarkGray));
    let bold = |s: String| Span::styled(s, Style::default().add_modifier(Modifier::BOLD));
    let time = match (&state.phase, state.limit) {
        (Phase::Idle, _) => match &state.last_outcome {
            Some(outcome) => outcome.clone(),
            None => "idle: press s to start".to_string(),
        },
        (phase, limit) => {
            let what = if *phase == Phase::Draining {
                "draining"
            } else {
                "running"
            };
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
    let pool = match &state.pool {
        Some(p) => format!(
            "{} worker(s), {} busy, backlog {}",
            p.workers, p.busy, p.backlog
        ),
        None => state.service.clone(),
    };
    let lines = vec![
        Line::from(vec![label("source  "), Span::raw(state.source.clone())]),
        Line::from(vec![
            label("backend "),
            bold(state.backend.clone()),
            Span::raw(format!("  device {}", state.device)),
        ]),
        Line::from(vec![label("session "), Span::raw(time)]),
        Line::from(vec![
            label("clips   "),
            Span::raw(format!(
                "captured {} uploaded {} spooled {}",
                c.captured, c.uploaded, state.spooled
            )),
        ]),
        Line::from(vec![
            label("        "),
            Span::raw(format!("results {} errors {} ", c.results, c.errors)),
            Span::styled(
                format!("lost {}", c.lost),
                if c.lost > 0 {
                    Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
                } else {
                    Style::default()
                },
            ),
            Span::raw(format!(" pending {}", state.outstanding)),
        ]),
        Line::from(vec![label("workers "), Span::raw(pool)]),
        // An outage matters more than the GPIO line while it lasts.
        match link_down(state) {
            Some(down) => Line::from(vec![
                label("link    "),
                Span::styled(
                    down,
                    Style::default()
                        .fg(Color::Yellow)
                        .add_modifier(Modifier::BOLD),
                ),
            ]),
            None => Line::from(vec![label("gpio    "), Span::raw(state.gpio.clone())]),
        },
    ];
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Session ")),
        area,
    );
}

/// `store down since 10:55:20, retrying` while the store or the queue is unreachable.
fn link_down(state: &ConsoleState) -> Option<String> {
    let link = &state.link;
    let (what, since) = match (link.store_down_since_ns, link.queue_down_since_ns) {
        (Some(ns), _) => ("store", ns),
        (None, Some(ns)) => ("queue", ns),
        (None, None) => return None,
    };
    Some(format!(
        "{what} down since {}, retrying",
        &clock(since)[..8]
    ))
}
