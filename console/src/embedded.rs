//! The embedded deployment of the recognition service: everything in this process, no account,
//! no server.
//!
//! ```text
//! edge uploader --put--> LocalClipStore (a directory) --"clip created"--> Dispatcher
//!     --> WorkerPool (autoscaling threads) --> RecognitionHandler --> LocalResultQueue --> edge
//! ```
//!
//! The pieces are backend-neutral and live in `rollcall-recognizer` (`store`, `results`,
//! `handler`, `pool`) so that `rollcall worker` and the Lambda reuse them with S3/SQS/DynamoDB;
//! this module only wires the local backends together.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use rollcall_protocol::results::LocalResultQueue;
use rollcall_protocol::store::LocalClipStore;
use rollcall_protocol::wire::ClipEvent;
use rollcall_recognizer::clip::{ClipAnalyzer, ClipLimits, SamplePolicy};
use rollcall_recognizer::directory::PeopleDirectory;
use rollcall_recognizer::handler::{HandlerConfig, HandlerStats, RecognitionHandler};
use rollcall_recognizer::pool::{PoolConfig, PoolStats, WorkerPool};
use rollcall_recognizer::vision::FacePipeline;

use crate::settings::{DirectoryAccess, Recognition};

/// The handler type of the embedded deployment.
pub type EmbeddedHandler =
    RecognitionHandler<Arc<LocalClipStore>, dyn PeopleDirectory, Arc<LocalResultQueue>>;

/// How the embedded service runs.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// The object store's folder.
    pub objects: PathBuf,
    /// Worker pool scaling (`max_workers` also sizes the model sessions).
    pub pool: PoolConfig,
    /// The function's settings.
    pub handler: HandlerConfig,
    /// Publish attempts per clip before its result is given up (default 3).
    pub publish_attempts: u32,
}

/// What the embedded service needs beyond the recognizer settings (see
/// [`EmbeddedService::from_settings`]).
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// Most recognition workers at once (also the model sessions loaded).
    pub max_workers: usize,
    /// Frames analysed per clip.
    pub sample: SamplePolicy,
    /// Largest clip the function accepts, in bytes.
    pub max_clip_bytes: usize,
    /// The object store's folder.
    pub objects: PathBuf,
}

/// "Clip created" events -> the worker pool. Holds the pool so it can be shut down even though
/// the store's notifier keeps a reference to the dispatcher.
#[derive(Default)]
pub struct Dispatcher {
    pool: Mutex<Option<WorkerPool<ClipEvent>>>,
}

impl Dispatcher {
    /// Hand an event to the pool (dropped with an error once shut down).
    pub fn dispatch(&self, event: ClipEvent) {
        match &*self.pool.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(pool) => pool.submit(event),
            None => tracing::error!(key = %event.key, "clip created after shutdown: not processed"),
        }
    }

    /// The pool's size, backlog and counters.
    pub fn stats(&self) -> PoolStats {
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(WorkerPool::stats)
            .unwrap_or_default()
    }

    /// Run what is queued, then stop the workers; returns the final stats.
    pub fn shutdown(&self) -> PoolStats {
        let pool = self.pool.lock().unwrap_or_else(|p| p.into_inner()).take();
        match pool {
            Some(pool) => {
                pool.wait_idle(Duration::from_secs(60));
                let stats = pool.stats();
                pool.shutdown();
                stats
            }
            None => PoolStats::default(),
        }
    }
}

/// The running embedded service.
pub struct EmbeddedService {
    /// The object store (give it to the edge's `LocalDirSink::from_store`).
    pub store: Arc<LocalClipStore>,
    /// The result queue (give it to the edge's receiver).
    pub queue: Arc<LocalResultQueue>,
    /// The function.
    pub handler: Arc<EmbeddedHandler>,
    /// Events -> pool.
    pub dispatcher: Arc<Dispatcher>,
    /// Drives the store's and queue's futures (I/O and timers).
    pub runtime: tokio::runtime::Runtime,
}

