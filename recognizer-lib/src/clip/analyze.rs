//! Per-clip analysis: decode, run the face pipeline on the sampled frames, identify every face and
//! aggregate the answers into one [`ClipAnalysis`] per clip.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::decode::{decode_clip_with, ClipLimits};
use super::sample::{effective_fps, SamplePolicy};
use super::ClipError;
use crate::vision::{Candidate, FaceBox, FacePipeline, Gallery, Identity};
use crate::wire::{ClipMeta, CLIP_CODEC_H264_ANNEXB};

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
    pub pipeline: Arc<FacePipeline>,
    /// Which decoded frames are analysed.
    pub policy: SamplePolicy,
    /// Size and frame-count bounds.
    pub limits: ClipLimits,
}

impl std::fmt::Debug for ClipAnalyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipAnalyzer")
            .field("policy", &self.policy)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// One enrolled person seen in a clip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersonSighting {
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
    /// H.264 decoding of every frame plus RGB conversion of the sampled ones.
    pub decode_ms: f64,
    /// Face detection on the sampled frames (padded retries included).
    pub detect_ms: f64,
    /// Alignment and embedding of the detected faces.
    pub embed_ms: f64,
    /// Wall-clock time of the whole analysis (the above plus matching and bookkeeping).
    pub total_ms: f64,
}

/// What one clip showed.
///
/// Faces are counted per analysed frame: the same person visible in 4 analysed frames adds 4 to
/// [`unknown_faces`](Self::unknown_faces) (nothing tracks faces across frames), which is why
/// [`max_unknown_in_a_frame`](Self::max_unknown_in_a_frame) is given too: the most strangers
/// visible at once, a lower bound on how many different unknown people were seen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipAnalysis {
    pub clip_id: String,
    /// One entry per distinct enrolled person recognised, highest `best_similarity` first.
    pub people: Vec<PersonSighting>,
    /// Faces (summed over analysed frames) that matched nobody.
    pub unknown_faces: u32,
    /// Largest number of unmatched faces in a single analysed frame.
    pub max_unknown_in_a_frame: u32,
    /// The enrolled person an unmatched face came closest to, with that (below-threshold)
    /// similarity: how near the clip came to naming someone else. `None` without unmatched faces
    /// or with an empty gallery.
    pub closest_unknown: Option<Candidate>,
    /// All faces detected and embedded, summed over analysed frames (known and unknown).
    pub faces_detected: u32,
    /// Frames the decoder produced.
    pub frames_decoded: u32,
    /// Frames run through detection (the sampled ones).
    pub frames_analyzed: u32,
    /// Size of the first frame.
    pub width: u32,
    pub height: u32,
    /// Frame rate used for sampling (metadata, or 30 when unknown).
    pub fps: f32,
    /// Distance between analysed frames.
    pub sample_stride: u32,
    /// Similarity at or above which a face was named.
    pub threshold: f32,
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
    /// An analyzer with the default policy (`auto`: at least 4 frames per second) and limits.
    pub fn new(pipeline: Arc<FacePipeline>) -> ClipAnalyzer {
        ClipAnalyzer {
            pipeline,
            policy: SamplePolicy::default(),
            limits: ClipLimits::default(),
        }
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
        if let Some(meta) = meta {
            if !meta.codec.is_empty() && meta.codec != CLIP_CODEC_H264_ANNEXB {
                return Err(ClipError::UnsupportedCodec {
                    clip: clip_id.to_string(),
                    codec: meta.codec.clone(),
                });
            }
        }
        let fps = effective_fps(meta.map(|m| m.fps));
        let stride = self.policy.stride(fps);

        let mut tally = Tally::default();
        let mut detect = Duration::ZERO;
        let mut embed = Duration::ZERO;

        let stats = decode_clip_with(
            clip_id,
            bytes,
            &self.limits,
            |index| index % stride == 0,
            |frame| {
                let (faces, times) =
                    self.pipeline
                        .faces(&frame.image)
                        .map_err(|source| ClipError::Recognition {
                            clip: clip_id.to_string(),
                            frame_index: frame.index,
                            source: Box::new(source),
                        })?;
                detect += times.detect;
                embed += times.embed;
                tally.add_frame(
                    frame.index,
                    faces
                        .iter()
                        .map(|face| (face.detection.bbox, gallery.identify(&face.embedding))),
                );
                Ok(())
            },
        )?;

        if let Some(meta) = meta {
            if meta.frame_count > 0 && stats.frames_decoded < meta.frame_count as usize {
                return Err(ClipError::Truncated {
                    clip: clip_id.to_string(),
                    expected: meta.frame_count,
                    decoded: stats.frames_decoded,
                });
            }
        }

        let analysis = ClipAnalysis {
            clip_id: clip_id.to_string(),
            unknown_faces: count(tally.unknown_faces),
            max_unknown_in_a_frame: count(tally.max_unknown),
            faces_detected: count(tally.faces),
            frames_analyzed: count(tally.frames),
            closest_unknown: tally.closest_unknown.clone(),
            people: tally.into_people(),
            frames_decoded: count(stats.frames_decoded),
            width: stats.width,
            height: stats.height,
            fps,
            sample_stride: count(stride),
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
            frames = analysis.frames_decoded,
            analysed = analysis.frames_analyzed,
            total_ms = analysis.timings.total_ms,
            "clip analysed"
        );
        Ok(analysis)
    }
}

