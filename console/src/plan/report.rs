//! What a finished (or running) session says: the JSON report (`--report`), the summary and
//! result lines of headless runs, and the exit code. Shared by the headless runner and the console.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use rollcall_edge::latency::Stage;
use rollcall_edge::link::LinkStatus;
use rollcall_edge::receive::ReceivedResult;
use rollcall_edge::session::{
    ClipCounters, EarlierClips, PersonTally, SessionReport, SessionSnapshot,
};
use rollcall_recognizer::pool::PoolStats;
use serde::Serialize;

use super::durations::{clock, short_duration};
use super::CapturePlan;

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

#[derive(Serialize)]
struct SessionReportJson {
    source: String,
    device_id: String,
    session_id: String,
    backend: String,
    ended: rollcall_edge::session::EndReason,
    error: Option<String>,
    capture_s: f64,
    total_s: f64,
    people: Vec<PersonTally>,
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
    /// The embedded worker pool (absent with the AWS backend).
    pool: Option<PoolReport>,
}

/// One line per result: time, clip seq, names, latency.
pub fn result_line(got: &ReceivedResult) -> String {
    let r = &got.result;
    let latency = got.end_to_end.map_or("?".to_string(), |d| {
        format!("{:.0}", d.as_secs_f64() * 1000.0)
    });
    let what = match &r.error {
        Some(e) => format!("ERROR {e}"),
        None => {
            let mut names: Vec<String> = r
                .people
                .iter()
                .map(|p| format!("{} {:.2}", p.name, p.similarity))
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
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    format!(
        "  + {} ({}): {}",
        person.name,
        person.person_id,
        if details.is_empty() {
            "no academic record".to_string()
        } else {
            details.join(", ")
        }
    )
}

/// Non-zero when capture failed, nothing was captured or a clip got no result (lost, or still
/// in the spool).
pub fn session_exit_code(report: &SessionReport) -> ExitCode {
    let c = &report.clips;
    let failed = report.error.is_some() || c.lost > 0 || c.spooled > 0 || c.captured == 0;
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `store unreachable since 10:55:20, 22 spooled, retrying` while the store or the queue is
/// down, `None` otherwise.
pub fn outage_line(link: &LinkStatus, spooled: u64) -> Option<String> {
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

/// `progress: 1m30s of 5m0s, 180 clips captured, ...`, and the outage line while there is one.
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
    ) + &outage_line(&live.link, live.spooled).map_or(String::new(), |line| format!("\n{line}"))
}

/// The JSON report of a session.
pub fn report_json(
    report: &SessionReport,
    plan: &CapturePlan,
    session_id: &str,
    pool: Option<&PoolStats>,
) -> serde_json::Value {
    let latency = LatencyMs::end_to_end(&report.latency);
    let stages_ms = stage_medians_ms(&report.latency);
    let json = SessionReportJson {
        source: report.source.clone(),
        device_id: plan.device.clone(),
        session_id: session_id.to_string(),
        backend: plan.recognition.backend.clone(),
        ended: report.ended,
        error: report.error.clone(),
        capture_s: report.capture_time.as_secs_f64(),
        total_s: report.total_time.as_secs_f64(),
        people: report.people.clone(),
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

/// Write a report to `path`.
pub fn write_report(path: &std::path::Path, json: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(json)?;
    std::fs::write(path, text + "\n")
        .with_context(|| format!("cannot write the report to {}", path.display()))
}

/// Writes `line` to standard output. A closed terminal (SSH dropped, SIGHUP) is no reason to
/// stop a session halfway: the line is then lost, the session goes on.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
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
        "clips: {} captured, {} uploaded, {} results, {} errors, {} spooled, {} lost ({:?} after {:.1} s)",
        c.captured,
        c.uploaded,
        c.results,
        c.errors,
        c.spooled,
        c.lost,
        report.ended,
        report.capture_time.as_secs_f64()
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
    if let Some(e) = &report.error {
        lines.push(format!("session failed: {e}"));
    }
    for p in &report.people {
        lines.push(format!(
            "  {} ({}): {} clip(s), best similarity {:.3}",
            p.name, p.person_id, p.clips, p.best_similarity
        ));
    }
    lines.push(format!("  unknown faces: {}", report.unknown_faces));
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
    if let Some(pool) = pool {
        lines.push(format!(
            "workers: peak {}, peak backlog {}, {} started, {} retired",
            pool.peak_workers, pool.peak_backlog, pool.started, pool.retired
        ));
    }
    lines.push(format!("{} duplicate result(s) dropped", report.duplicates));
    lines
}
