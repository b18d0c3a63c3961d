//! The console's attendance (`--class`): the live decision shown in the attendance panel, the
//! decision stored when a session ends, and the operator's marks from the People panel (`x`:
//! wrong, so absent; `m`: present), which go through the same [`AttendanceTaker::mark`] as
//! `rollcall attendance mark` (operator `$USER`). A mark made while the session runs is applied
//! as soon as its attendance is stored.

use crossterm::event::KeyCode;
use rollcall_edge::session::{SessionReport, SessionSnapshot};
use rollcall_recognizer::directory::attendance::{AttendanceRow, AttendanceStatus};

use super::state::{ConsoleState, Severity};
use crate::plan::attendance::{decide, operator_name, summary_line, AttendanceTaker};

/// What the attendance panel shows.
#[derive(Clone, Debug)]
pub struct AttendanceView {
    /// The class.
    pub class: String,
    /// Rows of the running (or last) session: roster members, then visitors.
    pub rows: Vec<AttendanceRow>,
    /// Small terminals show either the People or the attendance panel: this one when set.
    pub shown: bool,
    /// The People panel's selected row (index in recency order), for marks.
    pub selected: usize,
    /// The session whose attendance is stored (marks go there), once it ended.
    pub stored_session: Option<String>,
    /// Marks made while the session runs: (person id, status).
    pub pending: Vec<(String, AttendanceStatus)>,
}

impl AttendanceView {
    /// Everyone on the roster absent: no session yet.
    pub fn new(taker: &AttendanceTaker) -> AttendanceView {
        AttendanceView {
            class: taker.roster.class.clone(),
            rows: decide(&taker.roster.members, &[], taker.roster.confirm_clips),
            shown: false,
            selected: 0,
            stored_session: None,
            pending: Vec::new(),
        }
    }

    /// Rows with `status`.
    pub fn with_status(&self, status: AttendanceStatus) -> impl Iterator<Item = &AttendanceRow> {
        self.rows.iter().filter(move |r| r.status == status)
    }
}

/// The running session's decision so far.
pub fn on_snapshot(
    state: &mut ConsoleState,
    taker: Option<&AttendanceTaker>,
    snapshot: &SessionSnapshot,
) {
    if let (Some(taker), Some(view)) = (taker, state.attendance.as_mut()) {
        if view.stored_session.is_some() {
            // A new session started: marks now wait for its end.
            view.stored_session = None;
        }
        view.rows = decide(
            &taker.roster.members,
            &snapshot.people,
            taker.roster.confirm_clips,
        );
    }
}

/// Store the finished session's attendance and apply the marks made meanwhile.
pub fn on_session_end(
    state: &mut ConsoleState,
    taker: Option<&AttendanceTaker>,
    report: &SessionReport,
    session_id: &str,
    device: &str,
) {
    let (Some(taker), Some(view)) = (taker, state.attendance.as_mut()) else {
        return;
    };
    let mut failed = None;
    match taker.store(report, session_id, device) {
        Ok((mut stored, _)) => {
            for (person_id, to) in std::mem::take(&mut view.pending) {
                match taker.mark(
                    session_id,
                    &person_id,
                    to,
                    &console_reason(to),
                    &operator_name(None),
                ) {
                    Ok(marked) => stored = marked,
                    Err(e) => failed = Some(format!("mark {person_id}: {e:#}")),
                }
            }
            tracing::info!("{}", summary_line(&stored));
            view.rows = stored.rows;
            view.stored_session = Some(session_id.to_string());
        }
        Err(e) => failed = Some(format!("{e:#}")),
    }
    if let Some(message) = failed {
        state.notify(Severity::Error, message);
    }
}

fn console_reason(to: AttendanceStatus) -> String {
    match to {
        AttendanceStatus::Absent => "marked wrong in the console".to_string(),
        _ => "marked present in the console".to_string(),
    }
}

