//! Face vision: image decoding, face detection (MTCNN; YuNet + O-Net or UltraFace + O-Net for
//! video), ArcFace alignment, embeddings and matching.
//!
//! Nothing here knows about clips, queues, storage or AWS.

pub mod align;
pub mod detect;
pub mod embed;
pub mod gallery;
pub mod image;
pub mod landmarks;
pub mod pipeline;
mod resize;
pub mod ultraface;
pub mod yunet;

pub use self::image::{
    decode_image, decode_photo, load_image, load_photo, DecodeLimits, Photo, RgbImage,
    DEFAULT_MAX_IMAGE_PIXELS,
};
pub use align::{align_face, align_face_with, Similarity, WarpFilter, ARCFACE_TEMPLATE};
pub use detect::{Detection, DetectorOptions, FaceBox, FaceDetector, Landmarks};
pub use embed::{FaceEmbedder, EMBEDDING_DIM, MAX_EMBED_BATCH};
pub use gallery::{
    calibrate_threshold, cosine, mean_embedding, robust_mean_embedding, Calibration, Candidate,
    Gallery, Identity, Template, DEFAULT_MATCH_THRESHOLD,
};
pub use landmarks::LandmarkModel;
pub use pipeline::{
    DetectorKind, Face, FacePipeline, PipelineOptions, StageTimes, DEFAULT_MAX_DETECT_SIDE,
    FAST_DETECTOR_MODEL,
};
pub use ultraface::{FastDetectorOptions, UltraFace};
pub use yunet::{YuNet, YuNetOptions, YUNET_MODEL, YUNET_SMALLEST_FACE};
