//! Frames -> consecutive 0.5 s H.264 clips, each a self-contained Annex-B buffer with its
//! [`ClipMeta`].
//!
//! Clips are cut by frame count (`round(fps * clip_ms / 1000)`, at least 1), so every frame
//! lands in exactly one clip. A gap in capture longer than two clips (at least 1 s: a network
//! camera that dropped and came back) closes the clip early, so no clip spans an outage. Frames are encoded as they arrive (openh264, Baseline profile:
//! no B-frames, constant frame rate, no frame skipping), so a clip is ready a few
//! milliseconds after its last frame. Every clip starts with SPS, PPS and an IDR picture: a
//! decoder needs nothing but the clip's own bytes.

#![warn(missing_docs)]

use std::time::{Duration, Instant};

use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode,
    UsageType,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};
use rollcall_protocol::store::DEFAULT_MAX_CLIP_BYTES;
use rollcall_protocol::wire::{ClipMeta, CLIP_CODEC_H264_ANNEXB};

use crate::source::{now_ns, Frame, MAX_FRAME_SIZE};
use rollcall_protocol::ids::{validate_id, InvalidId};

/// Default clip length in milliseconds.
pub const DEFAULT_CLIP_MS: u32 = 500;
/// Bits per pixel of the default bit rate ([`default_bitrate_bps`]): 1.5 Mbit/s for 640x360 at
/// 30 fps (about 94 kB per 0.5 s clip), 6 Mbit/s for 1280x720. One rate for every frame size
/// blurred the ~30 px faces of a 1280x720 lecture hall at 1.5 Mbit/s: each clip lost 1-3 of its
/// 10 back-row people, 21 % of their looks (`tests/crowd.rs`). A still scene uses less: the encoder stops at its
/// best quality (the hall's clips stay near 200 kB at any rate from 4.5 Mbit/s).
pub const DEFAULT_BITS_PER_PIXEL: f64 = 1_500_000.0 / (640.0 * 360.0 * 30.0);

/// Lowest default bit rate (tiny or slow sources).
const MIN_DEFAULT_BITRATE_BPS: f64 = 100_000.0;

/// Highest default bit rate: a busy 1080p scene's 0.5 s clips stay at 0.5 MB, and the default
/// 1 GiB spool still holds 17 minutes of them through an outage.
const MAX_DEFAULT_BITRATE_BPS: f64 = 8_000_000.0;

/// Largest clip the default bit rate aims at: half the recognition function's default limit
/// ([`DEFAULT_MAX_CLIP_BYTES`]), so that long clips of large frames are not refused.
const MAX_DEFAULT_CLIP_BYTES: usize = DEFAULT_MAX_CLIP_BYTES / 2;

/// The default bit rate for frames of `width` x `height` at `fps` in clips of `clip_ms`:
/// [`DEFAULT_BITS_PER_PIXEL`], at least 100 kbit/s, at most 8 Mbit/s and what keeps a clip
/// under half the function's default size limit.
pub fn default_bitrate_bps(width: u32, height: u32, fps: f32, clip_ms: u32) -> u32 {
    let by_pixels = DEFAULT_BITS_PER_PIXEL * f64::from(width) * f64::from(height) * f64::from(fps);
    let by_clip_size = (MAX_DEFAULT_CLIP_BYTES * 8) as f64 / (f64::from(clip_ms.max(1)) / 1000.0);
    if !by_pixels.is_finite() {
        return MIN_DEFAULT_BITRATE_BPS as u32;
    }
    by_pixels
        .min(MAX_DEFAULT_BITRATE_BPS)
        .min(by_clip_size)
        .max(MIN_DEFAULT_BITRATE_BPS)
        .min(f64::from(u32::MAX))
        .round() as u32
}

/// How to cut and encode clips.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentConfig {
    /// Device id written into every clip's metadata (validated: see [`validate_id`]).
    pub device_id: String,
    /// Session id written into every clip's metadata (validated: see [`validate_id`]).
    pub session_id: String,
    /// Nominal frame rate of the incoming frames (the source's [`fps`](crate::source::FrameSource::fps)).
    pub fps: f32,
    /// Clip length in milliseconds (default [`DEFAULT_CLIP_MS`]).
    pub clip_ms: u32,
    /// Target bit rate in bits per second; `None` (default): [`default_bitrate_bps`] for each
    /// frame size.
    pub bitrate_bps: Option<u32>,
    /// Encoder threads (default 1: one core per camera; 0 lets openh264 decide).
    pub encoder_threads: u16,
}

