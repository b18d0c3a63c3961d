//! A capture session: source -> segmenter -> spool -> uploader -> sink, and the results coming
//! back through a result queue, with counters and latency.
//!
//! [`run_session`] opens the device's durable spool (clips left there by earlier runs of the
//! device are sent first and their answers counted in [`SessionReport::earlier`]), captures on
//! the calling thread until the source ends, the duration limit is reached or the stop flag is
//! raised; then it closes the last clip and waits for the answers
//! ([`crate::drain::wait_for_answers`]): until every clip is answered, or nothing moved (no
//! upload, no result) for [`SessionConfig::grace`].
//!
//! Every captured clip ends the session in one of three states: **answered** (a result, errors
//! included), **spooled** (still on disk in the spool, not uploaded or not answered yet: the
//! next run of the device or `spool drain` sends it again) or **lost** (gone without a result:
//! evicted from a full spool before upload, larger than the spool, unreadable, not writable to
//! the spool), named in [`SessionReport::lost_clip_ids`].
//!
//! The sink and the queue are the deployment's: a [`LocalDirSink`](crate::upload::LocalDirSink)
//! over the embedded store and the in-process queue, or S3 and SQS. The queue's futures run on
//! the Tokio runtime handle given to [`run_session`]. Outages of either show in
//! [`SessionSnapshot::link`] while they last and in [`SessionReport::link`] afterwards.

#![warn(missing_docs)]

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rollcall_protocol::results::ResultQueue;
use serde::{Deserialize, Serialize};

use crate::drain::{wait_for_answers, Courier};
use crate::latency::{LatencyRecorder, Stage};
use crate::link::{LinkHealth, LinkStatus};
use crate::receive::{record_result_latency, Answer, ReceivedResult};
use crate::replay::{ClipReplay, RecordedClips};
use crate::segment::{ClipSegmenter, EncodedClip, SegmentConfig, DEFAULT_CLIP_MS};
use crate::source::{
    open_source, FrameSource, Outage, OutageLog, SourceLink, SourceOptions, SourceSpec,
};
use crate::spool::{ClipSpool, DEFAULT_SPOOL_MAX_BYTES};
use crate::upload::{ClipSink, UploaderConfig};

/// How a session runs.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Where frames come from.
    pub source: SourceSpec,
    /// Size, rate, pacing of the source.
    pub source_options: SourceOptions,
    /// This edge device's id (names its clips, its spool folder and its result queue).
    pub device_id: String,
    /// This session's id.
    pub session_id: String,
    /// Clip length in milliseconds (default 500).
    pub clip_ms: u32,
    /// The encoder's bit rate in bits per second; `None` (default): by frame size
    /// ([`default_bitrate_bps`](crate::segment::default_bitrate_bps)).
    pub bitrate_bps: Option<u32>,
    /// Stop capturing after this long (default: at the end of the source).
    pub duration: Option<Duration>,
    /// The spool root; the device's clips go to `<spool_root>/<device_id>/`.
    pub spool_root: PathBuf,
    /// The device spool's byte limit (default [`DEFAULT_SPOOL_MAX_BYTES`]).
    pub spool_max_bytes: u64,
    /// Upload workers and retries (uploaded clips always stay in the spool until answered).
    pub uploader: UploaderConfig,
    /// After capture: how long to wait without any upload or result before the session ends,
    /// leaving the unanswered clips in the spool (default 10 s).
    pub grace: Duration,
    /// Long-poll wait of one receive call (default 200 ms).
    pub receive_wait: Duration,
    /// Send these clips again, at camera pace and restamped, instead of capturing from
    /// `source`, looping over them until `duration` or the stop flag (load tests of the
    /// recognition side; see [`crate::replay`]).
    pub replay: Option<Arc<RecordedClips>>,
}

