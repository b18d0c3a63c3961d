//! YuNet (2023mar, MIT): a small-face detector for video frames, run on the whole frame at full
//! resolution; its boxes are refined by MTCNN's O-Net as in the cascade.
//!
//! Why: the fast detector ([`super::ultraface`]) sees every frame resized to 320x240, so in a
//! 1280x720 lecture hall a 30 px face shrinks to ~8 px and is lost. YuNet is fully
//! convolutional (strides 8, 16, 32) and runs on the frame as it is, padded to a multiple of 32,
//! finding faces down to ~10 px; MTCNN's O-Net then scores each box, regresses it to MTCNN's
//! framing and places five landmarks, so the faces aligned and embedded downstream look like
//! the ones MTCNN finds in photos (YuNet's own landmarks align worse for `fr_feature`).
//! Measured figures and the comparison with the other detectors are in docs/accuracy.md and
//! docs/benchmarks.md.
//!
//! Model contract (OpenCV's `FaceDetectorYN`, which the model was published for): input `input`
//! `[1, 3, H, W]`, BGR, 0..255 (no normalisation), `H` and `W` multiples of 32 (the frame padded
//! with zeros at the bottom and right). Per stride `s` in 8, 16, 32 the outputs `cls_s`, `obj_s`
//! `[1, (H/s)*(W/s), 1]`, `bbox_s` `[1, .., 4]` and `kps_s` `[1, .., 10]`, one row per cell
//! `(r, c)` in row-major order: score `sqrt(clamp(cls) * clamp(obj))`, centre
//! `((c + dx) * s, (r + dy) * s)`, size `(exp(dw) * s, exp(dh) * s)`, landmark `n` at
//! `((c + kx_n) * s, (r + ky_n) * s)`. The file as published stores its weights block-quantised
//! (int8), which ONNX Runtime cannot run; they are folded to float when it is loaded
//! (`runtime::quantized`), and its declared 640x640 input is freed (`runtime::dims`).

use std::path::Path;

use ort::value::TensorRef;

use super::detect::{Detection, FaceBox, FaceDetector, Landmarks};
use super::resize::resize_area_rgb;
use super::ultraface::{hard_nms, onet_square, Proposal, Scored};
use super::RgbImage;
use crate::error::RecognizerError;
use crate::runtime::{DynamicAxes, RuntimeOptions, SessionPool};

/// File name of the YuNet model in the model cache.
pub const YUNET_MODEL: &str = "face_detection_yunet_2023mar_int8bq.onnx";

/// Smallest face (longer side of MTCNN's box, pixels of YuNet's input) YuNet finds reliably:
/// the frame is scaled so that [`YuNetOptions::min_face_size`] becomes this, never enlarged.
/// Measured on 55 faces of the public set pasted into frames (docs/accuracy.md): YuNet found
/// 64 % of 16 px faces, 93 % at 20 px and all from 24 px; scaled-down frames lose faces the
/// same way (a 30 px face at scale 0.6 is an 18 px face).
pub const YUNET_SMALLEST_FACE: f32 = 20.0;

/// The network's strides; input sides must be multiples of the largest.
const STRIDES: [usize; 3] = [8, 16, 32];
const PAD_MULTIPLE: usize = 32;

/// Settings of the YuNet + O-Net detector.
#[derive(Clone, Debug, PartialEq)]
pub struct YuNetOptions {
    /// YuNet score (`sqrt(cls * obj)`) at or above which a cell becomes a proposal.
    pub score_threshold: f32,
    /// IoU above which the lower-scored of two proposals is dropped.
    pub nms_iou: f32,
    /// Proposals considered by NMS, best first.
    pub top_k: usize,
    /// Side of the square handed to O-Net, as a multiple of the proposal's longer side.
    pub box_scale: f32,
    /// Shift of that square's centre downwards, as a fraction of the proposal's height.
    pub box_shift_y: f32,
    /// Smallest face to keep (longer side, pixels of the frame). YuNet runs on the frame
    /// scaled by [`YUNET_SMALLEST_FACE`]` / min_face_size` (never enlarged; the default, 20,
    /// keeps the frame as it is): when only larger faces matter the frame is detected at a
    /// smaller, cheaper size, while O-Net and everything after it still see the frame at full
    /// resolution. Proposals smaller than half this are ignored.
    pub min_face_size: f32,
}

