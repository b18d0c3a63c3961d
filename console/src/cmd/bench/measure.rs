//! One camera count: N simulated cameras for the step's capture time, with the load and
//! CPU samplers, judged against the real-time criterion.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rollcall_edge::latency::LatencyRecorder;
use rollcall_edge::replay::RecordedClips;
use rollcall_edge::session::{SessionConfig, SessionProbe};
use rollcall_edge::source::{now_ns, Pace, SourceSpec};

use super::args::{camera_device, CamerasArgs};
use super::cpu::{machine_cpu_ticks, process_cpu_seconds, processes_cpu_seconds};
use super::deployment::Deployment;
use super::load::{BacklogSummary, PoolSample};
use super::report::{CameraOutcome, Step};
use crate::plan::report::{stage_medians_ms, LatencyMs};
use crate::service::RecognitionService;

/// How often the pool's backlog is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Run `count` cameras against the service for `args.duration` and judge the outcome.
pub(super) fn measure(
    deployment: &mut Deployment,
    args: &CamerasArgs,
    feeds: &[CameraFeed],
    count: usize,
    p99_limit_ms: f64,
    scratch: &Path,
    interrupted: &Arc<AtomicBool>,
) -> Result<Step> {
    deployment.ensure_running()?;
    let probe = deployment.probe();
    // Settle the previous step's clips so each step starts from an idle service.
    if !probe.wait_idle(Duration::from_secs(30)) {
        eprintln!(
            "warning: the service is still busy after 30 s (clips of an earlier run?); \
             measuring anyway"
        );
    }
    // The edges connect before the clock starts (aws: one SDK client set per device).
    let services: Vec<Arc<RecognitionService>> = (0..count)
        .map(|i| deployment.service_for(&camera_device(i)))
        .collect::<Result<_>>()?;
    let worker_pids = deployment.worker_pids();
    let cpu_before = process_cpu_seconds("self");
    let workers_cpu_before = processes_cpu_seconds(&worker_pids);
    let machine_before = machine_cpu_ticks();
    let started = Instant::now();
    let capture_until = started + args.duration;
    let latency = Arc::new(Mutex::new(LatencyRecorder::new()));
    let run_id = now_ns() / 1_000_000;

    let capturing = Arc::new(AtomicBool::new(true));
    let sampler = {
        let capturing = Arc::clone(&capturing);
        std::thread::Builder::new()
            .name("bench-sampler".into())
            .spawn(move || {
                let mut samples: Vec<PoolSample> = Vec::new();
                let mut errors = Vec::new();
                while capturing.load(Ordering::Acquire) {
                    let at = started.elapsed().as_secs_f64();
                    match probe.read() {
                        Ok(load) => samples.push((at, load.backlog, load.workers)),
                        Err(e) => errors.push(e),
                    }
                    std::thread::sleep(SAMPLE_EVERY);
                }
                (samples, errors)
            })
            .context("cannot start the sampler thread")?
    };

    let cameras: Vec<_> = services
        .iter()
        .enumerate()
        .map(|(i, service)| {
            let feed = &feeds[i % feeds.len()];
            let device = camera_device(i);
            let spool = scratch.join(format!("spool-{run_id}-{device}"));
            // Real cameras are not synchronised: spread the clip boundaries over one clip length.
            let offset = Duration::from_millis(u64::from(args.clip_ms) * i as u64 / count as u64);
            let camera = Camera {
                device,
                feed: feed.clone(),
                spool,
                offset,
                capture_until,
                run_id,
                size: args.size,
                clip_ms: args.clip_ms,
                grace: args.grace,
            };
            let service = Arc::clone(service);
            let latency = Arc::clone(&latency);
            let interrupted = Arc::clone(interrupted);
            std::thread::Builder::new()
                .name(format!("camera-{}", i + 1))
                .spawn(move || camera.run(&service, &latency, &interrupted))
                .context("cannot start a camera thread")
        })
        .collect::<Result<_>>()?;
    let per_camera: Vec<CameraOutcome> = cameras
        .into_iter()
        .map(|c| {
            c.join().unwrap_or_else(|_| CameraOutcome {
                failure: Some("the camera thread panicked".into()),
                ..CameraOutcome::default()
            })
        })
        .collect();
    capturing.store(false, Ordering::Release);
    let (samples, sample_errors) = sampler
        .join()
        .unwrap_or_else(|_| (Vec::new(), vec!["the sampler thread panicked".to_string()]));
    let wall = started.elapsed().as_secs_f64();
    let cpu_percent = match (cpu_before, process_cpu_seconds("self")) {
        (Some(a), Some(b)) if wall > 0.0 => Some(100.0 * (b - a) / wall),
        _ => None,
    };
    let worker_cpu_percent = match (workers_cpu_before, processes_cpu_seconds(&worker_pids)) {
        (Some(a), Some(b)) if wall > 0.0 => Some(100.0 * (b - a) / wall),
        _ => None,
    };
    let machine_busy_percent = match (machine_before, machine_cpu_ticks()) {
        (Some((busy_a, total_a)), Some((busy_b, total_b))) if total_b > total_a => {
            Some(100.0 * (busy_b - busy_a) as f64 / (total_b - total_a) as f64)
        }
        _ => None,
    };
    // The last reference of an aws edge: stop its runtime now rather than at some later drop.
    for service in services {
        if let Ok(service) = Arc::try_unwrap(service) {
            service.shutdown();
        }
    }

    let latency = latency.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let end_to_end = LatencyMs::end_to_end(&latency);
    let stages_ms = stage_medians_ms(&latency);
    let capture_s = args.duration.as_secs_f64();
    let backlog = BacklogSummary::of(&samples, capture_s);
    let sum = |f: fn(&CameraOutcome) -> u64| per_camera.iter().map(f).sum::<u64>();
    let (clips, results, errors, lost) = (
        sum(|c| c.captured),
        sum(|c| c.results),
        sum(|c| c.errors),
        sum(|c| c.lost),
    );

    let mut failed = Vec::new();
    for camera in &per_camera {
        if let Some(why) = &camera.failure {
            failed.push(format!("{}: {why}", camera.device_id));
        } else if camera.captured == 0 {
            failed.push(format!("{}: no clip captured", camera.device_id));
        }
    }
    if lost > 0 || errors > 0 || results != clips {
        failed.push(format!(
            "incomplete: {lost} lost, {errors} error result(s), {results} results for {clips} clips"
        ));
    }
    if samples.is_empty() {
        // Without a single reading "no growing backlog" would pass unmeasured.
        failed.push(format!(
            "backlog not measured: {}",
            sample_errors.last().map_or("no sample", String::as_str)
        ));
    } else if backlog.last_third_peak > count {
        failed.push(format!(
            "backlog grew: {} queued clips in the last third (limit {count})",
            backlog.last_third_peak
        ));
    }
    match &end_to_end {
        Some(l) if l.p99 > p99_limit_ms => failed.push(format!(
            "end-to-end p99 {:.0} ms over {p99_limit_ms:.0} ms",
            l.p99
        )),
        Some(_) => {}
        None => failed.push("no end-to-end latency measured".into()),
    }
    Ok(Step {
        cameras: count,
        clips,
        results,
        errors,
        lost,
        latency_ms: end_to_end,
        stages_ms,
        peak_backlog: backlog.peak,
        last_third_peak_backlog: backlog.last_third_peak,
        backlog_trend_per_s: backlog.trend_per_s,
        peak_workers: samples.iter().map(|s| s.2).max().unwrap_or(0),
        backlog_sample_errors: sample_errors.len(),
        cpu_percent,
        worker_cpu_percent,
        machine_busy_percent,
        capture_s,
        wall_s: wall,
        realtime: failed.is_empty(),
        failed,
        per_camera,
    })
}

