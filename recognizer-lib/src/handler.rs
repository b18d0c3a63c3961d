//! The recognition function, shared by every deployment: [`ClipEvent`] in ->
//! fetch the clip from the [`ClipStore`] -> [`ClipAnalyzer`] -> people-directory records ->
//! [`RecognitionResult`] published to the clip's device on the [`ResultQueue`].
//!
//! - **The key is authoritative.** Device, session and seq come from the object key
//!   (`clips/<device>/<session>/<seq>.h264`, [`parse_clip_key`]); the result goes to the key's
//!   device and nowhere else. Object metadata naming another clip gets an error result on the
//!   key's device (and a warning); missing metadata fields are filled from the key and the object
//!   ([`PartialClipMeta::resolve`]). A refused key is answered with an error result on the device
//!   it names when that can be read ([`RecognitionHandler::refuse`]); otherwise nobody can be
//!   told ([`HandlerError::Unroutable`]).
//! - **One result per clip, always.** A clip that cannot be processed (missing, over the size
//!   limit, corrupt, unreadable or conflicting metadata, directory failure) yields a result with
//!   `error` set, naming the object key, so the edge knows at once and nothing is retried
//!   forever. The failures returned to the caller are a result that could not be *published*
//!   ([`HandlerError::Publish`]: the trigger may redeliver the event, and the redelivery only
//!   republishes the remembered result) and a key naming no device.
//! - **Idempotent per object version.** The last [`HandlerConfig::recent_results`] results are
//!   remembered by object key *and version* (S3 entity tag, the local store's content hash): a
//!   redelivered event republishes the same result without analysing the clip again, while an
//!   overwrite of the key (a new version) is analysed anew. Concurrent deliveries of one version
//!   in this process wait for one analysis. Across processes (Lambda sandboxes, workers) the
//!   store's answer ledger ([`ClipStore::claim`]) decides: the first instance to claim a version
//!   analyses it and records the published result; another delivery of that version republishes
//!   the recorded result, or, while the claim is younger than [`HandlerConfig::claim_timeout`],
//!   is handed back for a later delivery ([`HandlerError::HeldElsewhere`], a retry). An older
//!   claim belongs to an instance that died mid-clip and is taken over. A ledger that cannot be
//!   reached never blocks a clip: it is analysed, and the edge drops a duplicate by clip id.
//! - **Fresh gallery.** The gallery (mean embeddings + threshold) is loaded on the first clip and
//!   reloaded only when the directory's [`gallery_version`](PeopleDirectory::gallery_version)
//!   changes (checked at most every [`HandlerConfig::version_poll`]: one small read, e.g. one
//!   DynamoDB `GetItem`); person records are fetched by id and cached until the next reload.
//!
//! - **One retry-or-drop decision.** [`RecognitionHandler::run_event`] (and
//!   [`run_record`](RecognitionHandler::run_record) for a notification's record) handles an event
//!   on a blocking thread and says what the trigger should do with it ([`ClipOutcome`]): done
//!   (published), deliver it again (a retryable publishing failure, a panic) or give up (a result
//!   that can never be published: a key naming no device, a device id that cannot name a queue).
//!   The Lambda, the SQS worker and the embedded pool all act on it.
//!
//! [`RecognitionHandler::handle`] is async because stores and queues are (S3, SQS), but it runs
//! the CPU-bound clip analysis and the (synchronous) directory calls on the calling thread: call
//! it from a thread that may block (a worker thread through a runtime handle's `block_on`,
//! `spawn_blocking`, or a Lambda invocation).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::clip::{ClipAnalysis, ClipAnalyzer, ClipLimits};
use crate::directory::{default_display_name, PeopleDirectory, PersonRecord};
use crate::enrollment::load_gallery;
use crate::error::RecognizerError;
use crate::vision::Gallery;
use rollcall_protocol::events::ClipRecord;
use rollcall_protocol::ids::{parse_clip_key, ClipKey, RefusedKey};
use rollcall_protocol::results::{QueueError, ResultQueue};
use rollcall_protocol::store::{Claim, ClipStore, StoreError, StoredClip, DEFAULT_MAX_CLIP_BYTES};
use rollcall_protocol::terminal_text::terminal_safe;
use rollcall_protocol::wire::{
    unix_now_ns, ClipEvent, ClipMeta, FunctionTimings, PartialClipMeta, PixelBox,
    RecognitionResult, RecognizedPerson,
};

