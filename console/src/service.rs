//! The recognition service a capture session talks to, and sessions running in the background.
//!
//! Two deployments behind one type: [`RecognitionService::Embedded`] (local object store,
//! autoscaling worker pool and in-process result queue in this process: no account, no server)
//! and `RecognitionService::Aws` (clips to S3, results from the device's SQS queue; the
//! recognition runs in the Lambda or in `rollcall worker` processes). The headless `session`
//! command and the operator console both start sessions through [`RecognitionService::spawn`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rollcall_edge::drain::{drain_spool, DrainConfig, DrainReport};
use rollcall_edge::receive::ReceivedResult;
use rollcall_edge::session::{run_session, SessionConfig, SessionProbe, SessionReport};
use rollcall_edge::spool::ClipSpool;
use rollcall_edge::upload::LocalDirSink;
use rollcall_recognizer::handler::HandlerStats;
use rollcall_recognizer::pool::PoolStats;

use crate::embedded::{EmbeddedOptions, EmbeddedService};
use crate::settings::Recognition;

/// Where a session's clips go and its results come from.
pub enum RecognitionService {
    /// Everything in this process.
    Embedded {
        service: EmbeddedService,
        max_workers: usize,
    },
    /// S3 + SQS; the function runs elsewhere.
    #[cfg(feature = "aws")]
    Aws(Box<AwsEdge>),
}

/// The edge's side of the AWS deployment: an S3 sink and the device's SQS result queue.
#[cfg(feature = "aws")]
pub struct AwsEdge {
    /// Drives the SDK's futures.
    pub runtime: tokio::runtime::Runtime,
    /// The AWS SDK configuration (credential chain, region, AWS_ENDPOINT_URL).
    pub sdk: rollcall_protocol::aws::SdkConfig,
    /// Resource names.
    pub names: rollcall_protocol::aws::Names,
    sink: Arc<rollcall_edge::upload::StoreSink<rollcall_protocol::store::s3::S3ClipStore>>,
    queue: Arc<rollcall_protocol::results::sqs::SqsResultQueue>,
}

impl RecognitionService {
    /// Start the embedded service: load the models (one session per worker) and the gallery.
    pub fn embedded(settings: &Recognition, options: &EmbeddedOptions) -> Result<Self> {
        Ok(RecognitionService::Embedded {
            service: EmbeddedService::from_settings(settings, options)?,
            max_workers: options.max_workers,
        })
    }

    /// Connect the edge to an AWS deployment named by `names` for `device`: checks that the
    /// bucket and the device's result queue exist. Every call has the edge's timeouts
    /// ([`rollcall_protocol::aws::Timeouts::EDGE`]).
    #[cfg(feature = "aws")]
    pub fn aws(names: rollcall_protocol::aws::Names, device: &str) -> Result<Self> {
        use rollcall_protocol::aws;
        use rollcall_protocol::results::sqs::SqsResultQueue;
        use rollcall_protocol::store::s3::S3ClipStore;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("aws-io")
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let sdk = runtime.block_on(aws::load_config_with(aws::Timeouts::EDGE));
        let queue = SqsResultQueue::new(aws::SqsClient::new(&sdk), &names.prefix);
        runtime.block_on(queue.queue_url(device)).with_context(|| {
            format!(
                "the result queue {} of device {device} is not reachable \
                     (create it with `rollcall aws provision --device {device}`)",
                queue.queue_name(device)
            )
        })?;
        let store = S3ClipStore::from_config(&sdk, &names.bucket);
        runtime.block_on(aws::check_bucket(store.client(), &names.bucket))?;
        let sink = Arc::new(rollcall_edge::upload::StoreSink::new(
            store,
            runtime.handle().clone(),
        ));
        Ok(RecognitionService::Aws(Box::new(AwsEdge {
            runtime,
            sdk,
            names,
            sink,
            queue: Arc::new(queue),
        })))
    }

