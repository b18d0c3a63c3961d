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
use super::resize::{AreaResizer, Window};
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
    /// Most pixels (padded width x height) of one YuNet run; larger inputs are detected in tiles
    /// (see [`YuNet::faces`]). Bounds the run's memory, which grows with the input area (a
    /// 1920x1088 run peaked ~330 MB above a 960x544 one).
    pub max_input_pixels: usize,
}

/// Default [`YuNetOptions::max_input_pixels`]: a 1280x736 input, so a 640x360 or 1280x720 frame
/// runs whole and a 1920x1080 frame in tiles. On the lecture hall's 1280x720 frame one whole run
/// took 31 ms against 54 ms for the shrunk frame and tiles of a 640x640 budget (the tiles
/// overlap, and a second pass covers the large faces); the 5-minute 1080p session's peak
/// memory rose from 366-382 to 420 MiB (its shrunk pass is now 1264x711).
pub const DEFAULT_MAX_INPUT_PIXELS: usize = 1280 * 736;

impl Default for YuNetOptions {
    fn default() -> Self {
        YuNetOptions {
            score_threshold: 0.6,
            nms_iou: 0.3,
            top_k: 5000,
            box_scale: 1.0,
            box_shift_y: 0.0,
            min_face_size: 20.0,
            max_input_pixels: DEFAULT_MAX_INPUT_PIXELS,
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
    ///
    /// The frame is scaled for [`YuNetOptions::min_face_size`]; when the result is larger than
    /// [`YuNetOptions::max_input_pixels`] it is detected in several runs (`plan_passes`): the
    /// whole frame shrunk to fit the budget finds the larger faces, and overlapping tiles at the
    /// full scale find the small ones, each face reported by the one tile whose core holds its
    /// centre. Peak memory then depends on the budget, not on the frame's size.
    pub fn faces(
        &self,
        image: &RgbImage,
        options: &YuNetOptions,
    ) -> Result<Vec<YuNetFace>, RecognizerError> {
        let (width, height) = (image.width() as usize, image.height() as usize);
        if width == 0 || height == 0 {
            return Ok(Vec::new());
        }
        let passes = plan_passes(
            (width, height),
            input_scale(options.min_face_size),
            options.max_input_pixels,
        );
        let mut resizer = AreaResizer::default();
        let mut pixels = Vec::new();
        let mut found = Vec::new();
        for pass in &passes {
            let (in_w, in_h) = pass.input;
            let window = pass.window;
            let input = if (in_w, in_h) == (width, height) {
                input_tensor(image.as_raw(), width, height, padded(in_w), padded(in_h))
            } else {
                resizer.resize_window(
                    image.as_raw(),
                    (width, height),
                    Window {
                        x: window.x as i64,
                        y: window.y as i64,
                        width: window.width,
                        height: window.height,
                    },
                    (in_w, in_h),
                    &mut pixels,
                );
                input_tensor(&pixels, in_w, in_h, padded(in_w), padded(in_h))
            };
            // Back to the frame's pixels.
            let sx = window.width as f32 / in_w as f32;
            let sy = window.height as f32 / in_h as f32;
            for mut face in self.run(&input, padded(in_w), padded(in_h), options)? {
                let b = &mut face.proposal.bbox;
                (b.x1, b.x2) = (b.x1 * sx + window.x as f32, b.x2 * sx + window.x as f32);
                (b.y1, b.y2) = (b.y1 * sy + window.y as f32, b.y2 * sy + window.y as f32);
                for mark in &mut face.landmarks {
                    mark[0] = mark[0] * sx + window.x as f32;
                    mark[1] = mark[1] * sy + window.y as f32;
                }
                if pass.keeps(&face.proposal.bbox) {
                    found.push(face);
                }
            }
        }
        let found: Vec<YuNetFace> = found
            .into_iter()
            .filter(|f| {
                let b = &f.proposal.bbox;
                [b.x1, b.y1, b.x2, b.y2].iter().all(|v| v.is_finite())
                    && b.width().max(b.height()) >= options.min_face_size * 0.5
            })
            .collect();
        Ok(hard_nms(found, options.nms_iou, options.top_k))
    }

    /// One run on a padded `[3, pad_h, pad_w]` input: the faces scoring at least the threshold,
    /// in pixels of that input.
    fn run(
        &self,
        input: &[f32],
        pad_w: usize,
        pad_h: usize,
        options: &YuNetOptions,
    ) -> Result<Vec<YuNetFace>, RecognizerError> {
        let threshold = options.score_threshold;
        let found = self.model.with_session(|session| {
            let tensor = TensorRef::from_array_view(([1usize, 3, pad_h, pad_w], input))?;
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
        found.ok_or_else(|| RecognizerError::ModelOutput {
            model: self.model.name().to_string(),
            message: format!(
                "output sizes do not match a {pad_w}x{pad_h} input (strides 8, 16, 32)"
            ),
        })
    }
}

/// A rectangle of the frame, in its pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Region {
    x: usize,
    y: usize,
    width: usize,
    height: usize,
}

/// One YuNet run: `window` of the frame scaled to `input` (width, height), and which of its
/// faces count.
#[derive(Clone, Debug, PartialEq)]
struct Pass {
    window: Region,
    input: (usize, usize),
    /// For a tile: the faces whose centre lies in this core (frame pixels) and whose longer
    /// side is at most `largest` count; the others belong to a neighbouring tile or to the
    /// whole-frame pass. `None`: every face counts.
    core: Option<(Region, f32)>,
}

impl Pass {
    fn keeps(&self, bbox: &FaceBox) -> bool {
        let Some((core, largest)) = self.core else {
            return true;
        };
        let (cx, cy) = ((bbox.x1 + bbox.x2) / 2.0, (bbox.y1 + bbox.y2) / 2.0);
        cx >= core.x as f32
            && cx < (core.x + core.width) as f32
            && cy >= core.y as f32
            && cy < (core.y + core.height) as f32
            && bbox.width().max(bbox.height()) <= largest
    }
}

/// Faces a tile must hold whole, as a multiple of the smallest face the whole-frame pass finds:
/// the tiles' overlap is this large, so the two passes' face sizes overlap by half.
const TILE_OVERLAP_FACES: f32 = 1.5;

/// The runs that detect a `frame` (width, height) scaled by `scale` with at most `budget`
/// padded input pixels per run.
///
/// Within the budget: one run. Otherwise (1) the whole frame shrunk to fit the budget, which
/// finds faces from [`YUNET_SMALLEST_FACE`] of its input up, i.e. `smallest` frame pixels; and
/// (2) a grid of tiles at `scale`, each within the budget, overlapping by `1.5 x smallest`
/// (scaled): a face up to that size whose centre lies in a tile's core (the tile less half the
/// overlap on each inner side; the cores partition the frame) lies wholly inside that tile. Of
/// the grids that fit, the one with the fewest input pixels in all is chosen.
fn plan_passes(frame: (usize, usize), scale: f32, budget: usize) -> Vec<Pass> {
    let (width, height) = frame;
    let scaled = |side: usize, by: f32| ((side as f32 * by).round() as usize).clamp(1, side);
    let (in_w, in_h) = (scaled(width, scale), scaled(height, scale));
    let whole = Region {
        x: 0,
        y: 0,
        width,
        height,
    };
    let budget = budget.max(PAD_MULTIPLE * PAD_MULTIPLE);
    if padded(in_w) * padded(in_h) <= budget {
        return vec![Pass {
            window: whole,
            input: (in_w, in_h),
            core: None,
        }];
    }
    // (1) The whole frame, shrunk until its padded input fits.
    let mut shrink = (budget as f32 / (padded(in_w) * padded(in_h)) as f32).sqrt();
    let (mut coarse_w, mut coarse_h) = (scaled(in_w, shrink), scaled(in_h, shrink));
    while padded(coarse_w) * padded(coarse_h) > budget && shrink > 0.01 {
        shrink *= 0.98;
        (coarse_w, coarse_h) = (scaled(in_w, shrink), scaled(in_h, shrink));
    }
    let mut passes = vec![Pass {
        window: whole,
        input: (coarse_w, coarse_h),
        core: None,
    }];
    // (2) Tiles at `scale`, in input pixels, overlapping by 1.5 x the smallest face of (1).
    // Tiles start at multiples of the largest stride, so their cells fall where the cells of
    // one whole-frame run would (YuNet's scores depend on where a face sits in the cell grid).
    let smallest_in = YUNET_SMALLEST_FACE * in_w as f32 / coarse_w as f32;
    let overlap = (TILE_OVERLAP_FACES * smallest_in).ceil() as usize;
    let Some((x_axis, y_axis)) = tile_grid(in_w, in_h, overlap, budget) else {
        // No grid fits (a budget below a few faces): the shrunk frame alone.
        return passes;
    };
    // Input pixels -> frame pixels.
    let (fx, fy) = (width as f32 / in_w as f32, height as f32 / in_h as f32);
    let to_frame = |v: usize, f: f32, side: usize| ((v as f32 * f).round() as usize).min(side);
    // A span of input columns and one of input rows as a rectangle of the frame.
    let frame_region = |(x0, x1): (usize, usize), (y0, y1): (usize, usize)| {
        let (fx0, fx1) = (to_frame(x0, fx, width), to_frame(x1, fx, width));
        let (fy0, fy1) = (to_frame(y0, fy, height), to_frame(y1, fy, height));
        Region {
            x: fx0,
            y: fy0,
            width: fx1 - fx0,
            height: fy1 - fy0,
        }
    };
    let largest = overlap as f32 * fx;
    for (y, y_core) in y_axis.tiles() {
        for (x, x_core) in x_axis.tiles() {
            // The last tile may reach past the frame: that part is padding, as in a whole run.
            let (x_span, y_span) = (
                (x, (x + x_axis.tile).min(in_w)),
                (y, (y + y_axis.tile).min(in_h)),
            );
            passes.push(Pass {
                window: frame_region(x_span, y_span),
                input: (x_span.1 - x_span.0, y_span.1 - y_span.0),
                core: Some((frame_region(x_core, y_core), largest)),
            });
        }
    }
    passes
}

/// Tiles along one side of the input: `count` tiles of `tile` pixels, `step` apart (both
/// multiples of 32), overlapping by at least the requested overlap and covering `side`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TileAxis {
    side: usize,
    count: usize,
    tile: usize,
    step: usize,
}

impl TileAxis {
    /// The smallest tile (a multiple of 32) that covers `side` in `count` tiles overlapping by
    /// at least `overlap`; `None` if there is none.
    fn new(side: usize, count: usize, overlap: usize) -> Option<TileAxis> {
        let step_of = |tile: usize| (tile.saturating_sub(overlap) / PAD_MULTIPLE) * PAD_MULTIPLE;
        let mut tile = padded((side + (count - 1) * overlap).div_ceil(count));
        while tile <= padded(side) {
            let step = step_of(tile);
            // Every tile must start inside the side: a tile wholly past it would be empty.
            let fits = step > 0 && (count - 1) * step < side && (count - 1) * step + tile >= side;
            if count == 1 || fits {
                return Some(TileAxis {
                    side,
                    count,
                    tile,
                    step,
                });
            }
            tile += PAD_MULTIPLE;
        }
        None
    }

    /// Each tile's start and its core (start, end): the cores split the overlaps in the middle
    /// and together cover `0..side` once.
    fn tiles(&self) -> Vec<(usize, (usize, usize))> {
        let start = |i: usize| i * self.step;
        let end = |i: usize| (start(i) + self.tile).min(self.side);
        (0..self.count)
            .map(|i| {
                let lo = if i == 0 {
                    0
                } else {
                    (start(i) + end(i - 1)) / 2
                };
                let hi = if i + 1 == self.count {
                    self.side
                } else {
                    (start(i + 1) + end(i)) / 2
                };
                (start(i), (lo, hi))
            })
            .collect()
    }
}

/// The grid of tiles over an `in_w` x `in_h` input, each within `budget` padded pixels and
/// overlapping by at least `overlap`, with the fewest pixels in all; `None` if none fits.
fn tile_grid(
    in_w: usize,
    in_h: usize,
    overlap: usize,
    budget: usize,
) -> Option<(TileAxis, TileAxis)> {
    let mut best: Option<(TileAxis, TileAxis, usize)> = None;
    for cols in 1..=in_w.div_ceil(PAD_MULTIPLE) {
        let Some(x) = TileAxis::new(in_w, cols, overlap) else {
            continue;
        };
        if x.tile * PAD_MULTIPLE > budget {
            continue;
        }
        let y = (1..=in_h.div_ceil(PAD_MULTIPLE))
            .filter_map(|rows| TileAxis::new(in_h, rows, overlap))
            .find(|y| x.tile * y.tile <= budget);
        if let Some(y) = y {
            let total = x.count * y.count * x.tile * y.tile;
            if best.is_none_or(|(.., t)| total < t) {
                best = Some((x, y, total));
            }
        }
    }
    best.map(|(x, y, _)| (x, y))
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

    /// Every pass fits the budget, the tiles' cores cover every frame pixel exactly once, and a
    /// face up to the tiles' largest size centred in a core lies wholly inside that tile.
    fn check_plan(frame: (usize, usize), scale: f32, budget: usize) -> Vec<Pass> {
        let passes = plan_passes(frame, scale, budget);
        for pass in &passes {
            let (w, h) = pass.input;
            assert!(padded(w) * padded(h) <= budget, "{frame:?}: {pass:?}");
        }
        let tiles: Vec<&Pass> = passes.iter().filter(|p| p.core.is_some()).collect();
        if tiles.is_empty() {
            return passes;
        }
        assert_eq!(passes[0].core, None, "the whole frame comes first");
        let step = 7;
        for y in (0..frame.1).step_by(step) {
            for x in (0..frame.0).step_by(step) {
                let holders: Vec<&&Pass> = tiles
                    .iter()
                    .filter(|t| {
                        t.keeps(&FaceBox {
                            x1: x as f32,
                            y1: y as f32,
                            x2: x as f32 + 1.0,
                            y2: y as f32 + 1.0,
                        })
                    })
                    .collect();
                assert_eq!(holders.len(), 1, "{frame:?}: ({x}, {y}) in {holders:?}");
                let (window, (_, largest)) = (holders[0].window, holders[0].core.unwrap());
                let half = largest / 2.0;
                let (cx, cy) = (x as f32 + 0.5, y as f32 + 0.5);
                let inside_x = (cx - half).max(0.0) >= window.x as f32 - 1.0
                    && (cx + half).min(frame.0 as f32) <= (window.x + window.width) as f32 + 1.0;
                let inside_y = (cy - half).max(0.0) >= window.y as f32 - 1.0
                    && (cy + half).min(frame.1 as f32) <= (window.y + window.height) as f32 + 1.0;
                assert!(
                    inside_x && inside_y,
                    "{frame:?}: ({x}, {y}) face {largest} px cut by {window:?}"
                );
            }
        }
        // The whole-frame pass finds faces from YUNET_SMALLEST_FACE of its input: the tiles
        // must hold faces a half larger whole.
        let coarse = passes[0].input.0 as f32 / frame.0 as f32;
        let smallest = YUNET_SMALLEST_FACE / coarse;
        let (_, largest) = tiles[0].core.unwrap();
        assert!(
            largest >= 1.5 * smallest * scale.min(1.0) - 1.0,
            "{largest} vs {smallest}"
        );
        passes
    }

    #[test]
    fn frames_within_the_budget_run_whole() {
        for frame in [(640, 360), (1280, 720), (720, 1280)] {
            let passes = check_plan(frame, 1.0, DEFAULT_MAX_INPUT_PIXELS);
            assert_eq!(passes.len(), 1);
            assert_eq!(passes[0].input, frame);
        }
        // Scaled down for a larger min-face, a 1080p frame fits too.
        let passes = check_plan((1920, 1080), 0.25, DEFAULT_MAX_INPUT_PIXELS);
        assert_eq!(passes.len(), 1);
        assert_eq!(passes[0].input, (480, 270));
    }

    #[test]
    fn large_frames_are_detected_whole_and_in_tiles_within_the_budget() {
        for (frame, scale) in [
            ((1920, 1080), 1.0),
            ((1920, 1080), 0.8),
            ((3840, 2160), 1.0),
            ((1080, 1920), 1.0),
            ((8000, 100), 1.0),
        ] {
            let passes = check_plan(frame, scale, DEFAULT_MAX_INPUT_PIXELS);
            assert!(passes.len() > 2, "{frame:?}: {passes:?}");
            // Tiles cost at most ~1.7x one whole run (plus the shrunk frame).
            let tiles: usize = passes[1..]
                .iter()
                .map(|p| padded(p.input.0) * padded(p.input.1))
                .sum();
            let whole = padded((frame.0 as f32 * scale) as usize)
                * padded((frame.1 as f32 * scale) as usize);
            assert!(tiles * 10 <= whole * 17, "{frame:?}: {tiles} vs {whole}");
        }
        // 1080p: the frame shrunk to 1264x711, then 2 x 2 tiles of at most 992x576 starting at
        // multiples of 32.
        let passes = plan_passes((1920, 1080), 1.0, DEFAULT_MAX_INPUT_PIXELS);
        assert_eq!(passes.len(), 5, "{passes:?}");
        assert_eq!(passes[0].input, (1264, 711));
        assert!(passes[1..]
            .iter()
            .all(|p| p.window.x % 32 == 0 && p.window.y % 32 == 0));
    }

    #[test]
    fn every_tile_starts_inside_the_side() {
        for side in [1, 31, 100, 333, 1080, 1920] {
            for count in 1..12 {
                for overlap in [0, 10, 45, 72, 200] {
                    let Some(axis) = TileAxis::new(side, count, overlap) else {
                        continue;
                    };
                    let tiles = axis.tiles();
                    assert_eq!(tiles.len(), count);
                    for (start, (lo, hi)) in &tiles {
                        assert!(*start < side, "{axis:?}: a tile starts at {start}");
                        assert!(lo <= hi && *hi <= side, "{axis:?}: core {lo}..{hi}");
                    }
                    assert!(tiles.last().is_some_and(|(s, _)| s + axis.tile >= side));
                }
            }
        }
        // Five tiles of a 100 px side overlapping by 10 would put the last one past the end.
        assert_eq!(TileAxis::new(100, 5, 10), None);
    }

    #[test]
    fn a_tiny_budget_still_detects_the_shrunk_frame() {
        let passes = check_plan((1920, 1080), 1.0, 64 * 64);
        assert!(!passes.is_empty());
        assert_eq!(passes[0].core, None);
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