/// How a [`RecognitionHandler`] behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct HandlerConfig {
    /// Largest clip fetched and analysed (default [`DEFAULT_MAX_CLIP_BYTES`], 8 MiB); a larger one
    /// gets an error result naming its key.
    pub max_clip_bytes: usize,
    /// Fixed match threshold instead of the one calibrated at enrolment.
    pub threshold: Option<f32>,
    /// Least time between two checks of the directory's gallery version (default 1 s; zero checks
    /// on every clip). The gallery is reloaded only when the version changed.
    pub version_poll: Duration,
    /// Results remembered (per object key and version) for redelivered events (default 1024; 0
    /// remembers nothing).
    pub recent_results: usize,
    /// Reported in every result's `instance_id`, and the holder of this instance's claims in the
    /// answer ledger: unique per process.
    pub instance_id: String,
    /// Age after which another instance's unanswered claim on a clip version is taken over (it
    /// died mid-clip); younger claims hand the delivery back for later (default 5 s, far above
    /// the time one clip takes).
    pub claim_timeout: Duration,
}

impl Default for HandlerConfig {
    fn default() -> Self {
        HandlerConfig {
            max_clip_bytes: DEFAULT_MAX_CLIP_BYTES,
            threshold: None,
            version_poll: Duration::from_secs(1),
            recent_results: 1024,
            instance_id: default_instance_id(),
            claim_timeout: Duration::from_secs(5),
        }
    }
}

/// `<host>-<pid>`: names this process in results.
pub fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".to_string());
    format!("{host}-{}", std::process::id())
}

/// What the handler could not do. Processing failures are *results* (with `error`), not errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// The result was computed but could not be sent; handling the same event again republishes it.
    #[error("clip {clip_id}: result not published: {source}")]
    Publish {
        /// The clip.
        clip_id: String,
        /// The queue's error.
        #[source]
        source: QueueError,
    },
    /// Another instance is analysing this version of the clip now; a later delivery republishes
    /// its answer.
    #[error(
        "clip {key}: version {version} is being answered by {holder} (claimed {age_ms} ms ago)"
    )]
    HeldElsewhere {
        /// The object key.
        key: String,
        /// The object version.
        version: String,
        /// The instance holding the claim.
        holder: String,
        /// How old the claim is.
        age_ms: u64,
    },
    /// The object key is refused and names no device whose queue could hear about it.
    #[error("{refused}; no device can be read from it, so nobody can be told")]
    Unroutable {
        /// The key and why it is refused.
        refused: RefusedKey,
    },
}

impl HandlerError {
    /// Whether handling the same event again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            // A queue closing while this process shuts down may be open in the next one; a
            // backend refusal that is not transient (access denied, a result the service
            // rejects) or a result that cannot be serialised fails the same way every time.
            HandlerError::Publish { source, .. } => {
                source.is_retryable() || matches!(source, QueueError::Closed { .. })
            }
            HandlerError::HeldElsewhere { .. } => true,
            HandlerError::Unroutable { .. } => false,
        }
    }
}

