//! Dense (68-point) landmarks for alignment.
//!
//! MTCNN's five points are predicted from a 48x48 crop and wobble by a pixel or two, which moves
//! the aligned face and the embedding. `fr_landmark.onnx`, shipped with the embedder, predicts 68
//! points; eye centres averaged over four points each, the nose tip and mouth corners averaged over
//! the outer and inner lip give steadier alignment (as the embedder's own package does). Measured
//! on the public set: false accepts at the calibrated threshold went from 2-4 % to 0 (see
//! docs/accuracy.md).

use std::path::Path;

use ort::value::TensorRef;

use super::detect::{FaceBox, Landmarks};
use super::resize::round_non_negative;
use super::RgbImage;
use crate::error::RecognizerError;
use crate::runtime::{RuntimeOptions, SessionPool};

/// Side of the grey square the landmark model reads.
const INPUT_SIDE: usize = 64;

/// The 68-point landmark model.
pub struct LandmarkModel {
    model: SessionPool,
}

impl LandmarkModel {
    /// Load `fr_landmark.onnx`.
    pub fn load(path: &Path, runtime: &RuntimeOptions) -> Result<LandmarkModel, RecognizerError> {
        Ok(LandmarkModel {
            model: SessionPool::load(path, runtime)?,
        })
    }

    /// Five alignment points (eyes, nose, mouth corners) for the face in `bbox`, or `None` when
    /// the box has no pixels inside the image.
    pub fn five_points(
        &self,
        image: &RgbImage,
        bbox: &FaceBox,
    ) -> Result<Option<Landmarks>, RecognizerError> {
        let (width, height) = (image.width() as i64, image.height() as i64);
        // The box clipped to the image, in whole pixels.
        let x1 = (bbox.x1.max(0.0) as i64).min(width - 1);
        let y1 = (bbox.y1.max(0.0) as i64).min(height - 1);
        let x2 = (bbox.x2.min((width - 1) as f32) as i64).max(0);
        let y2 = (bbox.y2.min((height - 1) as f32) as i64).max(0);
        if x2 - x1 < 2 || y2 - y1 < 2 {
            return Ok(None);
        }
        let input = grey_resized(image, x1, y1, x2 - x1, y2 - y1);
        let points = self.model.with_session(|session| {
            let tensor = TensorRef::from_array_view((
                [1usize, 1, INPUT_SIDE, INPUT_SIDE],
                input.as_slice(),
            ))?;
            let outputs = session.run(ort::inputs![tensor])?;
            let (_, values) = outputs[0].try_extract_tensor::<f32>()?;
            Ok(values.to_vec())
        })?;
        if points.len() != 136 || points.iter().any(|v| !v.is_finite()) {
            return Err(RecognizerError::ModelOutput {
                model: self.model.name().to_string(),
                message: format!("expected 136 finite values, got {}", points.len()),
            });
        }
        let (w, h) = ((x2 - x1) as f32, (y2 - y1) as f32);
        let point = |i: usize| {
            [
                points[2 * i] * w + x1 as f32,
                points[2 * i + 1] * h + y1 as f32,
            ]
        };
        Ok(Some(five_from_68(&point)))
    }
}

/// The 68-point (iBUG) layout reduced to the ArcFace five: eye centres from four eyelid points,
/// nose tip, mouth corners averaged over the outer and inner lip corners.
fn five_from_68(point: &dyn Fn(usize) -> [f32; 2]) -> Landmarks {
    let mean = |ids: &[usize]| {
        let (mut x, mut y) = (0.0, 0.0);
        for &i in ids {
            let p = point(i);
            x += p[0];
            y += p[1];
        }
        [x / ids.len() as f32, y / ids.len() as f32]
    };
    [
        mean(&[37, 38, 40, 41]),
        mean(&[43, 44, 46, 47]),
        point(30),
        mean(&[48, 60]),
        mean(&[54, 64]),
    ]
}

/// The `w` x `h` region at (x, y) as grey, bilinearly resized (pixel centres aligned, as OpenCV's
/// `INTER_LINEAR`) to 64x64, scaled by 1/256.
fn grey_resized(image: &RgbImage, x: i64, y: i64, w: i64, h: i64) -> Vec<f32> {
    let raw = image.as_raw();
    let stride = image.width() as i64 * 3;
    let grey = |px: i64, py: i64| -> f32 {
        let px = (x + px.clamp(0, w - 1)) as usize;
        let py = (y + py.clamp(0, h - 1)) as usize;
        let i = py * stride as usize + px * 3;
        0.299 * raw[i] as f32 + 0.587 * raw[i + 1] as f32 + 0.114 * raw[i + 2] as f32
    };
    let (sx, sy) = (w as f32 / INPUT_SIDE as f32, h as f32 / INPUT_SIDE as f32);
    let mut out = Vec::with_capacity(INPUT_SIDE * INPUT_SIDE);
    for oy in 0..INPUT_SIDE {
        let fy = ((oy as f32 + 0.5) * sy - 0.5).max(0.0);
        let (y0, ty) = (fy.floor() as i64, fy - fy.floor());
        for ox in 0..INPUT_SIDE {
            let fx = ((ox as f32 + 0.5) * sx - 0.5).max(0.0);
            let (x0, tx) = (fx.floor() as i64, fx - fx.floor());
            let top = grey(x0, y0) * (1.0 - tx) + grey(x0 + 1, y0) * tx;
            let bottom = grey(x0, y0 + 1) * (1.0 - tx) + grey(x0 + 1, y0 + 1) * tx;
            out.push(round_non_negative(top * (1.0 - ty) + bottom * ty) / 256.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_points_average_the_right_landmarks() {
        // Point i sits at (i, 2i): averages are easy to check.
        let point = |i: usize| [i as f32, 2.0 * i as f32];
        let five = five_from_68(&point);
        assert_eq!(five[0], [39.0, 78.0]);
        assert_eq!(five[1], [45.0, 90.0]);
        assert_eq!(five[2], [30.0, 60.0]);
        assert_eq!(five[3], [54.0, 108.0]);
        assert_eq!(five[4], [59.0, 118.0]);
    }

    #[test]
    fn grey_resize_of_a_flat_region_is_flat() {
        let image = RgbImage::from_pixel(100, 80, image::Rgb([100, 100, 100]));
        let out = grey_resized(&image, 10, 10, 50, 40);
        assert_eq!(out.len(), 64 * 64);
        assert!(out.iter().all(|v| (v - 100.0 / 256.0).abs() < 1e-6));
    }
}
