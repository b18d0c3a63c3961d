//! What the console shows, updated from session results, probe snapshots and log lines. Pure
//! data: the panels render it, the event loop feeds it, tests build it directly.

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::logs::LogLine;
use crate::plan::report::session_error;
use rollcall_edge::latency::LatencyRecorder;
use rollcall_edge::link::LinkStatus;
use rollcall_edge::receive::ReceivedResult;
use rollcall_edge::session::{ClipCounters, SessionReport, SessionSnapshot};
use rollcall_edge::source::Outage;
use rollcall_protocol::terminal_text::terminal_safe;
use rollcall_recognizer::pool::PoolStats;

/// Log lines kept for the log panel.
const LOG_LINES_KEPT: usize = 1000;

/// How long after its last sighting a person still counts as "in view" (LED, highlighting).
pub const IN_VIEW_FOR: Duration = Duration::from_millis(1500);

/// Where the session is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No session yet (or the last one ended: see [`ConsoleState::last_outcome`]).
    Idle,
    /// Capturing.
    Running,
    /// Capture stopped; waiting for the last results.
    Draining,
}

/// Which input the operator is typing, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputMode {
    /// Keys are commands.
    Normal,
    /// The help overlay is open.
    Help,
    /// The status message whole, in a popup (`e`).
    Message,
    /// Choosing a new source (`o`).
    Source(crate::tui::source_picker::SourcePicker),
    /// Typing the log filter.
    Filter(String),
}

/// One recognised person.
#[derive(Clone, Debug, PartialEq)]
pub struct PersonRow {
    pub person_id: String,
    pub name: String,
    /// Academic details from the people directory.
    pub details: BTreeMap<String, String>,
    /// Similarity at the last sighting.
    pub similarity: f32,
    pub best_similarity: f32,
    /// Last result naming them, ns since the Unix epoch (arrival time).
    pub last_seen_ns: u64,
    /// Clips naming them.
    pub times_seen: u64,
}

/// How much a status message matters: its colour in the status bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Severity {
    /// A hint or a confirmation.
    #[default]
    Info,
    /// Something the operator should know (start-up warnings, an outage).
    Warning,
    /// Something failed.
    Error,
}

/// What the status bar says about the link, so that the message can go once the link is back.
const LINK_STATUS_PREFIX: &str = "link: ";

/// The log panel's lines, pause, filter and scroll position.
#[derive(Clone, Debug, Default)]
pub struct LogView {
    lines: VecDeque<LogLine>,
    /// Lines that arrived while paused (shown on resume).
    held: Vec<LogLine>,
    pub paused: bool,
    /// Case-insensitive substring; empty = everything.
    pub filter: String,
    /// Where the lines come from (`this process`, `CloudWatch /aws/lambda/...`).
    pub origin: String,
    /// Rows scrolled up from the newest (0: following the tail).
    pub scroll: usize,
    /// Rows the panel showed last time it was drawn (one page for PgUp/PgDn).
    pub page: Cell<usize>,
}

impl LogView {
    /// Add lines (held back while paused). While scrolled up, the view stays on the lines
    /// the operator is reading.
    pub fn extend(&mut self, lines: impl IntoIterator<Item = LogLine>) {
        if self.paused {
            self.held.extend(lines);
            let excess = self.held.len().saturating_sub(LOG_LINES_KEPT);
            self.held.drain(..excess);
            return;
        }
        for line in lines {
            if self.scroll > 0 {
                self.scroll += 1;
            }
            if self.lines.len() == LOG_LINES_KEPT {
                self.lines.pop_front();
            }
            self.lines.push_back(line);
        }
    }

    /// Pause or resume; resuming shows what was held.
    pub fn toggle_pause(&mut self) {
        self.paused = !self.paused;
        if !self.paused {
            let held = std::mem::take(&mut self.held);
            self.extend(held);
        }
    }

    /// Lines that pass the filter, oldest first.
    pub fn visible(&self) -> impl Iterator<Item = &LogLine> {
        let needle = self.filter.to_lowercase();
        self.lines
            .iter()
            .filter(move |l| needle.is_empty() || l.message.to_lowercase().contains(&needle))
    }