impl Default for YuNetOptions {
    fn default() -> Self {
        YuNetOptions {
            score_threshold: 0.6,
            nms_iou: 0.3,
            top_k: 5000,
            box_scale: 1.0,
            box_shift_y: 0.0,
            min_face_size: 20.0,
        }
    }
}

impl YuNetOptions {
    /// The square box O-Net is given for a proposal: the longer side (times `box_scale`) around
    /// the proposal's centre (moved down by `box_shift_y` of its height).
    pub fn onet_box(&self, proposal: &FaceBox) -> FaceBox {
        onet_square(proposal, self.box_scale, self.box_shift_y)
    }
}

/// One face found by YuNet alone, in pixels of the input image.
#[derive(Clone, Debug, PartialEq)]
pub struct YuNetFace {
    /// Box and score.
    pub proposal: Proposal,
    /// YuNet's five landmarks (eyes, nose tip, mouth corners, as seen in the image).
    pub landmarks: Landmarks,
}

impl Scored for YuNetFace {
    fn proposal(&self) -> &Proposal {
        &self.proposal
    }
}

/// YuNet (`face_detection_yunet_2023mar_int8bq.onnx`): face proposals over a whole frame at its
/// own resolution.
pub struct YuNet {
    model: SessionPool,
}

impl YuNet {
    /// Load the model, folding its quantised weights and freeing its input size.
    pub fn load(path: &Path, runtime: &RuntimeOptions) -> Result<YuNet, RecognizerError> {
        Ok(YuNet {
            model: SessionPool::load_with(path, runtime, DynamicAxes::Spatial)?,
        })
    }

    /// Faces in `image`: YuNet's proposals, each scored, regressed and given five landmarks by
    /// `mtcnn`'s O-Net ([`FaceDetector::refine_proposals`]), highest score first.
    pub fn detect_refined(
        &self,
        mtcnn: &FaceDetector,
        image: &RgbImage,
        options: &YuNetOptions,
    ) -> Result<Vec<Detection>, RecognizerError> {
        let faces = self.faces(image, options)?;
        if faces.is_empty() {
            return Ok(Vec::new());
        }
        let boxes: Vec<FaceBox> = faces
            .iter()
            .map(|f| options.onet_box(&f.proposal.bbox))
            .collect();
        mtcnn.refine_proposals(image, &boxes)
    }

    /// Faces in `image` by YuNet alone (score at or above the threshold, after NMS), highest
    /// score first.
    pub fn faces(
        &self,
        image: &RgbImage,
        options: &YuNetOptions,
    ) -> Result<Vec<YuNetFace>, RecognizerError> {
        let (width, height) = (image.width() as usize, image.height() as usize);
        if width == 0 || height == 0 {
            return Ok(Vec::new());
        }
        let scale = input_scale(options.min_face_size);
        let (in_w, in_h) = if scale < 1.0 {
            (
                ((width as f32 * scale).round() as usize).max(1),
                ((height as f32 * scale).round() as usize).max(1),
            )
        } else {
            (width, height)
        };
        let (pad_w, pad_h) = (padded(in_w), padded(in_h));
        let input = if (in_w, in_h) == (width, height) {
            input_tensor(image.as_raw(), width, height, pad_w, pad_h)
        } else {
            let resized = resize_area_rgb(image.as_raw(), width, height, in_w, in_h);
            input_tensor(&resized, in_w, in_h, pad_w, pad_h)
        };
        // Back to the frame's pixels.
        let (sx, sy) = (width as f32 / in_w as f32, height as f32 / in_h as f32);
        let threshold = options.score_threshold;
        let found = self.model.with_session(|session| {
            let tensor = TensorRef::from_array_view(([1usize, 3, pad_h, pad_w], input.as_slice()))?;
            let outputs = session.run(ort::inputs![tensor])?;
            let mut found = Vec::new();
            for stride in STRIDES {
                let (_, cls) =
                    outputs[format!("cls_{stride}").as_str()].try_extract_tensor::<f32>()?;
                let (_, obj) =
                    outputs[format!("obj_{stride}").as_str()].try_extract_tensor::<f32>()?;
                let (_, bbox) =
                    outputs[format!("bbox_{stride}").as_str()].try_extract_tensor::<f32>()?;
                let (_, kps) =
                    outputs[format!("kps_{stride}").as_str()].try_extract_tensor::<f32>()?;
                let Some(faces) =
                    decode_stride(stride, pad_w, pad_h, cls, obj, bbox, kps, threshold)
                else {
                    return Ok(None);
                };
                found.extend(faces);
            }
            Ok(Some(found))
        })?;
        let Some(found) = found else {
            return Err(RecognizerError::ModelOutput {
                model: self.model.name().to_string(),
                message: format!(
                    "output sizes do not match a {pad_w}x{pad_h} input (strides 8, 16, 32)"
                ),
            });
        };
        let found: Vec<YuNetFace> = found
            .into_iter()
            .map(|mut f| {
                let b = &mut f.proposal.bbox;
                (b.x1, b.x2, b.y1, b.y2) = (b.x1 * sx, b.x2 * sx, b.y1 * sy, b.y2 * sy);
                for mark in &mut f.landmarks {
                    mark[0] *= sx;
                    mark[1] *= sy;
                }
                f
            })
            .filter(|f| {
                let b = &f.proposal.bbox;
                [b.x1, b.y1, b.x2, b.y2].iter().all(|v| v.is_finite())
                    && b.width().max(b.height()) >= options.min_face_size * 0.5
            })
            .collect();
        Ok(hard_nms(found, options.nms_iou, options.top_k))
    }
}

