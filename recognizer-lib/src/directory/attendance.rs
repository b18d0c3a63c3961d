//! Classes (rosters) and attendance history: people-directory data, stored beside the people
//! directory by the same backends ([`AttendanceBook`] on SQLite and DynamoDB).
//!
//! A class is a named list of person ids. A session tied to a class ends with a
//! [`SessionAttendance`]: one [`AttendanceRow`] per roster member (present, unconfirmed or absent)
//! plus the visitors (seen, not on the roster). The decision itself is made by the console from
//! what the session received; this module stores it, applies operator corrections
//! ([`SessionAttendance::mark`], keeping the original decision and an audit trail) and erases a
//! person ([`SessionAttendance::erase`]).
//!
//! ```
//! use rollcall_recognizer::directory::attendance::{AttendanceBook, AttendanceStatus};
//! use rollcall_recognizer::directory::sqlite::SqliteDirectory;
//!
//! let book = SqliteDirectory::open_in_memory()?;
//! book.add_to_class("physics-101", &["ann".into(), "bob".into()])?;
//! assert_eq!(book.roster("physics-101")?, vec!["ann", "bob"]);
//! # Ok::<(), rollcall_recognizer::directory::DirectoryError>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{validate_person_id, DirectoryError};

/// Maximum length of a class name, in bytes.
pub const MAX_CLASS_LEN: usize = 128;

/// Check that `class` can be used as a class name: the rules of person ids (non-empty, at most
/// [`MAX_CLASS_LEN`] bytes, no separators or control characters, no leading `-`, no outer
/// whitespace).
pub fn validate_class(class: &str) -> Result<(), DirectoryError> {
    validate_person_id(class).map_err(|e| match e {
        DirectoryError::InvalidPersonId { id, reason } => {
            DirectoryError::InvalidClass { class: id, reason }
        }
        other => other,
    })
}

/// One person's attendance in one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttendanceStatus {
    /// On the roster and seen in at least the confirming number of clips.
    Present,
    /// On the roster and seen, but in fewer clips than confirm presence.
    Unconfirmed,
    /// On the roster and never seen.
    Absent,
    /// Seen, but not on the class's roster.
    Visitor,
}

impl AttendanceStatus {
    /// The word used in tables, JSON and CSV (`present`, `unconfirmed`, `absent`, `visitor`).
    pub fn as_str(self) -> &'static str {
        match self {
            AttendanceStatus::Present => "present",
            AttendanceStatus::Unconfirmed => "unconfirmed",
            AttendanceStatus::Absent => "absent",
            AttendanceStatus::Visitor => "visitor",
        }
    }
}

impl std::fmt::Display for AttendanceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AttendanceStatus {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "present" => Ok(AttendanceStatus::Present),
            "unconfirmed" => Ok(AttendanceStatus::Unconfirmed),
            "absent" => Ok(AttendanceStatus::Absent),
            "visitor" => Ok(AttendanceStatus::Visitor),
            other => Err(format!(
                "{other:?} is not an attendance status (present, unconfirmed, absent, visitor)"
            )),
        }
    }
}

/// One person's line in a session's attendance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttendanceRow {
    /// Directory id.
    pub person_id: String,
    /// Display name when the session ended.
    pub name: String,
    /// The status now (after any correction).
    pub status: AttendanceStatus,
    /// What the session decided, when an operator changed it since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided: Option<AttendanceStatus>,
    /// Clips the person was recognised in.
    pub clips: u64,
    /// Highest similarity over those clips (`None` when never seen).
    pub best_similarity: Option<f32>,
    /// When the first clip they were seen in closed, ns since the Unix epoch.
    pub first_seen_ns: Option<u64>,
    /// When the last clip they were seen in closed, ns since the Unix epoch.
    pub last_seen_ns: Option<u64>,
}

/// An operator's change of one row, kept with the session (the audit trail).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Correction {
    /// Whose row changed.
    pub person_id: String,
    /// The status before the change.
    pub from: AttendanceStatus,
    /// The status after it.
    pub to: AttendanceStatus,
    /// Why (free text, required).
    pub reason: String,
    /// Who changed it.
    pub operator: String,
    /// When, RFC 3339 UTC.
    pub at: String,
}

/// A session's attendance: who of the class was there, and the visitors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionAttendance {
    /// The capture session's id.
    pub session_id: String,
    /// The class whose roster was checked.
    pub class: String,
    /// The edge device that captured it.
    pub device: String,
    /// Capture start, RFC 3339 UTC.
    pub started_at: String,
    /// Session end, RFC 3339 UTC.
    pub ended_at: String,
    /// Clips needed for `present`.
    pub confirm_clips: u64,
    /// One row per roster member (sorted by id), then the visitors (sorted by id).
    pub rows: Vec<AttendanceRow>,
    /// Operator corrections, oldest first.
    #[serde(default)]
    pub corrections: Vec<Correction>,
}

