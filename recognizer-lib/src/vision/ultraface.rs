//! A fast face detector for video frames: UltraFace RFB-320 (`fr_detect.onnx`, shipped with the
//! embedder) proposes boxes in one ~3 ms pass over the whole frame, and MTCNN's O-Net (the last
//! stage of [`FaceDetector`]) scores them, regresses the box and places the five landmarks,
//! exactly as in the MTCNN cascade.
//!
//! Why the hybrid: UltraFace's own boxes frame faces differently from MTCNN's, and on the public
//! photo set recognition with them (and the dense landmarks) was worse (open-set 0.956 instead of
//! 0.990). O-Net costs 0.3 ms per face and regresses the box to MTCNN's framing, so the hybrid
//! gives MTCNN-like faces for ~5 ms per 640x360 frame instead of ~40-50 ms for the whole cascade
//! (one core). Measured with the hybrid for the probes of the public photo set (enrolment with
//! MTCNN): open-set 0.990, FAR 0, the same three misses as MTCNN; box IoU with MTCNN's median
//! 0.93, embedding cosine median 0.996. On the test videos it finds every face MTCNN finds with
//! O-Net score above 0.93 (it misses some profile, blurred or 25-38 px background faces).
//!
//! Model contract (from the package's JavaScript): input `input` `[1, 3, 240, 320]`, RGB
//! `(x - 127) / 128` of the whole image resized to 320x240 (bilinear, aspect ratio not kept);
//! outputs `scores` `[1, 4420, 2]` (column 1: face) and `boxes` `[1, 4420, 4]`, already decoded
//! corners `x1, y1, x2, y2` relative to the image (0..1).

use std::path::Path;

use ort::value::TensorRef;

use super::detect::{Detection, FaceBox, FaceDetector};
use super::resize::round_non_negative;
use super::RgbImage;
use crate::error::RecognizerError;
use crate::runtime::{RuntimeOptions, SessionPool};

/// Width of UltraFace RFB-320's input.
pub const ULTRAFACE_WIDTH: usize = 320;
/// Height of UltraFace RFB-320's input.
pub const ULTRAFACE_HEIGHT: usize = 240;
/// Number of prior boxes (outputs) of RFB-320.
const PRIORS: usize = 4420;
/// A proposal overlapping a detection by more than this (IoU) counts as found.
const RETRY_COVERED_IOU: f32 = 0.3;

/// Settings of the fast (UltraFace + O-Net) detector.
#[derive(Clone, Debug, PartialEq)]
pub struct FastDetectorOptions {
    /// UltraFace face score above which a prior box becomes a proposal (the package uses 0.65).
    pub score_threshold: f32,
    /// IoU above which the lower-scored of two proposals is dropped.
    pub nms_iou: f32,
    /// Proposals considered by NMS, best first.
    pub top_k: usize,
    /// Side of the square handed to O-Net, as a multiple of the proposal's longer side. 1.0
    /// agreed best with MTCNN on the public photo set (0.9-1.0 all within a photo of each other;
    /// 1.05 and up lost faces: O-Net rejects squares much larger than the face).
    pub box_scale: f32,
    /// Shift of that square's centre downwards, as a fraction of the proposal's height
    /// (negative: upwards).
    pub box_shift_y: f32,
    /// Proposals smaller than this (longer side, pixels) are ignored.
    pub min_face_size: f32,
    /// Give proposals O-Net rejects that are taller than wide a second try with a square as
    /// wide as the proposal (see [`UltraFace::detect_refined`]).
    pub retry_narrow: bool,
}

impl Default for FastDetectorOptions {
    fn default() -> Self {
        FastDetectorOptions {
            score_threshold: 0.65,
            nms_iou: 0.4,
            top_k: 750,
            box_scale: 1.0,
            box_shift_y: 0.0,
            min_face_size: 12.0,
            retry_narrow: true,
        }
    }
}

impl FastDetectorOptions {
    /// The square box O-Net is given for a proposal: the longer side (times `box_scale`) around
    /// the proposal's centre (moved down by `box_shift_y` of its height).
    pub fn onet_box(&self, proposal: &FaceBox) -> FaceBox {
        onet_square(proposal, self.box_scale, self.box_shift_y)
    }
}

