//! Uploading spooled clips: the [`ClipSink`] trait, a local-directory sink and the
//! [`Uploader`] worker pool with retries.
//!
//! The uploader takes clips from a [`ClipSpool`] oldest first and `put`s them into a sink with
//! capped exponential backoff, for as long as it runs: a clip that still fails after
//! `max_attempts` goes back to the spool and is tried again after `retry_later`; one left in the
//! spool by a process that died is uploaded by the next one (the spool recovers it on open).
//! After a successful put the clip either leaves the spool at once or, with
//! [`UploaderConfig::keep_until_answered`], stays there awaiting its result. Every clip's
//! outcome is reported as an [`UploadEvent`]; every attempt's outcome goes into the uploader's
//! [`LinkHealth`] (is the store reachable, since when not, retries).

#![warn(missing_docs)]

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rollcall_protocol::store::{validate_key, ClipStore, InvalidKey, LocalClipStore, StoreError};
use rollcall_protocol::wire::ClipMeta;

use crate::link::{Link, LinkHealth};
use crate::spool::{ClipSpool, SpooledClip};

/// Why a sink did not store a clip. Every variant names the key.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The object key is not safe to use (absolute, `..`, odd characters). Not retried.
    #[error("refusing object key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing a file failed.
    #[error("cannot store {key}: I/O error on {path}: {source}")]
    Io {
        /// The object key.
        key: String,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Any other failure of a sink (network, service error...).
    #[error("cannot store {key}: {message}")]
    Other {
        /// The object key.
        key: String,
        /// What went wrong.
        message: String,
        /// Whether trying again may succeed.
        retryable: bool,
    },
}

impl SinkError {
    /// Whether trying the same put again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::InvalidKey { .. } => false,
            Self::Io { .. } => true,
            Self::Other { retryable, .. } => *retryable,
        }
    }
}

/// Where clips go: an object store (S3), a local directory, a test double...
///
/// `put` must be idempotent: the same clip may be put more than once (retries, a crash
/// between upload and spool removal).
pub trait ClipSink: Send + Sync {
    /// Stores one clip under [`ClipMeta::object_key`], with its metadata.
    fn put(&self, meta: &ClipMeta, bytes: &[u8]) -> Result<(), SinkError>;
}

impl<T: ClipSink + ?Sized> ClipSink for Arc<T> {
    fn put(&self, meta: &ClipMeta, bytes: &[u8]) -> Result<(), SinkError> {
        (**self).put(meta, bytes)
    }
}

/// Checks an object key with the object store's rules
/// ([`rollcall_protocol::store::validate_key`]: relative, `/`-separated segments of
/// `[A-Za-z0-9._-]`, 1..=255 characters each, not `.` or `..`, 1024 characters at most).
pub fn validate_object_key(key: &str) -> Result<(), SinkError> {
    validate_key(key).map_err(SinkError::from)
}

impl From<InvalidKey> for SinkError {
    fn from(e: InvalidKey) -> Self {
        SinkError::InvalidKey {
            key: e.key,
            reason: e.reason.to_string(),
        }
    }
}

impl From<StoreError> for SinkError {
    fn from(e: StoreError) -> Self {
        let retryable = e.is_retryable();
        match e {
            StoreError::InvalidKey(e) => e.into(),
            StoreError::Io { key, path, source } => SinkError::Io { key, path, source },
            other => SinkError::Other {
                key: other.key().to_string(),
                message: other.to_string(),
                retryable,
            },
        }
    }
}

