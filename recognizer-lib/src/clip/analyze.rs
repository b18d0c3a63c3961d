//! Per-clip analysis: decode, run the face pipeline on the sampled frames, identify every face and
//! aggregate the answers into one [`ClipAnalysis`] per clip.
//!
//! # Detector
//!
//! Frames larger than [`SMALL_FRAME`] (640x480) are searched by YuNet + O-Net
//! ([`DetectorKind::Yunet`]), which sees the frame at its own resolution: the ~30 px faces of a
//! lecture hall's back rows in a 720p frame are found. The fast detector
//! ([`DetectorKind::Fast`], UltraFace + O-Net) sees every frame at 320x240: in a 1280x720 frame
//! it loses most faces under ~50 px. Up to 640x480 a face shrinks at most 2x there and the fast
//! detector loses only faces under ~24 px, at about half of YuNet's cost per frame, so small
//! frames keep it ([`ClipAnalyzer::small_frame_detector`]; [`ClipAnalyzer::with_detector`]
//! uses one detector for every frame, e.g. YuNet for a 640x360 camera over a large room). On
//! faces of the public set pasted into frames (docs/accuracy.md): at 640x360 YuNet found 96 %
//! of 20 px faces and the fast detector 54 % (84 % at 24 px); at 1280x720, 91 % and 4 %.
//! Without YuNet's model the fast detector takes every frame, without either MTCNN does.
//! Photos (enrolment, `rollcall eval`) keep MTCNN.
//!
//! # Faces followed after a clip's first frame
//!
//! Only a clip's first analysed frame is searched whole by YuNet (or MTCNN); each later analysed
//! frame looks for the faces of the one before it, by O-Net around their boxes
//! ([`FacePipeline::follow`]: scored, regressed to where the face is now, new landmarks). On
//! the lecture-hall frame (1280x720, 28 faces) following costs 7.5 ms against 35 ms for YuNet
//! and O-Net (`benches/clip.rs`, `crowd_frame/*`); the hall clip's detection fell from 93 to
//! 66 ms, every one of its 28 faces was followed, and the hall's 2 s scan names the same 20 of
//! 20 people (docs/benchmarks.md).
//! What it gives up: a face that appears after the clip's first analysed frame (someone walking
//! in, or turning to the camera) is found in the stream's next clip, up to 0.5 s later instead
//! of ~0.27 s; a face that moves far between two analysed frames (O-Net's box regression
//! corrects shifts of a fraction of the face's width) can be lost for the rest of the clip,
//! though the clip still names it from its first frame. The fast detector (frames of at most
//! [`SMALL_FRAME`]) costs about as much as following, so its frames are all searched whole
//! ([`ClipAnalyzer::follows_faces`]; [`ClipAnalyzer::with_follow_faces`] turns it off).
//!
//! A frame in which nothing was found is searched again on a copy padded with its edge pixels
//! (for a face that fills the picture and is cut by its border) only up to [`SMALL_FRAME`]
//! ([`ClipAnalyzer::retries_padded`]). Measured on 2 minutes of a 1080p session (240 clips,
//! two workers): without the retry on large frames the 90th percentile of detection fell from
//! 890 to 393 ms per clip and the peak memory by ~40 MB; the same 116 clips named the enrolled
//! person, and 10 clips had one unknown face fewer (faces cut by the border, which only the
//! padded copy showed whole enough to detect).
//!
//! # Crowds: a frame's faces embedded together
//!
//! The faces of a sampled frame that need an embedding are aligned and embedded together
//! ([`FacePipeline::embed_faces`]: up to [`MAX_EMBED_BATCH`](crate::vision::MAX_EMBED_BATCH)
//! faces per ONNX Runtime run, one since runs of one measured cheapest). The analyzer counts
//! its clips in flight (clones included): a clip may use the cores the others leave idle, for
//! its crowd's embeddings (spread over idle embedder sessions,
//! [`FaceEmbedder::embed_batch_on`](crate::vision::FaceEmbedder::embed_batch_on)) and for
//! decoding one sampled frame ahead on a thread of its own ([`decode_clip_beside`]).
//! When every core analyses a clip, each clip runs on its own thread alone.
//!
//! # Identities carried between sampled frames
//!
//! Embedding (landmarks, alignment, `fr_feature`) costs ~6 ms per face, more than detection. Within one clip (0.5 s) a face seldom
//! moves far between two sampled frames, so a face whose box overlaps (IoU at least
//! [`ReusePolicy::min_iou`], 0.3 by default) the box of a face of the previous sampled frame that
//! was **named** takes over that identity without being embedded again: it counts as a sighting
//! of the same person in this frame (`frames_seen`), with the similarity measured when it was
//! embedded (so within a clip `best_similarity`, `frame_index` and `bbox` describe a face that
//! was actually embedded; a person only carried into a clip from the previous one, below, gets
//! this clip's box and frame with the last measured similarity). Within a clip every name is
//! handed on: a clip names everyone named in any of its analysed frames, so a second look at a
//! face named in this clip could only change its best similarity, or give it a second name
//! (measured on the lecture-hall clip: 4 fewer embeddings per clip, the same people named).
//! Faces that came out unknown but were small or close to the threshold are embedded again in
//! every sampled frame, so borderline faces collect more evidence.
//!
//! A **clear stranger** hands "unknown" on as well: a face whose box's shorter side is at
//! least [`ReusePolicy::stranger_min_side`] (56 px, half the embedder's 112 px input) and
//! whose closest enrolled person scored at least [`ReusePolicy::stranger_margin`] (0.15)
//! below the threshold. Small faces are not carried: in the lecture-hall test (1280x720, back
//! row ~20x28 px boxes) a face of someone enrolled that scored 0.15 below the threshold in one
//! look scored above it in another, and carrying those "unknown"s named 17 of 20 people
//! instead of 20. A stranger is carried across at most [`ReusePolicy::stranger_across_clips`]
//! (1) clip boundary, fewer than a name: someone who walks in looking away is embedded again,
//! and named, within a second of turning to the camera.
//! Each face of the previous frame is taken over by at most one face (the best-overlapping one);
//! the carried identity moves with the face, so a face tracked through three sampled frames is
//! embedded once. `ClipAnalyzer::reuse = None` embeds every face.
//!
//! Sampled frames are up to ~0.27 s apart at 30 fps (frames 0 and 8 of a 0.5 s clip), and a head turning or walking can move a third of
//! its width in that time (IoU 0.31 between frames 0 and 7 of the clip `benches/clip.rs` times).
//! Hence 0.3: at 0.5 that face is embedded twice; on the 14 clips of `tests/clip_analysis.rs`,
//! 0.3 embedded 38 instead of 43 of 54 faces and named the same people (measured when three
//! frames per clip were sampled). Two different faces
//! seldom overlap that much.
//!
//! # ... and between the clips of a stream
//!
//! A camera's clips follow each other: the first analysed frame of clip `n + 1` is about as far
//! from the last analysed frame of clip `n` (frame 8 of 15, then frame 0 of the next) as two
//! sampled frames of one clip are. So the analyzer keeps the last analysed frame of each stream
//! ([`StreamTails`], keyed by the clip id's `device/session`) and, when the same analyzer gets
//! clip `n + 1` of that stream within [`STREAM_TAIL_TTL`], starts from those faces as if they
//! were its previous frame: the same pairing, but only a **confident** name crosses the
//! boundary: named with a similarity at least [`ReusePolicy::uncertain_margin`] (0.05) above
//! the threshold; a name closer to it is measured again in every clip. An identity is handed
//! across at most [`ReusePolicy::across_clips`] (3) clip boundaries; then the face is embedded
//! again, so every person is measured at least every 2 s and a clip never names someone from a
//! measurement older than that. Faces new to the stream start part-way through that budget
//! (`ReusePolicy::head_start`: the n-th new face of a frame by n mod 4 clips), so a crowd that
//! comes into view at once is measured again a quarter at a time instead of all in every fourth
//! clip (the still lecture hall, 8 clips: 37 faces embedded in every fourth clip and 22 in the
//! others before, 24-27 in each clip after the first since). A clip that arrives out of order,
//! after a gap in the sequence, with another frame size, or at another function instance
//! (Lambda) is analysed on its own, as before. A carried name is dropped (the face embedded)
//! once the gallery no longer names that person: removed from the directory, or consent
//! withdrawn.
//! [`ClipAnalysis::faces_embedded`] counts the faces actually embedded.
//!
//! # Distinct strangers
//!
//! The same pairing (greedy by IoU, at least `min_iou`) follows every face, known or not,
//! through the clip's analysed frames: a *track*. [`ClipAnalysis::unknown_faces`] counts the
//! tracks none of whose faces was named, so a stranger in every analysed frame counts once,
//! and an enrolled person named in one frame and missed in another is not a stranger. A
//! stranger who moves more than about a third of their face's width between analysed frames,
//! or is hidden in one of them, starts a new track and counts twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::decode::{decode_clip_beside, ClipLimits, DecodedFrame};
use super::sample::{effective_fps, SamplePolicy};
use super::ClipError;
use crate::vision::ultraface::iou;
use crate::vision::{Candidate, Detection, DetectorKind, FaceBox, FacePipeline, Gallery, Identity};
use rollcall_protocol::wire::{ClipMeta, CLIP_CODEC_H264_ANNEXB};

