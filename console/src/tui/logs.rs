//! Where the log panel's lines come from: this process's own log (embedded deployment: the
//! worker pool is the function) or the function's CloudWatch log group (AWS deployment), polled
//! on a background thread so a slow network never stalls the screen.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration;

use crate::logs::LogLine;
use anyhow::Result;

use crate::logs::ring::LogRing;
use crate::service::RecognitionService;

/// How often a CloudWatch log group is polled.
#[cfg(feature = "aws")]
const CLOUDWATCH_POLL: Duration = Duration::from_secs(2);

/// A source of new log lines, polled every tick.
pub enum LogFeed {
    /// This process's captured tracing lines.
    Local { ring: Arc<LogRing>, last_seq: u64 },
    /// Lines from a poller thread (CloudWatch `FilterLogEvents`).
    Remote {
        origin: String,
        lines: Receiver<Result<Vec<LogLine>, String>>,
        stop: Arc<AtomicBool>,
    },
}

impl LogFeed {
    /// The feed that shows `service`'s function log. AWS: `log_group` is `lambda` (default),
    /// `worker`, or a group name.
    pub fn for_service(service: &RecognitionService, log_group: Option<&str>) -> Result<LogFeed> {
        match service {
            RecognitionService::Embedded { .. } => {
                let _ = log_group;
                Ok(LogFeed::local())
            }
            #[cfg(feature = "aws")]
            RecognitionService::Aws(edge) => {
                let group = match log_group.unwrap_or("lambda") {
                    "lambda" => edge.names.lambda_log_group(),
                    "worker" => edge.names.worker_log_group(),
                    other => other.to_string(),
                };
                crate::logs::cloudwatch::validate_group_name(&group)
                    .map_err(|e| anyhow::anyhow!("--log-group: {e}"))?;
                Ok(LogFeed::cloudwatch(
                    crate::logs::cloudwatch::LogsClient::new(&edge.sdk),
                    group,
                    edge.runtime.handle().clone(),
                ))
            }
        }
    }

    /// This process's log.
    pub fn local() -> LogFeed {
        LogFeed::Local {
            ring: Arc::clone(crate::logs::ring::global()),
            last_seq: 0,
        }
    }

    /// A CloudWatch log group's tail, from the last 5 minutes on.
    #[cfg(feature = "aws")]
    pub fn cloudwatch(
        client: crate::logs::cloudwatch::LogsClient,
        group: String,
        runtime: tokio::runtime::Handle,
    ) -> LogFeed {
        use crate::logs::cloudwatch::CloudWatchLogTail;

        let (sender, lines) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut tail = CloudWatchLogTail::new(client, group.clone());
        let stopped = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name("log-tail".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    let polled = runtime.block_on(tail.poll()).map_err(|e| e.to_string());
                    if sender.send(polled).is_err() {
                        return;
                    }
                    std::thread::sleep(CLOUDWATCH_POLL);
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the log tail thread");
        }
        LogFeed::Remote {
            origin: format!("CloudWatch {group}"),
            lines,
            stop,
        }
    }

    /// What the panel title says the lines are.
    pub fn origin(&self) -> String {
        match self {
            LogFeed::Local { .. } => "this process (embedded workers)".to_string(),
            LogFeed::Remote { origin, .. } => origin.clone(),
        }
    }

    /// Lines that arrived since the last poll; the last poll's error if the backend failed
    /// (the feed keeps trying).
    pub fn poll(&mut self) -> Result<Vec<LogLine>, String> {
        match self {
            LogFeed::Local { ring, last_seq } => {
                let lines = ring.after(*last_seq);
                if let Some(last) = lines.last() {
                    *last_seq = last.seq;
                }
                Ok(lines.into_iter().map(|l| l.line).collect())
            }
            LogFeed::Remote { lines, .. } => {
                let mut all = Vec::new();
                let mut failure = None;
                while let Ok(polled) = lines.try_recv() {
                    match polled {
                        Ok(batch) => all.extend(batch),
                        Err(e) => failure = Some(e),
                    }
                }
                match failure {
                    Some(e) if all.is_empty() => Err(e),
                    _ => Ok(all),
                }
            }
        }
    }
}

impl Drop for LogFeed {
    fn drop(&mut self) {
        if let LogFeed::Remote { stop, .. } = self {
            stop.store(true, Ordering::Relaxed);
        }
    }
}
