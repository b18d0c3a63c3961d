//! One file per panel; [`draw`] lays them out. Heights and widths follow the terminal: the
//! Session panel wraps its values instead of cutting them, the People panel takes the rows it
//! needs (up to half of what is left), and the log panel takes the rest.

mod attendance;
mod help;
pub(crate) mod latency;
mod logs;
mod people;
mod session;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::state::{ConsoleState, InputMode, Severity};

/// Status bar rows at most; a longer message shows its start and `e` opens it whole.
const STATUS_ROWS: usize = 3;

/// The keys the footer lists (all of them: the help overlay explains each).
const FOOTER_KEYS: [(&str, &str); 10] = [
    ("s", "start"),
    ("o", "source"),
    ("/", "filter"),
    ("p", "pause"),
    ("\u{2191}\u{2193}", "scroll"),
    ("f", "follow"),
    ("c", "clear"),
    ("e", "msg"),
    ("?", "help"),
    ("q", "quit"),
];

/// Draw the whole console. Laid out for any size; at 60x20 everything still shows uncut.
pub fn draw(frame: &mut Frame, state: &ConsoleState) {
    let area = frame.area();
    let footer = footer_lines(state, area.width);
    let status = status_rows(state, area.width);
    let [top, middle, status_area, footer_area] = Layout::vertical([
        Constraint::Length(top_height(state, area)),
        Constraint::Fill(1),
        Constraint::Length(status.len() as u16),
        Constraint::Length(footer.len() as u16),
    ])
    .areas(area);
    let [session_area, latency_area] = Layout::horizontal([
        Constraint::Length(session_width(area.width)),
        Constraint::Fill(1),
    ])
    .areas(top);
    session::draw(
        frame,
        session_area,
        state,
        area.width < HISTOGRAM_FROM_WIDTH,
    );
    if latency_area.width > 0 {
        latency::draw(frame, latency_area, state);
    }
    // People get the rows they need, up to half; the log panel takes the spare height.
    let people_rows = people::height(state, area.width);
    let [people_area, logs_area] = Layout::vertical([
        Constraint::Length(
            people_rows
                .min((middle.height / 2).max(middle.height.saturating_sub(5)))
                .max(3),
        ),
        Constraint::Fill(1),
    ])
    .areas(middle);
    draw_people_or_attendance(frame, people_area, state);
    logs::draw(frame, logs_area, state);
    frame.render_widget(Paragraph::new(status), status_area);
    frame.render_widget(Paragraph::new(footer), footer_area);
    match &state.mode {
        InputMode::Help => help::draw(frame, area),
        InputMode::Message => draw_message(frame, area, state),
        InputMode::Source(picker) => draw_picker(frame, area, picker),
        _ => {}
    }
}

/// People, and beside it the attendance panel with `--class`; on narrow terminals one of the
/// two (`a` switches).
fn draw_people_or_attendance(frame: &mut Frame, area: Rect, state: &ConsoleState) {
    let Some(view) = &state.attendance else {
        return people::draw(frame, area, state);
    };
    if area.width >= 110 {
        let [people_area, attendance_area] =
            Layout::horizontal([Constraint::Min(60), Constraint::Length(44)]).areas(area);
        people::draw(frame, people_area, state);
        attendance::draw(frame, attendance_area, view);
    } else if view.shown {
        attendance::draw(frame, area, view);
    } else {
        people::draw(frame, area, state);
    }
}

/// The attendance keys, listed in the footer with `--class`.
const ATTENDANCE_KEYS: [(&str, &str); 3] = [
    ("a", "attendance"),
    ("j/k", "select"),
    ("x/m", "mark wrong/present"),
];

/// Below this width the histogram has no room beside the Session panel: the panel takes the
/// whole width and shows the latency percentiles as one of its rows.
pub(crate) const HISTOGRAM_FROM_WIDTH: u16 = 80;

/// The Session panel's width: half the terminal from 100 columns, more below (its rows
/// should fit one line each at 80), all of it below [`HISTOGRAM_FROM_WIDTH`].
fn session_width(width: u16) -> u16 {
    if width >= 100 {
        width / 2
    } else if width >= HISTOGRAM_FROM_WIDTH {
        width * 62 / 100
    } else {
        width
    }
}

