//! `rollcall bench ...`: load benchmarks of the running system (as opposed to the per-stage
//! `cargo bench` micro-benchmarks).
//!
//! `rollcall bench cameras`: ONE recognition service fed by N simulated cameras at once, each a
//! full edge session (`RecognitionService::run`: capture -> 0.5 s clips -> encode -> spool ->
//! upload -> results) replaying a video file at real-time pace under its own device id. It
//! reports, per camera count, what every camera saw and whether the service kept up in real
//! time, and the largest camera count that did. The service is either
//! - embedded (default, `--backend local`): local store, autoscaling worker pool, in-process
//!   result queue, exactly as `rollcall session` runs it; or
//! - AWS (`--backend aws`, e.g. against moto): every camera is an edge of its own
//!   (`RecognitionService::aws`: S3 sink + its device's SQS result queue), and the function side
//!   is `--workers K` `rollcall worker` processes started by the bench (see [`aws_side`]).
//!
//! Real-time criterion (all three must hold for a camera count N):
//! 1. complete: every camera got a result for every clip it captured: lost = 0, no error
//!    results, results = captured;
//! 2. no growing backlog: the backlog, sampled every 100 ms while the cameras capture, stays at
//!    most N (one waiting clip per camera) over the last third of the capture time: a service
//!    that falls behind accumulates clips there. Embedded: the pool's backlog (clips queued, not
//!    started); AWS: the clip-events queue's `ApproximateNumberOfMessages` +
//!    `ApproximateNumberOfMessagesNotVisible` (waiting + being recognised);
//! 3. bounded latency: end-to-end p99 (clip closed at the edge -> result received) is at most
//!    the clip length + the margin (`--latency-margin`, default 500 ms): a clip waiting longer
//!    than one clip length behind the camera means the queue is not draining.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rollcall_edge::latency::LatencyRecorder;
use rollcall_edge::session::{SessionConfig, SessionProbe};
use rollcall_edge::source::{now_ns, Pace, SourceSpec};
use rollcall_models::ModelCache;
use rollcall_recognizer::clip::SamplePolicy;
use rollcall_recognizer::pool::default_max_workers;
use serde::Serialize;

use crate::cmd::session::{parse_duration, stage_medians_ms, LatencyMs};
use crate::embedded::EmbeddedOptions;
use crate::service::RecognitionService;
use crate::settings::{ConfigFile, Recognition, RecognizerArgs};

/// The demo video (640x360, 20 s, several faces), fetched by `rollcall models fetch --all`.
const DEMO_VIDEO: &str = "WolfgangLanger_Pexels.mp4";
/// How often the pool's backlog is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// `rollcall bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// N simulated cameras on one embedded service: the largest N kept in real time.
    Cameras(CamerasArgs),
}

/// Options of `rollcall bench cameras`.
#[derive(Args, Debug)]
pub struct CamerasArgs {
    /// Camera counts to measure, in order (e.g. 1,2,4,6,8). Stops at the first count that is
    /// not kept in real time unless --keep-going.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "N,N,...",
        conflicts_with = "max"
    )]
    cameras: Vec<usize>,
    /// Step up 1, 2, 3, ... cameras until the real-time criterion fails, at most N.
    /// (Default when neither --cameras nor --max is given: --max 8.)
    #[arg(long, value_name = "N")]
    max: Option<usize>,
    /// Capture time per camera count (e.g. 20s, 1m).
    #[arg(long, default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    duration: Duration,
    /// Video file a camera replays at real-time pace (repeatable: camera i plays video
    /// i mod count; a video shorter than --duration is replayed from the start).
    /// Default: the demo video $ROLLCALL_HOME/demo/WolfgangLanger_Pexels.mp4.
    #[arg(long = "video", value_name = "PATH")]
    videos: Vec<PathBuf>,
    /// Frame size every camera delivers, WIDTHxHEIGHT (videos are scaled to it).
    #[arg(long, default_value = "640x360", value_parser = parse_size, value_name = "WxH")]
    size: (u32, u32),
    /// Most recognition workers at once (default: the core count). With --backend aws: clips
    /// each `rollcall worker` process recognises at once (its --max-workers).
    #[arg(long, value_name = "N")]
    max_workers: Option<usize>,
    /// Clip length in milliseconds.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    clip_ms: u32,
    /// Frames analysed per clip: `auto` (at least 4 per second), `auto:N`, `all`, `every:K`.
    #[arg(long, default_value = "auto", value_name = "POLICY")]
    sample: SamplePolicy,
    /// How far end-to-end p99 may exceed the clip length and still count as real time.
    #[arg(long, default_value = "500ms", value_parser = parse_duration, value_name = "DURATION")]
    latency_margin: Duration,
    /// After capture, how long to wait without a new result before outstanding clips count as
    /// lost.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    grace: Duration,
    /// Measure every camera count even after one failed the criterion.
    #[arg(long)]
    keep_going: bool,
    /// Print the results as JSON (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// --backend aws: the deployment's resource names. The bench provisions them first (as
    /// `rollcall aws provision --device bench-cam-01 ...` does, default options: this resets the
    /// clip-events queue's visibility timeout to 60 s); someone must be enrolled in the people
    /// table (`ROLLCALL_AWS_PREFIX=<prefix> rollcall enroll --backend aws --photos DIR`).
    #[cfg(feature = "aws")]
    #[command(flatten)]
    aws: crate::cmd::aws::AwsNames,
    /// --backend aws: `rollcall worker` processes the bench starts on this machine for the run
    /// (and kills at its end).
    #[cfg(feature = "aws")]
    #[arg(long, default_value_t = 1, value_name = "K")]
    workers: usize,
    #[command(flatten)]
    recognizer: RecognizerArgs,
}