/// Analyses clips with a shared face pipeline. `Send + Sync`: one analyzer can serve many threads
/// (each call decodes with its own decoder; concurrency inside the models is bounded by the
/// pipeline's sessions).
///
/// ```no_run
/// use std::sync::Arc;
/// use rollcall_models::ModelCache;
/// use rollcall_recognizer::clip::{ClipAnalyzer, SamplePolicy};
/// use rollcall_recognizer::directory::sqlite::SqliteDirectory;
/// use rollcall_recognizer::enrollment::load_gallery;
/// use rollcall_recognizer::vision::{FacePipeline, PipelineOptions};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pipeline = FacePipeline::load(&ModelCache::from_env()?, PipelineOptions::default())?;
/// let gallery = load_gallery(&SqliteDirectory::open("people.sqlite")?, None)?;
/// // Fast detector when fr_detect.onnx is in the cache; every 2nd frame.
/// let analyzer = ClipAnalyzer::new(Arc::new(pipeline)).with_policy("every:2".parse()?);
/// let bytes = std::fs::read("clip.h264")?;
/// let analysis = analyzer.analyze("cam1/session/00000007", None, &bytes, &gallery)?;
/// for person in &analysis.people {
///     println!("{} {:.3}", person.person_id, person.best_similarity);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ClipAnalyzer {
    /// Detection, alignment, embedding.
    pub pipeline: Arc<FacePipeline>,
    /// Which decoded frames are analysed.
    pub policy: SamplePolicy,
    /// Size and frame-count bounds.
    pub limits: ClipLimits,
    /// Face detector for the sampled frames ([`ClipAnalyzer::new`] picks YuNet when the
    /// pipeline has it), except small ones when `small_frame_detector` is set.
    pub detector: DetectorKind,
    /// Detector for frames of at most [`SMALL_FRAME`] (either orientation), where the fast
    /// detector loses only faces under ~24 px and costs half of YuNet ([`ClipAnalyzer::new`]
    /// sets `Fast` when the pipeline has both; see the [module documentation](self)). `None`:
    /// `detector` for every frame.
    pub small_frame_detector: Option<DetectorKind>,
    /// Whether the analysed frames after a clip's first find the faces of the previous analysed
    /// frame again by O-Net around their boxes ([`FacePipeline::follow`]) instead of searching
    /// the whole frame, where the search is YuNet or MTCNN (see [`Self::follows_faces`] and the
    /// [module documentation](self)). Each clip's first analysed frame is searched whole.
    pub follow_faces: bool,
    /// When a face takes over the identity of the face it overlaps in the previous sampled frame
    /// instead of being embedded (see the [module documentation](self)); `None`: embed every face.
    pub reuse: Option<ReusePolicy>,
    /// The last analysed frame of each stream's latest clip, for [`ReusePolicy::across_clips`].
    pub tails: Arc<StreamTails>,
    /// Clips being analysed right now by this analyzer and its clones: a crowd's faces are
    /// embedded on the cores the other clips leave idle (see [`Self::spare_threads`]).
    in_flight: Arc<AtomicUsize>,
}

/// Largest frame (longer side, shorter side) for [`ClipAnalyzer::small_frame_detector`]: the
/// fast detector sees frames at 320x240, so up to 640x480 a face shrinks at most 2x.
pub const SMALL_FRAME: (u32, u32) = (640, 480);

/// Whether a frame of `width` x `height` is at most [`SMALL_FRAME`], in either orientation.
fn is_small_frame(width: u32, height: u32) -> bool {
    let (long, short) = (width.max(height), width.min(height));
    long <= SMALL_FRAME.0 && short <= SMALL_FRAME.1
}

/// When a face of a sampled frame reuses the identity of a face of the previous sampled frame
/// instead of being embedded again.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReusePolicy {
    /// Smallest box IoU between the two faces.
    pub min_iou: f32,
    /// To hand a name across a clip boundary, the earlier face must have been named with a
    /// similarity at least this far above the threshold; names closer to the threshold are
    /// measured again in every clip (within a clip every name is handed on).
    pub uncertain_margin: f32,
    /// Also hand on "unknown" from a face of at least [`stranger_min_side`](Self::stranger_min_side)
    /// that matched nobody by at least this margin (its closest similarity at or below the
    /// threshold minus this); `None`: unknown faces are embedded again in every analysed frame.
    #[serde(default = "default_stranger_margin")]
    pub stranger_margin: Option<f32>,
    /// Smallest face (shorter side of its box, pixels) whose "unknown" is handed on. Smaller
    /// faces are embedded again in every analysed frame: the embedder upscales them more than
    /// 2x to its 112 px input, and a 30 px face of someone enrolled that scores 0.15 below the
    /// threshold in one look can score above it in the next (see the [module documentation](self)).
    #[serde(default = "default_stranger_min_side")]
    pub stranger_min_side: f32,
    /// Clip boundaries "unknown" may be handed across before the face is embedded again
    /// (fewer than names: someone who walks in looking away is named within a second of
    /// turning to the camera).
    #[serde(default = "default_stranger_across_clips")]
    pub stranger_across_clips: u32,
    /// Clip boundaries an identity may be handed across before the face is embedded again: the
    /// first analysed frame of clip `n + 1` of a stream (`device/session`) continues the last
    /// one of clip `n` when this analyzer saw it (see the [module documentation](self)). 0:
    /// identities stay within their clip.
    #[serde(default = "default_across_clips")]
    pub across_clips: u32,
}

