//! `rollcall attendance list|show|mark|prune`: the attendance history of sessions taken with
//! `--class`, stored beside the people directory (SQLite `--db`, or DynamoDB with
//! `--backend aws`).

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use rollcall_protocol::terminal_text::terminal_safe;
use rollcall_recognizer::directory::attendance::{
    AttendanceBook, AttendanceRow, AttendanceStatus, Correction, SessionAttendance, StatusCounts,
};
use rollcall_recognizer::directory::rfc3339_utc;
use serde::Serialize;

use super::people::DirectoryArgs;
use crate::exit_codes::UsageError;
use crate::plan::attendance::{mark, operator_name, prune_older_than, summary_line};
use crate::plan::durations::parse_duration;
use crate::settings::{ConfigFile, DirectoryAccess};

/// `rollcall attendance ...`
#[derive(Debug, Subcommand)]
pub enum AttendanceCommand {
    /// The stored sessions: when, which class and device, how many present of the roster.
    List(ListArgs),
    /// One session's attendance: a row per roster member (present, unconfirmed, absent) and
    /// the visitors, with first/last seen, clips and best similarity.
    Show(ShowArgs),
    /// Correct one person's status in a stored session; the session's own decision, the
    /// change, when and by whom are kept.
    Mark(MarkArgs),
    /// Delete the attendance of sessions that ended longer ago than --retention.
    Prune(PruneArgs),
}

/// Options of `rollcall attendance list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only this class's sessions.
    #[arg(long, value_name = "CLASS")]
    class: Option<String>,
    /// Only sessions that started on or after DATE (YYYY-MM-DD, or RFC 3339 UTC).
    #[arg(long, value_name = "DATE", value_parser = parse_since)]
    since: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    directory: DirectoryArgs,
}

/// Output format of `attendance show`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    /// Aligned text.
    Table,
    /// The whole record, corrections included.
    Json,
    /// A header and one row per roster member (cells that a spreadsheet would run as a
    /// formula are escaped).
    Csv,
}

/// Options of `rollcall attendance show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The session id, or `latest` (the most recent session, of --class if given).
    #[arg(value_name = "SESSION|latest")]
    session: String,
    /// With `latest`: the most recent session of this class.
    #[arg(long, value_name = "CLASS")]
    class: Option<String>,
    #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
    format: ShowFormat,
    #[command(flatten)]
    directory: DirectoryArgs,
}

/// `present` or `absent`: what an operator can set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MarkStatus {
    /// The person was there.
    Present,
    /// The person was not there (e.g. a stranger was named as them).
    Absent,
}

/// Options of `rollcall attendance mark`.
#[derive(Args, Debug)]
pub struct MarkArgs {
    /// The session id, or `latest`.
    #[arg(value_name = "SESSION|latest")]
    session: String,
    /// Whose status to change.
    #[arg(value_name = "PERSON_ID")]
    person_id: String,
    #[arg(value_enum, value_name = "present|absent")]
    status: MarkStatus,
    /// Why (kept with the change).
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Who makes the change (default: $USER).
    #[arg(long, value_name = "NAME")]
    operator: Option<String>,
    #[command(flatten)]
    directory: DirectoryArgs,
}

/// Options of `rollcall attendance prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Keep the attendance of sessions that ended within this long (e.g. 180d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    retention: Duration,
    #[command(flatten)]
    directory: DirectoryArgs,
}

pub fn run(command: AttendanceCommand, config: &ConfigFile) -> Result<ExitCode> {
    match command {
        AttendanceCommand::List(args) => list(args, config),
        AttendanceCommand::Show(args) => show(args, config),
        AttendanceCommand::Mark(args) => mark_one(args, config),
        AttendanceCommand::Prune(args) => prune(args, config),
    }
}

/// `--since`: a date (`2026-09-01`) or an RFC 3339 UTC time, as the RFC 3339 text sessions are
/// compared with.
fn parse_since(text: &str) -> Result<String, String> {
    let text = text.trim();
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let date_ok = |d: &str| {
        let parts: Vec<&str> = d.split('-').collect();
        parts.len() == 3
            && parts[0].len() == 4
            && parts[1].len() == 2
            && parts[2].len() == 2
            && parts.iter().all(|p| digits(p))
    };
    if text.len() == 10 && date_ok(text) {
        return Ok(format!("{text}T00:00:00Z"));
    }
    if text.len() == 20 && date_ok(&text[..10]) && text.ends_with('Z') && &text[10..11] == "T" {
        return Ok(text.to_string());
    }
    Err(format!(
        "{text:?} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)"
    ))
}