/// `640x360`.
fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let parsed = text
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)));
    match parsed {
        Some((w, h)) if (16..=7680).contains(&w) && (16..=4320).contains(&h) => Ok((w, h)),
        _ => Err(format!(
            "{text:?} is not a frame size WIDTHxHEIGHT between 16x16 and 7680x4320 (e.g. 640x360)"
        )),
    }
}

pub fn run(command: BenchCommand, config: &ConfigFile) -> Result<ExitCode> {
    match command {
        BenchCommand::Cameras(args) => cameras(args, config),
    }
}

/// One simulated camera's outcome over one camera count.
#[derive(Serialize, Clone, Debug, Default)]
struct CameraOutcome {
    device_id: String,
    video: String,
    /// Sessions run back to back (more than one when the video is shorter than --duration).
    passes: u32,
    captured: u64,
    results: u64,
    errors: u64,
    lost: u64,
    /// Why a session could not run or failed, if one did.
    failure: Option<String>,
}

/// One camera count.
#[derive(Serialize)]
struct Step {
    cameras: usize,
    /// Clips captured by all cameras.
    clips: u64,
    results: u64,
    errors: u64,
    lost: u64,
    /// End to end: clip closed at the edge -> result received, all cameras together.
    latency_ms: Option<LatencyMs>,
    /// Median per stage (encode, upload, function, decode, detect, embed, delivery, ...).
    stages_ms: std::collections::BTreeMap<String, f64>,
    /// Largest backlog sampled during capture, and over its last third (embedded: the pool's
    /// queued clips; aws: the clip-events queue's messages, waiting + in flight).
    peak_backlog: usize,
    last_third_peak_backlog: usize,
    /// Least-squares trend of the sampled backlog over the capture, clips per second.
    backlog_trend_per_s: f64,
    /// Embedded: the pool's largest worker count; aws: the most clips in flight at once
    /// (received by a worker, not yet answered).
    peak_workers: usize,
    /// Backlog samples that could not be read (aws: a failed GetQueueAttributes).
    backlog_sample_errors: usize,
    /// This process's CPU time over wall time (100 = one core busy), and the whole machine's
    /// busy share of all cores (others' load included).
    cpu_percent: Option<f64>,
    /// aws: the `rollcall worker` processes' CPU time over wall time, all together.
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_cpu_percent: Option<f64>,
    machine_busy_percent: Option<f64>,
    capture_s: f64,
    wall_s: f64,
    realtime: bool,
    /// The criteria that failed (empty when real time).
    failed: Vec<String>,
    per_camera: Vec<CameraOutcome>,
}

#[derive(Serialize)]
struct Criterion {
    /// End-to-end p99 limit: clip length + margin.
    p99_limit_ms: f64,
    /// The last-third backlog limit is the camera count (one waiting clip per camera).
    backlog_limit: &'static str,
    /// What the backlog counts.
    backlog: &'static str,
    complete: &'static str,
}

#[derive(Serialize)]
struct BenchJson {
    backend: &'static str,
    cores: usize,
    /// Embedded: the pool's most workers; aws: per `rollcall worker` process.
    max_workers: usize,
    /// aws: `rollcall worker` processes.
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_processes: Option<usize>,
    videos: Vec<String>,
    size: String,
    clip_ms: u32,
    duration_s: f64,
    sample: String,
    criterion: Criterion,
    steps: Vec<Step>,
    /// The largest camera count that met the criterion (`null` if none did).
    largest_realtime: Option<usize>,
}

