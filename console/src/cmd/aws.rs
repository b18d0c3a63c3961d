//! The AWS deployment from the command line: `rollcall aws provision` (bucket, queues, table,
//! notification, worker log group), `rollcall aws logs` (the function's log lines from CloudWatch
//! Logs) and `rollcall worker` (S3 -> SQS -> recognition -> per-device result queues; ships its
//! own log lines to CloudWatch Logs). Every client uses the standard credential chain and honours
//! `AWS_ENDPOINT_URL`.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rollcall_recognizer::aws::{self, LogsClient, Names, ProvisionOptions, WorkerConfig};
use rollcall_recognizer::clip::{ClipAnalyzer, ClipLimits};
use rollcall_recognizer::directory::dynamodb::DynamoDirectory;
use rollcall_recognizer::handler::{default_instance_id, HandlerConfig, RecognitionHandler};
use rollcall_recognizer::logs::cloudwatch::{
    ensure_log_stream, sanitize_stream_name, CloudWatchLogShipper, CloudWatchLogTail, LogSink,
    ShipperOptions, ShipperStats,
};
use rollcall_recognizer::logs::LogError;
use rollcall_recognizer::pool::default_max_workers;
use rollcall_recognizer::results::sqs::SqsResultQueue;
use rollcall_recognizer::store::s3::S3ClipStore;

use crate::cmd::session::parse_duration;
use crate::settings::{ClipArgs, ConfigFile, RecognizerArgs};

/// Resource naming shared by the AWS commands.
#[derive(Args, Debug, Clone)]
pub struct AwsNames {
    /// Prefix of every resource name (`<prefix>-clips`, `<prefix>-clip-events`, `-people`, ...).
    #[arg(
        long,
        env = "ROLLCALL_AWS_PREFIX",
        default_value = "rollcall",
        value_name = "PREFIX"
    )]
    pub prefix: String,
    /// Clips bucket (default `<prefix>-clips`; bucket names are global on AWS).
    #[arg(long, env = "ROLLCALL_BUCKET", value_name = "NAME")]
    pub bucket: Option<String>,
}

impl AwsNames {
    pub fn names(&self) -> Names {
        let mut names = Names::new(&self.prefix);
        if let Some(bucket) = &self.bucket {
            names.bucket = bucket.clone();
        }
        names
    }
}

/// `rollcall aws ...`
#[derive(Subcommand, Debug)]
pub enum AwsCommand {
    /// Create (idempotently) the bucket, the clip-events queue + DLQ, the per-device result
    /// queues, the people table, the S3 -> SQS notification and the worker's log group.
    Provision(ProvisionArgs),
    /// Print the recognition function's log lines from CloudWatch Logs (the workers' or the
    /// Lambda's), optionally filtered, optionally following new ones.
    Logs(LogsArgs),
}

#[derive(Args, Debug)]
pub struct ProvisionArgs {
    #[command(flatten)]
    names: AwsNames,
    /// A device whose result queue to create (repeatable).
    #[arg(long = "device", value_name = "ID")]
    devices: Vec<String>,
    /// Visibility timeout of the clip-events queue.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    visibility_timeout: Duration,
    /// Receives of an event message before it moves to the dead-letter queue.
    #[arg(long, default_value_t = aws::MAX_RECEIVE_COUNT, value_name = "N")]
    max_receive_count: u32,
    /// Retention of the worker log group `/rollcall/<prefix>/worker`, in days (1, 3, 5, 7, 14,
    /// 30, 60, 90, ... as CloudWatch Logs accepts).
    #[arg(long, default_value_t = 14, value_name = "DAYS")]
    log_retention_days: i32,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    #[command(flatten)]
    names: AwsNames,
    /// `worker` (`/rollcall/<prefix>/worker`), `lambda` (`/aws/lambda/<prefix>-recognizer`) or a
    /// log group name.
    #[arg(long, default_value = "worker", value_name = "lambda|worker|NAME")]
    group: String,
    /// Only lines containing TEXT (case-sensitive).
    #[arg(long, value_name = "TEXT", conflicts_with = "pattern")]
    filter: Option<String>,
    /// Only lines matching a CloudWatch Logs filter pattern, e.g. `?ERROR ?WARN`.
    #[arg(long, value_name = "PATTERN")]
    pattern: Option<String>,
    /// Start this long ago.
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    since: Duration,
    /// Keep printing new lines until interrupted.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Time between polls with --follow.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    interval: Duration,
    /// One JSON object per line (`timestamp_ms`, `source`, `message`, `level`, `id`).
    #[arg(long)]
    json: bool,
}

