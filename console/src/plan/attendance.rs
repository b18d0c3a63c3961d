//! The attendance decision: who of a class was there, from what a session received.
//!
//! It lives here, beside the session report, because it is a fold over the per-person tallies
//! the edge keeps ([`PersonTally`]: clips, best similarity, first and last seen) and the
//! recognition function never sees a session. The rows it makes are stored by the people
//! directory's [`AttendanceBook`]; `session --class`, the console's attendance panel and
//! `attendance mark` all go through this module.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use clap::Args;
use rollcall_edge::session::{PersonTally, SessionReport};
use rollcall_recognizer::directory::attendance::{
    validate_class, AttendanceBook, AttendanceRow, AttendanceStatus, SessionAttendance,
};
use rollcall_recognizer::directory::{default_display_name, rfc3339_utc, PeopleDirectory};

use super::durations::parse_duration;
use super::CapturePlan;
use crate::exit_codes::UsageError;
use crate::settings::DirectoryAccess;

/// Default of `--confirm-clips`: one clip alone is too easily a stranger named wrongly.
pub const DEFAULT_CONFIRM_CLIPS: u64 = 2;

/// `--class` and `--confirm-clips` of `session` and `console`.
#[derive(Args, Debug, Clone, Default)]
pub struct AttendanceArgs {
    /// Take attendance of this class (its roster: `rollcall class add`); stored when the
    /// session ends (`rollcall attendance show latest`).
    #[arg(long, value_name = "CLASS")]
    pub class: Option<String>,
    /// Clips a person must be recognised in to count as present (fewer: unconfirmed).
    #[arg(long, default_value_t = DEFAULT_CONFIRM_CLIPS, value_name = "N")]
    pub confirm_clips: u64,
    /// With --class: after storing this session's attendance, delete the attendance of
    /// sessions that ended longer ago than this (e.g. 180d). Default: keep everything.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub retention: Option<Duration>,
}

/// A session taking attendance: the class's roster and where to store the outcome.
pub struct AttendanceTaker {
    /// The roster, read when the session started.
    pub roster: ClassRoster,
    people: Arc<dyn PeopleDirectory>,
    book: Arc<dyn AttendanceBook>,
    retention: Option<Duration>,
}

impl std::fmt::Debug for AttendanceTaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttendanceTaker")
            .field("roster", &self.roster)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl AttendanceTaker {
    /// Take attendance of `roster`, storing it in `book` (names and marks from `people`),
    /// keeping `retention` of history (`None`: all).
    pub fn new(
        roster: ClassRoster,
        people: Arc<dyn PeopleDirectory>,
        book: Arc<dyn AttendanceBook>,
        retention: Option<Duration>,
    ) -> AttendanceTaker {
        AttendanceTaker {
            roster,
            people,
            book,
            retention,
        }
    }

    /// Decide and store the attendance of a finished session, then apply the retention.
    /// Returns what was stored and how many older sessions the retention removed.
    pub fn store(
        &self,
        report: &SessionReport,
        session_id: &str,
        device: &str,
    ) -> Result<(SessionAttendance, usize)> {
        let attendance = session_attendance(
            &self.roster,
            &report.people,
            session_id,
            device,
            report.total_time,
        );
        self.book
            .store_attendance(&attendance)
            .with_context(|| format!("cannot store the attendance of session {session_id}"))?;
        let pruned = match self.retention {
            Some(retention) => prune_older_than(self.book.as_ref(), retention)?,
            None => 0,
        };
        Ok((attendance, pruned))
    }

    /// [`mark`] in this class's store.
    pub fn mark(
        &self,
        session_id: &str,
        person_id: &str,
        to: AttendanceStatus,
        reason: &str,
        operator: &str,
    ) -> Result<SessionAttendance> {
        mark(
            self.people.as_ref(),
            self.book.as_ref(),
            session_id,
            person_id,
            to,
            reason,
            operator,
        )
    }
}

/// Delete the attendance of sessions that ended before now - `retention`; returns how many.
pub fn prune_older_than(book: &dyn AttendanceBook, retention: Duration) -> Result<usize> {
    let cutoff = SystemTime::now()
        .checked_sub(retention)
        .unwrap_or(std::time::UNIX_EPOCH);
    Ok(book.prune_attendance(&rfc3339_utc(cutoff))?)
}

/// A class's roster with display names, read before the session starts.
#[derive(Clone, Debug)]
pub struct ClassRoster {
    /// The class.
    pub class: String,
    /// (person id, display name), sorted by id.
    pub members: Vec<(String, String)>,
    /// Clips needed for `present`.
    pub confirm_clips: u64,
}