/// The second try for a proposal O-Net rejected: a square as wide as the proposal (times
/// `box_scale`) around its centre, or `None` when that is the same box as the first try (the
/// proposal is not taller than wide).
fn narrow_box(options: &FastDetectorOptions, proposal: &FaceBox) -> Option<FaceBox> {
    let (w, h) = (proposal.width(), proposal.height());
    if h <= w * 1.05 {
        return None;
    }
    let side = w * options.box_scale;
    let cx = proposal.x1 + w * 0.5;
    let cy = proposal.y1 + h * 0.5 + options.box_shift_y * h;
    Some(FaceBox {
        x1: cx - side * 0.5,
        y1: cy - side * 0.5,
        x2: cx + side * 0.5,
        y2: cy + side * 0.5,
    })
}

/// One UltraFace proposal in pixel coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Proposal {
    /// The proposed box.
    pub bbox: FaceBox,
    /// UltraFace face score, 0..1.
    pub score: f32,
}

/// UltraFace RFB-320 (`fr_detect.onnx`): face proposals over a whole frame.
pub struct UltraFace {
    model: SessionPool,
}

impl UltraFace {
    /// Load `fr_detect.onnx`.
    pub fn load(path: &Path, runtime: &RuntimeOptions) -> Result<UltraFace, RecognizerError> {
        Ok(UltraFace {
            model: SessionPool::load(path, runtime)?,
        })
    }

    /// Faces in `image`: UltraFace's proposals, each scored, regressed and given five landmarks
    /// by `mtcnn`'s O-Net ([`FaceDetector::refine_proposals`]), highest score first.
    ///
    /// O-Net is picky about framing: UltraFace's box of a face often reaches down to the neck
    /// or up into the hair, and the square around its longer side is then too large for O-Net
    /// (a face O-Net scores 0.99 in MTCNN's own box can score 0.2). Proposals O-Net rejects
    /// that are taller than wide get a second try with a square as wide as the proposal; the
    /// first try is kept for all others because it agrees best with MTCNN's boxes (on the
    /// public photo set and the test videos).
    pub fn detect_refined(
        &self,
        mtcnn: &FaceDetector,
        image: &RgbImage,
        options: &FastDetectorOptions,
    ) -> Result<Vec<Detection>, RecognizerError> {
        let proposals = self.proposals(image, options)?;
        if proposals.is_empty() {
            return Ok(Vec::new());
        }
        let boxes: Vec<FaceBox> = proposals
            .iter()
            .map(|p| options.onet_box(&p.bbox))
            .collect();
        let mut faces = mtcnn.refine_proposals(image, &boxes)?;
        if options.retry_narrow {
            let retry: Vec<FaceBox> = proposals
                .iter()
                .filter(|p| {
                    !faces
                        .iter()
                        .any(|f| iou(&f.bbox, &p.bbox) > RETRY_COVERED_IOU)
                })
                .filter_map(|p| narrow_box(options, &p.bbox))
                .collect();
            if !retry.is_empty() {
                let found = mtcnn.refine_proposals(image, &retry)?;
                let new: Vec<Detection> = found
                    .into_iter()
                    .filter(|d| faces.iter().all(|f| iou(&f.bbox, &d.bbox) <= 0.5))
                    .collect();
                faces.extend(new);
                faces.sort_by(|a, b| b.score.total_cmp(&a.score));
            }
        }
        Ok(faces)
    }

    /// Faces in `image` by UltraFace alone (score above the threshold, after NMS), highest
    /// score first, in pixels of `image`.
    pub fn proposals(
        &self,
        image: &RgbImage,
        options: &FastDetectorOptions,
    ) -> Result<Vec<Proposal>, RecognizerError> {
        let (width, height) = image.dimensions();
        if width == 0 || height == 0 {
            return Ok(Vec::new());
        }
        let input = input_tensor(image);
        let threshold = options.score_threshold;
        let kept = self.model.with_session(|session| {
            let tensor = TensorRef::from_array_view((
                [1usize, 3, ULTRAFACE_HEIGHT, ULTRAFACE_WIDTH],
                input.as_slice(),
            ))?;
            let outputs = session.run(ort::inputs![tensor])?;
            let (_, scores) = outputs["scores"].try_extract_tensor::<f32>()?;
            let (_, boxes) = outputs["boxes"].try_extract_tensor::<f32>()?;
            if scores.len() != PRIORS * 2 || boxes.len() != PRIORS * 4 {
                return Ok(None);
            }
            // Copy only what passes the threshold: a handful of the 4420 priors.
            let mut kept = Vec::new();
            for k in 0..PRIORS {
                let s = scores[k * 2 + 1];
                if s > threshold {
                    kept.push((
                        s,
                        [
                            boxes[k * 4],
                            boxes[k * 4 + 1],
                            boxes[k * 4 + 2],
                            boxes[k * 4 + 3],
                        ],
                    ));
                }
            }
            Ok(Some(kept))
        })?;
        let Some(kept) = kept else {
            return Err(RecognizerError::ModelOutput {
                model: self.model.name().to_string(),
                message: format!("expected scores [1, {PRIORS}, 2] and boxes [1, {PRIORS}, 4]"),
            });
        };
        let (w, h) = (width as f32, height as f32);
        let candidates: Vec<Proposal> = kept
            .into_iter()
            .map(|(score, b)| Proposal {
                bbox: FaceBox {
                    x1: b[0] * w,
                    y1: b[1] * h,
                    x2: b[2] * w,
                    y2: b[3] * h,
                },
                score,
            })
            .filter(|p| {
                p.bbox.x1.is_finite()
                    && p.bbox.y1.is_finite()
                    && p.bbox.x2.is_finite()
                    && p.bbox.y2.is_finite()
                    && p.bbox.width().max(p.bbox.height()) >= options.min_face_size
            })
            .collect();
        Ok(hard_nms(candidates, options.nms_iou, options.top_k))
    }
}