/// Checks the ids that become key segments, naming the key on failure.
fn check_clip_ids(meta: &ClipMeta, key: &str) -> Result<(), SinkError> {
    for (kind, id) in [
        ("device id", &meta.device_id),
        ("session id", &meta.session_id),
    ] {
        rollcall_protocol::ids::validate_id(kind, id).map_err(|e| SinkError::InvalidKey {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

/// A sink writing to a local directory, the embedded deployment's object store. It is a
/// [`LocalClipStore`] (one implementation for the edge and the function):
/// `root/<key>` holds the clip bytes and `root/<key>.json` its [`ClipMeta`]
/// (e.g. `clips/pi-1/s1/00000003.h264` and `clips/pi-1/s1/00000003.h264.json`).
///
/// Both files are written to a temporary name and renamed into place, metadata first: once
/// the bytes exist under their key, the metadata is there too.
#[derive(Debug)]
pub struct LocalDirSink {
    store: Arc<LocalClipStore>,
}

impl LocalDirSink {
    /// A sink rooted at `root` (created on the first put if missing).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::from_store(Arc::new(LocalClipStore::new(root)))
    }

    /// A sink putting into `store`, e.g. one shared with the function and announcing new clips.
    pub fn from_store(store: Arc<LocalClipStore>) -> Self {
        Self { store }
    }

    /// The store behind the sink.
    pub fn store(&self) -> &Arc<LocalClipStore> {
        &self.store
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        self.store.root()
    }

    /// Path of the object stored under `key`, if the key is valid.
    pub fn path_for(&self, key: &str) -> Result<PathBuf, SinkError> {
        Ok(self.store.path_for(key)?)
    }
}

impl ClipSink for LocalDirSink {
    fn put(&self, meta: &ClipMeta, bytes: &[u8]) -> Result<(), SinkError> {
        let key = meta.object_key();
        check_clip_ids(meta, &key)?;
        Ok(self.store.put_blocking(&key, meta, bytes)?)
    }
}

/// A sink putting into any [`ClipStore`] (S3...), driving its async `put` on a Tokio runtime
/// from the uploader's threads.
pub struct StoreSink<S> {
    store: S,
    runtime: tokio::runtime::Handle,
}

impl<S> std::fmt::Debug for StoreSink<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSink").finish_non_exhaustive()
    }
}

impl<S: ClipStore> StoreSink<S> {
    /// A sink into `store`, whose futures run on `runtime` (a multi-thread runtime: the
    /// uploader's threads block on them).
    pub fn new(store: S, runtime: tokio::runtime::Handle) -> Self {
        Self { store, runtime }
    }
}

impl<S: ClipStore> ClipSink for StoreSink<S> {
    fn put(&self, meta: &ClipMeta, bytes: &[u8]) -> Result<(), SinkError> {
        let key = meta.object_key();
        check_clip_ids(meta, &key)?;
        Ok(self.runtime.block_on(self.store.put(&key, meta, bytes))?)
    }
}

/// How the uploader works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploaderConfig {
    /// Worker threads, i.e. clips uploaded at the same time (at least 1; default 2).
    pub workers: usize,
    /// Wait before the first retry (default 200 ms); doubles after each failure.
    pub initial_backoff: Duration,
    /// Longest wait between retries (default 5 s).
    pub max_backoff: Duration,
    /// Attempts per round before the clip goes back to the spool (at least 1; default 5).
    pub max_attempts: u32,
    /// How long a clip that exhausted its attempts waits in the spool before a new round
    /// (default 5 s, the longest backoff: an outage is retried at that pace for as long as it
    /// lasts).
    pub retry_later: Duration,
    /// Longest sleep of an idle worker between spool checks (default 200 ms; pushes wake it
    /// at once).
    pub idle_poll: Duration,
    /// Keep an uploaded clip in the spool until its result arrives
    /// ([`ClipSpool::mark_uploaded`]; a session removes it on the result) instead of removing
    /// it after the put (default `false`: nothing waits for results).
    pub keep_until_answered: bool,
}

impl Default for UploaderConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_attempts: 5,
            retry_later: Duration::from_secs(5),
            idle_poll: Duration::from_millis(200),
            keep_until_answered: false,
        }
    }
}

/// The outcome of one round of uploading a clip.
#[derive(Debug)]
pub struct UploadEvent {
    /// The clip.
    pub meta: ClipMeta,
    /// Put attempts in this round (1 = first try succeeded or failed for good).
    pub attempts: u32,
    /// From the first attempt's start to the outcome, backoff included.
    pub upload: Duration,
    /// Duration of the last put call alone.
    pub last_attempt: Duration,
    /// How long the clip waited in the spool before this round started.
    pub spool_wait: Duration,
    /// `Ok` when the clip is stored (and gone from the spool, or awaiting its result there);
    /// the last error otherwise (the clip stays in the spool and will be retried).
    pub result: Result<(), SinkError>,
}

type EventFn = dyn Fn(UploadEvent) + Send + Sync;

struct Shared {
    spool: Arc<ClipSpool>,
    sink: Arc<dyn ClipSink>,
    config: UploaderConfig,
    on_event: Box<EventFn>,
    health: Arc<LinkHealth>,
    stop: Mutex<bool>,
    stop_cv: Condvar,
}

impl Shared {
    fn stopping(&self) -> bool {
        *self.stop.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleeps for `d` unless stopped first; returns whether a stop was requested.
    fn sleep_unless_stopped(&self, d: Duration) -> bool {
        let guard = self.stop.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .stop_cv
            .wait_timeout_while(guard, d, |stop| !*stop)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }
}

/// A pool of upload workers; see the [module docs](self). Dropping it stops the workers
/// (each finishes the put it is in).
///
/// ```no_run
/// use std::sync::Arc;
/// use rollcall_edge::spool::ClipSpool;
/// use rollcall_edge::upload::{LocalDirSink, Uploader, UploaderConfig};
///
/// let spool = Arc::new(ClipSpool::open("/var/spool/rollcall", "pi-1", 512 << 20)?);
/// let sink = Arc::new(LocalDirSink::new("/srv/rollcall/objects"));
/// let uploader = Uploader::start(spool, sink, UploaderConfig::default(), |ev| {
///     println!("{} attempts={} {:?}", ev.meta.clip_id(), ev.attempts, ev.result);
/// })?;
/// // ... push clips into the spool ...
/// uploader.finish(std::time::Duration::from_secs(10));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Uploader {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Uploader {
    /// Starts `config.workers` threads uploading from `spool` into `sink`, reporting every
    /// clip's outcome to `on_event` (called on the worker threads).
    pub fn start(
        spool: Arc<ClipSpool>,
        sink: Arc<dyn ClipSink>,
        config: UploaderConfig,
        on_event: impl Fn(UploadEvent) + Send + Sync + 'static,
    ) -> io::Result<Self> {
        let mut config = config;
        config.workers = config.workers.max(1);
        config.max_attempts = config.max_attempts.max(1);
        let shared = Arc::new(Shared {
            spool,
            sink,
            config,
            on_event: Box::new(on_event),
            health: Arc::new(LinkHealth::new()),
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
        });
        let mut uploader = Self {
            shared: Arc::clone(&shared),
            workers: Vec::new(),
        };
        for i in 0..shared.config.workers {
            let s = Arc::clone(&shared);
            // On failure `uploader` is dropped, which stops the workers already started.
            let handle = std::thread::Builder::new()
                .name(format!("upload-{i}"))
                .spawn(move || worker(&s))?;
            uploader.workers.push(handle);
        }
        tracing::debug!(workers = shared.config.workers, "uploader started");
        Ok(uploader)
    }