impl SegmentConfig {
    /// Defaults (0.5 s clips, a bit rate by frame size, one encoder thread) for a device, session
    /// and frame rate.
    pub fn new(device_id: impl Into<String>, session_id: impl Into<String>, fps: f32) -> Self {
        Self {
            device_id: device_id.into(),
            session_id: session_id.into(),
            fps,
            clip_ms: DEFAULT_CLIP_MS,
            bitrate_bps: None,
            encoder_threads: 1,
        }
    }

    /// Frames per clip: `round(fps * clip_ms / 1000)`, at least 1.
    pub fn frames_per_clip(&self) -> u32 {
        let n = (f64::from(self.fps) * f64::from(self.clip_ms) / 1000.0).round();
        if n.is_finite() && n >= 1.0 {
            n.min(f64::from(u32::MAX)) as u32
        } else {
            1
        }
    }
}

/// One finished clip.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedClip {
    /// Its metadata (codec [`CLIP_CODEC_H264_ANNEXB`]).
    pub meta: ClipMeta,
    /// H.264 Annex-B elementary stream: SPS, PPS, IDR, then P pictures.
    pub bytes: Vec<u8>,
    /// Time spent inside the encoder for this clip's frames.
    pub encode: Duration,
}

/// Why cutting or encoding failed.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The device or session id cannot be used in file names and keys.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    /// The configuration cannot be used.
    #[error("invalid clip configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// A frame cannot be encoded (wrong data length, odd or zero size...). The frame is
    /// skipped; the clip in progress goes on.
    #[error("frame {index} ({width}x{height}, {len} bytes) cannot be encoded: {reason}")]
    BadFrame {
        /// The frame's index.
        index: u64,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// Its data length.
        len: usize,
        /// What is wrong.
        reason: String,
    },
    /// The encoder failed. The clip in progress is abandoned (its frames are lost); the next
    /// frame starts the same sequence number afresh.
    #[error("encoding clip {clip_id} failed at frame {index}: {reason}")]
    Encoder {
        /// `device/session/seq` of the clip being encoded.
        clip_id: String,
        /// Index of the frame being encoded.
        index: u64,
        /// The encoder's message.
        reason: String,
    },
}

/// A clip being filled.
struct OpenClip {
    seq: u64,
    width: u32,
    height: u32,
    first_frame_ns: u64,
    last_frame_ns: u64,
    frames: u32,
    bytes: Vec<u8>,
    encode: Duration,
}

/// Cuts frames into clips and encodes them; see the [module docs](self).
///
/// ```no_run
/// use rollcall_edge::segment::{ClipSegmenter, SegmentConfig};
/// use rollcall_edge::source::{open_source, SourceOptions, SourceSpec};
///
/// let mut source = open_source(&SourceSpec::TestPattern, &SourceOptions::default())?;
/// let mut segmenter = ClipSegmenter::new(SegmentConfig::new("pi-1", "s1", source.fps()))?;
/// while let Some(frame) = source.next_frame()? {
///     for clip in segmenter.push(frame)? {
///         println!("{} {} bytes", clip.meta.clip_id(), clip.bytes.len());
///     }
/// }
/// if let Some(last) = segmenter.finish()? {
///     println!("last clip {}", last.meta.clip_id());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ClipSegmenter {
    config: SegmentConfig,
    frames_per_clip: u32,
    encoder: Option<(Encoder, (u32, u32))>,
    current: Option<OpenClip>,
    next_seq: u64,
    /// Frames encoded since the session started (encoder timestamps).
    encoded_frames: u64,
    skipped: SkippedFrames,
}

/// Frames [`ClipSegmenter::push_skipping`] skipped because the encoder could not take them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkippedFrames {
    /// How many.
    pub count: u64,
    /// Why the first one was skipped.
    pub first: Option<String>,
}

impl SkippedFrames {
    /// One line for a report, `None` when nothing was skipped.
    pub fn summary(&self) -> Option<String> {
        self.first.as_ref().map(|first| {
            format!(
                "{} frame(s) could not be encoded and were skipped; the first: {first}",
                self.count
            )
        })
    }
}

