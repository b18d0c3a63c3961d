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

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rollcall_edge::replay::RecordedClips;
use rollcall_edge::source::{SourceOptions, SourceSpec};
use rollcall_models::ModelCache;
use rollcall_recognizer::pool::default_max_workers;

use super::args::CamerasArgs;
use super::deployment::Deployment;
use super::measure::{measure, CameraFeed};
use super::report::{print_header, print_row, BenchJson, Criterion};
use crate::settings::ConfigFile;

/// The demo video (640x360, 20 s, several faces), fetched by `rollcall models fetch --all`.
const DEMO_VIDEO: &str = "WolfgangLanger_Pexels.mp4";

pub(super) fn run(args: CamerasArgs, config: &ConfigFile) -> Result<ExitCode> {
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

    let feeds = if args.replay {
        record_videos(&videos, &args)?
    } else {
        videos
            .iter()
            .map(|video| CameraFeed {
                video: video.clone(),
                replay: None,
            })
            .collect()
    };

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
        "bench cameras: {} on {cores} core(s); {}x{} at real-time pace{} for {:.0} s per step; \
         real time = nothing lost, backlog <= N over the last third, end-to-end p99 <= \
         {p99_limit_ms:.0} ms",
        deployment.describe(max_workers),
        args.size.0,
        args.size.1,
        if args.replay {
            " (recorded clips replayed)"
        } else {
            ""
        },
        args.duration.as_secs_f64()
    );
    print_header();
    let mut steps = Vec::new();
    for &count in &counts {
        let step = measure(
            &mut deployment,
            &args,
            &feeds,
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
            replay: args.replay,
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

/// Most clips recorded per video for `--replay` (a minute of 0.5 s clips, a few MB): a camera
/// loops over them for a longer step.
const MAX_RECORDED_CLIPS: usize = 120;

/// `--replay`: each video cut into clips once, at the cameras' size and clip length.
fn record_videos(videos: &[PathBuf], args: &CamerasArgs) -> Result<Vec<CameraFeed>> {
    let options = SourceOptions {
        width: Some(args.size.0),
        height: Some(args.size.1),
        ..SourceOptions::default()
    };
    let wanted = (args.duration.as_millis() / u128::from(args.clip_ms)).saturating_add(1);
    let max_clips =
        usize::try_from(wanted).map_or(MAX_RECORDED_CLIPS, |n| n.min(MAX_RECORDED_CLIPS));
    videos
        .iter()
        .map(|video| {
            let recorded = RecordedClips::record(
                &SourceSpec::File(video.clone()),
                &options,
                args.clip_ms,
                max_clips,
            )
            .with_context(|| format!("cannot record clips of {}", video.display()))?;
            eprintln!("recorded {}", recorded.describe());
            Ok(CameraFeed {
                video: video.clone(),
                replay: Some(Arc::new(recorded)),
            })
        })
        .collect()
}
