//! Detect -> align -> embed, the whole per-image path, with the padded retry for tight crops.

use std::time::{Duration, Instant};

use rollcall_models::ModelCache;

use super::align::align_face;
use super::detect::{Detection, DetectorOptions, FaceDetector};
use super::embed::FaceEmbedder;
use super::image::pad_replicate;
use super::landmarks::LandmarkModel;
use super::RgbImage;
use crate::error::RecognizerError;
use crate::runtime::{init_onnxruntime, RuntimeOptions};

/// Fraction of the width/height added on each side for the retry when nothing is found: faces
/// that fill the whole photo (tight crops) are found once there is some background around them.
pub const RETRY_PAD_FRACTION: f32 = 0.25;

/// Settings of the whole per-image pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineOptions {
    pub detector: DetectorOptions,
    pub runtime: RuntimeOptions,
    /// Retry once on an edge-replicated padded copy when no face is found.
    pub retry_padded: bool,
    /// Align with the dense landmark model's points instead of MTCNN's five (see
    /// [`super::landmarks`]).
    pub dense_landmarks: bool,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            detector: DetectorOptions::default(),
            runtime: RuntimeOptions::default(),
            retry_padded: true,
            dense_landmarks: true,
        }
    }
}

/// A detected face with its embedding, in the coordinates of the input image.
#[derive(Clone, Debug, PartialEq)]
pub struct Face {
    pub detection: Detection,
    /// Unit-length embedding.
    pub embedding: Vec<f32>,
}

/// Where the time of one image went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimes {
    pub detect: Duration,
    pub embed: Duration,
}

/// Faces found in one image, and whether the padded retry found them.
#[derive(Clone, Debug, Default)]
pub struct Detections {
    pub faces: Vec<Detection>,
    pub from_padded_retry: bool,
    /// The padded image and the original's offset inside it, kept for alignment.
    padded: Option<(RgbImage, (u32, u32))>,
}

/// The MTCNN detector and the embedder, loaded once and shared (`Send + Sync`).
pub struct FacePipeline {
    detector: FaceDetector,
    landmarks: Option<LandmarkModel>,
    embedder: FaceEmbedder,
    options: PipelineOptions,
}

impl FacePipeline {
    /// Load ONNX Runtime and the four models from the model cache.
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
            landmarks,
            embedder,
            options,
        })
    }

    /// Settings in use.
    pub fn options(&self) -> &PipelineOptions {
        &self.options
    }

    /// Every face in the image (padded retry included), highest score first.
    pub fn detect(&self, image: &RgbImage) -> Result<Detections, RecognizerError> {
        let faces = self.detector.detect(image)?;
        if !faces.is_empty() || !self.options.retry_padded {
            return Ok(Detections {
                faces,
                ..Detections::default()
            });
        }
        let (padded, (ox, oy)) = pad_replicate(image, RETRY_PAD_FRACTION);
        let found = self.detector.detect(&padded)?;
        let faces = found
            .into_iter()
            .map(|mut d| {
                d.bbox = d.bbox.translated(-(ox as f32), -(oy as f32));
                for mark in &mut d.landmarks {
                    mark[0] -= ox as f32;
                    mark[1] -= oy as f32;
                }
                d
            })
            .collect::<Vec<_>>();
        let from_padded_retry = !faces.is_empty();
        Ok(Detections {
            faces,
            from_padded_retry,
            padded: from_padded_retry.then_some((padded, (ox, oy))),
        })
    }

    /// Align and embed one detected face. `None` when its landmarks are degenerate.
    pub fn embed(
        &self,
        image: &RgbImage,
        detections: &Detections,
        face: &Detection,
    ) -> Result<Option<Face>, RecognizerError> {
        // Faces found by the padded retry are aligned in the padded image so that the border
        // they touch is the same replicated border the detector saw.
        let (source, (ox, oy)) = match &detections.padded {
            Some((padded, offset)) => (padded, (offset.0 as f32, offset.1 as f32)),
            None => (image, (0.0, 0.0)),
        };
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
        let aligned = align_face(source, &marks);
        let Some(aligned) = aligned else {
            return Ok(None);
        };
        let embedding = self.embedder.embed(&aligned)?;
        Ok(Some(Face {
            detection: face.clone(),
            embedding,
        }))
    }

    /// Detect, align and embed every face in the image.
    pub fn faces(&self, image: &RgbImage) -> Result<(Vec<Face>, StageTimes), RecognizerError> {
        let started = Instant::now();
        let detections = self.detect(image)?;
        let detect = started.elapsed();
        let started = Instant::now();
        let mut faces = Vec::with_capacity(detections.faces.len());
        for d in &detections.faces {
            if let Some(face) = self.embed(image, &detections, d)? {
                faces.push(face);
            }
        }
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
