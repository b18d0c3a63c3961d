//! The recognizer's error type.

use thiserror::Error;

/// Everything that can go wrong in detection, embedding or matching. Each variant names its input.
#[derive(Debug, Error)]
pub enum RecognizerError {
    /// A file could not be read at all.
    #[error("{input}: cannot read: {message}")]
    Read { input: String, message: String },
    /// The bytes are not an image in a supported format, or are corrupt.
    #[error("{input}: not a readable image (JPEG, PNG, PGM/PPM, GIF, BMP): {message}")]
    ImageDecode { input: String, message: String },
    /// The image is larger than the configured limit.
    #[error("{input}: image too large ({width}x{height}, limit {limit} pixels per side)")]
    ImageTooLarge {
        input: String,
        width: u32,
        height: u32,
        limit: u32,
    },
    /// ONNX Runtime could not be loaded or started.
    #[error("ONNX Runtime: {message}")]
    Runtime { message: String },
    /// A model failed to load or run.
    #[error("model {model}: {message}")]
    Model { model: String, message: String },
    /// A model produced output of an unexpected shape.
    #[error("model {model}: unexpected output: {message}")]
    ModelOutput { model: String, message: String },
    /// The model files are missing or broken.
    #[error(transparent)]
    Models(#[from] rollcall_models::ModelsError),
    /// The people directory failed.
    #[error(transparent)]
    Directory(#[from] crate::directory::DirectoryError),
    /// Embeddings of different sizes were compared or stored.
    #[error("embedding dimension mismatch: expected {expected}, got {actual}")]
    EmbeddingDimension { expected: usize, actual: usize },
}
