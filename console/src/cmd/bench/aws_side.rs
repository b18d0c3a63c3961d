//! The AWS variant: provisioning, the function side and the clip-events queue probe.
//!
//! The function runs as `rollcall worker` processes (this executable, `worker --prefix P
//! --wait 1s ...`) rather than in-process workers: that is how the deployment runs it (separate
//! processes, each with its own models, gallery and SDK clients, any number of them), so the
//! bench measures what is deployed, including the processes' own CPU, and `worker()` needs no
//! second entry point. [`WorkerProcesses`] kills them when the bench ends, on errors and panics
//! too.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rollcall_protocol::aws::{self, Names, SqsClient};
use rollcall_recognizer::clip::SamplePolicy;
use rollcall_recognizer::directory::dynamodb::DynamoDirectory;
use rollcall_recognizer::directory::PeopleDirectory;
use rollcall_recognizer::provision::{provision, ProvisionOptions};

use super::load::Load;
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
            .block_on(provision(
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