fn cameras(args: CamerasArgs, config: &ConfigFile) -> Result<ExitCode> {
    anyhow::ensure!(
        (100..=10_000).contains(&args.clip_ms),
        "--clip-ms must be between 100 and 10000"
    );
    let max_workers = args.max_workers.unwrap_or_else(default_max_workers);
    anyhow::ensure!(
        (1..=256).contains(&max_workers),
        "--max-workers must be between 1 and 256"
    );
    let counts: Vec<usize> = if args.cameras.is_empty() {
        (1..=args.max.unwrap_or(8)).collect()
    } else {
        args.cameras.clone()
    };
    anyhow::ensure!(
        !counts.is_empty() && counts.iter().all(|n| (1..=64).contains(n)),
        "camera counts must be between 1 and 64 (got {counts:?})"
    );
    let settings = args.recognizer.resolve(config)?;
    let videos = if args.videos.is_empty() {
        let cache = ModelCache::from_env().context("cannot locate the rollcall data directory")?;
        let demo = cache.demo_path(DEMO_VIDEO)?;
        anyhow::ensure!(
            demo.is_file(),
            "the demo video {} is missing: run `rollcall models fetch --all` or give --video PATH",
            demo.display()
        );
        vec![demo]
    } else {
        args.videos.clone()
    };
    for video in &videos {
        anyhow::ensure!(video.is_file(), "--video {}: no such file", video.display());
    }

    let scratch = tempfile::Builder::new()
        .prefix("rollcall-bench-")
        .tempdir()
        .context("cannot create a temporary folder")?;
    let largest_count = counts.iter().copied().max().unwrap_or(1);
    let mut deployment =
        Deployment::start(&args, &settings, max_workers, largest_count, scratch.path())?;
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = Arc::clone(&interrupted);
        deployment.runtime().spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: finishing the current step");
                interrupted.store(true, Ordering::Relaxed);
            }
        });
    }

    let p99_limit_ms = f64::from(args.clip_ms) + args.latency_margin.as_secs_f64() * 1e3;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "bench cameras: {} on {cores} core(s); {}x{} at real-time pace for {:.0} s per step; \
         real time = nothing lost, backlog <= N over the last third, end-to-end p99 <= \
         {p99_limit_ms:.0} ms",
        deployment.describe(max_workers),
        args.size.0,
        args.size.1,
        args.duration.as_secs_f64()
    );
    print_header();
    let mut steps = Vec::new();
    for &count in &counts {
        let step = measure(
            &mut deployment,
            &args,
            &videos,
            count,
            p99_limit_ms,
            scratch.path(),
            &interrupted,
        )?;
        print_row(&step);
        let stop = !step.realtime && !args.keep_going;
        steps.push(step);
        if stop || interrupted.load(Ordering::Relaxed) {
            break;
        }
    }
    let largest_realtime = steps
        .iter()
        .take_while(|s| s.realtime)
        .map(|s| s.cameras)
        .max();
    match largest_realtime {
        Some(n) => eprintln!("largest camera count kept in real time: {n}"),
        None => eprintln!("no camera count was kept in real time"),
    }
    // Let the function finish what it holds (aws: delete the answered messages) before it is
    // stopped: a worker killed between publishing a result and deleting its message would leave
    // the message to reappear, and be recognised again, in the next run.
    if !deployment.probe().wait_idle(Duration::from_secs(30)) {
        eprintln!("warning: clips still queued after 30 s; stopping the service anyway");
    }
    let backend = deployment.backend();
    let backlog = deployment.backlog_measure();
    let worker_processes = deployment.worker_processes();
    deployment.shutdown();
    if args.json {
        let json = BenchJson {
            backend,
            cores,
            max_workers,
            worker_processes,
            videos: videos.iter().map(|v| v.display().to_string()).collect(),
            size: format!("{}x{}", args.size.0, args.size.1),
            clip_ms: args.clip_ms,
            duration_s: args.duration.as_secs_f64(),
            sample: args.sample.to_string(),
            criterion: Criterion {
                p99_limit_ms,
                backlog_limit: "cameras",
                backlog,
                complete: "lost = 0, errors = 0, results = captured for every camera",
            },
            steps,
            largest_realtime,
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    // The verdict is data, not an error: a run that measured is a success.
    Ok(ExitCode::SUCCESS)
}

/// The device id of camera `index` (0-based): `bench-cam-01`, `bench-cam-02`, ...
fn camera_device(index: usize) -> String {
    format!("bench-cam-{:02}", index + 1)
}

/// The recognition side at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Load {
    /// Embedded: clips queued in the pool, not started; aws: clip-events messages, waiting +
    /// in flight.
    backlog: usize,
    /// Embedded: the pool's workers; aws: messages in flight (received by a worker).
    workers: usize,
    /// Clips being recognised.
    busy: usize,
}

impl Load {
    fn idle(&self) -> bool {
        self.backlog == 0 && self.busy == 0
    }
}

/// Reads the recognition side's [`Load`]; cheap to clone into the sampler thread.
#[derive(Clone)]
enum LoadProbe {
    Pool(Arc<RecognitionService>),
    #[cfg(feature = "aws")]
    Queue(aws_side::EventsQueueProbe),
}

