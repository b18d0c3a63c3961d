//! What a finished (or running) session says: the JSON report (`--report`), the summary and
//! result lines of headless runs, and the exit code. Shared by the headless runner and the console.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use std::path::Path;

use anyhow::{Context, Result};
use rollcall_edge::latency::Stage;
use rollcall_edge::link::LinkStatus;
use rollcall_edge::publish::PublishStats;
use rollcall_edge::receive::ReceivedResult;
use rollcall_edge::session::{
    ClipCounters, EarlierClips, PersonTally, SessionReport, SessionSnapshot,
};
use rollcall_edge::source::Outage;
use rollcall_protocol::terminal_text::terminal_safe;
use rollcall_recognizer::pool::PoolStats;
use serde::Serialize;

use super::durations::{clock, rfc3339_ns, short_duration};
use super::CapturePlan;
use crate::exit_codes::{failed_if, usage};

/// End-to-end latency in a JSON report (session, bench).
#[derive(Serialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
    pub count: u64,
}

/// The median of every stage but end to end, by stage name (`stages_ms` of the reports).
pub fn stage_medians_ms(
    latency: &rollcall_edge::latency::LatencyRecorder,
) -> BTreeMap<String, f64> {
    latency
        .summaries()
        .into_iter()
        .filter(|(stage, _)| *stage != Stage::EndToEnd)
        .map(|(stage, s)| (stage.name().to_string(), s.p50_ms))
        .collect()
}

impl LatencyMs {
    /// The end-to-end figures of `latency`, if any result arrived.
    pub fn end_to_end(latency: &rollcall_edge::latency::LatencyRecorder) -> Option<LatencyMs> {
        latency.summary(Stage::EndToEnd).map(|s| LatencyMs {
            p50: s.p50_ms,
            p90: s.p90_ms,
            p99: s.p99_ms,
            max: s.max_ms,
            mean: s.mean_ms,
            count: s.count,
        })
    }
}

#[derive(Serialize)]
struct PoolReport {
    max_workers: usize,
    peak_workers: usize,
    peak_backlog: usize,
    workers_started: u64,
    workers_retired: u64,
}

/// Why a session ended, as the report says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// The source had no more frames.
    SourceEnd,
    /// `--duration` was reached.
    Duration,
    /// Stopped early: a signal, `q` or `s` in the console.
    Interrupted,
    /// Capture failed, or the session could not start.
    Failed,
}

impl Ended {
    fn of(reason: rollcall_edge::session::EndReason) -> Ended {
        use rollcall_edge::session::EndReason;
        match reason {
            EndReason::EndOfSource => Ended::SourceEnd,
            EndReason::Duration => Ended::Duration,
            EndReason::Stopped => Ended::Interrupted,
            EndReason::Failed => Ended::Failed,
        }
    }
}

/// One person in the report: when they were first and last seen (clip close time), in how
/// many clips, how sure, and their record.
#[derive(Serialize)]
struct PersonJson {
    person_id: String,
    name: String,
    first_seen: String,
    last_seen: String,
    clips: u64,
    best_similarity: f32,
    record: BTreeMap<String, String>,
}

impl PersonJson {
    fn of(tally: &PersonTally) -> PersonJson {
        PersonJson {
            person_id: tally.person_id.clone(),
            name: tally.name.clone(),
            first_seen: rfc3339_ns(tally.first_seen_ns),
            last_seen: rfc3339_ns(tally.last_seen_ns),
            clips: tally.clips,
            best_similarity: tally.best_similarity,
            record: tally.details.clone(),
        }
    }
}

/// Percentiles of one stage, ms.
#[derive(Serialize)]
struct StagePercentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    count: u64,
}