/// [`ReusePolicy::across_clips`] by default: an identity is measured again at least every
/// fourth clip (2 s of 0.5 s clips).
pub const DEFAULT_ACROSS_CLIPS: u32 = 3;

fn default_across_clips() -> u32 {
    DEFAULT_ACROSS_CLIPS
}

/// [`ReusePolicy::stranger_margin`] by default.
pub const DEFAULT_STRANGER_MARGIN: f32 = 0.15;

fn default_stranger_margin() -> Option<f32> {
    Some(DEFAULT_STRANGER_MARGIN)
}

/// [`ReusePolicy::stranger_min_side`] by default: half the embedder's 112 px input.
pub const DEFAULT_STRANGER_MIN_SIDE: f32 = 56.0;

fn default_stranger_min_side() -> f32 {
    DEFAULT_STRANGER_MIN_SIDE
}

/// [`ReusePolicy::stranger_across_clips`] by default: a stranger is measured again at least
/// every second clip (1 s of 0.5 s clips).
pub const DEFAULT_STRANGER_ACROSS_CLIPS: u32 = 1;

fn default_stranger_across_clips() -> u32 {
    DEFAULT_STRANGER_ACROSS_CLIPS
}

impl Default for ReusePolicy {
    fn default() -> Self {
        ReusePolicy {
            min_iou: 0.3,
            uncertain_margin: 0.05,
            stranger_margin: default_stranger_margin(),
            stranger_min_side: DEFAULT_STRANGER_MIN_SIDE,
            stranger_across_clips: DEFAULT_STRANGER_ACROSS_CLIPS,
            across_clips: DEFAULT_ACROSS_CLIPS,
        }
    }
}

/// How long the last analysed frame of a stream's clip waits for the stream's next clip.
pub const STREAM_TAIL_TTL: Duration = Duration::from_secs(5);

/// Streams whose last analysed frame is kept at most (the oldest go first).
pub const MAX_STREAM_TAILS: usize = 4096;

/// The last analysed frame of the latest clip of each stream (`device/session`), for the next
/// clip of the same stream to continue (see the [module documentation](self)). Shared by the
/// clones of one [`ClipAnalyzer`]; bounded by [`MAX_STREAM_TAILS`] and [`STREAM_TAIL_TTL`].
#[derive(Debug, Default)]
pub struct StreamTails {
    tails: Mutex<HashMap<String, StreamTail>>,
}

#[derive(Debug, Clone)]
struct StreamTail {
    seq: u64,
    size: (u32, u32),
    faces: Vec<TrackedFace>,
    stored: Instant,
}

impl StreamTails {
    /// The faces of the last analysed frame of clip `seq - 1` of `stream` when it was analysed
    /// here less than [`STREAM_TAIL_TTL`] ago and its frames were `size`; without a track in
    /// the new clip and one clip boundary further from their measurement.
    fn before(&self, stream: &str, seq: u64, size: (u32, u32)) -> Vec<TrackedFace> {
        let tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        match tails.get(stream) {
            Some(tail)
                if tail.seq.checked_add(1) == Some(seq)
                    && tail.size == size
                    && tail.stored.elapsed() < STREAM_TAIL_TTL =>
            {
                tail.faces
                    .iter()
                    .map(|face| TrackedFace {
                        track: None,
                        clips_carried: face.clips_carried.saturating_add(1),
                        ..face.clone()
                    })
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Keep `faces`, the last analysed frame of clip `seq` of `stream`, unless a later clip of
    /// the stream was stored already (clips analysed out of order).
    fn store(&self, stream: &str, seq: u64, size: (u32, u32), faces: Vec<TrackedFace>) {
        let mut tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        if tails.get(stream).is_some_and(|tail| tail.seq >= seq) {
            return;
        }
        tails.retain(|_, tail| tail.stored.elapsed() < STREAM_TAIL_TTL);
        if tails.len() >= MAX_STREAM_TAILS && !tails.contains_key(stream) {
            if let Some(oldest) = tails
                .iter()
                .min_by_key(|(_, tail)| tail.stored)
                .map(|(key, _)| key.clone())
            {
                tails.remove(&oldest);
            }
        }
        tails.insert(
            stream.to_string(),
            StreamTail {
                seq,
                size,
                faces,
                stored: Instant::now(),
            },
        );
    }

    /// Streams with a kept frame.
    pub fn len(&self) -> usize {
        self.tails.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no stream has a kept frame.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `device/session` and the sequence number of a clip id `device/session/seq`.
fn stream_of(clip_id: &str) -> Option<(&str, u64)> {
    let (stream, seq) = clip_id.rsplit_once('/')?;
    Some((stream, seq.parse().ok()?))
}

impl std::fmt::Debug for ClipAnalyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipAnalyzer")
            .field("policy", &self.policy)
            .field("limits", &self.limits)
            .field("detector", &self.detector)
            .field("small_frame_detector", &self.small_frame_detector)
            .field("follow_faces", &self.follow_faces)
            .field("reuse", &self.reuse)
            .field("stream_tails", &self.tails.len())
            .finish_non_exhaustive()
    }
}

/// One enrolled person seen in a clip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersonSighting {
    /// Their id in the people directory.
    pub person_id: String,
    /// Highest cosine similarity of any of their faces in the clip.
    pub best_similarity: f32,
    /// Frame (display order, from 0) of the best face.
    pub frame_index: u32,
    /// Box of the best face in that frame, in pixels.
    pub bbox: FaceBox,
    /// Analysed frames in which they were recognised at least once.
    pub frames_seen: u32,
}

/// Where the time of one clip went, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClipTimings {
    /// H.264 decoding (up to the last sampled frame) plus RGB conversion of the sampled ones.
    /// With a core to spare it runs on its own thread, one sampled frame ahead of detection,
    /// so `total_ms` can be less than the sum of the stages.
    pub decode_ms: f64,
    /// Face detection on the sampled frames (padded retries of small frames included).
    pub detect_ms: f64,
    /// Alignment and embedding of the detected faces (those not carried over).
    pub embed_ms: f64,
    /// Wall-clock time of the whole analysis (the above plus matching and bookkeeping).
    pub total_ms: f64,
}

/// What one clip showed.
///
/// Strangers are counted per clip, not per frame: a face is followed from one analysed frame
/// to the next by box overlap (a *track*, see the [module documentation](self)), and
/// [`unknown_faces`](Self::unknown_faces) counts the tracks none of whose faces was named. The
/// same stranger visible in 4 analysed frames counts 1 there and 4 in
/// [`unknown_sightings`](Self::unknown_sightings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipAnalysis {
    /// The clip (`device/session/seq`).
    pub clip_id: String,
    /// One entry per distinct enrolled person recognised, highest `best_similarity` first.
    pub people: Vec<PersonSighting>,
    /// Distinct strangers: faces followed through the analysed frames (by box overlap) that
    /// matched nobody in any of them. A stranger who moves more than a face's width between two
    /// analysed frames, or is hidden in one, counts twice.
    pub unknown_faces: u32,
    /// Faces (summed over analysed frames) that matched nobody, embedded or carried over as a
    /// clear stranger (see [`ReusePolicy::stranger_margin`]).
    #[serde(default)]
    pub unknown_sightings: u32,
    /// Largest number of unmatched faces in a single analysed frame.
    pub max_unknown_in_a_frame: u32,
    /// The enrolled person an unmatched face came closest to, with that (below-threshold)
    /// similarity: how near the clip came to naming someone else. `None` without unmatched faces
    /// or with an empty gallery.
    pub closest_unknown: Option<Candidate>,
    /// All faces detected and identified, summed over analysed frames (known and unknown;
    /// embedded, or recognised by overlap with the previous frame's face, see
    /// [`ReusePolicy`]).
    pub faces_detected: u32,
    /// Faces sent to alignment and embedding (the others of `faces_detected` took over the
    /// identity of the face they continue, in this clip or the stream's previous one; see
    /// [`ReusePolicy`]). A face whose landmarks turn out degenerate counts here and is dropped.
    #[serde(default)]
    pub faces_embedded: u32,
    /// Frames in the clip (pictures in its stream).
    #[serde(default)]
    pub frames_in_clip: u32,
    /// Frames the decoder produced: up to the last analysed one (decoding stops there).
    pub frames_decoded: u32,
    /// Frames run through detection (the sampled ones).
    pub frames_analyzed: u32,
    /// Width of the first frame.
    pub width: u32,
    /// Height of the first frame.
    pub height: u32,
    /// Frame rate used for sampling (metadata, or 30 when unknown).
    pub fps: f32,
    /// Distance between analysed frames.
    pub sample_stride: u32,
    /// Similarity at or above which a face was named.
    pub threshold: f32,
    /// Where the time went.
    pub timings: ClipTimings,
}

