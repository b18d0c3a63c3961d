//! What the console shows, updated from session results, probe snapshots and log lines. Pure
//! data: the panels render it, the event loop feeds it, tests build it directly.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

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
    /// Typing a new source.
    Source(String),
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

/// The log panel's lines, pause and filter.
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
}

impl LogView {
    /// Add lines (held back while paused).
    pub fn extend(&mut self, lines: impl IntoIterator<Item = LogLine>) {
        if self.paused {
            self.held.extend(lines);
            let excess = self.held.len().saturating_sub(LOG_LINES_KEPT);
            self.held.drain(..excess);
            return;
        }
        for line in lines {
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
    pub unknown_faces: u64,
    pub latency: LatencyRecorder,
    pub logs: LogView,
    pub mode: InputMode,
    /// The last session's outcome, one line.
    pub last_outcome: Option<String>,
    /// A message for the operator (errors, hints), shown in the footer.
    pub status: String,
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
            latency: LatencyRecorder::new(),
            logs: LogView::default(),
            mode: InputMode::Normal,
            last_outcome: None,
            status: String::new(),
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
        self.latency = LatencyRecorder::new();
        self.last_outcome = None;
        self.camera_offline.clear();
    }

    /// A result arrived. Names and details are kept as the terminal shows them (control
    /// characters escaped): a record must not be able to draw on the screen.
    pub fn on_result(&mut self, got: &ReceivedResult) {
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
        self.link = snapshot.link;
        self.outstanding = snapshot.outstanding;
        self.unknown_faces = snapshot.unknown_faces;
        self.latency = snapshot.latency;
        self.elapsed = elapsed;
        if snapshot.camera_offline != self.camera_offline {
            // The footer says when the camera drops, how reconnecting goes, and when it is back.
            if let Some(last) = snapshot.camera_offline.last() {
                let line = crate::plan::report::camera_offline_line(last);
                self.status = match last.end_ns {
                    Some(_) => line,
                    None => format!("{line}; reconnecting"),
                };
            }
            self.camera_offline = snapshot.camera_offline;
        }
        if snapshot.capture_done && self.phase == Phase::Running {
            self.phase = Phase::Draining;
        }
    }

    /// The session ended with `report` (or failed to run: `Err`).
    pub fn session_ended(&mut self, report: Result<&SessionReport, &str>) {
        self.phase = Phase::Idle;
        self.last_outcome = Some(match report {
            Ok(report) => {
                self.clips = report.clips;
                self.latency = report.latency.clone();
                self.unknown_faces = report.unknown_faces;
                self.outstanding = 0;
                self.link = LinkStatus::default();
                let verdict = match session_error(report) {
                    Some(e) => format!("failed: {}", terminal_safe(&e)),
                    None => format!("{:?}", report.ended)
                        .chars()
                        .flat_map(|c| {
                            if c.is_uppercase() {
                                vec![' ', c.to_ascii_lowercase()]
                            } else {
                                vec![c]
                            }
                        })
                        .collect::<String>()
                        .trim()
                        .to_string(),
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
