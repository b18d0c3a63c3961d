//! The AWS deployment from the command line: `rollcall aws provision` (bucket, queues, table,
//! notification) and `rollcall worker` (S3 -> SQS -> recognition -> per-device result queues).
//! Every client uses the standard credential chain and honours `AWS_ENDPOINT_URL`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rollcall_recognizer::aws::{self, Names, ProvisionOptions, WorkerConfig};
use rollcall_recognizer::clip::{ClipAnalyzer, ClipLimits, SamplePolicy};
use rollcall_recognizer::directory::dynamodb::DynamoDirectory;
use rollcall_recognizer::handler::{HandlerConfig, RecognitionHandler};
use rollcall_recognizer::pool::default_max_workers;
use rollcall_recognizer::results::sqs::SqsResultQueue;
use rollcall_recognizer::store::s3::S3ClipStore;

use crate::cmd::session::parse_duration;
use crate::settings::{ConfigFile, RecognizerArgs};

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
    /// queues, the people table and the S3 -> SQS notification.
    Provision(ProvisionArgs),
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
                    },
                )
                .await
            })?;
            println!("{}", serde_json::to_string_pretty(&provisioned)?);
            Ok(ExitCode::SUCCESS)
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
    /// Frames analysed per clip: `auto`, `auto:N`, `all`, `every:K`.
    #[arg(long, default_value = "auto", value_name = "POLICY")]
    sample: SamplePolicy,
    /// Largest clip accepted, in bytes.
    #[arg(long, default_value_t = 8 * 1024 * 1024, value_name = "BYTES")]
    max_clip_bytes: usize,
    /// Print the worker's counters as JSON when it stops.
    #[arg(long)]
    json: bool,
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
    let mut settings = args.recognizer.resolve(config)?;
    settings.options.runtime.sessions_per_model = max_workers;
    let pipeline = Arc::new(settings.pipeline()?);
    let runtime = runtime()?;
    let sdk = runtime.block_on(aws::load_config());
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
        .with_policy(args.sample)
        .with_limits(ClipLimits {
            max_bytes: args.max_clip_bytes,
            ..ClipLimits::default()
        });
    let handler = Arc::new(RecognitionHandler::new(
        S3ClipStore::from_config(&sdk, &names.bucket),
        directory,
        SqsResultQueue::new(sqs.clone(), &names.prefix),
        analyzer,
        HandlerConfig {
            max_clip_bytes: args.max_clip_bytes,
            threshold: settings.threshold,
            ..HandlerConfig::default()
        },
    ));
    let people = handler
        .warm_up()
        .context("cannot load the gallery from the people table")?;
    eprintln!(
        "rollcall worker: {people} enrolled, queue {queue_url}, bucket {}, up to {max_workers} clips at once",
        names.bucket
    );
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
    if args.json {
        println!(
            "{}",
            serde_json::json!({"worker": stats, "handler": {
                "processed": handled.processed, "errors": handled.errors,
                "duplicates": handled.duplicates, "publish_failures": handled.publish_failures,
            }})
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