impl AttendanceArgs {
    /// With `--class`: open the plan's people directory and attendance, read the roster.
    pub fn open(&self, plan: &CapturePlan) -> Result<Option<AttendanceTaker>> {
        if self.class.is_none() {
            return Ok(None);
        }
        // On AWS the roster is in the session's deployment (`--prefix` / `--bucket`).
        #[cfg(feature = "aws")]
        let names = Some(&plan.names);
        #[cfg(not(feature = "aws"))]
        let names = None;
        let (people, book, _) = plan
            .recognition
            .people_and_attendance_in(DirectoryAccess::Existing, names)?;
        let Some(roster) = self.roster(people.as_ref(), book.as_ref())? else {
            return Ok(None);
        };
        Ok(Some(AttendanceTaker::new(
            roster,
            people,
            book,
            self.retention,
        )))
    }

    /// The roster of `--class` (none without it). A class that does not exist or is empty is a
    /// usage error naming it: a session must not run for an hour against a mistyped class.
    pub fn roster(
        &self,
        people: &dyn PeopleDirectory,
        book: &dyn AttendanceBook,
    ) -> Result<Option<ClassRoster>> {
        let Some(class) = &self.class else {
            return Ok(None);
        };
        validate_class(class).map_err(|e| UsageError(format!("--class: {e}")))?;
        if self.confirm_clips == 0 {
            return Err(UsageError("--confirm-clips must be at least 1".into()).into());
        }
        let ids = book
            .roster(class)
            .with_context(|| format!("cannot read the roster of class {class:?}"))?;
        if ids.is_empty() {
            return Err(UsageError(format!(
                "class {class:?} has nobody on its roster (add people with `rollcall class add {class} ID...`)"
            ))
            .into());
        }
        Ok(Some(ClassRoster {
            class: class.clone(),
            members: roster_names(people, &ids)?,
            confirm_clips: self.confirm_clips,
        }))
    }
}

/// Display names of `ids` from the directory (the default name for someone it lacks).
pub fn roster_names(people: &dyn PeopleDirectory, ids: &[String]) -> Result<Vec<(String, String)>> {
    ids.iter()
        .map(|id| {
            let name = people
                .person(id)?
                .map_or_else(|| default_display_name(id), |p| p.name);
            Ok((id.clone(), name))
        })
        .collect()
}

/// The attendance decision over what a session received: one row per roster member
/// (`present` when seen in at least `confirm_clips` clips, `unconfirmed` when in fewer,
/// `absent` when never), sorted by id, then the `visitor`s (seen, not on the roster).
pub fn decide(
    roster: &[(String, String)],
    people: &[PersonTally],
    confirm_clips: u64,
) -> Vec<AttendanceRow> {
    let seen = |id: &str| people.iter().find(|p| p.person_id == id && p.clips > 0);
    let row = |id: &str, name: &str, status, tally: Option<&PersonTally>| AttendanceRow {
        person_id: id.to_owned(),
        name: name.to_owned(),
        status,
        decided: None,
        clips: tally.map_or(0, |t| t.clips),
        best_similarity: tally.map(|t| t.best_similarity),
        first_seen_ns: tally.map(|t| t.first_seen_ns),
        last_seen_ns: tally.map(|t| t.last_seen_ns),
    };
    let mut members: Vec<&(String, String)> = roster.iter().collect();
    members.sort_by(|a, b| a.0.cmp(&b.0));
    members.dedup_by(|a, b| a.0 == b.0);
    let mut rows: Vec<AttendanceRow> = members
        .iter()
        .map(|(id, name)| match seen(id) {
            Some(t) if t.clips >= confirm_clips => {
                row(id, name, AttendanceStatus::Present, Some(t))
            }
            Some(t) => row(id, name, AttendanceStatus::Unconfirmed, Some(t)),
            None => row(id, name, AttendanceStatus::Absent, None),
        })
        .collect();
    let mut visitors: Vec<AttendanceRow> = people
        .iter()
        .filter(|p| p.clips > 0 && !members.iter().any(|(id, _)| *id == p.person_id))
        .map(|p| row(&p.person_id, &p.name, AttendanceStatus::Visitor, Some(p)))
        .collect();
    visitors.sort_by(|a, b| a.person_id.cmp(&b.person_id));
    rows.extend(visitors);
    rows
}