impl ClipSegmenter {
    /// A segmenter for one capture session; clip numbering starts at 0.
    pub fn new(config: SegmentConfig) -> Result<Self, SegmentError> {
        validate_id("device id", &config.device_id)?;
        validate_id("session id", &config.session_id)?;
        if !(config.fps.is_finite() && config.fps > 0.0 && config.fps <= 1000.0) {
            return Err(SegmentError::InvalidConfig {
                reason: format!("frame rate {} out of range (0, 1000]", config.fps),
            });
        }
        if config.clip_ms == 0 || config.clip_ms > 60_000 {
            return Err(SegmentError::InvalidConfig {
                reason: format!("clip length {} ms out of range 1..=60000", config.clip_ms),
            });
        }
        if let Some(bps) = config.bitrate_bps.filter(|&bps| bps < 10_000) {
            return Err(SegmentError::InvalidConfig {
                reason: format!("bit rate {bps} bps below 10000"),
            });
        }
        let frames_per_clip = config.frames_per_clip();
        tracing::debug!(
            device = %config.device_id,
            session = %config.session_id,
            fps = config.fps,
            clip_ms = config.clip_ms,
            frames_per_clip,
            bitrate = ?config.bitrate_bps,
            "clip segmenter ready"
        );
        Ok(Self {
            config,
            frames_per_clip,
            encoder: None,
            current: None,
            next_seq: 0,
            encoded_frames: 0,
            skipped: SkippedFrames::default(),
        })
    }

    /// Frames in every clip but possibly the last.
    pub fn frames_per_clip(&self) -> u32 {
        self.frames_per_clip
    }

    /// The configuration in use.
    pub fn config(&self) -> &SegmentConfig {
        &self.config
    }

    /// Sequence number the next clip will get (= clips emitted so far).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Frames waiting in the clip being filled.
    pub fn pending_frames(&self) -> u32 {
        self.current.as_ref().map_or(0, |c| c.frames)
    }