impl SessionConfig {
    /// Defaults for a source, device and session, spooling under `spool_root`.
    pub fn new(
        source: SourceSpec,
        device_id: impl Into<String>,
        session_id: impl Into<String>,
        spool_root: impl Into<PathBuf>,
    ) -> SessionConfig {
        SessionConfig {
            source,
            source_options: SourceOptions::default(),
            device_id: device_id.into(),
            session_id: session_id.into(),
            clip_ms: DEFAULT_CLIP_MS,
            bitrate_bps: None,
            duration: None,
            spool_root: spool_root.into(),
            spool_max_bytes: DEFAULT_SPOOL_MAX_BYTES,
            uploader: UploaderConfig::default(),
            grace: Duration::from_secs(10),
            receive_wait: Duration::from_millis(200),
            replay: None,
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
    /// Captured clips gone without a result (see the [module docs](self)); known at the end.
    pub lost: u64,
    /// Captured clips still in the spool without a result at the end: not lost, sent again
    /// by the next run or `spool drain`.
    #[serde(default)]
    pub spooled: u64,
}

/// Clips that earlier runs of the device left in the spool, as this session handled them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierClips {
    /// Clips found in the spool at the start.
    pub recovered: u64,
    /// Of those, uploaded by this session.
    pub uploaded: u64,
    /// Of those, answered (errors included).
    pub results: u64,
    /// Answers with `error` set.
    pub errors: u64,
    /// Still in the spool at the end.
    pub spooled: u64,
    /// Gone without a result (evicted from a full spool, unreadable).
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
    /// When the first clip they were seen in closed, ns since the Unix epoch.
    pub first_seen_ns: u64,
    /// When the last clip they were seen in closed, ns since the Unix epoch.
    pub last_seen_ns: u64,
    /// Their record from the people directory (`student_id`, `programme`, ...), as last sent.
    #[serde(default)]
    pub details: BTreeMap<String, String>,
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
    /// Clips the spool dropped (evicted unsent, too large, unreadable), this session's and
    /// earlier ones'.
    pub spool_dropped: u64,
    /// Ids (`device/session/seq`) of the lost clips, this session's first, then earlier
    /// sessions'.
    pub lost_clip_ids: Vec<String>,
    /// Clips of earlier runs found in the spool and what became of them.
    pub earlier: EarlierClips,
    /// Store and queue outages and upload retries.
    pub link: LinkStatus,
    /// Most clips waiting for upload at once.
    pub peak_spooled: u64,
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
    /// Clips waiting in the spool for upload (earlier runs' included).
    pub spooled: u64,
    /// Uploaded clips in the spool awaiting their result.
    pub awaiting: u64,
    /// Is the store or the queue unreachable, since when; retries so far.
    pub link: LinkStatus,
    /// Clips of earlier runs so far.
    pub earlier: EarlierClips,
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
        let spool = s
            .spool
            .as_ref()
            .map(|spool| spool.stats())
            .unwrap_or_default();
        SessionSnapshot {
            clips: s.clips,
            spooled: spool.unsent as u64,
            awaiting: spool.awaiting as u64,
            link: s.link.as_ref().map(|l| l.status()).unwrap_or_default(),
            earlier: s.earlier,
            outstanding: s.outstanding() as u64,
            people: s.people_ranked(),
            unknown_faces: s.unknown_faces,
            latency: s.latency.clone(),
            capture_done: s.capture_done,
            camera_offline: s.outages.list(),
        }
    }
}

#[derive(Default)]
struct State {
    clips: ClipCounters,
    spool: Option<Arc<ClipSpool>>,
    link: Option<Arc<LinkHealth>>,
    /// Clip ids of earlier runs found in the spool.
    earlier_ids: HashSet<String>,
    earlier_answered: HashSet<String>,
    earlier: EarlierClips,
    captured: HashSet<String>,
    uploaded: HashSet<String>,
    with_result: HashSet<String>,
    people: BTreeMap<String, PersonTally>,
    /// Edge stages (encode, spool wait, upload) and this session's results' stages.
    latency: LatencyRecorder,
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

    fn people_ranked(&self) -> Vec<PersonTally> {
        let mut people: Vec<PersonTally> = self.people.values().cloned().collect();
        people.sort_by(|a, b| b.clips.cmp(&a.clips).then(a.person_id.cmp(&b.person_id)));
        people
    }
}

