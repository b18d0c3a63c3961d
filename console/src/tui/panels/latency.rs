//! Latency panel: the end-to-end histogram (clip closed -> result received) as a bar chart, its
//! percentiles, and the median of every stage.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Bar, BarChart, BarGroup, Block, Paragraph};
use ratatui::Frame;

use rollcall_edge::latency::Stage;

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

/// Bars that fit in `width` columns: 3 wide with a gap of 1, at most 16.
pub(crate) fn bar_count(width: u16) -> usize {
    (width as usize / 4).clamp(1, 16)
}

pub fn draw(frame: &mut Frame, area: Rect, state: &ConsoleState) {
    let summary = state.latency.summary(Stage::EndToEnd);
    let title = match &summary {
        Some(s) => format!(" Latency, ms ({} clips) ", s.count),
        None => " Latency, ms ".to_string(),
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [chart_area, text_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(2)]).areas(inner);

    let percentiles = match &summary {
        Some(s) => format!(
            "p50 {:.0} p90 {:.0} p99 {:.0} max {:.0}",
            s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
        ),
        None => "no results yet".to_string(),
    };
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
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(percentiles),
            Line::from(format!("median: {}", stages.join(" "))),
        ]),
        text_area,
    );

    // Labels are the buckets' upper bounds.
    let buckets = whole_ms_buckets(
        state
            .latency
            .buckets(Stage::EndToEnd, bar_count(chart_area.width)),
    );
    if buckets.is_empty() {
        return;
    }
    let bars: Vec<Bar> = buckets
        .iter()
        .map(|(upper, count)| {
            Bar::default()
                .value(*count)
                .label(Line::from(format!("{upper:.0}")))
                .style(Style::default().fg(Color::Cyan))
        })
        .collect();
    frame.render_widget(
        BarChart::default()
            .data(BarGroup::default().bars(&bars))
            .bar_width(3)
            .bar_gap(1),
        chart_area,
    );
}

/// Buckets narrower than a millisecond would repeat labels (one sample: every bucket "89"):
/// merge the ones whose labels are the same.
fn whole_ms_buckets(buckets: Vec<(f64, u64)>) -> Vec<(f64, u64)> {
    let mut merged: Vec<(f64, u64)> = Vec::with_capacity(buckets.len());
    for (upper, count) in buckets {
        match merged.last_mut() {
            Some(last) if last.0.round() == upper.round() => {
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
        let merged = whole_ms_buckets(vec![(89.1, 0), (89.2, 0), (89.4, 1), (90.2, 2)]);
        assert_eq!(merged, vec![(89.4, 1), (90.2, 2)]);
    }
}
