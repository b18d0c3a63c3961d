//! Types that cross process boundaries (edge -> store -> function -> queue -> edge), serialised
//! as JSON. `docs/protocol.md` documents the JSON.

use serde::{Deserialize, Serialize};

/// Codec tag of a rollcall clip: H.264 Annex-B elementary stream, SPS/PPS + IDR first, no B-frames.
pub const CLIP_CODEC_H264_ANNEXB: &str = "h264-annexb";

/// Everything known about one clip besides its bytes. Travels as object metadata and in events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipMeta {
    /// Camera / edge device that captured the clip.
    pub device_id: String,
    /// Capture session the clip belongs to.
    pub session_id: String,
    /// Position of the clip in its session, from 0, without gaps.
    pub seq: u64,
    /// Wall-clock capture time of the first frame, nanoseconds since the Unix epoch.
    pub first_frame_ns: u64,
    /// Wall-clock capture time of the last frame, nanoseconds since the Unix epoch.
    pub last_frame_ns: u64,
    /// Wall-clock time the clip was closed (encoded and ready to upload), ns since the epoch.
    pub closed_ns: u64,
    /// Nominal frame rate.
    pub fps: f32,
    pub width: u32,
    pub height: u32,
    pub frame_count: u32,
    /// Always [`CLIP_CODEC_H264_ANNEXB`] for now.
    pub codec: String,
}

impl ClipMeta {
    /// Stable id of the clip: `device/session/seq`.
    pub fn clip_id(&self) -> String {
        format!("{}/{}/{:08}", self.device_id, self.session_id, self.seq)
    }

    /// Object-store key of the clip's bytes: `clips/<device>/<session>/<seq>.h264`.
    pub fn object_key(&self) -> String {
        format!("clips/{}.h264", self.clip_id())
    }
}