/// Runs one session; see the [module docs](self). `on_result` is called, on the receiving
/// thread, for every new result of this session (duplicates are dropped before; answers to
/// earlier runs' clips are counted in [`SessionReport::earlier`]). `stop` ends capture early
/// (the session still waits for the answers). `runtime` drives the queue's futures (a
/// multi-thread runtime). `probe` shows the session's progress while it runs (pass
/// `SessionProbe::new()` when nobody watches).
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
    let outages = OutageLog::new();
    let link = SourceLink::new(
        Arc::clone(&stop),
        config.duration.map(|d| Instant::now() + d),
        outages.clone(),
    );
    let mut input = match &config.replay {
        Some(recorded) => {
            ClipInput::Replay(recorded.replay(&config.device_id, &config.session_id)?)
        }
        None => {
            let mut source = open_source(&config.source, &config.source_options)?;
            source.link(link.clone());
            let mut segment =
                SegmentConfig::new(&config.device_id, &config.session_id, source.fps());
            segment.clip_ms = config.clip_ms;
            segment.bitrate_bps = config.bitrate_bps;
            let segmenter = Box::new(ClipSegmenter::new(segment)?);
            ClipInput::Live { source, segmenter }
        }
    };
    let spool = Arc::new(ClipSpool::open(
        &config.spool_root,
        &config.device_id,
        config.spool_max_bytes,
    )?);
    let earlier_ids: HashSet<String> = spool.clips().iter().map(|m| m.clip_id()).collect();
    if !earlier_ids.is_empty() {
        tracing::info!(
            clips = earlier_ids.len(),
            dir = %spool.dir().display(),
            "sending the clips earlier runs left in the spool first"
        );
    }
    let state = Arc::clone(&probe.state);
    *lock(&state) = State {
        spool: Some(Arc::clone(&spool)),
        outages: outages.clone(),
        earlier: EarlierClips {
            recovered: earlier_ids.len() as u64,
            ..EarlierClips::default()
        },
        earlier_ids,
        ..State::default()
    };

    // Uploads, and results: each answer removes its clip from the spool.
    let courier = {
        let upload_state = Arc::clone(&state);
        let state = Arc::clone(&state);
        let session = config.session_id.clone();
        Courier::start(
            &spool,
            sink,
            queue,
            runtime,
            &config.uploader,
            config.receive_wait,
            move |event| {
                let mut s = lock(&upload_state);
                s.latency.record(Stage::SpoolWait, event.spool_wait);
                if event.result.is_ok() {
                    s.latency.record(Stage::Upload, event.last_attempt);
                    let id = event.meta.clip_id();
                    if s.earlier_ids.contains(&id) {
                        s.earlier.uploaded += 1;
                    } else if s.uploaded.insert(id) {
                        s.clips.uploaded += 1;
                    }
                }
            },
            move |answer: Answer<'_>| {
                let got = answer.got;
                let result = &got.result;
                if result.session_id != session {
                    let mut s = lock(&state);
                    if s.earlier_ids.contains(&result.clip_id)
                        && s.earlier_answered.insert(result.clip_id.clone())
                    {
                        s.earlier.results += 1;
                        s.earlier.errors += u64::from(result.error.is_some());
                        tracing::info!(clip = %result.clip_id, error = ?result.error, people = result.people.len(), "answer to a clip of an earlier run");
                    } else {
                        tracing::debug!(clip = %result.clip_id, "result of another session ignored");
                    }
                    return;
                }
                {
                    let mut s = lock(&state);
                    if !s.captured.contains(&result.clip_id) {
                        tracing::debug!(clip = %result.clip_id, "result of a clip this run did not capture ignored");
                        return;
                    }
                    record_result(&mut s, got);
                }
                on_result(got);
            },
        )?
    };
    let health = courier.health();
    lock(&state).link = Some(Arc::clone(&health));

    // Capture (or replay) on this thread.
    let (ended, error) = match &mut input {
        ClipInput::Live { source, segmenter } => capture(
            config,
            &mut **source,
            segmenter,
            &spool,
            &state,
            &stop,
            &link,
        ),
        ClipInput::Replay(replay) => {
            let until = config.duration.map(|d| started + d);
            while let Some(clip) = replay.next_clip(&stop, until) {
                spool_clip(&state, &spool, &clip);
            }
            let ended = if stop.load(Ordering::Relaxed) {
                EndReason::Stopped
            } else {
                EndReason::Duration
            };
            (ended, None)
        }
    };
    let capture_time = started.elapsed();
    lock(&state).capture_done = true;
    tracing::info!(
        ?ended,
        captured = lock(&state).clips.captured,
        "capture finished; waiting for the answers"
    );

    // Answers: until every clip in the spool is answered or nothing moves for `grace`.
    let never = AtomicBool::new(false);
    if !wait_for_answers(&spool, config.grace, &never) {
        let stats = spool.stats();
        tracing::warn!(
            unsent = stats.unsent,
            awaiting = stats.awaiting,
            dir = %spool.dir().display(),
            "session ends with clips in the spool; the next run or `rollcall spool drain` sends them"
        );
    }
    let receiver = courier.stop();

    let mut s = lock(&state);
    // This session's clips without an answer: spooled if still on disk, lost otherwise.
    let mut lost_clip_ids = Vec::new();
    let mut spooled = 0;
    let unanswered: Vec<String> = s
        .captured
        .iter()
        .filter(|id| !s.with_result.contains(*id))
        .cloned()
        .collect();
    for id in unanswered {
        if spooled_clip(&spool, &id) {
            spooled += 1;
        } else {
            lost_clip_ids.push(id);
        }
    }
    lost_clip_ids.sort();
    s.clips.lost = lost_clip_ids.len() as u64;
    s.clips.spooled = spooled;
    // Earlier runs' clips, likewise (a clip evicted at open is lost without being recovered).
    let mut earlier_lost: Vec<String> = s
        .earlier_ids
        .iter()
        .filter(|id| !s.earlier_answered.contains(*id) && !spooled_clip(&spool, id))
        .cloned()
        .collect();
    earlier_lost.extend(
        spool
            .lost_clip_ids()
            .into_iter()
            .filter(|id| !s.captured.contains(id) && !s.earlier_ids.contains(id)),
    );
    earlier_lost.sort();
    s.earlier.spooled = s
        .earlier_ids
        .iter()
        .filter(|id| spooled_clip(&spool, id))
        .count() as u64;
    s.earlier.lost = earlier_lost.len() as u64;
    lost_clip_ids.extend(earlier_lost);
    let people = s.people_ranked();
    let spool_stats = spool.stats();
    // The probe may outlive the session: the device's spool (and its lock) goes now.
    s.spool = None;
    Ok(SessionReport {
        clips: s.clips,
        people,
        latency: s.latency.clone(),
        duplicates: receiver.stats().duplicates,
        unknown_faces: s.unknown_faces,
        spool_dropped: spool_stats.dropped,
        lost_clip_ids,
        earlier: s.earlier,
        link: health.status(),
        peak_spooled: spool_stats.peak_unsent as u64,
        ended,
        error,
        first_result_error: s.first_result_error.clone(),
        capture_time,
        total_time: started.elapsed(),
        source: match &input {
            ClipInput::Live { source, .. } => source.describe(),
            ClipInput::Replay(replay) => replay.describe(),
        },
        camera_offline: outages.list(),
    })
}

