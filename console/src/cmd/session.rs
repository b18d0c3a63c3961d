//! `rollcall session --source SRC`: the edge and the embedded recognition service in one process.
//! Capture -> 0.5 s clips -> spool -> upload into the local object store -> "clip created" ->
//! autoscaling worker pool -> result queue -> edge, with end-to-end latency per clip.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use rollcall_edge::latency::Stage;
use rollcall_edge::receive::ReceivedResult;
use rollcall_edge::session::{run_session, ClipCounters, PersonTally, SessionConfig, SessionProbe};
use rollcall_edge::source::{now_ns, Pace, SourceSpec};
use rollcall_edge::upload::LocalDirSink;
use rollcall_edge::validate_id;
use rollcall_recognizer::clip::{ClipLimits, SamplePolicy};
use rollcall_recognizer::handler::HandlerConfig;
use rollcall_recognizer::pool::{default_max_workers, PoolConfig, PoolStats};
use serde::Serialize;

use crate::embedded::{EmbeddedConfig, EmbeddedService};
use crate::settings::{ConfigFile, RecognizerArgs};

/// Run a capture session against the embedded recognition service.
///
/// Without --headless the operator console (TUI) is meant to run; it does not exist yet, so the
/// session runs headless either way for now.
#[derive(Args, Debug)]
pub struct SessionArgs {
    /// Frame source: file:PATH, v4l2:/dev/videoN, rpicam or test.
    #[arg(long, value_name = "SRC")]
    source: SourceSpec,
    /// Stop capturing after this long (e.g. 300, 90s, 5m, 1h; default: end of the source).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Print one line per result and a summary instead of the console UI (the UI is not built
    /// yet: sessions run headless either way).
    #[arg(long)]
    headless: bool,
    /// Write the session report (JSON) to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Most recognition workers at once (default: the core count).
    #[arg(long, value_name = "N")]
    max_workers: Option<usize>,
    /// How fast file and test sources deliver frames.
    #[arg(long, value_enum, default_value_t = PaceArg::Realtime)]
    pace: PaceArg,
    /// This device's id (default: the host name).
    #[arg(long, value_name = "ID")]
    device: Option<String>,
    /// Clip length in milliseconds.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    clip_ms: u32,
    /// Frames analysed per clip: `auto` (at least 4 per second), `auto:N`, `all`, `every:K`.
    #[arg(long, default_value = "auto", value_name = "POLICY")]
    sample: SamplePolicy,
    /// Largest clip the function accepts, in bytes.
    #[arg(long, default_value_t = 8 * 1024 * 1024, value_name = "BYTES")]
    max_clip_bytes: usize,
    /// After capture, how long to wait without a new result before outstanding clips count as
    /// lost.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    grace: Duration,
    /// Keep the uploaded clips in DIR (default: a temporary folder, removed at the end).
    #[arg(long, value_name = "DIR")]
    objects: Option<PathBuf>,
    #[command(flatten)]
    recognizer: RecognizerArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PaceArg {
    /// As a camera would: the stream's own frame rate.
    Realtime,
    /// As fast as frames can be produced.
    Fast,
}

/// `300`, `300s`, `90s`, `5m`, `1h`, `250ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 90s, 5m, 1h, 250ms)"))?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    if !(seconds.is_finite() && seconds > 0.0 && seconds < 1e9) {
        return Err(format!("{text:?} is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[derive(Serialize)]
struct LatencyMs {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
    count: u64,
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
    ended: rollcall_edge::session::EndReason,
    error: Option<String>,
    capture_s: f64,
    total_s: f64,
    people: Vec<PersonTally>,
    clips: ClipCounters,
    unknown_faces: u64,
    duplicates: u64,
    /// End to end per clip: clip closed at the edge -> result received.
    latency_ms: Option<LatencyMs>,
    /// Median per stage.
    stages_ms: BTreeMap<String, f64>,
    pool: PoolReport,
}

fn default_device() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cleaned: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if validate_id("device id", &cleaned).is_ok() {
        cleaned
    } else {
        "edge".to_string()
    }
}

/// `2026-11-26T21-00-00Z-1a2b`: the start time (UTC) plus a little entropy.
fn new_session_id() -> String {
    let now = std::time::SystemTime::now();
    let stamp = rollcall_recognizer::directory::rfc3339_utc(now).replace(':', "-");
    format!("{stamp}-{:04x}", (now_ns() / 1000) & 0xffff)
}

fn clock(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        (ns / 1_000_000) % 1000
    )
}

fn result_line(got: &ReceivedResult) -> String {
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

pub fn run(args: SessionArgs, config: &ConfigFile) -> Result<ExitCode> {
    anyhow::ensure!(
        (100..=10_000).contains(&args.clip_ms),
        "--clip-ms must be between 100 and 10000"
    );
    let max_workers = args.max_workers.unwrap_or_else(default_max_workers);
    anyhow::ensure!(
        (1..=256).contains(&max_workers),
        "--max-workers must be between 1 and 256"
    );
    let device = args.device.clone().unwrap_or_else(default_device);
    validate_id("device id", &device).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
    if !args.headless {
        eprintln!("note: the console UI is not available yet; running headless");
    }

    let mut settings = args.recognizer.resolve(config)?;
    // One model session per worker, so workers never wait for each other.
    settings.options.runtime.sessions_per_model = max_workers;
    let directory = Arc::new(settings.directory()?);
    let pipeline = Arc::new(settings.pipeline()?);

    let scratch = tempfile::Builder::new()
        .prefix("rollcall-session-")
        .tempdir()
        .context("cannot create a temporary folder")?;
    let objects = args
        .objects
        .clone()
        .unwrap_or_else(|| scratch.path().join("objects"));
    let service = EmbeddedService::start(
        EmbeddedConfig {
            objects,
            pool: PoolConfig {
                name: "recognizer".into(),
                ..PoolConfig::with_max_workers(max_workers)
            },
            handler: HandlerConfig {
                max_clip_bytes: args.max_clip_bytes,
                threshold: settings.threshold,
                ..HandlerConfig::default()
            },
            publish_attempts: 3,
        },
        directory.clone(),
        pipeline,
        |analyzer| {
            analyzer.with_policy(args.sample).with_limits(ClipLimits {
                max_bytes: args.max_clip_bytes,
                ..ClipLimits::default()
            })
        },
    )?;
    // Loaded here only to warn early when nobody is enrolled; the workers load their own.
    settings.gallery(directory.as_ref())?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        service.runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: finishing the session");
                stop.store(true, Ordering::Relaxed);
            }
        });
    }

    let session_id = new_session_id();
    let mut session = SessionConfig::new(
        args.source.clone(),
        &device,
        &session_id,
        scratch.path().join("spool"),
    );
    session.source_options.pace = match args.pace {
        PaceArg::Realtime => Pace::RealTime,
        PaceArg::Fast => Pace::Fast,
    };
    session.clip_ms = args.clip_ms;
    session.duration = args.duration;
    session.grace = args.grace;
    session.receive_wait = Duration::from_millis(100);

    println!(
        "session {session_id} on device {device}: {} ({} pace), up to {max_workers} worker(s)",
        args.source,
        match args.pace {
            PaceArg::Realtime => "real-time",
            PaceArg::Fast => "fast",
        }
    );
    let sink = Arc::new(LocalDirSink::from_store(Arc::clone(&service.store)));
    let dispatcher = Arc::clone(&service.dispatcher);
    let report = run_session(
        &session,
        sink,
        Arc::clone(&service.queue),
        service.runtime.handle().clone(),
        stop,
        &SessionProbe::new(),
        move |got| {
            let pool = dispatcher.stats();
            println!(
                "{}  [workers {} busy {} backlog {}]",
                result_line(got),
                pool.workers,
                pool.busy,
                pool.backlog
            )
        },
    )
    .with_context(|| format!("cannot start the session on {}", args.source))?;
    let function = service.handler_stats();
    let pool = service.shutdown();
    print_summary(&report, &pool);
    println!(
        "function: {} clip(s) processed, {} error result(s), {} redelivered, {} gallery load(s)",
        function.processed, function.errors, function.duplicates, function.gallery_loads
    );

    let latency = report.latency.summary(Stage::EndToEnd).map(|s| LatencyMs {
        p50: s.p50_ms,
        p90: s.p90_ms,
        p99: s.p99_ms,
        max: s.max_ms,
        mean: s.mean_ms,
        count: s.count,
    });
    let stages_ms = report
        .latency
        .summaries()
        .into_iter()
        .filter(|(stage, _)| *stage != Stage::EndToEnd)
        .map(|(stage, s)| (stage.name().to_string(), s.p50_ms))
        .collect();
    let json = SessionReportJson {
        source: report.source.clone(),
        device_id: device,
        session_id,
        ended: report.ended,
        error: report.error.clone(),
        capture_s: report.capture_time.as_secs_f64(),
        total_s: report.total_time.as_secs_f64(),
        people: report.people.clone(),
        clips: report.clips,
        unknown_faces: report.unknown_faces,
        duplicates: report.duplicates,
        latency_ms: latency,
        stages_ms,
        pool: PoolReport {
            max_workers,
            peak_workers: pool.peak_workers,
            peak_backlog: pool.peak_backlog,
            workers_started: pool.started,
            workers_retired: pool.retired,
        },
    };
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&json)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    let failed = report.error.is_some() || report.clips.lost > 0 || report.clips.captured == 0;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_summary(report: &rollcall_edge::session::SessionReport, pool: &PoolStats) {
    let c = &report.clips;
    println!(
        "clips: {} captured, {} uploaded, {} results, {} errors, {} lost ({:?} after {:.1} s)",
        c.captured,
        c.uploaded,
        c.results,
        c.errors,
        c.lost,
        report.ended,
        report.capture_time.as_secs_f64()
    );
    if let Some(e) = &report.error {
        println!("session failed: {e}");
    }
    for p in &report.people {
        println!(
            "  {} ({}): {} clip(s), best similarity {:.3}",
            p.name, p.person_id, p.clips, p.best_similarity
        );
    }
    println!("  unknown faces: {}", report.unknown_faces);
    if let Some(s) = report.latency.summary(Stage::EndToEnd) {
        println!(
            "end-to-end after clip close: p50 {:.1} ms, p90 {:.1}, p99 {:.1}, max {:.1} ({} clips)",
            s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms, s.count
        );
    }
    let stages: Vec<String> = report
        .latency
        .summaries()
        .into_iter()
        .filter(|(stage, _)| *stage != Stage::EndToEnd)
        .map(|(stage, s)| format!("{stage} {:.1}", s.p50_ms))
        .collect();
    println!("median per stage (ms): {}", stages.join(", "));
    println!(
        "workers: peak {}, peak backlog {}, {} started, {} retired; {} duplicate result(s)",
        pool.peak_workers, pool.peak_backlog, pool.started, pool.retired, report.duplicates
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "x", "5 parsecs", "0", "-1s", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn session_ids_are_valid_ids() {
        let id = new_session_id();
        assert!(validate_id("session id", &id).is_ok(), "{id}");
        assert!(validate_id("device id", &default_device()).is_ok());
    }
}
