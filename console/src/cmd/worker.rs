//! `rollcall worker`: recognise clips from the S3 -> SQS clip-events queue (AWS deployment),
//! publishing to per-device result queues and shipping its own log lines to CloudWatch Logs.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use rollcall_protocol::aws::{self, SqsClient};
use rollcall_recognizer::aws_handler::{aws_handler, AwsHandlerConfig};
use rollcall_recognizer::handler::{default_instance_id, HandlerConfig};
use rollcall_recognizer::pool::default_max_workers;
use rollcall_recognizer::worker::{queue_visibility, run_worker, WorkerConfig, DEFAULT_VISIBILITY};
use tokio::signal::unix::{signal, SignalKind};

use super::aws::runtime;
use crate::logs::cloudwatch::ShipperStats;
use crate::logs::shipping::start_log_shipping;
use crate::plan::durations::parse_duration;
use crate::settings::{AwsNames, ClipArgs, ConfigFile, RecognizerArgs};

/// Recognise clips from the S3 -> SQS clip-events queue, publishing to per-device result queues.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    names: AwsNames,
    /// Clip-events queue, as a URL or a name (default `<prefix>-clip-events`).
    #[arg(long, value_name = "URL|NAME")]
    queue: Option<String>,
    /// Clips recognised at once (default: the core count).
    #[arg(long, value_name = "N")]
    max_workers: Option<usize>,
    /// Long-poll wait per receive (at most 20 s).
    #[arg(long, default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    wait: Duration,
    /// Exit after this long without a message (default: run until interrupted).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    idle_exit: Option<Duration>,
    /// Visibility timeout of received messages, extended every third of it while their clips
    /// are in hand: if this worker dies, its clips come back to other workers after it
    /// (default: the queue's own, 10 s as `rollcall aws provision` sets it).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    visibility: Option<Duration>,
    #[command(flatten)]
    clip: ClipArgs,
    /// Print the worker's counters as JSON when it stops.
    #[arg(long)]
    json: bool,
    /// Names this worker in results and its CloudWatch log stream (default `<host>-<pid>`).
    #[arg(long, env = "ROLLCALL_INSTANCE_ID", value_name = "ID")]
    instance_id: Option<String>,
    /// Do not ship this worker's log lines to CloudWatch Logs (`/rollcall/<prefix>/worker`).
    #[arg(long)]
    no_cloudwatch_logs: bool,
    /// Level of rollcall's lines shipped to CloudWatch Logs (other crates': warnings and up),
    /// whatever `--log` says for stderr.
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    cloudwatch_log_level: tracing::Level,
    #[command(flatten)]
    recognizer: RecognizerArgs,
}