/// What a camera sends: its video, captured live, or the clips recorded from it (`--replay`).
#[derive(Clone)]
pub(super) struct CameraFeed {
    pub(super) video: PathBuf,
    pub(super) replay: Option<Arc<RecordedClips>>,
}

/// One simulated camera: back-to-back edge sessions replaying its video until the step's
/// capture time is over.
pub(super) struct Camera {
    pub(super) device: String,
    pub(super) feed: CameraFeed,
    pub(super) spool: PathBuf,
    pub(super) offset: Duration,
    pub(super) capture_until: Instant,
    pub(super) run_id: u64,
    pub(super) size: (u32, u32),
    pub(super) clip_ms: u32,
    pub(super) grace: Duration,
}

impl Camera {
    pub(super) fn run(
        self,
        service: &RecognitionService,
        latency: &Mutex<LatencyRecorder>,
        interrupted: &Arc<AtomicBool>,
    ) -> CameraOutcome {
        let mut outcome = CameraOutcome {
            device_id: self.device.clone(),
            video: self.feed.video.display().to_string(),
            ..CameraOutcome::default()
        };
        std::thread::sleep(self.offset);
        loop {
            let left = self.capture_until.saturating_duration_since(Instant::now());
            // A pass shorter than two clips would only add a partial clip.
            if left < Duration::from_millis(2 * u64::from(self.clip_ms))
                || interrupted.load(Ordering::Relaxed)
            {
                break;
            }
            outcome.passes += 1;
            let session_id = format!("bench-{}-{}", self.run_id, outcome.passes);
            let mut config = SessionConfig::new(
                SourceSpec::File(self.feed.video.clone()),
                &self.device,
                &session_id,
                self.spool.join(&session_id),
            );
            config.source_options.pace = Pace::RealTime;
            config.source_options.width = Some(self.size.0);
            config.source_options.height = Some(self.size.1);
            config.clip_ms = self.clip_ms;
            config.duration = Some(left);
            config.grace = self.grace;
            config.receive_wait = Duration::from_millis(100);
            config.replay = self.feed.replay.clone();
            let report = service.run(
                &config,
                Arc::clone(interrupted),
                &SessionProbe::new(),
                |_| {},
            );
            match report {
                Ok(report) => {
                    outcome.captured += report.clips.captured;
                    outcome.results += report.clips.results;
                    outcome.errors += report.clips.errors;
                    // Unanswered when the pass ended, whether still spooled or gone.
                    outcome.lost += report.clips.lost + report.clips.spooled;
                    latency
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .merge(&report.latency);
                    if let Some(e) = report.error {
                        outcome.failure = Some(e);
                        break;
                    }
                    if report.clips.captured == 0 {
                        // An unreadable or empty video would otherwise spin here.
                        outcome.failure = Some(format!("{}: no frames", self.feed.video.display()));
                        break;
                    }
                }
                Err(e) => {
                    outcome.failure = Some(format!("{}: {e}", self.feed.video.display()));
                    break;
                }
            }
        }
        outcome
    }
}