/// A finished session's attendance: the decision plus when and where.
pub fn session_attendance(
    roster: &ClassRoster,
    people: &[PersonTally],
    session_id: &str,
    device: &str,
    session_time: Duration,
) -> SessionAttendance {
    let ended = SystemTime::now();
    let started = ended.checked_sub(session_time).unwrap_or(ended);
    SessionAttendance {
        session_id: session_id.to_owned(),
        class: roster.class.clone(),
        device: device.to_owned(),
        started_at: rfc3339_utc(started),
        ended_at: rfc3339_utc(ended),
        confirm_clips: roster.confirm_clips,
        rows: decide(&roster.members, people, roster.confirm_clips),
        corrections: Vec::new(),
    }
}

/// `class physics-101: 1 present of 3, 0 unconfirmed, 2 absent (Ann, Bob), 0 visitors`
pub fn summary_line(attendance: &SessionAttendance) -> String {
    let c = attendance.counts();
    let absent: Vec<&str> = attendance
        .rows
        .iter()
        .filter(|r| r.status == AttendanceStatus::Absent)
        .map(|r| r.name.as_str())
        .collect();
    format!(
        "class {}: {} present of {}, {} unconfirmed, {} absent{}, {} visitor(s)",
        attendance.class,
        c.present,
        c.roster,
        c.unconfirmed,
        c.absent,
        if absent.is_empty() {
            String::new()
        } else {
            format!(" ({})", absent.join(", "))
        },
        c.visitors
    )
}

/// The operator's name for corrections: `--operator`, else `$USER`, else `unknown`.
pub fn operator_name(flag: Option<&str>) -> String {
    flag.map(str::to_owned)
        .or_else(|| std::env::var("USER").ok())
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Correct one person's status in a stored session (the one path of `attendance mark` and the
/// console's key): the row keeps the session's decision, the change is recorded with `reason`,
/// `operator` and the time. Returns the updated attendance.
pub fn mark(
    people: &dyn PeopleDirectory,
    book: &dyn AttendanceBook,
    session_id: &str,
    person_id: &str,
    to: AttendanceStatus,
    reason: &str,
    operator: &str,
) -> Result<SessionAttendance> {
    let mut attendance = book
        .attendance(session_id)?
        .ok_or_else(|| UsageError(format!("no attendance stored for session {session_id:?}")))?;
    let name = people
        .person(person_id)?
        .map_or_else(|| default_display_name(person_id), |p| p.name);
    attendance.mark(
        person_id,
        &name,
        to,
        reason,
        operator,
        &rfc3339_utc(SystemTime::now()),
    )?;
    book.store_attendance(&attendance)?;
    Ok(attendance)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(id: &str, clips: u64) -> PersonTally {
        PersonTally {
            person_id: id.into(),
            name: id.to_uppercase(),
            clips,
            best_similarity: 0.6,
            first_seen_ns: 1_000,
            last_seen_ns: 2_000,
            details: Default::default(),
        }
    }

    fn roster() -> Vec<(String, String)> {
        ["cy", "ann", "bob"]
            .iter()
            .map(|id| (id.to_string(), id.to_string()))
            .collect()
    }

    #[test]
    fn present_unconfirmed_absent_and_visitors() {
        let rows = decide(
            &roster(),
            &[
                tally("ann", 3),
                tally("bob", 1),
                tally("zed", 5),
                tally("eve", 1),
            ],
            2,
        );
        let got: Vec<(&str, AttendanceStatus)> = rows
            .iter()
            .map(|r| (r.person_id.as_str(), r.status))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ann", AttendanceStatus::Present),
                ("bob", AttendanceStatus::Unconfirmed),
                ("cy", AttendanceStatus::Absent),
                ("eve", AttendanceStatus::Visitor),
                ("zed", AttendanceStatus::Visitor),
            ]
        );
        assert_eq!(rows[0].clips, 3);
        assert_eq!(rows[0].first_seen_ns, Some(1_000));
        assert_eq!(rows[2].best_similarity, None);
        assert_eq!(rows[2].clips, 0);
    }

    #[test]
    fn one_clip_is_unconfirmed_unless_one_confirms() {
        let seen_once = [tally("ann", 1)];
        assert_eq!(
            decide(&roster(), &seen_once, 2)[0].status,
            AttendanceStatus::Unconfirmed
        );
        assert_eq!(
            decide(&roster(), &seen_once, 1)[0].status,
            AttendanceStatus::Present
        );
    }

    #[test]
    fn summary_names_the_absent() {
        let r = ClassRoster {
            class: "c".into(),
            members: roster(),
            confirm_clips: 2,
        };
        let a = session_attendance(&r, &[tally("ann", 2)], "s", "cam", Duration::from_secs(60));
        assert_eq!(
            summary_line(&a),
            "class c: 1 present of 3, 0 unconfirmed, 2 absent (bob, cy), 0 visitor(s)"
        );
        assert!(a.started_at <= a.ended_at);
    }
}
