//! One file per panel; [`draw`] lays them out.

mod attendance;
mod help;
pub(crate) mod latency;
mod logs;
mod people;
mod session;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::state::{ConsoleState, InputMode};

/// Draw the whole console. Works from 80x24 up; below that panels shrink but nothing panics.
pub fn draw(frame: &mut Frame, state: &ConsoleState) {
    let [top, people_area, logs_area, footer] = Layout::vertical([
        Constraint::Length(9),
        Constraint::Min(5),
        Constraint::Length(7),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let [session_area, latency_area] =
        Layout::horizontal([Constraint::Length(46), Constraint::Min(30)]).areas(top);
    session::draw(frame, session_area, state);
    latency::draw(frame, latency_area, state);
    draw_people_or_attendance(frame, people_area, state);
    logs::draw(frame, logs_area, state);
    draw_footer(frame, footer, state);
    if state.mode == InputMode::Help {
        help::draw(frame, frame.area());
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

fn draw_footer(frame: &mut Frame, area: Rect, state: &ConsoleState) {
    let key = |k: &'static str| Span::styled(k, Style::default().add_modifier(Modifier::REVERSED));
    let line = match &state.mode {
        InputMode::Source(text) => Line::from(vec![
            key(" source "),
            Span::raw(format!(" {text}_  (Enter: use, Esc: cancel)")),
        ]),
        InputMode::Filter(text) => Line::from(vec![
            key(" filter "),
            Span::raw(format!(" {text}_  (Enter: apply, Esc: cancel)")),
        ]),
        _ => {
            let mut spans = vec![
                key("s"),
                Span::raw(" start/stop "),
                key("o"),
                Span::raw(" source "),
                key("/"),
                Span::raw(" filter "),
                key("p"),
                Span::raw(" pause log "),
                key("?"),
                Span::raw(" help "),
                key("q"),
                Span::raw(" quit "),
            ];
            if state.attendance.is_some() {
                spans.extend([
                    key("a"),
                    Span::raw(" attendance "),
                    key("x"),
                    Span::raw("/"),
                    key("m"),
                    Span::raw(" mark wrong/present "),
                ]);
            }
            if !state.status.is_empty() {
                spans.push(Span::raw(format!(" {}", state.status)));
            }
            Line::from(spans)
        }
    };
    frame.render_widget(Paragraph::new(line), area);
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
    use crate::tui::state::Phase;

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

    #[test]
    fn panels_show_names_records_latency_and_counters_at_80x24() {
        let screen = render(&busy_state(), 80, 24);
        println!("{screen}");
        for expected in [
            // People: names, academic record, counts.
            "Ada Lovelace",
            "Alan Turing",
            "S-ada, Computer Science, year 3",
            "2 recognised, 3 unknown face(s)",
            // Session counters and time.
            "captured 42 uploaded 41 spooled 1",
            "results 40 errors 1 lost 0 pending 2",
            "running 1m05s / 5m00s, 3m55s left",
            "2 worker(s), 1 busy, backlog 3",
            // Latency: percentiles, stage medians, histogram bucket labels.
            "p50 61",
            "max 164",
            "10 clips",
            "median: fn 51",
            // Logs.
            "INFO clip recognised people=Ada Lovelace",
            "WARN",
            // Keys.
            "start/stop",
        ] {
            assert!(screen.contains(expected), "{expected:?} not on screen");
        }
        assert!(
            screen.contains("164") || screen.contains("165"),
            "the histogram's last bucket label"
        );
    }

    #[test]
    fn histogram_labels_are_bucket_bounds() {
        let state = busy_state();
        // At 100 columns the latency panel is 100 - 46 wide, 2 of them borders.
        let buckets = state
            .latency
            .buckets(Stage::EndToEnd, latency::bar_count(100 - 46 - 2));
        assert!(buckets.len() > 4);
        let screen = render(&state, 100, 30);
        for (upper, _) in &buckets {
            assert!(
                screen.contains(&format!("{upper:.0}")),
                "bucket label {upper:.0} missing"
            );
        }
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
        assert!(render(&state, 80, 24).contains("gpio"));
        // 10:55:20 UTC on some day.
        state.link.store_down_since_ns = Some((10 * 3600 + 55 * 60 + 20) * 1_000_000_000);
        let screen = render(&state, 80, 24);
        assert!(
            screen.contains("store down since 10:55:20, retrying"),
            "{screen}"
        );
        state.link = rollcall_edge::link::LinkStatus::default();
        assert!(!render(&state, 80, 24).contains("down since"));
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
