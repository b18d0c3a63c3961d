//! Face embeddings with `fr_feature.onnx`: 112x112 aligned RGB -> 512 numbers, L2-normalised.

use std::path::Path;

use ort::value::TensorRef;

use super::align::ALIGNED_SIDE;
use super::RgbImage;
use crate::error::RecognizerError;
use crate::runtime::{DynamicAxes, ProbeInput, RuntimeOptions, SessionPool};

/// Length of an `fr_feature` embedding.
pub const EMBEDDING_DIM: usize = 512;

/// Faces embedded per ONNX Runtime run at most, by default ([`FaceEmbedder::embed_batch`]
/// splits larger sets; [`FaceEmbedder::with_faces_per_run`] changes it). One: with the
/// embedder's `PRelu` rewritten and its subnormal weights flushed, runs of one face are the
/// cheapest per face (`benches/clip.rs`, `crowd_frame/embed_28_faces`: 231 ms in runs of 1
/// against 250 ms in runs of 4, paired in one sitting), and ONNX Runtime keeps what the
/// largest run needed, about 7 MB per face of the batch (after runs of 1, 4 and 16 faces: 8,
/// 29 and 111 MB). The batch dimension stays free, and checked against one face at a time,
/// for a runtime or model where larger runs pay.
pub const MAX_EMBED_BATCH: usize = 1;

/// Turns aligned faces into unit-length embedding vectors.
pub struct FaceEmbedder {
    model: SessionPool,
    faces_per_run: usize,
}

impl FaceEmbedder {
    /// Load `fr_feature.onnx`, with its batch dimension made free (the file declares one face
    /// per run) so that several faces go through one run. With
    /// [`crate::runtime::ConvLayout::Auto`] its convolution layout is chosen by timing one face
    /// both ways.
    pub fn load(path: &Path, runtime: &RuntimeOptions) -> Result<FaceEmbedder, RecognizerError> {
        Ok(FaceEmbedder {
            model: SessionPool::load_probed(
                path,
                runtime,
                DynamicAxes::Batch,
                Some(&ProbeInput {
                    shape: vec![1, 3, ALIGNED_SIDE, ALIGNED_SIDE],
                }),
            )?,
            faces_per_run: MAX_EMBED_BATCH,
        })
    }

    /// Embed up to `faces` faces per ONNX Runtime run (at least one) instead of
    /// [`MAX_EMBED_BATCH`].
    pub fn with_faces_per_run(mut self, faces: usize) -> FaceEmbedder {
        self.faces_per_run = faces.max(1);
        self
    }

    /// Embedding of one aligned face (must be 112x112).
    pub fn embed(&self, face: &RgbImage) -> Result<Vec<f32>, RecognizerError> {
        let mut embeddings = self.embed_batch(std::slice::from_ref(face))?;
        Ok(embeddings.remove(0))
    }

    /// Embeddings of aligned faces (each 112x112), in order: up to [`MAX_EMBED_BATCH`] faces
    /// per ONNX Runtime run (or as [`with_faces_per_run`](Self::with_faces_per_run) says); the
    /// values of larger runs agree with single-face runs to ~1e-6.
    ///
    /// A crowd (at least two runs of faces, so that every thread has a whole run) is spread
    /// over the sessions that are idle when the call starts, one thread each: a lecture hall's clip uses the cores
    /// that no other clip is using, while a busy service (every session taken) embeds on the
    /// calling thread alone, as before.
    pub fn embed_batch(&self, faces: &[RgbImage]) -> Result<Vec<Vec<f32>>, RecognizerError> {
        self.embed_batch_on(faces, usize::MAX)
    }

    /// [`embed_batch`](Self::embed_batch) on at most `max_threads` threads (the caller knows
    /// how many cores other work leaves idle: a session can be idle while its worker decodes).
    pub fn embed_batch_on(
        &self,
        faces: &[RgbImage],
        max_threads: usize,
    ) -> Result<Vec<Vec<f32>>, RecognizerError> {
        self.spread(faces, max_threads, |part| self.embed_on_this_thread(part))
    }

