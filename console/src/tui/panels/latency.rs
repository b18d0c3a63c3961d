//! Latency panel: the end-to-end histogram (clip closed -> result received) as bars with their
//! count above and their upper bound below, the percentiles, and the median of every stage.
//! Labels use short units (`164`, `1.6k`, `12k`) so that a bar's label never needs more than
//! its width.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use rollcall_edge::latency::Stage;

use super::wrap;
use crate::tui::state::ConsoleState;

/// Short stage names for a narrow panel.
fn short_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Encode => "enc",
        Stage::SpoolWait => "spool",
        Stage::Upload => "up",
        Stage::FunctionTotal => "fn",
        Stage::Decode => "dec",
        Stage::Detect => "det",
        Stage::Embed => "emb",
        Stage::Lookup => "look",
        Stage::Delivery => "dlv",
        Stage::EndToEnd => "e2e",
    }
}

/// A bar's width: its label and count are at most this many characters.
const BAR_WIDTH: u16 = 4;
/// Columns between bars.
const BAR_GAP: u16 = 1;

/// Bars that fit in `width` columns, at most 16.
pub(crate) fn bar_count(width: u16) -> usize {
    ((width + BAR_GAP) / (BAR_WIDTH + BAR_GAP)).clamp(1, 16) as usize
}

/// A number in at most 4 characters: `999`, `1.6k`, `12k`, `999k`, `1.2M`.
pub(crate) fn short_number(value: f64) -> String {
    let value = value.max(0.0);
    if value < 999.5 {
        format!("{value:.0}")
    } else if value < 9_950.0 {
        format!("{:.1}k", value / 1e3)
    } else if value < 999_500.0 {
        format!("{:.0}k", value / 1e3)
    } else if value < 9_950_000.0 {
        format!("{:.1}M", value / 1e6)
    } else {
        format!("{:.0}M", (value / 1e6).min(999.0))
    }
}

/// `p50 61 p90 120 p99 164 max 164` (ms, end to end), or `no results yet`.
pub(crate) fn percentiles_text(state: &ConsoleState) -> String {
    match state.latency.summary(Stage::EndToEnd) {
        Some(s) => format!(
            "p50 {:.0} p90 {:.0} p99 {:.0} max {:.0}",
            s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
        ),
        None => "no results yet".to_string(),
    }
}

/// The text lines under the chart: percentiles and stage medians, wrapped to `width`.
fn text_lines(state: &ConsoleState, width: usize) -> Vec<String> {
    let percentiles = percentiles_text(state);
    let stages: Vec<String> = Stage::ALL
        .iter()
        .filter(|s| **s != Stage::EndToEnd)
        .filter_map(|s| {
            state
                .latency
                .summary(*s)
                .map(|m| format!("{} {:.0}", short_name(*s), m.p50_ms))
        })
        .collect();
    let mut lines = wrap(&percentiles, width);
    if !stages.is_empty() {
        lines.extend(wrap(&format!("median: {}", stages.join(" ")), width));
    }
    lines
}

/// The histogram's buckets at this chart width, labels merged where they would repeat.
pub(crate) fn chart_buckets(state: &ConsoleState, chart_width: u16) -> Vec<(f64, u64)> {
    same_label_buckets(
        state
            .latency
            .buckets(Stage::EndToEnd, bar_count(chart_width)),
    )
}

pub fn draw(frame: &mut Frame, area: Rect, state: &ConsoleState) {
    let title = match state.latency.summary(Stage::EndToEnd) {
        Some(s) => format!(" Latency, ms ({} clips) ", s.count),
        None => " Latency, ms ".to_string(),
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let text: Vec<Line> = text_lines(state, inner.width as usize)
        .into_iter()
        .map(Line::from)
        .collect();
    let [chart_area, text_area] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(text.len() as u16)]).areas(inner);
    frame.render_widget(Paragraph::new(text), text_area);
    let buckets = chart_buckets(state, chart_area.width);
    draw_bars(frame.buffer_mut(), chart_area, &buckets);
}

/// Bars bottom-up above their labels, each count on the row above its bar. Needs 3 rows
/// (count, one bar row, label); draws nothing in less.
fn draw_bars(buf: &mut Buffer, area: Rect, buckets: &[(f64, u64)]) {
    if area.height < 3 || buckets.is_empty() {
        return;
    }
    let max = buckets.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let label_y = area.bottom() - 1;
    let bar_rows = area.height - 2;
    let bar_style = Style::default().fg(Color::Cyan);
    for (i, (upper, count)) in buckets.iter().enumerate() {
        let x = area.x + i as u16 * (BAR_WIDTH + BAR_GAP);
        if x + BAR_WIDTH > area.right() {
            break;
        }
        let rows = if *count == 0 {
            0
        } else {
            ((*count as f64 / max as f64) * f64::from(bar_rows))
                .ceil()
                .clamp(1.0, f64::from(bar_rows)) as u16
        };
        for row in 0..rows {
            buf.set_string(x, label_y - 1 - row, "\u{2588}".repeat(4), bar_style);
        }
        let count_text = short_number(*count as f64);
        buf.set_string(
            x + (BAR_WIDTH - count_text.len() as u16) / 2,
            label_y - 1 - rows,
            &count_text,
            Style::default(),
        );
        let label = short_number(*upper);
        buf.set_string(
            x + (BAR_WIDTH - label.len() as u16) / 2,
            label_y,
            &label,
            Style::default().fg(Color::DarkGray),
        );
    }
}

/// Buckets whose labels would read the same (one sample: every bucket "89"; wide buckets:
/// "1.6k" twice) are merged into one.
fn same_label_buckets(buckets: Vec<(f64, u64)>) -> Vec<(f64, u64)> {
    let mut merged: Vec<(f64, u64)> = Vec::with_capacity(buckets.len());
    for (upper, count) in buckets {
        match merged.last_mut() {
            Some(last) if short_number(last.0) == short_number(upper) => {
                last.0 = upper;
                last.1 += count;
            }
            _ => merged.push((upper, count)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_with_the_same_label_merge() {
        let merged = same_label_buckets(vec![(89.1, 0), (89.2, 0), (89.4, 1), (90.2, 2)]);
        assert_eq!(merged, vec![(89.4, 1), (90.2, 2)]);
        let merged = same_label_buckets(vec![(1610.0, 1), (1640.0, 2), (1700.0, 3)]);
        assert_eq!(merged, vec![(1640.0, 3), (1700.0, 3)]);
    }

    #[test]
    fn short_numbers_fit_a_bar() {
        for (value, text) in [
            (0.0, "0"),
            (164.4, "164"),
            (999.0, "999"),
            (1_640.0, "1.6k"),
            (9_940.0, "9.9k"),
            (10_700.0, "11k"),
            (11_500.0, "12k"),
            (999_000.0, "999k"),
            (1_200_000.0, "1.2M"),
            (5e12, "999M"),
        ] {
            assert_eq!(short_number(value), text);
            assert!(short_number(value).len() <= BAR_WIDTH as usize);
        }
    }
}