/// Intersection over union of two boxes (continuous coordinates).
pub fn iou(a: &FaceBox, b: &FaceBox) -> f32 {
    let w = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let h = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let inter = w * h;
    let union = a.area() + b.area() - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Greedy NMS over the best `top_k` of `items` (each with a box and a score, see
/// [`Scored`]), best first: an item is kept unless it overlaps a kept one by more than
/// `threshold` (IoU).
pub(crate) fn hard_nms<T: Scored>(mut items: Vec<T>, threshold: f32, top_k: usize) -> Vec<T> {
    items.sort_by(|a, b| b.proposal().score.total_cmp(&a.proposal().score));
    items.truncate(top_k);
    let mut keep: Vec<T> = Vec::new();
    for item in items {
        let bbox = item.proposal().bbox;
        if keep
            .iter()
            .all(|k| iou(&k.proposal().bbox, &bbox) <= threshold)
        {
            keep.push(item);
        }
    }
    keep
}

/// Something with a proposal's box and score (see [`hard_nms`]).
pub(crate) trait Scored {
    fn proposal(&self) -> &Proposal;
}

impl Scored for Proposal {
    fn proposal(&self) -> &Proposal {
        self
    }
}

/// The square box O-Net is given for a detector's proposal: the proposal's longer side times
/// `scale`, around its centre moved down by `shift_y` of its height.
pub(crate) fn onet_square(proposal: &FaceBox, scale: f32, shift_y: f32) -> FaceBox {
    let (w, h) = (proposal.width(), proposal.height());
    let side = w.max(h) * scale;
    let cx = proposal.x1 + w * 0.5;
    let cy = proposal.y1 + h * 0.5 + shift_y * h;
    FaceBox {
        x1: cx - side * 0.5,
        y1: cy - side * 0.5,
        x2: cx + side * 0.5,
        y2: cy + side * 0.5,
    }
}

/// Source index and weight of the second neighbour for each destination index of one axis,
/// OpenCV `INTER_LINEAR` style (pixel centres aligned, clamped at the borders).
fn linear_taps(src_len: usize, dst_len: usize) -> Vec<(usize, usize, f32)> {
    let scale = src_len as f32 / dst_len as f32;
    (0..dst_len)
        .map(|d| {
            let f = (d as f32 + 0.5) * scale - 0.5;
            let mut s = f.floor();
            let mut t = f - s;
            if s < 0.0 {
                s = 0.0;
                t = 0.0;
            }
            let s = s as usize;
            if s + 1 >= src_len {
                (src_len - 1, src_len - 1, 0.0)
            } else {
                (s, s + 1, t)
            }
        })
        .collect()
}

/// The whole image resized bilinearly to 320x240 (rounded to 8 bits, as OpenCV does), planar
/// RGB, `(x - 127) / 128`.
///
/// Each source row a destination row reads is interpolated horizontally once, into planar
/// scratch rows (source rows are shared by neighbouring destination rows), then the vertical
/// pass runs over contiguous planes. Same operations in the same order as interpolating each
/// destination pixel from its four neighbours, so the values are identical.
fn input_tensor(image: &RgbImage) -> Vec<f32> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let raw = image.as_raw();
    let xs = linear_taps(width, ULTRAFACE_WIDTH);
    let ys = linear_taps(height, ULTRAFACE_HEIGHT);
    let plane = ULTRAFACE_WIDTH * ULTRAFACE_HEIGHT;
    let mut out = vec![0f32; plane * 3];
    // Horizontally interpolated source rows, planar: [R x 320, G x 320, B x 320].
    let row_len = ULTRAFACE_WIDTH * 3;
    let horizontal = |y: usize, into: &mut [f32]| {
        let row = &raw[y * width * 3..(y + 1) * width * 3];
        let (red, rest) = into.split_at_mut(ULTRAFACE_WIDTH);
        let (green, blue) = rest.split_at_mut(ULTRAFACE_WIDTH);
        for (ox, &(x0, x1, tx)) in xs.iter().enumerate() {
            let (a, b) = (x0 * 3, x1 * 3);
            red[ox] = row[a] as f32 * (1.0 - tx) + row[b] as f32 * tx;
            green[ox] = row[a + 1] as f32 * (1.0 - tx) + row[b + 1] as f32 * tx;
            blue[ox] = row[a + 2] as f32 * (1.0 - tx) + row[b + 2] as f32 * tx;
        }
    };
    let (mut upper, mut lower) = (vec![0f32; row_len], vec![0f32; row_len]);
    let (mut upper_y, mut lower_y) = (usize::MAX, usize::MAX);
    for (oy, &(y0, y1, ty)) in ys.iter().enumerate() {
        // Rows only move down: reuse (or swap in) what the previous destination row computed.
        if upper_y != y0 {
            if lower_y == y0 {
                std::mem::swap(&mut upper, &mut lower);
                std::mem::swap(&mut upper_y, &mut lower_y);
            } else {
                horizontal(y0, &mut upper);
                upper_y = y0;
            }
        }
        if lower_y != y1 {
            horizontal(y1, &mut lower);
            lower_y = y1;
        }
        for c in 0..3 {
            let top = &upper[c * ULTRAFACE_WIDTH..(c + 1) * ULTRAFACE_WIDTH];
            let bottom = &lower[c * ULTRAFACE_WIDTH..(c + 1) * ULTRAFACE_WIDTH];
            let start = c * plane + oy * ULTRAFACE_WIDTH;
            let dst = &mut out[start..start + ULTRAFACE_WIDTH];
            for ((v, &t), &b) in dst.iter_mut().zip(top).zip(bottom) {
                *v = (round_non_negative(t * (1.0 - ty) + b * ty) - 127.0) * 0.0078125;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposal(x1: f32, y1: f32, x2: f32, y2: f32, score: f32) -> Proposal {
        Proposal {
            bbox: FaceBox { x1, y1, x2, y2 },
            score,
        }
    }

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = FaceBox {
            x1: 0.0,
            y1: 0.0,
            x2: 10.0,
            y2: 10.0,
        };
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &a.translated(20.0, 0.0)), 0.0);
        // Shifted by half its width: intersection 50, union 150.
        assert!((iou(&a, &a.translated(5.0, 0.0)) - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_proposals_and_respects_top_k() {
        let kept = hard_nms(
            vec![
                proposal(0.0, 0.0, 10.0, 10.0, 0.7),
                proposal(1.0, 0.0, 11.0, 10.0, 0.9),
                proposal(50.0, 50.0, 60.0, 60.0, 0.8),
            ],
            0.4,
            750,
        );
        let scores: Vec<f32> = kept.iter().map(|p| p.score).collect();
        assert_eq!(scores, [0.9, 0.8]);
        let kept = hard_nms(
            vec![
                proposal(0.0, 0.0, 10.0, 10.0, 0.7),
                proposal(50.0, 50.0, 60.0, 60.0, 0.8),
            ],
            0.4,
            1,
        );
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].score, 0.8);
    }

    #[test]
    fn onet_box_is_a_scaled_square_around_the_proposal() {
        let options = FastDetectorOptions {
            box_scale: 1.2,
            box_shift_y: 0.1,
            ..FastDetectorOptions::default()
        };
        let b = options.onet_box(&FaceBox {
            x1: 10.0,
            y1: 20.0,
            x2: 50.0,
            y2: 70.0,
        });
        assert!((b.width() - 60.0).abs() < 1e-4 && (b.height() - 60.0).abs() < 1e-4);
        assert!(((b.x1 + b.x2) / 2.0 - 30.0).abs() < 1e-4);
        assert!(((b.y1 + b.y2) / 2.0 - 50.0).abs() < 1e-4);
    }

    #[test]
    fn narrow_box_only_for_tall_proposals() {
        let options = FastDetectorOptions::default();
        let square = FaceBox {
            x1: 0.0,
            y1: 0.0,
            x2: 50.0,
            y2: 51.0,
        };
        assert_eq!(narrow_box(&options, &square), None);
        // 60 wide, 100 high (face plus neck): a 60 px square around the same centre.
        let tall = FaceBox {
            x1: 10.0,
            y1: 20.0,
            x2: 70.0,
            y2: 120.0,
        };
        let b = narrow_box(&options, &tall).unwrap();
        assert_eq!((b.width(), b.height()), (60.0, 60.0));
        assert_eq!(((b.x1 + b.x2) / 2.0, (b.y1 + b.y2) / 2.0), (40.0, 70.0));
        assert_eq!(options.onet_box(&tall).width(), 100.0);
    }

    /// The straightforward version: four neighbours per destination pixel.
    fn reference_input_tensor(image: &RgbImage) -> Vec<f32> {
        let (width, height) = (image.width() as usize, image.height() as usize);
        let raw = image.as_raw();
        let xs = linear_taps(width, ULTRAFACE_WIDTH);
        let ys = linear_taps(height, ULTRAFACE_HEIGHT);
        let plane = ULTRAFACE_WIDTH * ULTRAFACE_HEIGHT;
        let mut out = vec![0f32; plane * 3];
        let (red, rest) = out.split_at_mut(plane);
        let (green, blue) = rest.split_at_mut(plane);
        for (oy, &(y0, y1, ty)) in ys.iter().enumerate() {
            let row0 = &raw[y0 * width * 3..(y0 + 1) * width * 3];
            let row1 = &raw[y1 * width * 3..(y1 + 1) * width * 3];
            let base = oy * ULTRAFACE_WIDTH;
            for (ox, &(x0, x1, tx)) in xs.iter().enumerate() {
                let (a, b) = (x0 * 3, x1 * 3);
                let mut px = [0f32; 3];
                for (c, v) in px.iter_mut().enumerate() {
                    let top = row0[a + c] as f32 * (1.0 - tx) + row0[b + c] as f32 * tx;
                    let bottom = row1[a + c] as f32 * (1.0 - tx) + row1[b + c] as f32 * tx;
                    *v = (round_non_negative(top * (1.0 - ty) + bottom * ty) - 127.0) * 0.0078125;
                }
                red[base + ox] = px[0];
                green[base + ox] = px[1];
                blue[base + ox] = px[2];
            }
        }
        out
    }

    #[test]
    fn input_tensor_is_identical_to_four_neighbour_interpolation() {
        for (w, h) in [
            (640u32, 360u32),
            (844, 614),
            (250, 250),
            (92, 112),
            (321, 241),
            (7, 5),
        ] {
            let image = RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([
                    (x * 7 + y * 3) as u8,
                    (x * y + 11) as u8,
                    (255 - (x + 2 * y) % 256) as u8,
                ])
            });
            let fast = input_tensor(&image);
            let reference = reference_input_tensor(&image);
            assert_eq!(fast.len(), reference.len());
            for (i, (f, r)) in fast.iter().zip(&reference).enumerate() {
                assert_eq!(f.to_bits(), r.to_bits(), "{w}x{h}, value {i}");
            }
        }
    }

    #[test]
    fn input_is_planar_normalised_and_resized() {
        // Left half red, right half blue, 64x48 -> 320x240.
        let image = RgbImage::from_fn(64, 48, |x, _| {
            if x < 32 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let t = input_tensor(&image);
        let plane = ULTRAFACE_WIDTH * ULTRAFACE_HEIGHT;
        assert_eq!(t.len(), plane * 3);
        let at = |c: usize, x: usize, y: usize| t[c * plane + y * ULTRAFACE_WIDTH + x];
        assert_eq!(at(0, 0, 0), 1.0);
        assert_eq!(at(2, 0, 0), -127.0 / 128.0);
        assert_eq!(at(0, 319, 239), -127.0 / 128.0);
        assert_eq!(at(2, 319, 239), 1.0);
        // Constant images stay constant.
        let grey = RgbImage::from_pixel(640, 360, image::Rgb([127, 127, 127]));
        assert!(input_tensor(&grey).iter().all(|v| *v == 0.0));
    }

    #[test]
    fn linear_taps_match_opencv_for_halving() {
        // 4 -> 2: centres at 0.5 and 2.5, i.e. the mean of pixels (0, 1) and (2, 3).
        assert_eq!(linear_taps(4, 2), vec![(0, 1, 0.5), (2, 3, 0.5)]);
        // Enlarging clamps at both borders.
        let taps = linear_taps(2, 8);
        assert_eq!(taps[0], (0, 1, 0.0));
        assert_eq!(taps[7], (1, 1, 0.0));
    }
}