impl LoadProbe {
    fn read(&self) -> Result<Load, String> {
        match self {
            LoadProbe::Pool(service) => {
                let stats = service
                    .pool_stats()
                    .ok_or("the embedded service has no pool")?;
                Ok(Load {
                    backlog: stats.backlog,
                    workers: stats.workers,
                    busy: stats.busy,
                })
            }
            #[cfg(feature = "aws")]
            LoadProbe::Queue(queue) => queue.read(),
        }
    }

    /// Wait until nothing is queued or being recognised (bounded); whether it got there.
    fn wait_idle(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self.read().is_ok_and(|load| load.idle()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// The recognition side the cameras talk to.
enum Deployment {
    /// One embedded service shared by every camera.
    Embedded(Arc<RecognitionService>),
    /// S3 + SQS + `rollcall worker` processes; every camera is an edge of its own.
    #[cfg(feature = "aws")]
    Aws(aws_side::AwsDeployment),
}

impl Deployment {
    /// Start the backend `settings` name, ready for up to `largest_count` cameras.
    fn start(
        args: &CamerasArgs,
        settings: &Recognition,
        max_workers: usize,
        largest_count: usize,
        scratch: &Path,
    ) -> Result<Deployment> {
        match settings.backend.as_str() {
            #[cfg(feature = "aws")]
            "aws" => {
                anyhow::ensure!(
                    (1..=16).contains(&args.workers),
                    "--workers must be between 1 and 16"
                );
                let devices = (0..largest_count).map(camera_device).collect();
                Ok(Deployment::Aws(aws_side::AwsDeployment::start(
                    args.aws.names(),
                    devices,
                    args.workers,
                    &aws_side::worker_flags(settings, max_workers, args.sample),
                    scratch,
                )?))
            }
            #[cfg(not(feature = "aws"))]
            "aws" => anyhow::bail!("this rollcall was built without the `aws` feature"),
            _ => Ok(Deployment::Embedded(Arc::new(
                RecognitionService::embedded(
                    settings,
                    &EmbeddedOptions {
                        max_workers,
                        sample: args.sample,
                        max_clip_bytes: 8 * 1024 * 1024,
                        objects: scratch.join("objects"),
                    },
                )?,
            ))),
        }
    }

    fn backend(&self) -> &'static str {
        match self {
            Deployment::Embedded(_) => "embedded",
            #[cfg(feature = "aws")]
            Deployment::Aws(_) => "aws",
        }
    }

    /// For the header line.
    fn describe(&self, max_workers: usize) -> String {
        match self {
            Deployment::Embedded(_) => {
                format!("embedded service, up to {max_workers} worker(s)")
            }
            #[cfg(feature = "aws")]
            Deployment::Aws(aws) => aws.describe(max_workers),
        }
    }

    /// What the backlog counts (for the JSON).
    fn backlog_measure(&self) -> &'static str {
        match self {
            Deployment::Embedded(_) => "pool: clips queued, not started",
            #[cfg(feature = "aws")]
            Deployment::Aws(_) => {
                "clip-events queue: ApproximateNumberOfMessages + \
                 ApproximateNumberOfMessagesNotVisible"
            }
        }
    }

    fn worker_processes(&self) -> Option<usize> {
        match self {
            Deployment::Embedded(_) => None,
            #[cfg(feature = "aws")]
            Deployment::Aws(aws) => Some(aws.worker_count()),
        }
    }

    /// The runtime for the Ctrl-C handler.
    fn runtime(&self) -> tokio::runtime::Handle {
        match self {
            Deployment::Embedded(service) => service.runtime(),
            #[cfg(feature = "aws")]
            Deployment::Aws(aws) => aws.runtime(),
        }
    }

    fn probe(&self) -> LoadProbe {
        match self {
            Deployment::Embedded(service) => LoadProbe::Pool(Arc::clone(service)),
            #[cfg(feature = "aws")]
            Deployment::Aws(aws) => LoadProbe::Queue(aws.probe()),
        }
    }

    /// The service camera `device` sends its clips to (embedded: the shared one; aws: a new
    /// edge for that device).
    fn service_for(&self, device: &str) -> Result<Arc<RecognitionService>> {
        match self {
            Deployment::Embedded(service) => Ok(Arc::clone(service)),
            #[cfg(feature = "aws")]
            Deployment::Aws(aws) => Ok(Arc::new(aws.edge(device)?)),
        }
    }

    /// Fails when a part of the deployment has died (aws: a worker process exited).
    fn ensure_running(&mut self) -> Result<()> {
        match self {
            Deployment::Embedded(_) => Ok(()),
            #[cfg(feature = "aws")]
            Deployment::Aws(aws) => aws.ensure_running(),
        }
    }

    /// Process ids whose CPU time counts as the function's (aws: the worker processes).
    fn worker_pids(&self) -> Vec<u32> {
        match self {
            Deployment::Embedded(_) => Vec::new(),
            #[cfg(feature = "aws")]
            Deployment::Aws(aws) => aws.worker_pids(),
        }
    }

    /// Finish queued clips and stop (aws: kill the worker processes).
    fn shutdown(self) {
        match self {
            Deployment::Embedded(service) => {
                if let Ok(service) = Arc::try_unwrap(service) {
                    service.shutdown();
                }
            }
            #[cfg(feature = "aws")]
            Deployment::Aws(aws) => aws.shutdown(),
        }
    }
}

/// One load sample: seconds since the step's start, backlog, workers.
type PoolSample = (f64, usize, usize);

/// Run `count` cameras against the service for `args.duration` and judge the outcome.
fn measure(
    deployment: &mut Deployment,
    args: &CamerasArgs,
    videos: &[PathBuf],
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
            let video = videos[i % videos.len()].clone();
            let device = camera_device(i);
            let spool = scratch.join(format!("spool-{run_id}-{device}"));
            // Real cameras are not synchronised: spread the clip boundaries over one clip length.
            let offset = Duration::from_millis(u64::from(args.clip_ms) * i as u64 / count as u64);
            let camera = Camera {
                device,
                video,
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

/// One simulated camera: back-to-back edge sessions replaying its video until the step's
/// capture time is over.
struct Camera {
    device: String,
    video: PathBuf,
    spool: PathBuf,
    offset: Duration,
    capture_until: Instant,
    run_id: u64,
    size: (u32, u32),
    clip_ms: u32,
    grace: Duration,
}

impl Camera {
    fn run(
        self,
        service: &RecognitionService,
        latency: &Mutex<LatencyRecorder>,
        interrupted: &Arc<AtomicBool>,
    ) -> CameraOutcome {
        let mut outcome = CameraOutcome {
            device_id: self.device.clone(),
            video: self.video.display().to_string(),
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
                SourceSpec::File(self.video.clone()),
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
                    outcome.lost += report.clips.lost;
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
                        outcome.failure = Some(format!("{}: no frames", self.video.display()));
                        break;
                    }
                }
                Err(e) => {
                    outcome.failure = Some(format!("{}: {e}", self.video.display()));
                    break;
                }
            }
        }
        outcome
    }
}

