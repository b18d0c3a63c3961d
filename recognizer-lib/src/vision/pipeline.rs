//! Detect -> align -> embed, the whole per-image path, with the padded retry for tight crops.
//!
//! Three detectors ([`DetectorKind`]): the MTCNN cascade (photos, enrolment, the evaluation
//! figures), YuNet + O-Net for video frames at full resolution ([`super::yunet`]) and the fast
//! UltraFace + O-Net hybrid ([`super::ultraface`]).

use std::time::{Duration, Instant};

use rollcall_models::ModelCache;

use super::align::{align_face_with, WarpFilter};
use super::detect::{Detection, DetectorOptions, FaceBox, FaceDetector};
use super::embed::FaceEmbedder;
use super::image::{pad_replicate, DecodeLimits};
use super::landmarks::LandmarkModel;
use super::resize::shrink_area_rgb;
use super::ultraface::{FastDetectorOptions, UltraFace};
use super::yunet::{YuNet, YuNetOptions, YUNET_MODEL};
use super::RgbImage;
use crate::error::RecognizerError;
use crate::runtime::{init_onnxruntime, RuntimeOptions};

/// Fraction of the width/height added on each side for the retry when nothing is found: faces
/// that fill the whole photo (tight crops) are found once there is some background around them.
pub const RETRY_PAD_FRACTION: f32 = 0.25;

/// Default longest side of the copy the detectors search ([`PipelineOptions::max_detect_side`]).
pub const DEFAULT_MAX_DETECT_SIDE: u32 = 1920;

/// Faces whose detection box is smaller than this (longer side, pixels) are aligned with a bicubic
/// warp. Such a face is enlarged about 2x or more to 112x112, and bilinear interpolation then
/// blurs it; bicubic keeps edges closer to the sharp faces the embedder was trained on. Measured
/// with every probe of the public set shrunk to a 40 px face: genuine similarity rose in 96 % of
/// probes (median +0.022), strangers' highest similarity by +0.005 (docs/accuracy.md). Larger faces
/// keep bilinear: bicubic on every enlarged face (e.g. 92x112 AT&T crops) raised impostor scores.
pub const SMALL_FACE_SIDE: f32 = 64.0;

/// [`WarpFilter::Bicubic`] for faces smaller than [`SMALL_FACE_SIDE`] when `bicubic_small`.
fn warp_filter_for(bbox: &FaceBox, bicubic_small: bool) -> WarpFilter {
    let side = bbox.width().max(bbox.height());
    if bicubic_small && side < SMALL_FACE_SIDE {
        WarpFilter::Bicubic
    } else {
        WarpFilter::Bilinear
    }
}

/// Which face detector finds the faces.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DetectorKind {
    /// The MTCNN cascade (P-Net over an image pyramid, R-Net, O-Net): the most thorough, ~40 ms
    /// per 640x360 frame on one core. Used for photos; the accuracy figures are measured with it.
    #[default]
    Mtcnn,
    /// UltraFace RFB-320 proposals refined by MTCNN's O-Net ([`super::ultraface`]): ~5 ms per
    /// 640x360 frame. Needs `fr_detect.onnx` in the model cache. Sees frames at 320x240: faces
    /// under ~40 px in a 720p frame are lost.
    Fast,
    /// YuNet proposals on the whole frame at its resolution, refined by MTCNN's O-Net
    /// ([`super::yunet`]): keeps faces down to ~20 px in 720p and 1080p frames; for video.
    /// Needs `face_detection_yunet_2023mar_int8bq.onnx` in the model cache.
    Yunet,
}

impl DetectorKind {
    /// The name used in settings: `mtcnn`, `fast` or `yunet`.
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::Mtcnn => "mtcnn",
            DetectorKind::Fast => "fast",
            DetectorKind::Yunet => "yunet",
        }
    }
}

