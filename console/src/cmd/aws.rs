//! The AWS deployment from the command line: `rollcall aws provision` (bucket, queues, table,
//! notification, worker log group), `rollcall aws logs` (the function's log lines from CloudWatch
//! Logs), `rollcall aws dlq list|redrive` (the clip-events dead-letter queue) and
//! `rollcall worker` (S3 -> SQS -> recognition -> per-device result queues; ships its own log
//! lines to CloudWatch Logs). Every client uses the standard credential chain and honours
//! `AWS_ENDPOINT_URL`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rollcall_protocol::aws::{self, Names, SdkConfig, SqsClient};
use rollcall_recognizer::dead_letters::{self, DEFAULT_MAX_MESSAGES};
use rollcall_recognizer::provision::{provision, ProvisionOptions, Provisioned, MAX_RECEIVE_COUNT};

use crate::logs::cloudwatch::{CloudWatchLogTail, LogsClient};
use crate::logs::shipping::ensure_worker_log_group;
use crate::logs::LogError;
use crate::plan::durations::parse_duration;
use crate::settings::AwsNames;

/// `rollcall aws ...`
#[derive(Subcommand, Debug)]
pub enum AwsCommand {
    /// Create (idempotently) the bucket, the clip-events queue + DLQ, the per-device result
    /// queues, the people table, the S3 -> SQS notification and the worker's log group.
    Provision(ProvisionArgs),
    /// Print the recognition function's log lines from CloudWatch Logs (the workers' or the
    /// Lambda's), optionally filtered, optionally following new ones.
    Logs(LogsArgs),
    /// The clip-events dead-letter queue: messages no worker could finish, and why.
    #[command(subcommand)]
    Dlq(DlqCommand),
}

/// `rollcall aws dlq ...`
#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// List the dead-letter queue: each message's id, receives, age, object keys and the reason
    /// it could not be finished (without removing anything).
    List(DlqListArgs),
    /// Send chosen dead letters (by message id, or all) back to the clip-events queue.
    Redrive(DlqRedriveArgs),
}

#[derive(Args, Debug)]
pub struct DlqListArgs {
    #[command(flatten)]
    names: AwsNames,
    /// Most messages to look at.
    #[arg(long, default_value_t = DEFAULT_MAX_MESSAGES, value_name = "N")]
    max: usize,
    /// One JSON object per message (`message_id`, `reason`, `keys`, `receives`, `sent_ms`,
    /// `body`).
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct DlqRedriveArgs {
    #[command(flatten)]
    names: AwsNames,
    /// Message ids (as `rollcall aws dlq list` prints them).
    #[arg(
        value_name = "ID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    ids: Vec<String>,
    /// Every message of the dead-letter queue.
    #[arg(long)]
    all: bool,
    /// Most messages to look at.
    #[arg(long, default_value_t = DEFAULT_MAX_MESSAGES, value_name = "N")]
    max: usize,
    /// Print what was sent back as JSON (`sent`: [DLQ id, new id] pairs, `not_found`).
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct ProvisionArgs {
    #[command(flatten)]
    names: AwsNames,
    /// A device whose result queue to create (repeatable).
    #[arg(long = "device", value_name = "ID")]
    devices: Vec<String>,
    /// Visibility timeout of the clip-events queue (`rollcall worker` extends it while a clip is
    /// in hand; a dead worker's clips come back after it).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    visibility_timeout: Duration,
    /// Clips are deleted from the bucket this long after their upload (whole days, at least 1).
    #[arg(long, default_value = "7d", value_parser = parse_duration, value_name = "DURATION")]
    clip_retention: Duration,
    /// An unreceived result (it names people) is deleted from a device's results queue this
    /// long after it was sent (1m to 14d).
    #[arg(long, default_value = "4d", value_parser = parse_duration, value_name = "DURATION")]
    results_retention: Duration,
    /// Receives of an event message before it moves to the dead-letter queue.
    #[arg(long, default_value_t = MAX_RECEIVE_COUNT, value_name = "N")]
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

/// The async runtime of the AWS commands (two I/O threads).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
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
            let day = 86_400;
            anyhow::ensure!(
                args.clip_retention.as_secs() >= day,
                "--clip-retention must be at least 1 day (S3 expires objects by the day)"
            );
            anyhow::ensure!(
                (60..=14 * day).contains(&args.results_retention.as_secs()),
                "--results-retention must be between 1m and 14d (what SQS allows)"
            );
            let clip_retention_days =
                u32::try_from(args.clip_retention.as_secs().div_ceil(day)).unwrap_or(u32::MAX);
            let runtime = runtime()?;
            let names = args.names.names();
            let provisioned = runtime.block_on(async {
                let config = aws::load_config().await;
                provision_deployment(
                    &config,
                    &names,
                    &ProvisionOptions {
                        visibility_timeout: args.visibility_timeout,
                        max_receive_count: args.max_receive_count.max(1),
                        devices: args.devices.clone(),
                        clip_retention_days,
                        results_retention_secs: args.results_retention.as_secs() as u32,
                    },
                    args.log_retention_days,
                )
                .await
            })?;
            println!("{}", serde_json::to_string_pretty(&provisioned)?);
            Ok(ExitCode::SUCCESS)
        }
        AwsCommand::Logs(args) => logs(args),
        AwsCommand::Dlq(command) => dlq(command),
    }
}