    /// `work` on consecutive parts of `items`, one part per thread (the calling thread
    /// included) and as many threads as [`embed_batch_on`](Self::embed_batch_on) would use for
    /// `items.len()` faces; the results in the order of `items`. For work that ends in
    /// embedding each part on its own thread (e.g. aligning the faces first).
    pub(crate) fn spread<T: Sync, R: Send>(
        &self,
        items: &[T],
        max_threads: usize,
        work: impl Fn(&[T]) -> Result<Vec<R>, RecognizerError> + Sync,
    ) -> Result<Vec<R>, RecognizerError> {
        let threads = (items.len() / self.faces_per_run)
            .min(max_threads)
            .min(self.model.idle_sessions())
            .min(std::thread::available_parallelism().map_or(1, |n| n.get()));
        if threads < 2 {
            return work(items);
        }
        let per_thread = items.len().div_ceil(threads);
        let mut parts = items.chunks(per_thread);
        let first = parts.next().unwrap_or_default();
        let work = &work;
        let done: Vec<Result<Vec<R>, RecognizerError>> = std::thread::scope(|scope| {
            let others: Vec<_> = parts.map(|part| scope.spawn(move || work(part))).collect();
            let mut all = vec![work(first)];
            all.extend(others.into_iter().map(|other| {
                other.join().unwrap_or_else(|_| {
                    Err(self.output_error("an embedding thread panicked".into()))
                })
            }));
            all
        });
        let mut out = Vec::with_capacity(items.len());
        for part in done {
            out.extend(part?);
        }
        Ok(out)
    }

    /// Sessions no thread is embedding with right now.
    pub fn idle_sessions(&self) -> usize {
        self.model.idle_sessions()
    }

    /// [`embed_batch`](Self::embed_batch) on the calling thread.
    fn embed_on_this_thread(&self, faces: &[RgbImage]) -> Result<Vec<Vec<f32>>, RecognizerError> {
        let mut out = Vec::with_capacity(faces.len());
        for chunk in faces.chunks(self.faces_per_run) {
            let per_face = 3 * ALIGNED_SIDE * ALIGNED_SIDE;
            let mut input = vec![0f32; chunk.len() * per_face];
            for (face, slot) in chunk.iter().zip(input.chunks_exact_mut(per_face)) {
                if face.dimensions() != (ALIGNED_SIDE as u32, ALIGNED_SIDE as u32) {
                    return Err(self.output_error(format!(
                        "aligned face must be {ALIGNED_SIDE}x{ALIGNED_SIDE}, got {:?}",
                        face.dimensions()
                    )));
                }
                planar_normalised_into(face, slot);
            }
            let n = chunk.len();
            let raw = self.model.with_session(|session| {
                let tensor = TensorRef::from_array_view((
                    [n, 3, ALIGNED_SIDE, ALIGNED_SIDE],
                    input.as_slice(),
                ))?;
                let outputs = session.run(ort::inputs![tensor])?;
                let (_, values) = outputs[0].try_extract_tensor::<f32>()?;
                Ok(values.to_vec())
            })?;
            if raw.len() != n * EMBEDDING_DIM {
                return Err(self.output_error(format!(
                    "expected {} values for {n} faces, got {}",
                    n * EMBEDDING_DIM,
                    raw.len()
                )));
            }
            for values in raw.chunks_exact(EMBEDDING_DIM) {
                let embedding = l2_normalised(values.to_vec())
                    .ok_or_else(|| self.output_error("embedding is zero or not finite".into()))?;
                out.push(embedding);
            }
        }
        Ok(out)
    }

    fn output_error(&self, message: String) -> RecognizerError {
        RecognizerError::ModelOutput {
            model: self.model.name().to_string(),
            message,
        }
    }
}

/// RGB interleaved -> planar `[3, H, W]`, `(x - 127.5) / 128`, into `out` (`3 * W * H` values).
fn planar_normalised_into(face: &RgbImage, out: &mut [f32]) {
    let plane = (face.width() * face.height()) as usize;
    for (i, px) in face.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (px.0[c] as f32 - 127.5) / 128.0;
        }
    }
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
        let mut out = vec![0f32; 6];
        planar_normalised_into(&face, &mut out);
        assert_eq!(out.len(), 6);
        assert!((out[0] + 127.5 / 128.0).abs() < 1e-6); // R of pixel 0
        assert!((out[1] - 127.5 / 128.0).abs() < 1e-6); // R of pixel 1
        assert!((out[4] - 0.5 / 128.0).abs() < 1e-6); // B of pixel 0
    }
}
