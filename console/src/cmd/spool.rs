//! `rollcall spool status|drain`: the durable clip spool (`--spool`, `$ROLLCALL_SPOOL`, config
//! `spool`, default `$ROLLCALL_HOME/spool`).
//!
//! Every captured clip waits there, on disk, until its result has arrived. What a crash, a
//! `kill -9` or an outage longer than a session left behind is sent by the next session of the
//! same device, or by `spool drain`, which uploads it through the chosen backend, waits for the
//! answers, prints them and removes the answered clips. `spool status` only reads: it works
//! while sessions run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rollcall_edge::drain::{DrainConfig, DrainReport};
use rollcall_edge::source::now_ns;
use rollcall_edge::spool::{inventory, ClipSpool, DeviceInventory};
use rollcall_protocol::ids::validate_id;
use serde::Serialize;

use crate::embedded::EmbeddedOptions;
use crate::plan::durations::{parse_duration, short_duration};
use crate::plan::report::{result_line, say_err};
use crate::plan::resolve_max_workers;
use crate::plan::SpoolArgs;
use crate::service::RecognitionService;
use crate::settings::{ClipArgs, ConfigFile, RecognizerArgs};

/// `rollcall spool ...`
#[derive(Subcommand, Debug)]
pub enum SpoolCommand {
    /// What waits in the spool: clips per device and session, and how old the oldest is.
    Status(StatusArgs),
    /// Send the clips left in the spool (by a crash, an outage...), wait for their answers and
    /// print them. Exit 0 only when nothing is left pending and nothing was lost.
    Drain(Box<DrainArgs>),
}

/// `rollcall spool status`
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    spool: SpoolArgs,
    /// Print JSON: `pending`, `bytes`, `oldest_age_s`, and the same per device and session.
    #[arg(long)]
    json: bool,
}

/// `rollcall spool drain`
#[derive(Args, Debug)]
pub struct DrainArgs {
    #[command(flatten)]
    spool: SpoolArgs,
    /// Only this device's clips (default: every device in the spool).
    #[arg(long, value_name = "ID")]
    device: Option<String>,
    /// Give up after this long without an upload or a result; what is left stays in the spool.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    grace: Duration,
    /// Print JSON: `uploaded`, `results`, `errors`, `lost`, `lost_clip_ids`, `pending`, and the
    /// same per device.
    #[arg(long)]
    json: bool,
    /// Most recognition workers at once, embedded backend (default: the core count).
    #[arg(long, value_name = "N")]
    max_workers: Option<usize>,
    /// Keep the uploaded clips in DIR (embedded backend; default: a temporary folder).
    #[arg(long, value_name = "DIR")]
    objects: Option<PathBuf>,
    #[command(flatten)]
    clip: ClipArgs,
    /// AWS backend: resource names (the deployment's prefix / bucket).
    #[cfg(feature = "aws")]
    #[command(flatten)]
    aws: crate::settings::AwsNames,
    #[command(flatten)]
    recognizer: RecognizerArgs,
}

pub fn run(command: SpoolCommand, config: &ConfigFile) -> Result<ExitCode> {
    match command {
        SpoolCommand::Status(args) => status(&args, config),
        SpoolCommand::Drain(args) => drain(&args, config),
    }
}

fn age_s(closed_ns: u64) -> f64 {
    now_ns().saturating_sub(closed_ns) as f64 / 1e9
}

#[derive(Serialize)]
struct SessionStatus {
    session_id: String,
    clips: u64,
    bytes: u64,
    oldest_age_s: f64,
}

#[derive(Serialize)]
struct DeviceStatus {
    device_id: String,
    /// A process (a session, a drain) uses the device's spool right now.
    in_use: bool,
    pending: u64,
    bytes: u64,
    oldest_age_s: Option<f64>,
    sessions: Vec<SessionStatus>,
}

#[derive(Serialize)]
struct SpoolStatus {
    spool: String,
    pending: u64,
    bytes: u64,
    oldest_age_s: Option<f64>,
    devices: Vec<DeviceStatus>,
}