    /// Lines waiting for the end of the pause.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Lines kept, filter or not.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether no line arrived yet.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Scroll `rows` towards older lines (the panel clamps at the oldest).
    pub fn scroll_up(&mut self, rows: usize) {
        self.scroll = self.scroll.saturating_add(rows);
    }

    /// Scroll `rows` towards newer lines; at the bottom the panel follows the tail again.
    pub fn scroll_down(&mut self, rows: usize) {
        self.scroll = self.scroll.saturating_sub(rows);
    }

    /// Follow the tail (`f`, End).
    pub fn follow(&mut self) {
        self.scroll = 0;
    }

    /// One page: the rows the panel showed last, at least 1.
    pub fn page_rows(&self) -> usize {
        self.page.get().max(1)
    }
}

/// The drain after capture stopped: what the countdown is computed from.
#[derive(Clone, Copy, Debug)]
pub struct DrainView {
    /// When a clip was last uploaded or answered (or the drain started).
    pub moved_at: Instant,
    /// Clips uploaded and answered then.
    pub moved: (u64, u64),
    /// The console quits once the drain is over.
    pub quitting: bool,
}

impl DrainView {
    /// How long until the session gives up waiting, if nothing moves meanwhile.
    pub fn left(&self, grace: Duration) -> Duration {
        grace.saturating_sub(self.moved_at.elapsed())
    }
}

/// Everything on screen.
#[derive(Clone, Debug)]
pub struct ConsoleState {
    /// The source the next session uses (and the current one's).
    pub source: String,
    /// `embedded` or `aws`.
    pub backend: String,
    /// A line about the service (workers, bucket...).
    pub service: String,
    pub device: String,
    pub phase: Phase,
    pub session_id: Option<String>,
    pub elapsed: Duration,
    /// The session's length limit (`None`: until the source ends).
    pub limit: Option<Duration>,
    pub clips: ClipCounters,
    pub spooled: u64,
    pub outstanding: u64,
    /// Is the store or the queue unreachable, since when.
    pub link: LinkStatus,
    /// Embedded backend only.
    pub pool: Option<PoolStats>,
    /// By person id.
    pub people: BTreeMap<String, PersonRow>,
    /// Strangers summed over clips (each result counts the distinct strangers of its clip;
    /// nothing follows a stranger from one clip to the next), since the session started or `c`.
    pub unknown_faces: u64,
    /// The session's total when `c` was pressed (the session keeps counting from its start).
    unknown_cleared_at: u64,
    /// Most distinct strangers in one clip since the session started or `c`: a lower bound
    /// of the strangers seen.
    pub strangers_in_one_clip: u32,
    pub latency: LatencyRecorder,
    pub logs: LogView,
    pub mode: InputMode,
    /// The last session's outcome, one line.
    pub last_outcome: Option<String>,
    /// A message for the operator (errors, warnings, hints), shown in full in the status bar.
    pub status: String,
    /// How much [`ConsoleState::status`] matters.
    pub status_severity: Severity,
    /// The quit drain: when capture was asked to stop, and the last time a clip moved
    /// (uploaded, answered). The session gives up `grace` after the last move.
    pub drain: Option<DrainView>,
    /// The session's grace period (see `--grace`).
    pub grace: Duration,
    /// GPIO: `off`, `button 17 / LED 27`, or why it is unavailable.
    pub gpio: String,
    /// When a network camera was offline in this session.
    pub camera_offline: Vec<Outage>,
    /// `--class`: the attendance panel's content (see `tui/attendance.rs`).
    pub attendance: Option<super::attendance::AttendanceView>,
}

impl ConsoleState {
    /// An idle console.
    pub fn new(source: String, backend: String, service: String, device: String) -> Self {
        ConsoleState {
            source,
            backend,
            service,
            device,
            phase: Phase::Idle,
            session_id: None,
            elapsed: Duration::ZERO,
            limit: None,
            clips: ClipCounters::default(),
            spooled: 0,
            outstanding: 0,
            link: LinkStatus::default(),
            pool: None,
            people: BTreeMap::new(),
            unknown_faces: 0,
            unknown_cleared_at: 0,
            strangers_in_one_clip: 0,
            latency: LatencyRecorder::new(),
            logs: LogView::default(),
            mode: InputMode::Normal,
            last_outcome: None,
            status: String::new(),
            status_severity: Severity::Info,
            drain: None,
            grace: Duration::from_secs(10),
            gpio: "off".to_string(),
            camera_offline: Vec::new(),
            attendance: None,
        }
    }