pub fn run(args: WorkerArgs, config: &ConfigFile) -> Result<ExitCode> {
    let max_workers = args.max_workers.unwrap_or_else(default_max_workers);
    anyhow::ensure!(
        (1..=256).contains(&max_workers),
        "--max-workers must be between 1 and 256"
    );
    let names = args.names.names();
    let instance_id = args.instance_id.clone().unwrap_or_else(default_instance_id);
    let mut settings = args.recognizer.resolve(config)?;
    settings.options.runtime.sessions_per_model = max_workers;
    let pipeline = Arc::new(settings.pipeline()?);
    let runtime = runtime()?;
    let sdk = runtime.block_on(aws::load_config());
    let shipper = if args.no_cloudwatch_logs {
        None
    } else {
        runtime.block_on(start_log_shipping(
            &sdk,
            &names,
            &instance_id,
            args.cloudwatch_log_level,
        ))
    };
    let logs_to = shipper.as_ref().map_or_else(
        || "no CloudWatch logs".to_string(),
        |s| format!("logs to {}:{}", s.group(), s.stream()),
    );
    // Whatever happens to the worker, ship what it logged (its last lines say why it stopped).
    let served = (|| {
        let sqs = SqsClient::new(&sdk);
        let queue = match &args.queue {
            Some(q) => q.clone(),
            None => names.events_queue(),
        };
        let queue_url = runtime.block_on(aws::resolve_queue(&sqs, &queue))?;
        let visibility = match args.visibility {
            Some(visibility) => visibility,
            None => runtime
                .block_on(queue_visibility(&sqs, &queue_url))
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "using the default visibility timeout");
                    DEFAULT_VISIBILITY
                }),
        };
        let handler = Arc::new(
            aws_handler(
                &sdk,
                pipeline,
                &AwsHandlerConfig {
                    sample: args.clip.sample,
                    handler: HandlerConfig {
                        max_clip_bytes: args.clip.max_clip_bytes,
                        threshold: settings.threshold,
                        instance_id: instance_id.clone(),
                        ..HandlerConfig::default()
                    },
                    ..AwsHandlerConfig::new(names.clone())
                },
            )
            .with_context(|| format!("people table {}", names.table()))?,
        );
        let people = handler
            .warm_up()
            .context("cannot load the gallery from the people table")?;
        eprintln!(
            "rollcall worker {instance_id}: {people} enrolled, queue {queue_url}, bucket {}, up to {max_workers} clips at once, {logs_to}",
            names.bucket
        );
        tracing::info!(instance = %instance_id, queue = %queue_url, bucket = %names.bucket, people, max_workers, "worker started");
        let stop = Arc::new(AtomicBool::new(false));
        let signals = {
            let _inside = runtime.enter();
            Signals::new().context("cannot listen for signals")?
        };
        runtime.spawn(signals.drain_then_exit(Arc::clone(&stop)));
        let stats = runtime.block_on(run_worker(
            sqs,
            Arc::clone(&handler),
            WorkerConfig {
                max_workers,
                wait: args.wait,
                idle_exit: args.idle_exit,
                visibility,
                ..WorkerConfig::new(queue_url)
            },
            stop,
        ))?;
        let handled = handler.stats();
        tracing::info!(
            instance = %instance_id,
            messages = stats.messages,
            clips = stats.clips,
            errors = stats.errors,
            duplicates = handled.duplicates,
            unparsable = stats.unparsable,
            "worker stopped"
        );
        anyhow::Ok((stats, handled))
    })();
    if let Err(e) = &served {
        tracing::error!(instance = %instance_id, error = %format!("{e:#}"), "worker failed");
    }
    let log_stats: Option<ShipperStats> =
        shipper.map(|s| runtime.block_on(s.shutdown(Duration::from_secs(5))));
    if let Some(logs) = &log_stats {
        if logs.dropped + logs.failed > 0 {
            eprintln!(
                "rollcall worker: {} log lines shipped to CloudWatch, {} dropped (queue full), {} failed{}",
                logs.shipped,
                logs.dropped,
                logs.failed,
                logs.last_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
            );
        }
    }
    let (stats, handled) = served?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"worker": stats, "handler": {
                "processed": handled.processed, "errors": handled.errors,
                "duplicates": handled.duplicates, "publish_failures": handled.publish_failures,
                "gallery_loads": handled.gallery_loads, "version_checks": handled.version_checks,
            }, "cloudwatch_logs": log_stats})
        );
    } else {
        eprintln!(
            "rollcall worker: {} messages, {} clips ({} error results, {} duplicates), {} unparsable messages and {} records naming no device left for the DLQ",
            stats.messages, stats.clips, stats.errors, handled.duplicates, stats.unparsable, stats.dropped
        );
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(ExitCode::SUCCESS)
}

/// SIGINT, SIGTERM (systemd, docker, `timeout`) and SIGHUP (a closed terminal) all ask the
/// worker to stop the same way.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Listen for SIGTERM and SIGHUP (SIGINT through `ctrl_c`). Must be called inside the Tokio
    /// runtime.
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The name of the next signal.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }

    /// The first signal sets `stop` (no new messages; the clips in hand are finished and
    /// answered); a second one exits at once (the clips in hand come back to the queue after
    /// the visibility timeout).
    async fn drain_then_exit(mut self, stop: Arc<AtomicBool>) {
        let first = self.next().await;
        eprintln!("{first}: finishing the clips in hand (send it again to stop at once)");
        tracing::info!(signal = first, "stopping: finishing the clips in hand");
        stop.store(true, Ordering::Relaxed);
        let second = self.next().await;
        eprintln!(
            "{second}: stopping now; the clips in hand return to the queue within the visibility timeout"
        );
        crate::signals::exit_at_once(130);
    }
}