impl LogsArgs {
    /// The log group `--group` names.
    fn log_group(&self, names: &Names) -> String {
        match self.group.as_str() {
            "worker" => names.worker_log_group(),
            "lambda" => names.lambda_log_group(),
            other => other.to_string(),
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("aws-io")
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run(command: AwsCommand) -> Result<ExitCode> {
    match command {
        AwsCommand::Provision(args) => {
            anyhow::ensure!(
                args.visibility_timeout.as_secs() >= 1,
                "--visibility-timeout must be at least 1 s"
            );
            let runtime = runtime()?;
            let names = args.names.names();
            let provisioned = runtime.block_on(async {
                let config = aws::load_config().await;
                aws::provision(
                    &config,
                    &names,
                    &ProvisionOptions {
                        visibility_timeout: args.visibility_timeout,
                        max_receive_count: args.max_receive_count.max(1),
                        devices: args.devices.clone(),
                        log_retention_days: args.log_retention_days,
                    },
                )
                .await
            })?;
            println!("{}", serde_json::to_string_pretty(&provisioned)?);
            Ok(ExitCode::SUCCESS)
        }
        AwsCommand::Logs(args) => logs(args),
    }
}

/// `rollcall aws logs`: print the tail of a log group, once or following.
fn logs(args: LogsArgs) -> Result<ExitCode> {
    let names = args.names.names();
    let group = args.log_group(&names);
    let runtime = runtime()?;
    runtime.block_on(async {
        let config = aws::load_config().await;
        let mut tail =
            CloudWatchLogTail::new(LogsClient::new(&config), &group).with_since(args.since);
        if let Some(text) = &args.filter {
            tail = tail.with_filter(text);
        }
        if let Some(pattern) = &args.pattern {
            tail = tail.with_filter_pattern(pattern);
        }
        let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
        loop {
            let polled = tokio::select! {
                polled = tail.poll() => polled,
                _ = &mut interrupted => return Ok(ExitCode::SUCCESS),
            };
            let lines = match polled {
                Ok(lines) => lines,
                // Following: a network hiccup is not the end of the tail.
                Err(e) if args.follow && e.is_retryable() => {
                    eprintln!("rollcall aws logs: {e} (retrying)");
                    Vec::new()
                }
                Err(e) => return Err(explain_log_error(e, &args.group, &names)),
            };
            let mut out = std::io::stdout().lock();
            for line in &lines {
                let written = if args.json {
                    writeln!(out, "{}", serde_json::to_string(line)?)
                } else {
                    writeln!(out, "{line}")
                };
                // A closed pipe (`| head`) ends the tail quietly.
                if written.is_err() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            if out.flush().is_err() {
                return Ok(ExitCode::SUCCESS);
            }
            drop(out);
            if !args.follow {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::select! {
                _ = tokio::time::sleep(args.interval) => {}
                _ = &mut interrupted => return Ok(ExitCode::SUCCESS),
            }
        }
    })
}

/// A missing log group, with what usually causes it.
fn explain_log_error(e: LogError, group_arg: &str, names: &Names) -> anyhow::Error {
    match (&e, group_arg) {
        (LogError::GroupNotFound { .. }, "worker") => anyhow::anyhow!(
            "{e} (create it with `rollcall aws provision --prefix {}`)",
            names.prefix
        ),
        (LogError::GroupNotFound { .. }, "lambda") => anyhow::anyhow!(
            "{e} (the function {}-recognizer has not run yet, or another prefix or region)",
            names.prefix
        ),
        _ => e.into(),
    }
}

/// Where `rollcall worker`'s log lines go besides stderr, once it starts shipping.
struct CloudWatchTarget {
    sink: LogSink,
    targets: tracing_subscriber::filter::Targets,
}

static CLOUDWATCH_TARGET: OnceLock<CloudWatchTarget> = OnceLock::new();

/// The tracing layer that forwards log lines to CloudWatch Logs: dormant (filtering everything
/// out) until `rollcall worker` starts its shipper, then rollcall's own lines at the worker's
/// `--cloudwatch-log-level` and other crates' warnings, formatted like stderr without colours or
/// time (CloudWatch stamps each event). Never blocks: see [`LogSink::send`].
pub fn cloudwatch_log_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer;
    tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .without_time()
        .with_writer(CloudWatchWriter)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            CLOUDWATCH_TARGET
                .get()
                .is_some_and(|t| t.targets.would_enable(meta.target(), meta.level()))
        }))
}

/// Makes one [`CloudWatchLine`] per event.
struct CloudWatchWriter;

/// Collects one formatted event; queued for shipping when dropped.
struct CloudWatchLine(Vec<u8>);

impl std::io::Write for CloudWatchLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for CloudWatchLine {
    fn drop(&mut self) {
        if let Some(target) = CLOUDWATCH_TARGET.get() {
            // Trimmed: the level's padding and the newline are stderr layout.
            let line = String::from_utf8_lossy(&self.0);
            target.sink.send(line.trim());
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CloudWatchWriter {
    type Writer = CloudWatchLine;

    fn make_writer(&'a self) -> Self::Writer {
        CloudWatchLine(Vec::new())
    }
}

/// Start shipping this process's log lines to `/rollcall/<prefix>/worker`, stream
/// `instance_id`. `None` (with the reason on stderr) when that cannot work, e.g. the group was
/// never provisioned: the worker runs on without.
async fn start_log_shipping(
    sdk: &aws::SdkConfig,
    names: &Names,
    instance_id: &str,
    level: tracing::Level,
) -> Option<CloudWatchLogShipper> {
    let client = LogsClient::new(sdk);
    let group = names.worker_log_group();
    let stream = sanitize_stream_name(instance_id);
    let started = match ensure_log_stream(&client, &group, &stream).await {
        Ok(()) => CloudWatchLogShipper::spawn(client, &group, &stream, ShipperOptions::default()),
        Err(e) => Err(e),
    };
    match started {
        Ok(shipper) => {
            let targets = tracing_subscriber::filter::Targets::new()
                .with_default(tracing::Level::WARN)
                .with_target("rollcall", level);
            let _ = CLOUDWATCH_TARGET.set(CloudWatchTarget {
                sink: shipper.sink(),
                targets,
            });
            Some(shipper)
        }
        Err(e) => {
            let hint = match e {
                LogError::GroupNotFound { .. } => format!(
                    " (create it with `rollcall aws provision --prefix {}`)",
                    names.prefix
                ),
                _ => String::new(),
            };
            eprintln!("rollcall worker: not shipping logs to CloudWatch: {e}{hint}");
            None
        }
    }
}

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

pub fn worker(args: WorkerArgs, config: &ConfigFile) -> Result<ExitCode> {
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
        let directory = Arc::new(
            DynamoDirectory::new(&sdk, &names.table())
                .with_context(|| format!("people table {}", names.table()))?,
        );
        let sqs = aws_sdk_sqs_client(&sdk);
        let queue = match &args.queue {
            Some(q) => q.clone(),
            None => names.events_queue(),
        };
        let queue_url = runtime.block_on(aws::resolve_queue(&sqs, &queue))?;
        let analyzer = ClipAnalyzer::new(pipeline)
            .with_policy(args.clip.sample)
            .with_limits(ClipLimits {
                max_bytes: args.clip.max_clip_bytes,
                ..ClipLimits::default()
            });
        let handler = Arc::new(RecognitionHandler::new(
            S3ClipStore::from_config(&sdk, &names.bucket),
            directory,
            SqsResultQueue::new(sqs.clone(), &names.prefix),
            analyzer,
            HandlerConfig {
                max_clip_bytes: args.clip.max_clip_bytes,
                threshold: settings.threshold,
                instance_id: instance_id.clone(),
                ..HandlerConfig::default()
            },
        ));
        let people = handler
            .warm_up()
            .context("cannot load the gallery from the people table")?;
        eprintln!(
            "rollcall worker {instance_id}: {people} enrolled, queue {queue_url}, bucket {}, up to {max_workers} clips at once, {logs_to}",
            names.bucket
        );
        tracing::info!(instance = %instance_id, queue = %queue_url, bucket = %names.bucket, people, max_workers, "worker started");
        let stop = Arc::new(AtomicBool::new(false));
        {
            let stop = Arc::clone(&stop);
            runtime.spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("interrupted: finishing the clips in hand");
                    stop.store(true, Ordering::Relaxed);
                }
            });
        }
        let stats = runtime.block_on(aws::run_worker(
            sqs,
            Arc::clone(&handler),
            WorkerConfig {
                queue_url,
                max_workers,
                wait: args.wait,
                idle_exit: args.idle_exit,
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
            }, "cloudwatch_logs": log_stats})
        );
    } else {
        eprintln!(
            "rollcall worker: {} messages, {} clips ({} error results, {} duplicates), {} unparsable left for the DLQ",
            stats.messages, stats.clips, stats.errors, handled.duplicates, stats.unparsable
        );
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(ExitCode::SUCCESS)
}

fn aws_sdk_sqs_client(config: &aws::SdkConfig) -> rollcall_recognizer::aws::SqsClient {
    rollcall_recognizer::aws::SqsClient::new(config)
}