/// `a`: switch People / attendance on small terminals; `j`/`k`: select a People row (the arrows
/// scroll the log);
/// `x`: the selected person was named wrongly (absent); `m`: they were there (present).
pub fn on_key(state: &mut ConsoleState, taker: Option<&AttendanceTaker>, key: KeyCode) {
    let people: Vec<String> = state
        .people_by_recency()
        .iter()
        .map(|p| p.person_id.clone())
        .collect();
    let Some(view) = state.attendance.as_mut() else {
        if matches!(key, KeyCode::Char('x') | KeyCode::Char('m')) {
            state.notify(Severity::Warning, "no --class: no attendance to mark");
        }
        return;
    };
    let to = match key {
        KeyCode::Char('a') => {
            view.shown = !view.shown;
            return;
        }
        KeyCode::Char('k') => {
            view.selected = view.selected.saturating_sub(1);
            return;
        }
        KeyCode::Char('j') => {
            view.selected = (view.selected + 1).min(people.len().saturating_sub(1));
            return;
        }
        KeyCode::Char('x') => AttendanceStatus::Absent,
        KeyCode::Char('m') => AttendanceStatus::Present,
        _ => return,
    };
    let Some(person_id) = people.get(view.selected).cloned() else {
        state.notify(Severity::Warning, "nobody selected on the People panel");
        return;
    };
    let (Some(taker), Some(session_id)) = (taker, view.stored_session.clone()) else {
        view.pending.retain(|(id, _)| *id != person_id);
        view.pending.push((person_id.clone(), to));
        state.notify(
            Severity::Info,
            format!("{person_id} marked {to}: applied when the session's attendance is stored"),
        );
        return;
    };
    match taker.mark(
        &session_id,
        &person_id,
        to,
        &console_reason(to),
        &operator_name(None),
    ) {
        Ok(marked) => {
            view.rows = marked.rows;
            state.notify(
                Severity::Info,
                format!("{person_id} marked {to} in session {session_id}"),
            );
        }
        Err(e) => state.notify(Severity::Error, format!("mark {person_id}: {e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use rollcall_recognizer::directory::attendance::{AttendanceBook, SessionAttendance};
    use rollcall_recognizer::directory::sqlite::SqliteDirectory;
    use rollcall_recognizer::directory::{PeopleDirectory, PersonRecord};

    use super::*;
    use crate::plan::attendance::{roster_names, ClassRoster};
    use crate::tui::state::PersonRow;

    fn console() -> (ConsoleState, AttendanceTaker, Arc<SqliteDirectory>) {
        let dir = Arc::new(SqliteDirectory::open_in_memory().unwrap());
        let ids: Vec<String> = ["ann", "bob", "cy"].map(String::from).to_vec();
        let records: Vec<PersonRecord> = ids
            .iter()
            .map(|id| PersonRecord::new(id).unwrap())
            .collect();
        dir.upsert_records(&records).unwrap();
        dir.add_to_class("c", &ids).unwrap();
        let roster = ClassRoster {
            class: "c".into(),
            members: roster_names(dir.as_ref(), &ids).unwrap(),
            confirm_clips: 2,
        };
        let taker = AttendanceTaker::new(roster, dir.clone(), dir.clone(), None);
        let mut state =
            ConsoleState::new("test".into(), "embedded".into(), "".into(), "cam".into());
        state.attendance = Some(AttendanceView::new(&taker));
        state.people.insert(
            "ann".into(),
            PersonRow {
                person_id: "ann".into(),
                name: "Ann".into(),
                details: BTreeMap::new(),
                similarity: 0.6,
                best_similarity: 0.6,
                last_seen_ns: 1,
                times_seen: 3,
            },
        );
        (state, taker, dir)
    }

    fn screen(state: &ConsoleState, width: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, 24)).unwrap();
        terminal
            .draw(|frame| crate::tui::panels::draw(frame, state))
            .unwrap();
        let buffer = terminal.backend().buffer();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn marks_wait_for_the_stored_session_then_go_through_mark() {
        let (mut state, taker, dir) = console();
        on_key(&mut state, Some(&taker), KeyCode::Char('x'));
        let view = state.attendance.as_ref().unwrap();
        assert_eq!(
            view.pending,
            vec![("ann".to_string(), AttendanceStatus::Absent)]
        );
        assert!(state.status.contains("applied when"), "{}", state.status);

        // The session's attendance is stored: a mark now changes it at once.
        dir.store_attendance(&SessionAttendance {
            session_id: "s1".into(),
            class: "c".into(),
            device: "cam".into(),
            started_at: "2026-01-01T08:00:00Z".into(),
            ended_at: "2026-01-01T09:00:00Z".into(),
            confirm_clips: 2,
            rows: state.attendance.as_ref().unwrap().rows.clone(),
            corrections: vec![],
        })
        .unwrap();
        state.attendance.as_mut().unwrap().stored_session = Some("s1".into());
        on_key(&mut state, Some(&taker), KeyCode::Char('m'));
        let stored = dir.attendance("s1").unwrap().unwrap();
        let ann = stored.rows.iter().find(|r| r.person_id == "ann").unwrap();
        assert_eq!(ann.status, AttendanceStatus::Present);
        assert_eq!(ann.decided, Some(AttendanceStatus::Absent));
        assert_eq!(stored.corrections[0].operator, operator_name(None));
        assert_eq!(
            stored.corrections[0].reason,
            "marked present in the console"
        );
    }

    #[test]
    fn the_panel_sits_beside_people_or_switches_with_it() {
        let (mut state, _, _) = console();
        let wide = screen(&state, 140);
        assert!(
            wide.contains("Attendance: c") && wide.contains("People"),
            "{wide}"
        );
        assert!(wide.contains("present 0 of 3"), "{wide}");
        let narrow = screen(&state, 80);
        assert!(!narrow.contains("Attendance: c"), "{narrow}");
        on_key(&mut state, None, KeyCode::Char('a'));
        let narrow = screen(&state, 80);
        assert!(narrow.contains("Attendance: c"), "{narrow}");
        assert!(narrow.contains("absent 3: Ann, Bob, Cy"), "{narrow}");
    }
}