/// Per-clip aggregation of the identified faces of each analysed frame.
#[derive(Debug, Default)]
struct Tally {
    /// Sighting per person, with the last frame they were counted in.
    people: HashMap<String, (PersonSighting, usize)>,
    unknown_faces: usize,
    max_unknown: usize,
    closest_unknown: Option<Candidate>,
    faces: usize,
    frames: usize,
}

impl Tally {
    /// Count one analysed frame and its faces (box and verdict each).
    fn add_frame(&mut self, index: usize, faces: impl IntoIterator<Item = (FaceBox, Identity)>) {
        self.frames += 1;
        let mut unknown_here = 0usize;
        for (bbox, identity) in faces {
            self.faces += 1;
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
        self.unknown_faces += unknown_here;
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
        tally.add_frame(0, [(bbox(0.0), known("ada", 0.50))]);
        tally.add_frame(
            7,
            [
                (bbox(5.0), known("ada", 0.62)),
                (bbox(200.0), known("bob", 0.45)),
            ],
        );
        tally.add_frame(14, [(bbox(9.0), known("ada", 0.55))]);
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
        tally.add_frame(
            3,
            [
                (bbox(0.0), known("ada", 0.5)),
                (bbox(90.0), known("ada", 0.7)),
            ],
        );
        let people = tally.into_people();
        assert_eq!(people[0].frames_seen, 1);
        assert_eq!(people[0].bbox, bbox(90.0));
    }

    #[test]
    fn unknown_faces_count_per_analysed_frame() {
        let mut tally = Tally::default();
        // One stranger visible in 4 analysed frames, two at once in one of them.
        for index in [0, 7, 14] {
            tally.add_frame(index, [(bbox(0.0), unknown(Some(("ada", 0.2))))]);
        }
        tally.add_frame(
            21,
            [
                (bbox(0.0), unknown(Some(("bob", 0.31)))),
                (bbox(100.0), unknown(None)),
            ],
        );
        tally.add_frame(28, []);
        assert_eq!(tally.unknown_faces, 5);
        assert_eq!(tally.max_unknown, 2);
        assert_eq!(tally.frames, 5);
        let closest = tally.closest_unknown.clone().unwrap();
        assert_eq!(
            (closest.person_id.as_str(), closest.similarity),
            ("bob", 0.31)
        );
        assert!(tally.into_people().is_empty());
    }

    #[test]
    fn ties_sort_by_person_id() {
        let mut tally = Tally::default();
        tally.add_frame(
            0,
            [
                (bbox(0.0), known("zoe", 0.6)),
                (bbox(50.0), known("ada", 0.6)),
            ],
        );
        let ids: Vec<String> = tally
            .into_people()
            .into_iter()
            .map(|p| p.person_id)
            .collect();
        assert_eq!(ids, ["ada", "zoe"]);
    }
}
