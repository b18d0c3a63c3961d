//! The recognition side the simulated cameras talk to, and how busy it is.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::args::{camera_device, CamerasArgs};
#[cfg(feature = "aws")]
use super::aws_side;
use super::load::Load;
use crate::embedded::EmbeddedOptions;
use crate::service::RecognitionService;
use crate::settings::Recognition;

/// Reads the recognition side's [`Load`]; cheap to clone into the sampler thread.
#[derive(Clone)]
pub(super) enum LoadProbe {
    Pool(Arc<RecognitionService>),
    #[cfg(feature = "aws")]
    Queue(aws_side::EventsQueueProbe),
}

impl LoadProbe {
    pub(super) fn read(&self) -> Result<Load, String> {
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
    pub(super) fn wait_idle(&self, limit: Duration) -> bool {
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
pub(super) enum Deployment {
    /// One embedded service shared by every camera.
    Embedded(Arc<RecognitionService>),
    /// S3 + SQS + `rollcall worker` processes; every camera is an edge of its own.
    #[cfg(feature = "aws")]
    Aws(aws_side::AwsDeployment),
}

impl Deployment {
    /// Start the backend `settings` name, ready for up to `largest_count` cameras.
    pub(super) fn start(
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

    pub(super) fn backend(&self) -> &'static str {
        match self {
            Deployment::Embedded(_) => "embedded",
            #[cfg(feature = "aws")]
            Deployment::Aws(_) => "aws",
        }
    }

    /// For the header line.
    pub(super) fn describe(&self, max_workers: usize) -> String {
        match self {
            Deployment::Embedded(_) => {
                format!("embedded service, up to {max_workers} worker(s)")
            }
            #[cfg(feature = "aws")]
            Deployment::Aws(aws) => aws.describe(max_workers),
        }
    }

    /// What the backlog counts (for the JSON).
    pub(super) fn backlog_measure(&self) -> &'static str {
        match self {
            Deployment::Embedded(_) => "pool: clips queued, not started",
            #[cfg(feature = "aws")]
            Deployment::Aws(_) => {
                "clip-events queue: ApproximateNumberOfMessages + \
                 ApproximateNumberOfMessagesNotVisible"
            }
        }
    }

    pub(super) fn worker_processes(&self) -> Option<usize> {
        match self {
            Deployment::Embedded(_) => None,
            #[cfg(feature = "aws")]
            Deployment::Aws(aws) => Some(aws.worker_count()),
        }
    }

    /// The runtime for the Ctrl-C handler.
    pub(super) fn runtime(&self) -> tokio::runtime::Handle {
        match self {
            Deployment::Embedded(service) => service.runtime(),
            #[cfg(feature = "aws")]
            Deployment::Aws(aws) => aws.runtime(),
        }
    }

    pub(super) fn probe(&self) -> LoadProbe {
        match self {
            Deployment::Embedded(service) => LoadProbe::Pool(Arc::clone(service)),
            #[cfg(feature = "aws")]
            Deployment::Aws(aws) => LoadProbe::Queue(aws.probe()),
        }
    }

    /// The service camera `device` sends its clips to (embedded: the shared one; aws: a new
    /// edge for that device).
    pub(super) fn service_for(&self, device: &str) -> Result<Arc<RecognitionService>> {
        match self {
            Deployment::Embedded(service) => Ok(Arc::clone(service)),
            #[cfg(feature = "aws")]
            Deployment::Aws(aws) => Ok(Arc::new(aws.edge(device)?)),
        }
    }

    /// Fails when a part of the deployment has died (aws: a worker process exited).
    pub(super) fn ensure_running(&mut self) -> Result<()> {
        match self {
            Deployment::Embedded(_) => Ok(()),
            #[cfg(feature = "aws")]
            Deployment::Aws(aws) => aws.ensure_running(),
        }
    }

    /// Process ids whose CPU time counts as the function's (aws: the worker processes).
    pub(super) fn worker_pids(&self) -> Vec<u32> {
        match self {
            Deployment::Embedded(_) => Vec::new(),
            #[cfg(feature = "aws")]
            Deployment::Aws(aws) => aws.worker_pids(),
        }
    }

    /// Finish queued clips and stop (aws: kill the worker processes).
    pub(super) fn shutdown(self) {
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
