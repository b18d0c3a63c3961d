//! The recognizer's error type.

use thiserror::Error;

/// Everything that can go wrong in detection, embedding or matching. Each variant names its input.
#[derive(Debug, Error)]
pub enum RecognizerError {
    /// A file could not be read at all.
    #[error("{input}: cannot read: {source}")]
    Read {
        /// The input (path or name).
        input: String,
        /// Why (not found, permission denied, not a regular file, too large...).
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not an image in a supported format, or are corrupt.
    #[error("{input}: not a readable image (JPEG, PNG, PGM/PPM, GIF, BMP): {message}")]
    ImageDecode {
        /// The input (path or name).
        input: String,
        /// The decoder's message.
        message: String,
    },
    /// The image is larger than the configured limit.
    #[error("{input}: image too large ({width}x{height}, limit {limit} pixels per side)")]
    ImageTooLarge {
        /// The input (path or name).
        input: String,
        /// Its width in pixels.
        width: u32,
        /// Its height in pixels.
        height: u32,
        /// The limit per side.
        limit: u32,
    },
    /// The image has more pixels than the decoding budget allows; refused before decoding.
    #[error(
        "{input}: image too large to decode ({width}x{height} is {:.1} megapixels; the budget is {} megapixels)",
        (*width as f64) * (*height as f64) / 1e6,
        (*budget as f64) / 1e6
    )]
    ImageOverBudget {
        /// The input (path or name).
        input: String,
        /// Its width in pixels.
        width: u32,
        /// Its height in pixels.
        height: u32,
        /// The budget, in pixels.
        budget: u64,
    },
    /// ONNX Runtime could not be loaded or started.
    #[error("ONNX Runtime: {message}")]
    Runtime {
        /// What failed.
        message: String,
    },
    /// A model failed to load or run.
    #[error("model {model}: {message}")]
    Model {
        /// The model.
        model: String,
        /// What failed.
        message: String,
    },
    /// A model produced output of an unexpected shape.
    #[error("model {model}: unexpected output: {message}")]
    ModelOutput {
        /// The model.
        model: String,
        /// What was unexpected.
        message: String,
    },
    /// The model files are missing or broken.
    #[error(transparent)]
    Models(#[from] rollcall_models::ModelsError),
    /// The people directory failed.
    #[error(transparent)]
    Directory(#[from] crate::directory::DirectoryError),
    /// Embeddings of different sizes were compared or stored.
    #[error("embedding dimension mismatch: expected {expected}, got {actual}")]
    EmbeddingDimension {
        /// The dimension of the gallery or directory.
        expected: usize,
        /// The dimension given.
        actual: usize,
    },
}