impl ClipAnalysis {
    /// The sighting of `person_id`, if they were recognised.
    pub fn person(&self, person_id: &str) -> Option<&PersonSighting> {
        self.people.iter().find(|p| p.person_id == person_id)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl ClipAnalyzer {
    /// An analyzer with the default policy (`auto`: at least 4 frames per second), limits and
    /// [`ReusePolicy`], and the video detectors the pipeline has: YuNet, with the fast detector
    /// (UltraFace) for frames of at most [`SMALL_FRAME`]; else the fast detector for every
    /// frame; else MTCNN (with a warning: `rollcall models fetch` adds the models).
    pub fn new(pipeline: Arc<FacePipeline>) -> ClipAnalyzer {
        let small_frame_detector =
            (pipeline.has_yunet() && pipeline.has_fast_detector()).then_some(DetectorKind::Fast);
        let detector = if pipeline.has_yunet() {
            DetectorKind::Yunet
        } else if pipeline.has_fast_detector() {
            tracing::warn!(
                "YuNet ({}) not in the model cache: clips are analysed with the fast detector, \
                 which loses faces under ~40 px in 720p frames (run `rollcall models fetch`)",
                crate::vision::YUNET_MODEL
            );
            DetectorKind::Fast
        } else {
            tracing::warn!(
                "no video face detector in the model cache: clips are analysed with MTCNN, \
                 several times slower per frame (run `rollcall models fetch`)"
            );
            DetectorKind::Mtcnn
        };
        ClipAnalyzer {
            pipeline,
            policy: SamplePolicy::default(),
            limits: ClipLimits::default(),
            detector,
            small_frame_detector,
            follow_faces: true,
            reuse: Some(ReusePolicy::default()),
            tails: Arc::new(StreamTails::default()),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Threads one clip's embedding may use: the cores minus the other clips being analysed
    /// (at least 1). A crowd clip alone on the machine spreads its faces over the idle cores;
    /// when every core analyses a clip, each embeds on its own thread.
    fn spare_threads(&self) -> usize {
        spare_threads(
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            self.in_flight.load(Ordering::Relaxed),
        )
    }

    /// Use one face detector for every frame (`Fast` and `Yunet` fail on every clip when the
    /// pipeline lacks their model).
    pub fn with_detector(mut self, detector: DetectorKind) -> ClipAnalyzer {
        self.detector = detector;
        self.small_frame_detector = None;
        self
    }

    /// The detector for a frame of `width` x `height`.
    pub fn detector_for(&self, width: u32, height: u32) -> DetectorKind {
        match self.small_frame_detector {
            Some(kind) if is_small_frame(width, height) => kind,
            _ => self.detector,
        }
    }

    /// Whether a frame of `width` x `height` that is not its clip's first analysed frame, and
    /// follows one with faces, looks for those faces only ([`Self::follow_faces`]): when its
    /// detector is YuNet or MTCNN, whose search of a whole frame costs far more than O-Net on
    /// each face (YuNet and O-Net on the 28-face hall frame: 35 ms; following them: 7.5 ms). The
    /// fast detector costs about as much as following (~2 ms a frame plus O-Net), so its frames
    /// are searched whole.
    pub fn follows_faces(&self, width: u32, height: u32) -> bool {
        self.follow_faces && self.detector_for(width, height) != DetectorKind::Fast
    }

    /// Search every analysed frame whole (`false`), or follow faces after each clip's first
    /// analysed frame where [`Self::follows_faces`] says (`true`, the default).
    pub fn with_follow_faces(mut self, follow: bool) -> ClipAnalyzer {
        self.follow_faces = follow;
        self
    }

    /// Whether a frame of `width` x `height` in which nothing was found is searched again on a
    /// padded copy: only frames of at most [`SMALL_FRAME`], and only when the pipeline's
    /// [`retry_padded`](crate::vision::PipelineOptions::retry_padded) is on. The retry is for a
    /// face that fills the picture, cut by its border; in a larger frame such a face is more
    /// than 480 px tall, and searching a 1080p frame padded by a quarter on every side cost
    /// 2.25x its pixels in time and memory on every frame without a face (see the
    /// [module documentation](self)).
    pub fn retries_padded(&self, width: u32, height: u32) -> bool {
        self.pipeline.options().retry_padded && is_small_frame(width, height)
    }

    /// Use another reuse policy (`None`: embed every face of every analysed frame).
    pub fn with_reuse(mut self, reuse: Option<ReusePolicy>) -> ClipAnalyzer {
        self.reuse = reuse;
        self
    }

    /// Use another sampling policy.
    pub fn with_policy(mut self, policy: SamplePolicy) -> ClipAnalyzer {
        self.policy = policy;
        self
    }

    /// Use other limits.
    pub fn with_limits(mut self, limits: ClipLimits) -> ClipAnalyzer {
        self.limits = limits;
        self
    }

    /// Decode `bytes` (an H.264 Annex-B clip), find and identify the faces of the sampled frames
    /// against `gallery`, and aggregate per person.
    ///
    /// `meta`, when given, supplies the frame rate for sampling (30 fps otherwise), its codec
    /// must be `h264-annexb`, and a clip yielding fewer frames than its `frame_count` says is
    /// reported as [`ClipError::Truncated`].
    pub fn analyze(
        &self,
        clip_id: &str,
        meta: Option<&ClipMeta>,
        bytes: &[u8],
        gallery: &Gallery,
    ) -> Result<ClipAnalysis, ClipError> {
        let started = Instant::now();
        let _in_flight = InFlight::enter(&self.in_flight);
        if let Some(meta) = meta {
            if !meta.codec.is_empty() && meta.codec != CLIP_CODEC_H264_ANNEXB {
                return Err(ClipError::UnsupportedCodec {
                    clip: clip_id.to_string(),
                    codec: meta.codec.clone(),
                });
            }
        }
        let fps = effective_fps(meta.map(|m| m.fps));

        let mut tally = Tally::default();
        let mut detect = Duration::ZERO;
        let mut embed = Duration::ZERO;
        let mut embedded = 0usize;
        // Faces of the previous analysed frame: box, identity, track. Before the first frame,
        // those of the stream's previous clip when they carry identities across clips.
        let mut previous: Vec<TrackedFace> = Vec::new();
        let mut size = None;
        let stream = stream_of(clip_id).filter(|_| self.reuse.is_some_and(|r| r.across_clips > 0));
        let track_iou = self
            .reuse
            .map_or(ReusePolicy::default().min_iou, |r| r.min_iou);

        let analyse_frame = |frame: DecodedFrame| {
            let failed = |source| ClipError::Recognition {
                clip: clip_id.to_string(),
                frame_index: frame.index,
                source: Box::new(source),
            };
            let started = Instant::now();
            let (width, height) = frame.image.dimensions();
            let first = size.is_none();
            if first {
                size = Some((width, height));
                if let Some((stream, seq)) = stream {
                    previous = self.tails.before(stream, seq, (width, height));
                }
            }
            let detections = if !first && !previous.is_empty() && self.follows_faces(width, height)
            {
                // Faces only: a new one is searched for in the stream's next clip.
                let boxes: Vec<FaceBox> = previous.iter().map(|face| face.bbox).collect();
                self.pipeline.follow(&frame.image, &boxes)
            } else {
                self.pipeline.detect_with_retry(
                    &frame.image,
                    self.detector_for(width, height),
                    self.retries_padded(width, height),
                )
            }
            .map_err(failed)?;
            detect += started.elapsed();

            let boxes: Vec<FaceBox> = detections.faces.iter().map(|d| d.bbox).collect();
            let matched = match_previous(&boxes, &previous, track_iou);
            // Named faces (and clear strangers) hand their identity on; the others are embedded, all
            // of this frame's together.
            let carried: Vec<Option<(Identity, u32)>> = matched
                .iter()
                .map(|m| {
                    let earlier = &previous[(*m)?];
                    self.reuse
                        .as_ref()?
                        .continues(earlier, gallery)
                        .then(|| (earlier.identity.clone(), earlier.clips_carried))
                })
                .collect();
            let to_embed: Vec<&Detection> = detections
                .faces
                .iter()
                .zip(&carried)
                .filter(|(_, c)| c.is_none())
                .map(|(d, _)| d)
                .collect();
            let started = Instant::now();
            let mut fresh = self
                .pipeline
                .embed_faces_on(&frame.image, &detections, &to_embed, self.spare_threads())
                .map_err(failed)?
                .into_iter();
            embed += started.elapsed();
            embedded += to_embed.len();

            let mut current = Vec::with_capacity(boxes.len());
            let mut new_faces = 0usize;
            for ((face, carried), matched) in detections.faces.iter().zip(carried).zip(matched) {
                let (identity, clips_carried) = match carried {
                    Some(carried) => carried,
                    // Degenerate landmarks: not a usable face.
                    None => match fresh.next().flatten() {
                        Some(embedded) => {
                            let identity = gallery.identify(&embedded.embedding);
                            let head_start = match (matched, &self.reuse) {
                                (None, Some(reuse)) => {
                                    new_faces += 1;
                                    reuse.head_start(&identity, new_faces - 1)
                                }
                                _ => 0,
                            };
                            (identity, head_start)
                        }
                        None => continue,
                    },
                };
                // A face continuing one of the previous clip starts a track in this one.
                let track = match matched.and_then(|m| previous[m].track) {
                    Some(track) => track,
                    None => tally.new_track(),
                };
                current.push(TrackedFace {
                    bbox: face.bbox,
                    identity,
                    track: Some(track),
                    clips_carried,
                });
            }
            tally.add_frame(frame.index, current.iter().cloned());
            previous = current;
            Ok(())
        };
        // With a core to spare, the decoder runs one frame ahead on its own thread.
        let stats = decode_clip_beside(
            clip_id,
            bytes,
            &self.limits,
            &self.policy,
            fps,
            self.spare_threads() > 1,
            analyse_frame,
        )?;
        if let (Some((stream, seq)), Some(size)) = (stream, size) {
            self.tails.store(stream, seq, size, previous);
        }

        // Decoding stops after the last analysed frame: the clip's length is its picture count.
        let frames_in_clip = stats.pictures.max(stats.frames_decoded);
        if let Some(meta) = meta {
            if meta.frame_count > 0 && frames_in_clip < meta.frame_count as usize {
                return Err(ClipError::Truncated {
                    clip: clip_id.to_string(),
                    expected: meta.frame_count,
                    decoded: frames_in_clip,
                });
            }
        }

        let analysis = ClipAnalysis {
            clip_id: clip_id.to_string(),
            unknown_faces: count(tally.strangers()),
            unknown_sightings: count(tally.unknown_sightings),
            max_unknown_in_a_frame: count(tally.max_unknown),
            faces_detected: count(tally.faces),
            faces_embedded: count(embedded),
            frames_analyzed: count(tally.frames),
            closest_unknown: tally.closest_unknown.clone(),
            people: tally.into_people(),
            frames_in_clip: count(frames_in_clip),
            frames_decoded: count(stats.frames_decoded),
            width: stats.width,
            height: stats.height,
            fps,
            sample_stride: count(stats.stride),
            threshold: gallery.threshold(),
            timings: ClipTimings {
                decode_ms: ms(stats.decode_time),
                detect_ms: ms(detect),
                embed_ms: ms(embed),
                total_ms: ms(started.elapsed()),
            },
        };
        tracing::debug!(
            clip = clip_id,
            people = analysis.people.len(),
            unknown = analysis.unknown_faces,
            frames = analysis.frames_in_clip,
            decoded = analysis.frames_decoded,
            analysed = analysis.frames_analyzed,
            faces = analysis.faces_detected,
            embedded,
            total_ms = analysis.timings.total_ms,
            "clip analysed"
        );
        Ok(analysis)
    }
}

/// Threads for one of `in_flight` clips (itself included) on `cores`.
fn spare_threads(cores: usize, in_flight: usize) -> usize {
    cores.saturating_sub(in_flight.saturating_sub(1)).max(1)
}

/// Counts one clip in [`ClipAnalyzer::in_flight`] while it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> InFlight<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A face of an analysed frame as the next frame sees it.
#[derive(Clone, Debug, PartialEq)]
struct TrackedFace {
    bbox: FaceBox,
    identity: Identity,
    /// The track it belongs to: the same face followed through the clip's analysed frames
    /// (`None` for a face of the stream's previous clip).
    track: Option<usize>,
    /// Clip boundaries its identity was handed across since the face was embedded, plus the
    /// head start of a face new to the stream ([`ReusePolicy::head_start`]).
    clips_carried: u32,
}

impl ReusePolicy {
    /// Whether `earlier`, a face of the previous analysed frame (of this clip or the stream's
    /// previous one), hands its identity on to the face that overlaps it: as
    /// [`hands_on`](Self::hands_on) says at `gallery`'s threshold, carried across at most
    /// `across_clips` clip boundaries, and a name only while `gallery` may still give it (the
    /// directory or a consent can change between two clips).
    fn continues(&self, earlier: &TrackedFace, gallery: &Gallery) -> bool {
        let still_named = match &earlier.identity {
            Identity::Known(c) => gallery.can_name(&c.person_id),
            Identity::Unknown { .. } => true,
        };
        let across_clips = self.clips_allowed(&earlier.identity);
        // A face of this clip's previous analysed frame has a track here; one of the stream's
        // previous clip has none yet.
        let within_clip = earlier.track.is_some();
        still_named
            && earlier.clips_carried <= across_clips
            && self.hands_on(
                &earlier.identity,
                &earlier.bbox,
                gallery.threshold(),
                within_clip,
            )
    }

    /// Clip boundaries `identity` may be handed across before its face is embedded again:
    /// `across_clips` for a name, `stranger_across_clips` for "unknown".
    fn clips_allowed(&self, identity: &Identity) -> u32 {
        match identity {
            Identity::Known(_) => self.across_clips,
            Identity::Unknown { .. } => self.stranger_across_clips,
        }
    }

    /// How far through its carrying budget ([`clips_allowed`](Self::clips_allowed)) the `nth`
    /// (from 0) face of a frame that is new to the stream starts: `nth` modulo the budget plus
    /// one. A crowd that comes into view at once is then measured again spread over the next
    /// clips, a share in each, instead of all in the same clip; each face is still measured again
    /// after at most the budget, and from then on every budget plus one clips.
    fn head_start(&self, identity: &Identity, nth: usize) -> u32 {
        let period = self.clips_allowed(identity).saturating_add(1) as usize;
        u32::try_from(nth % period).unwrap_or(0)
    }

    /// Whether a face of the previous frame (box `bbox`) identified as `identity` hands it on
    /// to the face that overlaps it: named (within a clip), named at least `uncertain_margin`
    /// above `threshold` (across a clip boundary), or at least `stranger_min_side` and unknown
    /// by at least `stranger_margin`.
    fn hands_on(
        &self,
        identity: &Identity,
        bbox: &FaceBox,
        threshold: f32,
        within_clip: bool,
    ) -> bool {
        match identity {
            // A clip names everyone named in any of its frames: a second look at a face
            // already named in this clip could only add a second name for it.
            Identity::Known(_) if within_clip => true,
            Identity::Known(c) => c.similarity >= threshold + self.uncertain_margin,
            Identity::Unknown { closest } => {
                bbox.width().min(bbox.height()) >= self.stranger_min_side
                    && self.stranger_margin.is_some_and(|margin| {
                        closest
                            .as_ref()
                            .is_none_or(|c| c.similarity <= threshold - margin)
                    })
            }
        }
    }
}

/// For each face box of this frame, the face of `previous` (the previous analysed frame) it
/// continues, or `None` for a face new in this frame.
///
/// Pairs are made greedily by decreasing IoU (at least `min_iou`); each earlier face is
/// continued at most once.
fn match_previous(boxes: &[FaceBox], previous: &[TrackedFace], min_iou: f32) -> Vec<Option<usize>> {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (i, b) in boxes.iter().enumerate() {
        for (j, p) in previous.iter().enumerate() {
            let overlap = iou(b, &p.bbox);
            if overlap >= min_iou {
                pairs.push((overlap, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out = vec![None; boxes.len()];
    let mut used = vec![false; previous.len()];
    for (_, i, j) in pairs {
        if out[i].is_none() && !used[j] {
            used[j] = true;
            out[i] = Some(j);
        }
    }
    out
}

/// Per-clip aggregation of the identified faces of each analysed frame.
#[derive(Debug, Default)]
struct Tally {
    /// Sighting per person, with the last frame they were counted in.
    people: HashMap<String, (PersonSighting, usize)>,
    /// Per track: whether any of its faces was named.
    named_tracks: Vec<bool>,
    unknown_sightings: usize,
    max_unknown: usize,
    closest_unknown: Option<Candidate>,
    faces: usize,
    frames: usize,
}

impl Tally {
    /// A new track, for a face not seen in the previous analysed frame.
    fn new_track(&mut self) -> usize {
        self.named_tracks.push(false);
        self.named_tracks.len() - 1
    }

    /// Tracks none of whose faces was named: the distinct strangers of the clip.
    fn strangers(&self) -> usize {
        self.named_tracks.iter().filter(|named| !**named).count()
    }

    /// Count one analysed frame and its faces (box, verdict and track each; tracks come from
    /// [`Tally::new_track`]).
    fn add_frame(&mut self, index: usize, faces: impl IntoIterator<Item = TrackedFace>) {
        self.frames += 1;
        let mut unknown_here = 0usize;
        for TrackedFace {
            bbox,
            identity,
            track,
            ..
        } in faces
        {
            self.faces += 1;
            if let (Some(named), Identity::Known(_)) =
                (track.and_then(|t| self.named_tracks.get_mut(t)), &identity)
            {
                *named = true;
            }
            match identity {
                Identity::Known(candidate) => {
                    let frame_index = count(index);
                    let (sighting, last_frame) = self
                        .people
                        .entry(candidate.person_id.clone())
                        .or_insert_with(|| {
                            (
                                PersonSighting {
                                    person_id: candidate.person_id.clone(),
                                    best_similarity: candidate.similarity,
                                    frame_index,
                                    bbox,
                                    frames_seen: 1,
                                },
                                index,
                            )
                        });
                    if *last_frame != index {
                        *last_frame = index;
                        sighting.frames_seen += 1;
                    }
                    if candidate.similarity > sighting.best_similarity {
                        sighting.best_similarity = candidate.similarity;
                        sighting.frame_index = frame_index;
                        sighting.bbox = bbox;
                    }
                }
                Identity::Unknown { closest } => {
                    unknown_here += 1;
                    if let Some(c) = closest {
                        if self
                            .closest_unknown
                            .as_ref()
                            .is_none_or(|best| c.similarity > best.similarity)
                        {
                            self.closest_unknown = Some(c);
                        }
                    }
                }
            }
        }
        self.unknown_sightings += unknown_here;
        self.max_unknown = self.max_unknown.max(unknown_here);
    }

    /// The sightings, highest best similarity first (ties by person id).
    fn into_people(self) -> Vec<PersonSighting> {
        let mut people: Vec<PersonSighting> = self.people.into_values().map(|(s, _)| s).collect();
        people.sort_by(|a, b| {
            b.best_similarity
                .total_cmp(&a.best_similarity)
                .then_with(|| a.person_id.cmp(&b.person_id))
        });
        people
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bbox(x: f32) -> FaceBox {
        FaceBox {
            x1: x,
            y1: 10.0,
            x2: x + 40.0,
            y2: 60.0,
        }
    }

    /// Faces of one frame, each on a track of its own (`tally.new_track`).
    fn frame(tally: &mut Tally, faces: &[(FaceBox, Identity)]) -> Vec<TrackedFace> {
        faces
            .iter()
            .map(|(bbox, identity)| TrackedFace {
                bbox: *bbox,
                identity: identity.clone(),
                track: Some(tally.new_track()),
                clips_carried: 0,
            })
            .collect()
    }

    #[test]
    fn a_carried_name_needs_the_gallery_to_still_give_it() {
        let template = |id: &str, x: f32| crate::vision::Template {
            person_id: id.to_string(),
            embedding: vec![x, 1.0 - x, 0.0],
            image_count: 1,
        };
        let mut gallery =
            Gallery::new(vec![template("ada", 1.0), template("bob", 0.0)], 0.4).unwrap();
        let policy = ReusePolicy::default();
        let face = |person: &str, clips_carried| TrackedFace {
            clips_carried,
            ..on_track(0, 10.0, known(person, 0.8))
        };
        assert!(policy.continues(&face("ada", 0), &gallery));
        assert!(policy.continues(&face("ada", policy.across_clips), &gallery));
        assert!(!policy.continues(&face("ada", policy.across_clips + 1), &gallery));
        // Removed from the directory, or consent withdrawn, since the face was named.
        assert!(!policy.continues(&face("eve", 0), &gallery));
        gallery.withhold(&["ada".to_string()].into_iter().collect());
        assert!(!policy.continues(&face("ada", 0), &gallery));
        assert!(policy.continues(&face("bob", 0), &gallery));
    }

    #[test]
    fn a_clip_embeds_on_the_cores_the_other_clips_leave() {
        assert_eq!(spare_threads(2, 1), 2, "alone on two cores");
        assert_eq!(spare_threads(2, 2), 1);
        assert_eq!(spare_threads(2, 5), 1, "never fewer than one");
        assert_eq!(spare_threads(8, 3), 6);
        let count = AtomicUsize::new(0);
        {
            let _a = InFlight::enter(&count);
            let _b = InFlight::enter(&count);
            assert_eq!(count.load(Ordering::Relaxed), 2);
        }
        assert_eq!(count.load(Ordering::Relaxed), 0, "left when dropped");
    }

    #[test]
    fn clip_ids_split_into_stream_and_sequence() {
        assert_eq!(stream_of("cam1/s-1/00000007"), Some(("cam1/s-1", 7)));
        assert_eq!(stream_of("cam1/s-1/x7"), None);
        assert_eq!(stream_of("00000007"), None);
    }

    #[test]
    fn a_stream_tail_continues_only_the_next_clip_of_the_same_stream_and_size() {
        let tails = StreamTails::default();
        let face = on_track(0, 10.0, known("ada", 0.8));
        tails.store("cam/s", 4, (640, 360), vec![face.clone()]);
        let next = tails.before("cam/s", 5, (640, 360));
        assert_eq!(next.len(), 1);
        assert_eq!(
            next[0].track, None,
            "a face of the previous clip has no track here"
        );
        assert_eq!(next[0].clips_carried, 1);
        assert_eq!(
            (next[0].bbox, &next[0].identity),
            (face.bbox, &face.identity)
        );
        // Not the next clip, another stream, another size.
        assert!(tails.before("cam/s", 6, (640, 360)).is_empty());
        assert!(tails.before("cam/s", 4, (640, 360)).is_empty());
        assert!(tails.before("cam/t", 5, (640, 360)).is_empty());
        assert!(tails.before("cam/s", 5, (1280, 720)).is_empty());
        // A clip analysed late does not replace a later one.
        tails.store("cam/s", 3, (640, 360), Vec::new());
        assert_eq!(tails.before("cam/s", 5, (640, 360)).len(), 1);
        // Carried twice: one boundary further each time.
        let again = TrackedFace {
            track: Some(0),
            ..next[0].clone()
        };
        tails.store("cam/s", 5, (640, 360), vec![again]);
        assert_eq!(tails.before("cam/s", 6, (640, 360))[0].clips_carried, 2);
    }

    #[test]
    fn stream_tails_are_bounded() {
        let tails = StreamTails::default();
        for i in 0..MAX_STREAM_TAILS + 10 {
            tails.store(&format!("cam{i}/s"), 1, (64, 64), Vec::new());
        }
        assert_eq!(tails.len(), MAX_STREAM_TAILS);
        assert!(
            tails
                .tails
                .lock()
                .unwrap()
                .contains_key(&format!("cam{}/s", MAX_STREAM_TAILS + 9)),
            "the newest stream is kept"
        );
    }

    #[test]
    fn only_frames_up_to_640x480_are_small_in_either_orientation() {
        for (w, h) in [(640, 480), (480, 640), (640, 360), (360, 640), (320, 240)] {
            assert!(is_small_frame(w, h), "{w}x{h}");
        }
        for (w, h) in [
            (641, 360),
            (640, 481),
            (481, 640),
            (1280, 720),
            (1920, 1080),
        ] {
            assert!(!is_small_frame(w, h), "{w}x{h}");
        }
    }

    fn known(person: &str, similarity: f32) -> Identity {
        Identity::Known(Candidate {
            person_id: person.to_string(),
            similarity,
        })
    }

    fn unknown(closest: Option<(&str, f32)>) -> Identity {
        Identity::Unknown {
            closest: closest.map(|(p, s)| Candidate {
                person_id: p.to_string(),
                similarity: s,
            }),
        }
    }

    #[test]
    fn one_sighting_per_person_with_the_best_face() {
        let mut tally = Tally::default();
        let faces = frame(&mut tally, &[(bbox(0.0), known("ada", 0.50))]);
        tally.add_frame(0, faces);
        let faces = frame(
            &mut tally,
            &[
                (bbox(5.0), known("ada", 0.62)),
                (bbox(200.0), known("bob", 0.45)),
            ],
        );
        tally.add_frame(7, faces);
        let faces = frame(&mut tally, &[(bbox(9.0), known("ada", 0.55))]);
        tally.add_frame(14, faces);
        assert_eq!((tally.frames, tally.faces), (3, 4));
        let people = tally.into_people();
        assert_eq!(people.len(), 2);
        assert_eq!(people[0].person_id, "ada");
        assert_eq!(people[0].best_similarity, 0.62);
        assert_eq!(people[0].frame_index, 7);
        assert_eq!(people[0].bbox, bbox(5.0));
        assert_eq!(people[0].frames_seen, 3);
        assert_eq!(people[1].person_id, "bob");
        assert_eq!(people[1].frames_seen, 1);
    }

    #[test]
    fn a_person_twice_in_one_frame_is_seen_in_one_frame() {
        let mut tally = Tally::default();
        let faces = frame(
            &mut tally,
            &[
                (bbox(0.0), known("ada", 0.5)),
                (bbox(90.0), known("ada", 0.7)),
            ],
        );
        tally.add_frame(3, faces);
        let people = tally.into_people();
        assert_eq!(people[0].frames_seen, 1);
        assert_eq!(people[0].bbox, bbox(90.0));
    }

    /// A face on track `track`.
    fn on_track(track: usize, x: f32, identity: Identity) -> TrackedFace {
        TrackedFace {
            bbox: bbox(x),
            identity,
            track: Some(track),
            clips_carried: 0,
        }
    }

    #[test]
    fn strangers_are_counted_once_per_track() {
        let mut tally = Tally::default();
        let (a, b, c) = (tally.new_track(), tally.new_track(), tally.new_track());
        // Stranger `a` in 3 analysed frames; `b` unknown, then named (someone enrolled seen
        // poorly at first): not a stranger; `c` appears in the last frame only.
        tally.add_frame(0, [on_track(a, 0.0, unknown(Some(("ada", 0.2))))]);
        tally.add_frame(
            7,
            [
                on_track(a, 2.0, unknown(Some(("bob", 0.31)))),
                on_track(b, 100.0, unknown(None)),
            ],
        );
        tally.add_frame(
            14,
            [
                on_track(a, 4.0, unknown(None)),
                on_track(b, 101.0, known("cy", 0.5)),
                on_track(c, 300.0, unknown(None)),
            ],
        );
        tally.add_frame(21, []);
        assert_eq!(tally.strangers(), 2);
        assert_eq!(tally.unknown_sightings, 5);
        assert_eq!(tally.max_unknown, 2);
        assert_eq!(tally.frames, 4);
        let closest = tally.closest_unknown.clone().unwrap();
        assert_eq!(
            (closest.person_id.as_str(), closest.similarity),
            ("bob", 0.31)
        );
        let people = tally.into_people();
        assert_eq!(people.len(), 1);
        assert_eq!(people[0].person_id, "cy");
    }

    #[test]
    fn faces_continue_the_best_overlapping_face_of_the_previous_frame() {
        let previous = [
            on_track(0, 0.0, known("ada", 0.7)),
            on_track(1, 100.0, unknown(None)),
        ];
        // 40 px wide boxes: moved by 20 px the IoU is 1/3, at least 0.3: the same face.
        assert_eq!(match_previous(&[bbox(20.0)], &previous, 0.3), [Some(0)]);
        // Moved by 25 px the IoU is 0.23: a new face.
        assert_eq!(match_previous(&[bbox(25.0)], &previous, 0.3), [None]);
        assert_eq!(match_previous(&[bbox(20.0)], &previous, 0.5), [None]);
        // Two faces over the same earlier one: the better overlap continues it.
        assert_eq!(
            match_previous(&[bbox(8.0), bbox(2.0), bbox(104.0)], &previous, 0.3),
            [None, Some(0), Some(1)]
        );
        // Nothing before: every face is new.
        assert_eq!(match_previous(&[bbox(0.0)], &[], 0.3), [None]);
    }

    /// A square face box of `side` pixels.
    fn face_of(side: f32) -> FaceBox {
        FaceBox {
            x1: 10.0,
            y1: 10.0,
            x2: 10.0 + side,
            y2: 10.0 + side * 1.3,
        }
    }

    #[test]
    fn names_and_clear_large_strangers_are_handed_on() {
        let policy = ReusePolicy::default();
        let small = face_of(28.0);
        let large = face_of(80.0);
        for face in [&small, &large] {
            for within_clip in [false, true] {
                assert!(policy.hands_on(&known("ada", 0.60), face, 0.40, within_clip));
                // Exactly at threshold + margin counts as confident.
                assert!(policy.hands_on(&known("ada", 0.5), face, 0.45, within_clip));
                // Unknown, but closer to the threshold than the stranger margin: embedded again.
                let near = unknown(Some(("ada", 0.3)));
                assert!(!policy.hands_on(&near, face, 0.40, within_clip));
            }
            // Within 0.05 of the threshold: handed on within its clip, measured again in the
            // stream's next one.
            assert!(policy.hands_on(&known("bob", 0.43), face, 0.40, true));
            assert!(!policy.hands_on(&known("bob", 0.43), face, 0.40, false));
        }
        for within_clip in [false, true] {
            // A clear stranger stays a stranger unembedded when the face is large enough ...
            let clear = unknown(Some(("ada", 0.25)));
            assert!(policy.hands_on(&clear, &large, 0.40, within_clip));
            assert!(policy.hands_on(&unknown(None), &large, 0.40, within_clip));
            assert!(policy.hands_on(&unknown(None), &face_of(56.0), 0.40, within_clip));
            // ... and small faces, whose looks vary more, are always embedded again.
            let far = unknown(Some(("ada", 0.1)));
            assert!(!policy.hands_on(&far, &small, 0.40, within_clip));
            assert!(!policy.hands_on(&unknown(None), &face_of(55.0), 0.40, within_clip));
            // Without a stranger margin no "unknown" is handed on.
            let names_only = ReusePolicy {
                stranger_margin: None,
                ..policy
            };
            assert!(!names_only.hands_on(&unknown(None), &large, 0.40, within_clip));
            assert!(names_only.hands_on(&known("ada", 0.60), &large, 0.40, within_clip));
        }
    }

    #[test]
    fn a_stranger_is_carried_across_fewer_clips_than_a_name() {
        let gallery = Gallery::new(
            vec![crate::vision::Template {
                person_id: "ada".to_string(),
                embedding: vec![1.0, 0.0],
                image_count: 1,
            }],
            0.4,
        )
        .unwrap();
        let policy = ReusePolicy::default();
        assert!(policy.stranger_across_clips < policy.across_clips);
        let stranger = |clips_carried| TrackedFace {
            bbox: face_of(80.0),
            identity: unknown(Some(("ada", 0.1))),
            track: None,
            clips_carried,
        };
        assert!(policy.continues(&stranger(0), &gallery));
        assert!(policy.continues(&stranger(policy.stranger_across_clips), &gallery));
        assert!(!policy.continues(&stranger(policy.stranger_across_clips + 1), &gallery));
    }

    #[test]
    fn new_faces_start_part_way_through_their_carrying_budget() {
        let policy = ReusePolicy::default();
        let name = known("ada", 0.9);
        let stranger = unknown(None);
        let starts = |identity: &Identity| -> Vec<u32> {
            (0..6).map(|n| policy.head_start(identity, n)).collect()
        };
        // Names: budget 3, so a new crowd's faces are measured again over the next 4 clips.
        assert_eq!(starts(&name), [0, 1, 2, 3, 0, 1]);
        // Strangers: budget 1.
        assert_eq!(starts(&stranger), [0, 1, 0, 1, 0, 1]);
        // A head start never uses up more than the budget: each face is handed on once more.
        for n in 0..8 {
            assert!(policy.head_start(&name, n) <= policy.clips_allowed(&name));
        }
        let within_clips = ReusePolicy {
            across_clips: 0,
            ..policy
        };
        assert_eq!(within_clips.head_start(&name, 3), 0);
    }

    #[test]
    fn carried_faces_count_frames_but_keep_the_embedded_best_face() {
        let mut tally = Tally::default();
        let faces = frame(&mut tally, &[(bbox(0.0), known("ada", 0.62))]);
        tally.add_frame(0, faces);
        // Frames 7 and 14 carry ada's identity over (same similarity, moved box).
        let faces = frame(&mut tally, &[(bbox(4.0), known("ada", 0.62))]);
        tally.add_frame(7, faces);
        let faces = frame(&mut tally, &[(bbox(8.0), known("ada", 0.62))]);
        tally.add_frame(14, faces);
        let people = tally.into_people();
        assert_eq!(people[0].frames_seen, 3);
        assert_eq!(people[0].frame_index, 0);
        assert_eq!(people[0].bbox, bbox(0.0));
    }

    #[test]
    fn ties_sort_by_person_id() {
        let mut tally = Tally::default();
        let faces = frame(
            &mut tally,
            &[
                (bbox(0.0), known("zoe", 0.6)),
                (bbox(50.0), known("ada", 0.6)),
            ],
        );
        tally.add_frame(0, faces);
        let ids: Vec<String> = tally
            .into_people()
            .into_iter()
            .map(|p| p.person_id)
            .collect();
        assert_eq!(ids, ["ada", "zoe"]);
    }
}