/// How many rows of each status a session has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    /// Roster members present.
    pub present: usize,
    /// Roster members seen too briefly.
    pub unconfirmed: usize,
    /// Roster members not seen.
    pub absent: usize,
    /// People seen who are not on the roster.
    pub visitors: usize,
    /// Roster size.
    pub roster: usize,
}

impl SessionAttendance {
    /// Rows of each status.
    pub fn counts(&self) -> StatusCounts {
        let mut counts = StatusCounts::default();
        for row in &self.rows {
            match row.status {
                AttendanceStatus::Present => counts.present += 1,
                AttendanceStatus::Unconfirmed => counts.unconfirmed += 1,
                AttendanceStatus::Absent => counts.absent += 1,
                AttendanceStatus::Visitor => counts.visitors += 1,
            }
        }
        counts.roster = counts.present + counts.unconfirmed + counts.absent;
        counts
    }

    /// Change `person_id`'s status to `to` (present or absent), recording the change with
    /// `reason`, `operator` and `at`; the row keeps the session's own decision in `decided`.
    /// A person who has no row (neither on the roster nor seen) gets one as a visitor first.
    pub fn mark(
        &mut self,
        person_id: &str,
        name: &str,
        to: AttendanceStatus,
        reason: &str,
        operator: &str,
        at: &str,
    ) -> Result<(), DirectoryError> {
        validate_person_id(person_id)?;
        let invalid = |reason: String| DirectoryError::InvalidCorrection {
            session_id: self.session_id.clone(),
            reason,
        };
        if !matches!(to, AttendanceStatus::Present | AttendanceStatus::Absent) {
            return Err(invalid(format!(
                "a person can be marked present or absent, not {to}"
            )));
        }
        if reason.trim().is_empty() {
            return Err(invalid("a correction needs a reason".to_string()));
        }
        if operator.trim().is_empty() {
            return Err(invalid("a correction needs an operator".to_string()));
        }
        let index = match self.rows.iter().position(|r| r.person_id == person_id) {
            Some(i) => i,
            None => {
                self.rows.push(AttendanceRow {
                    person_id: person_id.to_owned(),
                    name: name.to_owned(),
                    status: AttendanceStatus::Visitor,
                    decided: None,
                    clips: 0,
                    best_similarity: None,
                    first_seen_ns: None,
                    last_seen_ns: None,
                });
                self.rows.len() - 1
            }
        };
        let row = &mut self.rows[index];
        let from = row.status;
        row.decided.get_or_insert(from);
        row.status = to;
        self.corrections.push(Correction {
            person_id: person_id.to_owned(),
            from,
            to,
            reason: reason.to_owned(),
            operator: operator.to_owned(),
            at: at.to_owned(),
        });
        Ok(())
    }

    /// Remove every trace of `person_id` (their row and the corrections of it). Returns the
    /// rows and corrections removed.
    pub fn erase(&mut self, person_id: &str) -> (usize, usize) {
        let rows = self.rows.len();
        self.rows.retain(|r| r.person_id != person_id);
        let corrections = self.corrections.len();
        self.corrections.retain(|c| c.person_id != person_id);
        (rows - self.rows.len(), corrections - self.corrections.len())
    }

    /// Whether anything in this session names `person_id`.
    pub fn mentions(&self, person_id: &str) -> bool {
        self.rows.iter().any(|r| r.person_id == person_id)
            || self.corrections.iter().any(|c| c.person_id == person_id)
    }
}

/// What [`AttendanceBook::erase_person`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ErasedAttendance {
    /// Classes the person was taken off.
    pub roster_entries: usize,
    /// Attendance rows removed (one per session they were in).
    pub attendance_rows: usize,
    /// Corrections of their rows removed.
    pub corrections: usize,
}

/// Storage of classes and attendance history (SQLite and DynamoDB, beside the people
/// directory).
pub trait AttendanceBook: Send + Sync {
    /// Add people to a class (creating it); ids already on it are kept once. Returns how many
    /// were added.
    fn add_to_class(&self, class: &str, person_ids: &[String]) -> Result<usize, DirectoryError>;

    /// Take people off a class; with no ids, remove the whole class. Returns how many entries
    /// went.
    fn remove_from_class(
        &self,
        class: &str,
        person_ids: &[String],
    ) -> Result<usize, DirectoryError>;

    /// Every class with its roster (ids sorted).
    fn classes(&self) -> Result<BTreeMap<String, Vec<String>>, DirectoryError>;

    /// One class's roster, ids sorted (empty when the class does not exist).
    fn roster(&self, class: &str) -> Result<Vec<String>, DirectoryError>;

    /// Store a session's attendance (replacing an earlier version of the same session).
    fn store_attendance(&self, attendance: &SessionAttendance) -> Result<(), DirectoryError>;

    /// One session's attendance.
    fn attendance(&self, session_id: &str) -> Result<Option<SessionAttendance>, DirectoryError>;

    /// Every stored session's attendance, oldest start first.
    fn attendance_history(&self) -> Result<Vec<SessionAttendance>, DirectoryError>;