/// The session `SESSION|latest` names (`latest` of `class` when given).
fn find_session(
    book: &dyn AttendanceBook,
    session: &str,
    class: Option<&str>,
    location: &str,
) -> Result<SessionAttendance> {
    if session == "latest" {
        let latest = book
            .attendance_history()?
            .into_iter()
            .filter(|s| class.is_none_or(|c| s.class == c))
            .max_by(|a, b| (&a.ended_at, &a.started_at).cmp(&(&b.ended_at, &b.started_at)));
        return latest.ok_or_else(|| {
            UsageError(format!(
                "no attendance stored in {location}{} (run `rollcall session --class CLASS`)",
                class
                    .map(|c| format!(" for class {c:?}"))
                    .unwrap_or_default()
            ))
            .into()
        });
    }
    book.attendance(session)?.ok_or_else(|| {
        UsageError(format!(
            "no attendance stored for session {:?} in {location} (`rollcall attendance list` shows them)",
            terminal_safe(session)
        ))
        .into()
    })
}

/// A time in ns since the epoch as RFC 3339 UTC.
fn ns_time(ns: Option<u64>) -> Option<String> {
    ns.map(|ns| rfc3339_utc(UNIX_EPOCH + Duration::from_nanos(ns)))
}

#[derive(Serialize)]
struct RowJson<'a> {
    person_id: &'a str,
    name: &'a str,
    status: AttendanceStatus,
    /// The session's own decision, when an operator changed it.
    decided: Option<AttendanceStatus>,
    clips: u64,
    best_similarity: Option<f32>,
    first_seen: Option<String>,
    last_seen: Option<String>,
}

impl<'a> From<&'a AttendanceRow> for RowJson<'a> {
    fn from(r: &'a AttendanceRow) -> Self {
        RowJson {
            person_id: &r.person_id,
            name: &r.name,
            status: r.status,
            decided: r.decided,
            clips: r.clips,
            best_similarity: r.best_similarity,
            first_seen: ns_time(r.first_seen_ns),
            last_seen: ns_time(r.last_seen_ns),
        }
    }
}

#[derive(Serialize)]
struct SessionJson<'a> {
    session_id: &'a str,
    class: &'a str,
    device: &'a str,
    started_at: &'a str,
    ended_at: &'a str,
    confirm_clips: u64,
    counts: StatusCounts,
    rows: Vec<RowJson<'a>>,
    corrections: &'a [Correction],
}

fn session_json(s: &SessionAttendance) -> SessionJson<'_> {
    SessionJson {
        session_id: &s.session_id,
        class: &s.class,
        device: &s.device,
        started_at: &s.started_at,
        ended_at: &s.ended_at,
        confirm_clips: s.confirm_clips,
        counts: s.counts(),
        rows: s.rows.iter().map(RowJson::from).collect(),
        corrections: &s.corrections,
    }
}