impl EmbeddedService {
    /// Start the service: store in `config.objects`, the handler over `directory` with
    /// `pipeline` (load it with `sessions_per_model = config.pool.max_workers`), the pool with
    /// its first workers. The gallery is loaded before this returns.
    pub fn start(
        config: EmbeddedConfig,
        directory: Arc<dyn PeopleDirectory>,
        pipeline: Arc<FacePipeline>,
        analyzer: impl FnOnce(ClipAnalyzer) -> ClipAnalyzer,
    ) -> Result<EmbeddedService> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("embedded-io")
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let dispatcher = Arc::new(Dispatcher::default());
        let store = {
            let dispatcher = Arc::clone(&dispatcher);
            Arc::new(
                LocalClipStore::new(&config.objects)
                    // The folder lives as long as the session's clips matter; a crash loses
                    // the in-process queue anyway.
                    .durable(false)
                    .on_created(move |event| dispatcher.dispatch(event)),
            )
        };
        let queue = Arc::new(LocalResultQueue::new());
        let handler = Arc::new(RecognitionHandler::new(
            Arc::clone(&store),
            directory,
            Arc::clone(&queue),
            analyzer(ClipAnalyzer::new(pipeline)),
            config.handler.clone(),
        ));
        let people = handler
            .warm_up()
            .context("cannot load the gallery from the people directory")?;
        tracing::info!(people, "embedded recognition service ready");
        let job = {
            let handler = Arc::clone(&handler);
            let io = runtime.handle().clone();
            let attempts = config.publish_attempts.max(1);
            move |event: ClipEvent| {
                for attempt in 1..=attempts {
                    match io.block_on(handler.handle(event.clone())) {
                        Ok(_) => return,
                        Err(e) if attempt < attempts && e.is_retryable() => {
                            tracing::warn!(key = %event.key, error = %e, attempt, "retrying");
                            std::thread::sleep(Duration::from_millis(20 << attempt));
                        }
                        Err(e) => {
                            tracing::error!(key = %event.key, error = %e, "result given up");
                            return;
                        }
                    }
                }
            }
        };
        let pool = WorkerPool::start(config.pool.clone(), job);
        *dispatcher.pool.lock().unwrap_or_else(|p| p.into_inner()) = Some(pool);
        Ok(EmbeddedService {
            store,
            queue,
            handler,
            dispatcher,
            runtime,
        })
    }

    /// Start the service the way every command wants it: the models with one session per
    /// worker (so workers never wait for each other), the SQLite people directory of
    /// `settings`, the configured or calibrated threshold, `options.sample` frames per clip and
    /// the clip size limit. Warns when nobody is enrolled.
    pub fn from_settings(
        settings: &Recognition,
        options: &EmbeddedOptions,
    ) -> Result<EmbeddedService> {
        let mut pipeline_options = settings.options.clone();
        pipeline_options.runtime.sessions_per_model = options.max_workers;
        let pipeline = Arc::new(
            FacePipeline::load(&settings.cache, pipeline_options)
                .context("cannot load the face models (run `rollcall models fetch` first)")?,
        );
        let directory = Arc::new(settings.directory(DirectoryAccess::ReadOnly)?);
        let (sample, max_bytes) = (options.sample, options.max_clip_bytes);
        let service = EmbeddedService::start(
            EmbeddedConfig {
                objects: options.objects.clone(),
                pool: PoolConfig {
                    name: "recognizer".into(),
                    ..PoolConfig::with_max_workers(options.max_workers)
                },
                handler: HandlerConfig {
                    max_clip_bytes: max_bytes,
                    threshold: settings.threshold,
                    ..HandlerConfig::default()
                },
                publish_attempts: 3,
            },
            directory.clone(),
            pipeline,
            |analyzer| {
                analyzer.with_policy(sample).with_limits(ClipLimits {
                    max_bytes,
                    ..ClipLimits::default()
                })
            },
        )?;
        // Only to warn early when nobody is enrolled; the workers load their own gallery.
        settings.gallery(directory.as_ref())?;
        Ok(service)
    }

    /// The function's counters.
    pub fn handler_stats(&self) -> HandlerStats {
        self.handler.stats()
    }

    /// Finish queued clips and stop the workers; returns the pool's final stats.
    pub fn shutdown(self) -> PoolStats {
        let stats = self.dispatcher.shutdown();
        self.runtime.shutdown_timeout(Duration::from_secs(1));
        stats
    }
}