/// The one session report (`--report`), field by field in docs/report.md.
#[derive(Serialize)]
struct SessionReportJson {
    source: String,
    device_id: String,
    session_id: String,
    backend: String,
    /// Wall clock, RFC 3339: when the session started and ended (after the drain).
    started_at: String,
    ended_at: String,
    ended: Ended,
    /// The signal that interrupted the session (`SIGTERM`...), if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    interrupted_by: Option<String>,
    error: Option<String>,
    capture_s: f64,
    total_s: f64,
    people: Vec<PersonJson>,
    /// `spooled`: still in the spool at the end (sent by the next run or `spool drain`);
    /// `lost`: gone without a result, named in `lost_clip_ids`.
    clips: ClipCounters,
    lost_clip_ids: Vec<String>,
    /// Clips earlier runs of the device left in the spool, sent first by this session.
    earlier: EarlierClips,
    /// Upload attempts that failed and were tried again.
    retries: u64,
    /// Seconds the store or the queue was unreachable.
    outage_s: f64,
    /// Most clips waiting for upload at once.
    peak_spooled: u64,
    unknown_faces: u64,
    duplicates: u64,
    /// End to end per clip: clip closed at the edge -> result received.
    latency_ms: Option<LatencyMs>,
    /// Median per stage.
    stages_ms: BTreeMap<String, f64>,
    /// p50, p90, p99 per stage (end to end included).
    stage_percentiles_ms: BTreeMap<String, StagePercentiles>,
    /// The embedded worker pool (absent with the AWS backend).
    pool: Option<PoolReport>,
    /// When a network camera was offline and reconnected (empty for other sources).
    camera_offline: Vec<OutageJson>,
    /// Per `--publish` target: events sent, failed, dropped, retried.
    publish: Vec<PublishStats>,
}

#[derive(Serialize)]
struct OutageJson {
    #[serde(flatten)]
    outage: Outage,
    /// Length in seconds (up to the end of capture when the camera never came back).
    seconds: f64,
}

/// One line per result: time, clip seq, names, latency.
pub fn result_line(got: &ReceivedResult) -> String {
    let r = &got.result;
    let latency = got.end_to_end.map_or("?".to_string(), |d| {
        format!("{:.0}", d.as_secs_f64() * 1000.0)
    });
    let what = match &r.error {
        Some(e) => format!("ERROR {}", terminal_safe(e)),
        None => {
            let mut names: Vec<String> = r
                .people
                .iter()
                .map(|p| format!("{} {:.2}", terminal_safe(&p.name), p.similarity))
                .collect();
            if r.unknown_faces > 0 {
                names.push(format!("{} unknown", r.unknown_faces));
            }
            if names.is_empty() {
                "nobody".to_string()
            } else {
                names.join(", ")
            }
        }
    };
    format!(
        "{} clip {:08}  {what}  e2e {latency} ms (function {:.0} ms{})",
        clock(got.received_ns),
        r.seq,
        r.timings.total_ms,
        if r.cold_start { ", cold start" } else { "" }
    )
}

/// `Barack Obama (barack_obama): programme Political Science, student_id DEMO-0044, year 4`
pub fn person_line(person: &rollcall_protocol::wire::RecognizedPerson) -> String {
    let details: Vec<String> = person
        .details
        .iter()
        .map(|(k, v)| format!("{} {}", terminal_safe(k), terminal_safe(v)))
        .collect();
    format!(
        "  + {} ({}): {}",
        terminal_safe(&person.name),
        terminal_safe(&person.person_id),
        if details.is_empty() {
            "no academic record".to_string()
        } else {
            details.join(", ")
        }
    )
}