    /// Encodes one frame into the clip in progress and returns the clips this frame closed:
    /// usually none or one; two when a size change closes the previous clip early and the
    /// frame alone fills a one-frame clip.
    pub fn push(&mut self, frame: Frame) -> Result<Vec<EncodedClip>, SegmentError> {
        check_frame(&frame)?;
        let mut done = Vec::new();
        if let Some(open) = &self.current {
            if (open.width, open.height) != (frame.width, frame.height) {
                tracing::info!(
                    from = %format!("{}x{}", open.width, open.height),
                    to = %format!("{}x{}", frame.width, frame.height),
                    "frame size changed; closing the clip early"
                );
                if let Some(clip) = self.close()? {
                    done.push(clip);
                }
            } else if frame.capture_ns.saturating_sub(open.last_frame_ns) > self.max_gap_ns() {
                tracing::info!(
                    clip = %self.clip_id(open.seq),
                    gap_ms = frame.capture_ns.saturating_sub(open.last_frame_ns) / 1_000_000,
                    "gap in capture; closing the clip early"
                );
                if let Some(clip) = self.close()? {
                    done.push(clip);
                }
            }
        }
        self.encode_frame(&frame)?;
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.frames >= self.frames_per_clip)
        {
            if let Some(clip) = self.close()? {
                done.push(clip);
            }
        }
        Ok(done)
    }

    /// [`push`](Self::push) for a capture loop: a frame the encoder cannot take
    /// ([`SegmentError::BadFrame`], e.g. a source larger than it accepts) is skipped and counted
    /// in [`skipped`](Self::skipped), with one warning for the first (not one per frame), and
    /// the clip in progress goes on. Other errors are returned.
    pub fn push_skipping(&mut self, frame: Frame) -> Result<Vec<EncodedClip>, SegmentError> {
        match self.push(frame) {
            Err(e @ SegmentError::BadFrame { .. }) => {
                self.skipped.count += 1;
                if self.skipped.first.is_none() {
                    tracing::warn!(
                        "frames skipped: {e} (further frames skipped for this reason are only \
                         counted)"
                    );
                    self.skipped.first = Some(e.to_string());
                }
                Ok(Vec::new())
            }
            other => other,
        }
    }

    /// Frames [`push_skipping`](Self::push_skipping) skipped so far.
    pub fn skipped(&self) -> &SkippedFrames {
        &self.skipped
    }

    /// Closes the partial clip at the end of the source, if it has any frames.
    pub fn finish(&mut self) -> Result<Option<EncodedClip>, SegmentError> {
        self.close()
    }

    /// The longest pause between two frames of one clip: two clip lengths, at least 1 s.
    fn max_gap_ns(&self) -> u64 {
        u64::from(self.config.clip_ms.saturating_mul(2).max(1000)) * 1_000_000
    }

    fn clip_id(&self, seq: u64) -> String {
        format!(
            "{}/{}/{:08}",
            self.config.device_id, self.config.session_id, seq
        )
    }

    fn encode_frame(&mut self, frame: &Frame) -> Result<(), SegmentError> {
        let size = (frame.width, frame.height);
        let starts_clip = self.current.is_none();
        let seq = self.next_seq;
        let encoder_err = |this: &Self, reason: String| SegmentError::Encoder {
            clip_id: this.clip_id(seq),
            index: frame.index,
            reason,
        };
        if self.encoder.as_ref().is_none_or(|(_, s)| *s != size) {
            let bps = self.config.bitrate_bps.unwrap_or_else(|| {
                default_bitrate_bps(size.0, size.1, self.config.fps, self.config.clip_ms)
            });
            tracing::debug!(
                size = %format!("{}x{}", size.0, size.1),
                bitrate = bps,
                "encoder for a new frame size"
            );
            let config = EncoderConfig::new()
                .bitrate(BitRate::from_bps(bps))
                .max_frame_rate(FrameRate::from_hz(self.config.fps))
                .rate_control_mode(RateControlMode::Bitrate)
                .skip_frames(false)
                .usage_type(UsageType::CameraVideoRealTime)
                .intra_frame_period(IntraFramePeriod::from_num_frames(0))
                .num_threads(self.config.encoder_threads);
            let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
                .map_err(|e| encoder_err(self, format!("cannot create the encoder: {e}")))?;
            route_encoder_logs(&mut encoder);
            self.encoder = Some((encoder, size));
        }
        let timestamp = Timestamp::from_millis(
            (self.encoded_frames as f64 * 1000.0 / f64::from(self.config.fps)) as u64,
        );
        let view = I420View::new(frame);
        let Some((encoder, _)) = self.encoder.as_mut() else {
            return Err(encoder_err(self, "no encoder".to_string()));
        };
        if starts_clip {
            encoder.force_intra_frame();
        }
        let started = Instant::now();
        let mut bytes = Vec::new();
        let result = encoder.encode_at(&view, timestamp).map(|bs| {
            bs.write_vec(&mut bytes);
            bs.frame_type()
        });
        let spent = started.elapsed();
        let frame_type = match result {
            Ok(t) => t,
            Err(e) => {
                // Abandon the clip: its bitstream is now unusable. Same seq restarts afresh
                // with a new encoder (no gap in numbering).
                self.encoder = None;
                if let Some(open) = self.current.take() {
                    tracing::error!(clip = %self.clip_id(open.seq), frames = open.frames, "abandoning clip after encoder failure");
                }
                return Err(encoder_err(self, e.to_string()));
            }
        };
        if starts_clip && frame_type != FrameType::IDR {
            self.encoder = None;
            return Err(encoder_err(
                self,
                format!("first picture of the clip is {frame_type:?}, not IDR"),
            ));
        }
        if matches!(frame_type, FrameType::Skip | FrameType::Invalid) || bytes.is_empty() {
            // Should not happen with frame skipping off; the frame would be missing from the clip.
            tracing::warn!(clip = %self.clip_id(seq), index = frame.index, ?frame_type, "encoder produced no picture for a frame");
            return Ok(());
        }
        self.encoded_frames += 1;
        let open = self.current.get_or_insert_with(|| OpenClip {
            seq,
            width: frame.width,
            height: frame.height,
            first_frame_ns: frame.capture_ns,
            last_frame_ns: frame.capture_ns,
            frames: 0,
            bytes: Vec::with_capacity(bytes.len() * 4),
            encode: Duration::ZERO,
        });
        open.last_frame_ns = frame.capture_ns;
        open.frames += 1;
        open.bytes.extend_from_slice(&bytes);
        open.encode += spent;
        Ok(())
    }

    fn close(&mut self) -> Result<Option<EncodedClip>, SegmentError> {
        let Some(open) = self.current.take() else {
            return Ok(None);
        };
        self.next_seq = open.seq + 1;
        let meta = ClipMeta {
            device_id: self.config.device_id.clone(),
            session_id: self.config.session_id.clone(),
            seq: open.seq,
            first_frame_ns: open.first_frame_ns,
            last_frame_ns: open.last_frame_ns,
            closed_ns: now_ns(),
            fps: self.config.fps,
            width: open.width,
            height: open.height,
            frame_count: open.frames,
            codec: CLIP_CODEC_H264_ANNEXB.to_string(),
        };
        tracing::debug!(
            clip = %meta.clip_id(),
            frames = meta.frame_count,
            bytes = open.bytes.len(),
            encode_ms = open.encode.as_secs_f64() * 1000.0,
            "clip closed"
        );
        Ok(Some(EncodedClip {
            meta,
            bytes: open.bytes,
            encode: open.encode,
        }))
    }
}