/// The sampled backlog over one step's capture time.
#[derive(Debug, PartialEq)]
struct BacklogSummary {
    peak: usize,
    last_third_peak: usize,
    trend_per_s: f64,
}

impl BacklogSummary {
    /// `samples` are (seconds since start, backlog, workers); only those within the capture
    /// time count (the drain after capture empties the queue by design).
    fn of(samples: &[PoolSample], capture_s: f64) -> BacklogSummary {
        let during: Vec<(f64, f64)> = samples
            .iter()
            .filter(|s| s.0 <= capture_s)
            .map(|s| (s.0, s.1 as f64))
            .collect();
        let peak_from = |from: f64| {
            samples
                .iter()
                .filter(|s| s.0 >= from && s.0 <= capture_s)
                .map(|s| s.1)
                .max()
                .unwrap_or(0)
        };
        BacklogSummary {
            peak: peak_from(0.0),
            last_third_peak: peak_from(capture_s * 2.0 / 3.0),
            trend_per_s: slope(&during),
        }
    }
}

/// Least-squares slope of y over x (0 with fewer than two distinct x).
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    if sxx > 0.0 {
        sxy / sxx
    } else {
        0.0
    }
}

/// User + system CPU time so far of process `pid` (`self`: this one), from /proc/PID/stat
/// (Linux; `None` elsewhere). /proc counts in USER_HZ ticks, which Linux fixes at 100 per
/// second.
fn process_cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at "state" (field 3);
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// The CPU time of all of `pids` together (`None` for none, or when one cannot be read).
fn processes_cpu_seconds(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter()
        .map(|pid| process_cpu_seconds(&pid.to_string()))
        .sum()
}

/// (busy, total) ticks of all cores from /proc/stat's first line (Linux; `None` elsewhere).
fn machine_cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = values.iter().take(8).sum();
    // idle + iowait.
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

fn print_header() {
    eprintln!(
        "{:>7} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>6} {:>7}  real time",
        "cameras", "clips", "lost", "p50 ms", "p90 ms", "p99 ms", "backlog", "CPU%", "machine"
    );
}

fn print_row(step: &Step) {
    let (p50, p90, p99) =
        step.latency_ms
            .as_ref()
            .map_or(("-".to_string(), "-".to_string(), "-".to_string()), |l| {
                (
                    format!("{:.1}", l.p50),
                    format!("{:.1}", l.p90),
                    format!("{:.1}", l.p99),
                )
            });
    let percent = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    // All of rollcall's CPU: this process, plus the worker processes on aws (moto's is only in
    // the machine's figure).
    let rollcall_cpu = match (step.cpu_percent, step.worker_cpu_percent) {
        (Some(bench), Some(workers)) => Some(bench + workers),
        (bench, workers) => bench.or(workers),
    };
    let verdict = if step.realtime {
        "yes".to_string()
    } else {
        format!("NO: {}", step.failed.join("; "))
    };
    eprintln!(
        "{:>7} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>6} {:>7}  {verdict}",
        step.cameras,
        step.clips,
        step.lost,
        p50,
        p90,
        p99,
        format!("{}/{}", step.last_third_peak_backlog, step.peak_backlog),
        percent(rollcall_cpu),
        percent(step.machine_busy_percent),
    );
}

