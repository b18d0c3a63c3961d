//! `rollcall session --source SRC`: a capture session, in the operator console or `--headless`.
//! Capture -> 0.5 s clips -> spool -> upload -> recognition -> result queue -> edge, with
//! end-to-end latency per clip. Embedded backend: the store, the autoscaling worker pool and the
//! result queue are in this process; AWS backend: S3 and the device's SQS queue, with the
//! function running in Lambda or `rollcall worker`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use rollcall_edge::latency::Stage;
use rollcall_edge::receive::ReceivedResult;
use rollcall_edge::session::{
    ClipCounters, PersonTally, SessionConfig, SessionReport, SessionSnapshot,
};
use rollcall_edge::source::{now_ns, Pace, SourceSpec};
use rollcall_edge::validate_id;
use rollcall_recognizer::pool::{default_max_workers, PoolStats};
use serde::Serialize;

use crate::embedded::EmbeddedOptions;
use crate::service::RecognitionService;
use crate::settings::{ClipArgs, ConfigFile, Recognition, RecognizerArgs};

/// Run a capture session: the operator console, or `--headless` for scripts.
#[derive(Args, Debug)]
pub struct SessionArgs {
    /// Print one line per result, progress and a summary instead of the console UI.
    #[arg(long)]
    headless: bool,
    /// Write the session report (JSON) to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Headless: print a progress line this often (0 = never).
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration_or_zero)]
    progress: Duration,
    #[command(flatten)]
    pub capture: CaptureArgs,
}

/// How a capture session runs: the flags shared by `session` and `console`.
#[derive(Args, Debug, Clone)]
pub struct CaptureArgs {
    /// Frame source: file:PATH, v4l2:/dev/videoN, rpicam or test. Default: the first camera
    /// found (/dev/video0, then rpicam), else the demo video, else the test pattern.
    #[arg(long, env = "ROLLCALL_SOURCE", value_name = "SRC")]
    pub source: Option<SourceSpec>,
    /// Stop capturing after this long (e.g. 300, 90s, 5m, 1h; `end` = at the end of the
    /// source). Default: 5m.
    #[arg(long, value_name = "DURATION", value_parser = parse_session_duration)]
    pub duration: Option<SessionDuration>,
    /// Most recognition workers at once, embedded backend (default: the core count).
    #[arg(long, value_name = "N")]
    pub max_workers: Option<usize>,
    /// How fast file and test sources deliver frames.
    #[arg(long, value_enum, default_value_t = PaceArg::Realtime)]
    pub pace: PaceArg,
    /// This device's id (default: the host name).
    #[arg(long, env = "ROLLCALL_DEVICE", value_name = "ID")]
    pub device: Option<String>,
    /// Clip length in milliseconds.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub clip_ms: u32,
    #[command(flatten)]
    pub clip: ClipArgs,
    /// After capture, how long to wait without a new result before outstanding clips count as
    /// lost.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    pub grace: Duration,
    /// Keep the uploaded clips in DIR (embedded backend; default: a temporary folder).
    #[arg(long, value_name = "DIR")]
    pub objects: Option<PathBuf>,
    /// AWS backend: resource names (the deployment's prefix / bucket).
    #[cfg(feature = "aws")]
    #[command(flatten)]
    pub aws: crate::cmd::aws::AwsNames,
    #[command(flatten)]
    pub recognizer: RecognizerArgs,
}

/// A session's length unless told otherwise: the scripted run of the original design.
pub const DEFAULT_SESSION: Duration = Duration::from_secs(300);

/// How long a session captures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionDuration {
    /// Until the source ends (or a stop).
    EndOfSource,
    /// At most this long.
    Limit(Duration),
}

impl SessionDuration {
    pub fn limit(self) -> Option<Duration> {
        match self {
            SessionDuration::EndOfSource => None,
            SessionDuration::Limit(d) => Some(d),
        }
    }
}

fn parse_session_duration(text: &str) -> Result<SessionDuration, String> {
    match text.trim() {
        "end" | "none" | "unlimited" => Ok(SessionDuration::EndOfSource),
        other => parse_duration(other).map(SessionDuration::Limit),
    }
}

fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    if matches!(text.trim(), "0" | "0s" | "never") {
        return Ok(Duration::ZERO);
    }
    parse_duration(text)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PaceArg {
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
    clips: ClipCounters,
    unknown_faces: u64,
    duplicates: u64,
    /// End to end per clip: clip closed at the edge -> result received.
    latency_ms: Option<LatencyMs>,
    /// Median per stage.
    stages_ms: BTreeMap<String, f64>,
    /// The embedded worker pool (absent with the AWS backend).
    pool: Option<PoolReport>,
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

/// `hh:mm:ss.mmm` (UTC) of a Unix time in ns.
pub fn clock(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        (ns / 1_000_000) % 1000
    )
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

/// Capture settings resolved from flags, environment and config: what to start and how.
pub struct CapturePlan {
    pub source: SourceSpec,
    pub device: String,
    pub pace: Pace,
    pub clip_ms: u32,
    pub duration: Option<Duration>,
    pub grace: Duration,
    pub recognition: Recognition,
    pub embedded: EmbeddedOptions,
    #[cfg(feature = "aws")]
    pub names: rollcall_recognizer::aws::Names,
    /// Spools and (by default) the embedded object store; removed at the end.
    scratch: tempfile::TempDir,
}

impl CaptureArgs {
    /// Check and resolve the flags.
    pub fn plan(&self, config: &ConfigFile) -> Result<CapturePlan> {
        anyhow::ensure!(
            (100..=10_000).contains(&self.clip_ms),
            "--clip-ms must be between 100 and 10000"
        );
        let max_workers = self
            .max_workers
            .or(config.max_workers)
            .unwrap_or_else(default_max_workers);
        anyhow::ensure!(
            (1..=256).contains(&max_workers),
            "--max-workers must be between 1 and 256"
        );
        let device = self
            .device
            .clone()
            .or_else(|| config.device.clone())
            .unwrap_or_else(default_device);
        validate_id("device id", &device).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
        let recognition = self.recognizer.resolve(config)?;
        let source = match (&self.source, &config.source) {
            (Some(source), _) => source.clone(),
            (None, Some(text)) => {
                SourceSpec::parse(text).map_err(|e| anyhow::anyhow!("config file `source`: {e}"))?
            }
            (None, None) => default_source(&recognition.cache),
        };
        let duration = match (self.duration, &config.duration) {
            (Some(duration), _) => duration,
            (None, Some(text)) => parse_session_duration(text)
                .map_err(|e| anyhow::anyhow!("config file `duration`: {e}"))?,
            (None, None) => SessionDuration::Limit(DEFAULT_SESSION),
        };
        let scratch = tempfile::Builder::new()
            .prefix("rollcall-session-")
            .tempdir()
            .context("cannot create a temporary folder")?;
        let objects = self
            .objects
            .clone()
            .unwrap_or_else(|| scratch.path().join("objects"));
        Ok(CapturePlan {
            source,
            device,
            pace: match self.pace {
                PaceArg::Realtime => Pace::RealTime,
                PaceArg::Fast => Pace::Fast,
            },
            clip_ms: self.clip_ms,
            duration: duration.limit(),
            grace: self.grace,
            embedded: EmbeddedOptions {
                max_workers,
                sample: self.clip.sample,
                max_clip_bytes: self.clip.max_clip_bytes,
                objects,
            },
            recognition,
            #[cfg(feature = "aws")]
            names: self.aws.names(),
            scratch,
        })
    }
}

impl CapturePlan {
    /// Start the recognition service of the configured backend (loads the models when
    /// embedded).
    pub fn start_service(&self) -> Result<RecognitionService> {
        match self.recognition.backend.as_str() {
            #[cfg(feature = "aws")]
            "aws" => RecognitionService::aws(self.names.clone(), &self.device),
            #[cfg(not(feature = "aws"))]
            "aws" => anyhow::bail!("this rollcall was built without the `aws` feature"),
            _ => RecognitionService::embedded(&self.recognition, &self.embedded),
        }
    }

    /// A new session's configuration on `source`.
    pub fn session_config(&self, source: &SourceSpec) -> SessionConfig {
        let session_id = new_session_id();
        let spool = self.scratch.path().join(format!("spool-{session_id}"));
        let mut session = SessionConfig::new(source.clone(), &self.device, &session_id, spool);
        session.source_options.pace = self.pace;
        session.clip_ms = self.clip_ms;
        session.duration = self.duration;
        session.grace = self.grace;
        session.receive_wait = Duration::from_millis(100);
        session
    }
}

/// A camera if there is one, else the demo video if it was built, else the test pattern.
fn default_source(cache: &rollcall_models::ModelCache) -> SourceSpec {
    if std::path::Path::new("/dev/video0").exists() {
        return SourceSpec::V4l2("/dev/video0".into());
    }
    let on_path = |program: &str| {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())
        })
    };
    if on_path("rpicam-vid") || on_path("libcamera-vid") {
        return SourceSpec::Rpicam;
    }
    let demo = crate::cmd::demo::demo_video_path(cache);
    if demo.is_file() {
        return SourceSpec::File(demo);
    }
    SourceSpec::TestPattern
}

pub fn run(args: SessionArgs, config: &ConfigFile) -> Result<ExitCode> {
    let plan = args.capture.plan(config)?;
    if !args.headless {
        return crate::tui::run(
            plan,
            crate::tui::ConsoleOptions {
                autostart: true,
                report: args.report,
                ..crate::tui::ConsoleOptions::default()
            },
        );
    }
    let report = run_headless(&plan, args.report.as_deref(), args.progress)?;
    Ok(session_exit_code(&report))
}

