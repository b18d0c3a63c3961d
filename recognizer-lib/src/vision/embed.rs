//! Face embeddings with `fr_feature.onnx`: 112x112 aligned RGB -> 512 numbers, L2-normalised.

use std::path::Path;

use ort::value::TensorRef;

use super::align::ALIGNED_SIDE;
use super::RgbImage;
use crate::error::RecognizerError;
use crate::runtime::{RuntimeOptions, SessionPool};

/// Length of an `fr_feature` embedding.
pub const EMBEDDING_DIM: usize = 512;

/// Turns aligned faces into unit-length embedding vectors.
pub struct FaceEmbedder {
    model: SessionPool,
}

impl FaceEmbedder {
    /// Load `fr_feature.onnx`.
    pub fn load(path: &Path, runtime: &RuntimeOptions) -> Result<FaceEmbedder, RecognizerError> {
        Ok(FaceEmbedder {
            model: SessionPool::load(path, runtime)?,
        })
    }

    /// Embedding of one aligned face (must be 112x112).
    pub fn embed(&self, face: &RgbImage) -> Result<Vec<f32>, RecognizerError> {
        if face.dimensions() != (ALIGNED_SIDE as u32, ALIGNED_SIDE as u32) {
            return Err(RecognizerError::ModelOutput {
                model: self.model.name().to_string(),
                message: format!(
                    "aligned face must be {ALIGNED_SIDE}x{ALIGNED_SIDE}, got {:?}",
                    face.dimensions()
                ),
            });
        }
        let input = planar_normalised(face);
        // The exported graph has a fixed batch of 1, so faces go through one at a time.
        let raw = self.model.with_session(|session| {
            let tensor = TensorRef::from_array_view((
                [1usize, 3, ALIGNED_SIDE, ALIGNED_SIDE],
                input.as_slice(),
            ))?;
            let outputs = session.run(ort::inputs![tensor])?;
            let (_, values) = outputs[0].try_extract_tensor::<f32>()?;
            Ok(values.to_vec())
        })?;
        if raw.len() != EMBEDDING_DIM {
            return Err(RecognizerError::ModelOutput {
                model: self.model.name().to_string(),
                message: format!("expected {EMBEDDING_DIM} values, got {}", raw.len()),
            });
        }
        l2_normalised(raw).ok_or_else(|| RecognizerError::ModelOutput {
            model: self.model.name().to_string(),
            message: "embedding is zero or not finite".to_string(),
        })
    }
}

/// RGB interleaved -> planar `[3, H, W]`, `(x - 127.5) / 128`.
fn planar_normalised(face: &RgbImage) -> Vec<f32> {
    let plane = (face.width() * face.height()) as usize;
    let mut out = vec![0f32; plane * 3];
    for (i, px) in face.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (px.0[c] as f32 - 127.5) / 128.0;
        }
    }
    out
}

/// `v / |v|`, or `None` when `v` is zero or has a non-finite value.
pub fn l2_normalised(mut v: Vec<f32>) -> Option<Vec<f32>> {
    let norm = v
        .iter()
        .map(|x| (*x as f64) * (*x as f64))
        .sum::<f64>()
        .sqrt();
    if !(norm.is_finite() && norm > 1e-12) {
        return None;
    }
    for x in &mut v {
        *x = (*x as f64 / norm) as f32;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_gives_unit_length() {
        let v = l2_normalised(vec![3.0, 4.0]).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert!(l2_normalised(vec![0.0, 0.0]).is_none());
        assert!(l2_normalised(vec![f32::NAN, 1.0]).is_none());
    }

    #[test]
    fn planar_layout_is_channel_major() {
        let face = RgbImage::from_fn(2, 1, |x, _| image::Rgb([x as u8 * 255, 0, 128]));
        let out = planar_normalised(&face);
        assert_eq!(out.len(), 6);
        assert!((out[0] + 127.5 / 128.0).abs() < 1e-6); // R of pixel 0
        assert!((out[1] - 127.5 / 128.0).abs() < 1e-6); // R of pixel 1
        assert!((out[4] - 0.5 / 128.0).abs() < 1e-6); // B of pixel 0
    }
}