/// Sends the encoder's log lines to `tracing` (target `openh264`) instead of stderr, where they
/// would garble a terminal UI. Must run before the first encode (which initialises the encoder).
fn route_encoder_logs(encoder: &mut Encoder) {
    let mut callback: openh264_sys2::WelsTraceCallback = Some(openh264_log);
    // SAFETY: openh264 accepts ENCODER_OPTION_TRACE_CALLBACK before initialisation
    // (CWelsH264SVCEncoder::SetOption) and copies the function pointer out of the option value,
    // which only has to live for the call. We set no other option through the raw API.
    let rc = unsafe {
        encoder.raw_api().set_option(
            openh264_sys2::ENCODER_OPTION_TRACE_CALLBACK,
            (&raw mut callback).cast(),
        )
    };
    if rc != 0 {
        tracing::debug!(
            rc,
            "openh264 refused the log callback; its messages go to stderr"
        );
    }
}

/// openh264's log callback. Must not unwind into C.
unsafe extern "C" fn openh264_log(
    _ctx: *mut std::ffi::c_void,
    level: std::ffi::c_int,
    text: *const std::ffi::c_char,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: openh264 passes a NUL-terminated string valid for the duration of the call.
    let text = unsafe { std::ffi::CStr::from_ptr(text) }.to_string_lossy();
    let _ = std::panic::catch_unwind(|| {
        let text = text.trim_end();
        let level = level as u32;
        if level <= openh264_sys2::WELS_LOG_ERROR as u32 {
            tracing::error!(target: "openh264", "{text}");
        } else if level <= openh264_sys2::WELS_LOG_WARNING as u32
            && !text.contains("bEnableFrameSkip = 0")
        {
            // (Frame skipping is off on purpose: every captured frame must be in its clip.)
            tracing::warn!(target: "openh264", "{text}");
        } else {
            tracing::debug!(target: "openh264", "{text}");
        }
    });
}

fn check_frame(frame: &Frame) -> Result<(), SegmentError> {
    let bad = |reason: &str| SegmentError::BadFrame {
        index: frame.index,
        width: frame.width,
        height: frame.height,
        len: frame.data.len(),
        reason: reason.to_string(),
    };
    if frame.width < 2 || frame.height < 2 || frame.width % 2 != 0 || frame.height % 2 != 0 {
        return Err(bad("width and height must be even and at least 2"));
    }
    let (max_long, max_short) = MAX_FRAME_SIZE;
    if frame.width.max(frame.height) > max_long || frame.width.min(frame.height) > max_short {
        return Err(bad(&format!(
            "larger than the encoder takes ({max_long}x{max_short})"
        )));
    }
    if !frame.is_well_formed() {
        return Err(bad("data length is not width*height*3/2 (I420)"));
    }
    Ok(())
}

/// A checked, borrowed I420 frame for the encoder.
struct I420View<'a> {
    frame: &'a Frame,
    y_len: usize,
    c_len: usize,
}

impl<'a> I420View<'a> {
    /// `frame` must have passed [`check_frame`].
    fn new(frame: &'a Frame) -> Self {
        let y_len = frame.width as usize * frame.height as usize;
        Self {
            frame,
            y_len,
            c_len: y_len / 4,
        }
    }
}