/// The AWS variant: provisioning, the function side and the clip-events queue probe.
///
/// The function runs as `rollcall worker` processes (this executable, `worker --prefix P
/// --wait 1s ...`) rather than in-process workers: that is how the deployment runs it (separate
/// processes, each with its own models, gallery and SDK clients, any number of them), so the
/// bench measures what is deployed, including the processes' own CPU, and `worker()` needs no
/// second entry point. [`WorkerProcesses`] kills them when the bench ends, on errors and panics
/// too.
#[cfg(feature = "aws")]
mod aws_side {
    use std::fs::File;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use anyhow::{Context, Result};
    use rollcall_recognizer::aws::{self, Names, ProvisionOptions, SqsClient};
    use rollcall_recognizer::clip::SamplePolicy;
    use rollcall_recognizer::directory::dynamodb::DynamoDirectory;
    use rollcall_recognizer::directory::PeopleDirectory;

    use super::Load;
    use crate::service::RecognitionService;
    use crate::settings::Recognition;

    /// How long a worker may take to load its models and the gallery.
    const WORKER_READY_WITHIN: Duration = Duration::from_secs(120);
    /// A worker left behind (the bench killed with SIGKILL) stops on its own after this long
    /// without a clip, well above any pause between steps.
    const WORKER_IDLE_EXIT: &str = "10m";
    /// Longest wait for one queue reading, so a hung request cannot stall the sampler.
    const READ_TIMEOUT: Duration = Duration::from_secs(2);

    /// The provisioned deployment and its running workers.
    pub(in crate::cmd::bench) struct AwsDeployment {
        // First field: the workers go before the runtime and the clients.
        workers: WorkerProcesses,
        names: Names,
        probe: EventsQueueProbe,
        runtime: tokio::runtime::Runtime,
    }

    impl AwsDeployment {
        /// Provision `names` with result queues for `devices` (idempotent, as `rollcall aws
        /// provision --device ...`), warn when nobody is enrolled, and start `worker_count`
        /// workers with `worker_flags`; returns once every worker has loaded its models.
        pub(in crate::cmd::bench) fn start(
            names: Names,
            devices: Vec<String>,
            worker_count: usize,
            worker_flags: &[String],
            scratch: &Path,
        ) -> Result<AwsDeployment> {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("bench-aws")
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let sdk = runtime.block_on(aws::load_config());
            let provisioned = runtime
                .block_on(aws::provision(
                    &sdk,
                    &names,
                    &ProvisionOptions {
                        devices,
                        ..ProvisionOptions::default()
                    },
                ))
                .with_context(|| {
                    format!(
                        "cannot provision the AWS deployment {:?} (endpoint, credentials?)",
                        names.prefix
                    )
                })?;
            let table = names.table();
            let people = DynamoDirectory::new(&sdk, &table)
                .and_then(|directory| directory.people())
                .with_context(|| format!("cannot read the people table {table}"))?;
            if people.is_empty() {
                eprintln!(
                    "warning: nobody is enrolled in the DynamoDB table {table}; every face will \
                     be unknown (enrol first: ROLLCALL_AWS_PREFIX={} rollcall enroll --backend \
                     aws --photos DIR)",
                    names.prefix
                );
            }
            let exe = std::env::current_exe()
                .context("cannot find the rollcall executable to start workers")?;
            let mut workers = WorkerProcesses::default();
            for index in 0..worker_count {
                workers.spawn(&exe, &names, index, worker_flags, scratch)?;
            }
            workers.wait_ready(WORKER_READY_WITHIN)?;
            let probe = EventsQueueProbe {
                sqs: SqsClient::new(&sdk),
                url: provisioned.events_queue_url,
                runtime: runtime.handle().clone(),
            };
            Ok(AwsDeployment {
                workers,
                names,
                probe,
                runtime,
            })
        }

        pub(in crate::cmd::bench) fn describe(&self, max_workers: usize) -> String {
            format!(
                "aws: s3://{}/ -> {} -> {} `rollcall worker` process(es), up to {max_workers} \
                 clip(s) each -> {}-results-bench-cam-NN",
                self.names.bucket,
                self.names.events_queue(),
                self.workers.0.len(),
                self.names.prefix
            )
        }

        pub(in crate::cmd::bench) fn worker_count(&self) -> usize {
            self.workers.0.len()
        }