    /// `embedded` or `aws`.
    pub fn backend(&self) -> &'static str {
        match self {
            RecognitionService::Embedded { .. } => "embedded",
            #[cfg(feature = "aws")]
            RecognitionService::Aws(_) => "aws",
        }
    }

    /// One line saying where clips go and where `device`'s results come from.
    #[cfg_attr(not(feature = "aws"), allow(unused_variables))]
    pub fn describe(&self, device: &str) -> String {
        match self {
            RecognitionService::Embedded { max_workers, .. } => {
                format!("embedded: up to {max_workers} worker(s) in this process")
            }
            #[cfg(feature = "aws")]
            RecognitionService::Aws(edge) => format!(
                "aws: clips to s3://{}/, results from the queue {}",
                edge.names.bucket,
                edge.names.result_queue(device)
            ),
        }
    }

    /// The worker pool's size and backlog (embedded only: AWS functions scale on their own).
    pub fn pool_stats(&self) -> Option<PoolStats> {
        match self {
            RecognitionService::Embedded { service, .. } => Some(service.dispatcher.stats()),
            #[cfg(feature = "aws")]
            RecognitionService::Aws(_) => None,
        }
    }

    /// The function's counters (embedded only).
    pub fn handler_stats(&self) -> Option<HandlerStats> {
        match self {
            RecognitionService::Embedded { service, .. } => Some(service.handler_stats()),
            #[cfg(feature = "aws")]
            RecognitionService::Aws(_) => None,
        }
    }

    /// A handle on the runtime driving this service's I/O.
    pub fn runtime(&self) -> tokio::runtime::Handle {
        match self {
            RecognitionService::Embedded { service, .. } => service.runtime.handle().clone(),
            #[cfg(feature = "aws")]
            RecognitionService::Aws(edge) => edge.runtime.handle().clone(),
        }
    }

    /// Run one session on the calling thread (see [`run_session`]).
    pub fn run(
        &self,
        config: &SessionConfig,
        stop: Arc<AtomicBool>,
        probe: &SessionProbe,
        on_result: impl FnMut(&ReceivedResult) + Send + 'static,
    ) -> Result<SessionReport, rollcall_edge::session::SessionError> {
        match self {
            RecognitionService::Embedded { service, .. } => run_session(
                config,
                Arc::new(LocalDirSink::from_store(Arc::clone(&service.store))),
                Arc::clone(&service.queue),
                service.runtime.handle().clone(),
                stop,
                probe,
                on_result,
            ),
            #[cfg(feature = "aws")]
            RecognitionService::Aws(edge) => run_session(
                config,
                edge.sink.clone(),
                Arc::clone(&edge.queue),
                edge.runtime.handle().clone(),
                stop,
                probe,
                on_result,
            ),
        }
    }

    /// Send what `spool` holds and wait for the answers (see [`drain_spool`]).
    pub fn drain(
        &self,
        spool: Arc<ClipSpool>,
        config: &DrainConfig,
        interrupt: &AtomicBool,
        on_result: impl FnMut(&ReceivedResult) + Send + 'static,
    ) -> std::io::Result<DrainReport> {
        match self {
            RecognitionService::Embedded { service, .. } => drain_spool(
                spool,
                Arc::new(LocalDirSink::from_store(Arc::clone(&service.store))),
                Arc::clone(&service.queue),
                service.runtime.handle().clone(),
                config,
                interrupt,
                on_result,
            ),
            #[cfg(feature = "aws")]
            RecognitionService::Aws(edge) => drain_spool(
                spool,
                edge.sink.clone(),
                Arc::clone(&edge.queue),
                edge.runtime.handle().clone(),
                config,
                interrupt,
                on_result,
            ),
        }
    }

    /// Start a session on its own thread; results stream through [`RunningSession::results`],
    /// after `observe` saw each of them on the receiving thread (the event publisher: it must
    /// not block).
    pub fn spawn(
        self: &Arc<Self>,
        config: SessionConfig,
        observe: impl Fn(&ReceivedResult) + Send + 'static,
    ) -> Result<RunningSession> {
        let probe = SessionProbe::new();
        let stop = Arc::new(AtomicBool::new(false));
        let (sender, results) = mpsc::channel();
        let thread = {
            let service = Arc::clone(self);
            let probe = probe.clone();
            let stop = Arc::clone(&stop);
            let config = config.clone();
            std::thread::Builder::new()
                .name("session".into())
                .spawn(move || {
                    service
                        .run(&config, stop, &probe, move |got| {
                            observe(got);
                            // The watcher may be gone (console quitting): nothing to do then.
                            let _ = sender.send(got.clone());
                        })
                        .map_err(|e| format!("cannot start the session on {}: {e}", config.source))
                })
                .context("cannot start the session thread")?
        };
        Ok(RunningSession {
            probe,
            stop,
            results,
            started: Instant::now(),
            config,
            thread: Some(thread),
        })
    }

    /// Finish queued clips and stop the workers (embedded); returns the pool's final stats.
    pub fn shutdown(self) -> Option<PoolStats> {
        match self {
            RecognitionService::Embedded { service, .. } => Some(service.shutdown()),
            #[cfg(feature = "aws")]
            RecognitionService::Aws(edge) => {
                edge.runtime.shutdown_timeout(Duration::from_secs(1));
                None
            }
        }
    }
}

/// A session running on its own thread.
pub struct RunningSession {
    /// Live counters, people and latency.
    pub probe: SessionProbe,
    /// Results as they arrive (duplicates already dropped).
    pub results: Receiver<ReceivedResult>,
    /// When it started.
    pub started: Instant,
    /// How it was configured.
    pub config: SessionConfig,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<SessionReport, String>>>,
}

impl RunningSession {
    /// Ask capture to stop; the session still drains its clips and results.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked for.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The flag [`RunningSession::stop`] raises (for signal handlers).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Whether the session has ended (its report is ready).
    pub fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Wait for the end of the session and take its report.
    pub fn join(&mut self) -> Result<SessionReport, String> {
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err("the session thread panicked".to_string())),
            None => Err("the session's report was already taken".to_string()),
        }
    }
}