/// What became of one clip event, and so what its trigger does with it: the one retry-or-drop
/// decision of every deployment ([`RecognitionHandler::run_event`]).
#[derive(Clone, Debug, PartialEq)]
pub enum ClipOutcome {
    /// The result (possibly an error result) was published: the event is done.
    Published(Box<RecognitionResult>),
    /// Not published, and another delivery may succeed (the queue was unreachable, the handler
    /// panicked): the trigger should deliver the event again.
    Retry(String),
    /// Not published and never will be (the key names no device, the device id cannot name a
    /// queue, the queue refuses the result for good, e.g. access denied): the event is given up, with the reason logged. A queue-fed trigger leaves the
    /// message for its dead-letter queue, where `rollcall aws dlq list` shows it.
    Dropped(String),
}

impl ClipOutcome {
    /// The outcome of [`RecognitionHandler::handle`]'s return value.
    pub fn of(handled: Result<RecognitionResult, HandlerError>) -> ClipOutcome {
        match handled {
            Ok(result) => ClipOutcome::Published(Box::new(result)),
            Err(e) if e.is_retryable() => ClipOutcome::Retry(e.to_string()),
            Err(e) => ClipOutcome::Dropped(e.to_string()),
        }
    }

    /// Whether the trigger should deliver the event again.
    pub fn is_retry(&self) -> bool {
        matches!(self, ClipOutcome::Retry(_))
    }
}

/// Counters of a handler, for dashboards and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandlerStats {
    /// Events whose clip was analysed (or failed, or whose key was refused): one per distinct
    /// object version.
    pub processed: u64,
    /// Of those, results with `error` set.
    pub errors: u64,
    /// Redelivered (or concurrent) events of a version already answered, answered from memory.
    pub duplicates: u64,
    /// Gallery loads (the first one included).
    pub gallery_loads: u64,
    /// Checks of the directory's gallery version (each one small read).
    pub version_checks: u64,
    /// Results that could not be published.
    pub publish_failures: u64,
}

struct GalleryState {
    gallery: Arc<Gallery>,
    version: Option<u64>,
    checked_at: Option<Instant>,
    records: HashMap<String, PersonRecord>,
}

/// `(object key, object version)`: what the remembered results are keyed by.
type VersionKey = (String, String);

/// Results of recent object versions; a cell is set once its analysis is done, and concurrent
/// deliveries of the same version wait on it.
#[derive(Default)]
struct Recent {
    by_version: HashMap<VersionKey, Arc<OnceCell<RecognitionResult>>>,
    order: VecDeque<VersionKey>,
}

#[derive(Default)]
struct Counters {
    processed: AtomicU64,
    errors: AtomicU64,
    duplicates: AtomicU64,
    gallery_loads: AtomicU64,
    version_checks: AtomicU64,
    publish_failures: AtomicU64,
}

/// The recognition function; see the [module docs](self). Shareable between threads.
///
/// ```no_run
/// use std::sync::Arc;
/// use rollcall_models::ModelCache;
/// use rollcall_recognizer::clip::ClipAnalyzer;
/// use rollcall_recognizer::directory::sqlite::SqliteDirectory;
/// use rollcall_recognizer::handler::{HandlerConfig, RecognitionHandler};
/// use rollcall_protocol::results::LocalResultQueue;
/// use rollcall_protocol::store::LocalClipStore;
/// use rollcall_recognizer::vision::{FacePipeline, PipelineOptions};
/// use rollcall_protocol::wire::ClipEvent;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let meta: rollcall_protocol::wire::ClipMeta = todo!();
/// let pipeline = Arc::new(FacePipeline::load(&ModelCache::from_env()?, PipelineOptions::default())?);
/// let handler = RecognitionHandler::new(
///     Arc::new(LocalClipStore::new("/srv/rollcall/objects")),
///     Arc::new(SqliteDirectory::open("people.db")?),
///     Arc::new(LocalResultQueue::new()),
///     ClipAnalyzer::new(pipeline),
///     HandlerConfig::default(),
/// );
/// let runtime = tokio::runtime::Runtime::new()?;
/// let result = runtime.block_on(handler.handle(ClipEvent::for_clip(meta)))?;
/// println!("{:?} {:?}", result.people, result.error);
/// # Ok(())
/// # }
/// ```
pub struct RecognitionHandler<S, D: ?Sized, Q> {
    store: S,
    directory: Arc<D>,
    results: Q,
    analyzer: ClipAnalyzer,
    config: HandlerConfig,
    state: Mutex<GalleryState>,
    recent: Mutex<Recent>,
    cold: AtomicBool,
    counters: Counters,
}