    /// A new session started: forget the previous one's figures.
    pub fn session_started(&mut self, session_id: &str, limit: Option<Duration>) {
        self.phase = Phase::Running;
        self.session_id = Some(session_id.to_string());
        self.elapsed = Duration::ZERO;
        self.limit = limit;
        self.clips = ClipCounters::default();
        self.spooled = 0;
        self.outstanding = 0;
        self.link = LinkStatus::default();
        self.people.clear();
        self.unknown_faces = 0;
        self.unknown_cleared_at = 0;
        self.strangers_in_one_clip = 0;
        self.latency = LatencyRecorder::new();
        self.last_outcome = None;
        self.camera_offline.clear();
        self.drain = None;
    }

    /// Put `text` in the status bar.
    pub fn notify(&mut self, severity: Severity, text: impl Into<String>) {
        self.status = text.into();
        self.status_severity = severity;
    }

    /// `c`: forget who was seen and the strangers counted so far.
    pub fn clear_people(&mut self) {
        self.people.clear();
        self.unknown_cleared_at += self.unknown_faces;
        self.unknown_faces = 0;
        self.strangers_in_one_clip = 0;
    }

    /// Capture was asked to stop (quit, `s`): the drain countdown starts.
    pub fn draining(&mut self, quitting: bool) {
        let now = Instant::now();
        let drain = self.drain.get_or_insert(DrainView {
            moved_at: now,
            moved: (0, 0),
            quitting,
        });
        drain.quitting |= quitting;
    }

    /// A result arrived. Names and details are kept as the terminal shows them (control
    /// characters escaped): a record must not be able to draw on the screen.
    pub fn on_result(&mut self, got: &ReceivedResult) {
        self.strangers_in_one_clip = self.strangers_in_one_clip.max(got.result.unknown_faces);
        for person in &got.result.people {
            let name = terminal_safe(&person.name).into_owned();
            let row = self
                .people
                .entry(person.person_id.clone())
                .or_insert_with(|| PersonRow {
                    person_id: terminal_safe(&person.person_id).into_owned(),
                    name: name.clone(),
                    details: BTreeMap::new(),
                    similarity: person.similarity,
                    best_similarity: person.similarity,
                    last_seen_ns: got.received_ns,
                    times_seen: 0,
                });
            row.name = name;
            if !person.details.is_empty() {
                row.details = person
                    .details
                    .iter()
                    .map(|(k, v)| (terminal_safe(k).into_owned(), terminal_safe(v).into_owned()))
                    .collect();
            }
            row.similarity = person.similarity;
            row.best_similarity = row.best_similarity.max(person.similarity);
            row.last_seen_ns = row.last_seen_ns.max(got.received_ns);
            row.times_seen += 1;
        }
    }

    /// The session's counters and latency now.
    pub fn on_snapshot(&mut self, snapshot: SessionSnapshot, elapsed: Duration) {
        self.clips = snapshot.clips;
        self.spooled = snapshot.spooled;
        self.outstanding = snapshot.outstanding;
        self.unknown_faces = snapshot
            .unknown_faces
            .saturating_sub(self.unknown_cleared_at);
        if let Some(drain) = &mut self.drain {
            let moved = (snapshot.clips.uploaded, snapshot.clips.results);
            if moved != drain.moved {
                drain.moved = moved;
                drain.moved_at = Instant::now();
            }
        }
        // The link came back: its message goes from the status bar.
        let was_down = self.link.is_down();
        if snapshot.link.is_down() {
            if let Some(error) = &snapshot.link.last_error {
                self.notify(
                    Severity::Warning,
                    format!("{LINK_STATUS_PREFIX}{}", terminal_safe(error)),
                );
            }
        } else if was_down && self.status.starts_with(LINK_STATUS_PREFIX) {
            self.notify(Severity::Info, "link: store and queue reachable again");
        }
        self.link = snapshot.link;
        self.latency = snapshot.latency;
        self.elapsed = elapsed;
        if snapshot.camera_offline != self.camera_offline {
            // The footer says when the camera drops, how reconnecting goes, and when it is back.
            if let Some(last) = snapshot.camera_offline.last() {
                let line = crate::plan::report::camera_offline_line(last);
                match last.end_ns {
                    Some(_) => self.notify(Severity::Info, line),
                    None => self.notify(Severity::Warning, format!("{line}; reconnecting")),
                }
            }
            self.camera_offline = snapshot.camera_offline;
        }
        if snapshot.capture_done && self.phase == Phase::Running {
            self.phase = Phase::Draining;
            self.draining(false);
        }
    }