impl std::fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DetectorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mtcnn" => Ok(DetectorKind::Mtcnn),
            "fast" | "ultraface" => Ok(DetectorKind::Fast),
            "yunet" => Ok(DetectorKind::Yunet),
            other => Err(format!(
                "unknown detector {other:?} (expected mtcnn, yunet or fast)"
            )),
        }
    }
}

/// Model file of the fast detector's proposals.
pub const FAST_DETECTOR_MODEL: &str = "fr_detect.onnx";

/// Settings of the whole per-image pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineOptions {
    /// MTCNN settings (also the O-Net threshold of the fast detector).
    pub detector: DetectorOptions,
    /// The detector [`FacePipeline::faces`], [`FacePipeline::detect`] and
    /// [`FacePipeline::largest_face`] use (the `*_with` variants choose per call).
    pub detector_kind: DetectorKind,
    /// Settings of the fast detector.
    pub fast: FastDetectorOptions,
    /// Settings of the YuNet detector.
    pub yunet: YuNetOptions,
    /// ONNX Runtime threads and sessions.
    pub runtime: RuntimeOptions,
    /// Retry once on an edge-replicated padded copy when no face is found.
    pub retry_padded: bool,
    /// Align with the dense landmark model's points instead of MTCNN's five (see
    /// [`super::landmarks`]).
    pub dense_landmarks: bool,
    /// Warp faces smaller than [`SMALL_FACE_SIDE`] bicubically instead of bilinearly (see there).
    pub bicubic_small_faces: bool,
    /// Longest side of the working copy the detector searches (default
    /// [`DEFAULT_MAX_DETECT_SIDE`], 1920 px; 0: always the full picture). A larger picture is
    /// shrunk (area averaging) for the search, which bounds the detector's memory (it grows with
    /// the searched area, about 80 bytes per pixel); O-Net then re-scores each box, and the
    /// landmarks and the alignment are taken, on the original pixels. Faces smaller than
    /// `min_face_size` times (long side / this) original pixels are not found: raise it for
    /// small faces in very large photos, at the cost of memory.
    pub max_detect_side: u32,
    /// Decoding budget for the photos loaded for this pipeline ([`super::load_photo`]): carried
    /// here so one set of settings reaches enrolment, identification and evaluation.
    pub decode: DecodeLimits,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            detector: DetectorOptions::default(),
            detector_kind: DetectorKind::default(),
            fast: FastDetectorOptions::default(),
            yunet: YuNetOptions::default(),
            runtime: RuntimeOptions::default(),
            retry_padded: true,
            dense_landmarks: true,
            bicubic_small_faces: true,
            max_detect_side: DEFAULT_MAX_DETECT_SIDE,
            decode: DecodeLimits::default(),
        }
    }
}

/// A detected face with its embedding, in the coordinates of the input image.
#[derive(Clone, Debug, PartialEq)]
pub struct Face {
    /// Where the face is.
    pub detection: Detection,
    /// Unit-length embedding.
    pub embedding: Vec<f32>,
}

/// Where the time of one image went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimes {
    /// Face detection.
    pub detect: Duration,
    /// Alignment and embedding.
    pub embed: Duration,
}

/// Faces found in one image, and whether the padded retry found them.
#[derive(Clone, Debug, Default)]
pub struct Detections {
    /// The faces, in the input image's coordinates.
    pub faces: Vec<Detection>,
    /// Whether they came from the padded retry.
    pub from_padded_retry: bool,
    /// The padded image and the original's offset inside it, kept for alignment.
    padded: Option<(RgbImage, (u32, u32))>,
}

/// The shrunken copy of a large picture that the detector searches.
struct WorkingCopy {
    image: RgbImage,
    /// Working-copy pixels per original pixel, horizontally and vertically.
    scale: (f32, f32),
}