fn list(args: ListArgs, config: &ConfigFile) -> Result<ExitCode> {
    let (_, book, location) = args
        .directory
        .open_with_attendance(config, DirectoryAccess::Existing)?;
    let sessions: Vec<SessionAttendance> = book
        .attendance_history()?
        .into_iter()
        .filter(|s| args.class.as_ref().is_none_or(|c| &s.class == c))
        .filter(|s| {
            args.since
                .as_ref()
                .is_none_or(|since| &s.started_at >= since)
        })
        .collect();
    if args.json {
        #[derive(Serialize)]
        struct Entry<'a> {
            session_id: &'a str,
            class: &'a str,
            device: &'a str,
            started_at: &'a str,
            ended_at: &'a str,
            counts: StatusCounts,
            corrections: usize,
        }
        let entries: Vec<Entry> = sessions
            .iter()
            .map(|s| Entry {
                session_id: &s.session_id,
                class: &s.class,
                device: &s.device,
                started_at: &s.started_at,
                ended_at: &s.ended_at,
                counts: s.counts(),
                corrections: s.corrections.len(),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    if sessions.is_empty() {
        println!("no attendance stored in {location}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("SESSION  CLASS  DEVICE  STARTED  ENDED  PRESENT/ROSTER  UNCONFIRMED  VISITORS");
    for s in &sessions {
        let c = s.counts();
        println!(
            "{}  {}  {}  {}  {}  {}/{}  {}  {}",
            terminal_safe(&s.session_id),
            terminal_safe(&s.class),
            terminal_safe(&s.device),
            s.started_at,
            s.ended_at,
            c.present,
            c.roster,
            c.unconfirmed,
            c.visitors
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One CSV cell: formula-like starts (`=`, `+`, `-`, `@`, tab, CR) get a leading `'` so a
/// spreadsheet shows them as text, then RFC 4180 quoting where needed.
pub fn csv_cell(text: &str) -> String {
    let escaped = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if escaped.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", escaped.replace('"', "\"\""))
    } else {
        escaped
    }
}

/// The CSV of a session: a header, then one row per roster member (visitors are not on the
/// roster: see the table or the JSON).
pub fn attendance_csv(s: &SessionAttendance) -> String {
    let mut out = String::from(
        "session_id,class,person_id,name,status,decided,clips,best_similarity,first_seen,last_seen\n",
    );
    // A visitor an operator marked present is still not on the roster.
    let roster = s
        .rows
        .iter()
        .filter(|r| r.decided.unwrap_or(r.status) != AttendanceStatus::Visitor);
    for r in roster {
        let cells = [
            s.session_id.clone(),
            s.class.clone(),
            r.person_id.clone(),
            r.name.clone(),
            r.status.to_string(),
            r.decided.map(|d| d.to_string()).unwrap_or_default(),
            r.clips.to_string(),
            r.best_similarity
                .map(|v| format!("{v:.3}"))
                .unwrap_or_default(),
            ns_time(r.first_seen_ns).unwrap_or_default(),
            ns_time(r.last_seen_ns).unwrap_or_default(),
        ];
        let cells: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn show(args: ShowArgs, config: &ConfigFile) -> Result<ExitCode> {
    let (_, book, location) = args
        .directory
        .open_with_attendance(config, DirectoryAccess::Existing)?;
    let s = find_session(
        book.as_ref(),
        &args.session,
        args.class.as_deref(),
        &location,
    )?;
    match args.format {
        ShowFormat::Json => println!("{}", serde_json::to_string_pretty(&session_json(&s))?),
        ShowFormat::Csv => print!("{}", attendance_csv(&s)),
        ShowFormat::Table => {
            println!(
                "session {}  class {}  device {}  {} .. {}  (present: seen in >= {} clips)",
                terminal_safe(&s.session_id),
                terminal_safe(&s.class),
                terminal_safe(&s.device),
                s.started_at,
                s.ended_at,
                s.confirm_clips
            );
            for r in &s.rows {
                let seen = match (ns_time(r.first_seen_ns), ns_time(r.last_seen_ns)) {
                    (Some(first), Some(last)) => format!("{first} .. {last}"),
                    _ => "-".to_string(),
                };
                println!(
                    "{:<12} {:<24} {:<30} clips {:>4}  best {}  {seen}",
                    format!("{}{}", r.status, if r.decided.is_some() { "*" } else { "" }),
                    terminal_safe(&r.person_id),
                    terminal_safe(&r.name),
                    r.clips,
                    r.best_similarity
                        .map_or("-".to_string(), |v| format!("{v:.3}")),
                );
            }
            for c in &s.corrections {
                println!(
                    "* {} {} -> {} by {} at {}: {}",
                    terminal_safe(&c.person_id),
                    c.from,
                    c.to,
                    terminal_safe(&c.operator),
                    c.at,
                    terminal_safe(&c.reason)
                );
            }
            println!("{}", terminal_safe(&summary_line(&s)));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn mark_one(args: MarkArgs, config: &ConfigFile) -> Result<ExitCode> {
    let (people, book, location) = args
        .directory
        .open_with_attendance(config, DirectoryAccess::Existing)?;
    let session = find_session(book.as_ref(), &args.session, None, &location)?;
    let to = match args.status {
        MarkStatus::Present => AttendanceStatus::Present,
        MarkStatus::Absent => AttendanceStatus::Absent,
    };
    let operator = operator_name(args.operator.as_deref());
    let updated = mark(
        people.as_ref(),
        book.as_ref(),
        &session.session_id,
        &args.person_id,
        to,
        &args.reason,
        &operator,
    )?;
    if let Some(c) = updated.corrections.last() {
        println!(
            "session {}: {} {} -> {} by {}",
            terminal_safe(&updated.session_id),
            terminal_safe(&c.person_id),
            c.from,
            c.to,
            terminal_safe(&c.operator)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn prune(args: PruneArgs, config: &ConfigFile) -> Result<ExitCode> {
    let (_, book, location) = args
        .directory
        .open_with_attendance(config, DirectoryAccess::Existing)?;
    let removed = prune_older_than(book.as_ref(), args.retention)?;
    println!("{removed} session(s) of attendance older than the retention removed from {location}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_escaped_and_quoted() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-2"), "'-2");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("\rx"), "\"'\rx\"");
        assert_eq!(csv_cell("Dupont, Jean"), "\"Dupont, Jean\"");
        assert_eq!(csv_cell("ann"), "ann");
    }

    #[test]
    fn since_takes_dates_and_times() {
        assert_eq!(parse_since("2026-09-01").unwrap(), "2026-09-01T00:00:00Z");
        assert_eq!(
            parse_since("2026-09-01T08:00:00Z").unwrap(),
            "2026-09-01T08:00:00Z"
        );
        for bad in ["yesterday", "2026-9-1", "2026-09-01T08:00:00", ""] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }
}
