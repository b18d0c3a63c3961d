//! A capture session: source -> segmenter -> spool -> uploader -> sink, and the results coming
//! back through a result queue, with counters and latency.
//!
//! [`run_session`] captures on the calling thread until the source ends, the duration limit is
//! reached or the stop flag is raised; then it closes the last clip, lets the uploader drain the
//! spool and waits for the outstanding results. A clip is **lost** when it was captured (closed
//! by the segmenter) but no result for it arrived before the session ended: the wait ends when
//! every captured clip has a result, or when no new result came for [`SessionConfig::grace`].
//!
//! The sink and the queue are the deployment's: a [`LocalDirSink`](crate::upload::LocalDirSink)
//! over the embedded store and the in-process queue, or S3 and SQS. The queue's futures run on
//! the Tokio runtime handle given to [`run_session`].

#![warn(missing_docs)]

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rollcall_protocol::results::ResultQueue;
use serde::{Deserialize, Serialize};

use crate::latency::{LatencyRecorder, Stage};
use crate::receive::{ReceivedResult, ResultReceiver};
use crate::segment::{ClipSegmenter, SegmentConfig, DEFAULT_CLIP_MS};
use crate::source::{
    now_ns, open_source, FrameSource, Outage, OutageLog, SourceLink, SourceOptions, SourceSpec,
};
use crate::spool::ClipSpool;
use crate::upload::{ClipSink, Uploader, UploaderConfig};

/// How a session runs.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Where frames come from.
    pub source: SourceSpec,
    /// Size, rate, pacing of the source.
    pub source_options: SourceOptions,
    /// This edge device's id (names its clips and its result queue).
    pub device_id: String,
    /// This session's id.
    pub session_id: String,
    /// Clip length in milliseconds (default 500).
    pub clip_ms: u32,
    /// Stop capturing after this long (default: at the end of the source).
    pub duration: Option<Duration>,
    /// The disk spool's folder.
    pub spool_dir: PathBuf,
    /// The spool's byte limit (default 256 MiB).
    pub spool_max_bytes: u64,
    /// Upload workers and retries.
    pub uploader: UploaderConfig,
    /// After capture: how long to wait without any new result before the outstanding clips are
    /// declared lost (default 10 s).
    pub grace: Duration,
    /// Long-poll wait of one receive call (default 200 ms).
    pub receive_wait: Duration,
}

impl SessionConfig {
    /// Defaults for a source, device and session, spooling into `spool_dir`.
    pub fn new(
        source: SourceSpec,
        device_id: impl Into<String>,
        session_id: impl Into<String>,
        spool_dir: impl Into<PathBuf>,
    ) -> SessionConfig {
        SessionConfig {
            source,
            source_options: SourceOptions::default(),
            device_id: device_id.into(),
            session_id: session_id.into(),
            clip_ms: DEFAULT_CLIP_MS,
            duration: None,
            spool_dir: spool_dir.into(),
            spool_max_bytes: 256 << 20,
            uploader: UploaderConfig::default(),
            grace: Duration::from_secs(10),
            receive_wait: Duration::from_millis(200),
        }
    }
}

/// Clip counters of a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipCounters {
    /// Clips closed by the segmenter.
    pub captured: u64,
    /// Clips stored in the object store.
    pub uploaded: u64,
    /// Clips with a result (errors included).
    pub results: u64,
    /// Results with `error` set.
    pub errors: u64,
    /// Captured clips without a result at the end of the session.
    pub lost: u64,
}

/// One enrolled person seen during a session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersonTally {
    /// Directory id.
    pub person_id: String,
    /// Display name.
    pub name: String,
    /// Clips in which they were recognised.
    pub clips: u64,
    /// Highest similarity over those clips.
    pub best_similarity: f32,
}

/// Why capture stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The source had no more frames.
    EndOfSource,
    /// [`SessionConfig::duration`] was reached.
    Duration,
    /// The stop flag was raised.
    Stopped,
    /// Capture failed (see [`SessionReport::error`]).
    Failed,
}