/// Whether the clip `device/session/seq` is still in `spool`.
fn spooled_clip(spool: &ClipSpool, clip_id: &str) -> bool {
    let mut parts = clip_id.rsplitn(3, '/');
    let (Some(seq), Some(session)) = (parts.next(), parts.next()) else {
        return false;
    };
    seq.parse().is_ok_and(|seq| spool.contains(session, seq))
}

fn record_result(s: &mut State, got: &ReceivedResult) {
    let result = &got.result;
    if !s.with_result.insert(result.clip_id.clone()) {
        return;
    }
    s.clips.results += 1;
    s.clips.errors += u64::from(result.error.is_some());
    record_result_latency(&mut s.latency, got);
    s.unknown_faces += u64::from(result.unknown_faces);
    if let (None, Some(error)) = (&s.first_result_error, &result.error) {
        s.first_result_error = Some(format!("clip {}: {error}", result.clip_id));
    }
    // The clip's close time is when its faces were in view; a foreign client may omit it.
    let seen_ns = if result.closed_ns > 0 {
        result.closed_ns
    } else {
        got.received_ns
    };
    for person in &result.people {
        let tally = s
            .people
            .entry(person.person_id.clone())
            .or_insert_with(|| PersonTally {
                person_id: person.person_id.clone(),
                name: person.name.clone(),
                clips: 0,
                best_similarity: f32::MIN,
                first_seen_ns: seen_ns,
                last_seen_ns: seen_ns,
                details: BTreeMap::new(),
            });
        tally.clips += 1;
        tally.name = person.name.clone();
        tally.best_similarity = tally.best_similarity.max(person.similarity);
        // Results arrive out of order (retries, parallel workers).
        tally.first_seen_ns = tally.first_seen_ns.min(seen_ns);
        tally.last_seen_ns = tally.last_seen_ns.max(seen_ns);
        if !person.details.is_empty() {
            tally.details = person.details.clone();
        }
    }
}

/// Where a session's clips come from.
enum ClipInput<'a> {
    /// A source's frames, cut and encoded as they arrive.
    Live {
        source: Box<dyn FrameSource>,
        segmenter: Box<ClipSegmenter>,
    },
    /// Recorded clips sent again.
    Replay(ClipReplay<'a>),
}

/// Count a closed clip as captured and keep it in the spool until its answer.
fn spool_clip(state: &Mutex<State>, spool: &ClipSpool, clip: &EncodedClip) {
    let mut s = lock(state);
    s.clips.captured += 1;
    s.captured.insert(clip.meta.clip_id());
    s.latency.record(Stage::Encode, clip.encode);
    drop(s);
    // Evictions are logged by the spool; the lost clips are named in the report.
    if let Err(e) = spool.push(clip) {
        tracing::error!(clip = %clip.meta.clip_id(), error = %e, "clip not spooled: lost");
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
    let spool_clip = |clip: EncodedClip| spool_clip(state, spool, &clip);
    let mut outcome = (EndReason::EndOfSource, None);
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
            Ok(Some(frame)) => match segmenter.push_skipping(frame) {
                Ok(clips) => clips.into_iter().for_each(&spool_clip),
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
    if outcome.1.is_none() {
        outcome.1 = segmenter.skipped().summary();
    }
    match segmenter.finish() {
        Ok(Some(clip)) => spool_clip(clip),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "the last clip could not be encoded"),
    }
    outcome
}