fn spool_status(root: &Path, devices: &[DeviceInventory]) -> SpoolStatus {
    let devices: Vec<DeviceStatus> = devices
        .iter()
        .map(|d| DeviceStatus {
            device_id: d.device_id.clone(),
            in_use: d.in_use,
            pending: d.clips(),
            bytes: d.sessions.iter().map(|s| s.bytes).sum(),
            oldest_age_s: d.oldest_closed_ns().map(age_s),
            sessions: d
                .sessions
                .iter()
                .map(|s| SessionStatus {
                    session_id: s.session_id.clone(),
                    clips: s.clips,
                    bytes: s.bytes,
                    oldest_age_s: age_s(s.oldest_closed_ns),
                })
                .collect(),
        })
        .collect();
    SpoolStatus {
        spool: root.display().to_string(),
        pending: devices.iter().map(|d| d.pending).sum(),
        bytes: devices.iter().map(|d| d.bytes).sum(),
        oldest_age_s: devices
            .iter()
            .filter_map(|d| d.oldest_age_s)
            .reduce(f64::max),
        devices,
    }
}

fn age(seconds: f64) -> String {
    short_duration(Duration::from_secs_f64(seconds.max(0.0)))
}

fn status(args: &StatusArgs, config: &ConfigFile) -> Result<ExitCode> {
    let root = args.spool.root(config)?;
    let found =
        inventory(&root).with_context(|| format!("cannot read the spool {}", root.display()))?;
    let status = spool_status(&root, &found);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "spool {}: {} clip(s) pending, {} kB{}",
        status.spool,
        status.pending,
        status.bytes.div_ceil(1024),
        status.oldest_age_s.map_or(String::new(), |s| format!(
            ", the oldest closed {} ago",
            age(s)
        ))
    );
    for device in &status.devices {
        println!(
            "  device {}{}: {} clip(s)",
            device.device_id,
            if device.in_use {
                " (in use by a running process)"
            } else {
                ""
            },
            device.pending
        );
        for session in &device.sessions {
            println!(
                "    session {}: {} clip(s), {} kB, the oldest closed {} ago",
                session.session_id,
                session.clips,
                session.bytes.div_ceil(1024),
                age(session.oldest_age_s)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a drain did, for one device or all of them.
#[derive(Serialize, Default)]
struct DrainCounts {
    uploaded: u64,
    results: u64,
    errors: u64,
    lost: u64,
    lost_clip_ids: Vec<String>,
    pending: u64,
}

impl DrainCounts {
    fn add(&mut self, other: &DrainCounts) {
        self.uploaded += other.uploaded;
        self.results += other.results;
        self.errors += other.errors;
        self.lost += other.lost;
        self.lost_clip_ids
            .extend(other.lost_clip_ids.iter().cloned());
        self.pending += other.pending;
    }
}

#[derive(Serialize, Default)]
struct DeviceDrain {
    device_id: String,
    found: u64,
    #[serde(flatten)]
    counts: DrainCounts,
    retries: u64,
    outage_s: f64,
    /// Why the device could not be drained (its spool in use...).
    error: Option<String>,
}

impl From<DrainReport> for DeviceDrain {
    fn from(r: DrainReport) -> Self {
        DeviceDrain {
            device_id: r.device_id,
            found: r.found,
            counts: DrainCounts {
                uploaded: r.uploaded,
                results: r.results,
                errors: r.errors,
                lost: r.lost_clip_ids.len() as u64,
                lost_clip_ids: r.lost_clip_ids,
                pending: r.pending,
            },
            retries: r.link.retries,
            outage_s: r.link.outage.as_secs_f64(),
            error: None,
        }
    }
}

#[derive(Serialize)]
struct DrainSummary {
    spool: String,
    backend: String,
    #[serde(flatten)]
    counts: DrainCounts,
    interrupted_by: Option<&'static str>,
    devices: Vec<DeviceDrain>,
}

fn drain(args: &DrainArgs, config: &ConfigFile) -> Result<ExitCode> {
    let root = args.spool.root(config)?;
    let max_bytes = args.spool.max_bytes(config)?;
    let found =
        inventory(&root).with_context(|| format!("cannot read the spool {}", root.display()))?;
    let devices: Vec<DeviceInventory> = match &args.device {
        Some(device) => {
            validate_id("device id", device).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
            found
                .into_iter()
                .filter(|d| &d.device_id == device)
                .collect()
        }
        None => found,
    };
    let devices: Vec<DeviceInventory> = devices.into_iter().filter(|d| d.clips() > 0).collect();
    let recognition = args.recognizer.resolve(config)?;
    let mut summary = DrainSummary {
        spool: root.display().to_string(),
        backend: recognition.backend.clone(),
        counts: DrainCounts::default(),
        interrupted_by: None,
        devices: Vec::new(),
    };
    if devices.is_empty() {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            println!("spool {}: nothing to drain", root.display());
        }
        return Ok(ExitCode::SUCCESS);
    }

    // Nothing is started for an empty spool: models and AWS only when there is work.
    let scratch = tempfile::Builder::new()
        .prefix("rollcall-drain-")
        .tempdir()
        .context("cannot create a temporary folder")?;
    let service = match recognition.backend.as_str() {
        #[cfg(feature = "aws")]
        "aws" => RecognitionService::aws(args.aws.names(), &devices[0].device_id)?,
        #[cfg(not(feature = "aws"))]
        "aws" => anyhow::bail!("this rollcall was built without the `aws` feature"),
        _ => {
            let max_workers = resolve_max_workers(args.max_workers, config)?;
            RecognitionService::embedded(
                &recognition,
                &EmbeddedOptions {
                    max_workers,
                    sample: args.clip.sample,
                    max_clip_bytes: args.clip.max_clip_bytes,
                    objects: args
                        .objects
                        .clone()
                        .unwrap_or_else(|| scratch.path().join("objects")),
                },
            )?
        }
    };
    let interrupt = Arc::new(AtomicBool::new(false));
    let signals = {
        let interrupt = Arc::clone(&interrupt);
        let root = root.clone();
        crate::signals::watch(
            &service.runtime(),
            move |signal| {
                say_err(&format!(
                    "interrupted by {}: stopping the drain (a second signal stops at once)",
                    signal.name()
                ));
                interrupt.store(true, Ordering::Relaxed);
            },
            move |signal| {
                say_err(&format!(
                    "{} again: stopping now; unanswered clips stay in the spool {}",
                    signal.name(),
                    root.display()
                ));
                crate::signals::exit_at_once(signal.exit_status());
            },
        )
        .context("cannot install the signal handlers")?
    };

    let drain_config = DrainConfig {
        grace: args.grace,
        receive_wait: Duration::from_millis(100),
        ..DrainConfig::default()
    };
    for device in &devices {
        if interrupt.load(Ordering::Relaxed) {
            break;
        }
        if !args.json {
            println!(
                "device {}: draining {} clip(s)",
                device.device_id,
                device.clips()
            );
        }
        let outcome = ClipSpool::open(&root, &device.device_id, max_bytes)
            .map_err(anyhow::Error::from)
            .and_then(|spool| {
                let quiet = args.json;
                service
                    .drain(Arc::new(spool), &drain_config, &interrupt, move |got| {
                        if !quiet {
                            println!("{} {}", got.result.session_id, result_line(got));
                        }
                    })
                    .context("cannot start the drain threads")
            });
        let report = match outcome {
            Ok(report) => DeviceDrain::from(report),
            Err(e) => DeviceDrain {
                device_id: device.device_id.clone(),
                found: device.clips(),
                counts: DrainCounts {
                    pending: device.clips(),
                    ..DrainCounts::default()
                },
                error: Some(format!("{e:#}")),
                ..DeviceDrain::default()
            },
        };
        if !args.json {
            println!(
                "device {}: {}{}",
                report.device_id,
                counts_line(&report.counts),
                report
                    .error
                    .as_ref()
                    .map_or(String::new(), |e| format!(": {e}"))
            );
            if !report.counts.lost_clip_ids.is_empty() {
                println!("  lost clips: {}", report.counts.lost_clip_ids.join(" "));
            }
        }
        summary.counts.add(&report.counts);
        summary.devices.push(report);
    }
    // Devices not reached (interrupted) still have their clips.
    for device in devices.iter().skip(summary.devices.len()) {
        summary.counts.pending += device.clips();
    }
    summary.interrupted_by = signals.first().map(|s| s.name());
    service.shutdown();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "drain of {}: {}",
            summary.spool,
            counts_line(&summary.counts)
        );
    }
    Ok(match signals.first() {
        Some(signal) => signal.exit_code(),
        None if summary.counts.pending == 0 && summary.counts.lost == 0 => ExitCode::SUCCESS,
        None => ExitCode::FAILURE,
    })
}

/// `3 uploaded, 3 answered (0 errors), 0 lost, 0 pending`
fn counts_line(c: &DrainCounts) -> String {
    format!(
        "{} uploaded, {} answered ({} errors), {} lost, {} pending",
        c.uploaded, c.results, c.errors, c.lost, c.pending
    )
}