/// A session without the console: one line per result, progress every `progress` (zero:
/// never), a summary, and the JSON report written to `report_path`.
pub fn run_headless(
    plan: &CapturePlan,
    report_path: Option<&std::path::Path>,
    progress: Duration,
) -> Result<SessionReport> {
    let service = Arc::new(
        plan.start_service()
            .with_context(|| format!("cannot start the {} backend", plan.recognition.backend))?,
    );
    let config_for_session = plan.session_config(&plan.source);
    let session_id = config_for_session.session_id.clone();
    println!(
        "session {session_id} on device {}: {} ({} pace) -> {}",
        plan.device,
        plan.source,
        match plan.pace {
            Pace::RealTime => "real-time",
            Pace::Fast => "fast",
        },
        service.describe()
    );
    let mut running = service.spawn(config_for_session)?;
    {
        let stop = running.stop_flag();
        service.runtime().spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: finishing the session");
                stop.store(true, Ordering::Relaxed);
            }
        });
    }
    let mut last_progress = Instant::now();
    let mut introduced = std::collections::HashSet::new();
    loop {
        match running.results.recv_timeout(Duration::from_millis(250)) {
            Ok(got) => {
                // Someone's academic record, the first time they show up in this session.
                for person in &got.result.people {
                    if introduced.insert(person.person_id.clone()) {
                        println!("{}", person_line(person));
                    }
                }
                let pool = service
                    .pool_stats()
                    .map(|p| {
                        format!(
                            "  [workers {} busy {} backlog {}]",
                            p.workers, p.busy, p.backlog
                        )
                    })
                    .unwrap_or_default();
                println!("{}{pool}", result_line(&got));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if !progress.is_zero() && last_progress.elapsed() >= progress {
            last_progress = Instant::now();
            eprintln!(
                "{}",
                progress_line(
                    &running.probe.snapshot(),
                    running.started.elapsed(),
                    plan.duration
                )
            );
        }
    }
    let report = running
        .join()
        .map_err(|e| anyhow::anyhow!(e))
        .with_context(|| format!("session on {}", plan.source))?;
    let function = service.handler_stats();
    let pool = match Arc::try_unwrap(service) {
        Ok(service) => service.shutdown(),
        Err(_) => None,
    };
    print_summary(&report, pool.as_ref());
    if let Some(function) = function {
        println!(
            "function: {} clip(s) processed, {} error result(s), {} redelivered, {} gallery load(s)",
            function.processed, function.errors, function.duplicates, function.gallery_loads
        );
    }
    let json = report_json(&report, plan, &session_id, pool.as_ref());
    if let Some(path) = report_path {
        write_report(path, &json)?;
    }
    Ok(report)
}

/// `Barack Obama (barack_obama): programme Political Science, student_id DEMO-0044, year 4`
pub fn person_line(person: &rollcall_recognizer::wire::RecognizedPerson) -> String {
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

/// Non-zero when capture failed, nothing was captured or a clip got no result.
pub fn session_exit_code(report: &SessionReport) -> ExitCode {
    let failed = report.error.is_some() || report.clips.lost > 0 || report.clips.captured == 0;
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `progress: 1m30s of 5m0s, 180 clips captured, ...`
fn progress_line(live: &SessionSnapshot, elapsed: Duration, limit: Option<Duration>) -> String {
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

/// `4m05s`, `12s`.
pub fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
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

fn print_summary(report: &SessionReport, pool: Option<&PoolStats>) {
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
    if let Some(pool) = pool {
        println!(
            "workers: peak {}, peak backlog {}, {} started, {} retired",
            pool.peak_workers, pool.peak_backlog, pool.started, pool.retired
        );
    }
    println!("{} duplicate result(s) dropped", report.duplicates);
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

    fn capture_args(argv: &[&str]) -> CaptureArgs {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            capture: CaptureArgs,
        }
        <Wrapper as clap::Parser>::try_parse_from(
            std::iter::once("rollcall").chain(argv.iter().copied()),
        )
        .expect("valid flags")
        .capture
    }

    #[test]
    fn flags_beat_the_config_file_which_beats_defaults() {
        let config: ConfigFile = toml::from_str(
            "source = \"test\"\ndevice = \"cfg-dev\"\nduration = \"end\"\nmax_workers = 3\n",
        )
        .unwrap();
        let plan = capture_args(&[]).plan(&config).unwrap();
        assert_eq!(plan.source, SourceSpec::TestPattern);
        assert_eq!(plan.device, "cfg-dev");
        assert_eq!(plan.duration, None);
        assert_eq!(plan.embedded.max_workers, 3);

        let plan = capture_args(&["--device", "flag-dev", "--duration", "90s"])
            .plan(&config)
            .unwrap();
        assert_eq!(plan.device, "flag-dev");
        assert_eq!(plan.duration, Some(Duration::from_secs(90)));

        let plan = capture_args(&["--source", "test"])
            .plan(&ConfigFile::default())
            .unwrap();
        assert_eq!(plan.duration, Some(DEFAULT_SESSION));

        let bad: ConfigFile = toml::from_str("source = \"webcam\"").unwrap();
        let err = capture_args(&[]).plan(&bad).err().expect("bad source");
        assert!(
            format!("{err:#}").contains("config file `source`"),
            "{err:#}"
        );
    }

    #[test]
    fn session_ids_are_valid_ids() {
        let id = new_session_id();
        assert!(validate_id("session id", &id).is_ok(), "{id}");
        assert!(validate_id("device id", &default_device()).is_ok());
    }
}