/// Tall enough for the Session panel's wrapped lines (never cut) and, beside it, a readable
/// histogram that grows with the terminal.
fn top_height(state: &ConsoleState, area: Rect) -> u16 {
    let session = session::height(
        state,
        session_width(area.width),
        area.width < HISTOGRAM_FROM_WIDTH,
    );
    if area.width < HISTOGRAM_FROM_WIDTH {
        return session;
    }
    session.max((area.height / 3).clamp(9, 16))
}

/// Words of `text` in rows of at most `width` columns; a word longer than a row is split.
/// Nothing is dropped.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut rows = Vec::new();
    let mut row = String::new();
    let mut row_width = 0;
    for word in text.split(' ') {
        let word_width = Span::raw(word).width();
        let gap = usize::from(!row.is_empty());
        if row_width + gap + word_width <= width {
            if gap == 1 {
                row.push(' ');
            }
            row.push_str(word);
            row_width += gap + word_width;
            continue;
        }
        if !row.is_empty() {
            rows.push(std::mem::take(&mut row));
            row_width = 0;
        }
        for c in word.chars() {
            let w = Span::raw(c.to_string()).width();
            if row_width + w > width && !row.is_empty() {
                rows.push(std::mem::take(&mut row));
                row_width = 0;
            }
            row.push(c);
            row_width += w;
        }
    }
    if !row.is_empty() || rows.is_empty() {
        rows.push(row);
    }
    rows
}

/// The status bar: the latest message in full over up to [`STATUS_ROWS`] rows (a longer one
/// ends with how to open it whole); nothing when there is no message.
fn status_rows(state: &ConsoleState, width: u16) -> Vec<Line<'static>> {
    if state.status.is_empty() {
        return Vec::new();
    }
    let style = severity_style(state.status_severity);
    let mut rows = wrap(&state.status, width as usize);
    if rows.len() > STATUS_ROWS {
        rows.truncate(STATUS_ROWS - 1);
        rows.push("... (e: the whole message)".to_string());
    }
    rows.into_iter()
        .map(|row| Line::from(Span::styled(row, style)))
        .collect()
}

fn severity_style(severity: Severity) -> Style {
    match severity {
        Severity::Info => Style::default(),
        Severity::Warning => Style::default()
            .fg(Color::Yellow)
            .add_modifier(Modifier::BOLD),
        Severity::Error => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
    }
}

/// The footer: every key, on as many rows as the width needs; or the text being typed.
fn footer_lines(state: &ConsoleState, width: u16) -> Vec<Line<'static>> {
    let key = |k: &str| {
        Span::styled(
            k.to_string(),
            Style::default().add_modifier(Modifier::REVERSED),
        )
    };
    let typing = |what: &str, text: &str, hint: &str| {
        let mut lines = vec![Line::from(vec![key(what), Span::raw(format!(" {text}_"))])];
        lines.push(Line::from(Span::styled(
            hint.to_string(),
            Style::default().fg(Color::DarkGray),
        )));
        lines
    };
    match &state.mode {
        InputMode::Source(picker) => typing(
            "source",
            &picker.text,
            "\u{2191}\u{2193}: choose, type: another (file:PATH, rtsp://...), Enter: check and use, Esc: cancel",
        ),
        InputMode::Filter(text) => typing("filter", text, "Enter: apply, Esc: cancel"),
        _ => {
            let mut lines = Vec::new();
            let mut spans = Vec::new();
            let mut used = 0usize;
            let attendance_keys: &[(&str, &str)] = if state.attendance.is_some() {
                &ATTENDANCE_KEYS
            } else {
                &[]
            };
            for &(k, what) in FOOTER_KEYS.iter().chain(attendance_keys) {
                let entry = Span::raw(k).width() + 1 + what.len() + 1;
                // The last entry's trailing space may fall off the edge.
                if used + entry - 1 > width as usize && !spans.is_empty() {
                    lines.push(Line::from(std::mem::take(&mut spans)));
                    used = 0;
                }
                spans.push(key(k));
                spans.push(Span::raw(format!(" {what} ")));
                used += entry;
            }
            lines.push(Line::from(spans));
            lines
        }
    }
}