impl YUVSource for I420View<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.frame.width as usize, self.frame.height as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let w = self.frame.width as usize;
        (w, w / 2, w / 2)
    }

    fn y(&self) -> &[u8] {
        &self.frame.data[..self.y_len]
    }

    fn u(&self) -> &[u8] {
        &self.frame.data[self.y_len..self.y_len + self.c_len]
    }

    fn v(&self) -> &[u8] {
        &self.frame.data[self.y_len + self.c_len..]
    }
}

/// NAL unit types of an Annex-B buffer, in order (4-byte and 3-byte start codes).
pub fn nal_types(annexb: &[u8]) -> Vec<u8> {
    openh264::nal_units(annexb)
        .filter_map(|nal| {
            let start = nal.iter().position(|&b| b != 0)?;
            // Skip the 0x01 of the start code.
            nal.get(start + 1).map(|h| h & 0x1f)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::TestPatternSource;

    fn frame(index: u64, w: u32, h: u32) -> Frame {
        Frame {
            index,
            capture_ns: 1_000 + index,
            width: w,
            height: h,
            data: TestPatternSource::render(index, w, h),
        }
    }

    #[test]
    fn frames_per_clip_rounds() {
        let mut c = SegmentConfig::new("d", "s", 30.0);
        assert_eq!(c.frames_per_clip(), 15);
        c.fps = 29.97;
        assert_eq!(c.frames_per_clip(), 15);
        c.fps = 1.0;
        assert_eq!(c.frames_per_clip(), 1);
        c.fps = 25.0;
        assert_eq!(c.frames_per_clip(), 13);
        c.clip_ms = 1000;
        assert_eq!(c.frames_per_clip(), 25);
    }

    #[test]
    fn rejects_bad_config() {
        assert!(matches!(
            ClipSegmenter::new(SegmentConfig::new("../x", "s", 30.0)),
            Err(SegmentError::InvalidId(_))
        ));
        assert!(matches!(
            ClipSegmenter::new(SegmentConfig::new("d", "", 30.0)),
            Err(SegmentError::InvalidId(_))
        ));
        assert!(ClipSegmenter::new(SegmentConfig::new("d", "s", 0.0)).is_err());
        let mut c = SegmentConfig::new("d", "s", 30.0);
        c.clip_ms = 0;
        assert!(ClipSegmenter::new(c).is_err());
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        let mut seg = ClipSegmenter::new(SegmentConfig::new("d", "s", 30.0)).unwrap();
        let mut f = frame(0, 64, 48);
        f.data.pop();
        assert!(matches!(
            seg.push(f),
            Err(SegmentError::BadFrame { index: 0, .. })
        ));
        let odd = Frame {
            index: 1,
            capture_ns: 0,
            width: 3,
            height: 3,
            data: vec![0; Frame::i420_len(3, 3)],
        };
        assert!(matches!(
            seg.push(odd),
            Err(SegmentError::BadFrame { index: 1, .. })
        ));
        // Still usable afterwards.
        assert!(seg.push(frame(2, 64, 48)).unwrap().is_empty());
        assert_eq!(seg.finish().unwrap().unwrap().meta.frame_count, 1);
    }

    #[test]
    fn the_default_bit_rate_follows_the_frame_size_within_bounds() {
        // The usual clip keeps the rate it always had; 720p gets four times as much.
        assert_eq!(default_bitrate_bps(640, 360, 30.0, 500), 1_500_000);
        assert_eq!(default_bitrate_bps(1280, 720, 30.0, 500), 6_000_000);
        assert_eq!(default_bitrate_bps(640, 480, 15.0, 500), 1_000_000);
        assert_eq!(default_bitrate_bps(64, 48, 5.0, 500), 100_000);
        assert_eq!(default_bitrate_bps(1920, 1080, 30.0, 500), 8_000_000);
        // Long clips of large frames stay under half the function's size limit.
        let bps = default_bitrate_bps(1920, 1080, 30.0, 10_000);
        assert_eq!(bps, (DEFAULT_MAX_CLIP_BYTES / 2 * 8 / 10) as u32);
        assert!(default_bitrate_bps(4096, 4096, 1000.0, 0) > 0);
        assert_eq!(default_bitrate_bps(640, 360, f32::NAN, 500), 100_000);
    }

    #[test]
    fn a_set_bit_rate_is_checked_and_replaces_the_default() {
        let clip_bytes = |bitrate_bps: Option<u32>| {
            let mut config = SegmentConfig::new("d", "s", 30.0);
            config.bitrate_bps = bitrate_bps;
            let mut seg = ClipSegmenter::new(config).unwrap();
            let mut clips = Vec::new();
            for i in 0..30 {
                clips.extend(seg.push(frame(i, 320, 240)).unwrap());
            }
            clips[1].bytes.len()
        };
        let mut config = SegmentConfig::new("d", "s", 30.0);
        config.bitrate_bps = Some(9_999);
        assert!(ClipSegmenter::new(config).is_err());
        // The default for 320x240 at 30 fps is 500 kbit/s; 50 kbit/s gives smaller clips.
        let (default, low) = (clip_bytes(None), clip_bytes(Some(50_000)));
        assert!(
            low < default,
            "{low} bytes at 50 kbit/s, {default} by default"
        );
    }

    #[test]
    fn push_skipping_counts_bad_frames_and_keeps_the_clip_going() {
        let mut seg = ClipSegmenter::new(SegmentConfig::new("d", "s", 30.0)).unwrap();
        assert_eq!(seg.skipped().summary(), None);
        assert!(seg.push_skipping(frame(0, 64, 48)).unwrap().is_empty());
        for index in 1..4 {
            let mut short = frame(index, 64, 48);
            short.data.pop();
            assert!(seg.push_skipping(short).unwrap().is_empty());
        }
        assert!(seg.push_skipping(frame(4, 64, 48)).unwrap().is_empty());
        let skipped = seg.skipped();
        assert_eq!(skipped.count, 3);
        let summary = skipped.summary().unwrap();
        assert!(
            summary.starts_with("3 frame(s) could not be encoded") && summary.contains("frame 1 "),
            "{summary}"
        );
        // The good frames on either side are one clip.
        assert_eq!(seg.finish().unwrap().unwrap().meta.frame_count, 2);
    }

    #[test]
    fn size_change_closes_clip_early() {
        let mut seg = ClipSegmenter::new(SegmentConfig::new("d", "s", 30.0)).unwrap();
        for i in 0..4 {
            assert!(seg.push(frame(i, 64, 48)).unwrap().is_empty());
        }
        let clips = seg.push(frame(4, 32, 32)).unwrap();
        assert_eq!(clips.len(), 1);
        assert_eq!(
            (
                clips[0].meta.frame_count,
                clips[0].meta.width,
                clips[0].meta.seq
            ),
            (4, 64, 0)
        );
        let last = seg.finish().unwrap().unwrap();
        assert_eq!(
            (last.meta.frame_count, last.meta.width, last.meta.seq),
            (1, 32, 1)
        );
        assert_eq!(&nal_types(&last.bytes)[..3], &[7, 8, 5]);
        assert!(seg.finish().unwrap().is_none());
    }

    #[test]
    fn a_gap_in_capture_closes_the_clip_early() {
        let mut seg = ClipSegmenter::new(SegmentConfig::new("d", "s", 30.0)).unwrap();
        let at = |index: u64, ms: u64| Frame {
            capture_ns: ms * 1_000_000,
            ..frame(index, 64, 48)
        };
        // 33 ms apart, then a 900 ms hiccup: still one clip (under 1 s).
        for (i, ms) in [0u64, 33, 66, 966].into_iter().enumerate() {
            assert!(seg.push(at(i as u64, ms)).unwrap().is_empty());
        }
        // The camera was offline for 35 s: the 4 frames before it are a clip of their own.
        let clips = seg.push(at(4, 35_966)).unwrap();
        assert_eq!(clips.len(), 1);
        assert_eq!(clips[0].meta.frame_count, 4);
        assert_eq!(clips[0].meta.last_frame_ns, 966_000_000);
        let last = seg.finish().unwrap().unwrap();
        assert_eq!((last.meta.seq, last.meta.frame_count), (1, 1));
        assert_eq!(&nal_types(&last.bytes)[..3], &[7, 8, 5]);
    }

    #[test]
    fn nal_type_parsing() {
        let bytes = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4,
        ];
        assert_eq!(nal_types(&bytes), vec![7, 8, 5]);
    }
}