        pub(in crate::cmd::bench) fn worker_pids(&self) -> Vec<u32> {
            self.workers.0.iter().map(|w| w.child.id()).collect()
        }

        pub(in crate::cmd::bench) fn runtime(&self) -> tokio::runtime::Handle {
            self.runtime.handle().clone()
        }

        pub(in crate::cmd::bench) fn probe(&self) -> EventsQueueProbe {
            self.probe.clone()
        }

        /// The edge of camera `device`: S3 sink + its result queue.
        pub(in crate::cmd::bench) fn edge(&self, device: &str) -> Result<RecognitionService> {
            RecognitionService::aws(self.names.clone(), device)
        }

        pub(in crate::cmd::bench) fn ensure_running(&mut self) -> Result<()> {
            self.workers.ensure_running()
        }

        pub(in crate::cmd::bench) fn shutdown(self) {
            let AwsDeployment {
                workers, runtime, ..
            } = self;
            drop(workers);
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }

    /// Reads the clip-events queue's message counts.
    #[derive(Clone)]
    pub(in crate::cmd::bench) struct EventsQueueProbe {
        sqs: SqsClient,
        url: String,
        runtime: tokio::runtime::Handle,
    }

    impl EventsQueueProbe {
        /// Backlog = waiting + in flight (a clip received by a worker is not done until its
        /// message is deleted); workers and busy = in flight.
        pub(in crate::cmd::bench) fn read(&self) -> Result<Load, String> {
            const WAITING: &str = "ApproximateNumberOfMessages";
            const IN_FLIGHT: &str = "ApproximateNumberOfMessagesNotVisible";
            let request = self
                .sqs
                .get_queue_attributes()
                .queue_url(&self.url)
                // `.into()`: the SDK's attribute name type, without depending on the SQS crate.
                .attribute_names(WAITING.into())
                .attribute_names(IN_FLIGHT.into())
                .send();
            let out = self
                .runtime
                // In an async block: the timeout's timer needs the runtime's context.
                .block_on(async { tokio::time::timeout(READ_TIMEOUT, request).await })
                .map_err(|_| format!("no queue attributes within {READ_TIMEOUT:?}"))?
                .map_err(|e| error_chain(&e))?;
            let count = |name: &str| -> Result<usize, String> {
                out.attributes()
                    .and_then(|all| all.iter().find(|(key, _)| key.as_str() == name))
                    .and_then(|(_, value)| value.parse().ok())
                    .ok_or_else(|| format!("the queue reported no {name}"))
            };
            let (waiting, in_flight) = (count(WAITING)?, count(IN_FLIGHT)?);
            Ok(Load {
                backlog: waiting + in_flight,
                workers: in_flight,
                busy: in_flight,
            })
        }
    }

    /// An error with its sources (the SDK's own `Display` says little: "service error").
    fn error_chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    /// The `rollcall worker` flags that make the workers recognise as the bench's settings say
    /// (resolved: flags, environment and config file alike).
    pub(in crate::cmd::bench) fn worker_flags(
        settings: &Recognition,
        max_workers: usize,
        sample: SamplePolicy,
    ) -> Vec<String> {
        // `--flag=value`: a negative threshold would otherwise read as a flag.
        let mut flags = vec![
            format!("--max-workers={max_workers}"),
            format!("--sample={sample}"),
            format!("--threads={}", settings.options.runtime.intra_threads),
            format!("--min-face={}", settings.options.detector.min_face_size),
            format!("--detector={}", settings.options.detector_kind),
        ];
        if let Some(threshold) = settings.threshold {
            flags.push(format!("--threshold={threshold}"));
        }
        flags
    }

    struct WorkerProcess {
        id: String,
        child: Child,
        /// Its stderr.
        log: PathBuf,
    }

    /// `rollcall worker` child processes, killed and reaped when dropped.
    #[derive(Default)]
    struct WorkerProcesses(Vec<WorkerProcess>);

    impl WorkerProcesses {
        fn spawn(
            &mut self,
            exe: &Path,
            names: &Names,
            index: usize,
            flags: &[String],
            scratch: &Path,
        ) -> Result<()> {
            let id = format!("bench-worker-{}-{}", std::process::id(), index + 1);
            let log = scratch.join(format!("{id}.log"));
            let stderr = File::create(&log)
                .with_context(|| format!("cannot create the worker log {}", log.display()))?;
            let mut command = Command::new(exe);
            command
                .args([
                    "worker",
                    "--prefix",
                    &names.prefix,
                    "--bucket",
                    &names.bucket,
                ])
                .args(["--wait", "1s", "--idle-exit", WORKER_IDLE_EXIT])
                .args(["--instance-id", &id])
                .args(flags)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr);
            // Own process group: Ctrl-C at the terminal reaches the bench only, which finishes
            // its step (the workers still answering) and then stops them.
            #[cfg(unix)]
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let child = command
                .spawn()
                .with_context(|| format!("cannot start `{} worker`", exe.display()))?;
            tracing::info!(worker = %id, pid = child.id(), "bench worker started");
            self.0.push(WorkerProcess { id, child, log });
            Ok(())
        }