/// `o`: the sources to choose from, the free-text line last, and why the last choice was
/// refused.
fn draw_picker(frame: &mut Frame, area: Rect, picker: &crate::tui::source_picker::SourcePicker) {
    let width = area.width.saturating_sub(4).clamp(10, 90);
    let inner = width.saturating_sub(2) as usize;
    let mut lines: Vec<Line> = Vec::new();
    let highlight = Style::default().add_modifier(Modifier::REVERSED);
    for (i, choice) in picker.choices.iter().enumerate() {
        let style = if i == picker.selected {
            highlight
        } else {
            Style::default()
        };
        for row in wrap(&format!("{} ({})", choice.spec, choice.what), inner) {
            lines.push(Line::from(Span::styled(row, style)));
        }
    }
    let free = format!("other: {}_", picker.text);
    let style = if picker.selected == picker.choices.len() {
        highlight
    } else {
        Style::default()
    };
    for row in wrap(&free, inner) {
        lines.push(Line::from(Span::styled(row, style)));
    }
    if let Some(error) = &picker.error {
        for row in wrap(error, inner) {
            lines.push(Line::from(Span::styled(
                row,
                severity_style(Severity::Error),
            )));
        }
    }
    let popup = centred(area, width, lines.len() as u16 + 2);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Source ")),
        popup,
    );
}

/// A popup of `width` x `height` (at most the area's) in the middle of `area`.
pub(crate) fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let [_, middle, _] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(height.min(area.height)),
        Constraint::Fill(1),
    ])
    .areas(area);
    let [_, popup, _] = Layout::horizontal([
        Constraint::Fill(1),
        Constraint::Length(width.min(area.width)),
        Constraint::Fill(1),
    ])
    .areas(middle);
    popup
}

/// `e`: the status message whole, in a popup.
fn draw_message(frame: &mut Frame, area: Rect, state: &ConsoleState) {
    let width = area.width.saturating_sub(4).clamp(10, 100);
    let rows = wrap(&state.status, width.saturating_sub(2) as usize);
    let popup = centred(area, width, rows.len() as u16 + 2);
    let lines: Vec<Line> = rows.into_iter().map(Line::from).collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .style(severity_style(state.status_severity))
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" Message (any key closes) ")),
        popup,
    );
}

/// `4m05s`, `12s` (re-exported for the panels).
pub(crate) use crate::plan::durations::short_duration;

