//! Clip analysis: an H.264 Annex-B clip (0.5 s from an edge device) in, the enrolled people seen
//! in it out.
//!
//! - [`decode`]: OpenH264 decoding (bundled C source, no system library or ffmpeg), NAL units
//!   grouped into access units, B-frames supported, decoding up to the last selected frame and
//!   RGB conversion of the selected frames only.
//! - [`sample`]: which frames are analysed ([`SamplePolicy`]: `auto`, `all`, `every:k`).
//! - [`analyze`]: [`ClipAnalyzer`] runs the [`FacePipeline`](crate::vision::FacePipeline) on the
//!   sampled frames, identifies each face against a [`Gallery`](crate::vision::Gallery) and
//!   aggregates a [`ClipAnalysis`] (one [`PersonSighting`] per person, unknown-face counts,
//!   timings).
//!
//! Every failure is a [`ClipError`] that names the clip; damaged input never panics.

pub mod analyze;
pub mod decode;
pub mod sample;

pub use analyze::{
    ClipAnalysis, ClipAnalyzer, ClipTimings, PersonSighting, ReusePolicy, SMALL_FRAME,
};
pub use decode::{
    decode_clip, decode_clip_beside, decode_clip_with, ClipLimits, DecodeStats, DecodedFrame,
    DEFAULT_MAX_CLIP_BYTES, DEFAULT_MAX_CLIP_FRAMES,
};
pub use sample::{
    effective_fps, ParsePolicyError, SamplePolicy, DEFAULT_CLIP_FPS, DEFAULT_MIN_PER_SECOND,
};

use crate::error::RecognizerError;

/// Why a clip could not be analysed. Every variant names the clip (`clip`, see
/// [`ClipError::clip_id`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClipError {
    /// The clip is larger than [`ClipLimits::max_bytes`]; refused before decoding.
    #[error("clip {clip}: {size} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// The clip.
        clip: String,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The clip has no bytes.
    #[error("clip {clip}: empty (0 bytes)")]
    Empty {
        /// The clip.
        clip: String,
    },
    /// No H.264 start code anywhere in the clip.
    #[error("clip {clip}: not an H.264 Annex-B stream (no start code in {size} bytes)")]
    NotAnnexB {
        /// The clip.
        clip: String,
        /// Its size in bytes.
        size: usize,
    },
    /// The clip's metadata names a codec other than `h264-annexb`.
    #[error("clip {clip}: unsupported codec {codec:?} (expected h264-annexb)")]
    UnsupportedCodec {
        /// The clip.
        clip: String,
        /// The codec its metadata names.
        codec: String,
    },
    /// The decoder rejected the stream (corrupt, cut short, missing its parameter sets or IDR
    /// picture), or an internal check failed on what it produced.
    #[error(
        "clip {clip}: corrupt or truncated H.264 at access unit {access_unit} (byte {offset}, \
         after {frames_decoded} good frames): {message}"
    )]
    Corrupt {
        /// The clip.
        clip: String,
        /// Index of the access unit (picture) being decoded, from 0.
        access_unit: usize,
        /// Byte offset of that access unit in the clip.
        offset: usize,
        /// Frames decoded before the failure.
        frames_decoded: usize,
        /// The decoder's message.
        message: String,
    },
    /// The stream decoded without error but contained no picture.
    #[error("clip {clip}: no frame could be decoded from its {access_units} access units")]
    NoFrames {
        /// The clip.
        clip: String,
        /// Access units (pictures) in the stream.
        access_units: usize,
    },
    /// Fewer frames than the clip's metadata announces.
    #[error(
        "clip {clip}: truncated: its metadata announces {expected} frames, the stream has {decoded}"
    )]
    Truncated {
        /// The clip.
        clip: String,
        /// Frames its metadata announces.
        expected: u32,
        /// Frames in the stream (pictures counted, see [`DecodeStats::pictures`]).
        decoded: usize,
    },
    /// More frames than [`ClipLimits::max_frames`].
    #[error("clip {clip}: more than {limit} frames")]
    TooManyFrames {
        /// The clip.
        clip: String,
        /// The limit.
        limit: usize,
    },
    /// The H.264 decoder could not be created.
    #[error("clip {clip}: cannot start the H.264 decoder: {message}")]
    Decoder {
        /// The clip.
        clip: String,
        /// The decoder's message.
        message: String,
    },
    /// Detection or embedding failed on a frame.
    #[error("clip {clip}: frame {frame_index}: {source}")]
    Recognition {
        /// The clip.
        clip: String,
        /// The frame (display order, from 0).
        frame_index: usize,
        /// Boxed: the recognizer's error is large and this one travels through every `Result`.
        #[source]
        source: Box<RecognizerError>,
    },
}

impl ClipError {
    /// The clip this error is about.
    pub fn clip_id(&self) -> &str {
        match self {
            ClipError::TooLarge { clip, .. }
            | ClipError::Empty { clip }
            | ClipError::NotAnnexB { clip, .. }
            | ClipError::UnsupportedCodec { clip, .. }
            | ClipError::Corrupt { clip, .. }
            | ClipError::NoFrames { clip, .. }
            | ClipError::Truncated { clip, .. }
            | ClipError::TooManyFrames { clip, .. }
            | ClipError::Decoder { clip, .. }
            | ClipError::Recognition { clip, .. } => clip,
        }
    }

    /// True when the clip's bytes are at fault (as opposed to the models or the machine):
    /// retrying the same clip cannot succeed.
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            ClipError::Decoder { .. } | ClipError::Recognition { .. }
        )
    }
}