/// The detectors and the embedder, loaded once and shared (`Send + Sync`).
pub struct FacePipeline {
    detector: FaceDetector,
    /// UltraFace for [`DetectorKind::Fast`], when its model is in the cache.
    fast: Option<UltraFace>,
    /// YuNet for [`DetectorKind::Yunet`], when its model is in the cache.
    yunet: Option<YuNet>,
    landmarks: Option<LandmarkModel>,
    embedder: FaceEmbedder,
    options: PipelineOptions,
}

impl FacePipeline {
    /// Load ONNX Runtime and the models from the model cache: MTCNN, the landmark model and the
    /// embedder, and the video detectors: `fr_detect.onnx` for [`DetectorKind::Fast`] and YuNet
    /// for [`DetectorKind::Yunet`] (each required when it is `options.detector_kind`, loaded
    /// when present otherwise).
    pub fn load(
        cache: &ModelCache,
        options: PipelineOptions,
    ) -> Result<FacePipeline, RecognizerError> {
        init_onnxruntime(cache)?;
        let detector = FaceDetector::load(
            &cache.model_path("pnet.onnx")?,
            &cache.model_path("rnet.onnx")?,
            &cache.model_path("onet.onnx")?,
            options.detector.clone(),
            &options.runtime,
        )?;
        // Optional unless it is the configured detector: photos never need it.
        let fast = match cache
            .model_path(FAST_DETECTOR_MODEL)
            .map_err(RecognizerError::from)
            .and_then(|path| UltraFace::load(&path, &options.runtime))
        {
            Ok(fast) => Some(fast),
            Err(e) if options.detector_kind == DetectorKind::Fast => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "fast face detector not available");
                None
            }
        };
        let yunet = match cache
            .model_path(YUNET_MODEL)
            .map_err(RecognizerError::from)
            .and_then(|path| YuNet::load(&path, &options.runtime))
        {
            Ok(yunet) => Some(yunet),
            Err(e) if options.detector_kind == DetectorKind::Yunet => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "YuNet face detector not available");
                None
            }
        };
        let embedder = FaceEmbedder::load(&cache.model_path("fr_feature.onnx")?, &options.runtime)?;
        let landmarks = if options.dense_landmarks {
            Some(LandmarkModel::load(
                &cache.model_path("fr_landmark.onnx")?,
                &options.runtime,
            )?)
        } else {
            None
        };
        Ok(FacePipeline {
            detector,
            fast,
            yunet,
            landmarks,
            embedder,
            options,
        })
    }

    /// Whether [`DetectorKind::Fast`] can be used (its model was in the cache).
    pub fn has_fast_detector(&self) -> bool {
        self.fast.is_some()
    }

    /// Whether [`DetectorKind::Yunet`] can be used (its model was in the cache).
    pub fn has_yunet(&self) -> bool {
        self.yunet.is_some()
    }

    /// Settings in use.
    pub fn options(&self) -> &PipelineOptions {
        &self.options
    }

    /// Every face in the image (padded retry included), highest score first, with the
    /// configured detector.
    pub fn detect(&self, image: &RgbImage) -> Result<Detections, RecognizerError> {
        self.detect_with(image, self.options.detector_kind)
    }

    /// Every face in the image found by `kind` (padded retry included), highest score first.
    ///
    /// Pictures longer than [`PipelineOptions::max_detect_side`] are searched on a shrunken
    /// working copy (the padded retry too), and the boxes found re-scored by O-Net on the
    /// original pixels; the result is in the original's coordinates either way.
    pub fn detect_with(
        &self,
        image: &RgbImage,
        kind: DetectorKind,
    ) -> Result<Detections, RecognizerError> {
        self.detect_with_retry(image, kind, self.options.retry_padded)
    }

    /// [`detect_with`](Self::detect_with), with the padded retry on or off for this call instead
    /// of [`PipelineOptions::retry_padded`] (the clip analyzer leaves it out for large video
    /// frames: see [`crate::clip::ClipAnalyzer::retries_padded`]).
    pub fn detect_with_retry(
        &self,
        image: &RgbImage,
        kind: DetectorKind,
        retry_padded: bool,
    ) -> Result<Detections, RecognizerError> {
        let working = self.working_copy(image);
        let faces = match &working {
            None => self.detect_once(image, kind)?,
            Some(working) => {
                let found = self.detect_once(&working.image, kind)?;
                self.on_original(image, working, &found)?
            }
        };
        if !faces.is_empty() || !retry_padded {
            return Ok(Detections {
                faces,
                ..Detections::default()
            });
        }
        // The retry pads the picture that was searched: a padded copy of a large original would
        // cost more than the original itself.
        let searched = working.as_ref().map_or(image, |w| &w.image);
        let (padded, offset) = pad_replicate(searched, RETRY_PAD_FRACTION);
        let found = self.detect_once(&padded, kind)?;
        let faces = match &working {
            None => found
                .iter()
                .map(|d| d.to_original((offset.0 as f32, offset.1 as f32), (1.0, 1.0)))
                .collect::<Vec<_>>(),
            // Faces this close to the border are kept as found (scaled): O-Net on the original
            // would see black beyond the border where the search saw the replicated edge.
            Some(working) => found
                .iter()
                .map(|d| d.to_original((offset.0 as f32, offset.1 as f32), working.scale))
                .collect(),
        };
        let from_padded_retry = !faces.is_empty();
        Ok(Detections {
            faces,
            from_padded_retry,
            padded: (from_padded_retry && working.is_none()).then_some((padded, offset)),
        })
    }

    /// The shrunken copy the detector searches when `image` is longer than
    /// [`PipelineOptions::max_detect_side`]; `None` when the image is searched as it is.
    fn working_copy(&self, image: &RgbImage) -> Option<WorkingCopy> {
        let limit = self.options.max_detect_side;
        let (width, height) = image.dimensions();
        let long = width.max(height);
        if limit == 0 || long <= limit {
            return None;
        }
        let factor = f64::from(limit) / f64::from(long);
        let side = |v: u32| ((f64::from(v) * factor).round() as u32).clamp(1, v);
        let (w, h) = (side(width), side(height));
        let pixels = shrink_area_rgb(
            image.as_raw(),
            (width as usize, height as usize),
            (w as usize, h as usize),
        );
        let image = RgbImage::from_raw(w, h, pixels)?;
        tracing::debug!(
            from = %format!("{width}x{height}"),
            to = %format!("{w}x{h}"),
            "searching a working copy"
        );
        Some(WorkingCopy {
            image,
            scale: (w as f32 / width as f32, h as f32 / height as f32),
        })
    }

    /// Faces found on the working copy, re-scored by O-Net on the original pixels (boxes and
    /// landmarks in the original's coordinates).
    fn on_original(
        &self,
        image: &RgbImage,
        working: &WorkingCopy,
        found: &[Detection],
    ) -> Result<Vec<Detection>, RecognizerError> {
        let boxes: Vec<FaceBox> = found
            .iter()
            .map(|d| d.to_original((0.0, 0.0), working.scale).bbox)
            .collect();
        self.detector.refine_proposals(image, &boxes)
    }

    /// One detector pass, no retry.
    fn detect_once(
        &self,
        image: &RgbImage,
        kind: DetectorKind,
    ) -> Result<Vec<Detection>, RecognizerError> {
        match kind {
            DetectorKind::Mtcnn => self.detector.detect(image),
            DetectorKind::Fast => {
                let Some(fast) = &self.fast else {
                    return Err(RecognizerError::Model {
                        model: FAST_DETECTOR_MODEL.to_string(),
                        message: "not in the model cache (run `rollcall models fetch`)".to_string(),
                    });
                };
                fast.detect_refined(&self.detector, image, &self.options.fast)
            }
            DetectorKind::Yunet => {
                let Some(yunet) = &self.yunet else {
                    return Err(RecognizerError::Model {
                        model: YUNET_MODEL.to_string(),
                        message: "not in the model cache (run `rollcall models fetch`)".to_string(),
                    });
                };
                yunet.detect_refined(&self.detector, image, &self.options.yunet)
            }
        }
    }

    /// The faces at `boxes` (faces of an earlier frame of the same video) found again in
    /// `image` by O-Net alone, without searching the frame: each box is scored, regressed to
    /// where the face is now and given landmarks ([`FaceDetector::refine_proposals`]: 7.5 ms
    /// for the 28 faces of a 1280x720 lecture-hall frame, against 35 ms for YuNet and O-Net).
    /// A face that moved far from its box (more than O-Net's regression corrects, a fraction of
    /// its width) or turned away can be missed; a face that is not in `boxes` is not found.
    pub fn follow(
        &self,
        image: &RgbImage,
        boxes: &[FaceBox],
    ) -> Result<Detections, RecognizerError> {
        Ok(Detections {
            faces: self.detector.refine_proposals(image, boxes)?,
            ..Detections::default()
        })
    }

    /// The resampling filter for aligning the face in `bbox`.
    fn warp_filter(&self, bbox: &FaceBox) -> WarpFilter {
        warp_filter_for(bbox, self.options.bicubic_small_faces)
    }

    /// Align and embed one detected face. `None` when its landmarks are degenerate.
    pub fn embed(
        &self,
        image: &RgbImage,
        detections: &Detections,
        face: &Detection,
    ) -> Result<Option<Face>, RecognizerError> {
        let mut faces = self.embed_faces(image, detections, &[face])?;
        Ok(faces.pop().flatten())
    }

    /// Align every face of `faces` (detected in `image`), then embed them together: one
    /// embedder run per [`MAX_EMBED_BATCH`](super::embed::MAX_EMBED_BATCH) faces, spread over
    /// idle embedder sessions. One entry per face, in order; `None` where the landmarks are
    /// degenerate.
    pub fn embed_faces(
        &self,
        image: &RgbImage,
        detections: &Detections,
        faces: &[&Detection],
    ) -> Result<Vec<Option<Face>>, RecognizerError> {
        self.embed_faces_on(image, detections, faces, usize::MAX)
    }

    /// [`embed_faces`](Self::embed_faces) with the embedder on at most `max_threads` threads
    /// (see [`FaceEmbedder::embed_batch_on`](super::FaceEmbedder::embed_batch_on)); each
    /// thread aligns its share of the faces too (landmarks and warp, ~1 ms a small face).
    pub fn embed_faces_on(
        &self,
        image: &RgbImage,
        detections: &Detections,
        faces: &[&Detection],
        max_threads: usize,
    ) -> Result<Vec<Option<Face>>, RecognizerError> {
        self.embedder.spread(faces, max_threads, |part| {
            self.embed_faces_here(image, detections, part)
        })
    }

    /// Align `faces` and embed them, on the calling thread.
    fn embed_faces_here(
        &self,
        image: &RgbImage,
        detections: &Detections,
        faces: &[&Detection],
    ) -> Result<Vec<Option<Face>>, RecognizerError> {
        // Faces found by the padded retry are aligned in the padded image so that the border
        // they touch is the same replicated border the detector saw.
        let (source, (ox, oy)) = match &detections.padded {
            Some((padded, offset)) => (padded, (offset.0 as f32, offset.1 as f32)),
            None => (image, (0.0, 0.0)),
        };
        let mut aligned = Vec::with_capacity(faces.len());
        let mut aligned_index = Vec::with_capacity(faces.len());
        for face in faces {
            let mut marks = face.landmarks;
            for mark in &mut marks {
                mark[0] += ox;
                mark[1] += oy;
            }
            if let Some(model) = &self.landmarks {
                if let Some(dense) = model.five_points(source, &face.bbox.translated(ox, oy))? {
                    marks = dense;
                }
            }
            match align_face_with(source, &marks, self.warp_filter(&face.bbox)) {
                Some(face) => {
                    aligned_index.push(Some(aligned.len()));
                    aligned.push(face);
                }
                None => aligned_index.push(None),
            }
        }
        let mut embeddings = self
            .embedder
            .embed_batch_on(&aligned, 1)?
            .into_iter()
            .map(Some)
            .collect::<Vec<_>>();
        Ok(faces
            .iter()
            .zip(aligned_index)
            .map(|(face, index)| {
                let embedding = embeddings[index?].take()?;
                Some(Face {
                    detection: (*face).clone(),
                    embedding,
                })
            })
            .collect())
    }

    /// Detect, align and embed every face in the image.
    pub fn faces(&self, image: &RgbImage) -> Result<(Vec<Face>, StageTimes), RecognizerError> {
        self.faces_with(image, self.options.detector_kind)
    }

    /// [`faces`](Self::faces) with the detector `kind`.
    pub fn faces_with(
        &self,
        image: &RgbImage,
        kind: DetectorKind,
    ) -> Result<(Vec<Face>, StageTimes), RecognizerError> {
        let started = Instant::now();
        let detections = self.detect_with(image, kind)?;
        let detect = started.elapsed();
        let started = Instant::now();
        let all: Vec<&Detection> = detections.faces.iter().collect();
        let faces: Vec<Face> = self
            .embed_faces(image, &detections, &all)?
            .into_iter()
            .flatten()
            .collect();
        Ok((
            faces,
            StageTimes {
                detect,
                embed: started.elapsed(),
            },
        ))
    }

    /// The largest face only (by box area), embedded; also returns how many faces were found.
    pub fn largest_face(
        &self,
        image: &RgbImage,
    ) -> Result<(Option<Face>, usize, StageTimes), RecognizerError> {
        let started = Instant::now();
        let detections = self.detect(image)?;
        let detect = started.elapsed();
        let started = Instant::now();
        let largest = detections
            .faces
            .iter()
            .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()));
        let face = match largest {
            Some(d) => self.embed(image, &detections, d)?,
            None => None,
        };
        Ok((
            face,
            detections.faces.len(),
            StageTimes {
                detect,
                embed: started.elapsed(),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_faces_are_warped_bicubically() {
        let bbox = |side: f32| FaceBox {
            x1: 10.0,
            y1: 10.0,
            x2: 10.0 + side * 0.8,
            y2: 10.0 + side,
        };
        assert_eq!(warp_filter_for(&bbox(30.0), true), WarpFilter::Bicubic);
        assert_eq!(warp_filter_for(&bbox(63.0), true), WarpFilter::Bicubic);
        assert_eq!(warp_filter_for(&bbox(64.0), true), WarpFilter::Bilinear);
        assert_eq!(warp_filter_for(&bbox(200.0), true), WarpFilter::Bilinear);
        assert_eq!(warp_filter_for(&bbox(30.0), false), WarpFilter::Bilinear);
        assert!(PipelineOptions::default().bicubic_small_faces);
    }

    #[test]
    fn detector_kind_parses_and_prints_its_settings_name() {
        for kind in [DetectorKind::Mtcnn, DetectorKind::Fast, DetectorKind::Yunet] {
            assert_eq!(kind.to_string().parse::<DetectorKind>(), Ok(kind));
        }
        assert_eq!(" FAST ".parse::<DetectorKind>(), Ok(DetectorKind::Fast));
        assert!("hog".parse::<DetectorKind>().is_err());
        assert_eq!(DetectorKind::default(), DetectorKind::Mtcnn);
        assert_eq!(
            PipelineOptions::default().detector_kind,
            DetectorKind::Mtcnn,
            "photos keep MTCNN"
        );
        assert_eq!(
            serde_json::to_string(&DetectorKind::Fast).unwrap(),
            "\"fast\""
        );
    }
}