/// The factor the frame is scaled by for YuNet so that faces of `min_face_size` become
/// [`YUNET_SMALLEST_FACE`]; at most 1.
fn input_scale(min_face_size: f32) -> f32 {
    if min_face_size.is_finite() && min_face_size > YUNET_SMALLEST_FACE {
        YUNET_SMALLEST_FACE / min_face_size
    } else {
        1.0
    }
}

/// `side` rounded up to a multiple of 32.
fn padded(side: usize) -> usize {
    side.div_ceil(PAD_MULTIPLE) * PAD_MULTIPLE
}

/// The cells of one stride scoring at least `threshold`, decoded; `None` when the output sizes
/// do not fit the input size.
#[allow(clippy::too_many_arguments)]
fn decode_stride(
    stride: usize,
    pad_w: usize,
    pad_h: usize,
    cls: &[f32],
    obj: &[f32],
    bbox: &[f32],
    kps: &[f32],
    threshold: f32,
) -> Option<Vec<YuNetFace>> {
    let (cols, rows) = (pad_w / stride, pad_h / stride);
    let cells = cols * rows;
    if cls.len() != cells
        || obj.len() != cells
        || bbox.len() != cells * 4
        || kps.len() != cells * 10
    {
        return None;
    }
    let s = stride as f32;
    let mut out = Vec::new();
    for idx in 0..cells {
        let score = (cls[idx].clamp(0.0, 1.0) * obj[idx].clamp(0.0, 1.0)).sqrt();
        // NaN scores never pass.
        if score.is_nan() || score < threshold {
            continue;
        }
        let (r, c) = ((idx / cols) as f32, (idx % cols) as f32);
        let b = &bbox[idx * 4..idx * 4 + 4];
        let (cx, cy) = ((c + b[0]) * s, (r + b[1]) * s);
        let (w, h) = (b[2].exp() * s, b[3].exp() * s);
        let mut landmarks = [[0f32; 2]; 5];
        for (n, mark) in landmarks.iter_mut().enumerate() {
            *mark = [
                (kps[idx * 10 + 2 * n] + c) * s,
                (kps[idx * 10 + 2 * n + 1] + r) * s,
            ];
        }
        out.push(YuNetFace {
            proposal: Proposal {
                bbox: FaceBox {
                    x1: cx - w / 2.0,
                    y1: cy - h / 2.0,
                    x2: cx + w / 2.0,
                    y2: cy + h / 2.0,
                },
                score,
            },
            landmarks,
        });
    }
    Some(out)
}