    /// Reachability of the store as the workers saw it, and their retries.
    pub fn health(&self) -> Arc<LinkHealth> {
        Arc::clone(&self.shared.health)
    }

    /// Waits until every clip of the spool is uploaded or `timeout` passes, then stops the
    /// workers. Returns whether everything was uploaded.
    pub fn finish(mut self, timeout: Duration) -> bool {
        let drained = self.wait_until_empty(timeout);
        self.stop_and_join();
        drained
    }

    /// Blocks until no clip of the spool is waiting for upload or `timeout` passes; returns
    /// whether none is.
    pub fn wait_until_empty(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.shared.spool.unsent() == 0 {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(10)));
        }
    }

    /// Stops the workers (each finishes the put it is in; clips being retried go back to the
    /// spool) and waits for them.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.stop_cv.notify_all();
        self.shared.spool.wake();
        for handle in self.workers.drain(..) {
            if handle.join().is_err() {
                tracing::error!("an upload worker panicked");
            }
        }
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn worker(shared: &Shared) {
    while !shared.stopping() {
        match shared.spool.claim_next() {
            Some(clip) => upload_clip(shared, clip),
            None => shared.spool.wait_for_work(shared.config.idle_poll),
        }
    }
}

fn upload_clip(shared: &Shared, clip: SpooledClip) {
    let SpooledClip {
        meta,
        bytes,
        spool_wait,
    } = clip;
    let config = &shared.config;
    let started = Instant::now();
    let mut delay = config.initial_backoff;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let put_started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| shared.sink.put(&meta, &bytes)))
            .unwrap_or_else(|_| {
                Err(SinkError::Other {
                    key: meta.object_key(),
                    message: "the sink panicked".to_string(),
                    retryable: true,
                })
            });
        let last_attempt = put_started.elapsed();
        let event = |result| UploadEvent {
            meta: meta.clone(),
            attempts,
            upload: started.elapsed(),
            last_attempt,
            spool_wait,
            result,
        };
        match result {
            Ok(()) => {
                shared.health.ok(Link::Store);
                if config.keep_until_answered {
                    shared.spool.mark_uploaded(&meta);
                } else if let Err(e) = shared.spool.remove(&meta) {
                    // Uploaded, but still in the spool: it will be put again (sinks are idempotent).
                    tracing::error!(clip = %meta.clip_id(), error = %e, "uploaded clip could not be removed from the spool");
                }
                tracing::debug!(
                    clip = %meta.clip_id(),
                    attempts,
                    upload_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "clip uploaded"
                );
                (shared.on_event)(event(Ok(())));
                return;
            }
            Err(e) => {
                shared
                    .health
                    .failed(Link::Store, last_attempt, &e.to_string());
                shared.health.retried();
                let give_up = attempts >= config.max_attempts || !e.is_retryable();
                // The outage itself is logged once by the link health; single attempts only
                // matter when retrying cannot help.
                if e.is_retryable() {
                    tracing::debug!(clip = %meta.clip_id(), attempt = attempts, error = %e, give_up, "clip upload failed");
                } else {
                    tracing::warn!(clip = %meta.clip_id(), attempt = attempts, error = %e, "clip upload refused");
                }
                if give_up {
                    tracing::debug!(
                        clip = %meta.clip_id(),
                        retry_in_s = config.retry_later.as_secs_f64(),
                        "clip stays in the spool for a later retry"
                    );
                    shared.spool.release(&meta, Some(config.retry_later));
                    (shared.on_event)(event(Err(e)));
                    return;
                }
                if shared.sleep_unless_stopped(delay) {
                    shared.spool.release(&meta, None);
                    (shared.on_event)(event(Err(e)));
                    return;
                }
                delay = (delay * 2).min(config.max_backoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys() {
        for ok in ["clips/dev/s/00000001.h264", "a", "a.b/c-d_e"] {
            assert!(validate_object_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/abs",
            "a/../b",
            "..",
            "a//b",
            "a/",
            "./a",
            "a b",
            "a\\b",
            "ü",
            "a/.",
            &"x".repeat(1025),
        ] {
            let err = validate_object_key(bad).unwrap_err();
            assert!(!err.is_retryable());
            assert!(err.to_string().contains("refusing object key"), "{err}");
        }
    }
}