    /// Delete the sessions that ended before `before` (RFC 3339 UTC). Returns how many.
    fn prune_attendance(&self, before: &str) -> Result<usize, DirectoryError>;

    /// Take `person_id` off every class and out of every session's attendance.
    fn erase_person(&self, person_id: &str) -> Result<ErasedAttendance, DirectoryError> {
        validate_person_id(person_id)?;
        let mut erased = ErasedAttendance::default();
        for (class, roster) in self.classes()? {
            if roster.iter().any(|id| id == person_id) {
                erased.roster_entries += self.remove_from_class(&class, &[person_id.into()])?;
            }
        }
        for mut session in self.attendance_history()? {
            if session.mentions(person_id) {
                let (rows, corrections) = session.erase(person_id);
                erased.attendance_rows += rows;
                erased.corrections += corrections;
                self.store_attendance(&session)?;
            }
        }
        Ok(erased)
    }
}

/// Check a session's attendance before it is stored: valid ids and class, nobody twice.
pub(crate) fn check_attendance(attendance: &SessionAttendance) -> Result<(), DirectoryError> {
    validate_class(&attendance.class)?;
    rollcall_protocol::ids::validate_id("session id", &attendance.session_id).map_err(|e| {
        DirectoryError::InvalidCorrection {
            session_id: attendance.session_id.clone(),
            reason: e.to_string(),
        }
    })?;
    let mut seen = std::collections::HashSet::new();
    for row in &attendance.rows {
        validate_person_id(&row.person_id)?;
        if !seen.insert(row.person_id.as_str()) {
            return Err(DirectoryError::InvalidCorrection {
                session_id: attendance.session_id.clone(),
                reason: format!("{:?} has two rows", row.person_id),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SessionAttendance {
        let row = |id: &str, status| AttendanceRow {
            person_id: id.into(),
            name: id.into(),
            status,
            decided: None,
            clips: 0,
            best_similarity: None,
            first_seen_ns: None,
            last_seen_ns: None,
        };
        SessionAttendance {
            session_id: "s1".into(),
            class: "c".into(),
            device: "cam".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            ended_at: "2026-01-01T01:00:00Z".into(),
            confirm_clips: 2,
            rows: vec![
                row("ann", AttendanceStatus::Present),
                row("bob", AttendanceStatus::Absent),
            ],
            corrections: vec![],
        }
    }

    #[test]
    fn marks_keep_the_decision_and_the_trail() {
        let mut s = session();
        s.mark(
            "ann",
            "Ann",
            AttendanceStatus::Absent,
            "not her",
            "op",
            "t1",
        )
        .unwrap();
        s.mark(
            "ann",
            "Ann",
            AttendanceStatus::Present,
            "it was",
            "op2",
            "t2",
        )
        .unwrap();
        assert_eq!(s.rows[0].status, AttendanceStatus::Present);
        assert_eq!(s.rows[0].decided, Some(AttendanceStatus::Present));
        assert_eq!(s.corrections.len(), 2);
        assert_eq!(s.corrections[0].from, AttendanceStatus::Present);
        assert_eq!(s.corrections[0].to, AttendanceStatus::Absent);
        assert_eq!(s.corrections[1].operator, "op2");
        s.mark("cy", "Cy", AttendanceStatus::Present, "late", "op", "t3")
            .unwrap();
        assert_eq!(s.rows[2].decided, Some(AttendanceStatus::Visitor));
        assert_eq!(s.counts().present, 2);
    }

    #[test]
    fn bad_marks_are_refused() {
        let mut s = session();
        for (to, reason, operator) in [
            (AttendanceStatus::Visitor, "r", "op"),
            (AttendanceStatus::Present, " ", "op"),
            (AttendanceStatus::Present, "r", ""),
        ] {
            let err = s.mark("bob", "Bob", to, reason, operator, "t").unwrap_err();
            assert!(err.to_string().contains("s1"), "{err}");
        }
        assert!(s
            .mark("../x", "X", AttendanceStatus::Present, "r", "op", "t")
            .is_err());
        assert_eq!(s, session());
    }

    #[test]
    fn erase_removes_rows_and_corrections() {
        let mut s = session();
        s.mark("bob", "Bob", AttendanceStatus::Present, "r", "op", "t")
            .unwrap();
        assert!(s.mentions("bob"));
        assert_eq!(s.erase("bob"), (1, 1));
        assert!(!s.mentions("bob"));
        assert_eq!(s.counts().roster, 1);
    }

    #[test]
    fn statuses_parse_and_print() {
        for status in [
            AttendanceStatus::Present,
            AttendanceStatus::Unconfirmed,
            AttendanceStatus::Absent,
            AttendanceStatus::Visitor,
        ] {
            assert_eq!(status.as_str().parse::<AttendanceStatus>(), Ok(status));
        }
        assert!("here".parse::<AttendanceStatus>().is_err());
        assert!(validate_class("physics-101").is_ok());
        assert!(matches!(
            validate_class("a/b"),
            Err(DirectoryError::InvalidClass { .. })
        ));
    }
}