/// Everything a session measured.
#[derive(Clone, Debug)]
pub struct SessionReport {
    /// Clip counters.
    pub clips: ClipCounters,
    /// People seen, most clips first.
    pub people: Vec<PersonTally>,
    /// Edge stages (encode, spool wait, upload) and the received results' stages and
    /// end-to-end latency.
    pub latency: LatencyRecorder,
    /// Duplicate results dropped.
    pub duplicates: u64,
    /// Unknown faces, summed over results.
    pub unknown_faces: u64,
    /// Clips dropped by the spool (evicted or too large); they count as lost.
    pub spool_dropped: u64,
    /// Why capture stopped.
    pub ended: EndReason,
    /// The capture or encoding failure that ended the session, or frames that could not be
    /// encoded and were skipped (with the first reason), if any.
    pub error: Option<String>,
    /// The first error a result reported (the function could not recognise a clip), with the
    /// number of results that reported one in [`ClipCounters::errors`].
    pub first_result_error: Option<String>,
    /// Wall time of capture.
    pub capture_time: Duration,
    /// Wall time of the whole session (capture + drain).
    pub total_time: Duration,
    /// The source, as described by itself.
    pub source: String,
    /// When a network camera was offline (oldest first).
    pub camera_offline: Vec<Outage>,
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The source cannot be opened.
    #[error(transparent)]
    Source(#[from] crate::source::CaptureError),
    /// The segmenter refused the configuration.
    #[error(transparent)]
    Segment(#[from] crate::segment::SegmentError),
    /// The spool cannot be opened.
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    /// A thread could not be started.
    #[error("cannot start a session thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A live view of a running session, for a console or a progress line: create one, pass it to
/// [`run_session`], read [`SessionProbe::snapshot`] from any thread while the session runs.
#[derive(Clone, Default)]
pub struct SessionProbe {
    state: Arc<Mutex<State>>,
}

/// What a session has done so far.
#[derive(Clone, Debug, Default)]
pub struct SessionSnapshot {
    /// Clip counters (`lost` is only known at the end).
    pub clips: ClipCounters,
    /// Clips waiting in the spool for upload.
    pub spooled: u64,
    /// Clips captured but without a result yet.
    pub outstanding: u64,
    /// People seen so far, most clips first.
    pub people: Vec<PersonTally>,
    /// Unknown faces so far.
    pub unknown_faces: u64,
    /// Edge stages and the results' stages and end-to-end latency so far.
    pub latency: LatencyRecorder,
    /// Capture has ended; the session is draining.
    pub capture_done: bool,
    /// When a network camera was offline so far (the last one may still be open).
    pub camera_offline: Vec<Outage>,
}

impl SessionProbe {
    /// A probe for a session that has not started.
    pub fn new() -> SessionProbe {
        SessionProbe::default()
    }

    /// When the camera was offline so far (cheaper than a whole snapshot).
    pub fn camera_offline(&self) -> Vec<Outage> {
        lock(&self.state).outages.list()
    }

    /// The session's counters, people and latency now.
    pub fn snapshot(&self) -> SessionSnapshot {
        let s = lock(&self.state);
        SessionSnapshot {
            clips: s.clips,
            spooled: s.spool.as_ref().map_or(0, |spool| spool.len() as u64),
            outstanding: s.outstanding() as u64,
            people: s.people_ranked(),
            unknown_faces: s.unknown_faces,
            latency: s.all_latency(),
            capture_done: s.capture_done,
            camera_offline: s.outages.list(),
        }
    }
}

#[derive(Default)]
struct State {
    clips: ClipCounters,
    spool: Option<Arc<ClipSpool>>,
    captured: HashSet<String>,
    uploaded: HashSet<String>,
    with_result: HashSet<String>,
    people: BTreeMap<String, PersonTally>,
    /// Edge stages (encode, spool wait, upload).
    latency: LatencyRecorder,
    /// The receiver's stages (function, delivery, end to end), as of its last result.
    received_latency: LatencyRecorder,
    unknown_faces: u64,
    capture_done: bool,
    first_result_error: Option<String>,
    outages: OutageLog,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    fn outstanding(&self) -> usize {
        self.captured
            .iter()
            .filter(|id| !self.with_result.contains(*id))
            .count()
    }

    fn all_latency(&self) -> LatencyRecorder {
        let mut all = self.latency.clone();
        all.merge(&self.received_latency);
        all
    }

    fn people_ranked(&self) -> Vec<PersonTally> {
        let mut people: Vec<PersonTally> = self.people.values().cloned().collect();
        people.sort_by(|a, b| b.clips.cmp(&a.clips).then(a.person_id.cmp(&b.person_id)));
        people
    }
}

/// Runs one session; see the [module docs](self). `on_result` is called, on the receiving
/// thread, for every new result (duplicates are dropped before). `stop` ends capture early
/// (the session still drains). `runtime` drives the queue's futures (a multi-thread runtime).
/// `probe` shows the session's progress while it runs (pass `SessionProbe::new()` when nobody
/// watches).
#[allow(clippy::too_many_arguments)]
pub fn run_session<Q>(
    config: &SessionConfig,
    sink: Arc<dyn ClipSink>,
    queue: Arc<Q>,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
    probe: &SessionProbe,
    mut on_result: impl FnMut(&ReceivedResult) + Send + 'static,
) -> Result<SessionReport, SessionError>
where
    Q: ResultQueue + 'static,
{
    let started = Instant::now();
    let mut source = open_source(&config.source, &config.source_options)?;
    let outages = OutageLog::new();
    let link = SourceLink::new(
        Arc::clone(&stop),
        config.duration.map(|d| Instant::now() + d),
        outages.clone(),
    );
    source.link(link.clone());
    let mut segment = SegmentConfig::new(&config.device_id, &config.session_id, source.fps());
    segment.clip_ms = config.clip_ms;
    let mut segmenter = ClipSegmenter::new(segment)?;
    let spool = Arc::new(ClipSpool::open(&config.spool_dir, config.spool_max_bytes)?);
    let state = Arc::clone(&probe.state);
    *lock(&state) = State {
        spool: Some(Arc::clone(&spool)),
        outages: outages.clone(),
        ..State::default()
    };

    // Uploads.
    let uploader = {
        let state = Arc::clone(&state);
        Uploader::start(
            Arc::clone(&spool),
            sink,
            config.uploader.clone(),
            move |event| {
                let mut s = lock(&state);
                s.latency.record(Stage::SpoolWait, event.spool_wait);
                if event.result.is_ok() {
                    s.latency.record(Stage::Upload, event.last_attempt);
                    if s.uploaded.insert(event.meta.clip_id()) {
                        s.clips.uploaded += 1;
                    }
                }
            },
        )?
    };

    // Results: a thread long-polling the queue until told to stop.
    let receiving = Arc::new(AtomicBool::new(true));
    let receiver = {
        let state = Arc::clone(&state);
        let receiving = Arc::clone(&receiving);
        let device = config.device_id.clone();
        let session = config.session_id.clone();
        let wait = config.receive_wait;
        std::thread::Builder::new()
            .name("results".into())
            .spawn(move || {
                let mut receiver = ResultReceiver::new(device.clone());
                while receiving.load(Ordering::Acquire) {
                    let deliveries = match runtime.block_on(queue.receive(&device, 64, wait)) {
                        Ok(d) => d,
                        Err(e) => {
                            tracing::warn!(error = %e, "receiving results failed; retrying");
                            std::thread::sleep(Duration::from_millis(200));
                            continue;
                        }
                    };
                    if deliveries.is_empty() {
                        continue;
                    }
                    let received_ns = now_ns();
                    let receipts: Vec<String> =
                        deliveries.iter().filter_map(|d| d.receipt.clone()).collect();
                    if !receipts.is_empty() {
                        if let Err(e) = runtime.block_on(queue.ack(&device, &receipts)) {
                            tracing::warn!(error = %e, "acknowledging results failed");
                        }
                    }
                    for delivery in deliveries {
                        if delivery.result.session_id != session {
                            tracing::debug!(clip = %delivery.result.clip_id, "result of another session ignored");
                            continue;
                        }
                        let Some(got) = receiver.accept(delivery.result, received_ns) else {
                            continue;
                        };
                        {
                            let mut s = lock(&state);
                            record_result(&mut s, &got);
                            s.clips.results = receiver.stats().accepted;
                            s.clips.errors = receiver.stats().errors;
                            s.received_latency = receiver.latency().clone();
                        }
                        on_result(&got);
                    }
                }
                receiver
            })?
    };

    // Capture on this thread.
    let (ended, error) = capture(
        config,
        &mut *source,
        &mut segmenter,
        &spool,
        &state,
        &stop,
        &link,
    );
    let capture_time = started.elapsed();
    lock(&state).capture_done = true;
    tracing::info!(
        ?ended,
        captured = lock(&state).clips.captured,
        "capture finished; draining"
    );

    // Drain: uploads, then results until all are in or none came for `grace`.
    let uploaded_all = uploader.finish(config.grace.max(Duration::from_secs(1)));
    if !uploaded_all {
        tracing::warn!(left = spool.len(), "uploads did not finish in time");
    }
    let mut last_progress = (Instant::now(), lock(&state).with_result.len());
    loop {
        let (outstanding, with_result) = {
            let s = lock(&state);
            (s.outstanding(), s.with_result.len())
        };
        if outstanding == 0 {
            break;
        }
        if with_result != last_progress.1 {
            last_progress = (Instant::now(), with_result);
        } else if last_progress.0.elapsed() >= config.grace {
            tracing::warn!(
                outstanding,
                "no result for the remaining clips within the grace period"
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    receiving.store(false, Ordering::Release);
    let receiver = receiver.join().unwrap_or_else(|_| {
        tracing::error!("the result thread panicked");
        ResultReceiver::new(config.device_id.clone())
    });

    let mut s = lock(&state);
    s.clips.lost = s.outstanding() as u64;
    s.received_latency = receiver.latency().clone();
    let people = s.people_ranked();
    Ok(SessionReport {
        clips: s.clips,
        people,
        latency: s.all_latency(),
        duplicates: receiver.stats().duplicates,
        unknown_faces: s.unknown_faces,
        spool_dropped: spool.stats().dropped,
        ended,
        error,
        first_result_error: s.first_result_error.clone(),
        capture_time,
        total_time: started.elapsed(),
        source: source.describe(),
        camera_offline: outages.list(),
    })
}

fn record_result(s: &mut State, got: &ReceivedResult) {
    let result = &got.result;
    s.with_result.insert(result.clip_id.clone());
    s.unknown_faces += u64::from(result.unknown_faces);
    if let (None, Some(error)) = (&s.first_result_error, &result.error) {
        s.first_result_error = Some(format!("clip {}: {error}", result.clip_id));
    }
    for person in &result.people {
        let tally = s
            .people
            .entry(person.person_id.clone())
            .or_insert_with(|| PersonTally {
                person_id: person.person_id.clone(),
                name: person.name.clone(),
                clips: 0,
                best_similarity: f32::MIN,
            });
        tally.clips += 1;
        tally.name = person.name.clone();
        tally.best_similarity = tally.best_similarity.max(person.similarity);
    }
}

fn capture(
    config: &SessionConfig,
    source: &mut dyn FrameSource,
    segmenter: &mut ClipSegmenter,
    spool: &ClipSpool,
    state: &Mutex<State>,
    stop: &AtomicBool,
    link: &SourceLink,
) -> (EndReason, Option<String>) {
    let started = Instant::now();
    let spool_clip = |clip: crate::segment::EncodedClip| {
        let mut s = lock(state);
        s.clips.captured += 1;
        s.captured.insert(clip.meta.clip_id());
        s.latency.record(Stage::Encode, clip.encode);
        drop(s);
        match spool.push(&clip) {
            Ok(outcome) => {
                for evicted in outcome.evicted {
                    tracing::warn!(clip = %evicted.clip_id(), "spool full: clip evicted before upload");
                }
            }
            Err(e) => tracing::error!(clip = %clip.meta.clip_id(), error = %e, "clip not spooled"),
        }
    };
    let mut outcome = (EndReason::EndOfSource, None);
    // Frames the encoder cannot take (e.g. a source larger than it accepts) are skipped: one
    // warning with the reason, not one per frame, and the report says how many.
    let mut skipped_frames = 0u64;
    let mut first_skip: Option<String> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            outcome = (EndReason::Stopped, None);
            break;
        }
        if config.duration.is_some_and(|d| started.elapsed() >= d) {
            outcome = (EndReason::Duration, None);
            break;
        }
        match source.next_frame() {
            Ok(Some(frame)) => match segmenter.push(frame) {
                Ok(clips) => clips.into_iter().for_each(&spool_clip),
                Err(e @ crate::segment::SegmentError::BadFrame { .. }) => {
                    skipped_frames += 1;
                    if first_skip.is_none() {
                        tracing::warn!(
                            "frames skipped: {e} (further frames skipped for this reason are \
                             only counted)"
                        );
                        first_skip = Some(e.to_string());
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "encoding failed; clip abandoned");
                }
            },
            Ok(None) => {
                // A source that was waiting (a camera reconnecting) ends when told to stop.
                if stop.load(Ordering::Relaxed) {
                    outcome = (EndReason::Stopped, None);
                } else if link.interrupted() {
                    outcome = (EndReason::Duration, None);
                }
                break;
            }
            Err(e) => {
                tracing::error!(error = %e, "capture failed");
                outcome = (EndReason::Failed, Some(e.to_string()));
                break;
            }
        }
    }
    if let (Some(first), None) = (&first_skip, &outcome.1) {
        outcome.1 = Some(format!(
            "{skipped_frames} frame(s) could not be encoded and were skipped; the first: {first}"
        ));
    }
    match segmenter.finish() {
        Ok(Some(clip)) => spool_clip(clip),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "the last clip could not be encoded"),
    }
    outcome
}