/// `9.2 s`, `4m05s`.
fn seconds_text(d: Duration) -> String {
    if d.as_secs() >= 60 {
        short_duration(d)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Why capture ended, in words: `the source ended`, `the time limit was reached`, `stopped`,
/// `capture failed`.
pub fn ended_text(report: &SessionReport) -> &'static str {
    use rollcall_edge::session::EndReason;
    match report.ended {
        EndReason::EndOfSource => "the source ended",
        EndReason::Duration => "the time limit was reached",
        EndReason::Stopped => "stopped",
        EndReason::Failed => "capture failed",
    }
}

/// 1 when capture failed or skipped frames, nothing was captured, a clip got no result (lost,
/// or still in the spool) or its result is an error (the function could not recognise it); 0
/// otherwise.
pub fn session_exit_code(report: &SessionReport) -> ExitCode {
    let c = &report.clips;
    failed_if(
        report.error.is_some() || c.lost > 0 || c.spooled > 0 || c.errors > 0 || c.captured == 0,
    )
}

/// What went wrong in a session, for the report's `error`: the capture failure or skipped
/// frames, else the clips the function could not recognise (how many, and the first error).
pub fn session_error(report: &SessionReport) -> Option<String> {
    report.error.clone().or_else(|| {
        report.first_result_error.as_ref().map(|first| {
            format!(
                "{} of {} clip(s) failed in the recognition function; the first: {first}",
                report.clips.errors, report.clips.results
            )
        })
    })
}

/// `store unreachable since 10:55:20, 22 spooled, retrying` while the store or the queue is
/// down, `None` otherwise.
pub fn link_outage_line(link: &LinkStatus, spooled: u64) -> Option<String> {
    let down = |what: &str, since: Option<u64>| {
        since.map(|ns| format!("{what} unreachable since {}", &clock(ns)[..8]))
    };
    let mut parts: Vec<String> = [
        down("store", link.store_down_since_ns),
        down("queue", link.queue_down_since_ns),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        return None;
    }
    parts.push(format!("{spooled} spooled, retrying"));
    Some(parts.join(", "))
}

/// `progress: 1m30s of 5m0s, 180 clips captured, ...`; the outage line comes from
/// [`link_outage_line`] on its own.
pub fn progress_line(live: &SessionSnapshot, elapsed: Duration, limit: Option<Duration>) -> String {
    let of = limit.map_or(String::new(), |d| format!(" of {}", short_duration(d)));
    let latency = live
        .latency
        .summary(Stage::EndToEnd)
        .map_or(String::new(), |s| {
            format!(", end-to-end p50 {:.0} ms p99 {:.0} ms", s.p50_ms, s.p99_ms)
        });
    format!(
        "progress: {}{of}, {} clip(s) captured, {} uploaded, {} result(s), {} error(s), {} pending, {} spooled{latency}",
        short_duration(elapsed),
        live.clips.captured,
        live.clips.uploaded,
        live.clips.results,
        live.clips.errors,
        live.outstanding,
        live.spooled
    )
}

/// The JSON report of a session that ran. `interrupted_by`: the signal that stopped it.
pub fn report_json(
    report: &SessionReport,
    plan: &CapturePlan,
    session_id: &str,
    pool: Option<&PoolStats>,
    publish: &[PublishStats],
    interrupted_by: Option<&str>,
) -> serde_json::Value {
    let latency = LatencyMs::end_to_end(&report.latency);
    let stages_ms = stage_medians_ms(&report.latency);
    let ended_ns = rollcall_edge::source::now_ns();
    let started_ns =
        ended_ns.saturating_sub(u64::try_from(report.total_time.as_nanos()).unwrap_or(0));
    let json = SessionReportJson {
        source: report.source.clone(),
        device_id: plan.device.clone(),
        session_id: session_id.to_string(),
        backend: plan.recognition.backend.clone(),
        started_at: rfc3339_ns(started_ns),
        ended_at: rfc3339_ns(ended_ns),
        ended: match interrupted_by {
            Some(_) if report.ended != rollcall_edge::session::EndReason::Failed => {
                Ended::Interrupted
            }
            _ => Ended::of(report.ended),
        },
        interrupted_by: interrupted_by.map(str::to_string),
        error: session_error(report),
        capture_s: report.capture_time.as_secs_f64(),
        total_s: report.total_time.as_secs_f64(),
        people: report.people.iter().map(PersonJson::of).collect(),
        clips: report.clips,
        lost_clip_ids: report.lost_clip_ids.clone(),
        earlier: report.earlier,
        retries: report.link.retries,
        outage_s: report.link.outage.as_secs_f64(),
        peak_spooled: report.peak_spooled,
        unknown_faces: report.unknown_faces,
        duplicates: report.duplicates,
        latency_ms: latency,
        stages_ms,
        stage_percentiles_ms: report
            .latency
            .summaries()
            .into_iter()
            .map(|(stage, s)| {
                (
                    stage.name().to_string(),
                    StagePercentiles {
                        p50: s.p50_ms,
                        p90: s.p90_ms,
                        p99: s.p99_ms,
                        count: s.count,
                    },
                )
            })
            .collect(),
        camera_offline: report
            .camera_offline
            .iter()
            .map(|outage| OutageJson {
                seconds: outage.seconds(report_end_ns(report)),
                outage: outage.clone(),
            })
            .collect(),
        publish: publish.to_vec(),
        pool: pool.map(|pool| PoolReport {
            max_workers: plan.embedded.max_workers,
            peak_workers: pool.peak_workers,
            peak_backlog: pool.peak_backlog,
            workers_started: pool.started,
            workers_retired: pool.retired,
        }),
    };
    serde_json::to_value(json).unwrap_or(serde_json::Value::Null)
}

/// The report of a session that could not start: what was asked, `ended: failed` and the
/// `error`, so that a script reading the report learns why.
pub fn failed_start_report_json(
    plan: &CapturePlan,
    session_id: &str,
    error: &anyhow::Error,
) -> serde_json::Value {
    let now = rfc3339_ns(rollcall_edge::source::now_ns());
    serde_json::json!({
        "source": plan.source.to_string(),
        "device_id": plan.device,
        "session_id": session_id,
        "backend": plan.recognition.backend,
        "started_at": now,
        "ended_at": now,
        "ended": Ended::Failed,
        "error": crate::errors::one_line(error),
        "capture_s": 0.0,
        "total_s": 0.0,
        "people": [],
        "clips": ClipCounters::default(),
        "lost_clip_ids": [],
        "retries": 0,
        "outage_s": 0.0,
        "peak_spooled": 0,
        "unknown_faces": 0,
        "latency_ms": null,
        "stages_ms": {},
        "stage_percentiles_ms": {},
    })
}

/// Wall clock at the end of capture, for outages still open then.
fn report_end_ns(report: &SessionReport) -> u64 {
    let drained = report.total_time.saturating_sub(report.capture_time);
    rollcall_edge::source::now_ns().saturating_sub(u64::try_from(drained.as_nanos()).unwrap_or(0))
}

/// `HH:MM:SS` (UTC) of a wall-clock time.
fn clock_seconds(ns: u64) -> String {
    let text = clock(ns);
    text.split('.').next().unwrap_or(&text).to_string()
}

/// `camera offline since 10:31:05: the stream ended` while it lasts; `camera offline
/// 10:31:05-10:31:40 (35.0 s, 4 failed reconnections): the stream ended` once it is over (or
/// `...-end of capture` when the camera never came back).
pub fn camera_offline_line(outage: &Outage) -> String {
    let start = clock_seconds(outage.start_ns);
    let attempts = match outage.failed_attempts {
        0 => String::new(),
        1 => ", 1 failed reconnection".to_string(),
        n => format!(", {n} failed reconnections"),
    };
    match outage.end_ns {
        Some(end) => format!(
            "camera offline {start}-{} ({:.1} s{attempts}): {}",
            clock_seconds(end),
            outage.seconds(end),
            outage.reason
        ),
        None => format!("camera offline since {start}{attempts}: {}", outage.reason),
    }
}

/// Check, before a session starts, that the report can be written to `path`: its folder exists
/// and takes new files, and `path` is not a folder or some other non-regular file. A problem is a
/// usage error naming the path, found before minutes of capture rather than after.
pub fn check_report_destination(path: &Path) -> Result<()> {
    let refuse = |why: String| usage(format!("--report {}: {why}", path.display()));
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match std::fs::metadata(folder) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return refuse(format!("{} is not a folder", folder.display())),
        Err(e) => {
            return refuse(format!(
                "its folder {} cannot be used: {e}",
                folder.display()
            ))
        }
    }
    if let Ok(m) = std::fs::metadata(path) {
        if !m.is_file() {
            return refuse(format!(
                "is {}, not a file",
                rollcall_protocol::input_files::file_kind(&m.file_type())
            ));
        }
    }
    // Writable: a scratch file is created (and removed) where the report will go.
    tempfile::Builder::new()
        .prefix(".rollcall-report-check-")
        .tempfile_in(folder)
        .map(drop)
        .or_else(|e| refuse(format!("cannot write in {}: {e}", folder.display())))
}