impl<S, D: ?Sized, Q> std::fmt::Debug for RecognitionHandler<S, D, Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecognitionHandler")
            .field("config", &self.config)
            .field("analyzer", &self.analyzer)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl<S, D, Q> RecognitionHandler<S, D, Q>
where
    S: ClipStore,
    D: PeopleDirectory + ?Sized,
    Q: ResultQueue,
{
    /// A handler reading clips from `store`, people from `directory`, publishing to `results`.
    /// The analyzer's byte limit is set to `config.max_clip_bytes`.
    pub fn new(
        store: S,
        directory: Arc<D>,
        results: Q,
        analyzer: ClipAnalyzer,
        config: HandlerConfig,
    ) -> Self {
        let limits = ClipLimits {
            max_bytes: config.max_clip_bytes,
            ..analyzer.limits
        };
        RecognitionHandler {
            store,
            directory,
            results,
            analyzer: analyzer.with_limits(limits),
            config,
            state: Mutex::new(GalleryState {
                gallery: Arc::new(Gallery::default()),
                version: None,
                checked_at: None,
                records: HashMap::new(),
            }),
            recent: Mutex::new(Recent::default()),
            cold: AtomicBool::new(true),
            counters: Counters::default(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &HandlerConfig {
        &self.config
    }

    /// The object store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The result queue.
    pub fn results(&self) -> &Q {
        &self.results
    }

    /// Counters so far.
    pub fn stats(&self) -> HandlerStats {
        let c = &self.counters;
        HandlerStats {
            processed: c.processed.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            gallery_loads: c.gallery_loads.load(Ordering::Relaxed),
            version_checks: c.version_checks.load(Ordering::Relaxed),
            publish_failures: c.publish_failures.load(Ordering::Relaxed),
        }
    }

    /// Load the gallery now (instead of on the first clip), e.g. while the process starts.
    pub fn warm_up(&self) -> Result<usize, RecognizerError> {
        let mut state = lock(&self.state);
        let version = self.gallery_version()?;
        self.reload(&mut state, version, Instant::now())?;
        Ok(state.gallery.len())
    }

    /// Handle one "clip created" event: publish (and return) its result. See the
    /// [module docs](self).
    pub async fn handle(&self, event: ClipEvent) -> Result<RecognitionResult, HandlerError> {
        let clip = match parse_clip_key(&event.key) {
            Ok(clip) => clip,
            Err(refused) => return self.refuse(&refused).await,
        };
        let (result, answered_here) = self.result_for(&event, &clip).await?;
        let published = self.publish(result).await;
        if let Some(version) = answered_here {
            self.settle_claim(&event.key, &version, &published).await;
        }
        published
    }

    /// Record the published answer of a version this instance answered in the ledger, or give
    /// the claim up when publishing failed. Ledger failures are logged, never fatal: the result
    /// is out (or will be retried) either way.
    async fn settle_claim(
        &self,
        key: &str,
        version: &str,
        published: &Result<RecognitionResult, HandlerError>,
    ) {
        let settled = match published {
            Ok(result) => {
                self.store
                    .record_answer(key, version, &self.config.instance_id, result)
                    .await
            }
            Err(_) => self.store.release_claim(key, version).await,
        };
        if let Err(e) = settled {
            tracing::warn!(%key, %version, error = %e, "answer ledger not updated: a duplicate delivery to another instance may be analysed again");
        }
    }

    /// Answer a refused object key: an error result naming the key and the problem, published to
    /// the device the key names; [`HandlerError::Unroutable`] when no device can be read from it.
    pub async fn refuse(&self, refused: &RefusedKey) -> Result<RecognitionResult, HandlerError> {
        let Some(mut result) = RecognitionResult::refused(refused) else {
            return Err(HandlerError::Unroutable {
                refused: refused.clone(),
            });
        };
        tracing::warn!(key = %refused.key, device = %result.device_id, reason = %refused.reason, "object key refused: error result to its device");
        self.counters.processed.fetch_add(1, Ordering::Relaxed);
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        result.instance_id = self.config.instance_id.clone();
        result.completed_ns = unix_now_ns();
        self.publish(result).await
    }

    async fn publish(&self, result: RecognitionResult) -> Result<RecognitionResult, HandlerError> {
        if let Err(source) = self.results.publish(&result).await {
            self.counters
                .publish_failures
                .fetch_add(1, Ordering::Relaxed);
            return Err(HandlerError::Publish {
                clip_id: result.clip_id.clone(),
                source,
            });
        }
        Ok(result)
    }

    /// The result of the object version the event is about: remembered here, recorded in the
    /// answer ledger by another instance, or analysed once. With it, the version whose answer
    /// this instance must settle in the ledger (analysed or remembered here).
    async fn result_for(
        &self,
        event: &ClipEvent,
        clip: &ClipKey,
    ) -> Result<(RecognitionResult, Option<String>), HandlerError> {
        let key = &event.key;
        // A redelivery of a version already answered needs no fetch.
        if let Some(version) = &event.version {
            if let Some(result) = self.remembered(key, version) {
                self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%key, %version, "redelivered event: republishing the remembered result");
                return Ok((result, Some(version.clone())));
            }
        }
        let started = Instant::now();
        let fetched = self.store.get(key, self.config.max_clip_bytes).await;
        let version = match &fetched {
            Ok(stored) if self.config.recent_results > 0 => stored.version.clone(),
            // Not read (or nothing remembered): a redelivery reads it again.
            _ => None,
        };
        let Some(version) = version else {
            return Ok((self.process(key, clip, fetched, started), None));
        };
        let cell = self.cell(key, &version);
        let answered_here = AtomicBool::new(false);
        let result = cell
            .get_or_try_init(|| async {
                match self.claim(key, &version).await? {
                    Some(recorded) => Ok(recorded),
                    None => {
                        answered_here.store(true, Ordering::Relaxed);
                        Ok(self.process(key, clip, fetched, started))
                    }
                }
            })
            .await?
            .clone();
        if !answered_here.load(Ordering::Relaxed) {
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%key, %version, "duplicate of a version answered (or in hand): its result is republished");
        }
        Ok((result, Some(version)))
    }

    /// Claim `version` of `key` in the answer ledger: `None` when this instance is to analyse it
    /// (claimed, or the claim taken over, or the ledger unreachable), the recorded result when
    /// another instance answered it.
    async fn claim(
        &self,
        key: &str,
        version: &str,
    ) -> Result<Option<RecognitionResult>, HandlerError> {
        let me = &self.config.instance_id;
        match self.store.claim(key, version, me).await {
            Ok(Claim::Claimed) => Ok(None),
            Ok(Claim::Answered(result)) => {
                tracing::debug!(%key, %version, by = %result.instance_id, "answered by another instance: republishing its result");
                Ok(Some(*result))
            }
            Ok(Claim::HeldBy { holder, since_ns }) => {
                let age = Duration::from_nanos(unix_now_ns().saturating_sub(since_ns));
                if holder == *me || age >= self.config.claim_timeout {
                    tracing::info!(%key, %version, %holder, age_ms = age.as_millis() as u64, "taking over a stale claim (its instance stopped mid-clip)");
                    return Ok(None);
                }
                Err(HandlerError::HeldElsewhere {
                    key: key.to_string(),
                    version: version.to_string(),
                    holder,
                    age_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
                })
            }
            Err(e) => {
                tracing::warn!(%key, %version, error = %e, "answer ledger unreachable: analysing the clip (another instance may too)");
                Ok(None)
            }
        }
    }

    /// The remembered result of `(key, version)`, when its analysis is done.
    fn remembered(&self, key: &str, version: &str) -> Option<RecognitionResult> {
        let recent = lock(&self.recent);
        recent
            .by_version
            .get(&(key.to_string(), version.to_string()))
            .and_then(|cell| cell.get().cloned())
    }

    /// The cell of `(key, version)`, created (and the oldest forgotten) when new.
    fn cell(&self, key: &str, version: &str) -> Arc<OnceCell<RecognitionResult>> {
        let id = (key.to_string(), version.to_string());
        let mut recent = lock(&self.recent);
        if let Some(cell) = recent.by_version.get(&id) {
            return Arc::clone(cell);
        }
        let cell = Arc::new(OnceCell::new());
        recent.by_version.insert(id.clone(), Arc::clone(&cell));
        recent.order.push_back(id);
        while recent.order.len() > self.config.recent_results.max(1) {
            if let Some(old) = recent.order.pop_front() {
                recent.by_version.remove(&old);
            }
        }
        cell
    }

    /// [`handle`](Self::handle) `event` on a blocking thread of the current Tokio runtime (clip
    /// analysis is CPU-bound, directory calls block) and decide what the trigger does with it;
    /// see [`ClipOutcome`]. Logs every outcome that is not a published result.
    pub async fn run_event(self: &Arc<Self>, event: ClipEvent) -> ClipOutcome
    where
        S: 'static,
        D: 'static,
        Q: 'static,
    {
        let key = event.key.clone();
        let handler = Arc::clone(self);
        let io = tokio::runtime::Handle::current();
        let outcome =
            match tokio::task::spawn_blocking(move || io.block_on(handler.handle(event))).await {
                Ok(handled) => ClipOutcome::of(handled),
                Err(e) => ClipOutcome::Retry(format!("{key}: clip handler panicked: {e}")),
            };
        log_outcome(&key, &outcome);
        outcome
    }

    /// One record of a storage notification: [`run_event`](Self::run_event) for a clip,
    /// [`refuse`](Self::refuse) for a refused key; the same [`ClipOutcome`] either way.
    pub async fn run_record(self: &Arc<Self>, record: ClipRecord) -> ClipOutcome
    where
        S: 'static,
        D: 'static,
        Q: 'static,
    {
        match record {
            ClipRecord::Clip(event) => self.run_event(event).await,
            ClipRecord::Refused(refused) => {
                // Boxed: the queue's (SDK) future is deep, and the triggers' futures (the Lambda
                // runtime's) nest every await in their layout.
                let outcome = ClipOutcome::of(Box::pin(self.refuse(&refused)).await);
                log_outcome(&refused.key, &outcome);
                outcome
            }
        }
    }

    /// Resolve the metadata, analyse, look up: the result of one fetched clip (with `error` when
    /// any step failed). Counted as processed.
    fn process(
        &self,
        key: &str,
        clip: &ClipKey,
        fetched: Result<StoredClip, StoreError>,
        started: Instant,
    ) -> RecognitionResult {
        let cold_start = self.cold.swap(false, Ordering::Relaxed);
        let mut result = RecognitionResult::empty_for(&ClipMeta::for_key(clip));
        let outcome: Result<(), String> = (|| {
            let stored = fetched.map_err(|e| e.to_string())?;
            let meta = stored
                .meta
                .unwrap_or_else(PartialClipMeta::default)
                .resolve(clip, stored.stored_ns)
                .map_err(|conflict| {
                    tracing::warn!(%key, %conflict, "object metadata names another clip than its key");
                    format!("{key}: {conflict}")
                })?;
            result = RecognitionResult::empty_for(&meta);
            let lookup_started = Instant::now();
            let (gallery, mut lookup) = match self.current_gallery() {
                Ok(gallery) => (gallery, lookup_started.elapsed()),
                Err(e) => return Err(format!("{key}: people directory: {e}")),
            };
            let analysis = self
                .analyzer
                .analyze(&meta.clip_id(), Some(&meta), &stored.bytes, &gallery)
                .map_err(|e| format!("{key}: {e}"))?;
            let lookup_started = Instant::now();
            result.people = self
                .people(&analysis)
                .map_err(|e| format!("{key}: people directory: {e}"))?;
            lookup += lookup_started.elapsed();
            // Distinct strangers, not face sightings: the same stranger in every sampled frame
            // is one unknown face for the operator.
            result.unknown_faces = analysis.unknown_faces;
            result.timings = FunctionTimings {
                decode_ms: analysis.timings.decode_ms,
                detect_ms: analysis.timings.detect_ms,
                embed_ms: analysis.timings.embed_ms,
                lookup_ms: ms(lookup),
                total_ms: 0.0,
            };
            Ok(())
        })();
        self.counters.processed.fetch_add(1, Ordering::Relaxed);
        if let Err(message) = outcome {
            tracing::warn!(%key, error = %message, "clip not processed");
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            result.people.clear();
            result.unknown_faces = 0;
            result.error = Some(message);
        }
        result.instance_id = self.config.instance_id.clone();
        result.cold_start = cold_start;
        result.timings.total_ms = ms(started.elapsed());
        result.completed_ns = unix_now_ns();
        if result.error.is_none() {
            // One line per clip, like a Lambda's REPORT line: what the log tails show.
            let names: Vec<&str> = result.people.iter().map(|p| p.name.as_str()).collect();
            tracing::info!(
                clip = %result.clip_id,
                // Names come from records: escaped, so one cannot forge log lines.
                people = %terminal_safe(&names.join(", ")),
                unknown = result.unknown_faces,
                total_ms = format_args!("{:.1}", result.timings.total_ms),
                cold_start,
                "clip recognised"
            );
        }
        result
    }

    /// The gallery, reloaded first when the directory's version changed since it was loaded
    /// (checked at most every `version_poll`).
    fn current_gallery(&self) -> Result<Arc<Gallery>, RecognizerError> {
        let now = Instant::now();
        let mut state = lock(&self.state);
        let must_check = state
            .checked_at
            .is_none_or(|t| now.duration_since(t) >= self.config.version_poll);
        if must_check {
            let version = self.gallery_version()?;
            state.checked_at = Some(now);
            if state.version != Some(version) {
                self.reload(&mut state, version, now)?;
            }
        }
        Ok(Arc::clone(&state.gallery))
    }

    fn gallery_version(&self) -> Result<u64, RecognizerError> {
        self.counters.version_checks.fetch_add(1, Ordering::Relaxed);
        Ok(self.directory.gallery_version()?)
    }

    /// Load the gallery of directory version `version` (read just before: a change during the
    /// load is seen at the next check).
    fn reload(
        &self,
        state: &mut GalleryState,
        version: u64,
        now: Instant,
    ) -> Result<(), RecognizerError> {
        let gallery = load_gallery(self.directory.as_ref(), self.config.threshold)?;
        tracing::info!(
            people = gallery.len(),
            threshold = gallery.threshold(),
            version,
            "gallery loaded"
        );
        state.gallery = Arc::new(gallery);
        state.version = Some(version);
        state.checked_at = Some(now);
        state.records.clear();
        self.counters.gallery_loads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Directory records of the people seen, fetched by id (cached until the next reload).
    fn people(&self, analysis: &ClipAnalysis) -> Result<Vec<RecognizedPerson>, RecognizerError> {
        let mut people = Vec::with_capacity(analysis.people.len());
        for sighting in &analysis.people {
            let cached = lock(&self.state).records.get(&sighting.person_id).cloned();
            let record = match cached {
                Some(record) => record,
                None => {
                    let record = match self.directory.person(&sighting.person_id)? {
                        Some(record) => record,
                        // Removed since the gallery was loaded: still name them.
                        None => PersonRecord {
                            person_id: sighting.person_id.clone(),
                            name: default_display_name(&sighting.person_id),
                            details: Default::default(),
                            enrolled_at: None,
                            image_count: 0,
                        },
                    };
                    lock(&self.state)
                        .records
                        .insert(sighting.person_id.clone(), record.clone());
                    record
                }
            };
            people.push(RecognizedPerson {
                person_id: record.person_id,
                name: record.name,
                details: record.details,
                similarity: sighting.best_similarity,
                bbox: PixelBox {
                    x1: sighting.bbox.x1,
                    y1: sighting.bbox.y1,
                    x2: sighting.bbox.x2,
                    y2: sighting.bbox.y2,
                },
                frame: sighting.frame_index,
            });
        }
        Ok(people)
    }
}

/// Log an outcome that is not a published result.
fn log_outcome(key: &str, outcome: &ClipOutcome) {
    match outcome {
        ClipOutcome::Published(_) => {}
        ClipOutcome::Retry(reason) => {
            tracing::warn!(%key, %reason, "result not published: the event will be delivered again")
        }
        ClipOutcome::Dropped(reason) => {
            tracing::error!(%key, %reason, "result can never be published: event given up")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish_error(source: QueueError) -> HandlerError {
        HandlerError::Publish {
            clip_id: "cam/s1/00000001".into(),
            source,
        }
    }

    #[test]
    fn one_retry_or_drop_decision() {
        let clip = parse_clip_key("clips/cam/s1/00000001.h264").unwrap();
        let result = RecognitionResult::empty_for(&ClipMeta::for_key(&clip));
        match ClipOutcome::of(Ok(result.clone())) {
            ClipOutcome::Published(published) => assert_eq!(*published, result),
            other => panic!("{other:?}"),
        }
        // A queue that may answer later (unreachable, closed while shutting down): deliver the
        // event again.
        for source in [
            QueueError::Backend {
                device_id: "cam".into(),
                backend: "sqs",
                message: "connection refused".into(),
                retryable: true,
            },
            QueueError::Closed {
                device_id: "cam".into(),
            },
        ] {
            let outcome = ClipOutcome::of(Err(publish_error(source)));
            assert!(outcome.is_retry(), "{outcome:?}");
        }
        // A refusal that will not change (access denied), a result that cannot be serialised:
        // another delivery fails the same way, so give up at once (the message goes to the DLQ,
        // where it can be redriven once the cause is fixed).
        for source in [
            QueueError::Backend {
                device_id: "cam".into(),
                backend: "sqs",
                message: "AccessDenied: not authorized to sqs:SendMessage".into(),
                retryable: false,
            },
            QueueError::Format {
                device_id: "cam".into(),
                message: "float is not finite".into(),
            },
        ] {
            let outcome = ClipOutcome::of(Err(publish_error(source)));
            assert!(
                matches!(&outcome, ClipOutcome::Dropped(reason) if reason.contains("cam")),
                "{outcome:?}"
            );
        }
        // A device id that cannot name a queue, a key naming no device: never, so give up.
        let invalid = ClipOutcome::of(Err(publish_error(QueueError::InvalidDevice {
            device_id: "a b".into(),
            reason: "space",
        })));
        assert!(
            matches!(&invalid, ClipOutcome::Dropped(reason) if reason.contains("\"a b\"")),
            "{invalid:?}"
        );
        let refused = parse_clip_key("../etc/passwd").unwrap_err();
        let unroutable = ClipOutcome::of(Err(HandlerError::Unroutable { refused }));
        assert!(
            matches!(&unroutable, ClipOutcome::Dropped(reason)
                if reason.contains("../etc/passwd") && reason.contains("nobody can be told")),
            "{unroutable:?}"
        );
        assert!(!unroutable.is_retry());
    }
}