/// `rollcall aws dlq list|redrive`.
fn dlq(command: DlqCommand) -> Result<ExitCode> {
    let names = match &command {
        DlqCommand::List(args) => args.names.names(),
        DlqCommand::Redrive(args) => args.names.names(),
    };
    let runtime = runtime()?;
    runtime.block_on(async {
        let config = aws::load_config().await;
        let sqs = SqsClient::new(&config);
        let dlq_url = aws::resolve_queue(&sqs, &names.events_dlq())
            .await
            .with_context(|| {
                format!(
                    "no dead-letter queue (create it with `rollcall aws provision --prefix {}`)",
                    names.prefix
                )
            })?;
        match command {
            DlqCommand::List(args) => {
                let letters =
                    dead_letters::list_dead_letters(&sqs, &dlq_url, &names.prefix, args.max)
                        .await?;
                let now_ms = rollcall_protocol::wire::unix_now_ns() / 1_000_000;
                let mut out = std::io::stdout().lock();
                for letter in &letters {
                    if args.json {
                        writeln!(out, "{}", serde_json::to_string(letter)?)?;
                    } else {
                        let age = Duration::from_millis(now_ms.saturating_sub(letter.sent_ms));
                        writeln!(
                            out,
                            "{}  {} receives  {} old  {}
    {}",
                            letter.message_id,
                            letter.receives,
                            crate::plan::durations::short_duration(age),
                            if letter.keys.is_empty() {
                                "(no object key)".to_string()
                            } else {
                                letter.keys.join(" ")
                            },
                            letter.reason
                        )?;
                    }
                }
                if !args.json {
                    eprintln!("{} message(s) in {}", letters.len(), names.events_dlq());
                }
                Ok(ExitCode::SUCCESS)
            }
            DlqCommand::Redrive(args) => {
                let events_url = aws::resolve_queue(&sqs, &names.events_queue()).await?;
                let ids = (!args.all).then_some(args.ids.as_slice());
                let redriven =
                    dead_letters::redrive(&sqs, &dlq_url, &events_url, ids, args.max).await?;
                if args.json {
                    println!("{}", serde_json::to_string(&redriven)?);
                } else {
                    for (old, new) in &redriven.sent {
                        println!("{old} -> {} as {new}", names.events_queue());
                    }
                    for id in &redriven.not_found {
                        eprintln!(
                            "rollcall aws dlq redrive: {id} is not in {}",
                            names.events_dlq()
                        );
                    }
                    eprintln!("{} message(s) sent back", redriven.sent.len());
                }
                Ok(if redriven.not_found.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
        }
    })
}

/// What `rollcall aws provision` created or found: the recognizer's resources and the worker's
/// log group.
#[derive(Debug, serde::Serialize)]
pub struct Deployment {
    /// Bucket, queues, table.
    #[serde(flatten)]
    pub resources: Provisioned,
    /// The log group `rollcall worker` ships to ([`Names::worker_log_group`]).
    pub worker_log_group: String,
}

/// Provision the deployment's resources, then the worker's log group with its retention (days,
/// one CloudWatch Logs accepts).
async fn provision_deployment(
    config: &SdkConfig,
    names: &Names,
    options: &ProvisionOptions,
    log_retention_days: i32,
) -> Result<Deployment> {
    let resources = provision(config, names, options).await?;
    let worker_log_group = ensure_worker_log_group(config, names, log_retention_days).await?;
    Ok(Deployment {
        resources,
        worker_log_group,
    })
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