/// Write a report to `path`: into a scratch file beside it, then renamed over it, so a reader
/// never sees half a report.
pub fn write_report(path: &Path, json: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(json)? + "\n";
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let written = tempfile::Builder::new()
        .prefix(".rollcall-report-")
        .tempfile_in(folder)
        .and_then(|mut file| {
            use std::io::Write;
            file.write_all(text.as_bytes())?;
            file.persist(path).map_err(|e| e.error)
        });
    written
        .map(drop)
        .with_context(|| format!("cannot write the report to {}", path.display()))
}

/// Writes `line` to standard output. A closed terminal (SSH dropped, SIGHUP) is no reason to
/// stop a session halfway: the line is then lost, the session goes on.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Whether standard error takes colour: a terminal, and `NO_COLOR` unset (https://no-color.org).
pub fn stderr_has_colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// [`say_err`] in yellow when standard error takes colour: an outage, a warning.
pub fn say_err_warning(line: &str) {
    if stderr_has_colour() {
        say_err(&format!("\x1b[33;1m{line}\x1b[0m"));
    } else {
        say_err(line);
    }
}

/// [`say`] on standard error.
pub fn say_err(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The summary printed at the end of a headless session, one line per entry.
pub fn summary_lines(report: &SessionReport, pool: Option<&PoolStats>) -> Vec<String> {
    let mut lines = Vec::new();
    let c = &report.clips;
    lines.push(format!(
        "clips: {} captured, {} uploaded, {} results, {} errors, {} spooled, {} lost (capture stopped after {}: {})",
        c.captured,
        c.uploaded,
        c.results,
        c.errors,
        c.spooled,
        c.lost,
        seconds_text(report.capture_time),
        ended_text(report)
    ));
    let e = &report.earlier;
    if e.recovered > 0 || e.lost > 0 {
        lines.push(format!(
            "earlier runs: {} clip(s) found in the spool, {} uploaded, {} answered ({} errors), {} still spooled, {} lost",
            e.recovered, e.uploaded, e.results, e.errors, e.spooled, e.lost
        ));
    }
    if !report.lost_clip_ids.is_empty() {
        lines.push(format!("lost clips: {}", report.lost_clip_ids.join(" ")));
    }
    if c.spooled > 0 || e.spooled > 0 {
        lines.push(format!(
            "{} clip(s) stay in the spool: the next session of this device or `rollcall spool drain` sends them",
            c.spooled + e.spooled
        ));
    }
    let link = &report.link;
    if link.outages > 0 || link.retries > 0 {
        lines.push(format!(
            "outages: {} ({:.1} s unreachable in total), {} upload retries, at most {} clip(s) waiting for upload",
            link.outages,
            link.outage.as_secs_f64(),
            link.retries,
            report.peak_spooled
        ));
    }
    if let Some(e) = session_error(report) {
        lines.push(format!("session failed: {}", terminal_safe(&e)));
    }
    for p in &report.people {
        lines.push(format!(
            "  {} ({}): {} clip(s), best similarity {:.3}",
            terminal_safe(&p.name),
            terminal_safe(&p.person_id),
            p.clips,
            p.best_similarity
        ));
    }
    lines.push(format!(
        "  strangers: {} summed over clips (each clip counts its distinct strangers; not tracked across clips)",
        report.unknown_faces
    ));
    if let Some(s) = report.latency.summary(Stage::EndToEnd) {
        lines.push(format!(
            "end-to-end after clip close: p50 {:.1} ms, p90 {:.1}, p99 {:.1}, max {:.1} ({} clips)",
            s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms, s.count
        ));
    }
    let stages: Vec<String> = report
        .latency
        .summaries()
        .into_iter()
        .filter(|(stage, _)| *stage != Stage::EndToEnd)
        .map(|(stage, s)| format!("{stage} {:.1}", s.p50_ms))
        .collect();
    lines.push(format!("median per stage (ms): {}", stages.join(", ")));
    for outage in &report.camera_offline {
        match outage.end_ns {
            Some(_) => lines.push(camera_offline_line(outage)),
            None => lines.push(format!(
                "{} (still offline at the end of capture)",
                camera_offline_line(outage)
            )),
        }
    }
    if let Some(pool) = pool {
        lines.push(format!(
            "workers: peak {}, peak backlog {}, {} started, {} retired",
            pool.peak_workers, pool.peak_backlog, pool.started, pool.retired
        ));
    }
    lines.push(format!("{} duplicate result(s) dropped", report.duplicates));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_lines_say_when_and_why() {
        // 10:31:05 UTC on some day, 35 s long.
        let start = (86_400 * 20_000 + 10 * 3600 + 31 * 60 + 5) * 1_000_000_000u64;
        let mut outage = Outage {
            start_ns: start,
            end_ns: None,
            reason: "the stream ended".into(),
            failed_attempts: 1,
        };
        assert_eq!(
            camera_offline_line(&outage),
            "camera offline since 10:31:05, 1 failed reconnection: the stream ended"
        );
        outage.end_ns = Some(start + 35_000_000_000);
        outage.failed_attempts = 4;
        assert_eq!(
            camera_offline_line(&outage),
            "camera offline 10:31:05-10:31:40 (35.0 s, 4 failed reconnections): the stream ended"
        );
    }
}