        /// Wait until every worker has printed its start line (models and gallery loaded).
        fn wait_ready(&mut self, limit: Duration) -> Result<()> {
            let until = Instant::now() + limit;
            for worker in &mut self.0 {
                // The line `rollcall worker` prints once warmed up (cmd/aws.rs, `worker()`).
                let ready = format!("rollcall worker {}: ", worker.id);
                loop {
                    let log = std::fs::read_to_string(&worker.log).unwrap_or_default();
                    if log
                        .lines()
                        .any(|line| line.starts_with(&ready) && line.contains(" enrolled, "))
                    {
                        break;
                    }
                    if let Some(status) = worker.child.try_wait()? {
                        anyhow::bail!(
                            "`rollcall worker` {} exited ({status}) before it was ready:\n{}",
                            worker.id,
                            last_lines(&log)
                        );
                    }
                    anyhow::ensure!(
                        Instant::now() < until,
                        "`rollcall worker` {} not ready after {limit:?}:\n{}",
                        worker.id,
                        last_lines(&log)
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Ok(())
        }

        fn ensure_running(&mut self) -> Result<()> {
            for worker in &mut self.0 {
                if let Some(status) = worker.child.try_wait()? {
                    let log = std::fs::read_to_string(&worker.log).unwrap_or_default();
                    anyhow::bail!(
                        "`rollcall worker` {} exited ({status}):\n{}",
                        worker.id,
                        last_lines(&log)
                    );
                }
            }
            Ok(())
        }
    }

    /// How long a worker may take to stop after SIGINT (its last long poll, the clips in hand,
    /// its log shipping) before it is killed.
    const WORKER_STOP_WITHIN: Duration = Duration::from_secs(10);

    impl Drop for WorkerProcesses {
        /// SIGINT first, as Ctrl-C would: a killed worker's open long poll can still take a
        /// message (SQS does not notice the dead client), which then stays invisible for the
        /// visibility timeout and shows up as backlog in the next run. Killed if it lingers.
        fn drop(&mut self) {
            for worker in &mut self.0 {
                if !matches!(worker.child.try_wait(), Ok(None)) {
                    continue;
                }
                #[cfg(unix)]
                let _ = Command::new("kill")
                    .args(["-INT", &worker.child.id().to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            let until = Instant::now() + WORKER_STOP_WITHIN;
            for worker in &mut self.0 {
                while matches!(worker.child.try_wait(), Ok(None)) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(50));
                }
                // Already exited: nothing to kill; either way reap it.
                let _ = worker.child.kill();
                let _ = worker.child.wait();
            }
        }
    }

    /// The end of a worker's stderr, for error messages.
    fn last_lines(log: &str) -> String {
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("640x360").unwrap(), (640, 360));
        assert_eq!(parse_size("1280X720").unwrap(), (1280, 720));
        for bad in ["", "640", "640x", "x360", "0x0", "640x360x2", "99999x10"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backlog_summary_uses_the_capture_window_only() {
        // Flat at 1 for 9 s, then a growing queue in the last third, then the drain.
        let mut samples: Vec<PoolSample> = (0..60).map(|i| (f64::from(i) * 0.1, 1, 2)).collect();
        samples.extend((0..30).map(|i| (6.0 + i as f64 * 0.1, 2 + i / 3, 2)));
        samples.push((9.5, 40, 2));
        let summary = BacklogSummary::of(&samples, 9.0);
        assert_eq!(summary.peak, 11);
        assert_eq!(summary.last_third_peak, 11);
        assert!(summary.trend_per_s > 0.5, "{summary:?}");

        let steady: Vec<PoolSample> = (0..90).map(|i| (i as f64 * 0.1, i % 2, 2)).collect();
        let summary = BacklogSummary::of(&steady, 9.0);
        assert_eq!((summary.peak, summary.last_third_peak), (1, 1));
        assert!(summary.trend_per_s.abs() < 0.05, "{summary:?}");
        assert_eq!(BacklogSummary::of(&[], 9.0).peak, 0);
    }

    #[test]
    fn slopes() {
        assert_eq!(slope(&[]), 0.0);
        assert_eq!(slope(&[(1.0, 5.0)]), 0.0);
        assert!((slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn cpu_readings_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(process_cpu_seconds("self").is_some());
            let me = std::process::id();
            assert!(processes_cpu_seconds(&[me, me]).is_some());
            assert_eq!(processes_cpu_seconds(&[]), None);
            let (busy, total) = machine_cpu_ticks().unwrap();
            assert!(busy <= total);
        }
    }
}
