//! Sending what a device's spool holds and taking the answers in ([`Courier`]), and waiting for
//! them: the end of every session ([`wait_for_answers`], used by [`crate::session`]) and a drain
//! of the clips earlier runs left behind ([`drain_spool`], `rollcall spool drain`).
//!
//! Waiting ends when every clip of the spool is answered, or when nothing moved (no upload
//! succeeded, no result arrived) for a grace period: an unreachable store or a function that
//! does not answer cannot keep a process waiting forever. What is not answered then stays in
//! the spool, on disk, for the next run.

#![warn(missing_docs)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rollcall_protocol::results::ResultQueue;

use crate::link::{LinkHealth, LinkStatus};
use crate::receive::{Answer, ReceivedResult, ResultPump, ResultReceiver};
use crate::spool::ClipSpool;
use crate::upload::{ClipSink, UploadEvent, Uploader, UploaderConfig};

/// How often the waiting loop looks at the spool.
const WAIT_STEP: Duration = Duration::from_millis(10);

/// Blocks until `spool` is empty (every clip answered), `grace` passes without progress
/// ([`ClipSpool::progress`]), or `interrupt` is raised. Returns whether the spool is empty.
pub fn wait_for_answers(spool: &ClipSpool, grace: Duration, interrupt: &AtomicBool) -> bool {
    let mut last = (Instant::now(), spool.progress());
    loop {
        if spool.is_empty() {
            return true;
        }
        if interrupt.load(Ordering::Relaxed) {
            return false;
        }
        let progress = spool.progress();
        if progress != last.1 {
            last = (Instant::now(), progress);
        } else if last.0.elapsed() >= grace {
            tracing::info!(
                grace_s = grace.as_secs_f64(),
                "no upload and no result within the grace period"
            );
            return false;
        }
        std::thread::sleep(WAIT_STEP);
    }
}

/// Clips out and answers in for one device's spool: an [`Uploader`] that keeps uploaded clips
/// until answered, and a [`ResultPump`] that removes each answered clip, sharing one
/// [`LinkHealth`](crate::link::LinkHealth). What a session and a drain both run.
pub struct Courier {
    uploader: Uploader,
    pump: ResultPump,
}

impl std::fmt::Debug for Courier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Courier").finish_non_exhaustive()
    }
}

impl Courier {
    /// Starts uploading from `spool` into `sink` (`on_upload` sees every upload round's
    /// outcome) and receiving from `queue` on `runtime`, `receive_wait` per call (`on_answer`
    /// sees every accepted result).
    #[allow(clippy::too_many_arguments)]
    pub fn start<Q: ResultQueue + 'static>(
        spool: &Arc<ClipSpool>,
        sink: Arc<dyn ClipSink>,
        queue: Arc<Q>,
        runtime: tokio::runtime::Handle,
        uploader: &UploaderConfig,
        receive_wait: Duration,
        on_upload: impl Fn(UploadEvent) + Send + Sync + 'static,
        on_answer: impl FnMut(Answer<'_>) + Send + 'static,
    ) -> std::io::Result<Courier> {
        let uploader = Uploader::start(
            Arc::clone(spool),
            sink,
            UploaderConfig {
                keep_until_answered: true,
                ..uploader.clone()
            },
            on_upload,
        )?;
        let pump = ResultPump::start(
            queue,
            runtime,
            ResultReceiver::new(spool.device_id()),
            receive_wait,
            Some(Arc::clone(spool)),
            uploader.health(),
            on_answer,
        )?;
        Ok(Courier { uploader, pump })
    }

    /// Reachability of the store and the queue, retries.
    pub fn health(&self) -> Arc<LinkHealth> {
        self.uploader.health()
    }

    /// Stops both (each finishes the call it is in); returns the receiver.
    pub fn stop(self) -> ResultReceiver {
        self.uploader.stop();
        self.pump.stop()
    }
}

/// How [`drain_spool`] runs.
#[derive(Clone, Debug)]
pub struct DrainConfig {
    /// Upload workers and retries (`keep_until_answered` is always on).
    pub uploader: UploaderConfig,
    /// Give up after this long without an upload or a result (default 30 s).
    pub grace: Duration,
    /// Long-poll wait of one receive call (default 200 ms).
    pub receive_wait: Duration,
}

impl Default for DrainConfig {
    fn default() -> Self {
        DrainConfig {
            uploader: UploaderConfig::default(),
            grace: Duration::from_secs(30),
            receive_wait: Duration::from_millis(200),
        }
    }
}

/// What a drain did.
#[derive(Clone, Debug, Default)]
pub struct DrainReport {
    /// The device.
    pub device_id: String,
    /// Clips in the spool when the drain started.
    pub found: u64,
    /// Clips uploaded.
    pub uploaded: u64,
    /// Spooled clips answered (errors included).
    pub results: u64,
    /// Of those, error results.
    pub errors: u64,
    /// Clips lost: found unusable on disk (named by id).
    pub lost_clip_ids: Vec<String>,
    /// Clips still in the spool at the end (not uploaded, or no answer within the grace).
    pub pending: u64,
    /// Store and queue reachability, retries.
    pub link: LinkStatus,
}

/// Uploads every clip in `spool` through `sink`, waits for their results on `queue` (driven
/// by `runtime`) and removes each answered clip; `on_result` sees every answer to a spooled
/// clip. Ends as [`wait_for_answers`] does; `interrupt` ends it early.
pub fn drain_spool<Q: ResultQueue + 'static>(
    spool: Arc<ClipSpool>,
    sink: Arc<dyn ClipSink>,
    queue: Arc<Q>,
    runtime: tokio::runtime::Handle,
    config: &DrainConfig,
    interrupt: &AtomicBool,
    mut on_result: impl FnMut(&ReceivedResult) + Send + 'static,
) -> std::io::Result<DrainReport> {
    let device_id = spool.device_id().to_string();
    let found = spool.len() as u64;
    let uploaded = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let courier = {
        let uploaded = Arc::clone(&uploaded);
        let (answered, errors) = (Arc::clone(&answered), Arc::clone(&errors));
        Courier::start(
            &spool,
            sink,
            queue,
            runtime,
            &config.uploader,
            config.receive_wait,
            move |event| {
                if event.result.is_ok() {
                    uploaded.fetch_add(1, Ordering::Relaxed);
                }
            },
            move |answer: Answer<'_>| {
                if !answer.was_spooled {
                    tracing::debug!(clip = %answer.got.result.clip_id, "result of a clip not in the spool");
                    return;
                }
                answered.fetch_add(1, Ordering::Relaxed);
                if answer.got.result.error.is_some() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                on_result(answer.got);
            },
        )?
    };
    let health = courier.health();
    wait_for_answers(&spool, config.grace, interrupt);
    courier.stop();
    Ok(DrainReport {
        device_id,
        found,
        uploaded: uploaded.load(Ordering::Relaxed),
        results: answered.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        lost_clip_ids: spool.lost_clip_ids(),
        pending: spool.len() as u64,
        link: health.status(),
    })
}