    /// The session ended with `report` (or failed to run: `Err`).
    pub fn session_ended(&mut self, report: Result<&SessionReport, &str>) {
        self.phase = Phase::Idle;
        self.drain = None;
        self.last_outcome = Some(match report {
            Ok(report) => {
                self.clips = report.clips;
                self.latency = report.latency.clone();
                self.unknown_faces = report.unknown_faces.saturating_sub(self.unknown_cleared_at);
                self.outstanding = 0;
                self.link = LinkStatus::default();
                let verdict = match session_error(report) {
                    Some(e) => format!("failed: {}", terminal_safe(&e)),
                    None => crate::plan::report::ended_text(report).to_string(),
                };
                format!(
                    "session ended ({verdict}): {} clips, {} results, {} spooled, {} lost",
                    report.clips.captured,
                    report.clips.results,
                    report.clips.spooled,
                    report.clips.lost
                )
            }
            Err(e) => format!("session failed: {e}"),
        });
    }

    /// People ordered by last sighting, most recent first.
    pub fn people_by_recency(&self) -> Vec<&PersonRow> {
        let mut rows: Vec<&PersonRow> = self.people.values().collect();
        rows.sort_by(|a, b| {
            b.last_seen_ns
                .cmp(&a.last_seen_ns)
                .then(a.person_id.cmp(&b.person_id))
        });
        rows
    }

    /// Whether an enrolled person was seen in the last [`IN_VIEW_FOR`] before `now_ns`.
    pub fn known_in_view(&self, now_ns: u64) -> bool {
        let window = IN_VIEW_FOR.as_nanos() as u64;
        self.phase != Phase::Idle
            && self
                .people
                .values()
                .any(|p| now_ns.saturating_sub(p.last_seen_ns) <= window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> LogLine {
        LogLine::new(0, "test", text)
    }

    #[test]
    fn a_link_warning_goes_from_the_status_bar_once_the_link_is_back() {
        let mut state =
            ConsoleState::new("test".into(), "aws".into(), "aws".into(), "cam-1".into());
        let mut snapshot = SessionSnapshot::default();
        snapshot.link.store_down_since_ns = Some(1_000_000_000);
        snapshot.link.last_error = Some("s3 store: request has timed out".into());
        state.on_snapshot(snapshot.clone(), Duration::from_secs(1));
        assert!(state.status.contains("request has timed out"));
        assert_eq!(state.status_severity, Severity::Warning);
        snapshot.link = LinkStatus::default();
        state.on_snapshot(snapshot, Duration::from_secs(2));
        assert!(!state.status.contains("timed out"), "{}", state.status);
        assert_eq!(state.status_severity, Severity::Info);
        // Other messages stay.
        state.notify(Severity::Error, "cannot start: camera busy");
        state.on_snapshot(SessionSnapshot::default(), Duration::from_secs(3));
        assert_eq!(state.status, "cannot start: camera busy");
    }

    #[test]
    fn log_filter_is_case_insensitive_and_pause_holds_lines() {
        let mut logs = LogView::default();
        logs.extend([entry("clip recognised Ada"), entry("gallery loaded")]);
        logs.filter = "ADA".into();
        assert_eq!(logs.visible().count(), 1);
        logs.filter.clear();
        logs.toggle_pause();
        logs.extend([entry("while paused")]);
        assert_eq!(logs.visible().count(), 2);
        assert_eq!(logs.held(), 1);
        logs.toggle_pause();
        assert_eq!(logs.visible().count(), 3);
        assert_eq!(logs.held(), 0);
    }
}
