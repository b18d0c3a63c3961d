//! The AWS deployment from the command line: `rollcall aws provision` (bucket, queues, table,
//! notification, worker log group), `rollcall aws logs` (the function's log lines from CloudWatch
//! Logs) and `rollcall worker` (S3 -> SQS -> recognition -> per-device result queues; ships its
//! own log lines to CloudWatch Logs). Every client uses the standard credential chain and honours
//! `AWS_ENDPOINT_URL`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rollcall_protocol::aws::{self, Names, SdkConfig};
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
                    },
                    args.log_retention_days,
                )
                .await
            })?;
            println!("{}", serde_json::to_string_pretty(&provisioned)?);
            Ok(ExitCode::SUCCESS)
        }
        AwsCommand::Logs(args) => logs(args),
    }
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