/// Interleaved RGB pixels (`u8`, or `f32` 0..255) of a `width` x `height` image as a planar
/// BGR `[3, pad_h, pad_w]` tensor of 0..255 values, zero below and right of the image.
fn input_tensor<T: Copy + Into<f32>>(
    rgb: &[T],
    width: usize,
    height: usize,
    pad_w: usize,
    pad_h: usize,
) -> Vec<f32> {
    let plane = pad_w * pad_h;
    let mut out = vec![0f32; plane * 3];
    let (blue, rest) = out.split_at_mut(plane);
    let (green, red) = rest.split_at_mut(plane);
    for (y, row) in rgb.chunks_exact(width * 3).enumerate().take(height) {
        let start = y * pad_w;
        for (x, px) in row.chunks_exact(3).enumerate() {
            red[start + x] = px[0].into();
            green[start + x] = px[1].into();
            blue[start + x] = px[2].into();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_scaled_so_that_the_smallest_face_is_what_yunet_finds() {
        assert_eq!(input_scale(YUNET_SMALLEST_FACE), 1.0);
        assert_eq!(input_scale(8.0), 1.0, "never enlarged");
        assert_eq!(input_scale(YuNetOptions::default().min_face_size), 1.0);
        assert_eq!(input_scale(2.0 * YUNET_SMALLEST_FACE), 0.5);
        assert_eq!(input_scale(f32::NAN), 1.0);
    }

    #[test]
    fn sides_are_padded_to_multiples_of_32() {
        assert_eq!(padded(640), 640);
        assert_eq!(padded(360), 384);
        assert_eq!(padded(720), 736);
        assert_eq!(padded(1080), 1088);
        assert_eq!(padded(1), 32);
    }

    #[test]
    fn input_is_planar_bgr_and_zero_padded() {
        let image = RgbImage::from_fn(3, 2, |x, y| image::Rgb([10 + x as u8, 20 + y as u8, 30]));
        let t = input_tensor(image.as_raw(), 3, 2, 32, 32);
        let plane = 32 * 32;
        assert_eq!(t.len(), plane * 3);
        // Blue first, then green, then red.
        assert_eq!(t[0], 30.0);
        assert_eq!(t[plane + 32], 21.0); // green of (0, 1)
        assert_eq!(t[2 * plane + 2], 12.0); // red of (2, 0)
                                            // Padding is zero.
        assert_eq!(t[3], 0.0);
        assert_eq!(t[2 * 32], 0.0);
    }

    #[test]
    fn cells_decode_to_boxes_and_landmarks_in_pixels() {
        // Stride 8 over a 32x16 input: 4 x 2 cells; only cell (r 1, c 2) scores.
        let (cols, rows) = (4, 2);
        let cells = cols * rows;
        let mut cls = vec![0.1; cells];
        let mut obj = vec![0.2; cells];
        let idx = cols + 2;
        cls[idx] = 0.81;
        obj[idx] = 1.5; // clamped to 1
        let mut bbox = vec![0.0; cells * 4];
        bbox[idx * 4..idx * 4 + 4].copy_from_slice(&[0.5, 0.25, 2f32.ln(), 0.0]);
        let mut kps = vec![0.0; cells * 10];
        kps[idx * 10] = 0.5;
        kps[idx * 10 + 1] = -0.5;
        let faces = decode_stride(8, 32, 16, &cls, &obj, &bbox, &kps, 0.6).unwrap();
        assert_eq!(faces.len(), 1);
        let f = &faces[0];
        assert!((f.proposal.score - 0.9).abs() < 1e-6);
        // Centre (2.5 * 8, 1.25 * 8) = (20, 10), size (16, 8).
        assert_eq!(
            f.proposal.bbox,
            FaceBox {
                x1: 12.0,
                y1: 6.0,
                x2: 28.0,
                y2: 14.0
            }
        );
        assert_eq!(f.landmarks[0], [20.0, 4.0]);
        assert_eq!(f.landmarks[1], [16.0, 8.0]);
        // Sizes that do not fit the input are refused.
        assert!(decode_stride(8, 64, 16, &cls, &obj, &bbox, &kps, 0.6).is_none());
        // NaN scores never pass.
        let mut nan = cls.clone();
        nan[idx] = f32::NAN;
        assert!(decode_stride(8, 32, 16, &nan, &obj, &bbox, &kps, 0.6)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn onet_box_is_a_square_around_the_proposal() {
        let options = YuNetOptions {
            box_scale: 1.2,
            box_shift_y: 0.1,
            ..YuNetOptions::default()
        };
        let b = options.onet_box(&FaceBox {
            x1: 10.0,
            y1: 20.0,
            x2: 50.0,
            y2: 70.0,
        });
        assert!((b.width() - 60.0).abs() < 1e-4 && (b.height() - 60.0).abs() < 1e-4);
        assert!(((b.y1 + b.y2) / 2.0 - 50.0).abs() < 1e-4);
    }
}