/// `hh:mm:ss` (UTC) of a Unix time in ns.
pub(crate) fn clock_s(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use rollcall_edge::latency::Stage;
    use rollcall_edge::receive::ReceivedResult;
    use rollcall_edge::session::{ClipCounters, SessionSnapshot};
    use rollcall_protocol::wire::{
        ClipMeta, PixelBox, RecognitionResult, RecognizedPerson, CLIP_CODEC_H264_ANNEXB,
    };
    use rollcall_recognizer::pool::PoolStats;

    use super::*;
    use crate::logs::LogLine;
    use crate::tui::state::{Phase, Severity};

    fn result(seq: u64, people: &[(&str, &str, f32)], unknown: u32) -> ReceivedResult {
        let meta = ClipMeta {
            device_id: "cam-1".into(),
            session_id: "s1".into(),
            seq,
            first_frame_ns: 0,
            last_frame_ns: 0,
            closed_ns: 0,
            fps: 30.0,
            width: 640,
            height: 360,
            frame_count: 15,
            codec: CLIP_CODEC_H264_ANNEXB.into(),
        };
        let mut r = RecognitionResult::empty_for(&meta);
        r.unknown_faces = unknown;
        r.people = people
            .iter()
            .map(|(id, name, similarity)| RecognizedPerson {
                person_id: id.to_string(),
                name: name.to_string(),
                details: BTreeMap::from([
                    ("programme".to_string(), "Computer Science".to_string()),
                    ("student_id".to_string(), format!("S-{id}")),
                    ("year".to_string(), "3".to_string()),
                ]),
                similarity: *similarity,
                bbox: PixelBox::default(),
                frame: 0,
            })
            .collect();
        ReceivedResult {
            result: r,
            received_ns: 1_700_000_000_000_000_000 + seq * 500_000_000,
            end_to_end: Some(Duration::from_millis(60)),
        }
    }

    /// A console in the middle of a session: two people, latency figures, logs.
    fn busy_state() -> ConsoleState {
        let mut state = ConsoleState::new(
            "file:/videos/lecture.mp4".into(),
            "embedded".into(),
            "embedded: up to 2 worker(s) in this process".into(),
            "cam-1".into(),
        );
        state.session_started("s1", Some(Duration::from_secs(300)));
        state.on_result(&result(0, &[("ada", "Ada Lovelace", 0.71)], 1));
        state.on_result(&result(
            1,
            &[("ada", "Ada Lovelace", 0.69), ("alan", "Alan Turing", 0.55)],
            0,
        ));
        let mut snapshot = SessionSnapshot {
            clips: ClipCounters {
                captured: 42,
                uploaded: 41,
                results: 40,
                errors: 1,
                lost: 0,
                spooled: 0,
            },
            spooled: 1,
            outstanding: 2,
            unknown_faces: 3,
            ..SessionSnapshot::default()
        };
        for ms in [48, 52, 55, 57, 61, 64, 70, 90, 120, 164] {
            snapshot
                .latency
                .record(Stage::EndToEnd, Duration::from_millis(ms));
            snapshot
                .latency
                .record(Stage::FunctionTotal, Duration::from_millis(ms - 10));
        }
        state.on_snapshot(snapshot, Duration::from_secs(65));
        state.pool = Some(PoolStats {
            workers: 2,
            busy: 1,
            backlog: 3,
            ..PoolStats::default()
        });
        state.logs.origin = "this process".into();
        state.logs.extend([
            LogLine::new(
                1_700_000_000_000,
                "worker-1",
                "INFO clip recognised people=Ada Lovelace total_ms=41.0",
            ),
            LogLine::new(
                1_700_000_000_500,
                "worker-1",
                "WARN clip not processed: corrupt",
            ),
        ]);
        state
    }

    fn render(state: &ConsoleState, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
        terminal
            .draw(|frame| draw(frame, state))
            .expect("draw on the test backend");
        let buffer = terminal.backend().buffer();
        let mut text = String::new();
        for y in 0..buffer.area.height {
            for x in 0..buffer.area.width {
                text.push_str(buffer[(x, y)].symbol());
            }
            text.push('\n');
        }
        text
    }

    /// The cells of a `width` x `height` console.
    fn render_buffer(state: &ConsoleState, width: u16, height: u16) -> ratatui::buffer::Buffer {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
        terminal
            .draw(|frame| draw(frame, state))
            .expect("draw on the test backend");
        terminal.backend().buffer().clone()
    }

    /// The text inside `area` (borders and padding dropped), its rows joined with single
    /// spaces: a wrapped value reads as one.
    fn text_in(buffer: &ratatui::buffer::Buffer, area: Rect) -> String {
        let mut words = Vec::new();
        for y in area.top()..area.bottom() {
            let row: String = (area.left()..area.right())
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect();
            let row = row.replace(
                [
                    '\u{2502}', '\u{2500}', '\u{250c}', '\u{2510}', '\u{2514}', '\u{2518}',
                ],
                " ",
            );
            words.extend(row.split_whitespace().map(str::to_string));
        }
        words.join(" ")
    }

    /// The Session panel's text, wrapped values joined.
    fn session_text(state: &ConsoleState, width: u16, height: u16) -> String {
        let buffer = render_buffer(state, width, height);
        let top = top_height(state, buffer.area);
        text_in(&buffer, Rect::new(0, 0, session_width(width), top))
    }

    /// Rows of the panel whose title starts with `title` (borders included).
    fn panel_height(buffer: &ratatui::buffer::Buffer, title: &str) -> u16 {
        let rows: Vec<String> = (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol().to_string())
                    .collect()
            })
            .collect();
        let top = rows
            .iter()
            .position(|r| r.contains(title))
            .unwrap_or_else(|| panic!("no {title:?} panel:\n{}", rows.join("\n")));
        let bottom = rows[top..]
            .iter()
            .position(|r| r.starts_with('\u{2514}'))
            .expect("the panel's bottom border");
        bottom as u16 + 1
    }

    /// 20+ clips pending, a long capture error, latency over 9 s.
    fn stressed_state() -> ConsoleState {
        let mut state = busy_state();
        state.outstanding = 23;
        state.clips.captured = 12_345;
        state.notify(
            Severity::Error,
            "cannot start: cannot open the camera /dev/video0: Device or resource busy (os error 16)",
        );
        for ms in [9_900, 10_700, 11_500, 11_600, 12_000] {
            state
                .latency
                .record(Stage::EndToEnd, Duration::from_millis(ms));
        }
        state
    }

    #[test]
    fn values_are_never_cut_at_60x20_80x24_and_200x50() {
        let state = stressed_state();
        let mut log_heights = Vec::new();
        for (width, height) in [(60, 20), (80, 24), (200, 50)] {
            let buffer = render_buffer(&state, width, height);
            let screen = text_in(&buffer, buffer.area);
            println!("{width}x{height}:\n{}", render(&state, width, height));
            let top = top_height(&state, buffer.area);
            let session = text_in(&buffer, Rect::new(0, 0, session_width(width), top));
            for value in [
                "results 40, errors 1, lost 0, pending 23",
                "captured 12345, uploaded 41, spooled 1",
                "file:/videos/lecture.mp4",
                "2 worker(s), 1 busy, backlog 3",
                "running 1m05s / 5m00s, 3m55s left",
                "store and queue reachable",
            ] {
                assert!(
                    session.contains(value),
                    "{width}x{height}: {value:?} cut in the Session panel: {session}"
                );
            }
            let error: Vec<&str> = state.status.split_whitespace().collect();
            assert!(
                screen.contains(&error.join(" ")),
                "{width}x{height}: the error is cut: {screen}"
            );
            if width < HISTOGRAM_FROM_WIDTH {
                assert!(
                    session.contains("latency p50 90 p90 11608 p99 12001 max 12001 ms"),
                    "{width}x{height}: {session}"
                );
                log_heights.push(panel_height(&buffer, " Function log"));
                continue;
            }
            // Every histogram bar's label (its upper bound) and count, in full.
            let latency_area =
                Rect::new(session_width(width), 0, width - session_width(width), top);
            let latency = text_in(&buffer, latency_area);
            let buckets = latency::chart_buckets(&state, latency_area.width - 2);
            assert!(buckets.len() >= 3, "{width}x{height}: {buckets:?}");
            let words: Vec<&str> = latency.split_whitespace().collect();
            for (upper, count) in &buckets {
                let label = latency::short_number(*upper);
                assert!(
                    words.contains(&label.as_str()),
                    "{width}x{height}: bar label {label} missing: {latency}"
                );
                let count = latency::short_number(*count as f64);
                assert!(
                    words.contains(&count.as_str()),
                    "{width}x{height}: bar count {count} missing: {latency}"
                );
            }
            assert!(
                latency.contains("median: fn 51"),
                "{width}x{height}: stage medians cut: {latency}"
            );
            log_heights.push(panel_height(&buffer, " Function log"));
        }
        assert!(
            log_heights[0] >= 3
                && log_heights[0] < log_heights[1]
                && log_heights[1] < log_heights[2],
            "the log panel grows with the terminal: {log_heights:?}"
        );
        assert!(log_heights[2] >= 20, "{log_heights:?}");
    }

    #[test]
    fn panels_show_names_records_latency_and_counters_at_80x24() {
        let screen = render(&busy_state(), 80, 24);
        println!("{screen}");
        for expected in [
            // People: names, academic record, strangers.
            "Ada Lovelace",
            "Alan Turing",
            "S-ada, Computer Science, year 3",
            "People: 2 recognised",
            "strangers: at most 1 per clip, 3 summed over clips (not tracked across clips)",
            // Latency: percentiles and histogram.
            "p50 61",
            "p99 164",
            "10 clips",
            // Logs, without the repeated level.
            "INFO  clip recognised people=Ada Lovelace",
            "WARN  clip not processed",
            // Keys.
            "s start",
            "c clear",
            "q quit",
        ] {
            assert!(screen.contains(expected), "{expected:?} not on screen");
        }
    }

    #[test]
    fn the_log_scrolls_wraps_and_says_when_the_filter_matches_nothing() {
        let mut state = busy_state();
        let long = format!("INFO {}", "word ".repeat(60));
        state
            .logs
            .extend((0..40).map(|i| LogLine::new(1_700_000_000_000, "w", format!("line {i}"))));
        state.logs.extend([LogLine::new(0, "w", long)]);
        let screen = render(&state, 100, 40);
        println!("{screen}");
        // Wrapped: the 60 words all show, over several rows.
        assert_eq!(screen.matches("word").count(), 60, "{screen}");
        state.logs.scroll_up(1000);
        let screen = render(&state, 80, 24);
        assert!(
            screen.contains("clip recognised"),
            "the oldest line: {screen}"
        );
        assert!(screen.contains("rows up, f: follow"), "{screen}");
        state.logs.follow();
        state.logs.filter = "no such text".into();
        let screen = render(&state, 80, 24);
        assert!(
            screen.contains("no line matches the filter \"no such text\""),
            "{screen}"
        );
    }

    #[test]
    fn c_clears_names_and_strangers_and_the_count_stays_cleared() {
        let mut state = busy_state();
        state.clear_people();
        assert!(state.people.is_empty());
        let mut snapshot = SessionSnapshot {
            unknown_faces: 5,
            ..SessionSnapshot::default()
        };
        state.on_snapshot(snapshot.clone(), Duration::from_secs(70));
        // 3 before `c`, 2 since.
        assert_eq!(state.unknown_faces, 2);
        snapshot.unknown_faces = 3;
        state.on_snapshot(snapshot, Duration::from_secs(71));
        assert_eq!(state.unknown_faces, 0);
        assert!(render(&state, 80, 24).contains("no stranger seen"));
    }

    #[test]
    fn the_drain_counts_down_and_says_what_ctrl_c_abandons() {
        let mut state = busy_state();
        state.grace = Duration::from_secs(20);
        state.draining(true);
        let screen = session_text(&state, 100, 30);
        assert!(
            screen.contains("gives up in 19s") || screen.contains("gives up in 20s"),
            "{screen}"
        );
        assert!(
            screen.contains("Ctrl-C again to abandon (2 clips stay in the spool)"),
            "{screen}"
        );
    }

    #[test]
    fn small_and_large_terminals_do_not_panic() {
        let state = busy_state();
        for (w, h) in [(20, 5), (40, 12), (80, 24), (200, 60), (1, 1)] {
            render(&state, w, h);
        }
    }

    #[test]
    fn idle_console_invites_to_start_and_help_lists_keys() {
        let mut state = ConsoleState::new(
            "test".into(),
            "embedded".into(),
            "embedded".into(),
            "cam-1".into(),
        );
        assert_eq!(state.phase, Phase::Idle);
        let screen = render(&state, 80, 24);
        assert!(screen.contains("idle: press s to start"), "{screen}");
        assert!(screen.contains("no results yet"), "{screen}");
        state.mode = InputMode::Help;
        let screen = render(&state, 80, 24);
        assert!(screen.contains("choose the source"), "{screen}");
    }

    #[test]
    fn an_outage_shows_in_the_session_panel_while_it_lasts() {
        let mut state = busy_state();
        assert!(render(&state, 80, 24).contains("store and queue reachable"));
        // 10:55:20 UTC on some day.
        state.link.store_down_since_ns = Some((10 * 3600 + 55 * 60 + 20) * 1_000_000_000);
        let session = session_text(&state, 80, 24);
        assert!(
            session.contains("link store unreachable since 10:55:20, 1 spooled, retrying"),
            "{session}"
        );
        state.link = rollcall_edge::link::LinkStatus::default();
        assert!(!render(&state, 80, 24).contains("unreachable since"));
    }

    #[test]
    fn the_source_picker_lists_choices_free_text_and_why_a_choice_was_refused() {
        let mut state = busy_state();
        let mut picker = crate::tui::source_picker::SourcePicker::open(
            "test",
            &["file:/videos/lecture.mp4".to_string()],
        );
        picker.type_char('x');
        picker.error = Some("x: unknown source kind".into());
        state.mode = InputMode::Source(picker);
        let screen = render(&state, 80, 24);
        assert!(
            screen.contains("file:/videos/lecture.mp4 (recent)"),
            "{screen}"
        );
        assert!(screen.contains("test (test pattern)"), "{screen}");
        assert!(screen.contains("other: x_"), "{screen}");
        assert!(screen.contains("x: unknown source kind"), "{screen}");
    }

    #[test]
    fn paused_and_filtered_log_says_so() {
        let mut state = busy_state();
        state.logs.filter = "corrupt".into();
        state.logs.toggle_pause();
        let screen = render(&state, 80, 24);
        assert!(screen.contains("[filter: corrupt]"), "{screen}");
        assert!(screen.contains("PAUSED"), "{screen}");
        assert!(!screen.contains("clip recognised people"), "{screen}");
    }
}
